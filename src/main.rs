//! The `tollgate` binary: parse the command line, set up logging, run.

use std::process::ExitCode;

fn main() -> ExitCode {
    tollgate::telemetry::init();
    let code = tollgate::cli::main();
    tollgate::telemetry::shutdown();
    code
}
