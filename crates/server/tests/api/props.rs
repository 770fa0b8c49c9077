//! Generated hostile input against the running server: random bodies (JSON of any shape, huge
//! strings, deep nesting, invalid UTF-8, unknown fields) and random WebSocket frames. Every
//! answer is a typed JSON error or a success — never a 5xx, never a closed socket.

use futures_util::SinkExt;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::helpers::*;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "(SELECT 1|DELETE FROM orders|message|thread_id|sql|title)".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::hash_map(
                "(sql|params|database|message|thread_id|title|stream|action|topics|[a-z]{1,6})",
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Bodies: JSON values, raw bytes (often invalid UTF-8), deep nesting, huge strings.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_value().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..512),
        (1usize..20_000).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes()),
        (1usize..400_000).prop_map(|n| format!("{{\"sql\": \"{}\"}}", "x".repeat(n)).into_bytes()),
    ]
}

fn samples<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::deterministic();
    (0..n).map(|_| strategy.new_tree(&mut runner).unwrap().current()).collect()
}

#[actix_web::test]
async fn random_rest_bodies_get_typed_errors() {
    let app = spawn_with(|c| c.api.rate_limit.enabled = false).await;
    let thread: Value = app.post_json("/api/threads", json!({})).await.json().await.unwrap();
    let thread_url = app.url(&format!("/api/threads/{}", thread["id"].as_str().unwrap()));
    for (i, bytes) in samples(body(), 120).into_iter().enumerate() {
        let request = match i % 4 {
            0 => app.client.post(app.url("/api/query")),
            1 => app.client.post(app.url("/chat")),
            2 => app.client.post(app.url("/api/threads")),
            _ => app.client.patch(&thread_url),
        };
        let r = request
            .header("content-type", "application/json")
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let preview = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned();
        if status >= 400 {
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{status} without a JSON body for {preview}"));
            assert!(v["error"]["code"].is_string(), "{text}");
        }
        assert!(
            status < 500 || (status == 503 && text.contains("llm_not_configured")),
            "{status} {text} for {preview}"
        );
    }
}

#[actix_web::test]
async fn random_websocket_frames_get_answers_and_the_socket_stays_open() {
    let app = spawn_with(|c| c.api.rate_limit.enabled = false).await;
    let mut ws = app.ws_connect().await;
    let frames =
        samples(prop_oneof![json_value().prop_map(|v| v.to_string()), any::<String>()], 150);
    for frame in frames {
        ws.send(WsMessage::Text(frame.clone().into())).await.unwrap();
        let reply = ws_next(&mut ws, 5).await;
        assert!(reply["event"].is_string(), "{reply} for {frame}");
        if reply["event"] == "subscribed" {
            // a random subscribe may have added a database topic, which pushes the schema
            while let Ok(extra) =
                tokio::time::timeout(std::time::Duration::from_millis(50), ws_next(&mut ws, 1))
                    .await
            {
                assert!(extra["event"].is_string());
            }
        }
    }
    ws_send(&mut ws, json!({"action": "ping", "id": "still-open"})).await;
    assert_eq!(ws_next_named(&mut ws, "pong", 5).await["payload"]["id"], "still-open");
}
