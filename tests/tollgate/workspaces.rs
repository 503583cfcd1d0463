//! Workspaces made and renamed from the pages, and the workspace choice
//! for members of several.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::each_backend;
use crate::helpers::{ADMIN, PASSWORD, READER, WRITER, api, api_json, bearer};

async fn names(app: &crate::helpers::TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT name FROM workspaces ORDER BY id")
        .fetch_all(app.db().pool())
        .await
        .unwrap()
}

each_backend! {
    async fn an_admin_creates_a_workspace_and_chooses_it_everywhere(app) {
        let admin = app.signed_in(ADMIN).await;
        let page = admin.get("/workspaces").await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.text("a[href='#new-workspace']"), "New workspace");
        // One workspace: no choice to make.
        assert_eq!(admin.get("/members").await.count("#workspace-switch"), 0);

        let res = admin.post_form("/workspaces", &[("name", "  Ops ")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        assert_eq!(names(&app).await, vec!["Default", "Ops"]);
        let ops: i64 = sqlx::query_scalar("SELECT id FROM workspaces WHERE name = 'Ops'").fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(res.location().unwrap(), format!("/members?workspace={ops}"));

        let members = admin.get(&format!("/members?workspace={ops}")).await;
        assert!(members.text(".page-head").contains("Ops"));
        assert!(members.text("table").contains(ADMIN), "the creator is the new workspace's Admin");
        // The left panel offers both, keeps the chosen one in its links.
        let options = members.texts("#workspace-switch option");
        assert_eq!(options, vec!["Default", "Ops"]);
        assert_eq!(members.attr("#workspace-switch option[selected]", "value"), Some(ops.to_string()));
        assert_eq!(members.attr("nav.sidebar a[href^='/workspace-tokens']", "href"), Some(format!("/workspace-tokens?workspace={ops}")));
        for path in ["/workspace-tokens", "/service-accounts", "/audit-log"] {
            let page = admin.get(&format!("{path}?workspace={ops}")).await;
            assert_eq!(page.status, StatusCode::OK, "{path}");
            assert_eq!(page.attr("#workspace-switch option[selected]", "value"), Some(ops.to_string()), "{path}");
        }
        // The tokens tab asks which workspace a new token is for.
        let tab = admin.get("/profile/tokens").await;
        assert_eq!(tab.texts("#token-workspace option"), vec!["Default", "Ops"]);
        let ops_id = ops.to_string();
        let (_, secret) = admin.generate(&[("name", "ops ci"), ("scope", "read-write"), ("workspace", &ops_id)]).await;
        let me = api(&app, Method::GET, "/api/v1/me", Some(&bearer(&secret.expect("shown once")))).await;
        assert_eq!(me.json()["workspace"]["name"], "Ops");
        let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE action = 'workspace.created' AND workspace_id = $1").bind(ops).fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(events, 1);
    }
}

each_backend! {
    async fn a_renamed_workspace_shows_its_new_name_at_once(app) {
        let (_, token) = app.token_for(WRITER, "ci", "read-write").await;
        let me = |token: String| { let app = &app; async move { api(app, Method::GET, "/api/v1/me", Some(&bearer(&token))).await.json() } };
        assert_eq!(me(token.clone()).await["workspace"]["name"], "Default");
        let admin = app.signed_in(ADMIN).await;
        let id: i64 = sqlx::query_scalar("SELECT id FROM workspaces").fetch_one(app.db().pool()).await.unwrap();
        let res = admin.post_form(&format!("/workspaces/{id}/rename"), &[("name", "Engineering")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        assert_eq!(names(&app).await, vec!["Engineering"]);
        assert_eq!(me(token).await["workspace"]["name"], "Engineering", "the cached token sees the new name");
        let detail: String = sqlx::query_scalar("SELECT detail FROM audit_events WHERE action = 'workspace.renamed'").fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(detail, "Default → Engineering");
    }
}

each_backend! {
    async fn bad_or_taken_workspace_names_are_answered_inline_and_store_nothing(app) {
        let admin = app.signed_in(ADMIN).await;
        assert_eq!(admin.post_form("/workspaces", &[("name", "Ops")]).await.status, StatusCode::SEE_OTHER);
        let ops: i64 = sqlx::query_scalar("SELECT id FROM workspaces WHERE name = 'Ops'").fetch_one(app.db().pool()).await.unwrap();
        let events = app.count("audit_events").await;
        let long = "w".repeat(101);
        for (name, status, says) in [
            ("", StatusCode::UNPROCESSABLE_ENTITY, "1 to 100 characters"),
            ("  ", StatusCode::UNPROCESSABLE_ENTITY, "1 to 100 characters"),
            ("evil\u{202E}txt", StatusCode::UNPROCESSABLE_ENTITY, "invisible"),
            ("tab\there", StatusCode::UNPROCESSABLE_ENTITY, "control characters"),
            (long.as_str(), StatusCode::UNPROCESSABLE_ENTITY, "1 to 100 characters"),
            ("Default", StatusCode::CONFLICT, "already exists"),
        ] {
            let res = admin.post_form("/workspaces", &[("name", name)]).await;
            assert_eq!(res.status, status, "create {name:?}");
            assert!(res.text("#workspace-error").contains(says), "create {name:?}: {}", res.text("#workspace-error"));
            assert_eq!(res.attr("#workspace-name", "value").as_deref(), Some(name));
            let res = admin.post_form(&format!("/workspaces/{ops}/rename"), &[("name", name)]).await;
            assert_eq!(res.status, status, "rename {name:?}");
            assert!(res.text(&format!("#rename-error-{ops}")).contains(says), "rename {name:?}");
            assert_eq!(res.attr(&format!("#rename-{ops}"), "value").as_deref(), Some(name));
        }
        assert_eq!(names(&app).await, vec!["Default", "Ops"]);
        assert_eq!(app.count("audit_events").await, events);
    }
}

each_backend! {
    async fn only_admins_create_and_only_a_workspaces_admins_rename_it(app) {
        let default: i64 = sqlx::query_scalar("SELECT id FROM workspaces").fetch_one(app.db().pool()).await.unwrap();
        for email in [WRITER, READER] {
            let member = app.signed_in(email).await;
            assert!(!member.get("/profile").await.texts("nav.sidebar .nav a").contains(&"Workspaces".to_owned()));
            assert_eq!(member.get("/workspaces").await.status, StatusCode::FORBIDDEN);
            assert_eq!(member.post_form("/workspaces", &[("name", "Mine")]).await.status, StatusCode::FORBIDDEN);
            assert_eq!(member.post_form(&format!("/workspaces/{default}/rename"), &[("name", "Mine")]).await.status, StatusCode::FORBIDDEN);
        }
        // A workspace the Admin does not belong to.
        app.core.create_user(tollgate::service::auth::NewUser { email: "other@example.com", name: None, role: "admin", workspace: Some("Other"), password: PASSWORD }, tollgate::clock::now()).await.unwrap();
        let other: i64 = sqlx::query_scalar("SELECT id FROM workspaces WHERE name = 'Other'").fetch_one(app.db().pool()).await.unwrap();
        let admin = app.signed_in(ADMIN).await;
        assert_eq!(admin.post_form(&format!("/workspaces/{other}/rename"), &[("name", "Mine")]).await.status, StatusCode::FORBIDDEN);
        assert_eq!(admin.get(&format!("/members?workspace={other}")).await.status, StatusCode::FORBIDDEN);
        assert_eq!(names(&app).await, vec!["Default", "Other"]);
    }
}

// ---- Through the API ---------------------------------------------------------

each_backend! {
    async fn an_admin_token_lists_creates_and_renames_workspaces_through_the_api(app) {
        let (_, admin) = app.token_for(ADMIN, "admin api", "admin").await;
        let (_, writer) = app.token_for(WRITER, "writer", "read-write").await;
        let default: i64 = sqlx::query_scalar("SELECT id FROM workspaces").fetch_one(app.db().pool()).await.unwrap();
        let res = api(&app, Method::GET, "/api/v1/workspaces", Some(&bearer(&admin))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(res.json()["data"], json!([{"id": default, "name": "Default", "role": "admin"}]));
        let res = api(&app, Method::GET, "/api/v1/workspaces", Some(&bearer(&writer))).await;
        assert_eq!(res.json()["data"], json!([{"id": default, "name": "Default", "role": "read-write"}]));

        let res = api_json(&app, Method::POST, "/api/v1/workspaces", &admin, &json!({"name": "  Ops "})).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        let created = res.json();
        assert_eq!(created["name"], "Ops");
        assert_eq!(created["role"], "admin");
        let ops = created["id"].as_i64().unwrap();
        assert_eq!(names(&app).await, vec!["Default", "Ops"]);
        let role: String = sqlx::query_scalar("SELECT role FROM memberships WHERE workspace_id = $1 AND user_id = $2").bind(ops).bind(app.user_id(ADMIN).await).fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(role, "admin", "the token's owner is the new workspace's first Admin");
        // The calling token stays in its own workspace.
        assert_eq!(api(&app, Method::GET, "/api/v1/workspaces", Some(&bearer(&admin))).await.json()["data"].as_array().unwrap().len(), 1);

        let res = api_json(&app, Method::PATCH, &format!("/api/v1/workspaces/{default}"), &admin, &json!({"name": "Engineering"})).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(res.json(), json!({"id": default, "name": "Engineering", "role": "admin"}));
        assert_eq!(names(&app).await, vec!["Engineering", "Ops"]);
        let me = api(&app, Method::GET, "/api/v1/me", Some(&bearer(&writer))).await.json();
        assert_eq!(me["workspace"]["name"], "Engineering");
        // Another workspace is not the token's to rename, even one its owner administers.
        let res = api_json(&app, Method::PATCH, &format!("/api/v1/workspaces/{ops}"), &admin, &json!({"name": "Mine"})).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{}", res.body);
        assert_eq!(names(&app).await, vec!["Engineering", "Ops"]);
        let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_events WHERE action LIKE 'workspace.%' ORDER BY id").fetch_all(app.db().pool()).await.unwrap();
        assert_eq!(actions, vec!["workspace.created", "workspace.renamed"]);
    }
}

each_backend! {
    async fn bad_or_refused_workspace_requests_through_the_api_change_nothing(app) {
        let (_, admin) = app.token_for(ADMIN, "admin api", "admin").await;
        assert_eq!(api_json(&app, Method::POST, "/api/v1/workspaces", &admin, &json!({"name": "Ops"})).await.status, StatusCode::CREATED);
        let default: i64 = sqlx::query_scalar("SELECT id FROM workspaces WHERE name = 'Default'").fetch_one(app.db().pool()).await.unwrap();
        let (_, writer) = app.token_for(WRITER, "writer", "read-write").await;
        let (_, capped) = app.token_for(ADMIN, "capped", "read-write").await;
        let events = app.count("audit_events").await;
        let long = "w".repeat(101);
        let rename = format!("/api/v1/workspaces/{default}");
        for (body, status, code) in [
            (json!({"name": ""}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_name"),
            (json!({"name": "evil\u{202E}txt"}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_name"),
            (json!({"name": long}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_name"),
            (json!({"name": "Ops"}), StatusCode::CONFLICT, "conflict"),
            (json!({"name": 7}), StatusCode::BAD_REQUEST, "invalid_json"),
            (json!({}), StatusCode::BAD_REQUEST, "invalid_json"),
            (json!("Ops2"), StatusCode::BAD_REQUEST, "invalid_json"),
        ] {
            for (method, path) in [(Method::POST, "/api/v1/workspaces"), (Method::PATCH, rename.as_str())] {
                let res = api_json(&app, method.clone(), path, &admin, &body).await;
                assert_eq!(res.status, status, "{method} {body}: {}", res.body);
                assert_eq!(res.json()["error"]["code"], code, "{method} {body}");
            }
        }
        for token in [&writer, &capped] {
            for (method, path) in [(Method::POST, "/api/v1/workspaces"), (Method::PATCH, rename.as_str())] {
                let res = api_json(&app, method.clone(), path, token, &json!({"name": "Mine"})).await;
                assert_eq!(res.status, StatusCode::FORBIDDEN, "{method}: {}", res.body);
            }
        }
        // A service account's Admin token: its account belongs to one
        // workspace and may not become another's Admin.
        let account = api_json(&app, Method::POST, "/api/v1/service-accounts", &admin, &json!({"name": "Bot", "role": "admin"})).await.json()["id"].as_i64().unwrap();
        let service = api_json(&app, Method::POST, &format!("/api/v1/service-accounts/{account}/tokens"), &admin, &json!({"name": "ci", "scope": "admin"})).await.json()["token"].as_str().unwrap().to_owned();
        let events = events + 2;
        let res = api_json(&app, Method::POST, "/api/v1/workspaces", &service, &json!({"name": "Bots"})).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
        assert_eq!(res.json()["error"]["code"], "members_only");
        assert_eq!(names(&app).await, vec!["Default", "Ops"]);
        assert_eq!(app.count("audit_events").await, events);
    }
}
