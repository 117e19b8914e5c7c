//! The key lifecycle on both engines: pre-publication, activation, retirement
//! after the longest token lifetime plus leeway, removal, for the configured
//! kind of key and the RS256 one beside it (they rotate together); an RS256
//! key added to a keyring that already signs is pre-published; and racing
//! rotations leaving exactly one active key of each kind.

use std::sync::Arc;

use byollm_api::clock::{Clock as _, FakeClock};
use byollm_core::identity::jwt::{self, Claims};
use byollm_core::identity::kek::Kek;
use byollm_core::identity::keyring::{Keyring, RotateOutcome};
use byollm_core::identity::keys::SigningKey;
use byollm_core::identity::keys::{Algorithm, Jwk};
use byollm_core::identity::{PREPUBLISH_SECONDS, RETIRE_LEEWAY_SECONDS};
use byollm_core::store::{KeyChange, KeyRow, KeyState, Store};
use secrecy::{ExposeSecret as _, SecretString};

use crate::stores;

const MAX_TTL: i64 = 3600;
// A time after the real present, so an independent verifier's own expiry check
// (which reads the real clock) would pass too.
const T0: i64 = 1_900_000_000;

fn kek() -> Arc<Kek> {
    Arc::new(Kek::from_secret(&SecretString::from("11".repeat(32))).unwrap())
}

async fn ring(store: &Store, clock: &FakeClock, alg: Algorithm) -> Keyring {
    Keyring::open(store.clone(), kek(), Arc::new(clock.clone()), alg, MAX_TTL)
        .await
        .unwrap()
}

fn claims(now: i64) -> Claims {
    Claims {
        iss: "https://issuer.test".into(),
        sub: "scoped_principal:t/user:u".into(),
        aud: "sts.amazonaws.com".into(),
        iat: now,
        nbf: now - 30,
        exp: now + MAX_TTL,
        jti: byollm_core::ids::new_uid(),
        team_uid: "t".into(),
        actor_type: "user".into(),
        principal_uid: "u".into(),
        run_id: None,
        session_tags: None,
        source_identity: None,
        team: None,
        actor: None,
    }
}

/// Verifies with RustCrypto through `jsonwebtoken`, the key chosen by `kid` from
/// the published set, as a relying party would.
fn verifies(token: &str, published: &[Jwk]) -> bool {
    let Ok(header) = jsonwebtoken::decode_header(token) else {
        return false;
    };
    let Some(jwk) = published
        .iter()
        .find(|k| Some(&k.kid) == header.kid.as_ref())
    else {
        return false;
    };
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(serde_json::to_value(jwk).unwrap()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&["sts.amazonaws.com"]);
    validation.set_issuer(&["https://issuer.test"]);
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).is_ok()
}

#[tokio::test]
async fn rotation_prepublishes_activates_and_retires() {
    for t in stores::all().await {
        for alg in [Algorithm::Es256, Algorithm::Rs256] {
            let clock = FakeClock::new(T0);
            // A fresh store per algorithm: reuse the engine's store only once.
            let fresh = stores::sqlite().await;
            let store = if alg == Algorithm::Es256 {
                &t.store
            } else {
                &fresh.store
            };
            let ring = ring(store, &clock, alg).await;
            let k1 = ring.signer().unwrap();
            assert_eq!(k1.alg(), alg);
            // The RS256 key Entra needs signs from the first start too (its
            // own kid), and is the configured key when that is RS256.
            let r1 = ring.signer_for(Algorithm::Rs256).unwrap();
            assert_eq!(r1.alg(), Algorithm::Rs256);
            assert_eq!(r1.kid() == k1.kid(), alg == Algorithm::Rs256);
            let kinds = if alg == Algorithm::Es256 { 2 } else { 1 };
            assert_eq!(ring.keys().jwks.len(), kinds, "{}", t.name);
            let old = jwt::encode(&k1, &claims(clock.now())).unwrap();
            let old_rsa = jwt::encode(&r1, &claims(clock.now())).unwrap();
            assert!(
                verifies(old.expose_secret(), &ring.keys().jwks),
                "{}",
                t.name
            );
            assert!(verifies(old_rsa.expose_secret(), &ring.keys().jwks));

            let RotateOutcome::Published {
                kid: k2,
                activate_after,
                companions,
            } = ring.rotate().await.unwrap()
            else {
                panic!("first rotation publishes");
            };
            assert_eq!(activate_after, T0 + PREPUBLISH_SECONDS);
            assert_eq!(companions.len(), kinds - 1, "{companions:?}");
            let r2 = companions.first().cloned().unwrap_or_else(|| k2.clone());
            // Published before they sign.
            assert_eq!(ring.signer().unwrap().kid(), k1.kid());
            assert_eq!(ring.signer_for(Algorithm::Rs256).unwrap().kid(), r1.kid());
            assert!(ring.keys().jwks.iter().any(|k| k.kid == k2));
            assert!(
                ring.keys()
                    .jwks
                    .iter()
                    .any(|k| k.kid == r2 && k.kty == "RSA")
            );
            assert!(
                matches!(ring.rotate().await.unwrap(), RotateOutcome::AlreadyPending { kid, .. } if kid == k2)
            );

            clock.advance(PREPUBLISH_SECONDS);
            ring.maintain().await.unwrap();
            let signer = ring.signer().unwrap();
            assert_eq!(signer.kid(), k2, "{}: new tokens use the new kid", t.name);
            let rsa = ring.signer_for(Algorithm::Rs256).unwrap();
            assert_eq!(rsa.kid(), r2, "{}: the RS256 key rotated too", t.name);
            let new = jwt::encode(&signer, &claims(clock.now())).unwrap();
            let header = jsonwebtoken::decode_header(new.expose_secret()).unwrap();
            assert_eq!(header.kid.as_deref(), Some(k2.as_str()));
            // The old tokens still verify: their keys are retired, still published.
            for token in [&old, &old_rsa] {
                assert!(
                    verifies(token.expose_secret(), &ring.keys().jwks),
                    "{}",
                    t.name
                );
            }
            assert!(verifies(new.expose_secret(), &ring.keys().jwks));
            let new_rsa = jwt::encode(&rsa, &claims(clock.now())).unwrap();
            assert!(verifies(new_rsa.expose_secret(), &ring.keys().jwks));
            let retired = ring
                .keys()
                .info
                .iter()
                .find(|k| k.kid == k1.kid())
                .cloned()
                .unwrap();
            assert_eq!(retired.state, "retired");
            let until = retired.verify_until.unwrap();
            assert_eq!(until, clock.now() + MAX_TTL + RETIRE_LEEWAY_SECONDS);
            let retired_rsa = ring.keys().info.iter().find(|k| k.kid == r1.kid()).cloned();
            assert_eq!(retired_rsa.unwrap().verify_until, Some(until));

            // Until their last token's expiry plus leeway, and not after.
            clock.set(until - 1);
            ring.maintain().await.unwrap();
            assert!(verifies(old.expose_secret(), &ring.keys().jwks));
            assert!(verifies(old_rsa.expose_secret(), &ring.keys().jwks));
            clock.set(until);
            ring.maintain().await.unwrap();
            for token in [&old, &old_rsa] {
                assert!(
                    !verifies(token.expose_secret(), &ring.keys().jwks),
                    "{}: removed",
                    t.name
                );
            }
            assert_eq!(ring.keys().jwks.len(), kinds);
        }
    }
}

#[tokio::test]
async fn an_rsa_key_added_to_a_signing_keyring_is_prepublished() {
    for t in stores::all().await {
        let clock = FakeClock::new(T0);
        // A keyring from before RS256 keys: one active ES256 key.
        let (key, der) = SigningKey::generate(Algorithm::Es256).unwrap();
        let (generation, rows) = t.store.load_keys().await.unwrap();
        assert!(rows.is_empty());
        let row = KeyRow {
            kid: key.kid().to_owned(),
            alg: "ES256".into(),
            state: KeyState::Active,
            private_key_sealed: kek().seal(&der, key.kid().as_bytes()).unwrap(),
            created_at: T0 - 86_400,
            activate_after: T0 - 86_400,
            retired_at: None,
            verify_until: None,
        };
        let change = KeyChange {
            insert: vec![row],
            ..KeyChange::default()
        };
        assert!(t.store.apply_key_change(generation, &change).await.unwrap());

        let ring = ring(&t.store, &clock, Algorithm::Es256).await;
        assert_eq!(ring.signer().unwrap().kid(), key.kid());
        // Verifiers may hold a JWKS without it: published, not yet signing.
        assert!(ring.signer_for(Algorithm::Rs256).is_none(), "{}", t.name);
        let rsa = ring
            .keys()
            .info
            .iter()
            .find(|k| k.alg == "RS256")
            .cloned()
            .unwrap();
        assert_eq!(rsa.state, "pending");
        assert_eq!(rsa.activate_after, T0 + PREPUBLISH_SECONDS);
        assert!(ring.keys().jwks.iter().any(|k| k.kid == rsa.kid));

        clock.advance(PREPUBLISH_SECONDS);
        ring.maintain().await.unwrap();
        assert_eq!(
            ring.signer_for(Algorithm::Rs256).unwrap().kid(),
            rsa.kid,
            "{}",
            t.name
        );
        assert_eq!(
            ring.signer().unwrap().kid(),
            key.kid(),
            "the ES256 key is untouched"
        );
    }
}

#[tokio::test]
async fn racing_rotations_leave_exactly_one_active_key() {
    for t in stores::all().await {
        let clock = FakeClock::new(T0);
        // Four replicas on one store.
        let mut replicas = Vec::new();
        for _ in 0..4 {
            replicas.push(ring(&t.store, &clock, Algorithm::Es256).await);
        }
        let (_, rows) = t.store.load_keys().await.unwrap();
        assert_eq!(
            rows.iter().filter(|k| k.state == KeyState::Active).count(),
            2,
            "{}: one first key of each kind",
            t.name
        );

        let rotations = replicas.iter().flat_map(|r| [r.rotate(), r.rotate()]);
        let outcomes = futures::future::join_all(rotations).await;
        let published = outcomes
            .iter()
            .filter(|o| matches!(o, Ok(RotateOutcome::Published { .. })))
            .count();
        assert_eq!(
            published, 1,
            "{}: exactly one rotation publishes: {outcomes:?}",
            t.name
        );
        let (_, rows) = t.store.load_keys().await.unwrap();
        assert_eq!(
            rows.iter().filter(|k| k.state == KeyState::Pending).count(),
            2,
            "one pending key of each kind"
        );

        clock.advance(PREPUBLISH_SECONDS);
        let results = futures::future::join_all(replicas.iter().map(|r| r.maintain())).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let (_, rows) = t.store.load_keys().await.unwrap();
        for alg in ["ES256", "RS256"] {
            let count = |state| {
                rows.iter()
                    .filter(|k| k.state == state && k.alg == alg)
                    .count()
            };
            assert_eq!(count(KeyState::Active), 1, "{}: {alg} {rows:?}", t.name);
            assert_eq!(count(KeyState::Retired), 1, "{alg}");
        }
        let active = rows
            .iter()
            .find(|k| k.state == KeyState::Active && k.alg == "ES256")
            .unwrap();
        for r in &replicas {
            assert_eq!(
                r.signer().unwrap().kid(),
                active.kid,
                "{}: every replica signs with the one active key: {rows:?} {:?}",
                t.name,
                r.keys()
            );
        }
    }
}
