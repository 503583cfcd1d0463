//! The audit log as a download: CSV (for spreadsheets) or JSON lines (for
//! log tools), one page of rows at a time. The page and the API share it;
//! the bytes are the same whichever asked.

use serde_json::json;

use crate::domain::ValidationError;
use crate::storage::audit::AuditRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    JsonLines,
}

const CSV_COLUMNS: [&str; 12] = [
    "id",
    "created_at",
    "action",
    "actor_label",
    "actor_user_id",
    "actor_token_id",
    "target_id",
    "target_label",
    "detail",
    "ip",
    "user_agent",
    "workspace_id",
];

impl ExportFormat {
    /// `csv` or `jsonl`.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        match raw {
            "csv" => Ok(Self::Csv),
            "jsonl" => Ok(Self::JsonLines),
            _ => Err(ValidationError::new("`format` must be `csv` or `jsonl`.")),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::JsonLines => "application/x-ndjson",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::JsonLines => "jsonl",
        }
    }

    /// What comes before the first row: the CSV header line.
    pub fn head(self) -> String {
        match self {
            Self::Csv => format!("{}\r\n", CSV_COLUMNS.join(",")),
            Self::JsonLines => String::new(),
        }
    }

    /// A page of rows, each ending its line.
    pub fn rows(self, rows: &[AuditRow]) -> String {
        let mut out = String::new();
        for row in rows {
            match self {
                Self::Csv => csv_row(&mut out, row),
                Self::JsonLines => {
                    out.push_str(&json_line(row));
                    out.push('\n');
                }
            }
        }
        out
    }
}

/// RFC 4180: fields with a comma, quote or line break are quoted, quotes
/// doubled; lines end in CRLF. Text that a spreadsheet would run as a
/// formula (starting with `=`, `+`, `-`, `@`, tab or CR) gets a leading `'`:
/// labels, URLs and user agents come from outside, and an export must not
/// run code on the Admin's computer.
fn csv_row(out: &mut String, row: &AuditRow) {
    let number = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
    let cells: [(String, bool); 12] = [
        (row.id.to_string(), false),
        (rfc3339(row.created_at), false),
        (row.action.clone(), true),
        (row.actor_label.clone(), true),
        (number(row.actor_user_id), false),
        (number(row.actor_token_id), false),
        (number(row.target_id), false),
        (row.target_label.clone(), true),
        (row.detail.clone(), true),
        (row.ip.clone(), true),
        (row.user_agent.clone(), true),
        (number(row.workspace_id), false),
    ];
    for (i, (cell, text)) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let cell = if *text && cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{cell}")
        } else {
            cell.clone()
        };
        if cell.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&cell.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&cell);
        }
    }
    out.push_str("\r\n");
}

/// The same fields as an event of `GET /api/v1/audit-log`.
fn json_line(row: &AuditRow) -> String {
    json!({
        "id": row.id,
        "action": row.action,
        "actor": {"user_id": row.actor_user_id, "token_id": row.actor_token_id, "label": row.actor_label},
        "target": {"id": row.target_id, "label": row.target_label},
        "detail": row.detail,
        "ip": row.ip,
        "user_agent": row.user_agent,
        "created_at": rfc3339(row.created_at),
    })
    .to_string()
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str) -> AuditRow {
        AuditRow {
            id: 7,
            workspace_id: Some(1),
            actor_user_id: Some(2),
            actor_token_id: None,
            actor_label: "ada@example.com".to_owned(),
            action: "token.created".to_owned(),
            target_id: Some(3),
            target_label: label.to_owned(),
            detail: String::new(),
            ip: "127.0.0.1".to_owned(),
            user_agent: String::new(),
            created_at: 0,
        }
    }

    #[test]
    fn csv_quotes_commas_quotes_and_line_breaks() {
        let out = ExportFormat::Csv.rows(&[row("a, \"b\"\nc")]);
        assert_eq!(
            out,
            "7,1970-01-01T00:00:00Z,token.created,ada@example.com,2,,3,\"a, \"\"b\"\"\nc\",,127.0.0.1,,1\r\n"
        );
    }

    #[test]
    fn csv_text_that_looks_like_a_formula_is_defused() {
        let out = ExportFormat::Csv.rows(&[row("=HYPERLINK(\"x\")")]);
        assert!(out.contains(",\"'=HYPERLINK(\"\"x\"\")\","), "{out}");
    }

    #[test]
    fn json_lines_are_one_object_each() {
        let out = ExportFormat::JsonLines.rows(&[row("a\nb"), row("c")]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["target"]["label"], "a\nb");
    }
}
