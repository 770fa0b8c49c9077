//! `cargo xtask bench`: the HTTP API under concurrent load, measured with wrk against a release
//! build of the server on the demo database. Reports requests/second, latency percentiles,
//! non-2xx responses and the server's resident memory idle and under load (from /proc).
//! Then the real-file part (`crates/tools/benches/files.rs`): big schemas and big files against
//! the plain SQLite floor, measured in the same run.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::{cargo, root};

// the same /proc readings as the benchmarks and the examples they run
#[path = "../../crates/server/benches/support/proc.rs"]
mod proc;
use proc::status_kib;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Seconds per scenario.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// wrk threads.
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// Skip the real-file part (a 2,000-table database and a ≥ 2 GB file against the plain
    /// SQLite floor; `BENCH_BIG_ROWS` sets the big table's rows, default 30 million).
    #[arg(long)]
    no_files: bool,
    /// Only the real-file part.
    #[arg(long, conflicts_with = "no_files")]
    files_only: bool,
    /// Skip the PostgreSQL part (structure, point lookup and GROUP BY through the PostgreSQL
    /// engine beside a plain tokio-postgres client, on a throwaway cluster).
    #[arg(long)]
    no_postgres: bool,
    /// Only the PostgreSQL part.
    #[arg(long, conflicts_with_all = ["no_postgres", "files_only"])]
    postgres_only: bool,
}

struct Scenario {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "GET /api/database/structure",
        method: "GET",
        path: "/api/database/structure",
        body: None,
    },
    Scenario {
        name: "POST /api/query point lookup",
        method: "POST",
        path: "/api/query",
        body: Some(r#"{"sql":"SELECT * FROM customers WHERE id = ?","params":[617]}"#),
    },
    Scenario {
        name: "POST /api/query GROUP BY order_items",
        method: "POST",
        path: "/api/query",
        body: Some(
            r#"{"sql":"SELECT product_id, count(*) AS lines, sum(quantity) AS units, round(sum(quantity * unit_price * (1 - discount)), 2) AS revenue FROM order_items GROUP BY product_id ORDER BY revenue DESC"}"#,
        ),
    },
];

fn ensure_wrk() -> anyhow::Result<()> {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return Ok(());
    }
    eprintln!("wrk is not installed; installing it from Debian's packages (apt-get install wrk)");
    let ok = Command::new("apt-get")
        .args(["install", "-y", "-qq", "wrk"])
        .status()
        .is_ok_and(|s| s.success())
        || (Command::new("apt-get").args(["update", "-qq"]).status().is_ok_and(|s| s.success())
            && Command::new("apt-get")
                .args(["install", "-y", "-qq", "wrk"])
                .status()
                .is_ok_and(|s| s.success()));
    if !ok {
        bail!("wrk is needed for the benchmark: install it (apt-get install wrk) and run again");
    }
    Ok(())
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn parse_wrk(out: &str) -> Value {
    let num = |prefix: &str| -> Option<f64> {
        out.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(parse_duration_or_number)
    };
    let non_2xx = out
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses"))
        .and_then(|l| l.rsplit(':').next())
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let socket_errors = out
        .lines()
        .find(|l| l.contains("Socket errors"))
        .map(str::trim)
        .unwrap_or("none")
        .to_owned();
    let total = out
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    json!({
        "requests": total,
        "rps": num("Requests/sec:"),
        "p50_ms": num("50%"),
        "p90_ms": num("90%"),
        "p99_ms": num("99%"),
        "non_2xx": non_2xx,
        "socket_errors": socket_errors,
    })
}

/// wrk prints "1.23ms", "850.00us", "1.02s" or plain numbers.
fn parse_duration_or_number(s: &str) -> f64 {
    let (n, scale) = if let Some(v) = s.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (s, 1.0)
    };
    n.parse::<f64>().map(|v| v * scale).unwrap_or(f64::NAN)
}

pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    if args.postgres_only {
        return postgres();
    }
    if args.files_only {
        crate::run(cargo().args(["build", "--release", "--locked", "-p", "sqlmatic-server"]))?;
        return files();
    }
    ensure_wrk()?;
    crate::run(cargo().args(["build", "--release", "--locked", "-p", "sqlmatic-server"]))?;
    let dir = tempfile_dir()?;
    let (server, port, pid) = start_server(&dir, &[])?;
    // Warm the schema cache and let start-up allocations settle before reading idle memory.
    http_get(port, "/api/database/structure");
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss = status_kib(pid, "VmRSS:");
    let mut results = Vec::new();
    for s in SCENARIOS {
        let mut r = run_wrk(&args, &dir, port, s)?;
        r["rss_after_kib"] = json!(status_kib(pid, "VmRSS:"));
        results.push(r);
    }
    let peak = status_kib(pid, "VmHWM:");
    let report = json!({
        "connections": args.connections,
        "threads": args.threads,
        "duration_s": args.duration,
        "idle_rss_kib": idle_rss,
        "peak_rss_kib": peak,
        "scenarios": results,
    });
    let out_dir = root().join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    std::fs::write(out_dir.join("api.json"), serde_json::to_string_pretty(&report)?)?;
    println!("| scenario | req/s | p50 ms | p90 ms | p99 ms | non-2xx |");
    println!("|---|---|---|---|---|---|");
    for r in report["scenarios"].as_array().into_iter().flatten() {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
            r["scenario"].as_str().unwrap_or(""),
            r["rps"].as_f64().unwrap_or(f64::NAN),
            r["p50_ms"].as_f64().unwrap_or(f64::NAN),
            r["p90_ms"].as_f64().unwrap_or(f64::NAN),
            r["p99_ms"].as_f64().unwrap_or(f64::NAN),
            r["non_2xx"]
        );
    }
    println!(
        "server RSS: idle {} KiB, peak {} KiB ({} connections)",
        idle_rss, peak, args.connections
    );
    println!("report: {}", out_dir.join("api.json").display());
    bare_actix_floor(&args, port)?;
    drop(server);
    if !args.no_files {
        files()?;
    }
    if !args.no_postgres {
        postgres()?;
    }
    Ok(())
}

/// The PostgreSQL engine against the PostgreSQL floor (`crates/tools/benches/postgres.rs`):
/// needs PostgreSQL's server binaries, as the tests do.
fn postgres() -> anyhow::Result<()> {
    crate::run(cargo().args(["bench", "--locked", "-p", "sqlmatic-tools", "--bench", "postgres"]))
}

/// Runs one wrk scenario against `port`; its parsed report.
fn run_wrk(
    args: &BenchArgs,
    dir: &std::path::Path,
    port: u16,
    s: &Scenario,
) -> anyhow::Result<Value> {
    let script = dir.join("post.lua");
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t",
        &args.threads.to_string(),
        "-c",
        &args.connections.to_string(),
        "-d",
        &format!("{}s", args.duration),
        "--latency",
    ]);
    if let Some(body) = s.body {
        std::fs::write(
            &script,
            format!(
                "wrk.method = \"{}\"\nwrk.body = [[{body}]]\nwrk.headers[\"Content-Type\"] = \"application/json\"\n",
                s.method
            ),
        )?;
        cmd.arg("-s").arg(&script);
    }
    cmd.arg(format!("http://127.0.0.1:{port}{}", s.path));
    eprintln!("$ {cmd:?}");
    let out = cmd.output().context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{text}");
    let mut r = parse_wrk(&text);
    r["scenario"] = json!(s.name);
    Ok(r)
}

/// Builds an example of the server crate (a benchmark's floor); its path. `profile` is the one
/// its benchmark builds the server with (`release` for the binary, `bench` for `cargo bench`),
/// so the example reuses those compiled crates instead of building them all a second time.
/// Both profiles write to `target/release`.
pub fn build_example(name: &str, profile: &str) -> anyhow::Result<PathBuf> {
    crate::run(cargo().args([
        "build",
        "--profile",
        profile,
        "--locked",
        "-p",
        "sqlmatic-server",
        "--example",
        name,
    ]))?;
    Ok(root().join("target/release/examples").join(name))
}

/// Rounds of the floor comparison (each runs every server once, in turn).
const FLOOR_ROUNDS: usize = 3;

/// The point lookup against a bare actix-web handler (`crates/server/examples/bare_actix.rs`:
/// same JSON body parsed, a one-row JSON answer, nothing else) in the same run, and the ratio.
///
/// sqlmatic is measured twice: as configured (`ours_port`), where wrk's 64 connections are one
/// user and `tools.max_queries_per_user` (3) lets three of their queries run at once, so the
/// figure is that cap over a query's latency; and with that cap lifted like the rate limit
/// already is, as 64 users would see it, which measures the server's capacity. The servers stay
/// up and take turns, round after round (the first of a round alternates), and the median of
/// the rounds' ratios is reported: on a shared machine whose speed drifts by a quarter within a
/// minute, one run of each side, one after the other, measured the drift.
fn bare_actix_floor(args: &BenchArgs, ours_port: u16) -> anyhow::Result<()> {
    let bare_actix = build_example("bare_actix", "release")?;
    let port = free_port()?;
    let child = Command::new(bare_actix)
        .args([port.to_string(), "2".into()])
        .stdout(Stdio::null())
        .spawn()
        .context("starting the bare actix-web server")?;
    let _bare = Server(child);
    wait_ready(port, Duration::from_secs(30), "the bare actix-web server")?;
    let uncapped_dir = root().join("target/bench/run-uncapped");
    let _ = std::fs::remove_dir_all(&uncapped_dir);
    std::fs::create_dir_all(&uncapped_dir)?;
    let (_uncapped, uncapped_port, _) = start_server(
        &uncapped_dir,
        &[("SQLMATIC_TOOLS__MAX_QUERIES_PER_USER", args.connections.to_string())],
    )?;
    let lookup = &SCENARIOS[1];
    let servers =
        [("sqlmatic", ours_port), ("sqlmatic_uncapped", uncapped_port), ("bare_actix", port)];
    let mut rounds: Vec<Value> = Vec::with_capacity(FLOOR_ROUNDS);
    for round in 0..FLOOR_ROUNDS {
        let mut order: Vec<&(&str, u16)> = servers.iter().collect();
        if round % 2 == 1 {
            order.reverse();
        }
        let mut r = serde_json::Map::new();
        for (name, p) in order {
            let rps = run_wrk(args, &uncapped_dir, *p, lookup)?["rps"].as_f64().unwrap_or(f64::NAN);
            r.insert(format!("{name}_rps"), json!(rps));
        }
        let rps = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        let (ours, uncapped, floor) =
            (rps("sqlmatic_rps"), rps("sqlmatic_uncapped_rps"), rps("bare_actix_rps"));
        r.insert("ratio".into(), json!(ours / floor));
        r.insert("ratio_uncapped".into(), json!(uncapped / floor));
        rounds.push(Value::Object(r));
    }
    let median = |key: &str| {
        let mut v: Vec<f64> = rounds.iter().filter_map(|r| r[key].as_f64()).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let each: Vec<String> = rounds
        .iter()
        .map(|r| {
            let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
            format!(
                "{:.0} / {:.0} / {:.0}",
                f("sqlmatic_rps"),
                f("sqlmatic_uncapped_rps"),
                f("bare_actix_rps")
            )
        })
        .collect();
    println!(
        "{}, {FLOOR_ROUNDS} rounds taking turns, req/s of sqlmatic / sqlmatic with the per-user query cap lifted / \
         a bare actix-web handler: {}",
        lookup.name,
        each.join("; ")
    );
    println!(
        "  median: sqlmatic {:.0} % of the floor (one user, tools.max_queries_per_user = 3 at a time); \
         {:.0} % with the cap lifted (the server's capacity, as {} users would see it)",
        100.0 * median("ratio"),
        100.0 * median("ratio_uncapped"),
        args.connections
    );
    let out = root().join("target/bench/api_floor.json");
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&json!({
            "scenario": lookup.name,
            "rounds": rounds,
            "median_ratio": median("ratio"),
            "median_ratio_uncapped": median("ratio_uncapped"),
        }))?,
    )?;
    Ok(())
}

/// The real-file part: the tools-level bench (which also measures the SQLite floor and writes
/// the databases), then the same files over HTTP. Needs the release server built.
fn files() -> anyhow::Result<()> {
    crate::run(cargo().args(["bench", "--locked", "-p", "sqlmatic-tools", "--bench", "files"]))?;
    files_over_http()
}

/// Starts the release server on a free port with the bench settings plus `env`, and waits until
/// it is ready.
fn start_server(
    dir: &std::path::Path,
    env: &[(&str, String)],
) -> anyhow::Result<(Server, u16, u32)> {
    let port = free_port()?;
    let bin = root().join("target/release/sqlmatic");
    let child = Command::new(&bin)
        .args(["--port", &port.to_string()])
        .env("SQLMATIC_CONFIG", root().join("config/config.yaml"))
        .env("SQLMATIC_ENV", "production")
        .env("SQLMATIC_API__HOST", "127.0.0.1")
        // measure the server, not the limiter: one client sends everything
        .env("SQLMATIC_API__AUTH__MODE", "none")
        .env("SQLMATIC_API__RATE_LIMIT__ENABLED", "false")
        .env("SQLMATIC_DATABASE__APP_PATH", dir.join("app.db"))
        .env("SQLMATIC_DATABASE__DEMO_PATH", dir.join("demo.db"))
        .env("SQLMATIC_LOGGING__FILE", "")
        .env("SQLMATIC_LOGGING__LEVEL", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id();
    let server = Server(child);
    wait_ready(port, Duration::from_secs(60), "the server")?;
    Ok((server, port, pid))
}

/// Waits until `GET /readyz` on `port` answers 200.
fn wait_ready(port: u16, limit: Duration, what: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    while http_get(port, "/readyz").is_none_or(|r| !r.starts_with("HTTP/1.1 200")) {
        if started.elapsed() > limit {
            bail!("{what} did not become ready within {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn http_post(port: u16, path: &str, body: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn timed_ms(f: impl FnOnce() -> Option<String>) -> anyhow::Result<f64> {
    let t = Instant::now();
    let response = f().context("no HTTP response")?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if !response.starts_with("HTTP/1.1 200") {
        bail!("unexpected response: {}", response.lines().next().unwrap_or(""));
    }
    Ok(ms)
}

fn median_ms(n: usize, mut f: impl FnMut() -> Option<String>) -> anyhow::Result<f64> {
    let mut runs = (0..n).map(|_| timed_ms(&mut f)).collect::<anyhow::Result<Vec<f64>>>()?;
    runs.sort_by(f64::total_cmp);
    Ok(runs[runs.len() / 2])
}

/// The real-file figures over HTTP (release server, one request at a time), against the plain
/// SQLite floors the files bench measured in this run (`target/bench/files/files.json`).
fn files_over_http() -> anyhow::Result<()> {
    let files = root().join("target/bench/files");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(files.join("files.json"))?)?;
    let floor = |what: &str| -> f64 {
        report["results"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["what"] == what)
            .and_then(|r| r["floor_ms"].as_f64())
            .unwrap_or(f64::NAN)
    };
    let big = files.join(format!("big-{}.db", report["rows"]));
    let mut rows = Vec::new();
    println!("\n| over HTTP | sqlmatic ms | SQLite floor ms | ratio |");
    println!("|---|---|---|---|");
    let mut row = |what: &str, ours: f64, floor: f64| {
        println!("| {what} | {ours:.3} | {floor:.3} | {:.2}× |", ours / floor);
        rows.push(
            json!({"what": what, "sqlmatic_ms": ours, "floor_ms": floor, "ratio": ours / floor}),
        );
    };
    for (name, path) in [("many", files.join("many.db")), ("big", big)] {
        let dir = tempfile_dir()?;
        let targets = format!("[{{name=\"{name}\", path=\"{}\"}}]", path.display());
        let (server, port, _) = start_server(&dir, &[("SQLMATIC_DATABASE__TARGETS", targets)])?;
        let first = timed_ms(|| http_get(port, "/api/database/structure"))?;
        let cached = median_ms(50, || http_get(port, "/api/database/structure"))?;
        if name == "many" {
            row(
                "2,000 tables: first GET /api/database/structure",
                first,
                floor("2,000 tables: first structure"),
            );
            row(
                "2,000 tables: cached GET /api/database/structure",
                cached,
                floor("2,000 tables: cached structure"),
            );
        } else {
            row(
                "big file: first GET /api/database/structure",
                first,
                floor("big file: first structure"),
            );
            row(
                "big file: cached GET /api/database/structure",
                cached,
                floor("2,000 tables: cached structure"),
            );
            let lookup = median_ms(500, || {
                http_post(
                    port,
                    "/api/query",
                    r#"{"sql":"SELECT * FROM events WHERE id = 12345677"}"#,
                )
            })?;
            row("big file: POST /api/query point lookup", lookup, floor("big file: point lookup"));
        }
        drop(server);
    }
    std::fs::write(files.join("http.json"), serde_json::to_string_pretty(&rows)?)?;
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = root().join("target/bench/run");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A virtualenv under `target/bench-venv` with `packages` installed (PyPI), for the benchmarks'
/// Python comparisons; returns its interpreter.
pub fn python_venv(packages: &[&str]) -> anyhow::Result<std::path::PathBuf> {
    let venv = crate::root().join("target/bench-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        crate::run(std::process::Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    crate::run(
        std::process::Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(packages),
    )?;
    Ok(python)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_output() {
        let out = "Running 1s test @ http://127.0.0.1:1/x\n  2 threads and 8 connections\n  Latency Distribution\n     50%  412.00us\n     75%    1.00ms\n     90%    1.50ms\n     99%    2.10s\n  1234 requests in 1.00s, 1.00MB read\n  Non-2xx or 3xx responses: 3\nRequests/sec:   1234.56\n";
        let r = parse_wrk(out);
        assert_eq!(r["requests"], 1234);
        assert_eq!(r["rps"], 1234.56);
        assert!((r["p50_ms"].as_f64().unwrap() - 0.412).abs() < 1e-9);
        assert_eq!(r["p99_ms"], 2100.0);
        assert_eq!(r["non_2xx"], 3);
    }
}
