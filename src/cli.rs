//! The command line: `serve` (the default), `migrate`, `users create`.

use std::io::Read;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::service::auth::NewUser;
use crate::service::{ServiceError, Tollgate};
use crate::startup::{Application, now};
use crate::storage::Db;

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Personal access tokens for your workspace"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

#[derive(Subcommand)]
enum Command {
    /// Run the dashboard and the API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a user (and the organization and workspace when none exists).
    Create {
        #[arg(long)]
        email: String,
        /// admin, read-write or read-only.
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: Option<String>,
        /// Workspace name (default: "Default"); created when missing.
        #[arg(long)]
        workspace: Option<String>,
        /// Read the password from standard input (required: passwords are
        /// never taken as arguments, where other users could see them).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => return fail(&format!("can not start the runtime: {err}")),
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => match serve(cli.config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(&format!("{err:#}")),
        },
        Command::Migrate => match migrate(&cli.config).await {
            Ok(()) => {
                println!("migrations applied");
                ExitCode::SUCCESS
            }
            Err(err) => fail(&format!("{err:#}")),
        },
        Command::Users {
            command:
                UsersCommand::Create {
                    email,
                    role,
                    name,
                    workspace,
                    password_stdin: _,
                },
        } => {
            let mut password = String::new();
            if let Err(err) = std::io::stdin().read_to_string(&mut password) {
                return fail(&format!(
                    "can not read the password from standard input: {err}"
                ));
            }
            let password = password
                .strip_suffix('\n')
                .map(|p| p.strip_suffix('\r').unwrap_or(p))
                .unwrap_or(&password);
            let input = NewUser {
                email: &email,
                name: name.as_deref(),
                role: &role,
                workspace: workspace.as_deref(),
                password,
            };
            match create_user(&cli.config, input).await {
                Ok(message) => {
                    println!("{message}");
                    ExitCode::SUCCESS
                }
                Err(message) => fail(&message),
            }
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    tracing::info!(address = %app.address(), "Tollgate is listening on http://{}", app.address());
    app.run_until_stopped().await
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let db = Db::connect(&config.database_url).await?;
    db.migrate().await
}

async fn create_user(config: &Config, input: NewUser<'_>) -> Result<String, String> {
    let db = Db::connect(&config.database_url)
        .await
        .map_err(|e| format!("{e:#}"))?;
    db.migrate().await.map_err(|e| format!("{e:#}"))?;
    let app = Tollgate::new(db, None);
    let email = input.email.trim().to_lowercase();
    match app.create_user(input, now()).await {
        Ok(id) => Ok(format!("created user {email} (id {id})")),
        Err(ServiceError::Invalid { message, .. } | ServiceError::Conflict { message, .. }) => {
            Err(message)
        }
        Err(err) => Err(format!("{err:#}")),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}
