//! Writes by approval: the agent proposes, the owner decides, nothing runs before.

use std::time::Duration;

use serde_json::{Value, json};
use sqlmatic_agent::testing::{Reply, ScriptedLlm, Step};

use crate::helpers::*;

async fn writable_app(
    llm: &ScriptedLlm,
    approval_ms: u64,
) -> (TestApp, std::path::PathBuf, tempfile::TempDir) {
    let (dir, path) = sqlmatic_tools::test_support::fixture_db(
        "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO items VALUES (1, 'pen');",
    );
    let p = path.clone();
    let app = spawn_with(|c| {
        use_llm(c, llm);
        c.agent.approval_timeout_ms = approval_ms;
        // waiting for a person is not limited by the ordinary tool time limit
        c.agent.tool_timeout_ms = 200;
        c.database.targets = vec![
            serde_json::from_value(json!({"name": "shop", "path": p, "read_only": false})).unwrap(),
        ];
    })
    .await;
    (app, path, dir)
}

fn count(path: &std::path::Path, sql: &str) -> i64 {
    rusqlite::Connection::open(path).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
}

#[actix_web::test]
async fn an_approved_write_runs_exactly_once_and_pushes_the_new_schema() {
    let llm = ScriptedLlm::by_round(
        vec![
            Step::Reply(Reply::tool(
                "w",
                "execute_write",
                json!({"sql": "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)"}),
            )),
            Step::Reply(Reply::text("Created the notes table.")),
        ],
        Duration::ZERO,
    )
    .await;
    let (app, path, _dir) = writable_app(&llm, 30_000).await;
    let mut ws = app.ws_connect().await;
    ws_send(&mut ws, json!({"action": "subscribe", "topics": ["database:shop"]})).await;
    ws_next_named(&mut ws, "database_update", 5).await;
    ws_send(&mut ws, json!({"action": "chat", "message": "Create a notes table"})).await;
    let asked = loop {
        let e = ws_next_named(&mut ws, "message_stream", 5).await;
        if e["payload"]["type"] == "approval_required" {
            break e;
        }
    };
    let digest = asked["payload"]["digest"].as_str().unwrap().to_owned();
    assert_eq!(asked["payload"]["sql"], "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)");
    assert_eq!(asked["payload"]["database"], "shop");
    assert_eq!(
        count(&path, "SELECT count(*) FROM sqlite_schema WHERE name = 'notes'"),
        0,
        "nothing runs before approval"
    );
    // only that digest, only once
    ws_send(&mut ws, json!({"action": "approve", "digest": "0".repeat(64)})).await;
    assert_eq!(ws_next_named(&mut ws, "error", 5).await["payload"]["code"], "approval_not_found");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = app.post_json(&format!("/api/approvals/{digest}"), json!({"approve": true})).await;
    assert_eq!(r.status(), 200);
    assert_error(
        app.post_json(&format!("/api/approvals/{digest}"), json!({"approve": true})).await,
        404,
        "approval_not_found",
    )
    .await;
    let mut saw_update = false;
    loop {
        let e = ws_next(&mut ws, 5).await;
        if e["event"] == "database_update" {
            saw_update = e["payload"]["patch"]["tables"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == "notes");
        }
        if e["payload"]["type"] == "done" {
            break;
        }
    }
    assert!(saw_update, "an approved DDL change pushes database_update");
    assert_eq!(count(&path, "SELECT count(*) FROM sqlite_schema WHERE name = 'notes'"), 1);
    let log: Value = app.get("/api/query-log").await.json().await.unwrap();
    assert!(
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["source"] == "agent:write" && e["outcome"] == "ok")
    );
}

#[actix_web::test]
async fn rejected_and_expired_writes_go_back_to_the_model() {
    let llm = ScriptedLlm::by_round(
        vec![
            Step::Reply(Reply::tool("w", "execute_write", json!({"sql": "DELETE FROM items"}))),
            Step::Reply(Reply::text("Understood, nothing was deleted.")),
        ],
        Duration::ZERO,
    )
    .await;
    let (app, path, _dir) = writable_app(&llm, 400).await;
    let mut ws = app.ws_connect().await;
    ws_send(&mut ws, json!({"action": "chat", "message": "Delete all items"})).await;
    let digest = loop {
        let e = ws_next_named(&mut ws, "message_stream", 5).await;
        if e["payload"]["type"] == "approval_required" {
            break e["payload"]["digest"].as_str().unwrap().to_owned();
        }
    };
    ws_send(&mut ws, json!({"action": "reject", "digest": digest, "reason": "we still need them"}))
        .await;
    loop {
        let e = ws_next_named(&mut ws, "message_stream", 5).await;
        if e["payload"]["type"] == "done" {
            break;
        }
    }
    assert_eq!(count(&path, "SELECT count(*) FROM items"), 1);
    let tool_result = |i: usize| -> String {
        let msgs = llm.received()[i].body["messages"].clone();
        msgs.as_array().unwrap().iter().rev().find(|m| m["role"] == "tool").unwrap()["content"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        tool_result(1).contains("rejected") && tool_result(1).contains("we still need them"),
        "{}",
        tool_result(1)
    );

    // nobody answers: the proposal expires and the model is told
    let reply: Value = app
        .post_json("/chat", json!({"message": "Delete all items, please"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reply["status"], "complete");
    assert!(tool_result(3).contains("nobody approved"), "{}", tool_result(3));
    assert_eq!(count(&path, "SELECT count(*) FROM items"), 1);
}

#[actix_web::test]
async fn read_only_targets_are_not_offered_writes() {
    let llm = ScriptedLlm::by_round(vec![Step::Reply(Reply::text("ok"))], Duration::ZERO).await;
    let app = spawn_with(|c| use_llm(c, &llm)).await;
    app.post_json("/chat", json!({"message": "hi"})).await;
    let tools: Vec<String> = llm.received()[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(tools.contains(&"execute_query".to_owned()));
    assert!(!tools.contains(&"execute_write".to_owned()), "{tools:?}");
}
