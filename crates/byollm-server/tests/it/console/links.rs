//! One-time console sign-in links (`byollm admin login-link`): stored hashed,
//! audited, good once and for 10 minutes (a used, expired or unknown link gets
//! a page saying so), and the session they open behaves like a key session
//! (12 hours, sign-out, removing the member ends it). Revoking a key does not
//! end it: it was opened with none.

use std::sync::Arc;

use axum::http::Method;
use reqwest::header::{LOCATION, ORIGIN};

use byollm_api::clock::FakeClock;
use byollm_api::routes;
use byollm_core::ids::hash_secret;
use byollm_core::service::{CONSOLE_SESSION_SECONDS, SIGN_IN_LINK_SECONDS, create_sign_in_link};
use secrecy::ExposeSecret as _;

use super::{Console, csrf_of, session_cookie};

impl Console {
    /// Mints a link for `member` of team alpha; its path.
    async fn link(&self, member: &str) -> String {
        let link = create_sign_in_link(
            self.h.core.store(),
            self.h.core.clock().as_ref(),
            &self.alpha.uid,
            member,
        )
        .await
        .unwrap();
        format!("/console/sign-in/link/{}", link.token.expose_secret())
    }

    /// POSTs a link's button (no cookie, no form).
    async fn spend(&self, path: &str, origin: Option<&str>) -> reqwest::Response {
        let mut req = self.http.post(self.url(path));
        if let Some(o) = origin {
            req = req.header(ORIGIN, o);
        }
        req.send().await.unwrap()
    }
}

#[tokio::test]
async fn a_sign_in_link_works_once_for_ten_minutes_and_is_stored_hashed() {
    let clock = Arc::new(FakeClock::new(1_900_000_000));
    let c = Console::start(clock.clone(), false).await;
    let member = &c.alpha.member;
    let path = c.link(&member.uid).await;
    let token = path.rsplit('/').next().unwrap().to_owned();
    assert!(token.starts_with("bsl_"), "{token}");
    let row =
        c.h.core
            .store()
            .find_sign_in_link(&hash_secret(&token))
            .await
            .unwrap()
            .expect("stored by its hash");
    assert_eq!(row.member_uid, member.uid);
    assert_eq!(row.expires_at - row.created_at, SIGN_IN_LINK_SECONDS);
    assert!(
        c.h.core
            .store()
            .find_sign_in_link(&token)
            .await
            .unwrap()
            .is_none()
    );

    // Looking at the link spends nothing.
    for _ in 0..2 {
        let (status, page, _) = c.get(&path, None).await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("Sign in with this link"), "{page}");
        assert!(page.contains(&format!(r#"action="{path}""#)), "{page}");
    }
    assert_eq!(
        c.spend(&path, None).await.status().as_u16(),
        403,
        "no Origin"
    );
    let resp = c.spend(&path, Some(&c.base)).await;
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(resp.headers()[LOCATION], "/console");
    let cookie = session_cookie(&resp).expect("a session");
    let (status, page, _) = c.get("/console", Some(&cookie)).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&member.uid),
        "signed in as the member: {page}"
    );
    assert_eq!(c.get("/console/ai-settings", Some(&cookie)).await.0, 403);

    // A second use, and a second look, get a clear page.
    let resp = c.spend(&path, Some(&c.base)).await;
    assert_eq!(resp.status().as_u16(), 410);
    assert!(resp.text().await.unwrap().contains("already used"));
    let (status, page, _) = c.get(&path, None).await;
    assert_eq!(status, 410);
    assert!(page.contains("already used") && page.contains("byollm admin login-link"));

    // Ten minutes later a link is expired, used or not.
    let late = c.link(&member.uid).await;
    clock.advance(SIGN_IN_LINK_SECONDS);
    let (status, page, _) = c.get(&late, None).await;
    assert_eq!(status, 410);
    assert!(page.contains("expired"), "{page}");
    assert_eq!(c.spend(&late, Some(&c.base)).await.status().as_u16(), 410);
    let (status, page, _) = c.get("/console/sign-in/link/bsl_nope", None).await;
    assert_eq!(status, 404);
    assert!(page.contains("not valid"), "{page}");

    // Audited: the minting (by the operator) and the sign-in (via the link).
    let audit =
        c.h.get(
            &format!("{}?action=console.sign_in_link", routes::AUDIT),
            Some(&c.alpha.owner.key),
        )
        .await
        .expect(200);
    let events = audit.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["target"], format!("member:{}", member.uid));
    assert!(
        !audit.body.to_string().contains(&token),
        "the token is not audited"
    );
    let audit =
        c.h.get(
            &format!("{}?action=console.sign_in", routes::AUDIT),
            Some(&c.alpha.owner.key),
        )
        .await
        .expect(200);
    assert!(
        audit.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| { e["actor_uid"] == member.uid.as_str() && e["changes"]["via"] == "link" }),
        "{}",
        audit.body
    );
}

#[tokio::test]
async fn a_link_session_ends_at_twelve_hours_at_sign_out_and_with_its_member() {
    let clock = Arc::new(FakeClock::new(1_900_000_000));
    let c = Console::start(clock.clone(), false).await;
    let sign_in = |path: String| {
        let c = &c;
        async move {
            let resp = c.spend(&path, Some(&c.base)).await;
            assert_eq!(resp.status().as_u16(), 303);
            session_cookie(&resp).unwrap()
        }
    };

    // An admin's link session is an admin's session; 12 hours end it.
    let cookie = sign_in(c.link(&c.alpha.admin.uid).await).await;
    assert_eq!(c.get("/console/ai-settings", Some(&cookie)).await.0, 200);
    clock.advance(CONSOLE_SESSION_SECONDS);
    assert_eq!(c.get("/console", Some(&cookie)).await.0, 303, "12 hours");

    // Sign-out ends it.
    let cookie = sign_in(c.link(&c.alpha.admin.uid).await).await;
    let (_, page, _) = c.get("/console", Some(&cookie)).await;
    let csrf = csrf_of(&page);
    let (status, _, _) = c
        .post(
            "/console/sign-out",
            &cookie,
            Some(&c.base),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(c.get("/console", Some(&cookie)).await.0, 303, "signed out");

    // Revoking the member's key leaves it (it has no key); removing the member
    // ends it, and a link minted before cannot sign them in any more.
    let member = &c.alpha.member;
    let spare = c.link(&member.uid).await;
    let cookie = sign_in(c.link(&member.uid).await).await;
    let keys =
        c.h.get(routes::API_KEYS, Some(&member.key))
            .await
            .expect(200);
    for k in keys.body["api_keys"].as_array().unwrap() {
        c.h.send(
            Method::DELETE,
            &routes::fill(routes::API_KEY, k["id"].as_str().unwrap()),
            Some(&member.key),
            None,
        )
        .await
        .expect(204);
    }
    assert_eq!(
        c.get("/console", Some(&cookie)).await.0,
        200,
        "no key to revoke"
    );
    c.h.send(
        Method::DELETE,
        &routes::fill(routes::TEAM_MEMBER, &member.uid),
        Some(&c.alpha.owner.key),
        None,
    )
    .await
    .expect(204);
    assert_eq!(
        c.get("/console", Some(&cookie)).await.0,
        303,
        "member removed"
    );
    let (status, page, _) = c.get(&spare, None).await;
    assert_eq!(status, 410);
    assert!(page.contains("no longer in the team"), "{page}");
}
