//! One place decides what an actor may do: pages and the API get the same
//! answers, and a change re-checks the actor's role inside its own
//! transaction, so two Admins acting on each other at once can never both
//! win on a role one of them had already lost.

use reqwest::{Method, StatusCode};
use tollgate::clock::now;
use tollgate::domain::UserId;
use tollgate::service::Actor;
use tollgate::service::auth::NewUser;

use crate::each_backend;
use crate::helpers::{ADMIN, PASSWORD, READER, TestApp, WRITER, api, bearer};

const ROUNDS: usize = 30;
const B: &str = "bea@example.com";
const C: &str = "cai@example.com";

async fn add_admin(app: &TestApp, email: &str) {
    let user = NewUser {
        email,
        name: None,
        role: "admin",
        workspace: None,
        password: PASSWORD,
    };
    app.core
        .create_user(user, now())
        .await
        .expect("create an Admin");
}

async fn role(app: &TestApp, email: &str) -> String {
    sqlx::query_scalar(
        "SELECT m.role FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email = $1",
    )
    .bind(email)
    .fetch_one(app.db().pool())
    .await
    .expect("role")
}

/// The role changes recorded after event `after`, in commit order:
/// (event id, target id).
async fn role_changes(app: &TestApp, after: i64) -> Vec<(i64, i64)> {
    sqlx::query_as(
        "SELECT id, target_id FROM audit_events WHERE action = 'member.role_changed' AND id > $1 ORDER BY id",
    )
    .bind(after)
    .fetch_all(app.db().pool())
    .await
    .expect("audit events")
}

async fn last_event(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM audit_events")
        .fetch_one(app.db().pool())
        .await
        .expect("last event")
}

/// Checks one round in which C demoted A while A demoted B. Returns whether
/// A's request was the one refused.
async fn judge_round(app: &TestApp, round: usize, since: i64, a_status: StatusCode) -> bool {
    let (a, b) = (app.user_id(ADMIN).await, app.user_id(B).await);
    let changes = role_changes(app, since).await;
    let a_demoted = changes.iter().position(|(_, t)| *t == a);
    let b_demoted = changes.iter().position(|(_, t)| *t == b);
    assert_eq!(
        role(app, ADMIN).await,
        "read-only",
        "round {round}: C's demotion of A always goes through"
    );
    assert!(
        a_demoted.is_some(),
        "round {round}: C's demotion of A is recorded"
    );
    match b_demoted {
        // A acted first, while still an Admin; C's change came after.
        Some(b_at) => {
            assert!(
                a_status.is_redirection(),
                "round {round}: A's change went through: {a_status}"
            );
            assert_eq!(role(app, B).await, "read-only", "round {round}");
            assert!(
                Some(b_at) < a_demoted,
                "round {round}: A demoted B after A had been demoted: {changes:?}"
            );
            false
        }
        // A was demoted first: A's request is refused and changes nothing.
        None => {
            assert_eq!(
                a_status,
                StatusCode::FORBIDDEN,
                "round {round}: A's request after A lost the role"
            );
            assert_eq!(role(app, B).await, "admin", "round {round}");
            true
        }
    }
}

async fn reset(app: &TestApp) {
    app.set_role(ADMIN, "admin").await;
    app.set_role(B, "admin").await;
}

each_backend! {
    /// Two requests fired at once from the dashboard: C demotes A while A
    /// demotes B. Whatever the order, A never acts on a role it has lost.
    async fn an_admin_demoted_meanwhile_can_not_demote_another(app) {
        add_admin(&app, B).await;
        add_admin(&app, C).await;
        let a_client = app.signed_in(ADMIN).await;
        let c_client = app.signed_in(C).await;
        let (a, b) = (app.user_id(ADMIN).await.to_string(), app.user_id(B).await.to_string());
        let (a_csrf, c_csrf) = (a_client.csrf().await, c_client.csrf().await);
        let demote_b = format!("/members/{b}/role");
        let demote_a = format!("/members/{a}/role");
        let mut refused = 0;
        for round in 0..ROUNDS {
            reset(&app).await;
            let since = last_event(&app).await;
            let a_fields = [("csrf_token", a_csrf.as_str()), ("role", "read-only")];
            let c_fields = [("csrf_token", c_csrf.as_str()), ("role", "read-only")];
            let (a_res, c_res) = tokio::join!(
                a_client.post_raw(&demote_b, &a_fields, Some(&a_client.base)),
                c_client.post_raw(&demote_a, &c_fields, Some(&c_client.base)),
            );
            assert_eq!(c_res.status, StatusCode::SEE_OTHER, "round {round}: C is an Admin throughout");
            refused += usize::from(judge_round(&app, round, since, a_res.status).await);
        }
        eprintln!("A was refused in {refused} of {ROUNDS} rounds");
    }
}

each_backend! {
    /// The same race through the services with both actors resolved before
    /// either change starts, as a request resolves its actor before it acts:
    /// whenever C's change commits first, only the re-check inside A's
    /// transaction stands between A's stale Admin role and B. Odd rounds let
    /// C's change commit first on purpose, so that this happens every time.
    async fn a_stale_actor_is_refused_inside_the_transaction(app) {
        add_admin(&app, B).await;
        add_admin(&app, C).await;
        let (a, b, c) = (app.user_id(ADMIN).await, app.user_id(B).await, app.user_id(C).await);
        let core = app.core.clone();
        let load = |id: i64| {
            let core = core.clone();
            async move { Actor::Member(core.signed_in_user(UserId(id)).await.unwrap().expect("user")) }
        };
        let workspace = match load(a).await {
            Actor::Member(user) => user.memberships[0].workspace_id,
            Actor::Token(_) => unreachable!("a member"),
        };
        let mut refused = 0;
        for round in 0..ROUNDS {
            reset(&app).await;
            let since = last_event(&app).await;
            let (actor_a, actor_c) = (load(a).await, load(c).await);
            let meta = Default::default();
            let a_demotes_b = app.core.set_member_role(&actor_a, workspace, UserId(b), "read-only", &meta, now());
            let c_demotes_a = app.core.set_member_role(&actor_c, workspace, UserId(a), "read-only", &meta, now());
            // Every other round C's change commits before A's starts: the
            // window made certain. The others race.
            let (a_result, c_result) = if round % 2 == 1 {
                let c_result = c_demotes_a.await;
                (a_demotes_b.await, c_result)
            } else {
                tokio::join!(a_demotes_b, c_demotes_a)
            };
            c_result.expect("C is an Admin throughout");
            if round % 2 == 1 {
                assert!(a_result.is_err(), "round {round}: A acted on a role it had lost");
            }
            let status = match a_result {
                Ok(()) => StatusCode::SEE_OTHER,
                Err(tollgate::service::ServiceError::Forbidden { code, .. }) => {
                    assert_eq!(code, "permission_changed");
                    StatusCode::FORBIDDEN
                }
                Err(other) => panic!("round {round}: {other}"),
            };
            refused += usize::from(judge_round(&app, round, since, status).await);
        }
        eprintln!("A was refused in {refused} of {ROUNDS} rounds");
    }
}

each_backend! {
    /// A page and the API ask the same question and get the same answer:
    /// a Read-Write member is refused every Admin action by session and by
    /// token alike, and once an Admin is demoted, their session and their
    /// Admin token lose the Admin actions at the same moment.
    async fn pages_and_api_refuse_the_same_admin_actions(app) {
        let (_, writer_token) = app.token_for(WRITER, "writer ci", "read-write").await;
        let writer = app.signed_in(WRITER).await;
        let reader = app.signed_in(READER).await;
        let admin_actions = [
            ("/members", "/api/v1/members"),
            ("/workspace-tokens", "/api/v1/workspace/tokens"),
            ("/audit-log", "/api/v1/audit-log"),
        ];
        let tokens_before = app.count("personal_access_tokens").await;
        for (page, endpoint) in admin_actions {
            assert_eq!(writer.get(page).await.status, StatusCode::FORBIDDEN, "{page}");
            assert_eq!(reader.get(page).await.status, StatusCode::FORBIDDEN, "{page}");
            let res = api(&app, Method::GET, endpoint, Some(&bearer(&writer_token))).await;
            assert_eq!((res.status, res.json()["error"]["code"].as_str().map(str::to_owned)), (StatusCode::FORBIDDEN, Some("insufficient_scope".to_owned())), "{endpoint}");
        }
        assert_eq!(writer.post_form("/workspace-tokens/revoke-all", &[]).await.status, StatusCode::FORBIDDEN);
        let res = api(&app, Method::POST, "/api/v1/workspace/tokens/revoke-all", Some(&bearer(&writer_token))).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        assert_eq!(app.count("personal_access_tokens").await, tokens_before, "nothing was revoked");

        // An Admin with a session and an Admin token, then demoted.
        add_admin(&app, C).await;
        let (_, admin_token) = app.token_for(ADMIN, "admin ci", "admin").await;
        let admin = app.signed_in(ADMIN).await;
        assert_eq!(admin.get("/members").await.status, StatusCode::OK);
        assert_eq!(api(&app, Method::GET, "/api/v1/members", Some(&bearer(&admin_token))).await.status, StatusCode::OK);
        let c = app.signed_in(C).await;
        let id = app.user_id(ADMIN).await;
        assert_eq!(c.post_form(&format!("/members/{id}/role"), &[("role", "read-write")]).await.status, StatusCode::SEE_OTHER);
        let tokens_before = app.count("personal_access_tokens").await;
        for (page, endpoint) in admin_actions {
            assert_eq!(admin.get(page).await.status, StatusCode::FORBIDDEN, "{page}");
            let res = api(&app, Method::GET, endpoint, Some(&bearer(&admin_token))).await;
            assert_eq!(res.status, StatusCode::FORBIDDEN, "{endpoint}");
        }
        assert_eq!(admin.post_form("/workspace-tokens/revoke-all", &[]).await.status, StatusCode::FORBIDDEN);
        let res = api(&app, Method::POST, "/api/v1/workspace/tokens/revoke-all", Some(&bearer(&admin_token))).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        assert_eq!(app.count("personal_access_tokens").await, tokens_before, "nothing was revoked");
    }
}
