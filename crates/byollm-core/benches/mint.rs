//! Identity-token minting in process (performance target S6: ≥ 50,000 ES256
//! tokens/s on one core). The private key is parsed once, as the server does.
//!
//! Run: `cargo bench -p byollm-core --bench mint`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    reason = "test and bench code: a failed unwrap is a failed test"
)]

use std::hint::black_box;

use byollm_core::identity::jwt::{self, Claims};
use byollm_core::identity::keys::{Algorithm, SigningKey};
use byollm_core::identity::names;
use byollm_core::ids;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn claims() -> Claims {
    Claims {
        iss: "https://byollm.example.com".into(),
        sub: "scoped_principal:5gvmdlqqvb2xcyb5lfyq/service_account:bjkpvvs5q33yu2d5eret".into(),
        aud: "sts.amazonaws.com".into(),
        iat: 1_800_000_000,
        nbf: 1_799_999_970,
        exp: 1_800_003_600,
        jti: ids::new_uid(),
        team_uid: "5gvmdlqqvb2xcyb5lfyq".into(),
        actor_type: "service_account".into(),
        principal_uid: "bjkpvvs5q33yu2d5eret".into(),
        run_id: Some("r4f2hqkq2xj7m3v5n6ta".into()),
        session_tags: Some(names::session_tags(
            "5gvmdlqqvb2xcyb5lfyq",
            byollm_api::types::ActorType::ServiceAccount,
            "bjkpvvs5q33yu2d5eret",
            Some("r4f2hqkq2xj7m3v5n6ta"),
        )),
        source_identity: Some("ann@example.com".into()),
        team: None,
        actor: None,
    }
}

fn mint(c: &mut Criterion) {
    let mut group = c.benchmark_group("mint");
    group.throughput(Throughput::Elements(1));
    for alg in [Algorithm::Es256, Algorithm::Rs256] {
        let (key, _) = SigningKey::generate(alg).expect("key");
        let claims = claims();
        group.bench_function(alg.as_str(), |b| {
            b.iter(|| jwt::encode(black_box(&key), black_box(&claims)).expect("signs"));
        });
    }
    group.finish();
}

fn credential_hash(c: &mut Criterion) {
    let key = "byollm_key_zvhbswnwd5aud74ulvptqopqoyrwiwvm7hscbpm7ndehynp47fwa";
    c.bench_function("credential_hash", |b| {
        b.iter(|| ids::hash_secret(black_box(key)))
    });
}

criterion_group!(benches, mint, credential_hash);
criterion_main!(benches);
