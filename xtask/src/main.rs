//! `cargo xtask <task>`: sqlmatic's developer tasks, and tidy checks that run as plain tests.
//!
//! Tasks shell out to cargo and the built binary; they never link the workspace crates, so
//! xtask stays quick to build.

// Reporting on stdout is what a dev task is for.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

mod bench;
mod layers;

#[derive(Parser)]
#[command(name = "xtask", about = "sqlmatic developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// What CI runs: fmt --check, clippy -D warnings, the test suite, the layer check.
    Ci,
    /// Check that crates depend on each other only in layer order.
    CheckLayers,
    /// Regenerate the bundled demo database (data/demo.db by default), or load the same shop
    /// into a PostgreSQL database (`--postgres URL`).
    DemoDb {
        #[arg(long)]
        path: Option<PathBuf>,
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
    },
    /// Write the OpenAPI document to docs/openapi.json.
    Openapi,
    /// Run the server with the development profile.
    Dev,
    /// Benchmark the HTTP API under concurrent load with wrk (release build).
    Bench(bench::BenchArgs),
    /// Benchmark agent turns against a scripted LLM: per-turn overhead and 200 concurrent chats.
    BenchAgent,
    /// Load: thousands of WebSocket subscribers (fan-out latency, memory per connection), mixed
    /// REST load, hundreds of concurrent chats against a scripted LLM.
    BenchLoad,
    /// Execution accuracy of the agent on a JSONL dataset against the configured LLM provider,
    /// with and without business context, and verified-query retrieval recall.
    Eval {
        #[arg(long)]
        dataset: PathBuf,
        #[arg(long, default_value = "target/eval/report.json")]
        out: PathBuf,
        /// Skip the run without business context.
        #[arg(long)]
        with_context_only: bool,
    },
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("$ {cmd:?}");
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Ci => {
            run(cargo().args(["fmt", "--all", "--", "--check"]))?;
            run(cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--locked",
                "--",
                "-D",
                "warnings",
            ]))?;
            run(cargo()
                .args(["doc", "--no-deps", "--workspace", "--exclude", "xtask", "--locked"])
                .env("RUSTDOCFLAGS", "-D warnings"))?;
            run(cargo().args(["test", "--workspace", "--locked"]))?;
            layers::check(&root())
        }
        Task::CheckLayers => layers::check(&root()),
        Task::DemoDb { path, postgres } => {
            let mut cmd = cargo();
            cmd.args(["run", "--quiet", "-p", "sqlmatic-server", "--", "demo-db"]);
            if let Some(p) = path {
                cmd.arg("--path").arg(p);
            }
            if let Some(url) = postgres {
                cmd.arg("--postgres").arg(url);
            }
            run(&mut cmd)
        }
        Task::Openapi => {
            let out = cargo()
                .args(["run", "--quiet", "-p", "sqlmatic-server", "--", "openapi"])
                .output()?;
            if !out.status.success() {
                bail!("sqlmatic openapi failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let path = root().join("docs/openapi.json");
            std::fs::write(&path, &out.stdout)?;
            eprintln!("wrote {}", path.display());
            Ok(())
        }
        Task::Dev => {
            run(cargo().args(["run", "-p", "sqlmatic-server"]).env("SQLMATIC_ENV", "development"))
        }
        Task::Bench(args) => bench::bench(args),
        Task::BenchAgent => {
            let mut bench = cargo();
            bench.args(["bench", "--locked", "-p", "sqlmatic-server", "--bench", "agent"]);
            match bench::python_venv(&["openai==3.60.0"]) {
                Ok(python) => {
                    bench.env("AGENT_BENCH_PYTHON", python);
                }
                Err(e) => eprintln!("the Python comparison will be skipped: {e}"),
            }
            // the same loop in Rust, the floor under sqlmatic's turn
            bench.env("AGENT_BENCH_RUST_LOOP", bench::build_example("agent_loop", "bench")?);
            run(&mut bench)
        }
        Task::BenchLoad => {
            // the chat bursts' floor: a bare actix-web `/chat` making the turn's model calls only
            let floor = bench::build_example("bare_actix", "bench")?;
            run(cargo()
                .args(["bench", "--locked", "-p", "sqlmatic-server", "--bench", "load"])
                .env("LOAD_BENCH_FLOOR", floor))
        }
        Task::Eval { dataset, out, with_context_only } => run(cargo()
            .args([
                "run",
                "--release",
                "--quiet",
                "-p",
                "sqlmatic-server",
                "--",
                "eval",
                "--dataset",
            ])
            .arg(std::path::absolute(&dataset)?)
            .arg("--out")
            .arg(std::path::absolute(&out)?)
            .args(with_context_only.then_some("--with-context-only"))),
    }
}
