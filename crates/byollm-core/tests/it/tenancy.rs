//! The store's tenancy queries on both engines: round trips, uniqueness, and
//! team scoping (another team's id finds nothing).

use byollm_api::clock::FakeClock;
use byollm_api::types::{Actor, ActorType, Agent, AwsOverride, InferenceProviders, Role, RunState};
use byollm_core::ids;
use byollm_core::service::bootstrap_team;
use byollm_core::store::{AgentRow, ApiKeyRow, MemberRow, RunRow, StoreError};

use crate::stores;

#[tokio::test]
async fn tenancy_round_trips_and_scoping() {
    for t in stores::all().await {
        let s = &t.store;
        let clock = FakeClock::new(1_800_000_000);
        let a = bootstrap_team(s, &clock, "Team A", "owner@a.example")
            .await
            .unwrap();
        let b = bootstrap_team(s, &clock, "Team B", "owner@b.example")
            .await
            .unwrap();
        assert_ne!(a.team_uid, b.team_uid, "{}", t.name);

        // The owner key authenticates by hash; the key itself is not stored.
        let found = s
            .find_api_key(&ids::hash_secret(a.api_key.expose()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.team_uid, a.team_uid);
        assert_eq!(found.owner_uid, a.owner_uid);
        assert!(
            s.find_api_key(&ids::hash_secret("byollm_key_nope"))
                .await
                .unwrap()
                .is_none()
        );

        // Members: unique email per team, but the same email may be in two teams.
        let m = MemberRow {
            uid: ids::new_uid(),
            team_uid: a.team_uid.clone(),
            email: "m@example.com".into(),
            role: Role::Member,
            aws_bedrock_opt_in: false,
        };
        s.insert_member(&m, 1, None).await.unwrap();
        let dup = MemberRow {
            uid: ids::new_uid(),
            ..m.clone()
        };
        assert!(
            matches!(
                s.insert_member(&dup, 1, None).await,
                Err(StoreError::Conflict(_))
            ),
            "{}",
            t.name
        );
        let other_team = MemberRow {
            uid: ids::new_uid(),
            team_uid: b.team_uid.clone(),
            ..m.clone()
        };
        s.insert_member(&other_team, 1, None).await.unwrap();
        assert!(
            s.get_member(&b.team_uid, &m.uid).await.unwrap().is_none(),
            "scoped by team"
        );
        let seen = s
            .get_member_opt_in_versioned(&a.team_uid, &m.uid)
            .await
            .unwrap()
            .unwrap()
            .version;
        assert!(
            s.set_member_opt_in_if(&a.team_uid, &m.uid, true, seen, None)
                .await
                .unwrap()
        );
        assert!(
            s.get_member(&a.team_uid, &m.uid)
                .await
                .unwrap()
                .unwrap()
                .aws_bedrock_opt_in
        );

        // Agents with an override; JSON column round trip; team scoping.
        let agent = AgentRow {
            team_uid: a.team_uid.clone(),
            agent: Agent {
                uid: ids::new_uid(),
                name: "reviewer".into(),
                description: "reviews".into(),
                available: true,
                created_at: String::new(),
                created_by: a.owner_uid.clone(),
                base_model: Some("claude-sonnet-4-6".into()),
                inference_providers: InferenceProviders {
                    aws: AwsOverride {
                        role_arn: Some("arn:aws:iam::123456789012:role/reviewer".into()),
                        region: Some("eu-west-1".into()),
                        disabled: false,
                    },
                    ..InferenceProviders::default()
                },
            },
        };
        s.insert_agent(&agent, 1_800_000_000, None).await.unwrap();
        let got = s
            .get_agent(&a.team_uid, &agent.agent.uid)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            got.agent.inference_providers,
            agent.agent.inference_providers
        );
        assert_eq!(got.agent.created_at, "2027-01-15T08:00:00Z");
        assert!(
            s.get_agent(&b.team_uid, &agent.agent.uid)
                .await
                .unwrap()
                .is_none()
        );
        let same_name = AgentRow {
            agent: Agent {
                uid: ids::new_uid(),
                ..agent.agent.clone()
            },
            ..agent.clone()
        };
        assert!(matches!(
            s.insert_agent(&same_name, 1, None).await,
            Err(StoreError::Conflict(_))
        ));

        // An agent key and a run; deleting the agent kills both.
        let key = ids::new_api_key();
        let key_row = ApiKeyRow {
            id: ids::new_id("key"),
            team_uid: a.team_uid.clone(),
            owner_type: ActorType::ServiceAccount,
            owner_uid: agent.agent.uid.clone(),
            name: "k".into(),
            key_hash: ids::hash_secret(secrecy::ExposeSecret::expose_secret(&key)),
            prefix: "byollm_key_".into(),
            created_at: 1,
            expires_at: None,
            last_used_at: None,
        };
        s.insert_api_key(&key_row, None).await.unwrap();
        let run = RunRow {
            uid: ids::new_uid(),
            team_uid: a.team_uid.clone(),
            actor: Actor {
                actor_type: ActorType::ServiceAccount,
                uid: agent.agent.uid.clone(),
            },
            triggered_by: Actor {
                actor_type: ActorType::User,
                uid: a.owner_uid.clone(),
            },
            state: RunState::Running,
            model: None,
            prompt: Some("hello".into()),
            token_hash: ids::hash_secret("byollm_run_x"),
            token_expires_at: 2_000_000_000,
            created_at: 5,
            finished_at: None,
            bedrock: None,
        };
        s.insert_run(&run, None).await.unwrap();
        assert_eq!(
            s.find_run_by_token(&run.token_hash)
                .await
                .unwrap()
                .unwrap()
                .uid,
            run.uid
        );
        assert!(s.get_run(&b.team_uid, &run.uid).await.unwrap().is_none());
        assert!(
            s.delete_agent(&b.team_uid, &agent.agent.uid, 9, None)
                .await
                .unwrap()
                .is_none(),
            "other team cannot delete"
        );
        let dead = s
            .delete_agent(&a.team_uid, &agent.agent.uid, 9, None)
            .await
            .unwrap()
            .unwrap();
        assert!(
            dead.credential_hashes.contains(&key_row.key_hash)
                && dead.credential_hashes.contains(&run.token_hash)
                && dead.cancelled_runs == [run.uid.clone()],
            "{dead:?}"
        );
        assert!(s.find_api_key(&key_row.key_hash).await.unwrap().is_none());
        let cancelled = s.get_run(&a.team_uid, &run.uid).await.unwrap().unwrap();
        assert_eq!(cancelled.state, RunState::Cancelled);
        assert!(
            !s.finish_run(&a.team_uid, &run.uid, "finished", 10, None)
                .await
                .unwrap(),
            "already ended"
        );

        // Retention purges ended runs.
        assert!(s.purge_before(100).await.unwrap() >= 1);
        assert!(s.get_run(&a.team_uid, &run.uid).await.unwrap().is_none());
    }
}
