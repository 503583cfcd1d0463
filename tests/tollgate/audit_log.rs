//! The audit log's filters (who, action, date range) on the page and in
//! the API, and its export as CSV and JSON lines, streamed page by page.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::each_backend;
use crate::helpers::{ADMIN, TestApp, WRITER, api, bearer};

async fn default_workspace(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT id FROM workspaces WHERE name = 'Default'")
        .fetch_one(app.db().pool())
        .await
        .expect("the Default workspace")
}

/// Inserts an event straight into the table; returns its id.
async fn event(app: &TestApp, actor: &str, action: &str, target: &str, at: &str) -> i64 {
    let at = unix(at);
    sqlx::query_scalar(
        "INSERT INTO audit_events (workspace_id, actor_label, action, target_label, detail, ip, created_at) \
         VALUES ($1, $2, $3, $4, '', '10.0.0.1', $5) RETURNING id",
    )
    .bind(default_workspace(app).await)
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(at)
    .fetch_one(app.db().pool())
    .await
    .expect("insert event")
}

/// `YYYY-MM-DDTHH:MM:SSZ` as unix seconds.
fn unix(at: &str) -> i64 {
    let n = |range: std::ops::Range<usize>| at[range].parse::<i64>().expect("a number");
    let month = time::Month::try_from(n(5..7) as u8).expect("a month");
    let day =
        time::Date::from_calendar_date(n(0..4) as i32, month, n(8..10) as u8).expect("a date");
    day.midnight().assume_utc().unix_timestamp() + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

async fn ids(app: &TestApp, token: &str, query: &str) -> (Vec<i64>, Option<String>) {
    let res = api(
        app,
        Method::GET,
        &format!("/api/v1/audit-log?{query}"),
        Some(&bearer(token)),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{query}: {}", res.body);
    let body = res.json();
    let ids = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    (ids, body["next_cursor"].as_str().map(str::to_owned))
}

each_backend! {
    async fn filters_narrow_the_audit_log_in_the_api_and_on_the_page(app) {
        let e1 = event(&app, "ada@corp.example", "token.created", "one", "2025-06-01T10:00:00Z").await;
        let e5 = event(&app, "1000x@corp.example", "token.created", "five", "2025-06-02T08:00:00Z").await;
        let e2 = event(&app, "bob@corp.example (token “ci”)", "token.deleted", "two", "2025-06-15T12:00:00Z").await;
        let e3 = event(&app, "ADA@corp.example", "token.deleted", "three", "2025-06-30T23:59:59Z").await;
        let e4 = event(&app, "100%_done@corp.example", "member.invited", "four", "2025-07-01T00:00:00Z").await;
        let (_, token) = app.token_for(ADMIN, "auditor", "admin").await;
        for (query, expected) in [
            ("actor=Ada%40corp", vec![e3, e1]),
            ("actor=token+%E2%80%9Cci%E2%80%9D", vec![e2]),
            // `%` and `_` are text, not wildcards.
            ("actor=100%25_", vec![e4]),
            ("action=token.deleted", vec![e3, e2]),
            ("action=token.created&from=2025-01-01&to=2025-12-31", vec![e5, e1]),
            ("from=2025-06-15&to=2025-06-30", vec![e3, e2]),
            ("from=2025-06-30T23:59:59Z&to=2025-06-30T23:59:59Z", vec![e3]),
            ("from=2025-07-01&to=2025-07-01", vec![e4]),
            ("actor=ada&action=token.created&from=2025-06-01&to=2025-06-01", vec![e1]),
            ("actor=nobody", vec![]),
        ] {
            assert_eq!(ids(&app, &token, query).await.0, expected, "{query}");
        }
        // Paging keeps the filter.
        let (first, next) = ids(&app, &token, "actor=ada%40corp&limit=1").await;
        assert_eq!(first, vec![e3]);
        let next = next.expect("a second page");
        let (second, last) = ids(&app, &token, &format!("actor=ada%40corp&limit=1&cursor={next}")).await;
        assert_eq!((second, last), (vec![e1], None));
        // The page: the same filter from the GET form, kept in its links.
        let admin = app.signed_in(ADMIN).await;
        let page = admin.get("/audit-log?actor=ada%40corp&action=&from=2025-01-01&to=2025-12-31").await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.count("#audit-table tbody tr"), 2);
        assert!(page.text("#audit-table").contains("three") && page.text("#audit-table").contains("one"));
        assert_eq!(page.attr("#filter-actor", "value").as_deref(), Some("ada@corp"));
        let csv = page.attr("#export-csv", "href").expect("a CSV download link");
        assert!(csv.starts_with("/audit-log/export?") && csv.contains("format=csv") && csv.contains("actor=ada%40corp") && csv.contains("from=2025-01-01"), "{csv}");
        assert!(page.attr("#export-jsonl", "href").is_some());
        let none = admin.get("/audit-log?action=member.removed&from=2025-01-01&to=2025-01-02").await;
        assert!(none.text("#audit-table").contains("Nothing recorded that matches this filter"));
    }
}

each_backend! {
    async fn bad_filters_are_answered_with_a_clear_error(app) {
        let (_, token) = app.token_for(ADMIN, "auditor", "admin").await;
        let events = app.count("audit_events").await;
        for (query, field) in [
            ("from=2025-13-01", "from"),
            ("to=yesterday", "to"),
            ("from=2025-06-02&to=2025-06-01", "to"),
            ("action=DROP+TABLE", "action"),
            ("from=2025-06-01T10:00:00%2B02:00", "from"),
        ] {
            for path in ["/api/v1/audit-log", "/api/v1/audit-log/export"] {
                let res = api(&app, Method::GET, &format!("{path}?{query}"), Some(&bearer(&token))).await;
                assert_eq!(res.status, StatusCode::BAD_REQUEST, "{path}?{query}: {}", res.body);
                assert_eq!(res.json()["error"]["code"], "invalid_query");
                assert!(res.json()["error"]["message"].as_str().unwrap().contains(&format!("`{field}`")), "{}", res.body);
            }
        }
        let res = api(&app, Method::GET, "/api/v1/audit-log/export?format=xlsx", Some(&bearer(&token))).await;
        assert_eq!((res.status, res.json()["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_query")));
        // The page: the error beside the field, the input kept, no table, no download.
        let admin = app.signed_in(ADMIN).await;
        let page = admin.get("/audit-log?from=31.12.2025&actor=ada").await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        assert!(page.text("#filter-error").contains("is not a date"), "{}", page.text("#filter-error"));
        assert_eq!(page.attr("#filter-from", "aria-invalid").as_deref(), Some("true"));
        assert_eq!(page.attr("#filter-from", "value").as_deref(), Some("31.12.2025"));
        assert_eq!(page.attr("#filter-actor", "value").as_deref(), Some("ada"));
        assert_eq!(page.count("#audit-table"), 0);
        assert_eq!(page.count("#export-csv"), 0);
        let export = admin.get("/audit-log/export?format=csv&to=2025-02-30").await;
        assert_eq!(export.status, StatusCode::BAD_REQUEST);
        // Reading the log changed nothing (the sign-in above is one event).
        assert_eq!(app.count("audit_events").await, events + 1);
    }
}

/// RFC 4180 records (CRLF line ends, quoted fields with doubled quotes).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut records, mut record, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {
                chars.next();
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => {
                assert!(
                    c != '"' && c != '\n' && c != '\r',
                    "a bare {c:?} in an unquoted field"
                );
                field.push(c)
            }
        }
    }
    assert!(
        !quoted && field.is_empty() && record.is_empty(),
        "the file ends mid-record"
    );
    records
}

each_backend! {
    async fn the_export_of_a_large_log_is_complete_and_well_formed(app) {
        let workspace = default_workspace(&app).await;
        let label = "label, with \"quotes\"\nand a line break #";
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) \
             INSERT INTO audit_events (workspace_id, actor_label, action, target_label, detail, ip, user_agent, created_at) \
             SELECT $1, '=cmd|calc', 'test.bulk', $2 || CAST(i AS TEXT), 'a,b', '10.0.0.1', 'agent \"x\"', $3 + i FROM n",
        )
        .bind(workspace)
        .bind(label)
        .bind(unix("2025-01-01T00:00:00Z"))
        .execute(app.db().pool())
        .await
        .expect("insert 5,000 events");
        let (_, token) = app.token_for(ADMIN, "exporter", "admin").await;

        // CSV through the API.
        let res = api(&app, Method::GET, "/api/v1/audit-log/export?format=csv&action=test.bulk", Some(&bearer(&token))).await;
        assert_eq!(res.status, StatusCode::OK);
        assert!(res.headers["content-type"].to_str().unwrap().starts_with("text/csv"));
        assert!(res.headers["content-disposition"].to_str().unwrap().starts_with("attachment"));
        assert!(res.headers.get("content-length").is_none(), "streamed, not buffered");
        let records = parse_csv(&res.body);
        assert_eq!(records[0][..3], ["id", "created_at", "action"]);
        let rows = &records[1..];
        assert_eq!(rows.len(), 5_000);
        let mut previous = i64::MAX;
        for (k, row) in rows.iter().enumerate() {
            assert_eq!(row.len(), 12, "{row:?}");
            let id: i64 = row[0].parse().unwrap();
            assert!(id < previous, "newest first, no repeats");
            previous = id;
            assert_eq!(row[2], "test.bulk");
            assert_eq!(row[3], "'=cmd|calc", "a formula is defused");
            assert_eq!(row[7], format!("{label}{}", 5_000 - k));
            assert_eq!((row[8].as_str(), row[10].as_str()), ("a,b", "agent \"x\""));
        }

        // JSON lines through the API (the default format).
        let res = api(&app, Method::GET, "/api/v1/audit-log/export?action=test.bulk&from=2025-01-01", Some(&bearer(&token))).await;
        assert_eq!(res.status, StatusCode::OK);
        assert!(res.headers["content-type"].to_str().unwrap().starts_with("application/x-ndjson"));
        assert!(res.body.ends_with('\n'));
        let lines: Vec<Value> = res.body.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
        assert_eq!(lines.len(), 5_000);
        assert_eq!(lines[0]["target"]["label"], format!("{label}5000"));
        assert_eq!(lines[4_999]["target"]["label"], format!("{label}1"));
        assert_eq!(lines[0]["actor"]["label"], "=cmd|calc", "JSON keeps values as they are");

        // The whole log from the page: every event, the 5,000 among them.
        let admin = app.signed_in(ADMIN).await;
        let all = admin.get("/audit-log/export?format=csv").await;
        assert_eq!(all.status, StatusCode::OK);
        let total = app.count("audit_events").await;
        assert_eq!(parse_csv(&all.body).len() as i64 - 1, total);
        let jsonl = admin.get("/audit-log/export?format=jsonl&actor=%3Dcmd&to=2025-01-01").await;
        // 2025-01-01 ends after 86,399 seconds: events 1 to 5,000 all fall on it.
        assert_eq!(jsonl.body.lines().count(), 5_000);
    }
}

each_backend! {
    async fn only_admins_can_read_or_export_the_log(app) {
        let writer = app.signed_in(WRITER).await;
        for path in ["/audit-log", "/audit-log/export?format=csv", "/audit-log/export?format=jsonl"] {
            assert_eq!(writer.get(path).await.status, StatusCode::FORBIDDEN, "{path}");
        }
        let (_, writer_token) = app.token_for(WRITER, "w", "read-write").await;
        let (_, scoped_down) = app.token_for(ADMIN, "read only", "read-only").await;
        for token in [&writer_token, &scoped_down] {
            let res = api(&app, Method::GET, "/api/v1/audit-log/export?format=csv", Some(&bearer(token))).await;
            assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
            assert_eq!(res.json()["error"]["code"], "insufficient_scope");
        }
        let res = api(&app, Method::GET, "/api/v1/audit-log/export", None).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        let anonymous = app.client().get("/audit-log/export?format=csv").await;
        assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    }
}
