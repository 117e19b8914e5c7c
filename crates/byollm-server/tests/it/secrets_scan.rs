//! No secret in plain text: after a scenario that makes every kind of secret, the
//! data directory's files (SQLite database, WAL, shared memory) and the captured
//! logs are scanned for each of them.
//!
//! SQLite only, whatever `BYOLLM_TEST_STORE` says: the scan reads the store's
//! files byte by byte, and a PostgreSQL database's files are the server's.
//! Sealed keys and hashed credentials are the same on both stores (one set of
//! queries), so this covers what PostgreSQL stores too.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use byollm_api::routes;
use byollm_api::types::{ApiKeyCreated, IdentityTokenResponse, RunCreated};
use byollm_core::identity::kek::Kek;
use byollm_core::identity::keys::Algorithm;
use byollm_core::service::bootstrap_team;

use crate::common::{Capture, Live, STS, mint_body};

/// Installs the capture as the process's subscriber, at TRACE. Only this test
/// installs one; other tests running meanwhile just add lines to the buffer.
fn capture_logs() -> Capture {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber)
        .expect("the only global subscriber in this binary");
    capture
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// Every file of the data directory except the KEK file, concatenated, with the
/// names read.
fn data_files(dir: &std::path::Path) -> (Vec<String>, Vec<u8>) {
    let mut names = Vec::new();
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "kek" || !entry.file_type().unwrap().is_file() {
            continue;
        }
        all.extend(std::fs::read(entry.path()).unwrap());
        names.push(name);
    }
    names.sort();
    (names, all)
}

/// Asserts that none of `secrets` is in `hay`.
#[track_caller]
fn assert_absent(what: &str, hay: &[u8], secrets: &[(String, Vec<u8>)]) {
    let found: Vec<&str> = secrets
        .iter()
        .filter(|(_, s)| find(hay, s))
        .map(|(label, _)| label.as_str())
        .collect();
    assert!(found.is_empty(), "{what} contains: {found:?}");
}

#[tokio::test]
async fn no_secret_in_the_data_dir_or_the_logs() {
    let logs = capture_logs();
    let live = Live::start_sqlite(Algorithm::Es256).await;
    let core = live.server.core.clone();
    let mut secrets: Vec<(String, String)> = Vec::new();

    let team = bootstrap_team(
        core.store(),
        core.clock().as_ref(),
        "Acme",
        "owner@example.com",
    )
    .await
    .unwrap();
    let owner = team.api_key.expose().to_owned();
    assert!(
        !format!("{team:?}").contains(&owner),
        "Bootstrapped's Debug shows the key"
    );
    secrets.push(("owner key".into(), owner.clone()));

    let (s, b) = live
        .put(
            routes::TEAM_LLM_SETTINGS,
            &owner,
            &crate::common::complete_settings(&json!({"worker_identity_tokens": true, "session_tags": true, "source_identity": true,
                    "subject_template": ["scoped_principal", "run_id"]})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, agent) = live
        .post(
            routes::AGENT_IDENTITIES,
            &owner,
            &json!({"name": "builder"}),
        )
        .await;
    assert_eq!(s, 201, "{agent}");
    let agent_uid = agent["uid"].as_str().unwrap().to_owned();

    // Keys: the owner's second key and the agent's.
    let mut agent_key = String::new();
    for body in [
        json!({"name": "laptop"}),
        json!({"name": "ci", "agent_uid": agent_uid}),
    ] {
        let (s, created) = live.post(routes::API_KEYS, &owner, &body).await;
        assert_eq!(s, 201, "{created}");
        let typed: ApiKeyCreated = serde_json::from_value(created).unwrap();
        let key = typed.key.expose().to_owned();
        assert!(
            !format!("{typed:?}").contains(&key),
            "ApiKeyCreated's Debug shows the key"
        );
        secrets.push((format!("API key {}", typed.id), key.clone()));
        agent_key = key;
    }

    // Runs and their workload tokens: one by the owner, one by the agent's key.
    let mut runs = Vec::new();
    for (by, body) in [
        (&owner, json!({"prompt": "hello"})),
        (&agent_key, json!({})),
    ] {
        let (s, created) = live.post(routes::RUNS, by, &body).await;
        assert_eq!(s, 201, "{created}");
        let typed: RunCreated = serde_json::from_value(created).unwrap();
        let token = typed.workload_token.expose().to_owned();
        assert!(
            !format!("{typed:?}").contains(&token),
            "RunCreated's Debug shows the token"
        );
        secrets.push((format!("workload token of {}", typed.run_id), token.clone()));
        runs.push((typed.run_id, token));
    }

    // Identity tokens: interactive and for each run.
    let mut minted = Vec::new();
    let (s, m) = live
        .post(routes::IDENTITY_TOKEN, &owner, &mint_body(STS, 900))
        .await;
    assert_eq!(s, 200, "{m}");
    minted.push(m);
    for (id, token) in &runs {
        let (s, m) = live
            .post(
                &routes::fill(routes::RUN_IDENTITY_TOKEN, id),
                token,
                &mint_body(STS, 900),
            )
            .await;
        assert_eq!(s, 200, "{m}");
        minted.push(m);
    }
    for m in minted {
        let typed: IdentityTokenResponse = serde_json::from_value(m).unwrap();
        let jwt = typed.token.expose().to_owned();
        assert!(
            !format!("{typed:?}").contains(&jwt),
            "IdentityTokenResponse's Debug shows the token"
        );
        let signature = jwt.rsplit('.').next().unwrap().to_owned();
        assert!(signature.len() > 40);
        secrets.push(("identity token".into(), jwt.clone()));
        secrets.push(("identity token signature".into(), signature));
    }

    // Refusals and odd requests that carry secrets too.
    let (s, _) = live
        .post(
            &routes::fill(routes::RUN_IDENTITY_TOKEN, &runs[1].0),
            &runs[0].1,
            &mint_body(STS, 900),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = live
        .post(
            routes::IDENTITY_TOKEN,
            &owner,
            &mint_body("not.allowed", 900),
        )
        .await;
    assert_eq!(s, 422);
    let r = live
        .http
        .get(live.url(&format!("{}?api_key={owner}", routes::ME)))
        .header("x-api-key", &owner)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = live
        .http
        .delete(live.url(routes::ME))
        .bearer_auth(&runs[0].1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let (s, _) = live
        .post(
            &routes::fill(routes::RUN_FINISH, &runs[0].0),
            &runs[0].1,
            &json!({}),
        )
        .await;
    assert_eq!(s, 200);

    // A rotation seals a second private key; maintenance runs as on a timer.
    core.keyring().rotate().await.unwrap();
    byollm_server::app::maintain(&core).await;

    // The private keys, opened with the KEK from the data directory, and the KEK.
    let kek_text = std::fs::read_to_string(live.dir.path().join("kek")).unwrap();
    let kek_text = kek_text.trim().to_owned();
    assert_eq!(
        kek_text.len(),
        64,
        "the default KEK file holds 32 bytes as hex"
    );
    let kek = Kek::load_or_create_file(&live.dir.path().join("kek")).unwrap();
    let (_, keys) = core.store().load_keys().await.unwrap();
    assert_eq!(
        keys.len(),
        4,
        "the active key and the pending one, of each kind (ES256, and RS256 for Azure)"
    );
    assert_eq!(keys.iter().filter(|k| k.alg == "RS256").count(), 2);
    let mut binary: Vec<(String, Vec<u8>)> = vec![
        ("KEK (hex)".into(), kek_text.clone().into_bytes()),
        ("KEK (bytes)".into(), hex_decode(&kek_text)),
    ];
    for k in &keys {
        let sealed = k.private_key_sealed.as_str();
        let body = sealed
            .strip_prefix("v1:")
            .expect("sealed keys are versioned");
        // PKCS#8 DER starts with a SEQUENCE (0x30 0x81/0x82 and a length)
        // holding its version (0x02 0x01 0x00, or 0x01 for RFC 5958's v2).
        // Sealed bytes start with a random nonce, which begins `MI` in base64
        // one time in 4096, so the whole header is compared, not the first
        // two characters.
        let looks_pkcs8 = |b: &[u8]| {
            b.len() > 7
                && b[0] == 0x30
                && matches!(b[1], 0x81 | 0x82)
                && matches!(
                    b.get(2 + usize::from(b[1] - 0x80)..5 + usize::from(b[1] - 0x80)),
                    Some([0x02, 0x01, 0x00 | 0x01])
                )
        };
        let bytes = STANDARD.decode(body).expect("sealed keys are base64");
        assert!(
            !looks_pkcs8(&bytes),
            "sealed key {} looks like plain PKCS#8",
            k.kid
        );
        let der = kek.open(sealed, k.kid.as_bytes()).unwrap().to_vec();
        assert!(looks_pkcs8(&der), "the check knows PKCS#8 ({})", k.kid);
        assert!(
            der.len() > 64 && der[0] == 0x30,
            "opened key {} is DER",
            k.kid
        );
        let raw = STANDARD.decode(body).unwrap();
        assert!(
            !find(&raw, &der[..32]),
            "sealed key {} contains its plaintext",
            k.kid
        );
        binary.push((format!("private key {} (DER)", k.kid), der.clone()));
        binary.push((
            format!("private key {} (base64)", k.kid),
            STANDARD.encode(&der).into_bytes(),
        ));
        binary.push((
            format!("private key {} (base64url)", k.kid),
            URL_SAFE_NO_PAD.encode(&der).into_bytes(),
        ));
    }
    let texts: Vec<(String, Vec<u8>)> = secrets
        .iter()
        .map(|(label, s)| (label.clone(), s.clone().into_bytes()))
        .collect();
    let everything: Vec<(String, Vec<u8>)> = texts.iter().chain(binary.iter()).cloned().collect();

    // While the server runs, most rows sit in the WAL: scan then, and after.
    let (names, files) = data_files(live.dir.path());
    assert!(names.iter().any(|n| n == "byollm.db"), "{names:?}");
    assert!(
        find(&files, team.team_uid.as_bytes()),
        "the scan does not see the stored rows"
    );
    assert!(find(&files, agent_uid.as_bytes()));
    assert_absent(
        &format!("data dir {names:?} (running)"),
        &files,
        &everything,
    );

    let Live { dir, server, .. } = live;
    server.shutdown().await;
    drop(core);
    let (names, files) = data_files(dir.path());
    assert!(find(&files, team.team_uid.as_bytes()));
    assert_absent(
        &format!("data dir {names:?} (stopped)"),
        &files,
        &everything,
    );

    // The logs: they did record the requests (so the scan could find something).
    let text = logs.text();
    assert!(
        text.contains(routes::IDENTITY_TOKEN),
        "no request was logged:\n{text}"
    );
    assert!(text.contains(&runs[0].0), "run paths are logged");
    assert_absent("the captured logs", text.as_bytes(), &everything);

    // And a token revealed nothing stored: its jti is audited, the token is not.
    let audit_jtis: Vec<Value> = secrets
        .iter()
        .filter(|(l, _)| l == "identity token")
        .map(|(_, t)| crate::common::claims_of(t)["jti"].clone())
        .collect();
    assert_eq!(audit_jtis.len(), 3);
    for jti in audit_jtis {
        assert!(
            find(&files, jti.as_str().unwrap().as_bytes()),
            "jti {jti} is audited"
        );
    }
}
