use serde_json::{Value, json};

use crate::helpers::*;

#[actix_web::test]
async fn chat_without_a_provider_stores_the_message_and_says_how_to_configure() {
    let app = spawn_app().await;
    let r = app.post_json("/chat", json!({"message": "How many customers are in France?"})).await;
    let body = assert_error(r, 503, "llm_not_configured").await;
    assert!(body["error"]["message"].as_str().unwrap().contains("SQLMATIC_AGENT__PROVIDER"));
    let thread_id = body["error"]["details"]["thread_id"].as_str().unwrap().to_owned();
    let thread: Value = app.get(&format!("/api/threads/{thread_id}")).await.json().await.unwrap();
    assert_eq!(thread["title"], "How many customers are in France?");
    assert_eq!(thread["messages"][0]["role"], "user");
    assert_eq!(thread["messages"][0]["content"], "How many customers are in France?");
    assert_eq!(thread["messages"][0]["id"], body["error"]["details"]["message_id"]);

    // A second message in the same thread is stored too.
    let r =
        app.post_json("/chat", json!({"thread_id": thread_id, "message": "and in Spain?"})).await;
    assert_error(r, 503, "llm_not_configured").await;
    let thread: Value = app.get(&format!("/api/threads/{thread_id}")).await.json().await.unwrap();
    assert_eq!(thread["messages"].as_array().unwrap().len(), 2);
    assert_eq!(thread["message_count"], 2);
}

#[actix_web::test]
async fn chat_input_errors_lose_nothing() {
    let app = spawn_app().await;
    assert_error(app.post_json("/chat", json!({"message": "  "})).await, 400, "empty_message")
        .await;
    // invisible characters are as blank as spaces: zero-width space and joiner, BOM, soft hyphen
    for blank in ["\u{200B}", "\u{FEFF}\u{200D} \u{00AD}", "\u{2060}\u{3164}"] {
        assert_error(app.post_json("/chat", json!({"message": blank})).await, 400, "empty_message")
            .await;
        assert_error(
            app.post_json("/api/threads", json!({"title": blank})).await,
            400,
            "invalid_title",
        )
        .await;
        assert_error(app.post_json("/api/query", json!({"sql": blank})).await, 400, "sql_error")
            .await;
    }
    assert_error(
        app.post_json("/chat", json!({"message": "x".repeat(40_000)})).await,
        400,
        "message_too_long",
    )
    .await;
    assert_error(app.post_json("/chat", json!({})).await, 400, "invalid_json").await;
    assert_error(
        app.post_json(
            "/chat",
            json!({"message": "hi", "thread_id": "5f0c1d2e-0000-4000-8000-000000000000"}),
        )
        .await,
        404,
        "thread_not_found",
    )
    .await;
    assert_error(
        app.post_json("/chat", json!({"message": "hi", "database": "nope"})).await,
        404,
        "database_not_found",
    )
    .await;
    let list: Value = app.get("/api/threads").await.json().await.unwrap();
    assert_eq!(list["total"], 0, "rejected input creates no thread");
}
