//! How runs end in the store, on both engines: at their maximum age
//! (`expired`, ended at that age), and with the member who started them.

use byollm_api::clock::FakeClock;
use byollm_api::types::{Actor, ActorType, Agent, InferenceProviders, Role, RunState};
use byollm_core::ids;
use byollm_core::service::bootstrap_team;
use byollm_core::store::{AgentRow, ExpiredRun, MemberRow, RunRow, Store};

use crate::stores;

const NOW: i64 = 1_800_000_000;

async fn run(s: &Store, team: &str, actor: Actor, by: Actor, expires_at: i64) -> RunRow {
    let row = RunRow {
        uid: ids::new_uid(),
        team_uid: team.to_owned(),
        actor,
        triggered_by: by,
        state: RunState::Running,
        model: None,
        prompt: None,
        token_hash: ids::hash_secret(&ids::new_uid()),
        token_expires_at: expires_at,
        created_at: NOW - 100,
        finished_at: None,
        bedrock: None,
    };
    s.insert_run(&row, None).await.unwrap();
    row
}

fn user(uid: &str) -> Actor {
    Actor {
        actor_type: ActorType::User,
        uid: uid.to_owned(),
    }
}

#[tokio::test]
async fn runs_past_their_maximum_age_expire_at_that_age() {
    for t in stores::all().await {
        let s = &t.store;
        let a = bootstrap_team(s, &FakeClock::new(NOW), "A", "o@a.example")
            .await
            .unwrap();
        let owner = user(&a.owner_uid);
        let overdue = run(s, &a.team_uid, owner.clone(), owner.clone(), NOW - 10).await;
        let due_now = run(s, &a.team_uid, owner.clone(), owner.clone(), NOW).await;
        let young = run(s, &a.team_uid, owner.clone(), owner.clone(), NOW + 10).await;

        // A lookup may expire just its run.
        let one = s
            .expire_runs(NOW, Some((&a.team_uid, &overdue.uid)))
            .await
            .unwrap();
        assert_eq!(
            one,
            [ExpiredRun {
                team_uid: a.team_uid.clone(),
                uid: overdue.uid.clone(),
                token_hash: overdue.token_hash.clone(),
            }],
            "{}",
            t.name
        );
        // Finishing a run at or past its maximum age is refused: it expired.
        assert!(
            !s.finish_run(&a.team_uid, &due_now.uid, "finished", NOW, None)
                .await
                .unwrap(),
            "{}",
            t.name
        );
        let swept = s.expire_runs(NOW, None).await.unwrap();
        assert_eq!(swept.len(), 1, "{}: {swept:?}", t.name);
        assert_eq!(swept[0].uid, due_now.uid);
        assert!(s.expire_runs(NOW, None).await.unwrap().is_empty(), "once");

        for (r, ended) in [(&overdue, NOW - 10), (&due_now, NOW)] {
            let got = s.get_run(&a.team_uid, &r.uid).await.unwrap().unwrap();
            assert_eq!(got.state, RunState::Expired, "{}", t.name);
            assert_eq!(got.finished_at, Some(ended), "ended at its maximum age");
        }
        let got = s.get_run(&a.team_uid, &young.uid).await.unwrap().unwrap();
        assert_eq!(got.state, RunState::Running);
    }
}

#[tokio::test]
async fn removing_a_member_cancels_the_runs_they_started_for_an_agent() {
    for t in stores::all().await {
        let s = &t.store;
        let a = bootstrap_team(s, &FakeClock::new(NOW), "A", "o@a.example")
            .await
            .unwrap();
        let m = MemberRow {
            uid: ids::new_uid(),
            team_uid: a.team_uid.clone(),
            email: "m@a.example".into(),
            role: Role::Member,
            aws_bedrock_opt_in: false,
        };
        s.insert_member(&m, NOW, None).await.unwrap();
        let agent = AgentRow {
            team_uid: a.team_uid.clone(),
            agent: Agent {
                uid: ids::new_uid(),
                name: "builder".into(),
                description: String::new(),
                available: true,
                created_at: String::new(),
                created_by: a.owner_uid.clone(),
                base_model: None,
                inference_providers: InferenceProviders::default(),
            },
        };
        s.insert_agent(&agent, NOW, None).await.unwrap();
        let agent_actor = Actor {
            actor_type: ActorType::ServiceAccount,
            uid: agent.agent.uid.clone(),
        };
        let theirs = run(s, &a.team_uid, agent_actor.clone(), user(&m.uid), NOW + 99).await;
        let owners = run(s, &a.team_uid, agent_actor, user(&a.owner_uid), NOW + 99).await;

        let removed = s
            .delete_member(&a.team_uid, &m.uid, Role::Member, NOW, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(removed.cancelled_runs, [theirs.uid.as_str()], "{}", t.name);
        assert!(removed.credential_hashes.contains(&theirs.token_hash));
        let got = s.get_run(&a.team_uid, &theirs.uid).await.unwrap().unwrap();
        assert_eq!(got.state, RunState::Cancelled, "{}", t.name);
        let got = s.get_run(&a.team_uid, &owners.uid).await.unwrap().unwrap();
        assert_eq!(got.state, RunState::Running, "someone else's run goes on");
    }
}
