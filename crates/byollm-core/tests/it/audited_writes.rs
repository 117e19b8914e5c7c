//! Every audited write of the store and its audit row are one transaction
//! (issue 14), on both engines: with a trigger that refuses every insert into
//! `audit_events`, each administrative write fails and leaves the store as it
//! was; without the trigger, the same write lands with its row.

use byollm_api::clock::FakeClock;
use byollm_api::types::{Actor, ActorType, Agent, InferenceProviders, Role, RunState};
use byollm_core::ids;
use byollm_core::service::bootstrap_team;
use byollm_core::store::{
    AgentRow, ApiKeyRow, AuditEventRow, AuditFilter, Engine, MemberRow, RunRow, Store,
};
use sqlx::Executor as _;

use crate::stores;

const NOW: i64 = 1_800_000_000;

fn event(team: &str, action: &str) -> AuditEventRow {
    AuditEventRow {
        id: ids::new_id("aud"),
        team_uid: team.to_owned(),
        at: NOW,
        actor_type: "user".into(),
        actor_uid: "u".into(),
        credential: "member_key:0123456789abcdef".into(),
        action: action.to_owned(),
        target: "t".into(),
        request_id: None,
        changes: "{}".into(),
    }
}

fn member(team: &str, email: &str) -> MemberRow {
    MemberRow {
        uid: ids::new_uid(),
        team_uid: team.to_owned(),
        email: email.to_owned(),
        role: Role::Member,
        aws_bedrock_opt_in: false,
    }
}

fn agent(team: &str, by: &str, name: &str) -> AgentRow {
    AgentRow {
        team_uid: team.to_owned(),
        agent: Agent {
            uid: ids::new_uid(),
            name: name.to_owned(),
            description: String::new(),
            available: true,
            created_at: String::new(),
            created_by: by.to_owned(),
            base_model: None,
            inference_providers: InferenceProviders::default(),
        },
    }
}

fn key(team: &str, owner: &str) -> ApiKeyRow {
    let id = ids::new_id("key");
    ApiKeyRow {
        team_uid: team.to_owned(),
        owner_type: ActorType::User,
        owner_uid: owner.to_owned(),
        name: "k".into(),
        key_hash: ids::hash_secret(&id),
        prefix: "byollm_key_".into(),
        created_at: NOW,
        expires_at: None,
        last_used_at: None,
        id,
    }
}

fn run(team: &str, by: &str) -> RunRow {
    let actor = Actor {
        actor_type: ActorType::User,
        uid: by.to_owned(),
    };
    RunRow {
        uid: ids::new_uid(),
        team_uid: team.to_owned(),
        actor: actor.clone(),
        triggered_by: actor,
        state: RunState::Running,
        model: None,
        prompt: None,
        token_hash: ids::hash_secret(&ids::new_uid()),
        token_expires_at: NOW + 3600,
        created_at: NOW,
        finished_at: None,
        bedrock: None,
    }
}

/// Makes every insert into `audit_events` fail, as a full disk or a lost
/// connection would fail it, on `url`'s database.
async fn refuse_audit_rows(engine: Engine, url: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let statements: &[&str] = match engine {
        Engine::Sqlite => &["CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events \
             BEGIN SELECT RAISE(ABORT, 'audit refused'); END"],
        Engine::Postgres => &[
            "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$",
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events \
             FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
        ],
    };
    for sql in statements {
        pool.execute(*sql).await.unwrap();
    }
    pool.close().await;
}

async fn allow_audit_rows(engine: Engine, url: &str) {
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    pool.execute(match engine {
        Engine::Sqlite => "DROP TRIGGER refuse_audit",
        Engine::Postgres => "DROP TRIGGER refuse_audit ON audit_events",
    })
    .await
    .unwrap();
    pool.close().await;
}

async fn audit_count(s: &Store, team: &str) -> usize {
    s.list_audit_events(team, &AuditFilter::default(), None, 1000)
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn an_administrative_write_whose_audit_row_fails_is_not_applied() {
    for t in stores::all().await {
        let (s, name) = (&t.store, t.name);
        let clock = FakeClock::new(NOW);
        let team = bootstrap_team(s, &clock, "Acme", "owner@acme.example")
            .await
            .unwrap();
        let tu = team.team_uid.as_str();
        // Fixtures, written without an audit row.
        let m = member(tu, "m@acme.example");
        s.insert_member(&m, NOW, None).await.unwrap();
        let ag = agent(tu, &team.owner_uid, "builder");
        s.insert_agent(&ag, NOW, None).await.unwrap();
        let k = key(tu, &m.uid);
        s.insert_api_key(&k, None).await.unwrap();
        let r = run(tu, &m.uid);
        s.insert_run(&r, None).await.unwrap();
        let settings = s.get_settings_versioned(tu).await.unwrap().unwrap();
        let opt_in = s
            .get_member_opt_in_versioned(tu, &m.uid)
            .await
            .unwrap()
            .unwrap();
        let agent_version = s
            .get_agent_versioned(tu, &ag.agent.uid)
            .await
            .unwrap()
            .unwrap()
            .version;
        let before = audit_count(s, tu).await;

        refuse_audit_rows(s.engine(), &t.url).await;
        let ev = |action: &str| event(tu, action);
        let new_member = member(tu, "new@acme.example");
        let new_agent = agent(tu, &team.owner_uid, "fresh");
        let new_key = key(tu, &m.uid);
        let new_run = run(tu, &m.uid);
        let mut renamed = ag.clone();
        renamed.agent.name = "renamed".into();
        let mut new_settings = settings.value.clone();
        new_settings.allow_fallback_outside_cloud = !new_settings.allow_fallback_outside_cloud;
        let failures = [
            (
                "member.create",
                s.insert_member(&new_member, NOW, Some(&ev("member.create")))
                    .await
                    .err(),
            ),
            (
                "member.role",
                s.set_member_role(
                    tu,
                    &m.uid,
                    Role::Member,
                    Role::Admin,
                    Some(&ev("member.role")),
                )
                .await
                .err(),
            ),
            (
                "member.delete",
                s.delete_member(tu, &m.uid, Role::Member, NOW, Some(&ev("member.delete")))
                    .await
                    .err(),
            ),
            (
                "member_settings.update",
                s.set_member_opt_in_if(
                    tu,
                    &m.uid,
                    true,
                    opt_in.version,
                    Some(&ev("member_settings.update")),
                )
                .await
                .err(),
            ),
            (
                "agent.create",
                s.insert_agent(&new_agent, NOW, Some(&ev("agent.create")))
                    .await
                    .err(),
            ),
            (
                "agent.update",
                s.update_agent_if(&renamed, agent_version, Some(&ev("agent.update")))
                    .await
                    .err(),
            ),
            (
                "agent.delete",
                s.delete_agent(tu, &ag.agent.uid, NOW, Some(&ev("agent.delete")))
                    .await
                    .err(),
            ),
            (
                "api_key.create",
                s.insert_api_key(&new_key, Some(&ev("api_key.create")))
                    .await
                    .err(),
            ),
            (
                "api_key.revoke",
                s.delete_api_key(tu, &k.id, Some(&ev("api_key.revoke")))
                    .await
                    .err(),
            ),
            (
                "run.create",
                s.insert_run(&new_run, Some(&ev("run.create"))).await.err(),
            ),
            (
                "run.finish",
                s.finish_run(tu, &r.uid, "finished", NOW, Some(&ev("run.finish")))
                    .await
                    .err(),
            ),
            (
                "settings.update",
                s.put_settings_if(
                    tu,
                    &new_settings,
                    settings.version,
                    Some(&ev("settings.update")),
                )
                .await
                .err(),
            ),
        ];
        for (action, err) in &failures {
            let err = err.as_ref().map(ToString::to_string);
            assert!(
                err.as_deref().is_some_and(|e| e.contains("audit refused")),
                "{name}: {action} must fail with its audit row: {err:?}"
            );
        }

        // Nothing of it was applied.
        assert!(
            s.get_member(tu, &new_member.uid).await.unwrap().is_none(),
            "{name}"
        );
        let still = s.get_member(tu, &m.uid).await.unwrap().unwrap();
        assert_eq!(still.role, Role::Member, "{name}");
        assert!(!still.aws_bedrock_opt_in, "{name}");
        assert!(
            s.get_agent(tu, &new_agent.agent.uid)
                .await
                .unwrap()
                .is_none(),
            "{name}"
        );
        let still = s.get_agent(tu, &ag.agent.uid).await.unwrap().unwrap();
        assert_eq!(still.agent.name, "builder", "{name}");
        assert!(
            s.get_api_key(tu, &new_key.id).await.unwrap().is_none(),
            "{name}"
        );
        assert!(s.get_api_key(tu, &k.id).await.unwrap().is_some(), "{name}");
        assert!(
            s.get_run(tu, &new_run.uid).await.unwrap().is_none(),
            "{name}"
        );
        let still = s.get_run(tu, &r.uid).await.unwrap().unwrap();
        assert_eq!(still.state, RunState::Running, "{name}");
        let still = s.get_settings_versioned(tu).await.unwrap().unwrap();
        assert_eq!(still.version, settings.version, "{name}");
        assert_eq!(still.value, settings.value, "{name}");
        assert_eq!(audit_count(s, tu).await, before, "{name}");

        // With audit rows accepted again, a write lands with its row.
        allow_audit_rows(s.engine(), &t.url).await;
        assert!(
            s.set_member_role(
                tu,
                &m.uid,
                Role::Member,
                Role::Admin,
                Some(&ev("member.role"))
            )
            .await
            .unwrap()
        );
        assert_eq!(
            s.get_member(tu, &m.uid).await.unwrap().unwrap().role,
            Role::Admin
        );
        let rows = s
            .list_audit_events(
                tu,
                &AuditFilter {
                    action: Some("member.role".into()),
                    ..Default::default()
                },
                None,
                10,
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "{name}: {rows:?}");
    }
}

/// On SQLite a write that reads first (deleting an agent reads its keys and
/// open runs, then deletes) waits for another connection's write instead of
/// failing with "database is locked": a deferred transaction cannot wait to
/// upgrade from reading to writing, so write transactions begin IMMEDIATE.
#[tokio::test]
async fn on_sqlite_a_write_that_reads_first_waits_for_another_writer() {
    let t = stores::sqlite().await;
    let s = t.store.clone();
    let clock = FakeClock::new(NOW);
    let team = bootstrap_team(&s, &clock, "Acme", "owner@acme.example")
        .await
        .unwrap();
    let ag = agent(&team.team_uid, &team.owner_uid, "builder");
    s.insert_agent(&ag, NOW, None).await.unwrap();

    // Another connection (a CLI, a second process) holds the write lock.
    let other = sqlx::AnyPool::connect(&t.url).await.unwrap();
    let mut holder = other.acquire().await.unwrap();
    holder.execute("BEGIN IMMEDIATE").await.unwrap();
    let (tu, uid) = (team.team_uid.clone(), ag.agent.uid.clone());
    let delete = tokio::spawn(async move { s.delete_agent(&tu, &uid, NOW, None).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !delete.is_finished(),
        "the delete did not wait for the lock"
    );
    holder.execute("COMMIT").await.unwrap();
    let removed = delete.await.unwrap();
    assert!(
        matches!(removed, Ok(Some(_))),
        "the delete failed instead of waiting: {removed:?}"
    );
    assert!(
        t.store
            .get_agent(&team.team_uid, &ag.agent.uid)
            .await
            .unwrap()
            .is_none()
    );
}
