//! Agent benchmarks (`cargo bench -p sqlmatic-server --bench agent`, or `cargo xtask bench-agent`).
//!
//! The release `sqlmatic` binary runs as a child process on a temp directory, its agent pointed
//! at a scripted OpenAI-compatible server in this process. A turn is list_tables → get_schema →
//! execute_query → answer (four model calls, three tool calls).
//!
//! 1. Per-turn overhead: sequential turns against a zero-latency scripted server — median and
//!    p95 wall time per turn, and the server's CPU time per turn (from /proc/<pid>/stat).
//! 2. Concurrency: 200 concurrent chats against a scripted server that waits 100 ms per call —
//!    throughput, p50/p99 latency, errors and the server's peak memory.

// A benchmark reports on stdout; a failed setup may panic.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlmatic_agent::testing::{Reply, ScriptedLlm, Step};

fn turn_script() -> Vec<Step> {
    vec![
        Step::Reply(Reply::tool("c1", "list_tables", json!({}))),
        Step::Reply(Reply::tool("c2", "get_schema", json!({"tables": ["customers", "orders"]}))),
        Step::Reply(Reply::tool(
            "c3",
            "execute_query",
            json!({"sql": "SELECT c.country, count(*) AS orders FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.country ORDER BY orders DESC LIMIT 5"}),
        )),
        Step::Reply(Reply::text(
            "Germany has the most orders, then France and Spain. SQL: SELECT c.country, count(*) ...",
        )),
    ]
}

mod support;

use support::proc::{cpu_ms, status_kib};
use support::{percentile, start_server};

async fn chat(client: &reqwest::Client, port: u16, i: usize) -> Result<f64, String> {
    let started = Instant::now();
    let r = client
        .post(format!("http://127.0.0.1:{port}/chat"))
        .json(&json!({"message": format!("Which countries order the most? ({i})")}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let body: Value = r.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() || body["status"] != "complete" || body["steps"] != 4 {
        return Err(format!("{status}: {body}"));
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// Runs a hand-written loop of the same turn: the program in the variable `env` (with `script`
/// as its first argument when given), which prints one JSON report. Its report, or why it did
/// not run. `cargo xtask bench-agent` sets both variables.
fn hand_written_loop(
    env: &str,
    script: Option<&str>,
    llm_url: &str,
    db: &Path,
    turns: usize,
) -> Value {
    let Ok(program) = std::env::var(env) else {
        return json!({"skipped": format!("{env} is not set; run `cargo xtask bench-agent`")});
    };
    let out = std::process::Command::new(program)
        .args(script.map(|s| Path::new(env!("CARGO_MANIFEST_DIR")).join(s)))
        .arg(llm_url)
        .arg(db)
        .arg(turns.to_string())
        .output();
    match out {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| json!({"skipped": format!("unreadable report: {e}")})),
        Ok(o) => json!({"skipped": String::from_utf8_lossy(&o.stderr).to_string()}),
        Err(e) => json!({"skipped": e.to_string()}),
    }
}

fn main() {
    let turns: usize =
        std::env::var("AGENT_BENCH_TURNS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let concurrent: usize =
        std::env::var("AGENT_BENCH_CONCURRENT").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let report = rt.block_on(async {
        let client =
            sqlmatic_agent::http_client(Duration::from_secs(5), Some(Duration::from_secs(120)))
                .unwrap();

        // 1. per-turn overhead, zero-latency model
        let llm = ScriptedLlm::by_round(turn_script(), Duration::ZERO).await;
        let dir = tempfile::tempdir().unwrap();
        // with the demo's business context (retrieval per question), then without it
        let measure = async |extra: &[(&str, &str)]| {
            let server = start_server(dir.path(), &llm.openai_url(), extra);
            for i in 0..20 {
                chat(&client, server.port, i).await.expect("warm-up turn");
            }
            let pid = server.child.id();
            let cpu_before = cpu_ms(pid);
            let mut walls = Vec::with_capacity(turns);
            for i in 0..turns {
                walls.push(chat(&client, server.port, i).await.expect("turn"));
            }
            let cpu_per_turn = (cpu_ms(pid) - cpu_before) / turns as f64;
            walls.sort_by(f64::total_cmp);
            (walls, cpu_per_turn)
        };
        let (walls, cpu_per_turn) = measure(&[]).await;
        let (_, cpu_without_context) =
            measure(&[("SQLMATIC_AGENT__CONTEXT_TOKEN_BUDGET", "0")]).await;
        // the same turns, same scripted model, same database: a hand-written Python loop
        let demo = dir.path().join("demo.db");
        // `benches/python/agent_loop.py` in a virtualenv with the openai SDK
        let python = hand_written_loop(
            "AGENT_BENCH_PYTHON",
            Some("benches/python/agent_loop.py"),
            &llm.openai_url(),
            &demo,
            turns,
        );
        // the same loop in Rust (`examples/agent_loop.rs`): the floor under sqlmatic's turn
        let rust =
            hand_written_loop("AGENT_BENCH_RUST_LOOP", None, &llm.openai_url(), &demo, turns);

        // 2. concurrent chats, 100 ms per model call
        let slow = ScriptedLlm::by_round(turn_script(), Duration::from_millis(100)).await;
        let dir2 = tempfile::tempdir().unwrap();
        let server = start_server(dir2.path(), &slow.openai_url(), &[]);
        chat(&client, server.port, 0).await.expect("warm-up turn");
        let started = Instant::now();
        let results =
            futures_util::future::join_all((0..concurrent).map(|i| chat(&client, server.port, i)))
                .await;
        let total_s = started.elapsed().as_secs_f64();
        let mut lat: Vec<f64> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
        let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        lat.sort_by(f64::total_cmp);
        let peak = status_kib(server.child.id(), "VmHWM:");
        json!({
            "overhead": {
                "turns": turns,
                "median_ms": percentile(&walls, 50.0),
                "p95_ms": percentile(&walls, 95.0),
                "server_cpu_ms_per_turn": cpu_per_turn,
                "server_cpu_ms_per_turn_without_business_context": cpu_without_context,
            },
            "python_loop": python,
            "rust_loop": rust,
            "concurrent": {
                "chats": concurrent,
                "model_latency_ms": 100,
                "model_calls_per_turn": 4,
                "wall_s": total_s,
                "throughput_turns_per_s": lat.len() as f64 / total_s,
                "p50_ms": percentile(&lat, 50.0),
                "p99_ms": percentile(&lat, 99.0),
                "errors": errors.len(),
                "first_error": errors.first(),
                "server_peak_rss_kib": peak,
            }
        })
    });
    let o = &report["overhead"];
    let c = &report["concurrent"];
    println!(
        "agent turn overhead ({} sequential turns, zero-latency scripted model, 4 model calls + 3 tool calls):",
        o["turns"]
    );
    println!(
        "  wall per turn: median {:.2} ms, p95 {:.2} ms; server CPU {:.2} ms per turn \
         ({:.2} ms without the business context's retrieval, same run)",
        o["median_ms"].as_f64().unwrap_or(f64::NAN),
        o["p95_ms"].as_f64().unwrap_or(f64::NAN),
        o["server_cpu_ms_per_turn"].as_f64().unwrap_or(f64::NAN),
        o["server_cpu_ms_per_turn_without_business_context"].as_f64().unwrap_or(f64::NAN)
    );
    let p = &report["python_loop"];
    match p["cpu_ms_per_turn"].as_f64() {
        Some(python_cpu) => {
            let ours = o["server_cpu_ms_per_turn"].as_f64().unwrap_or(f64::NAN);
            println!(
                "  hand-written Python loop (openai {} + sqlite3), same turns in this run: CPU {python_cpu:.2} ms per turn \
                 (its three tool calls alone: {:.2} ms); sqlmatic uses {:.1}x less CPU per turn",
                p["openai"].as_str().unwrap_or("?"),
                p["tools_cpu_ms_per_turn"].as_f64().unwrap_or(f64::NAN),
                python_cpu / ours
            );
        }
        None => println!("  hand-written Python loop: not run ({})", p["skipped"]),
    }
    let r = &report["rust_loop"];
    match r["cpu_ms_per_turn"].as_f64() {
        Some(rust_cpu) => {
            let ours = o["server_cpu_ms_per_turn"].as_f64().unwrap_or(f64::NAN);
            println!(
                "  the same loop hand-written in Rust (reqwest + rusqlite, no server, nothing stored): \
                 CPU {rust_cpu:.2} ms per turn (its three tool calls alone: {:.2} ms); sqlmatic's turn \
                 costs {:.1}x this floor",
                r["tools_cpu_ms_per_turn"].as_f64().unwrap_or(f64::NAN),
                ours / rust_cpu
            );
            if let Some(python_cpu) = p["cpu_ms_per_turn"].as_f64() {
                println!(
                    "  Python loop / Rust loop: {:.1}x, the most any Rust implementation of this turn gained here",
                    python_cpu / rust_cpu
                );
            }
        }
        None => println!("  hand-written Rust loop: not run ({})", r["skipped"]),
    }
    println!(
        "{} concurrent chats, scripted model waits 100 ms per call (turn floor 400 ms):",
        c["chats"]
    );
    println!(
        "  throughput {:.1} turns/s over {:.2} s; latency p50 {:.0} ms, p99 {:.0} ms; errors {}; server peak RSS {} KiB",
        c["throughput_turns_per_s"].as_f64().unwrap_or(f64::NAN),
        c["wall_s"].as_f64().unwrap_or(f64::NAN),
        c["p50_ms"].as_f64().unwrap_or(f64::NAN),
        c["p99_ms"].as_f64().unwrap_or(f64::NAN),
        c["errors"],
        c["server_peak_rss_kib"]
    );
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("agent.json"), serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("report: target/bench/agent.json");
}
