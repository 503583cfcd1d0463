//! Tollgate's integration tests: one binary (one link step), one module per
//! area. Each test runs against a real server on a real socket, on SQLite and
//! — when `TOLLGATE_TEST_DATABASE_URL` is set — on PostgreSQL.

mod helpers;

mod foundation;
mod browser;
