//! Crash safety: the server killed with SIGKILL in the middle of a chat, then restarted on the
//! same app database.

// Test helpers outside #[test] fns: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlmatic_agent::testing::{Reply, ScriptedLlm, Step};

fn start(dir: &std::path::Path, llm_url: &str) -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(env!("CARGO_BIN_EXE_sqlmatic"))
        .args(["--port", &port.to_string()])
        .current_dir(dir)
        .env_remove("SQLMATIC_CONFIG")
        .env_remove("SQLMATIC_ENV")
        .env("SQLMATIC_DATABASE__APP_PATH", dir.join("app.db"))
        .env("SQLMATIC_DATABASE__DEMO_PATH", dir.join("demo.db"))
        .env("SQLMATIC_LOGGING__FILE", "")
        .env("SQLMATIC_LOGGING__LEVEL", "warn")
        .env("SQLMATIC_AGENT__PROVIDER", "openai")
        .env("SQLMATIC_AGENT__BASE_URL", llm_url)
        .env("SQLMATIC_AGENT__MODEL", "scripted")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

#[tokio::test]
async fn a_killed_server_loses_no_acknowledged_message() {
    let llm = ScriptedLlm::queue(vec![
        Step::Reply(Reply::text("First answer.")),
        Step::Reply(Reply::text("Second answer.")),
        Step::StallAfter { events: 2, reply: Reply::text("This answer never finishes") },
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port) = start(dir.path(), &llm.openai_url());
    let client =
        sqlmatic_agent::http_client(Duration::from_secs(5), Some(Duration::from_secs(30))).unwrap();
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let first: Value = client
        .post(url("/chat"))
        .json(&json!({"message": "one"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let thread = first["thread_id"].as_str().unwrap().to_owned();
    let second: Value = client
        .post(url("/chat"))
        .json(&json!({"thread_id": thread, "message": "two"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["answer"], "Second answer.");
    // the third turn is in flight when the process dies
    let pending = tokio::spawn({
        let (client, u) = (client.clone(), url("/chat"));
        let thread = thread.clone();
        async move {
            client.post(u).json(&json!({"thread_id": thread, "message": "three"})).send().await
        }
    });
    let started = Instant::now();
    while llm.received().len() < 3 {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(pending.await.unwrap().is_err(), "the client saw the connection die");

    let conn = rusqlite::Connection::open(dir.path().join("app.db")).unwrap();
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    drop(conn);

    let (mut child, port) = start(dir.path(), &llm.openai_url());
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let t: Value = client
        .get(url(&format!("/api/threads/{thread}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let messages = t["messages"].as_array().unwrap();
    let top: Vec<(&str, &str, &str)> = messages
        .iter()
        .filter(|m| m["parent_id"].is_null())
        .map(|m| {
            (
                m["role"].as_str().unwrap(),
                m["content"].as_str().unwrap(),
                m["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        top,
        [
            ("user", "one", "complete"),
            ("assistant", "First answer.", "complete"),
            ("user", "two", "complete"),
            ("assistant", "Second answer.", "complete"),
            ("user", "three", "complete"),
            ("assistant", "", "interrupted"),
        ]
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
