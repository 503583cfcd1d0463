//! The Workspaces page (Admins): the member's workspaces with their role, a
//! **Rename** form for each one they administer, and **New workspace**.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::domain::{Role, WorkspaceId};
use crate::service::{ServiceError, SignedInUser, Tollgate};
use crate::web::errors::PageError;
use crate::web::extractors::{ClientMeta, CsrfForm, CurrentActor, CurrentUser};
use crate::web::{Layout, flash, ok, render, see_other, urls};

type App = web::Data<Tollgate>;

pub struct WorkspaceView {
    pub id: i64,
    pub name: String,
    pub role: &'static str,
    pub is_admin: bool,
    /// What was typed into its rename field, and what went wrong.
    pub typed: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "workspaces.html")]
struct WorkspacesPage {
    layout: Layout,
    workspaces: Vec<WorkspaceView>,
    name: String,
    error: Option<String>,
}

/// An error to show beside one form: `None` for the New workspace form.
type FormError = (Option<i64>, String, String);

fn page(
    session: &Session,
    user: &SignedInUser,
    error: Option<FormError>,
) -> Result<WorkspacesPage, PageError> {
    if !user.is_admin() {
        return Err(PageError::Forbidden(
            "Only Admins can open this page.".to_owned(),
        ));
    }
    let (create_typed, create_error) = match &error {
        Some((None, typed, message)) => (typed.clone(), Some(message.clone())),
        _ => (String::new(), None),
    };
    Ok(WorkspacesPage {
        layout: Layout::new(session, Some(user), "Workspaces", "workspaces")?,
        workspaces: user
            .memberships
            .iter()
            .map(|m| {
                let (typed, error) = match &error {
                    Some((Some(id), typed, message)) if *id == m.workspace_id.0 => {
                        (typed.clone(), Some(message.clone()))
                    }
                    _ => (m.workspace_name.clone(), None),
                };
                WorkspaceView {
                    id: m.workspace_id.0,
                    name: m.workspace_name.clone(),
                    role: m.role.label(),
                    is_admin: m.role == Role::Admin,
                    typed,
                    error,
                }
            })
            .collect(),
        name: create_typed,
        error: create_error,
    })
}

fn status_of(err: &ServiceError) -> StatusCode {
    match err {
        ServiceError::Conflict { .. } => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

pub async fn list(
    session: Session,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, PageError> {
    ok(&page(&session, &user, None)?)
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    name: String,
}

pub async fn create(
    app: App,
    session: Session,
    current: CurrentActor,
    ClientMeta(meta): ClientMeta,
    CsrfForm(form): CsrfForm<NameForm>,
) -> Result<HttpResponse, PageError> {
    let (actor, user) = (&current.0, current.user()?);
    match app
        .create_workspace(actor, &form.name, &meta, app.now())
        .await
    {
        Ok(created) => {
            flash(
                &session,
                "success",
                format!(
                    "Workspace “{}” created; you are its Admin. Invite its members next.",
                    created.workspace_name
                ),
            )?;
            Ok(see_other(&format!(
                "{}?workspace={}",
                urls::MEMBERS,
                created.workspace_id
            )))
        }
        Err(err @ (ServiceError::Invalid { .. } | ServiceError::Conflict { .. })) => {
            let status = status_of(&err);
            let error = Some((None, form.name, err.to_string()));
            render(status, &page(&session, user, error)?)
        }
        Err(err) => Err(err.into()),
    }
}

pub async fn rename(
    app: App,
    session: Session,
    current: CurrentActor,
    ClientMeta(meta): ClientMeta,
    id: web::Path<i64>,
    CsrfForm(form): CsrfForm<NameForm>,
) -> Result<HttpResponse, PageError> {
    let (actor, user) = (&current.0, current.user()?);
    let workspace = WorkspaceId(*id);
    match app
        .rename_workspace(actor, workspace, &form.name, &meta, app.now())
        .await
    {
        Ok(_) => {
            flash(&session, "success", "Workspace renamed.")?;
            Ok(see_other(urls::WORKSPACES))
        }
        Err(err @ (ServiceError::Invalid { .. } | ServiceError::Conflict { .. })) => {
            let status = status_of(&err);
            let error = Some((Some(workspace.0), form.name, err.to_string()));
            render(status, &page(&session, user, error)?)
        }
        Err(err) => Err(err.into()),
    }
}
