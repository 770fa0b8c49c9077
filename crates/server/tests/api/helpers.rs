//! `spawn_app()`: the real server on port 0 with temp databases, plus clients to talk to it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use sqlmatic_core_logic::Sqlmatic;
use sqlmatic_server::Application;
use sqlmatic_server::config::Config;
use tokio_tungstenite::tungstenite::Message as WsMessage;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct TestApp {
    pub addr: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub core: Arc<Sqlmatic>,
    pub dir: tempfile::TempDir,
    handle: ServerHandle,
}

/// The demo database is generated once per test binary and copied for each test.
fn demo_template() -> &'static Path {
    static DEMO: OnceLock<PathBuf> = OnceLock::new();
    DEMO.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let path = dir.join("demo.db");
        sqlmatic_services::demo::generate(&path).unwrap();
        path
    })
}

pub fn test_config(dir: &Path) -> Config {
    let mut config = Config::default();
    config.api.port = 0;
    config.api.workers = 1;
    config.api.shutdown_timeout_secs = 1;
    config.database.app_path = dir.join("app.db");
    config.database.demo_path = dir.join("demo.db");
    config.logging.file = None;
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(demo_template(), dir.path().join("demo.db")).unwrap();
    spawn_in(dir, adjust).await
}

/// Points the agent at a scripted LLM server, with short timeouts and retries.
pub fn use_llm(config: &mut Config, llm: &sqlmatic_agent::testing::ScriptedLlm) {
    config.agent.provider = Some("openai".into());
    config.agent.base_url = Some(llm.openai_url());
    config.agent.model = Some("scripted".into());
    config.agent.retry_base_ms = 5;
    config.agent.retry_max_ms = 20;
    config.agent.stream_idle_timeout_ms = 1500;
    config.agent.request_timeout_ms = 5000;
}

/// [`use_llm`] for a model that stalls until the test acts (cancels, revokes, clicks Stop): no
/// time limit may end the turn first, however slowly a loaded machine gets to that act.
pub fn use_stalling_llm(config: &mut Config, llm: &sqlmatic_agent::testing::ScriptedLlm) {
    use_llm(config, llm);
    config.agent.stream_idle_timeout_ms = 60_000;
    config.agent.request_timeout_ms = 60_000;
}

/// Starts the server on an existing directory (its app database survives a restart).
pub async fn spawn_in(dir: tempfile::TempDir, adjust: impl FnOnce(&mut Config)) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        let _ = sqlmatic_server::logging::init(&sqlmatic_server::logging::LoggingConfig {
            file: None,
            ..Default::default()
        });
    }
    let mut config = test_config(dir.path());
    adjust(&mut config);
    let app = Application::build(config).await.expect("the server starts");
    let port = app.port();
    let core = app.core().clone();
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    let client =
        sqlmatic_agent::http_client(Duration::from_secs(5), Some(Duration::from_secs(30))).unwrap();
    TestApp { addr: format!("http://127.0.0.1:{port}"), port, client, core, dir, handle }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        actix_web::rt::spawn(async move { handle.stop(false).await });
    }
}

impl TestApp {
    /// Stops the server and hands back its directory, for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.handle.stop(false).await;
        // a throwaway directory takes the real one's place in the dropped TestApp
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        drop(self);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        dir
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(&body).send().await.unwrap()
    }

    /// `POST /chat` with a question in a new thread; the reply's JSON (or error body).
    pub async fn chat(&self, message: &str) -> Value {
        self.post_json("/chat", serde_json::json!({"message": message})).await.json().await.unwrap()
    }

    pub async fn query(&self, body: Value) -> (u16, Value) {
        let r = self.post_json("/api/query", body).await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    pub fn demo_path(&self) -> PathBuf {
        self.dir.path().join("demo.db")
    }

    pub async fn ws_connect(&self) -> Ws {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", self.port))
            .await
            .unwrap();
        ws
    }
}

/// Asserts an error response: status and stable code.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    body
}

pub async fn ws_send(ws: &mut Ws, v: Value) {
    ws.send(WsMessage::Text(v.to_string().into())).await.unwrap();
}

/// The next JSON event (skipping pings), or panics after `secs`.
pub async fn ws_next(ws: &mut Ws, secs: u64) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("an event in time")
            .expect("the socket is open")
            .unwrap();
        match msg {
            WsMessage::Text(t) => return serde_json::from_str(&t).unwrap(),
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// The next event with this name, skipping others.
pub async fn ws_next_named(ws: &mut Ws, name: &str, secs: u64) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now()).as_secs().max(1);
        let v = ws_next(ws, left).await;
        if v["event"] == name {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "no {name} event in time");
    }
}

/// The engine a target-related test runs on: each such test runs once per engine, on the same
/// demo shop (SQLite: the bundled file; PostgreSQL: loaded into the test cluster).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// The `n`th positional parameter as the engine writes it.
    pub fn param(self, n: usize) -> String {
        match self {
            Engine::Sqlite => "?".into(),
            Engine::Postgres => format!("${n}"),
        }
    }

    /// The database a test named `test` uses on the PostgreSQL cluster.
    fn pg_database(test: &str) -> String {
        format!("api_{test}")
    }

    /// The server with the demo shop on this engine.
    pub async fn spawn(self, test: &str, adjust: impl FnOnce(&mut Config)) -> TestApp {
        match self {
            Engine::Sqlite => spawn_with(adjust).await,
            Engine::Postgres => {
                let spec =
                    sqlmatic_services::testing::postgres_shop(&Self::pg_database(test)).await;
                spawn_with(move |c| {
                    c.database.targets = vec![spec];
                    adjust(c)
                })
                .await
            }
        }
    }

    /// Runs DDL from another connection, as an operator would (on PostgreSQL, granting the
    /// read-only role what it creates, as the recipe's default privileges would).
    pub fn ddl(self, app: &TestApp, test: &str, sql: &str) {
        match self {
            Engine::Sqlite => {
                rusqlite::Connection::open(app.demo_path()).unwrap().execute_batch(sql).unwrap()
            }
            Engine::Postgres => {
                let grant = "GRANT SELECT ON ALL TABLES IN SCHEMA public TO sqlmatic_ro";
                let _ = sqlmatic_tools::test_support::postgres::cluster()
                    .psql(&Self::pg_database(test), &format!("{sql}; {grant}"));
            }
        }
    }
}

/// Declares each named `async fn name(engine: Engine)` as two tests, `sqlite::name` and
/// `postgres::name`.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[actix_web::test] async fn $name() { super::$name($crate::helpers::Engine::Sqlite).await } )*
        }
        mod postgres {
            $( #[actix_web::test] async fn $name() { super::$name($crate::helpers::Engine::Postgres).await } )*
        }
    };
}
