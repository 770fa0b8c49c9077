//! What the benchmarks share: the release server (or a floor) as a child process pointed at a
//! scripted LLM, readings from /proc, percentiles.

pub mod proc;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sqlmatic` on a free port in `dir` (temp app and demo databases), its agent pointed at
/// `llm_url`; auth and rate limits off so one client can load it. `extra` adds variables.
pub fn start_server(dir: &Path, llm_url: &str, extra: &[(&str, &str)]) -> Server {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sqlmatic"));
    cmd.args(["--port", &port.to_string()])
        .current_dir(dir)
        .env_remove("SQLMATIC_CONFIG")
        .env("SQLMATIC_ENV", "production")
        .env("SQLMATIC_API__HOST", "127.0.0.1")
        // measure the server, not the limiter: one client sends everything
        .env("SQLMATIC_API__AUTH__MODE", "none")
        .env("SQLMATIC_API__RATE_LIMIT__ENABLED", "false")
        .env("SQLMATIC_DATABASE__APP_PATH", dir.join("app.db"))
        .env("SQLMATIC_DATABASE__DEMO_PATH", dir.join("demo.db"))
        .env("SQLMATIC_LOGGING__FILE", "")
        .env("SQLMATIC_LOGGING__LEVEL", "error")
        .env("SQLMATIC_AGENT__PROVIDER", "openai")
        .env("SQLMATIC_AGENT__BASE_URL", llm_url)
        .env("SQLMATIC_AGENT__MODEL", "scripted")
        .stdout(Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    spawn_listening(&mut cmd, port, "the server")
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `cmd` and waits until it listens on `port` (30 s at most).
pub fn spawn_listening(cmd: &mut Command, port: u16, what: &str) -> Server {
    let server =
        Server { child: cmd.spawn().unwrap_or_else(|e| panic!("starting {what}: {e}")), port };
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// The `p`th percentile of sorted values (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(((p / 100.0) * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1)]
}
