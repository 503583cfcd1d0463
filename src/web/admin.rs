//! The Admin pages: Members, Workspace tokens, Audit log. Each handler asks
//! the actor which workspace the page is about (`?workspace=`, else the first
//! one they administer), and the services decide what the actor may do
//! there: anyone but an Admin of it gets 403.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::config::Config;
use crate::domain::{
    AccountKind, LIFETIME_DAYS, Role, TokenId, TokenPolicy, UserId, WorkspaceId, lifetime_label,
};
use crate::request::request_origin;
use crate::service::audit::{AuditFilter, AuditFilterInput};
use crate::service::export::ExportFormat;
use crate::service::members::{Delivery, Invitation, MembersOverview};
use crate::service::policy::{PolicyRequest, PolicySaved};
use crate::service::{Actor, Membership, ServiceError, SignedInUser, Tollgate};
use crate::web::errors::PageError;
use crate::web::extractors::{ClientMeta, CsrfForm, CurrentActor};
use crate::web::pages::EmptyForm;
use crate::web::tokens::{
    Choice, ConfirmPage, LeakNoticeView, TokenView, expiring_notice, revoke_all_message,
};
use crate::web::{Layout, flash, format_time, ok, render, see_other, urls};

type App = web::Data<Tollgate>;

#[derive(Deserialize)]
pub struct WorkspaceQuery {
    workspace: Option<i64>,
    after: Option<i64>,
    /// Revoke all: only this member's tokens.
    member: Option<i64>,
}

#[derive(Deserialize)]
pub struct WorkspaceField {
    workspace: Option<i64>,
}

/// The workspace the page is about, as the actor resolves it.
pub(crate) fn workspace_of(actor: &Actor, workspace: Option<i64>) -> Result<Membership, PageError> {
    Ok(actor.admin_workspace(workspace.map(WorkspaceId))?)
}

/// `?workspace=` for links, so an Admin of several workspaces stays in one.
fn with_workspace(url: &str, ws: &Membership) -> String {
    format!("{url}?workspace={}", ws.workspace_id)
}

// ---- Members ---------------------------------------------------------------

pub struct MemberView {
    pub user_id: i64,
    pub name: String,
    pub email: String,
    pub role: &'static str,
    pub disabled: bool,
    pub joined: String,
    pub is_self: bool,
}

pub struct InvitationView {
    pub email: String,
    pub role: &'static str,
    pub expires: String,
    /// Who sent it.
    pub inviter: String,
    /// The no-script confirmation page, and the form's action.
    pub cancel_url: String,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    layout: Layout,
    workspace: Membership,
    members: Vec<MemberView>,
    invitations: Vec<InvitationView>,
    roles: Vec<(&'static str, &'static str)>,
    invite_email: String,
    invite_role: String,
    invite_error: Option<String>,
    invite_link: Option<String>,
    /// Whether the invitation can be emailed (SMTP is configured).
    mail_enabled: bool,
    next: Option<i64>,
}

struct InviteState {
    email: String,
    role: String,
    error: Option<String>,
    link: Option<String>,
}

async fn members_page(
    app: &Tollgate,
    session: &Session,
    actor: &Actor,
    user: &SignedInUser,
    ws: Membership,
    after: Option<i64>,
    invite: InviteState,
) -> Result<MembersPage, PageError> {
    let MembersOverview {
        members: page,
        invitations,
    } = app
        .members_overview(actor, ws.workspace_id, after, app.now())
        .await?;
    Ok(MembersPage {
        layout: Layout::new(session, Some(user), "Members", "members")?.in_workspace(
            user,
            &ws,
            urls::MEMBERS,
        ),
        members: page
            .items
            .iter()
            .map(|m| MemberView {
                user_id: m.user_id.0,
                name: m.name.clone(),
                email: m.email.clone(),
                role: m.role.label(),
                disabled: m.disabled_at.is_some(),
                joined: format_time(m.joined_at),
                is_self: m.user_id == user.id,
            })
            .collect(),
        invitations: invitations
            .iter()
            .map(|i| InvitationView {
                email: i.email.clone(),
                role: i.role.label(),
                expires: format_time(i.expires_at),
                inviter: i.inviter_email.clone(),
                cancel_url: format!(
                    "{}?workspace={}",
                    urls::invitation_cancel(i.id),
                    ws.workspace_id
                ),
            })
            .collect(),
        roles: Role::ALL
            .iter()
            .rev()
            .map(|r| (r.as_str(), r.label()))
            .collect(),
        invite_email: invite.email,
        invite_role: invite.role,
        invite_error: invite.error,
        invite_link: invite.link,
        mail_enabled: app.mail_enabled(),
        next: page.next_cursor,
        workspace: ws,
    })
}

pub async fn members(
    app: App,
    session: Session,
    current: CurrentActor,
    query: web::Query<WorkspaceQuery>,
) -> Result<HttpResponse, PageError> {
    let (actor, user) = (&current.0, current.user()?);
    let ws = workspace_of(actor, query.workspace)?;
    let invite = InviteState {
        email: String::new(),
        role: Role::ReadWrite.as_str().to_owned(),
        error: None,
        link: None,
    };
    ok(&members_page(&app, &session, actor, user, ws, query.after, invite).await?)
}

#[derive(Deserialize)]
pub struct InviteForm {
    workspace: Option<i64>,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
    /// The "Send the link by email" checkbox.
    send_email: Option<String>,
}

pub async fn invite(
    app: App,
    config: web::Data<Config>,
    req: actix_web::HttpRequest,
    session: Session,
    current: CurrentActor,
    ClientMeta(meta): ClientMeta,
    CsrfForm(form): CsrfForm<InviteForm>,
) -> Result<HttpResponse, PageError> {
    let (actor, user) = (&current.0, current.user()?);
    let ws = workspace_of(actor, form.workspace)?;
    let origin = request_origin(&req, &config);
    let delivery = Delivery {
        origin: &origin,
        by_email: form.send_email.is_some(),
    };
    match app
        .invite_member(
            actor,
            ws.workspace_id,
            &form.email,
            &form.role,
            &delivery,
            &meta,
            app.now(),
        )
        .await
    {
        Ok(Invitation {
            link,
            email,
            role,
            emailed,
            ..
        }) => {
            let (kind, text) = match emailed {
                Some(true) => (
                    "success",
                    format!(
                        "Invitation for {email} ({}) emailed. The link in it works once, for 7 days.",
                        role.label()
                    ),
                ),
                Some(false) => (
                    "error",
                    format!(
                        "Invitation for {email} ({}) created, but the email could not be sent. Send them the link below yourself; it works once, for 7 days.",
                        role.label()
                    ),
                ),
                None => (
                    "success",
                    format!(
                        "Invitation for {email} ({}) created. Send them the link below; it works once, for 7 days.",
                        role.label()
                    ),
                ),
            };
            flash(&session, kind, text)?;
            let invite = InviteState {
                email: String::new(),
                role: Role::ReadWrite.as_str().to_owned(),
                error: None,
                link: (emailed != Some(true)).then_some(link),
            };
            ok(&members_page(&app, &session, actor, user, ws, None, invite).await?)
        }
        Err(ServiceError::Invalid { message, .. } | ServiceError::Conflict { message, .. }) => {
            let invite = InviteState {
                email: form.email,
                role: form.role,
                error: Some(message),
                link: None,
            };
            render(
                StatusCode::UNPROCESSABLE_ENTITY,
                &members_page(&app, &session, actor, user, ws, None, invite).await?,
            )
        }
        Err(err) => Err(err.into()),
    }
}

/// The form behind every per-member button of the Members page.
#[derive(Deserialize)]
pub struct MemberForm {
    workspace: Option<i64>,
    role: Option<String>,
}

/// `POST /members/{user_id}/{action}`: `role`, `disable`, `enable` or `remove`.
pub async fn member_action(
    app: App,
    session: Session,
    current: CurrentActor,
    ClientMeta(meta): ClientMeta,
    path: web::Path<(i64, String)>,
    CsrfForm(form): CsrfForm<MemberForm>,
) -> Result<HttpResponse, PageError> {
    let actor = &current.0;
    let ws = workspace_of(actor, form.workspace)?;
    let (member, action) = path.into_inner();
    let (member, now) = (UserId(member), app.now());
    let (result, done) = match action.as_str() {
        "role" => {
            let role = form.role.unwrap_or_default();
            let result = app
                .set_member_role(actor, ws.workspace_id, member, &role, &meta, now)
                .await;
            (
                result,
                "Role changed. The member's tokens follow the new role at once.",
            )
        }
        "disable" | "enable" => {
            let disabled = action == "disable";
            let result = app
                .set_member_disabled(actor, ws.workspace_id, member, disabled, &meta, now)
                .await;
            let done = if disabled {
                "Member disabled: they are signed out and their tokens stop working."
            } else {
                "Member enabled again."
            };
            (result, done)
        }
        "remove" => {
            let result = app
                .remove_member(actor, ws.workspace_id, member, &meta, now)
                .await;
            (
                result,
                "Member removed from the workspace; their tokens there are revoked.",
            )
        }
        _ => return Err(PageError::NotFound),
    };
    finish_member_change(&session, &ws, result, done)
}

fn finish_member_change(
    session: &Session,
    ws: &Membership,
    result: Result<(), ServiceError>,
    done: &str,
) -> Result<HttpResponse, PageError> {
    match result {
        Ok(()) => flash(session, "success", done)?,
        Err(ServiceError::Invalid { message, .. } | ServiceError::Conflict { message, .. }) => {
            flash(session, "error", message)?
        }
        Err(err) => return Err(err.into()),
    }
    Ok(see_other(&with_workspace(urls::MEMBERS, ws)))
}

/// `GET /members/invitations/{id}/cancel`: the confirmation without script.
pub async fn invitation_cancel_confirm(
    app: App,
    session: Session,
    current: CurrentActor,
    id: web::Path<i64>,
    query: web::Query<WorkspaceQuery>,
) -> Result<HttpResponse, PageError> {
    let (actor, user) = (&current.0, current.user()?);
    let ws = workspace_of(actor, query.workspace)?;
    let invitation = app
        .pending_invitation(actor, ws.workspace_id, *id, app.now())
        .await?;
    ok(&ConfirmPage {
        layout: Layout::new(&session, Some(user), "Cancel invitation", "members")?,
        heading: format!("Cancel the invitation for {}?", invitation.email),
        message: "The invitation link stops working at once. You can invite them again later."
            .to_owned(),
        action: format!(
            "{}?workspace={}",
            urls::invitation_cancel(invitation.id),
            ws.workspace_id
        ),
        confirm: "Yes, cancel invitation",
        cancel: urls::MEMBERS,
    })
}

/// `POST /members/invitations/{id}/cancel`.
pub async fn invitation_cancel(
    app: App,
    session: Session,
    current: CurrentActor,
    ClientMeta(meta): ClientMeta,
    id: web::Path<i64>,
    query: web::Query<WorkspaceQuery>,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<HttpResponse, PageError> {
    let actor = &current.0;
    let ws = workspace_of(actor, query.workspace)?;
    let invitation = app
        .cancel_invitation(actor, ws.workspace_id, *id, &meta, app.now())
        .await?;
    flash(
        &session,
        "success",
        format!(
            "Invitation for {} cancelled. Its link no longer works.",
            invitation.email
        ),
    )?;
    Ok(see_other(&with_workspace(urls::MEMBERS, &ws)))
}

// ---- Workspace tokens --------------------------------------------------------

/// The Token policy section: the form as stored or as typed.
pub struct PolicyView {
    pub lifetimes: Vec<Choice>,
    pub require_expiry: bool,
    pub summary: String,
    pub error: Option<String>,
}

impl PolicyView {
    fn stored(policy: TokenPolicy) -> Self {
        let max = policy
            .max_lifetime_days()
            .map_or_else(|| "none".to_owned(), |d| d.to_string());
        Self::new(&max, policy.requires_expiry(), policy, None)
    }

    fn new(max: &str, require_expiry: bool, stored: TokenPolicy, error: Option<String>) -> Self {
        let mut lifetimes = vec![Choice {
            value: "none".to_owned(),
            label: "No maximum".to_owned(),
            selected: max == "none" || max.is_empty(),
        }];
        lifetimes.extend(LIFETIME_DAYS.iter().map(|d| Choice {
            value: d.to_string(),
            label: lifetime_label(*d),
            selected: max == d.to_string(),
        }));
        Self {
            lifetimes,
            require_expiry,
            summary: stored.summary(),
            error,
        }
    }
}

#[derive(Template)]
#[template(path = "workspace_tokens.html")]
struct WorkspaceTokensPage {
    layout: Layout,
    workspace: Membership,
    tokens: Vec<TokenView>,
    total: i64,
    revoke_message: String,
    /// The members who hold tokens (id, email), for revoking one member's.
    owners: Vec<(i64, String)>,
    next: Option<i64>,
    leaks: Vec<LeakNoticeView>,
    policy: PolicyView,
    /// Live tokens the policy would not allow today.
    outside: Vec<TokenView>,
    outside_message: String,
    /// Which tokens expire within the notice window, when any do.
    expiring: Option<String>,
}

async fn workspace_tokens_page(
    app: &Tollgate,
    session: &Session,
    current: &CurrentActor,
    ws: Membership,
    after: Option<i64>,
    typed_policy: Option<(PolicyRequest, String)>,
) -> Result<WorkspaceTokensPage, PageError> {
    let (actor, user) = (&current.0, current.user()?);
    let page = app
        .workspace_tokens(actor, ws.workspace_id, after, Some(200))
        .await?;
    let total = app.count_workspace_tokens(actor, ws.workspace_id).await?;
    let now = app.now();
    let leaks = app
        .leak_notices_for_workspace(actor, ws.workspace_id, now)
        .await?;
    // Members only: a service account's tokens are revoked on its own page.
    let mut owners: Vec<(i64, String)> = page
        .items
        .iter()
        .filter(|t| t.owner_kind == AccountKind::Member)
        .map(|t| (t.user_id.0, t.owner_email.clone()))
        .collect();
    owners.sort_by(|a, b| a.1.cmp(&b.1));
    owners.dedup();
    let stored = app.token_policy(ws.workspace_id).await?;
    let policy = match typed_policy {
        Some((typed, error)) => PolicyView::new(
            &typed.max_lifetime,
            typed.require_expiry.is_some(),
            stored,
            Some(error),
        ),
        None => PolicyView::stored(stored),
    };
    let outside: Vec<TokenView> = app
        .tokens_outside_policy(actor, ws.workspace_id, now)
        .await?
        .iter()
        .map(|t| TokenView::new(t, now))
        .collect();
    let tokens: Vec<TokenView> = page.items.iter().map(|t| TokenView::new(t, now)).collect();
    Ok(WorkspaceTokensPage {
        layout: Layout::new(session, Some(user), "Workspace tokens", "workspace-tokens")?
            .in_workspace(user, &ws, urls::WORKSPACE_TOKENS),
        leaks: leaks.iter().map(|r| LeakNoticeView::new(r, true)).collect(),
        owners,
        expiring: expiring_notice(&tokens),
        tokens,
        total,
        revoke_message: revoke_all_message(total as usize),
        next: page.next_cursor,
        policy,
        outside_message: revoke_all_message(outside.len()),
        outside,
        workspace: ws,
    })
}

pub async fn workspace_tokens(
    app: App,
    session: Session,
    current: CurrentActor,
    query: web::Query<WorkspaceQuery>,
) -> Result<HttpResponse, PageError> {
    let ws = workspace_of(&current.0, query.workspace)?;
    ok(&workspace_tokens_page(&app, &session, &current, ws, query.after, None).await?)
}

#[derive(Deserialize)]
pub struct PolicyForm {
    workspace: Option<i64>,
    #[serde(default)]
    max_lifetime: String,
    require_expiry: Option<String>,
}

/// `POST /workspace-tokens/policy`: the Token policy section's form.
pub async fn workspace_token_policy(
    app: App,
    session: Session,
    current: CurrentActor,
    ClientMeta(meta): ClientMeta,
    CsrfForm(form): CsrfForm<PolicyForm>,
) -> Result<HttpResponse, PageError> {
    let actor = &current.0;
    let ws = workspace_of(actor, form.workspace)?;
    let request = PolicyRequest {
        max_lifetime: form.max_lifetime,
        require_expiry: form.require_expiry,
    };
    match app
        .set_token_policy(actor, ws.workspace_id, &request, &meta, app.now())
        .await
    {
        Ok(PolicySaved { policy, outside }) => {
            let text = match outside.len() {
                0 => format!("Token policy saved: {}.", policy.summary()),
                n => format!(
                    "Token policy saved: {}. {n} existing token(s) are outside it and keep working until you revoke them.",
                    policy.summary()
                ),
            };
            flash(&session, "success", text)?;
            Ok(see_other(&format!(
                "{}#token-policy",
                with_workspace(urls::WORKSPACE_TOKENS, &ws)
            )))
        }
        Err(ServiceError::Invalid { message, .. }) => render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &workspace_tokens_page(&app, &session, &current, ws, None, Some((request, message)))
                .await?,
        ),
        Err(err) => Err(err.into()),
    }
}

/// `GET /workspace-tokens/revoke-outside-policy`: the confirmation without script.
pub async fn workspace_revoke_outside_confirm(
    app: App,
    session: Session,
    current: CurrentActor,
    query: web::Query<WorkspaceQuery>,
) -> Result<HttpResponse, PageError> {
    let (actor, user) = (&current.0, current.user()?);
    let ws = workspace_of(actor, query.workspace)?;
    let count = app
        .tokens_outside_policy(actor, ws.workspace_id, app.now())
        .await?
        .len();
    if count == 0 {
        flash(&session, "info", "No token is outside the token policy.")?;
        return Ok(see_other(&with_workspace(urls::WORKSPACE_TOKENS, &ws)));
    }
    ok(&ConfirmPage {
        layout: Layout::new(
            &session,
            Some(user),
            "Revoke tokens outside the policy",
            "workspace-tokens",
        )?,
        heading: format!(
            "Revoke the tokens outside {}'s token policy?",
            ws.workspace_name
        ),
        message: revoke_all_message(count),
        action: with_workspace(urls::WORKSPACE_TOKENS_REVOKE_OUTSIDE, &ws),
        confirm: "Yes, revoke them",
        cancel: urls::WORKSPACE_TOKENS,
    })
}

/// `POST /workspace-tokens/revoke-outside-policy`.
pub async fn workspace_revoke_outside(
    app: App,
    session: Session,
    current: CurrentActor,
    ClientMeta(meta): ClientMeta,
    query: web::Query<WorkspaceQuery>,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<HttpResponse, PageError> {
    let actor = &current.0;
    let ws = workspace_of(actor, query.workspace)?;
    let count = app
        .revoke_tokens_outside_policy(actor, ws.workspace_id, &meta, app.now())
        .await?;
    let text = match count {
        0 => "No token was outside the token policy.".to_owned(),
        n => format!("{n} token(s) outside the token policy revoked. They no longer work."),
    };
    flash(&session, "success", text)?;
    Ok(see_other(&with_workspace(urls::WORKSPACE_TOKENS, &ws)))
}

pub async fn workspace_revoke_all_confirm(
    app: App,
    session: Session,
    current: CurrentActor,
    query: web::Query<WorkspaceQuery>,
) -> Result<HttpResponse, PageError> {
    let (actor, user) = (&current.0, current.user()?);
    let ws = workspace_of(actor, query.workspace)?;
    let (heading, total, action) = match query.member {
        Some(member) => {
            let (email, count) = app
                .member_token_count(actor, ws.workspace_id, UserId(member))
                .await?;
            (
                format!("Revoke every token of {email}?"),
                count,
                format!(
                    "{}&member={member}",
                    with_workspace(urls::WORKSPACE_TOKENS_REVOKE_ALL, &ws)
                ),
            )
        }
        None => (
            format!("Revoke every token in {}?", ws.workspace_name),
            app.count_workspace_tokens(actor, ws.workspace_id).await?,
            with_workspace(urls::WORKSPACE_TOKENS_REVOKE_ALL, &ws),
        ),
    };
    ok(&ConfirmPage {
        layout: Layout::new(
            &session,
            Some(user),
            "Revoke all workspace tokens",
            "workspace-tokens",
        )?,
        heading,
        message: revoke_all_message(total as usize),
        action,
        confirm: "Yes, revoke all",
        cancel: urls::WORKSPACE_TOKENS,
    })
}

pub async fn workspace_revoke_all(
    app: App,
    session: Session,
    current: CurrentActor,
    ClientMeta(meta): ClientMeta,
    query: web::Query<WorkspaceQuery>,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<HttpResponse, PageError> {
    let actor = &current.0;
    let ws = workspace_of(actor, query.workspace)?;
    let member = query.member.map(UserId);
    let revoked = app
        .revoke_workspace_tokens(actor, ws.workspace_id, member, &meta, app.now())
        .await?;
    let count = revoked.count;
    let done = match revoked.member_email {
        Some(whose) => format!("{count} token(s) of {whose} revoked. They no longer work."),
        None => format!(
            "{count} token(s) revoked in {}. They no longer work.",
            ws.workspace_name
        ),
    };
    flash(&session, "success", done)?;
    Ok(see_other(&with_workspace(urls::WORKSPACE_TOKENS, &ws)))
}

pub async fn workspace_revoke_one(
    app: App,
    session: Session,
    current: CurrentActor,
    ClientMeta(meta): ClientMeta,
    id: web::Path<i64>,
    CsrfForm(form): CsrfForm<WorkspaceField>,
) -> Result<HttpResponse, PageError> {
    let actor = &current.0;
    let ws = workspace_of(actor, form.workspace)?;
    let token = app
        .revoke_workspace_token(actor, ws.workspace_id, TokenId(*id), &meta, app.now())
        .await?;
    flash(
        &session,
        "success",
        format!("Token “{}” of {} revoked.", token.name, token.owner_label()),
    )?;
    Ok(see_other(&with_workspace(urls::WORKSPACE_TOKENS, &ws)))
}

// ---- Audit log ---------------------------------------------------------------

pub struct AuditView {
    pub when: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub ip: String,
}

#[derive(Template)]
#[template(path = "audit_log.html")]
struct AuditLogPage {
    layout: Layout,
    workspace: Membership,
    events: Vec<AuditView>,
    older: Option<String>,
    filter: AuditFilterView,
    actions: Vec<String>,
    /// The form's error: (field, message).
    error: Option<(&'static str, String)>,
    /// Download links of the filtered view; `None` while the filter is bad.
    export_csv: Option<String>,
    export_jsonl: Option<String>,
}

/// The filter as typed, to fill the form again.
#[derive(Default, Clone)]
pub struct AuditFilterView {
    pub actor: String,
    pub action: String,
    pub from: String,
    pub to: String,
}

impl AuditFilterView {
    fn input(&self) -> AuditFilterInput {
        AuditFilterInput {
            actor: Some(self.actor.clone()),
            action: Some(self.action.clone()),
            from: Some(self.from.clone()),
            to: Some(self.to.clone()),
        }
    }

    /// A URL of the audit pages that keeps this filter (empty fields left out).
    fn url(&self, path: &str, ws: &Membership, extra: &[(&str, String)]) -> String {
        let mut pairs: Vec<(&str, String)> = vec![("workspace", ws.workspace_id.to_string())];
        for (name, value) in [
            ("actor", &self.actor),
            ("action", &self.action),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if !value.trim().is_empty() {
                pairs.push((name, value.clone()));
            }
        }
        pairs.extend(extra.iter().cloned());
        format!(
            "{path}?{}",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    }
}

#[derive(Deserialize)]
pub struct AuditPageQuery {
    workspace: Option<i64>,
    before: Option<i64>,
    format: Option<String>,
    // Not a flattened `AuditFilterView`: flattening makes serde_urlencoded
    // read `workspace` and `before` as text, and refuse them.
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

impl AuditPageQuery {
    fn filter(&self) -> AuditFilterView {
        AuditFilterView {
            actor: self.actor.clone(),
            action: self.action.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
        }
    }
}

pub async fn audit_log(
    app: App,
    session: Session,
    current: CurrentActor,
    query: web::Query<AuditPageQuery>,
) -> Result<HttpResponse, PageError> {
    let (actor, user) = (&current.0, current.user()?);
    let ws = workspace_of(actor, query.workspace)?;
    let typed = query.filter();
    let actions = app.audit_actions(actor, ws.workspace_id).await?;
    let layout = Layout::new(&session, Some(user), "Audit log", "audit-log")?.in_workspace(
        user,
        &ws,
        urls::AUDIT_LOG,
    );
    let filter = match AuditFilter::parse(&typed.input()) {
        Ok(filter) => filter,
        Err(ServiceError::Invalid { field, message }) => {
            return render(
                StatusCode::BAD_REQUEST,
                &AuditLogPage {
                    layout,
                    events: Vec::new(),
                    older: None,
                    filter: typed,
                    actions,
                    error: Some((field, message)),
                    export_csv: None,
                    export_jsonl: None,
                    workspace: ws,
                },
            );
        }
        Err(err) => return Err(err.into()),
    };
    let page = app
        .audit_log(actor, ws.workspace_id, &filter, query.before, Some(100))
        .await?;
    let export = |format: &str| {
        typed.url(
            urls::AUDIT_LOG_EXPORT,
            &ws,
            &[("format", format.to_owned())],
        )
    };
    ok(&AuditLogPage {
        layout,
        events: page
            .items
            .into_iter()
            .map(|e| AuditView {
                when: format_time(e.created_at),
                actor: e.actor_label,
                action: e.action,
                target: e.target_label,
                detail: e.detail,
                ip: e.ip,
            })
            .collect(),
        older: page
            .next_cursor
            .map(|c| typed.url(urls::AUDIT_LOG, &ws, &[("before", c.to_string())])),
        export_csv: Some(export("csv")),
        export_jsonl: Some(export("jsonl")),
        filter: typed,
        actions,
        error: None,
        workspace: ws,
    })
}

/// `GET /audit-log/export?format=csv|jsonl&…`: the filtered log as a
/// download, for the workspace's Admins.
pub async fn audit_log_export(
    app: App,
    current: CurrentActor,
    query: web::Query<AuditPageQuery>,
) -> Result<HttpResponse, PageError> {
    let actor = &current.0;
    let ws = workspace_of(actor, query.workspace)?;
    let format = ExportFormat::parse(query.format.as_deref().unwrap_or("csv"))
        .map_err(|e| PageError::BadRequest(e.0))?;
    let filter = AuditFilter::parse(&query.filter().input())?;
    Ok(crate::download::audit_export(
        format,
        app.audit_export(actor, ws.workspace_id, &filter)?,
    ))
}
