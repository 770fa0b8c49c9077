//! The app database and target databases in trouble: clear errors, nothing lost, recovery.

use serde_json::{Value, json};

use crate::helpers::*;

#[actix_web::test]
async fn a_locked_app_database_answers_503_and_recovers() {
    let app = spawn_with(|c| c.database.busy_timeout_ms = 200).await;
    app.post_json("/api/threads", json!({"title": "before"})).await;
    let locker = rusqlite::Connection::open(app.dir.path().join("app.db")).unwrap();
    locker
        .execute_batch("BEGIN IMMEDIATE; INSERT INTO users(name, created_at) VALUES ('lock', 'x');")
        .unwrap();
    assert_error(
        app.post_json("/api/threads", json!({"title": "while locked"})).await,
        503,
        "app_db_busy",
    )
    .await;
    let list: Value = app.get("/api/threads").await.json().await.unwrap();
    assert_eq!(list["total"], 1, "reads go on while a writer holds the lock");
    locker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(app.post_json("/api/threads", json!({"title": "after"})).await.status(), 201);
}

#[actix_web::test]
async fn a_full_app_database_answers_503_and_keeps_what_it_has() {
    let app = spawn_with(|c| {
        // room for the schema (FTS5 tables take several pages each) and a few questions
        c.database.app_max_pages = 80;
        // the value index alone would fill the cap; this test is about messages
        c.database.value_index.enabled = false;
    })
    .await;
    // each acknowledged question: (thread, message id, text)
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..200 {
        let text = format!("{i} {}", "x".repeat(20_000));
        let r = app.post_json("/chat", json!({"message": text})).await;
        let body: Value = r.json().await.unwrap();
        if body["error"]["code"] == "llm_not_configured" {
            let d = &body["error"]["details"];
            acknowledged.push((
                d["thread_id"].as_str().unwrap().to_owned(),
                d["message_id"].clone(),
                text,
            ));
            continue;
        }
        refused = Some(body);
        break;
    }
    let body = refused.expect("the cap is reached");
    assert_eq!(body["error"]["code"], "app_db_unwritable", "{body}");
    assert!(!acknowledged.is_empty());
    for (thread, id, text) in &acknowledged {
        let t: Value = app.get(&format!("/api/threads/{thread}")).await.json().await.unwrap();
        let m = t["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == *id)
            .expect("acknowledged message kept");
        assert_eq!(m["content"].as_str().unwrap(), text);
    }
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[actix_web::test]
async fn a_target_database_that_disappears_is_a_clear_error_until_it_is_back() {
    let app = spawn_app().await;
    let path = app.demo_path();
    let aside = app.dir.path().join("aside.db");
    std::fs::rename(&path, &aside).unwrap();
    assert_error(
        app.post_json("/api/query", json!({"sql": "SELECT 1"})).await,
        503,
        "database_unavailable",
    )
    .await;
    assert_error(app.get("/api/database/structure").await, 503, "database_unavailable").await;
    std::fs::rename(&aside, &path).unwrap();
    let (status, _) = app.query(json!({"sql": "SELECT count(*) FROM customers"})).await;
    assert_eq!(status, 200);
    // replaced by a different file: the new content is served
    let other = app.dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE replaced(x); INSERT INTO replaced VALUES (7);")
        .unwrap();
    std::fs::rename(&other, &path).unwrap();
    let mut seen = None;
    for _ in 0..20 {
        let (status, body) = app.query(json!({"sql": "SELECT x FROM replaced"})).await;
        if status == 200 {
            seen = Some(body);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen.expect("the replaced file is readable")["rows"], json!([[7]]));
}
