use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlmatic_events::{ErrorPayload, Event, Topic};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::*;

crate::on_both_engines!(database_subscribers_get_the_schema_and_its_changes);

async fn database_subscribers_get_the_schema_and_its_changes(engine: Engine) {
    let app = engine.spawn("ws_schema", |c| c.database.schema_poll_interval_ms = 100).await;
    let mut ws = app.ws_connect().await;
    ws_send(&mut ws, json!({"action": "subscribe", "topics": ["database"]})).await;
    let ack = ws_next(&mut ws, 5).await;
    assert_eq!(ack, json!({"event": "subscribed", "payload": {"topics": ["database:demo"]}}));
    let update = ws_next(&mut ws, 5).await;
    assert_eq!(update["event"], "database_update");
    assert_eq!(update["payload"]["database"], "demo");
    let version = update["payload"]["schema_version"].as_i64().unwrap();
    assert!(update["payload"]["schema"]["tables"].as_array().unwrap().len() >= 8);

    let tables = update["payload"]["schema"]["tables"].as_array().unwrap().len();

    // Another process changes the schema: a patch with only the new table arrives within the
    // interval.
    engine.ddl(&app, "ws_schema", "CREATE TABLE audit(id INTEGER PRIMARY KEY, note TEXT)");
    let update = ws_next_named(&mut ws, "database_update", 5).await;
    assert_ne!(update["payload"]["schema_version"].as_i64().unwrap(), version);
    assert!(update["payload"].get("schema").is_none(), "{update}");
    let patch = &update["payload"]["patch"];
    assert_eq!(patch["since"].as_i64().unwrap(), version);
    assert_eq!(patch["names"].as_array().unwrap().len(), tables + 1);
    let changed: Vec<&str> =
        patch["tables"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    // (PostgreSQL may also refresh another table's row estimate meanwhile)
    assert!(changed.contains(&"audit"), "{changed:?}");
}

#[actix_web::test]
async fn thread_events_and_chat_over_the_socket() {
    let app = spawn_app().await;
    let mut ws = app.ws_connect().await;
    ws_send(&mut ws, json!({"action": "subscribe", "topics": ["threads"]})).await;
    assert_eq!(ws_next(&mut ws, 5).await["event"], "subscribed");
    let created: Value =
        app.post_json("/api/threads", json!({"title": "live"})).await.json().await.unwrap();
    let event = ws_next(&mut ws, 5).await;
    assert_eq!(event["event"], "thread_created");
    assert_eq!(event["payload"]["id"], created["id"]);

    ws_send(&mut ws, json!({"action": "chat", "message": "top 5 products by revenue"})).await;
    let mut saw_created = false;
    let mut saw_error = false;
    for _ in 0..2 {
        let e = ws_next(&mut ws, 5).await;
        match e["event"].as_str().unwrap() {
            "thread_created" => saw_created = e["payload"]["title"] == "top 5 products by revenue",
            "error" => saw_error = e["payload"]["code"] == "llm_not_configured",
            other => panic!("unexpected {other}"),
        }
    }
    assert!(saw_created && saw_error);
    let list: Value = app.get("/api/threads").await.json().await.unwrap();
    assert_eq!(list["total"], 2, "the chat's message was stored in a new thread");

    ws_send(&mut ws, json!({"action": "subscribe", "topics": [format!("thread:{}", created["id"].as_str().unwrap())]})).await;
    let ack = ws_next(&mut ws, 5).await;
    assert_eq!(ack["event"], "subscribed");
    assert_eq!(ack["payload"]["topics"].as_array().unwrap().len(), 2);
}

#[actix_web::test]
async fn bad_messages_get_errors_and_the_socket_stays_open() {
    let app = spawn_app().await;
    let mut ws = app.ws_connect().await;
    for bad in
        ["not json", "{}", r#"{"action":"dance"}"#, r#"{"action":"subscribe","topics":"database"}"#]
    {
        ws.send(WsMessage::Text(bad.into())).await.unwrap();
        let e = ws_next(&mut ws, 5).await;
        assert_eq!(e["event"], "error", "{bad}");
        assert_eq!(e["payload"]["code"], "bad_message", "{bad}");
    }
    ws_send(&mut ws, json!({"action": "subscribe", "topics": ["weather"]})).await;
    assert_eq!(ws_next(&mut ws, 5).await["payload"]["code"], "unknown_topic");
    ws_send(&mut ws, json!({"action": "subscribe", "topics": ["database:nope"]})).await;
    assert_eq!(ws_next(&mut ws, 5).await["payload"]["code"], "topic_not_found");
    ws_send(
        &mut ws,
        json!({"action": "subscribe", "topics": ["thread:5f0c1d2e-0000-4000-8000-000000000000"]}),
    )
    .await;
    assert_eq!(ws_next(&mut ws, 5).await["payload"]["code"], "topic_not_found");
    ws.send(WsMessage::Binary(vec![1, 2, 3].into())).await.unwrap();
    assert_eq!(ws_next(&mut ws, 5).await["payload"]["code"], "bad_message");
    ws_send(&mut ws, json!({"action": "ping", "id": 7})).await;
    assert_eq!(ws_next(&mut ws, 5).await, json!({"event": "pong", "payload": {"id": 7}}));
}

#[actix_web::test]
async fn metrics_subscribers_get_periodic_updates_and_can_unsubscribe() {
    let app = spawn_with(|c| c.api.metrics_interval_ms = 150).await;
    let mut ws = app.ws_connect().await;
    ws_send(&mut ws, json!({"action": "subscribe", "topics": ["metrics"]})).await;
    assert_eq!(ws_next(&mut ws, 5).await["event"], "subscribed");
    let m = ws_next(&mut ws, 5).await;
    assert_eq!(m["event"], "metrics_update");
    assert_eq!(m["payload"]["websocket"]["connections"], 1);
    ws_send(&mut ws, json!({"action": "unsubscribe", "topics": ["metrics"]})).await;
    let ack = ws_next_named(&mut ws, "subscribed", 5).await;
    assert_eq!(ack["payload"]["topics"], json!([]));
    // Nothing more arrives (a metrics event already queued may still come first).
    let mut quiet = 0;
    for _ in 0..3 {
        match tokio::time::timeout(Duration::from_millis(400), ws.next()).await {
            Err(_) => quiet += 1,
            Ok(Some(Ok(WsMessage::Ping(_)))) => quiet += 1,
            Ok(other) => assert!(format!("{other:?}").contains("metrics_update"), "{other:?}"),
        }
    }
    assert!(quiet >= 2);
}

#[actix_web::test]
async fn a_client_that_does_not_read_is_disconnected_not_buffered() {
    let app = spawn_with(|c| c.api.ws_buffer_size = 4).await;
    let mut ws = app.ws_connect().await;
    ws_send(&mut ws, json!({"action": "subscribe", "topics": ["metrics"]})).await;
    assert_eq!(ws_next(&mut ws, 5).await["event"], "subscribed");
    // Stop reading and flood: ~40 MB of events cannot fit in socket buffers and queues.
    let big = Event::Error(ErrorPayload::new("flood", "x".repeat(100_000)));
    for _ in 0..400 {
        app.core.bus().publish(&Topic::Metrics, &big);
        tokio::time::sleep(Duration::from_millis(2)).await;
        if app.core.bus().stats().subscribers_dropped > 0 {
            break;
        }
    }
    assert_eq!(app.core.bus().stats().subscribers_dropped, 1, "the slow client was dropped");
    assert_eq!(app.core.bus().stats().subscribers, 0);
    // Draining what was in flight ends with the socket closing.
    let mut closed = false;
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        match msg {
            Ok(WsMessage::Close(frame)) => {
                if let Some(f) = frame {
                    assert_eq!(f.code, CloseCode::Again);
                    assert!(f.reason.contains("too slow"));
                }
                closed = true;
                break;
            }
            Ok(_) => continue,
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed || ws.next().await.is_none());
}

#[actix_web::test]
async fn oversized_frames_close_with_1009() {
    let app = spawn_with(|c| c.api.ws_max_frame_bytes = 2048).await;
    let mut ws = app.ws_connect().await;
    ws.send(WsMessage::Text("x".repeat(10_000).into())).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap() {
            Some(Ok(WsMessage::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Size);
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[actix_web::test]
async fn silent_clients_are_closed_after_the_idle_timeout() {
    let app = spawn_with(|c| {
        c.api.ws_heartbeat_interval_ms = 100;
        c.api.ws_idle_timeout_ms = 300;
    })
    .await;
    let mut ws = app.ws_connect().await;
    // Not reading means not answering pings.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut reason = None;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        if let WsMessage::Close(frame) = msg {
            reason = frame.map(|f| f.reason.to_string());
            break;
        }
    }
    assert_eq!(reason.as_deref(), Some("idle timeout"));
    let m: Value = app.get("/api/metrics").await.json().await.unwrap();
    assert_eq!(m["websocket"]["connections"], 0);
}

/// A message sent in fragments, each under the limit but over it together, closes with 1009
/// like one big frame.
#[actix_web::test]
async fn fragmented_messages_over_the_limit_close_with_1009() {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let app = spawn_with(|c| c.api.ws_max_frame_bytes = 2048).await;
    let mut ws = app.ws_connect().await;
    for i in 0..5 {
        let op = if i == 0 { OpCode::Data(Data::Text) } else { OpCode::Data(Data::Continue) };
        let frame = Frame::message(vec![b'x'; 1000], op, i == 4);
        if ws.send(WsMessage::Frame(frame)).await.is_err() {
            break;
        }
    }
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap() {
            Some(Ok(WsMessage::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Size, "{frame:?}");
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// A topic named twice, or by its alias, is subscribed once: one ack entry, one schema push.
#[actix_web::test]
async fn a_topic_named_twice_is_subscribed_once() {
    let app = spawn_app().await;
    let mut ws = app.ws_connect().await;
    ws_send(
        &mut ws,
        json!({"action": "subscribe", "topics": ["database", "database", "database:demo"]}),
    )
    .await;
    let ack = ws_next_named(&mut ws, "subscribed", 5).await;
    assert_eq!(ack["payload"]["topics"], json!(["database:demo"]));
    assert_eq!(ws_next_named(&mut ws, "database_update", 5).await["payload"]["database"], "demo");
    ws_send(&mut ws, json!({"action": "ping", "id": "after"})).await;
    let next = ws_next(&mut ws, 5).await;
    assert_eq!(next["event"], "pong", "no second database_update: {next}");
}
