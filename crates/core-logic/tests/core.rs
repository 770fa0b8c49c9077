//! The application core on its own: temp app database, fixture target, no HTTP.

// Test helpers outside #[test] fns: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use sqlmatic_core_logic::{ChatRequest, CoreConfig, Error, Sqlmatic, watch};
use sqlmatic_events::Topic;
use sqlmatic_models::{Page, QueryParams, Role};
use sqlmatic_services::DatabaseConfig;

struct Fixture {
    core: Arc<Sqlmatic>,
    target_path: std::path::PathBuf,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn open(poll_ms: u64) -> Fixture {
    let (target_dir, target_path) = sqlmatic_tools::test_support::fixture_db(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1,'a');",
    );
    let app_dir = tempfile::tempdir().unwrap();
    let spec =
        serde_json::from_value(serde_json::json!({"name": "fx", "path": target_path})).unwrap();
    let config = CoreConfig {
        database: DatabaseConfig {
            app_path: app_dir.path().join("app.db"),
            schema_poll_interval_ms: poll_ms,
            targets: vec![spec],
            ..DatabaseConfig::default()
        },
        metrics_interval: Duration::from_millis(100),
        ..CoreConfig::default()
    };
    Fixture { core: Sqlmatic::open(config).unwrap(), target_path, _dirs: (app_dir, target_dir) }
}

#[tokio::test]
async fn a_chat_turn_stores_the_question_before_anything_can_fail() {
    let fx = open(1000);
    let mut sub = fx.core.bus().subscribe(8);
    fx.core.bus().add_topics(sub.id, [Topic::Threads]);
    let err = fx
        .core
        .chat(
            "local",
            ChatRequest {
                thread_id: None,
                message: "  How many rows in t?  ".into(),
                database: None,
            },
        )
        .await
        .unwrap_err();
    let Error::LlmNotConfigured { thread_id, message_id } = err else { panic!("{err:?}") };
    let created: serde_json::Value =
        serde_json::from_str(&sub.receiver.recv().await.unwrap()).unwrap();
    assert_eq!(created["event"], "thread_created");
    assert_eq!(created["payload"]["title"], "How many rows in t?");
    let thread = fx.core.get_thread("local", thread_id).await.unwrap();
    assert_eq!(thread.thread.database, "fx");
    assert_eq!(thread.messages.len(), 1);
    assert_eq!(thread.messages[0].id, message_id);
    assert_eq!(thread.messages[0].role, Role::User);
    assert_eq!(thread.messages[0].content, "How many rows in t?");
}

#[tokio::test]
async fn invalid_chats_store_nothing() {
    let fx = open(1000);
    for (message, code) in [("   ", "empty_message"), (&"x".repeat(40_000)[..], "message_too_long")]
    {
        let err = fx
            .core
            .chat("local", ChatRequest { thread_id: None, message: message.into(), database: None })
            .await
            .unwrap_err();
        assert_eq!(err.code(), code);
    }
    let err = fx
        .core
        .chat(
            "local",
            ChatRequest { thread_id: None, message: "hi".into(), database: Some("nope".into()) },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "database_not_found");
    assert_eq!(fx.core.list_threads("local", Page::default()).await.unwrap().1, 0);
}

#[tokio::test]
async fn queries_reach_the_query_log_and_metrics() {
    let fx = open(1000);
    let r =
        fx.core.query("local", None, "SELECT v FROM t".into(), QueryParams::None).await.unwrap();
    assert_eq!(r.rows, vec![vec![serde_json::json!("a")]]);
    let err = fx
        .core
        .query("local", Some("fx"), "DROP TABLE t".into(), QueryParams::None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "read_only");
    let log = fx.core.query_log(Some("local"), 10).await.unwrap();
    assert_eq!(log.iter().map(|e| e.outcome.as_str()).collect::<Vec<_>>(), ["blocked", "ok"]);
    let m = fx.core.metrics_snapshot().await;
    assert_eq!(m["queries"]["run"], 2);
    assert_eq!(m["queries"]["blocked"], 1);
}

#[tokio::test]
async fn subscribers_get_the_schema_now_and_changes_later() {
    let fx = open(50);
    let _tasks = watch::start(&fx.core);
    let mut sub = fx.core.bus().subscribe(8);
    let topic = fx.core.resolve_topic("local", Topic::Database(None)).await.unwrap();
    assert_eq!(topic, Topic::Database(Some("fx".into())));
    fx.core.subscribe(sub.id, vec![topic]).await.unwrap();
    let first: serde_json::Value =
        serde_json::from_str(&sub.receiver.recv().await.unwrap()).unwrap();
    assert_eq!(first["event"], "database_update");
    // let the watcher record the current version before changing it
    tokio::time::sleep(Duration::from_millis(200)).await;
    rusqlite_exec(&fx.target_path, "CREATE TABLE added(x)");
    let next =
        tokio::time::timeout(Duration::from_secs(5), sub.receiver.recv()).await.unwrap().unwrap();
    let next: serde_json::Value = serde_json::from_str(&next).unwrap();
    assert!(
        next["payload"]["schema_version"].as_i64() > first["payload"]["schema_version"].as_i64()
    );
    assert!(
        next["payload"]["schema"]["tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "added")
    );
}

#[tokio::test]
async fn metrics_are_pushed_to_metrics_subscribers() {
    let fx = open(1000);
    let _tasks = watch::start(&fx.core);
    let mut sub = fx.core.bus().subscribe(8);
    fx.core.subscribe(sub.id, vec![Topic::Metrics]).await.unwrap();
    let m =
        tokio::time::timeout(Duration::from_secs(5), sub.receiver.recv()).await.unwrap().unwrap();
    assert!(m.starts_with(r#"{"event":"metrics_update""#));
}

#[tokio::test]
async fn other_users_threads_are_invisible() {
    let fx = open(1000);
    let t = fx.core.create_thread("local", Some("mine"), None).await.unwrap();
    let err = fx.core.resolve_topic("someone", Topic::Thread(t.id)).await.unwrap_err();
    assert_eq!(err.code(), "thread_not_found");
    let err = fx.core.get_thread("someone", t.id).await.unwrap_err();
    assert_eq!(err.code(), "thread_not_found");
}

/// DDL from another connection, as another process would run it.
fn rusqlite_exec(path: &std::path::Path, sql: &str) {
    rusqlite::Connection::open(path).unwrap().execute_batch(sql).unwrap();
}
