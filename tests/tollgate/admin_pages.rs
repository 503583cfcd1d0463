//! The Admin pages: Members (with invitations and roles), Workspace tokens
//! (with its own Revoke all) and the Audit log.

use reqwest::{Method, StatusCode};

use crate::each_backend;
use crate::helpers::{ADMIN, READER, WRITER, api, bearer};

each_backend! {
    async fn only_admins_see_and_open_the_admin_pages(app) {
        let admin = app.signed_in(ADMIN).await;
        let panel = admin.get("/profile").await.texts("nav.sidebar .nav a");
        assert_eq!(panel, vec!["Profile", "Members", "Workspace tokens", "Service accounts", "Audit log", "Workspaces"]);
        for email in [WRITER, READER] {
            let member = app.signed_in(email).await;
            assert_eq!(member.get("/profile").await.texts("nav.sidebar .nav a"), vec!["Profile"]);
            for path in ["/members", "/workspace-tokens", "/audit-log", "/workspace-tokens/revoke-all"] {
                assert_eq!(member.get(path).await.status, StatusCode::FORBIDDEN, "{email} {path}");
            }
            let before = app.count("invitations").await;
            assert_eq!(member.post_form("/members/invite", &[("email", "x@example.com"), ("role", "admin")]).await.status, StatusCode::FORBIDDEN);
            assert_eq!(app.count("invitations").await, before);
            let id = app.user_id(READER).await.to_string();
            assert_eq!(member.post_form(&format!("/members/{id}/role"), &[("role", "admin")]).await.status, StatusCode::FORBIDDEN);
        }
        let roles: Vec<String> = sqlx::query_scalar("SELECT role FROM memberships ORDER BY user_id").fetch_all(app.db().pool()).await.unwrap();
        assert_eq!(roles, vec!["admin", "read-write", "read-only"]);
    }
}

each_backend! {
    async fn an_invited_member_joins_with_the_role_they_were_given(app) {
        let admin = app.signed_in(ADMIN).await;
        let page = admin.get("/members").await;
        assert_eq!(page.text("a[href='#invite']"), "Invite member");
        let res = admin.post_form("/members/invite", &[("email", "New@Example.com"), ("role", "read-write")]).await;
        assert_eq!(res.status, StatusCode::OK);
        let link = res.attr("#invite-link", "value").expect("the invitation link, shown once");
        assert!(res.text("table").contains("new@example.com"), "pending invitation listed");
        let code = link.rsplit('/').next().unwrap().to_owned();
        let stored: String = sqlx::query_scalar("SELECT code_digest FROM invitations").fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(stored, tollgate::domain::sha256_hex(&code), "only a digest of the code is stored");

        let newcomer = app.client();
        let form = newcomer.get(&format!("/invitations/{code}")).await;
        assert_eq!(form.status, StatusCode::OK);
        assert!(form.text("main").contains("new@example.com"));
        let res = newcomer.post_form(&format!("/invitations/{code}"), &[("name", "Nina"), ("password", "short")]).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "a bad password is answered inline");
        assert_eq!(app.count("users").await, 3);
        let res = newcomer.post_form(&format!("/invitations/{code}"), &[("name", "Nina"), ("password", "a fine long password")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        let profile = newcomer.get("/profile").await;
        assert!(profile.text("table").contains("Read-Write"));
        // The link works once.
        assert_eq!(app.client().get(&format!("/invitations/{code}")).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.client().login("new@example.com", "a fine long password").await.status, StatusCode::SEE_OTHER);
    }
}

each_backend! {
    async fn bad_invitations_are_answered_inline_and_store_nothing(app) {
        let admin = app.signed_in(ADMIN).await;
        for (email, role, says) in [("not an email", "read-write", "valid email"), ("someone@example.com", "owner", "Unknown role"), (WRITER, "read-only", "already a member")] {
            let res = admin.post_form("/members/invite", &[("email", email), ("role", role)]).await;
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{email}");
            assert!(res.text("#invite-error").contains(says), "{email}: {}", res.text("#invite-error"));
            assert_eq!(res.attr("#invite-email", "value").as_deref(), Some(email));
        }
        assert_eq!(app.count("invitations").await, 0);
        assert_eq!(app.client().get("/invitations/not-a-real-code").await.status, StatusCode::NOT_FOUND);
    }
}

each_backend! {
    async fn a_role_change_reaches_the_members_tokens_at_once(app) {
        let (_, token) = app.token_for(WRITER, "ci", "read-write").await;
        let admin = app.signed_in(ADMIN).await;
        let id = app.user_id(WRITER).await;
        let res = admin.post_form(&format!("/members/{id}/role"), &[("role", "read-only")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        let res = api(&app, Method::GET, "/api/v1/me", Some(&bearer(&token))).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        assert_eq!(res.json()["error"]["code"], "owner_read_only");
        let members = admin.get("/members").await;
        assert!(members.text(".flash").contains("Role changed"));
        // A bad role changes nothing.
        let res = admin.post_form(&format!("/members/{id}/role"), &[("role", "superuser")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert!(admin.get("/members").await.text(".flash").contains("Unknown role"));
        let role: String = sqlx::query_scalar("SELECT role FROM memberships WHERE user_id = $1").bind(id).fetch_one(app.db().pool()).await.unwrap();
        assert_eq!(role, "read-only");
    }
}

each_backend! {
    async fn the_last_admin_can_not_be_demoted_removed_or_disable_themselves(app) {
        let admin = app.signed_in(ADMIN).await;
        let id = app.user_id(ADMIN).await;
        admin.post_form(&format!("/members/{id}/role"), &[("role", "read-write")]).await;
        assert!(admin.get("/members").await.text(".flash").contains("at least one Admin"));
        admin.post_form(&format!("/members/{id}/remove"), &[]).await;
        assert!(admin.get("/members").await.text(".flash").contains("at least one Admin"));
        admin.post_form(&format!("/members/{id}/disable"), &[]).await;
        assert!(admin.get("/members").await.text(".flash").contains("your own account"));
        let (role, disabled): (String, Option<i64>) = sqlx::query_as("SELECT m.role, u.disabled_at FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.id = $1").bind(id).fetch_one(app.db().pool()).await.unwrap();
        assert_eq!((role.as_str(), disabled), ("admin", None));
    }
}

each_backend! {
    async fn admins_see_every_workspace_token_and_revoke_them_all_after_confirming(app) {
        let (writer_id, writer_token) = app.token_for(WRITER, "writer ci", "read-write").await;
        let (_, admin_token) = app.token_for(ADMIN, "admin ci", "admin").await;
        let admin = app.signed_in(ADMIN).await;
        let page = admin.get("/workspace-tokens").await;
        assert_eq!(page.status, StatusCode::OK);
        let table = page.text("table");
        assert!(table.contains(WRITER) && table.contains("writer ci") && table.contains("admin ci"));
        assert!(!page.body.contains(&writer_token) && !page.body.contains(&admin_token));
        assert!(page.text("#revoke-dialog").contains("2 tokens will stop working"));
        let confirm = admin.get("/workspace-tokens/revoke-all").await;
        assert!(confirm.text("main").contains("2 tokens will stop working"));
        assert_eq!(confirm.text("main form button[type=submit]"), "Yes, revoke all");
        assert_eq!(app.count("personal_access_tokens").await, 2, "asking revokes nothing");

        // One token first, then everything.
        let res = admin.post_form(&format!("/workspace-tokens/{writer_id}/revoke"), &[]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert_eq!(api(&app, Method::GET, "/api/v1/me", Some(&bearer(&writer_token))).await.status, StatusCode::UNAUTHORIZED);
        let action = confirm.attr("main form", "action").unwrap();
        let res = admin.post_form(&action, &[]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert_eq!(app.count("personal_access_tokens").await, 0);
        assert_eq!(api(&app, Method::GET, "/api/v1/me", Some(&bearer(&admin_token))).await.status, StatusCode::UNAUTHORIZED);
        let page = admin.get("/workspace-tokens").await;
        assert!(page.text(".flash").contains("revoked"));
        assert_eq!(page.text("button[disabled]"), "Revoke all");
        // Unknown ids are not found and change nothing.
        assert_eq!(admin.post_form("/workspace-tokens/99999/revoke", &[]).await.status, StatusCode::NOT_FOUND);
    }
}

each_backend! {
    async fn the_audit_log_page_shows_who_did_what_newest_first(app) {
        let writer = app.signed_in(WRITER).await;
        writer.generate(&[("name", "visible in the log")]).await;
        let admin = app.signed_in(ADMIN).await;
        let page = admin.get("/audit-log").await;
        assert_eq!(page.status, StatusCode::OK);
        let rows = page.texts("tbody tr");
        assert!(rows[0].contains("user.signed_in") && rows[0].contains(ADMIN), "{rows:?}");
        assert!(rows.iter().any(|r| r.contains("token.created") && r.contains("visible in the log") && r.contains(WRITER)));
    }
}

each_backend! {
    async fn revoke_all_for_one_member_asks_first_and_leaves_the_others_working(app) {
        let (_, writer_token) = app.token_for(WRITER, "writer ci", "read-write").await;
        let (_, writer_second) = app.token_for(WRITER, "writer laptop", "read-only").await;
        let (_, admin_token) = app.token_for(ADMIN, "admin ci", "admin").await;
        let admin = app.signed_in(ADMIN).await;
        let writer_id = app.user_id(WRITER).await;
        let page = admin.get("/workspace-tokens").await;
        assert_eq!(page.texts("#revoke-member option"), vec![ADMIN, WRITER], "the members who hold tokens");

        let confirm = admin.get(&format!("/workspace-tokens/revoke-all?member={writer_id}")).await;
        assert_eq!(confirm.status, StatusCode::OK);
        assert!(confirm.text("main h1").contains(WRITER), "{}", confirm.text("main h1"));
        assert!(confirm.text("main").contains("2 tokens will stop working"));
        assert_eq!(app.count("personal_access_tokens").await, 3, "asking revokes nothing");

        let action = confirm.attr("main form", "action").unwrap();
        let res = admin.post_form(&action, &[]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        for token in [&writer_token, &writer_second] {
            assert_eq!(api(&app, Method::GET, "/api/v1/me", Some(&bearer(token))).await.status, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(api(&app, Method::GET, "/api/v1/me", Some(&bearer(&admin_token))).await.status, StatusCode::OK, "other members' tokens go on working");
        assert!(admin.get("/workspace-tokens").await.text(".flash").contains(&format!("2 token(s) of {WRITER} revoked")));

        // Someone who is not a member is not found, and nothing changes.
        assert_eq!(admin.get("/workspace-tokens/revoke-all?member=99999").await.status, StatusCode::NOT_FOUND);
        assert_eq!(admin.post_form("/workspace-tokens/revoke-all?member=99999", &[]).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.count("personal_access_tokens").await, 1);
        // Only Admins may.
        let writer = app.signed_in(WRITER).await;
        assert_eq!(writer.get(&format!("/workspace-tokens/revoke-all?member={writer_id}")).await.status, StatusCode::FORBIDDEN);
    }
}
