//! Onboarding on both engines (issue 11): the last-owner rule holds under
//! concurrent demotions and removals, an invitation code redeems once (also
//! under concurrent redemptions) and never after it expires, an expiring key
//! dies in the credential cache at its expiry, last use is written coarsely,
//! pages walk members and keys once each, and `recover_owner` issues an owner
//! key only to an owner.

use byollm_api::clock::FakeClock;
use byollm_api::types::{Actor, ActorType, Role};
use byollm_core::auth::{AuthCache, AuthFailure};
use byollm_core::ids;
use byollm_core::service::{bootstrap_team, recover_owner};
use byollm_core::store::{
    ApiKeyRow, InvitationRow, KeyAfter, LAST_OWNER, LAST_USE_GRANULARITY, MemberAfter, MemberRow,
    Store, StoreError,
};
use secrecy::ExposeSecret as _;

use crate::stores;

const NOW: i64 = 1_800_000_000;

fn yes() -> bool {
    true
}

async fn add(s: &Store, team: &str, email: &str, role: Role, at: i64) -> MemberRow {
    let m = MemberRow {
        uid: ids::new_uid(),
        team_uid: team.to_owned(),
        email: email.to_owned(),
        role,
        aws_bedrock_opt_in: false,
    };
    s.insert_member(&m, at, None).await.unwrap();
    m
}

fn key_row(team: &str, owner: &str, at: i64, expires_at: Option<i64>) -> (ApiKeyRow, String) {
    let key = ids::new_api_key().expose_secret().to_owned();
    (
        ApiKeyRow {
            id: ids::new_id("key"),
            team_uid: team.to_owned(),
            owner_type: ActorType::User,
            owner_uid: owner.to_owned(),
            name: "k".into(),
            key_hash: ids::hash_secret(&key),
            prefix: ids::visible_prefix(&key),
            created_at: at,
            expires_at,
            last_used_at: None,
        },
        key,
    )
}

async fn owners(s: &Store, team: &str) -> usize {
    s.list_members(team)
        .await
        .unwrap()
        .iter()
        .filter(|m| m.role == Role::Owner)
        .count()
}

fn is_last_owner(r: &Result<impl std::fmt::Debug, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict(m)) if m == LAST_OWNER)
}

#[tokio::test]
async fn two_concurrent_demotions_or_removals_of_the_last_two_owners_cannot_both_win() {
    for t in stores::all().await {
        let s = &t.store;
        let clock = FakeClock::new(NOW);
        for trial in 0..6 {
            let b = bootstrap_team(s, &clock, "T", &format!("o{trial}@a.example"))
                .await
                .unwrap();
            let second = add(s, &b.team_uid, "second@a.example", Role::Owner, NOW).await;
            let team = b.team_uid.as_str();
            // Trials alternate: both demoted, both removed, one of each.
            let (x, y) = match trial % 3 {
                0 => {
                    let (x, y) = tokio::join!(
                        s.set_member_role(team, &b.owner_uid, Role::Owner, Role::Admin, None),
                        s.set_member_role(team, &second.uid, Role::Owner, Role::Member, None),
                    );
                    (x.map(|_| ()), y.map(|_| ()))
                }
                1 => {
                    let (x, y) = tokio::join!(
                        s.delete_member(team, &b.owner_uid, Role::Owner, NOW, None),
                        s.delete_member(team, &second.uid, Role::Owner, NOW, None),
                    );
                    (x.map(|_| ()), y.map(|_| ()))
                }
                _ => {
                    let (x, y) = tokio::join!(
                        s.set_member_role(team, &b.owner_uid, Role::Owner, Role::Member, None),
                        s.delete_member(team, &second.uid, Role::Owner, NOW, None),
                    );
                    (x.map(|_| ()), y.map(|_| ()))
                }
            };
            let refused = [&x, &y].iter().filter(|r| is_last_owner(r)).count();
            assert_eq!(refused, 1, "{} trial {trial}: {x:?} {y:?}", t.name);
            assert!(x.is_ok() || y.is_ok(), "{} trial {trial}", t.name);
            assert_eq!(owners(s, team).await, 1, "{} trial {trial}", t.name);
        }
    }
}

#[tokio::test]
async fn a_change_judged_on_a_stale_role_is_refused() {
    for t in stores::all().await {
        let s = &t.store;
        let clock = FakeClock::new(NOW);
        let b = bootstrap_team(s, &clock, "T", "o@a.example").await.unwrap();
        let m = add(s, &b.team_uid, "m@a.example", Role::Member, NOW).await;
        // Judged as a member, but an owner meanwhile.
        assert!(
            s.set_member_role(&b.team_uid, &m.uid, Role::Member, Role::Owner, None)
                .await
                .unwrap()
        );
        assert!(matches!(
            s.delete_member(&b.team_uid, &m.uid, Role::Member, NOW, None)
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert!(
            !s.set_member_role(&b.team_uid, "nobody", Role::Member, Role::Admin, None)
                .await
                .unwrap(),
            "{}",
            t.name
        );
    }
}

fn invitation(team: &str, member: &str, expires_at: i64) -> (InvitationRow, String) {
    let code = ids::new_invitation_code().expose_secret().to_owned();
    (
        InvitationRow {
            member_uid: member.to_owned(),
            team_uid: team.to_owned(),
            code_hash: ids::hash_secret(&code),
            expires_at,
            created_at: NOW,
        },
        code,
    )
}

#[tokio::test]
async fn an_invitation_redeems_once_and_never_after_expiry_or_reissue() {
    for t in stores::all().await {
        let s = &t.store;
        let clock = FakeClock::new(NOW);
        let b = bootstrap_team(s, &clock, "T", "o@a.example").await.unwrap();
        let m = add(s, &b.team_uid, "m@a.example", Role::Member, NOW).await;
        let make = |inv: &InvitationRow| key_row(&inv.team_uid, &inv.member_uid, NOW, None).0;

        // Concurrent redemptions of one code: exactly one key.
        let (inv, code) = invitation(&b.team_uid, &m.uid, NOW + 100);
        s.put_invitation(&inv).await.unwrap();
        let hash = ids::hash_secret(&code);
        let (x, y) = tokio::join!(
            s.redeem_invitation(&hash, NOW, make),
            s.redeem_invitation(&hash, NOW, make),
        );
        let keys = [x.unwrap(), y.unwrap()];
        assert_eq!(keys.iter().flatten().count(), 1, "{}", t.name);
        let key = keys.into_iter().flatten().next().unwrap();
        assert_eq!(key.owner_uid, m.uid);
        assert!(s.find_api_key(&key.key_hash).await.unwrap().is_some());

        // Re-issued: the old code is dead, the new one lives until its expiry.
        let (old, old_code) = invitation(&b.team_uid, &m.uid, NOW + 100);
        s.put_invitation(&old).await.unwrap();
        let (new, new_code) = invitation(&b.team_uid, &m.uid, NOW + 100);
        s.put_invitation(&new).await.unwrap();
        for (c, why) in [(old_code, "re-issued"), (new_code, "expired at its second")] {
            let got = s
                .redeem_invitation(&ids::hash_secret(&c), NOW + 100, make)
                .await
                .unwrap();
            assert!(got.is_none(), "{}: {why}", t.name);
        }
        assert!(
            s.get_invitation(&b.team_uid, &m.uid)
                .await
                .unwrap()
                .is_none()
        );

        // A removed member's invitation goes with them.
        let (inv, code) = invitation(&b.team_uid, &m.uid, NOW + 100);
        s.put_invitation(&inv).await.unwrap();
        s.delete_member(&b.team_uid, &m.uid, Role::Member, NOW, None)
            .await
            .unwrap()
            .unwrap();
        assert!(
            s.redeem_invitation(&ids::hash_secret(&code), NOW, make)
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn an_expiring_key_dies_in_the_cache_and_its_use_is_written_coarsely() {
    for t in stores::all().await {
        let s = &t.store;
        let clock = FakeClock::new(NOW);
        let b = bootstrap_team(s, &clock, "T", "o@a.example").await.unwrap();
        let (row, key) = key_row(&b.team_uid, &b.owner_uid, NOW, Some(NOW + 5));
        s.insert_api_key(&row, None).await.unwrap();
        let cache = AuthCache::default();
        let p = cache
            .authenticate(s, &clock, &key, &yes)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            p.actor,
            Actor {
                actor_type: ActorType::User,
                uid: b.owner_uid.clone()
            }
        );
        clock.advance(5);
        assert_eq!(
            cache.authenticate(s, &clock, &key, &yes).await.unwrap(),
            Err(AuthFailure::Unknown),
            "{}: the cached entry died with the key",
            t.name
        );

        // Last use: written once per granularity, whichever replica asks.
        assert!(s.touch_api_key(&row.key_hash, NOW).await.unwrap());
        assert!(
            !s.touch_api_key(&row.key_hash, NOW + LAST_USE_GRANULARITY - 1)
                .await
                .unwrap()
        );
        assert!(
            s.touch_api_key(&row.key_hash, NOW + LAST_USE_GRANULARITY)
                .await
                .unwrap()
        );
        let got = s.get_api_key(&b.team_uid, &row.id).await.unwrap().unwrap();
        assert_eq!(got.last_used_at, Some(NOW + LAST_USE_GRANULARITY));
        assert!(cache.use_due("h", NOW));
        assert!(!cache.use_due("h", NOW + LAST_USE_GRANULARITY - 1));
        assert!(cache.use_due("h", NOW + LAST_USE_GRANULARITY));
    }
}

#[tokio::test]
async fn pages_walk_members_and_keys_once_each() {
    for t in stores::all().await {
        let s = &t.store;
        let clock = FakeClock::new(NOW);
        let b = bootstrap_team(s, &clock, "T", "o@a.example").await.unwrap();
        // Same creation second for several: the uid breaks the tie.
        for i in 0..5 {
            add(
                s,
                &b.team_uid,
                &format!("m{i}@a.example"),
                Role::Member,
                NOW,
            )
            .await;
            s.insert_api_key(&key_row(&b.team_uid, &b.owner_uid, NOW, None).0, None)
                .await
                .unwrap();
        }
        let mut after: Option<MemberAfter> = None;
        let mut seen = Vec::new();
        loop {
            let page = s
                .list_members_page(&b.team_uid, after.as_ref(), 2)
                .await
                .unwrap();
            let Some((last, at)) = page.last() else { break };
            after = Some(MemberAfter {
                created_at: *at,
                uid: last.uid.clone(),
            });
            seen.extend(page.iter().map(|(m, _)| m.uid.clone()));
        }
        let all: Vec<String> = s
            .list_members(&b.team_uid)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.uid)
            .collect();
        assert_eq!(seen, all, "{}", t.name);

        let mut after: Option<KeyAfter> = None;
        let mut keys = Vec::new();
        loop {
            let owner = Some((ActorType::User, b.owner_uid.as_str()));
            let page = s
                .list_api_keys_page(&b.team_uid, owner, after.as_ref(), 4)
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(KeyAfter {
                created_at: last.created_at,
                id: last.id.clone(),
            });
            keys.extend(page.into_iter().map(|k| k.id));
        }
        assert_eq!(keys.len(), 6, "{}: bootstrap key and five more", t.name);
        let none = s
            .list_api_keys_page(&b.team_uid, Some((ActorType::User, "nobody")), None, 10)
            .await
            .unwrap();
        assert!(none.is_empty());
    }
}

#[tokio::test]
async fn recovery_issues_an_owner_key_only_to_an_owner() {
    for t in stores::all().await {
        let s = &t.store;
        let clock = FakeClock::new(NOW);
        let b = bootstrap_team(s, &clock, "T", "o@a.example").await.unwrap();
        add(s, &b.team_uid, "m@a.example", Role::Admin, NOW).await;
        let r = recover_owner(s, &clock, &b.team_uid, "O@a.example")
            .await
            .unwrap();
        assert_eq!(r.owner_uid, b.owner_uid);
        let found = s
            .find_api_key(&ids::hash_secret(r.api_key.expose()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.owner_uid, found.expires_at),
            (b.owner_uid.clone(), None)
        );
        assert!(
            recover_owner(s, &clock, &b.team_uid, "m@a.example")
                .await
                .is_err()
        );
        assert!(
            recover_owner(s, &clock, &b.team_uid, "x@a.example")
                .await
                .is_err()
        );
        assert!(
            recover_owner(s, &clock, "nosuchteam", "o@a.example")
                .await
                .is_err()
        );
    }
}
