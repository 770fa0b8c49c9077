//! The `sqlmatic` binary: serve (default), print the effective configuration, regenerate the
//! demo database, print the OpenAPI document.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sqlmatic_server::config::{CliOverrides, Config, Sources};
use sqlmatic_server::{Application, logging};

/// jemalloc with a background thread that purges freed pages after a second
/// (`.cargo/config.toml`): memory comes back after a load (glibc's arenas keep it).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser, Debug)]
#[command(name = "sqlmatic", version, about = "Chat with your SQL database")]
struct Cli {
    /// Configuration file (default: config/config.yaml, which may be missing).
    #[arg(long, global = true, env = "SQLMATIC_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides api.host).
    #[arg(long, global = true)]
    host: Option<String>,
    /// Port to listen on (overrides api.port; 0 picks a free one).
    #[arg(long, global = true)]
    port: Option<u16>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum UserAction {
    /// Create a user and print its token (shown once).
    Add {
        name: String,
        /// May see everyone's metrics and query log and edit agent settings.
        #[arg(long)]
        admin: bool,
        /// Target databases the user may query (comma-separated; default: all).
        #[arg(long, value_delimiter = ',')]
        databases: Option<Vec<String>>,
    },
    /// List users.
    List,
    /// Revoke all of a user's tokens and disable the user.
    Revoke { name: String },
    /// Replace a user's tokens with a new one (printed once) and re-enable the user.
    Rotate { name: String },
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Print the effective configuration (secrets redacted) as JSON.
    Config,
    /// (Re)generate the bundled demo database.
    DemoDb {
        /// Where to write it (default: database.demo_path).
        #[arg(long, conflicts_with = "postgres")]
        path: Option<PathBuf>,
        /// Load the same shop into this PostgreSQL database instead (its demo tables are
        /// replaced): postgres://user@host:5432/dbname. The role needs CREATE on `public`.
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
    },
    /// Serve MCP over stdio (for Claude Desktop, Claude Code, IDEs): the same configuration,
    /// acting as one user (`--user NAME`, or the token in SQLMATIC_TOKEN when
    /// `api.auth.mode: token`). Logs go to stderr (and the log file), never to stdout.
    Mcp {
        /// The user to act as (default: the token's user, or `local` without authentication).
        #[arg(long)]
        user: Option<String>,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Manage users and their API tokens (for `api.auth.mode: token`).
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Measure the agent's execution accuracy on a JSONL dataset of
    /// `{"question", "gold_sql", "database"?, "id"?, "tags"?, "expected_verified"?}` lines
    /// against the configured provider: with and without business context, and retrieval
    /// recall@k for lines that name the verified queries they expect.
    Eval {
        #[arg(long)]
        dataset: PathBuf,
        /// Skip the second run of each question without business context (half the model calls).
        #[arg(long)]
        with_context_only: bool,
        /// Where to write the JSON report.
        #[arg(long, default_value = "target/eval/report.json")]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let sources = Sources {
        file: cli.config.clone(),
        profile: None,
        cli: CliOverrides { host: cli.host, port: cli.port },
    };
    let load = || {
        Config::load(&sources)
            .with_context(|| format!("loading {}", Config::config_path(&sources).display()))
    };
    #[allow(clippy::print_stdout)] // printing is these commands' job
    match cli.command.unwrap_or(Command::Serve) {
        Command::Config => {
            println!("{}", serde_json::to_string_pretty(&load()?.redacted())?);
            Ok(())
        }
        Command::Openapi => {
            println!("{}", sqlmatic_server::routes::openapi::document());
            Ok(())
        }
        Command::DemoDb { postgres: Some(url), .. } => {
            tokio::runtime::Runtime::new()?
                .block_on(sqlmatic_services::demo::load_postgres(&url))?;
            println!("demo shop loaded into {}", redact_url(&url));
            Ok(())
        }
        Command::DemoDb { path, postgres: None } => {
            let path = path.unwrap_or(load()?.database.demo_path);
            sqlmatic_services::demo::generate(&path)?;
            println!("demo database written to {}", path.display());
            Ok(())
        }
        Command::Eval { dataset, out, with_context_only } => {
            let options =
                sqlmatic_core_logic::eval::EvalOptions { without_context: !with_context_only };
            let report = eval(load()?, &dataset, options)?;
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
            for r in &report.results {
                println!(
                    "{:<8} {:<7} {}",
                    r.id,
                    if r.correct { "correct" } else { "wrong" },
                    r.error.as_deref().unwrap_or("")
                );
            }
            println!(
                "execution accuracy: {}/{} = {:.1}% ({} with errors); report: {}",
                report.correct,
                report.total,
                report.execution_accuracy * 100.0,
                report.errors,
                out.display()
            );
            if let (Some(c), Some(a)) =
                (report.correct_without_context, report.execution_accuracy_without_context)
            {
                println!("without business context: {c}/{} = {:.1}%", report.total, a * 100.0);
            }
            if let Some(recall) = report.retrieval_recall_at_k {
                println!("verified-query retrieval recall@{}: {:.1}%", report.k, recall * 100.0);
            }
            Ok(())
        }
        Command::User { action } => {
            let config = load()?;
            let users = sqlmatic_services::UserService::new(sqlmatic_services::AppDb::open(
                &config.database,
            )?);
            match action {
                UserAction::Add { name, admin, databases } => {
                    let token = users.add(&name, admin, databases)?;
                    println!(
                        "created user {name}{}; token (shown once, keep it secret):\n{token}",
                        if admin { " (admin)" } else { "" }
                    );
                }
                UserAction::List => {
                    println!(
                        "{:<24} {:<6} {:<9} {:<7} databases",
                        "name", "admin", "disabled", "tokens"
                    );
                    for u in users.list()? {
                        let dbs = u.databases.map_or_else(|| "all".to_owned(), |d| d.join(","));
                        println!(
                            "{:<24} {:<6} {:<9} {:<7} {dbs}",
                            u.name, u.admin, u.disabled, u.active_tokens
                        );
                    }
                }
                UserAction::Revoke { name } => {
                    let n = users.revoke(&name)?;
                    println!("revoked {n} token(s) of {name}; the user is disabled");
                }
                UserAction::Rotate { name } => {
                    let token = users.rotate(&name)?;
                    println!(
                        "new token for {name} (shown once; the old ones no longer work):\n{token}"
                    );
                }
            }
            Ok(())
        }
        Command::Serve => serve(load()?),
        Command::Mcp { user } => mcp_stdio(load()?, user),
    }
}

fn eval(
    config: Config,
    dataset: &std::path::Path,
    options: sqlmatic_core_logic::eval::EvalOptions,
) -> anyhow::Result<sqlmatic_core_logic::eval::EvalReport> {
    if !config.agent.is_configured() {
        anyhow::bail!(
            "no LLM provider is configured: set agent.provider, agent.base_url, agent.model (and SQLMATIC_AGENT__API_KEY)"
        );
    }
    let text = std::fs::read_to_string(dataset)
        .with_context(|| format!("reading {}", dataset.display()))?;
    let cases = sqlmatic_core_logic::eval::parse_dataset(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dataset.display()))?;
    let _log = logging::init(&logging::LoggingConfig {
        level: "warn".into(),
        file: None,
        ..config.logging.clone()
    })?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let core = open_core(&config).await?;
        anyhow::Ok(core.evaluate(&sqlmatic_models::Principal::local(), cases, options).await)
    })
}

/// The core as the CLI commands use it: opened off the executor, targets checked.
async fn open_core(
    config: &Config,
) -> anyhow::Result<std::sync::Arc<sqlmatic_core_logic::Sqlmatic>> {
    let core_config = core_config(config);
    let core =
        tokio::task::spawn_blocking(move || sqlmatic_core_logic::Sqlmatic::open(core_config))
            .await??;
    core.check_targets().await?;
    Ok(core)
}

/// The core as the CLI commands open it (no HTTP-side limits).
fn core_config(config: &Config) -> sqlmatic_core_logic::CoreConfig {
    sqlmatic_core_logic::CoreConfig {
        database: config.database.clone(),
        tools: config.tools.clone(),
        agent: config.agent.clone(),
        memory: config.memory.clone(),
        max_concurrent_chats: 0,
        chats_per_minute: 0,
        metrics_interval: std::time::Duration::from_millis(config.api.metrics_interval_ms),
    }
}

/// `sqlmatic mcp`: MCP over stdin/stdout as one user.
fn mcp_stdio(config: Config, user: Option<String>) -> anyhow::Result<()> {
    use rmcp::ServiceExt;
    // stdout is the protocol's: logs go to stderr and the log file only
    let _log = logging::init(&config.logging)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let core = open_core(&config).await?;
        let principal = match (std::env::var("SQLMATIC_TOKEN").ok(), user) {
            (Some(token), _) => core
                .users()
                .authenticate(&token)
                .await?
                .ok_or_else(|| anyhow::anyhow!("SQLMATIC_TOKEN is not a valid token"))?,
            (None, Some(name)) => {
                let info = core
                    .users()
                    .list()?
                    .into_iter()
                    .find(|u| u.name == name && !u.disabled)
                    .ok_or_else(|| anyhow::anyhow!("no active user `{name}` (sqlmatic user add)"))?;
                sqlmatic_models::Principal {
                    name: info.name,
                    admin: info.admin,
                    databases: info.databases,
                }
            }
            (None, None) if config.api.auth.mode == sqlmatic_server::auth::AuthMode::None => {
                sqlmatic_models::Principal::local()
            }
            (None, None) => anyhow::bail!(
                "api.auth.mode is token: set SQLMATIC_TOKEN or pass --user NAME to say who the MCP client acts as"
            ),
        };
        log::info!("MCP over stdio as `{}`", principal.name);
        let server = sqlmatic_server::mcp::McpServer::for_user(core, principal);
        let running = server.serve((tokio::io::stdin(), tokio::io::stdout())).await?;
        running.waiting().await?;
        anyhow::Ok(())
    })
}

/// A connection URL without its password, for printing.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let _log = logging::init(&config.logging)?;
    log::info!(
        "sqlmatic {} starting (profile {})",
        env!("CARGO_PKG_VERSION"),
        std::env::var("SQLMATIC_ENV").unwrap_or_else(|_| "development".into())
    );
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(config).await?;
        app.run_until_stopped().await?;
        anyhow::Ok(())
    })
}
