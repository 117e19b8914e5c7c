//! Lists that scale (issue 11, item 9, members and API keys): `limit` (default
//! 100, 1 to 1,000) and an opaque `cursor`, in a stable order; a walk lists
//! every item once; bad values are a 400 naming the parameter.

use std::collections::HashSet;

use serde_json::{Value, json};

use byollm_api::routes;

use crate::common::{Harness, Resp};

/// Walks a list `limit` at a time; returns every item's `id_field` and the
/// number of pages.
async fn walk(
    h: &Harness,
    path: &str,
    key: &str,
    items: &str,
    id_field: &str,
    limit: u32,
) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?limit={limit}&cursor={c}"),
            None => format!("{path}?limit={limit}"),
        };
        let page = h.get(&url, Some(key)).await.expect(200);
        pages += 1;
        let got = page.body[items].as_array().unwrap();
        assert!(got.len() <= limit as usize);
        ids.extend(got.iter().map(|m| m[id_field].as_str().unwrap().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => {
                assert!(page.body["next_cursor"].is_null(), "{}", page.body);
                break;
            }
        }
        assert!(pages < 100, "runaway walk");
    }
    (ids, pages)
}

fn field(r: &Resp) -> &str {
    r.field()
        .unwrap_or_else(|| panic!("no field in {}", r.body))
}

#[tokio::test]
async fn members_and_keys_page_with_a_cursor() {
    let h = Harness::new().await;
    let t = h.team("alpha").await;
    for i in 0..6 {
        h.post(
            routes::TEAM_MEMBERS,
            Some(&t.admin.key),
            &json!({"email": format!("m{i}@alpha.test"), "role": "member"}),
        )
        .await
        .expect(201);
        h.post(
            routes::API_KEYS,
            Some(&t.member.key),
            &json!({"name": format!("k{i}")}),
        )
        .await
        .expect(201);
    }
    // Members: owner, admin, member and six more; every one once, in order.
    let all = h
        .get(routes::TEAM_MEMBERS, Some(&t.admin.key))
        .await
        .expect(200);
    assert!(all.body["next_cursor"].is_null(), "one default page");
    let expected: Vec<String> = all.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["uid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(expected.len(), 9);
    let (ids, pages) = walk(&h, routes::TEAM_MEMBERS, &t.admin.key, "members", "uid", 2).await;
    assert_eq!(ids, expected);
    assert_eq!(pages, 5);

    // Keys: the member pages through their own only; the admin through all.
    let (mine, _) = walk(&h, routes::API_KEYS, &t.member.key, "api_keys", "id", 4).await;
    assert_eq!(mine.len(), 7, "the fixture's key and six more");
    assert_eq!(mine.iter().collect::<HashSet<_>>().len(), 7);
    let (every, _) = walk(&h, routes::API_KEYS, &t.admin.key, "api_keys", "id", 3).await;
    assert!(every.len() > mine.len());
    assert!(mine.iter().all(|k| every.contains(k)));
}

#[tokio::test]
async fn bad_paging_values_are_a_400_naming_them() {
    let h = Harness::new().await;
    let t = h.team("alpha").await;
    for path in [routes::TEAM_MEMBERS, routes::API_KEYS] {
        for (query, name) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=many", "limit"),
            ("cursor=nope", "cursor"),
            ("sort=email", "sort"),
        ] {
            let r = h
                .get(&format!("{path}?{query}"), Some(&t.admin.key))
                .await
                .expect(400);
            assert_eq!(field(&r), name, "{path}?{query}");
        }
        let r = h
            .get(&format!("{path}?limit=1000"), Some(&t.admin.key))
            .await
            .expect(200);
        assert!(r.body["next_cursor"] == Value::Null);
    }
}
