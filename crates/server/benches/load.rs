//! Load benchmark (`cargo bench -p sqlmatic-server --bench load`, or `cargo xtask bench-load`).
//!
//! The release `sqlmatic` binary runs as a child process on a copy of the demo database.
//! 1. Fan-out: N WebSocket clients subscribe to `database`; the bench changes the schema from
//!    another connection several times (after one unmeasured warm-up change); every client must
//!    receive each `database_update`.
//!    Reports delivery latency (from the first client's receipt, i.e. the fan-out itself, and
//!    from the change on disk, which includes the poll interval) and server memory per connection.
//! 2. Mixed REST load from concurrent clients while the subscribers stay connected.
//! 3. Hundreds of concurrent chats against a scripted LLM that waits per call.
//!
//! Errors must be zero.

// A benchmark reports on stdout; a failed setup may panic.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use sqlmatic_agent::testing::{Reply, ScriptedLlm, Step};
use tokio_tungstenite::tungstenite::Message;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

mod support;

use support::proc::status_kib;
use support::{percentile as pct, start_server};

/// Why a floor did not run.
const NO_FLOOR: &str = "LOAD_BENCH_FLOOR is not set; run `cargo xtask bench-load`";

/// Chat bursts per side.
const CHAT_ROUNDS: usize = 3;

/// One burst of concurrent chats.
struct Burst {
    /// Sorted latencies of the turns that succeeded, in ms.
    latencies: Vec<f64>,
    errors: usize,
    wall_s: f64,
}

impl Burst {
    /// Medians over the rounds, and every round's p99.
    fn summary(bursts: &[Burst]) -> serde_json::Value {
        let median = |f: &dyn Fn(&Burst) -> f64| {
            let mut v: Vec<f64> = bursts.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            pct(&v, 50.0)
        };
        json!({
            "p50_ms": median(&|b| pct(&b.latencies, 50.0)),
            "p99_ms": median(&|b| pct(&b.latencies, 99.0)),
            "throughput_per_s": median(&|b| b.latencies.len() as f64 / b.wall_s),
            "round_p99_ms": bursts.iter().map(|b| pct(&b.latencies, 99.0).round()).collect::<Vec<_>>(),
            "errors": bursts.iter().map(|b| b.errors).sum::<usize>(),
        })
    }
}

/// `chats` questions at once to `POST /chat` on `port`.
async fn chat_burst(client: &reqwest::Client, port: u16, chats: usize) -> Burst {
    let started = Instant::now();
    let results = futures_util::future::join_all((0..chats).map(|i| async move {
        let t = Instant::now();
        let r = client
            .post(format!("http://127.0.0.1:{port}/chat"))
            .json(&json!({"message": format!("How many pending orders? ({i})")}))
            .send()
            .await;
        match r {
            Ok(resp) if resp.status().is_success() => {
                // the whole answer, as a client waits for it
                resp.bytes().await.map_err(|e| e.to_string())?;
                Ok(t.elapsed().as_secs_f64() * 1000.0)
            }
            Ok(resp) => Err(format!("{}", resp.status())),
            Err(e) => Err(e.to_string()),
        }
    }))
    .await;
    let wall_s = started.elapsed().as_secs_f64();
    let mut latencies: Vec<f64> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    latencies.sort_by(f64::total_cmp);
    let errors = results.iter().filter(|r| r.is_err()).count();
    Burst { latencies, errors, wall_s }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next `database_update`. Recognised by its envelope's first key (serde writes the tag
/// first) rather than by parsing the whole schema: with 10,000 subscribers on the same two
/// cores, parsing 10,000 copies of the schema would measure this client, not the server.
/// Its length in bytes.
async fn next_update(ws: &mut Ws) -> Option<usize> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await.ok()?? {
            Ok(Message::Text(t)) => {
                if t.starts_with(r#"{"event":"database_update","#) {
                    return Some(t.len());
                }
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            _ => return None,
        }
    }
}

/// A subscriber's read buffer. tungstenite zero-fills its whole read buffer (128 KiB by
/// default) before every socket read, twice per message at least: with 10,000 subscribers on
/// the server's two cores that was 2.5 GB of `memset` per change, and the spread measured this
/// client more than the server. A `database_update` patch fits in 4 KiB (the whole structure
/// sent on subscribe takes a few reads).
const SUBSCRIBER_READ_BUFFER: usize = 4 * 1024;

/// Delivery of `changes` updates (after one unmeasured warm-up) to every client, each started
/// by `change(i)`.
#[derive(Default)]
struct FanOut {
    /// From the first client's receipt to each client's, in ms, sorted.
    spread: Vec<f64>,
    /// From the change to each client's receipt, in ms, sorted.
    end_to_end: Vec<f64>,
    missed: usize,
    /// Bytes of each measured update (as the first client received it).
    sizes: Vec<usize>,
}

async fn fan_out(
    clients: &mut Vec<Ws>,
    changes: usize,
    mut change: impl AsyncFnMut(usize),
) -> FanOut {
    let mut out = FanOut::default();
    // Change 0 warms up and is not measured: the first delivery after connecting costs this
    // client ~100,000 page faults for its own buffers (`perf stat -e page-faults` on the
    // bench process), and made that change's spread twice the others'.
    for i in 0..=changes {
        let receipts = Arc::new(std::sync::Mutex::new(Vec::with_capacity(clients.len())));
        let waiting: Vec<_> = clients
            .drain(..)
            .map(|mut ws| {
                let receipts = receipts.clone();
                tokio::spawn(async move {
                    let got = next_update(&mut ws).await;
                    if let Some(size) = got {
                        receipts.lock().unwrap().push((Instant::now(), size));
                    }
                    (ws, got.is_some())
                })
            })
            .collect();
        let changed_at = Instant::now();
        change(i).await;
        for handle in waiting {
            let (ws, got) = handle.await.unwrap();
            if !got {
                out.missed += 1;
            }
            clients.push(ws);
        }
        let mut times = receipts.lock().unwrap().clone();
        times.sort();
        if let Some((first, size)) = times.first().copied().filter(|_| i > 0) {
            out.sizes.push(size);
            out.spread
                .extend(times.iter().map(|(t, _)| t.duration_since(first).as_secs_f64() * 1000.0));
            out.end_to_end.extend(
                times.iter().map(|(t, _)| t.duration_since(changed_at).as_secs_f64() * 1000.0),
            );
        }
    }
    out.spread.sort_by(f64::total_cmp);
    out.end_to_end.sort_by(f64::total_cmp);
    out
}

/// Connects `n` subscribers to `port`, 200 at a time.
async fn subscribe_all(port: u16, n: usize) -> Vec<Ws> {
    let mut clients = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let batch = futures_util::future::join_all(chunk.iter().map(|_| subscriber(port))).await;
        clients.extend(
            batch.into_iter().map(|c| c.expect("a subscriber connects and gets the schema")),
        );
    }
    clients
}

async fn subscriber(port: u16) -> Option<Ws> {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(SUBSCRIBER_READ_BUFFER);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(
        format!("ws://127.0.0.1:{port}/ws"),
        Some(config),
        false,
    )
    .await
    .ok()?;
    ws.send(Message::Text(r#"{"action":"subscribe","topics":["database"]}"#.into())).await.ok()?;
    next_update(&mut ws).await?;
    Some(ws)
}

fn main() {
    let subscribers = env_or("LOAD_BENCH_SUBSCRIBERS", 2000);
    let changes = env_or("LOAD_BENCH_CHANGES", 5);
    let rest_clients = env_or("LOAD_BENCH_REST_CLIENTS", 32);
    let rest_secs = env_or("LOAD_BENCH_REST_SECONDS", 10) as u64;
    let chats = env_or("LOAD_BENCH_CHATS", 300);
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let report = rt.block_on(async move {
        let llm = ScriptedLlm::by_round(
            vec![
                Step::Reply(Reply::tool("q", "execute_query", json!({"sql": "SELECT count(*) FROM orders WHERE status = 'pending'"}))),
                Step::Reply(Reply::text("There are some pending orders.")),
            ],
            Duration::from_millis(50),
        )
        .await;
        let dir = tempfile::tempdir().unwrap();
        let server = start_server(dir.path(), &llm.openai_url(), &[("SQLMATIC_DATABASE__SCHEMA_POLL_INTERVAL_MS", "100")]);
        let pid = server.child.id();
        let port = server.port;
        let client = sqlmatic_agent::http_client(Duration::from_secs(5), Some(Duration::from_secs(60))).unwrap();
        client.get(format!("http://127.0.0.1:{port}/readyz")).send().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_idle = status_kib(pid, "VmRSS:");

        // 1. fan-out
        let connect_started = Instant::now();
        let mut clients = subscribe_all(port, subscribers).await;
        let connect_s = connect_started.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_connected = status_kib(pid, "VmRSS:");
        let demo = dir.path().join("demo.db");
        let fanned = fan_out(&mut clients, changes, async |i| {
            rusqlite::Connection::open(&demo).unwrap().execute_batch(&format!("CREATE TABLE bench_{i}(x)")).unwrap();
        })
        .await;

        // 2. mixed REST load while the subscribers stay connected
        let done = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(rest_secs);
        let workers: Vec<_> = (0..rest_clients)
            .map(|w| {
                let (client, done, errors) = (client.clone(), done.clone(), errors.clone());
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut i = w;
                    while Instant::now() < deadline {
                        let started = Instant::now();
                        let base = format!("http://127.0.0.1:{port}");
                        let r = match i % 10 {
                            0..=4 => client.get(format!("{base}/api/database/structure")).send().await,
                            5..=7 => client.post(format!("{base}/api/query")).json(&json!({"sql": "SELECT * FROM customers WHERE id = ?", "params": [i % 1200 + 1]})).send().await,
                            8 => client.post(format!("{base}/api/query")).json(&json!({"sql": "SELECT status, count(*) FROM orders GROUP BY status"})).send().await,
                            _ => client.get(format!("{base}/api/threads?limit=20")).send().await,
                        };
                        match r {
                            Ok(resp) if resp.status().is_success() => {
                                let _ = resp.bytes().await;
                                done.fetch_add(1, Ordering::Relaxed);
                                lat.push(started.elapsed().as_secs_f64() * 1000.0);
                            }
                            _ => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        i += rest_clients;
                    }
                    lat
                })
            })
            .collect();
        let mut rest_lat: Vec<f64> = Vec::new();
        for w in workers {
            rest_lat.extend(w.await.unwrap());
        }
        rest_lat.sort_by(f64::total_cmp);
        let rest_total = done.load(Ordering::Relaxed);

        // 3. concurrent chats: bursts taking turns with the floor (a bare actix-web `/chat`
        // that only makes the turn's model calls), so a drift of the machine hits both
        let floor = std::env::var("LOAD_BENCH_FLOOR").ok().map(|program| {
            let floor_port = support::free_port();
            support::spawn_listening(
                std::process::Command::new(program)
                    .args([floor_port.to_string(), "2".into(), llm.openai_url()])
                    .stdout(std::process::Stdio::null()),
                floor_port,
                "the bare actix-web floor",
            )
        });
        let mut ours = Vec::new();
        let mut floors = Vec::new();
        for round in 0..CHAT_ROUNDS {
            let mut sides = vec![(port, &mut ours)];
            if let Some(f) = &floor {
                sides.push((f.port, &mut floors));
            }
            if round % 2 == 1 {
                sides.reverse();
            }
            for (side_port, bursts) in sides {
                bursts.push(chat_burst(&client, side_port, chats).await);
            }
        }
        drop(clients);

        // 4. memory comes back: rounds of concurrent heavy queries (~4 MB results each), then
        // idle RSS compared with idle RSS just before them
        let heavy_rounds = env_or("LOAD_BENCH_HEAVY_ROUNDS", 4);
        let heavy_concurrency = env_or("LOAD_BENCH_HEAVY_CONCURRENCY", 20);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_before_heavy = status_kib(pid, "VmRSS:");
        let heavy_sql = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 1000) \
                         SELECT i, printf('%.*c', 3900, 'x') AS pad FROM r";
        let mut heavy_errors = 0usize;
        let mut rss_during_heavy = 0u64;
        for _ in 0..heavy_rounds {
            let client = reqwest::Client::new();
            let results = futures_util::future::join_all((0..heavy_concurrency).map(|_| {
                let client = client.clone();
                async move {
                    let r = client
                        .post(format!("http://127.0.0.1:{port}/api/query"))
                        .json(&json!({"sql": heavy_sql}))
                        .send()
                        .await
                        .ok()?;
                    if !r.status().is_success() {
                        return None;
                    }
                    r.bytes().await.ok().map(|b| b.len())
                }
            }))
            .await;
            heavy_errors += results.iter().filter(|r| r.is_none()).count();
            rss_during_heavy = rss_during_heavy.max(status_kib(pid, "VmRSS:"));
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_after_heavy = status_kib(pid, "VmRSS:");
        let rss_peak = status_kib(pid, "VmHWM:");

        // 5. the fan-out's floor: the same number of subscribers of a bare actix-ws server,
        // sent an update of the same size by `POST /broadcast` (after sqlmatic's subscribers
        // left: both sets at once would exceed this process's file descriptors)
        let floor_fanned = match &floor {
            Some(f) => {
                let mut floor_clients = subscribe_all(f.port, subscribers).await;
                let mut sizes = fanned.sizes.clone();
                sizes.sort_unstable();
                let size = sizes.get(sizes.len() / 2).copied().unwrap_or(1024);
                let head = r#"{"event":"database_update","data":""#;
                let payload = format!("{head}{}\"}}", "x".repeat(size.saturating_sub(head.len() + 2)));
                let url = format!("http://127.0.0.1:{}/broadcast", f.port);
                let out = fan_out(&mut floor_clients, changes, async |_| {
                    client.post(&url).body(payload.clone()).send().await.unwrap();
                })
                .await;
                Some(out)
            }
            None => None,
        };
        json!({
            "fanout": {
                "subscribers": subscribers,
                "connect_s": connect_s,
                "changes": changes,
                "missed_updates": fanned.missed,
                "update_bytes": fanned.sizes,
                "spread_p50_ms": pct(&fanned.spread, 50.0), "spread_p99_ms": pct(&fanned.spread, 99.0),
                "change_to_delivery_p50_ms": pct(&fanned.end_to_end, 50.0), "change_to_delivery_p99_ms": pct(&fanned.end_to_end, 99.0),
                "floor": match &floor_fanned {
                    Some(f) => json!({"missed_updates": f.missed, "spread_p50_ms": pct(&f.spread, 50.0), "spread_p99_ms": pct(&f.spread, 99.0)}),
                    None => json!({"skipped": NO_FLOOR}),
                },
                "rss_idle_kib": rss_idle, "rss_connected_kib": rss_connected,
                "kib_per_connection": (rss_connected.saturating_sub(rss_idle)) as f64 / subscribers as f64,
            },
            "rest": {
                "clients": rest_clients, "seconds": rest_secs, "requests": rest_total,
                "errors": errors.load(Ordering::Relaxed),
                "rps": rest_total as f64 / rest_secs as f64,
                "p50_ms": pct(&rest_lat, 50.0), "p99_ms": pct(&rest_lat, 99.0),
            },
            "chats": {
                "concurrent": chats, "model_latency_ms": 50, "model_calls_per_turn": 2,
                "rounds": CHAT_ROUNDS,
                "sqlmatic": Burst::summary(&ours),
                "floor": if floor.is_some() { Burst::summary(&floors) } else { json!({"skipped": NO_FLOOR}) },
            },
            "heavy": {
                "rounds": heavy_rounds, "concurrency": heavy_concurrency, "errors": heavy_errors,
                "rss_idle_before_kib": rss_before_heavy, "rss_max_during_kib": rss_during_heavy,
                "rss_idle_after_kib": rss_after_heavy,
            },
            "server_peak_rss_kib": rss_peak,
        })
    });
    let f = &report["fanout"];
    let r = &report["rest"];
    let c = &report["chats"];
    println!(
        "fan-out: {} WebSocket subscribers (connected in {:.1} s), {} schema changes, {} updates missed",
        f["subscribers"],
        f["connect_s"].as_f64().unwrap_or(0.0),
        f["changes"],
        f["missed_updates"]
    );
    println!(
        "  delivery spread across subscribers: p50 {:.1} ms, p99 {:.1} ms; change on disk to delivery: p50 {:.0} ms, p99 {:.0} ms (poll interval 100 ms)",
        f["spread_p50_ms"].as_f64().unwrap_or(f64::NAN),
        f["spread_p99_ms"].as_f64().unwrap_or(f64::NAN),
        f["change_to_delivery_p50_ms"].as_f64().unwrap_or(f64::NAN),
        f["change_to_delivery_p99_ms"].as_f64().unwrap_or(f64::NAN)
    );
    let ff = &f["floor"];
    match ff["spread_p99_ms"].as_f64() {
        Some(p99) => println!(
            "  bare actix-ws floor (same subscribers and update size, broadcast channel, nothing else), after: spread p50 {:.1} ms, p99 {p99:.1} ms, {} missed",
            ff["spread_p50_ms"].as_f64().unwrap_or(f64::NAN),
            ff["missed_updates"]
        ),
        None => println!("  bare actix-ws floor: not run ({})", ff["skipped"]),
    }
    println!(
        "  server RSS idle {} KiB, with subscribers {} KiB: {:.1} KiB per connection",
        f["rss_idle_kib"],
        f["rss_connected_kib"],
        f["kib_per_connection"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "mixed REST ({} clients, {} s, subscribers connected): {} requests, {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, errors {}",
        r["clients"],
        r["seconds"],
        r["requests"],
        r["rps"].as_f64().unwrap_or(0.0),
        r["p50_ms"].as_f64().unwrap_or(f64::NAN),
        r["p99_ms"].as_f64().unwrap_or(f64::NAN),
        r["errors"]
    );
    println!(
        "chats: bursts of {} concurrent (scripted model 50 ms per call, 2 calls per turn), {} rounds taking turns, median of the rounds:",
        c["concurrent"], c["rounds"]
    );
    for (name, side) in [
        ("sqlmatic", &c["sqlmatic"]),
        ("bare actix-web floor (the turn's model calls only)", &c["floor"]),
    ] {
        match side["p99_ms"].as_f64() {
            Some(p99) => println!(
                "  {name}: {:.1} turns/s, p50 {:.0} ms, p99 {p99:.0} ms (rounds' p99: {}), errors {}",
                side["throughput_per_s"].as_f64().unwrap_or(0.0),
                side["p50_ms"].as_f64().unwrap_or(f64::NAN),
                side["round_p99_ms"],
                side["errors"]
            ),
            None => println!("  {name}: not run ({})", side["skipped"]),
        }
    }
    let h = &report["heavy"];
    println!(
        "memory: {} rounds of {} concurrent ~4 MB queries ({} errors): idle RSS {} KiB before, \
         {} KiB at most during, {} KiB idle 3 s after",
        h["rounds"],
        h["concurrency"],
        h["errors"],
        h["rss_idle_before_kib"],
        h["rss_max_during_kib"],
        h["rss_idle_after_kib"]
    );
    println!("server peak RSS {} KiB", report["server_peak_rss_kib"]);
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("load.json"), serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("report: target/bench/load.json");
}
