//! The dashboard: the route table, the page layout and the helpers every
//! page uses. Each page lives in its own file beside its template struct.

pub mod admin;
pub mod errors;
pub mod extractors;
pub mod pages;
pub mod reveal;
pub mod security;
pub mod service_accounts;
pub mod session;
pub mod static_files;
pub mod tokens;
pub mod workspaces;

use actix_session::Session;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::{Deserialize, Serialize};

use crate::service::SignedInUser;
use crate::web::errors::PageError;
use crate::web::extractors::csrf_token;

/// Every URL of the dashboard, in one place.
pub mod urls {
    pub const LOGIN: &str = "/login";
    pub const LOGOUT: &str = "/logout";
    pub const SETUP: &str = "/setup";
    pub const PROFILE: &str = "/profile";
    pub const PASSWORD: &str = "/profile/password";
    pub const TOKENS: &str = "/profile/tokens";
    pub const TOKENS_NEW: &str = "/profile/tokens/new";
    pub const TOKENS_CREATED: &str = "/profile/tokens/created";
    pub const TOKENS_REVOKE_ALL: &str = "/profile/tokens/revoke-all";
    pub const MEMBERS: &str = "/members";
    pub const MEMBERS_INVITE: &str = "/members/invite";
    pub const WORKSPACE_TOKENS: &str = "/workspace-tokens";
    pub const WORKSPACE_TOKENS_REVOKE_ALL: &str = "/workspace-tokens/revoke-all";
    pub const WORKSPACE_TOKENS_POLICY: &str = "/workspace-tokens/policy";
    pub const WORKSPACE_TOKENS_REVOKE_OUTSIDE: &str = "/workspace-tokens/revoke-outside-policy";
    pub const AUDIT_LOG: &str = "/audit-log";
    pub const SERVICE_ACCOUNTS: &str = "/service-accounts";
    pub const WORKSPACES: &str = "/workspaces";
    pub const AUDIT_LOG_EXPORT: &str = "/audit-log/export";

    pub fn token_delete(id: i64) -> String {
        format!("/profile/tokens/{id}/delete")
    }

    /// A service account's page (`rest` empty) or one of its actions.
    pub fn service_account(id: i64, rest: &str) -> String {
        format!("/service-accounts/{id}{rest}")
    }

    pub fn invitation_cancel(id: i64) -> String {
        format!("/members/invitations/{id}/cancel")
    }
}

/// The page routes (the API has its own table in `api`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    use urls::*;
    cfg.route("/", web::get().to(pages::home))
        .route(SETUP, web::get().to(pages::setup_form))
        .route(SETUP, web::post().to(pages::setup_submit))
        .route(LOGIN, web::get().to(pages::login_form))
        .route(LOGIN, web::post().to(pages::login_submit))
        .route(LOGOUT, web::post().to(pages::logout))
        .route(PROFILE, web::get().to(pages::profile))
        .route(PASSWORD, web::post().to(pages::change_password))
        .route(TOKENS, web::get().to(tokens::list))
        .route(TOKENS, web::post().to(tokens::generate))
        .route(TOKENS_NEW, web::get().to(tokens::new_form))
        .route(TOKENS_CREATED, web::get().to(tokens::created))
        .route(TOKENS_REVOKE_ALL, web::get().to(tokens::revoke_all_confirm))
        .route(TOKENS_REVOKE_ALL, web::post().to(tokens::revoke_all))
        .route(
            "/profile/tokens/{id}/delete",
            web::get().to(tokens::delete_confirm),
        )
        .route(
            "/profile/tokens/{id}/delete",
            web::post().to(tokens::delete),
        )
        .route(MEMBERS, web::get().to(admin::members))
        .route(MEMBERS_INVITE, web::post().to(admin::invite))
        .route(
            "/members/invitations/{id}/cancel",
            web::get().to(admin::invitation_cancel_confirm),
        )
        .route(
            "/members/invitations/{id}/cancel",
            web::post().to(admin::invitation_cancel),
        )
        .route(
            "/members/{user_id}/{action}",
            web::post().to(admin::member_action),
        )
        .route(WORKSPACE_TOKENS, web::get().to(admin::workspace_tokens))
        .route(
            WORKSPACE_TOKENS_REVOKE_ALL,
            web::get().to(admin::workspace_revoke_all_confirm),
        )
        .route(
            WORKSPACE_TOKENS_REVOKE_ALL,
            web::post().to(admin::workspace_revoke_all),
        )
        .route(
            WORKSPACE_TOKENS_POLICY,
            web::post().to(admin::workspace_token_policy),
        )
        .route(
            WORKSPACE_TOKENS_REVOKE_OUTSIDE,
            web::get().to(admin::workspace_revoke_outside_confirm),
        )
        .route(
            WORKSPACE_TOKENS_REVOKE_OUTSIDE,
            web::post().to(admin::workspace_revoke_outside),
        )
        .route(
            "/workspace-tokens/{id}/revoke",
            web::post().to(admin::workspace_revoke_one),
        )
        .route(AUDIT_LOG, web::get().to(admin::audit_log))
        .route(WORKSPACES, web::get().to(workspaces::list))
        .route(WORKSPACES, web::post().to(workspaces::create))
        .route(
            "/workspaces/{id}/rename",
            web::post().to(workspaces::rename),
        )
        .route(SERVICE_ACCOUNTS, web::get().to(service_accounts::list))
        .route(SERVICE_ACCOUNTS, web::post().to(service_accounts::create))
        .route(
            "/service-accounts/{id}",
            web::get().to(service_accounts::show),
        )
        .route(
            "/service-accounts/{id}/tokens",
            web::post().to(service_accounts::generate),
        )
        .route(
            "/service-accounts/{id}/tokens/new",
            web::get().to(service_accounts::new_token),
        )
        .route(
            "/service-accounts/{id}/tokens/created",
            web::get().to(service_accounts::created),
        )
        .route(
            "/service-accounts/{id}/tokens/{token_id}/delete",
            web::get().to(service_accounts::delete_token_confirm),
        )
        .route(
            "/service-accounts/{id}/tokens/{token_id}/delete",
            web::post().to(service_accounts::delete_token),
        )
        .route(
            "/service-accounts/{id}/revoke-all",
            web::get().to(service_accounts::revoke_all_confirm),
        )
        .route(
            "/service-accounts/{id}/revoke-all",
            web::post().to(service_accounts::revoke_all),
        )
        .route(
            "/service-accounts/{id}/delete",
            web::get().to(service_accounts::delete_confirm),
        )
        .route(
            "/service-accounts/{id}/delete",
            web::post().to(service_accounts::delete),
        )
        .route(AUDIT_LOG_EXPORT, web::get().to(admin::audit_log_export))
        .route("/invitations/{code}", web::get().to(pages::invitation_form))
        .route(
            "/invitations/{code}",
            web::post().to(pages::invitation_accept),
        );
}

/// A one-time message shown on the next page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flash {
    pub kind: String,
    pub text: String,
}

const FLASH: &str = "flash";

pub fn flash(session: &Session, kind: &str, text: impl Into<String>) -> Result<(), PageError> {
    session.insert(
        FLASH,
        Flash {
            kind: kind.to_owned(),
            text: text.into(),
        },
    )?;
    Ok(())
}

/// The left panel's view of the signed-in member.
pub struct NavUser {
    pub name: String,
    pub email: String,
    pub is_admin: bool,
}

/// The left panel's workspace choice, on the pages of one workspace, for
/// Admins of several: a GET form back to the same page.
pub struct WorkspaceSwitch {
    pub action: &'static str,
    pub choices: Vec<(i64, String, bool)>,
}

/// What the base layout needs: title, left panel, CSRF token, flash.
pub struct Layout {
    pub title: String,
    pub user: Option<NavUser>,
    pub csrf: String,
    pub flash: Option<Flash>,
    /// The active left-panel item.
    pub nav: &'static str,
    pub workspace_switch: Option<WorkspaceSwitch>,
    /// `?workspace=N` on the Admin links while a page is about workspace N
    /// (empty otherwise), so an Admin of several stays in the chosen one.
    pub workspace_query: String,
}

impl Layout {
    pub fn new(
        session: &Session,
        user: Option<&SignedInUser>,
        title: &str,
        nav: &'static str,
    ) -> Result<Self, PageError> {
        // Removing only what is there: a removal marks the session changed,
        // and a changed session is written back.
        let flash = match session.get::<Flash>(FLASH) {
            Ok(Some(_)) => session.remove_as::<Flash>(FLASH).and_then(Result::ok),
            _ => None,
        };
        Ok(Self {
            title: title.to_owned(),
            user: user.map(|u| NavUser {
                name: u.name.clone(),
                email: u.email.clone(),
                is_admin: u.is_admin(),
            }),
            csrf: csrf_token(session)?,
            flash,
            nav,
            workspace_switch: None,
            workspace_query: String::new(),
        })
    }

    /// For a page about workspace `current` at `path`: the left panel
    /// offers the other workspaces the member administers, and its links
    /// keep the workspace.
    pub fn in_workspace(
        mut self,
        user: &SignedInUser,
        current: &crate::service::Membership,
        path: &'static str,
    ) -> Self {
        let administered: Vec<_> = user
            .memberships
            .iter()
            .filter(|m| m.role == crate::domain::Role::Admin)
            .collect();
        if administered.len() > 1 {
            self.workspace_switch = Some(WorkspaceSwitch {
                action: path,
                choices: administered
                    .iter()
                    .map(|m| {
                        (
                            m.workspace_id.0,
                            m.workspace_name.clone(),
                            m.workspace_id == current.workspace_id,
                        )
                    })
                    .collect(),
            });
        }
        self.workspace_query = format!("?workspace={}", current.workspace_id);
        self
    }
}

/// Renders a page with a status.
pub fn render(
    status: actix_web::http::StatusCode,
    page: &impl Template,
) -> Result<HttpResponse, PageError> {
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(page.render()?))
}

pub fn ok(page: &impl Template) -> Result<HttpResponse, PageError> {
    render(actix_web::http::StatusCode::OK, page)
}

/// 303 See Other: the answer to a successful form (Post/Redirect/Get).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// Unix seconds as people read them: `2026-11-28 14:03 UTC`.
pub fn format_time(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// A date without the time, for expiry columns: `2027-02-26`.
pub fn format_date(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}
