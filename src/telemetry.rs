//! Logging set-up: `tracing` with `RUST_LOG` (default `info`), as text or
//! JSON (`TOLLGATE_LOG_FORMAT=json`). Log lines never carry secrets: request
//! logs name the path without its query string, and no handler logs a
//! password, token, digest or session key.
//!
//! Lines are handed to a writer thread (`tracing-appender`'s non-blocking
//! writer), so a request logging at `info` costs a queue push, not a write
//! to standard error under a lock. When the queue is full (the reader of
//! standard error stalls) lines are dropped, never the request.

use std::sync::Mutex;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Keeps the writer thread; dropping it (`shutdown`) writes what is queued.
static WRITER: Mutex<Option<WorkerGuard>> = Mutex::new(None);

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("TOLLGATE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .thread_name("tollgate-log")
        .finish(LossyStderr);
    // Colours only for a person at a terminal: in a file or a log
    // collector the escape codes are noise, and writing them costs a
    // good share of each request's log line.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    // A second init (tests) is harmless, so its error is ignored.
    let installed = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    if installed.is_ok()
        && let Ok(mut slot) = WRITER.lock()
    {
        *slot = Some(guard);
    }
}

/// Writes the lines still queued; call before the process exits.
pub fn shutdown() {
    if let Ok(mut slot) = WRITER.lock() {
        slot.take();
    }
}

/// Standard error that never fails: when it can not be written (a closed
/// pipe, a restarted log collector), the line is lost and the server goes on.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}
