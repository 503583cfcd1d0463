//! What the API sends: plain serialisable shapes built from service results.
//! No DTO has a field for a token's digest; only `IssuedTokenDto` carries a
//! secret, and only the response that created it uses it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::{AccountKind, TokenPolicy, display_hint};
use crate::service::notices::expires_soon;
use crate::service::{Membership, Principal};
use crate::storage::audit::AuditRow;
use crate::storage::organizations::MemberRow;
use crate::storage::service_accounts::ServiceAccountRow;
use crate::storage::tokens::TokenRow;

/// RFC 3339 for times, as JSON clients expect.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[derive(Serialize, ToSchema)]
pub struct Named<'a> {
    pub id: i64,
    pub name: Cow<'a, str>,
}

// The caller's description (`GET /api/v1/me`) borrows from the caller, so
// answering it copies no string before the JSON.

/// The account a token belongs to: a member, or a service account (which
/// has no email).
#[derive(Serialize, ToSchema)]
pub struct UserDto<'a> {
    pub id: i64,
    /// `null` for a service account.
    pub email: Option<&'a str>,
    pub name: &'a str,
}

#[derive(Serialize, ToSchema)]
pub struct CallerTokenDto<'a> {
    pub id: i64,
    pub name: &'a str,
    #[schema(value_type = String, pattern = "^(read-only|read-write|admin)$")]
    pub scope: &'static str,
    #[schema(value_type = String, pattern = "^(read-only|read-write|admin)$")]
    pub effective_scope: &'static str,
    pub expires_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MeDto<'a> {
    /// What the caller is: a member's token, or a service account's.
    #[schema(value_type = String, pattern = "^(member|service_account)$")]
    pub kind: &'static str,
    pub user: UserDto<'a>,
    pub workspace: Named<'a>,
    #[schema(value_type = String, pattern = "^(read-only|read-write|admin)$")]
    pub role: &'static str,
    pub token: CallerTokenDto<'a>,
}

impl<'a> From<&'a Principal> for MeDto<'a> {
    fn from(p: &'a Principal) -> Self {
        Self {
            kind: p.kind.as_str(),
            user: UserDto {
                id: p.user_id.0,
                email: (p.kind == AccountKind::Member).then_some(&*p.email),
                name: &p.user_name,
            },
            workspace: Named {
                id: p.workspace_id.0,
                name: Cow::Borrowed(&p.workspace_name),
            },
            role: p.role.as_str(),
            token: CallerTokenDto {
                id: p.token_id.0,
                name: &p.token_name,
                scope: p.scope.as_str(),
                effective_scope: p.effective().as_str(),
                expires_at: p.expires_at.map(rfc3339),
            },
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct OwnerDto {
    pub id: i64,
    /// `member`, or `service_account` for a service token.
    #[schema(value_type = String, pattern = "^(member|service_account)$")]
    pub kind: &'static str,
    /// `null` for a service account.
    pub email: Option<String>,
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenDto {
    pub id: i64,
    pub name: String,
    #[schema(value_type = String, pattern = "^(read-only|read-write|admin)$")]
    pub scope: &'static str,
    /// `tgp_…last4`, to tell tokens apart.
    pub hint: String,
    pub workspace: Named<'static>,
    pub owner: OwnerDto,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    /// True while the token is live and expires within the notice window
    /// (7 days): the tokens the pages flag with "Expires soon".
    pub expires_soon: bool,
}

impl TokenDto {
    /// The token as the API shows it at `now` (which decides `expires_soon`).
    pub fn new(t: &TokenRow, now: i64) -> Self {
        Self {
            id: t.id.0,
            name: t.name.clone(),
            scope: t.scope.as_str(),
            hint: display_hint(&t.last4),
            workspace: Named {
                id: t.workspace_id.0,
                name: Cow::Owned(t.workspace_name.clone()),
            },
            owner: OwnerDto {
                id: t.user_id.0,
                kind: t.owner_kind.as_str(),
                email: (t.owner_kind == AccountKind::Member).then(|| t.owner_email.clone()),
                name: t.owner_name.clone(),
            },
            created_at: rfc3339(t.created_at),
            expires_at: t.expires_at.map(rfc3339),
            last_used_at: t.last_used_at.map(rfc3339),
            expires_soon: expires_soon(t.expires_at, now),
        }
    }
}

/// The answer to a rotation: the only response that carries a secret.
#[derive(Serialize, ToSchema)]
pub struct IssuedTokenDto {
    pub token: String,
    #[serde(flatten)]
    pub metadata: TokenDto,
}

#[derive(Serialize, ToSchema)]
pub struct MemberDto {
    pub id: i64,
    pub email: String,
    pub name: String,
    #[schema(value_type = String, pattern = "^(read-only|read-write|admin)$")]
    pub role: &'static str,
    pub disabled: bool,
    pub joined_at: String,
}

impl From<&MemberRow> for MemberDto {
    fn from(m: &MemberRow) -> Self {
        Self {
            id: m.user_id.0,
            email: m.email.clone(),
            name: m.name.clone(),
            role: m.role.as_str(),
            disabled: m.disabled_at.is_some(),
            joined_at: rfc3339(m.joined_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditEventDto {
    pub id: i64,
    pub action: String,
    pub actor: ActorDto,
    pub target: TargetDto,
    pub detail: String,
    pub ip: String,
    pub user_agent: String,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct ActorDto {
    pub user_id: Option<i64>,
    pub token_id: Option<i64>,
    pub label: String,
}

#[derive(Serialize, ToSchema)]
pub struct TargetDto {
    pub id: Option<i64>,
    pub label: String,
}

impl From<AuditRow> for AuditEventDto {
    fn from(e: AuditRow) -> Self {
        Self {
            id: e.id,
            action: e.action,
            actor: ActorDto {
                user_id: e.actor_user_id,
                token_id: e.actor_token_id,
                label: e.actor_label,
            },
            target: TargetDto {
                id: e.target_id,
                label: e.target_label,
            },
            detail: e.detail,
            ip: e.ip,
            user_agent: e.user_agent,
            created_at: rfc3339(e.created_at),
        }
    }
}

/// A page of a list: `next_cursor` is `null` on the last page.
#[derive(Serialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Opaque: pass it back as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// Opaque: the `next_cursor` of the previous page, as given. Anything
    /// else answers 400 `invalid_query`.
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RevokedDto {
    pub revoked: usize,
}

/// An empty body, or `{}`, revokes every token of the workspace.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeAllRequest {
    /// Absent: the whole workspace. Present, it must be a member's id:
    /// `null` is refused rather than read as "everyone".
    #[serde(default, deserialize_with = "some_integer")]
    #[schema(required = false, value_type = i64)]
    pub user_id: Option<i64>,
}

fn some_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    i64::deserialize(d).map(Some)
}

/// One entry of a leaked-token report, in the shape GitHub secret scanning
/// (and scanners following it) send. Only `token` is required.
#[derive(Deserialize, ToSchema)]
pub struct LeakReportDto {
    /// The secret that was found.
    pub token: String,
    /// The scanner's name for the kind of secret, e.g. `tollgate_pat`.
    #[serde(default, rename = "type")]
    #[schema(required = false, value_type = String)]
    pub kind: Option<String>,
    /// Where it was found.
    #[serde(default)]
    #[schema(required = false, value_type = String)]
    pub url: Option<String>,
    /// What found it, e.g. `content`, `commit`, `gitleaks`.
    #[serde(default)]
    #[schema(required = false, value_type = String)]
    pub source: Option<String>,
}

/// The verdict on one reported entry, in the order sent (GitHub's partner
/// feedback shape). Nothing else about the token is revealed.
#[derive(Serialize, ToSchema)]
pub struct LeakLabelDto {
    /// The token as reported.
    pub token_raw: String,
    /// The `type` as reported (empty when none was sent).
    pub token_type: String,
    /// `true_positive`: it was a live token and is revoked now.
    /// `false_positive`: malformed, unknown, expired or already revoked.
    #[schema(value_type = String, pattern = "^(true_positive|false_positive)$")]
    pub label: &'static str,
}

/// Paging and filters of `GET /api/v1/audit-log`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditLogQuery {
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// Opaque: the `next_cursor` of the previous page, as given. Anything
    /// else answers 400 `invalid_query`.
    pub cursor: Option<String>,
    /// Part of who acted (an email, a token name), any case.
    pub actor: Option<String>,
    /// One action exactly, e.g. `token.created`.
    pub action: Option<String>,
    /// First day, `YYYY-MM-DD` (UTC), or an instant `YYYY-MM-DDTHH:MM:SSZ`.
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD` (UTC, included), or an instant `YYYY-MM-DDTHH:MM:SSZ`.
    pub to: Option<String>,
}

/// Format and filters of `GET /api/v1/audit-log/export`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditExportQuery {
    /// `jsonl` (the default: one JSON event a line, as in the list) or `csv`.
    #[param(pattern = "^(jsonl|csv)$")]
    pub format: Option<String>,
    /// Part of who acted (an email, a token name), any case.
    pub actor: Option<String>,
    /// One action exactly, e.g. `token.created`.
    pub action: Option<String>,
    /// First day, `YYYY-MM-DD` (UTC), or an instant `YYYY-MM-DDTHH:MM:SSZ`.
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD` (UTC, included), or an instant `YYYY-MM-DDTHH:MM:SSZ`.
    pub to: Option<String>,
}

/// A service account of the workspace.
#[derive(Serialize, ToSchema)]
pub struct ServiceAccountDto {
    pub id: i64,
    pub name: String,
    #[schema(value_type = String, pattern = "^(read-only|read-write|admin)$")]
    pub role: &'static str,
    /// Its tokens, live or expired.
    pub tokens: i64,
    /// The email of the Admin who created it; `null` once that account is
    /// gone (the service account stays).
    pub created_by: Option<String>,
    pub created_at: String,
}

impl From<&ServiceAccountRow> for ServiceAccountDto {
    fn from(a: &ServiceAccountRow) -> Self {
        Self {
            id: a.id.0,
            name: a.name.clone(),
            role: a.role.as_str(),
            tokens: a.tokens,
            created_by: a.created_by.clone(),
            created_at: rfc3339(a.created_at),
        }
    }
}

/// `POST /api/v1/service-accounts`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceAccountRequest {
    /// 1–100 characters, unique in the workspace.
    pub name: String,
    #[schema(pattern = "^(read-only|read-write|admin)$")]
    pub role: String,
}

/// `POST /api/v1/service-accounts/{id}/tokens`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceTokenRequest {
    /// 1–100 characters, unique among the account's live tokens.
    pub name: String,
    /// At most the account's role; absent: the role's default scope.
    #[serde(default)]
    #[schema(required = false, value_type = String, pattern = "^(read-only|read-write|admin)$")]
    pub scope: Option<String>,
    /// 7, 30, 90 or 365; `null` for a token that never expires. Absent: the
    /// default (90 days, or what the workspace's token policy allows).
    #[serde(default, deserialize_with = "present")]
    #[schema(required = false, value_type = Option<i64>, minimum = 7, maximum = 365)]
    pub expires_in_days: Option<Option<i64>>,
}

/// A field that may be `null`: `Some(None)` when sent as `null`, `None`
/// when absent.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

/// The workspace's token policy: what new tokens may be.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenPolicyDto {
    /// The longest lifetime a new token may have: 7, 30, 90 or 365 days;
    /// `null` (or absent) for no maximum.
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 7, maximum = 365)]
    pub max_lifetime_days: Option<i64>,
    /// Whether every new token needs an expiration date (always true with a
    /// maximum lifetime).
    pub require_expiry: bool,
}

impl From<TokenPolicy> for TokenPolicyDto {
    fn from(p: TokenPolicy) -> Self {
        Self {
            max_lifetime_days: p.max_lifetime_days(),
            require_expiry: p.requires_expiry(),
        }
    }
}

/// The workspace's token policy as it stands, with the live tokens it
/// leaves outside (what the Token policy section lists).
#[derive(Serialize, ToSchema)]
pub struct TokenPolicyStateDto {
    /// 7, 30, 90 or 365; `null` for no maximum.
    #[schema(value_type = Option<i64>, minimum = 7, maximum = 365)]
    pub max_lifetime_days: Option<i64>,
    pub require_expiry: bool,
    pub outside_policy: OutsidePolicyDto,
}

/// Live tokens of the workspace that the policy would not allow today:
/// made before it with a longer lifetime, or without an expiry. They keep
/// working until they expire or are revoked.
#[derive(Serialize, ToSchema)]
pub struct OutsidePolicyDto {
    /// How many there are (the length of `tokens`).
    pub count: usize,
    /// Every one of them, oldest first.
    pub tokens: Vec<TokenDto>,
}

impl TokenPolicyStateDto {
    pub fn new(policy: TokenPolicy, outside: &[TokenRow], now: i64) -> Self {
        Self {
            max_lifetime_days: policy.max_lifetime_days(),
            require_expiry: policy.requires_expiry(),
            outside_policy: OutsidePolicyDto {
                count: outside.len(),
                tokens: outside.iter().map(|t| TokenDto::new(t, now)).collect(),
            },
        }
    }
}

/// `POST /api/v1/workspace/token-policy/revoke-outside` takes no body, or
/// `{}`.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeOutsideRequest {}

/// A workspace and the caller's role in it.
#[derive(Serialize, ToSchema)]
pub struct WorkspaceDto {
    pub id: i64,
    pub name: String,
    #[schema(value_type = String, pattern = "^(read-only|read-write|admin)$")]
    pub role: &'static str,
}

impl From<&Membership> for WorkspaceDto {
    fn from(m: &Membership) -> Self {
        Self {
            id: m.workspace_id.0,
            name: m.workspace_name.clone(),
            role: m.role.as_str(),
        }
    }
}

/// `POST /api/v1/workspaces` and `PATCH /api/v1/workspaces/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceNameRequest {
    /// 1–100 characters, unique in the organization.
    pub name: String,
}
