//! Tollgate's integration tests: one binary (one link step), one module per
//! area. Each test runs against a real server on a real socket, on SQLite and
//! — when `TOLLGATE_TEST_DATABASE_URL` is set — on PostgreSQL. The browser
//! tests drive headless Chromium through the user guide on SQLite.

mod helpers;

mod actors;
mod admin_pages;
mod api;
mod architecture;
mod audit_log;
mod browser;
mod contract;
mod crash;
mod doc_examples;
mod foundation;
mod fuzz;
mod hardening;
mod leaked_tokens;
mod mail;
mod metrics;
mod operations;
mod policy;
mod revocation;
mod scale_out;
mod security;
mod service_accounts;
mod shutdown;
mod tokens_pages;
mod workspaces;
