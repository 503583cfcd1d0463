//! Streamed downloads, shared by the dashboard and the API (neither imports
//! the other): the audit-log export.

use actix_web::HttpResponse;
use actix_web::web::Bytes;
use futures_util::{Stream, StreamExt};

use crate::service::ServiceError;
use crate::service::export::ExportFormat;
use crate::storage::audit::AuditRow;

/// A streamed download: the head, then each page of rows as storage yields
/// it. A failure part way ends the stream with an error, which cuts the
/// connection, so a client never takes a partial file for a whole one.
pub fn audit_export(
    format: ExportFormat,
    pages: impl Stream<Item = Result<Vec<AuditRow>, ServiceError>> + 'static,
) -> HttpResponse {
    let head =
        futures_util::stream::once(
            async move { Ok::<_, ServiceError>(Bytes::from(format.head())) },
        );
    let body = head.chain(pages.map(move |page| {
        page.map(|rows| Bytes::from(format.rows(&rows)))
            .inspect_err(|err| tracing::error!(error = ?err, "audit export failed part way"))
    }));
    HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"audit-log.{}\"", format.extension()),
        ))
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .streaming(body)
}
