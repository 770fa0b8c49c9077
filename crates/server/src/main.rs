//! The `sqlmatic` binary: serve (default), print the effective configuration, regenerate the
//! demo database, print the OpenAPI document.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sqlmatic_server::config::{CliOverrides, Config, Sources};
use sqlmatic_server::{Application, logging};

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
enum Command {
    /// Run the server (the default).
    Serve,
    /// Print the effective configuration (secrets redacted) as JSON.
    Config,
    /// (Re)generate the bundled demo database.
    DemoDb {
        /// Where to write it (default: database.demo_path).
        #[arg(long)]
        path: Option<PathBuf>,
    },
    /// Print the OpenAPI document.
    Openapi,
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
        Command::DemoDb { path } => {
            let path = path.unwrap_or(load()?.database.demo_path);
            sqlmatic_services::demo::generate(&path)?;
            println!("demo database written to {}", path.display());
            Ok(())
        }
        Command::Serve => serve(load()?),
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
