//! The console over plain HTTP: the session cookie's attributes, the security
//! headers, CSRF and `Origin` on every POST, the session's end (12 hours,
//! sign-out, revoked key), the 403 and 404 pages, and validation errors in the
//! API's words.

use std::sync::Arc;

use axum::http::Method;
use reqwest::header::{LOCATION, SET_COOKIE};
use serde_json::json;

use byollm_api::clock::{FakeClock, SystemClock};
use byollm_api::routes;
use byollm_core::ids::hash_secret;
use byollm_core::service::CONSOLE_SESSION_SECONDS;

use super::{Console, csrf_of, session_cookie};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Sign-in opens a session with a strict, HttpOnly cookie that is not the key;
/// every console response carries the security headers; without a session a
/// page sends the browser to sign in.
#[tokio::test]
async fn sign_in_sets_a_strict_cookie_and_pages_carry_security_headers() {
    let c = Console::start(Arc::new(SystemClock), false).await;
    let (status, page, headers) = c.get("/console/sign-in", None).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"<label for="api_key">API key</label>"#),
        "{page}"
    );
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(!page.contains("<script>"), "no inline script: {page}");

    let (status, _, headers) = c.get("/console", None).await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/console/sign-in");
    assert_eq!(headers["x-frame-options"], "DENY");

    let key = &c.alpha.owner.key;
    let resp = c.sign_in_raw(key, Some(&c.base)).await;
    assert_eq!(resp.status().as_u16(), 303);
    let set = resp.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    assert!(
        set.contains(&format!("Max-Age={CONSOLE_SESSION_SECONDS}")),
        "{set}"
    );
    assert!(!set.contains("Secure"), "an http issuer: {set}");
    assert!(
        !set.contains(key.as_str()),
        "the key is not the cookie: {set}"
    );
    let cookie = session_cookie(&resp).unwrap();

    // Stored hashed: the cookie's hash finds the row, the cookie itself does not.
    let store = c.h.core.store();
    let now = c.h.core.clock().now();
    let row = store
        .find_console_session(&hash_secret(&cookie), now)
        .await
        .unwrap()
        .expect("the session row, by the cookie's hash");
    assert_eq!(row.key_hash, hash_secret(key));
    assert!(
        store
            .find_console_session(&cookie, now)
            .await
            .unwrap()
            .is_none()
    );

    let (status, page, headers) = c.get("/console", Some(&cookie)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&c.alpha.uid), "{page}");
    assert!(!page.contains(key.as_str()), "the key is never on a page");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
}

/// Under an https issuer the cookie is `Secure`.
#[tokio::test]
async fn an_https_issuer_makes_the_cookie_secure() {
    let c = Console::start(Arc::new(SystemClock), true).await;
    let resp = c.sign_in_raw(&c.alpha.owner.key, Some(&c.base)).await;
    assert_eq!(resp.status().as_u16(), 303);
    let set = resp.headers()[SET_COOKIE].to_str().unwrap();
    assert!(set.contains("; Secure"), "{set}");
}

/// A POST without the session's CSRF token, with another session's, without
/// an `Origin` or from another origin, is refused before anything changes.
#[tokio::test]
async fn posts_need_the_csrf_token_and_this_origin() {
    let c = Console::start(Arc::new(SystemClock), false).await;
    let cookie = c.sign_in(&c.alpha.owner.key).await;
    let other = c.sign_in(&c.alpha.admin.key).await;
    let csrf = c.csrf(&cookie).await;
    let other_csrf = c.csrf(&other).await;
    assert_ne!(csrf, other_csrf, "a token per session");
    let keys_before = c.h.get(routes::API_KEYS, Some(&c.alpha.owner.key)).await;
    let count = |v: &serde_json::Value| v["api_keys"].as_array().unwrap().len();
    let before = count(&keys_before.body);

    let base = c.base.clone();
    for (origin, form, why) in [
        (Some(base.as_str()), "name=a".to_owned(), "no token"),
        (
            Some(base.as_str()),
            format!("name=a&csrf={other_csrf}"),
            "another session's token",
        ),
        (
            Some(base.as_str()),
            "name=a&csrf=".to_owned(),
            "an empty token",
        ),
        (
            Some(base.as_str()),
            format!("name=a&csrf={csrf}&csrf={csrf}"),
            "the token twice",
        ),
        (None, format!("name=a&csrf={csrf}"), "no Origin"),
        (
            Some("http://evil.test"),
            format!("name=a&csrf={csrf}"),
            "another origin",
        ),
        (
            Some("null"),
            format!("name=a&csrf={csrf}"),
            "an opaque origin",
        ),
    ] {
        let (status, page, headers) = c.post("/console/keys", &cookie, origin, &form).await;
        assert_eq!(status, 403, "{why}: {page}");
        assert_eq!(headers["x-frame-options"], "DENY", "{why}");
    }
    // Fetch Metadata: another site's request is refused whatever its Origin
    // says; `Origin: null` (what our no-referrer policy makes browsers send)
    // passes only as a same-origin request.
    let token = format!("name=a&csrf={csrf}");
    for (origin, site, why) in [
        (base.as_str(), "cross-site", "a cross-site request"),
        (base.as_str(), "same-site", "a sibling site"),
        ("null", "cross-site", "a null origin from another site"),
        ("null", "none", "a null origin typed by the user"),
    ] {
        let (status, page, _) = c
            .post_with(
                "/console/keys",
                &cookie,
                Some(origin),
                &[("sec-fetch-site", site)],
                &token,
            )
            .await;
        assert_eq!(status, 403, "{why}: {page}");
    }
    let after = c.h.get(routes::API_KEYS, Some(&c.alpha.owner.key)).await;
    assert_eq!(count(&after.body), before, "nothing was created");
    let (status, page, _) = c
        .post_with(
            "/console/keys",
            &cookie,
            Some("null"),
            &[("sec-fetch-site", "same-origin")],
            &format!("name=from-the-page&csrf={csrf}"),
        )
        .await;
    assert_eq!(status, 201, "a same-origin form under no-referrer: {page}");
    let before = before + 1;

    // Sign-in and sign-out check the Origin too.
    let resp = c
        .sign_in_raw(&c.alpha.owner.key, Some("http://evil.test"))
        .await;
    assert_eq!(resp.status().as_u16(), 403);
    assert!(session_cookie(&resp).is_none());
    let resp = c.sign_in_raw(&c.alpha.owner.key, None).await;
    assert_eq!(resp.status().as_u16(), 403);
    let (status, _, _) = c
        .post("/console/sign-out", &cookie, Some(&c.base), "")
        .await;
    assert_eq!(status, 403, "sign-out without the token");

    // With both, the form does what it says.
    let (status, page, _) = c
        .post(
            "/console/keys",
            &cookie,
            Some(&c.base),
            &format!("name=laptop&csrf={csrf}"),
        )
        .await;
    assert_eq!(status, 201, "{page}");
    assert!(
        page.contains("byollm_key_"),
        "the new key, shown once: {page}"
    );
    let after = c.h.get(routes::API_KEYS, Some(&c.alpha.owner.key)).await;
    assert_eq!(count(&after.body), before + 1);
}

/// A session ends 12 hours after sign-in, at sign-out, and when its key is
/// revoked; a dead cookie is sent to sign in and cleared.
#[tokio::test]
async fn sessions_end_at_twelve_hours_at_sign_out_and_with_their_key() {
    let clock = Arc::new(FakeClock::new(1_900_000_000));
    let c = Console::start(clock.clone(), false).await;

    let cookie = c.sign_in(&c.alpha.owner.key).await;
    clock.advance(CONSOLE_SESSION_SECONDS - 1);
    assert_eq!(c.get("/console", Some(&cookie)).await.0, 200);
    clock.advance(1);
    let (status, _, headers) = c.get("/console", Some(&cookie)).await;
    assert_eq!(status, 303, "12 hours after sign-in");
    assert_eq!(headers[LOCATION], "/console/sign-in");
    assert!(
        headers[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"),
        "the dead cookie is cleared"
    );

    let cookie = c.sign_in(&c.alpha.owner.key).await;
    let csrf = c.csrf(&cookie).await;
    let (status, _, headers) = c
        .post(
            "/console/sign-out",
            &cookie,
            Some(&c.base),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/console/sign-in");
    assert!(headers[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(c.get("/console", Some(&cookie)).await.0, 303, "signed out");

    // Revoking the key (through the API) ends the session opened with it.
    let admin = &c.alpha.admin;
    let cookie = c.sign_in(&admin.key).await;
    assert_eq!(c.get("/console", Some(&cookie)).await.0, 200);
    let keys =
        c.h.get(routes::API_KEYS, Some(&admin.key))
            .await
            .expect(200);
    let id = keys.body["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| admin.key.starts_with(k["prefix"].as_str().unwrap()))
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .unwrap();
    c.h.send(
        Method::DELETE,
        &routes::fill(routes::API_KEY, &id),
        Some(&admin.key),
        None,
    )
    .await
    .expect(204);
    assert_eq!(c.get("/console", Some(&cookie)).await.0, 303, "key revoked");
    let now = c.h.core.clock().now();
    assert!(
        c.h.core
            .store()
            .find_console_session(&hash_secret(&cookie), now)
            .await
            .unwrap()
            .is_none(),
        "and its session is gone"
    );
}

/// Who may sign in, and what a member who is not an admin gets: a 403 page for
/// AI settings (GET and POST) and the agent forms, no AI settings link; another
/// team's agent is a 404 page.
#[tokio::test]
async fn members_get_403_pages_and_other_teams_objects_are_404() {
    let c = Console::start(Arc::new(SystemClock), false).await;
    assert_eq!(
        c.sign_in_raw("byollm_key_nope", Some(&c.base))
            .await
            .status()
            .as_u16(),
        401
    );
    let resp = c.sign_in_raw(&c.alpha.agent_key, Some(&c.base)).await;
    assert_eq!(
        resp.status().as_u16(),
        403,
        "an agent's key does not sign in"
    );
    assert!(session_cookie(&resp).is_none());
    let resp = c
        .sign_in_raw(&c.alpha.member_run_token, Some(&c.base))
        .await;
    assert_eq!(resp.status().as_u16(), 403, "nor does a run token");

    let member = c.sign_in(&c.alpha.member.key).await;
    let (status, page, _) = c.get("/console", Some(&member)).await;
    assert_eq!(status, 200);
    assert!(
        !page.contains("/console/ai-settings"),
        "no link for members: {page}"
    );
    let (status, page, _) = c.get("/console/ai-settings", Some(&member)).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("Not allowed"), "{page}");
    let csrf = csrf_of(&page);
    let (status, _, _) = c
        .post(
            "/console/ai-settings",
            &member,
            Some(&c.base),
            &format!("csrf={csrf}&aws_bedrock_enabled=on"),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = c
        .post(
            "/console/agents",
            &member,
            Some(&c.base),
            &format!("csrf={csrf}&name=x"),
        )
        .await;
    assert_eq!(status, 403);
    let settings =
        c.h.get(routes::TEAM_LLM_SETTINGS, Some(&c.alpha.owner.key))
            .await;
    assert_eq!(settings.body["hosts"]["aws_bedrock"]["enabled"], false);

    // Another team's agent, by its real uid: 404, like the API.
    let beta = c.h.team("beta").await;
    let owner = c.sign_in(&c.alpha.owner.key).await;
    let (status, page, _) = c
        .get(&format!("/console/agents/{}", beta.agent_uid), Some(&owner))
        .await;
    assert_eq!(status, 404, "{page}");
    let (status, _, _) = c
        .get(
            &format!("/console/agents/{}", c.alpha.agent_uid),
            Some(&owner),
        )
        .await;
    assert_eq!(status, 200);
}

/// A refused setting is shown next to its field with the API's words, and
/// nothing is saved.
#[tokio::test]
async fn validation_errors_use_the_apis_words() {
    let c = Console::start(Arc::new(SystemClock), false).await;
    let owner = &c.alpha.owner.key;
    let api =
        c.h.json(
            Method::PATCH,
            routes::TEAM_LLM_SETTINGS,
            Some(owner),
            &json!({"hosts": {"aws_bedrock": {"enabled": true, "role_arn": "not-a-role"}}}),
        )
        .await
        .expect(400);
    let message = api.str("/error/message");

    let cookie = c.sign_in(owner).await;
    let (status, page, _) = c.get("/console/ai-settings", Some(&cookie)).await;
    assert_eq!(status, 200);
    let csrf = csrf_of(&page);
    let version = page
        .split(r#"name="version" value=""#)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let (status, page, _) = c
        .post(
            "/console/ai-settings",
            &cookie,
            Some(&c.base),
            &format!(
                "csrf={csrf}&version={version}&aws_bedrock_enabled=on&enforcement=enforce\
                 &role_arn=not-a-role&region=us-east-1&direct_api_enabled=on\
                 &token_audiences=sts.amazonaws.com"
            ),
        )
        .await;
    assert_eq!(status, 400, "{page}");
    let shown = format!(
        r#"<p class="field-error" id="hosts-aws_bedrock-role_arn-error" role="alert">{}</p>"#,
        esc(&message)
    );
    assert!(page.contains(&shown), "{shown} not in {page}");
    assert!(
        page.contains(r#"value="not-a-role""#),
        "the sent value is kept"
    );
    let settings = c.h.get(routes::TEAM_LLM_SETTINGS, Some(owner)).await;
    assert_eq!(settings.body["hosts"]["aws_bedrock"]["enabled"], false);
}

/// Members (admins): add one (the invitation code shown once redeems for
/// their first key), change their role, remove them; a member who is not an
/// admin gets the 403 page; the owner rules are the API's.
#[tokio::test]
async fn admins_manage_members_through_the_apis_rules() {
    let c = Console::start(Arc::new(SystemClock), false).await;
    let member = c.sign_in(&c.alpha.member.key).await;
    assert_eq!(c.get("/console/members", Some(&member)).await.0, 403);

    let admin = c.sign_in(&c.alpha.admin.key).await;
    let (status, page, _) = c.get("/console/members", Some(&admin)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("member@alpha.test"), "{page}");
    let csrf = csrf_of(&page);
    let (status, page, _) = c
        .post(
            "/console/members",
            &admin,
            Some(&c.base),
            &format!("csrf={csrf}&email=new%40alpha.test&role=member"),
        )
        .await;
    assert_eq!(status, 201, "{page}");
    let code = page
        .split(r#"id="invitation-code">"#)
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap()
        .to_owned();
    assert!(code.starts_with("byollm_inv_"), "{code}");
    let redeemed =
        c.h.post(routes::INVITATIONS_REDEEM, None, &json!({"code": code}))
            .await
            .expect(201);
    let new_key = redeemed.str("/api_key/key");
    let me = c.h.get(routes::ME, Some(&new_key)).await.expect(200);
    let uid = me.str("/actor/uid");
    assert_eq!(me.str("/role"), "member");

    // A bad email: the API's words next to the field.
    let (status, page, _) = c
        .post(
            "/console/members",
            &admin,
            Some(&c.base),
            &format!("csrf={csrf}&email=nope&role=member"),
        )
        .await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains(r#"id="email-error""#), "{page}");

    let (status, _, _) = c
        .post(
            &format!("/console/members/{uid}/role"),
            &admin,
            Some(&c.base),
            &format!("csrf={csrf}&role=admin"),
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(
        c.h.get(routes::ME, Some(&new_key)).await.str("/role"),
        "admin"
    );
    // Only owners make owners (the API's rule, the API's 403).
    let (status, _, _) = c
        .post(
            &format!("/console/members/{uid}/role"),
            &admin,
            Some(&c.base),
            &format!("csrf={csrf}&role=owner"),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = c
        .post(
            &format!("/console/members/{uid}/remove"),
            &admin,
            Some(&c.base),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(status, 303);
    c.h.get(routes::ME, Some(&new_key)).await.expect(401);
    // Another team's member is a 404 page.
    let beta = c.h.team("beta").await;
    let (status, _, _) = c
        .post(
            &format!("/console/members/{}/remove", beta.member.uid),
            &admin,
            Some(&c.base),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(status, 404);
}

/// AWS setup (admins): the generators' documents for this issuer and team,
/// each downloadable; a bad account id is shown next to its field; members get
/// the 403 page.
#[tokio::test]
async fn aws_setup_generates_the_policies_and_scripts() {
    let c = Console::start(Arc::new(SystemClock), true).await;
    let member = c.sign_in(&c.alpha.member.key).await;
    assert_eq!(c.get("/console/aws-setup", Some(&member)).await.0, 403);

    let owner = c.sign_in(&c.alpha.owner.key).await;
    let (status, page, _) = c.get("/console/aws-setup", Some(&owner)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(r#"<label for="account_id">AWS account id</label>"#));

    let query = "account_id=123456789012&role_name=byollm-bedrock&region=us-east-1&scope=team";
    let (status, page, _) = c
        .get(&format!("/console/aws-setup?{query}"), Some(&owner))
        .await;
    assert_eq!(status, 200, "{page}");
    for doc in [
        "trust-doc",
        "permissions-doc",
        "bash-doc",
        "terraform-doc",
        "cloudformation-doc",
    ] {
        assert!(page.contains(&format!(r#"id="{doc}""#)), "{doc} missing");
    }
    assert!(page.contains("sts:AssumeRoleWithWebIdentity"), "{page}");
    assert!(
        page.contains(&format!("scoped_principal:{}/*", c.alpha.uid)),
        "the team's subjects: {page}"
    );

    let resp = c
        .http
        .get(c.url(&format!("/console/aws-setup/file?{query}&format=bash")))
        .header("cookie", format!("byollm_console={owner}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"byollm-setup.sh\""
    );
    let script = resp.text().await.unwrap();
    assert!(script.starts_with("#!"), "{script}");
    assert!(
        page.contains(&esc(&script)),
        "the download is the page's script"
    );

    let (status, page, _) = c
        .get(
            "/console/aws-setup?account_id=12&role_name=r&region=us-east-1&scope=team",
            Some(&owner),
        )
        .await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains(r#"id="account_id-error" role="alert">invalid AWS account id"#),
        "{page}"
    );
    let (status, page, _) = c
        .get(
            &format!("/console/aws-setup?account_id=123456789012&role_name=r&region=us-east-1&scope=chosen&agents={}", c.alpha.agent_uid),
            Some(&owner),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&format!(
            "scoped_principal:{}/service_account:{}",
            c.alpha.uid, c.alpha.agent_uid
        )),
        "{page}"
    );
}
