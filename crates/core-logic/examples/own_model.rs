//! Answer a question about a SQLite file with your own [`ChatModel`] and stream the turn's
//! events, as the server does for a browser: `cargo run -p sqlmatic-core-logic --example own_model`.
//!
//! The model here is a few lines of rules (ask for a count, then read the tool result); a real
//! one would call your LLM. Everything else is sqlmatic's: the sandboxed tools, the stored
//! thread, the events, the typed reply.

#![allow(clippy::print_stdout)] // an example prints its results

use std::sync::Arc;

use sqlmatic_agent::AgentConfig;
use sqlmatic_agent::llm::{BoxFuture, ChatModel, Deltas, LlmError, LlmRequest, LlmResponse};
use sqlmatic_core_logic::{ChatRequest, CoreConfig, Sqlmatic};
use sqlmatic_events::Topic;
use sqlmatic_models::{ChatMessage, Principal, ToolCall, Usage};
use sqlmatic_services::DatabaseConfig;
use sqlmatic_tools::TargetSpec;

/// First asks `execute_query` for the number of customers, then answers with what it returned.
struct CountingModel;

impl CountingModel {
    fn answer(request: &LlmRequest) -> LlmResponse {
        // the last tool result of this turn, if any (the agent sends the whole conversation)
        let tool_result = request.messages.iter().rev().find_map(|m| match m {
            ChatMessage::Tool { content, .. } => Some(content.clone()),
            _ => None,
        });
        match tool_result {
            None => LlmResponse {
                tool_calls: vec![ToolCall {
                    id: "call-1".into(),
                    name: "execute_query".into(),
                    arguments: r#"{"sql": "SELECT count(*) AS n FROM customers"}"#.into(),
                }],
                ..LlmResponse::default()
            },
            Some(result) => {
                let shown: serde_json::Value = serde_json::from_str(&result).unwrap_or_default();
                LlmResponse {
                    content: format!("There are {} customers.", shown["rows"][0][0]),
                    usage: Usage { prompt_tokens: 0, completion_tokens: 0 },
                    ..LlmResponse::default()
                }
            }
        }
    }
}

impl ChatModel for CountingModel {
    fn describe(&self) -> String {
        "example/counting".into()
    }

    fn complete<'a>(&'a self, r: &'a LlmRequest) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        Box::pin(async move { Ok(Self::answer(r)) })
    }

    fn stream<'a>(
        &'a self,
        r: &'a LlmRequest,
        deltas: &'a Deltas,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        Box::pin(async move {
            let response = Self::answer(r);
            for word in response.content.split_inclusive(' ') {
                let _ = deltas.send(word.to_owned());
            }
            Ok(response)
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let shop = dir.path().join("shop.db");
    rusqlite::Connection::open(&shop)?.execute_batch(
        "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT);
         INSERT INTO customers(name) VALUES ('Ada'), ('Linus'), ('Grace');",
    )?;
    let config = CoreConfig {
        database: DatabaseConfig {
            app_path: dir.path().join("app.db"), // threads, messages, the query log
            targets: vec![TargetSpec { default: true, ..TargetSpec::read_only("shop", shop) }],
            ..DatabaseConfig::default()
        },
        agent: AgentConfig { model: Some("counting".into()), ..AgentConfig::default() },
        ..CoreConfig::default()
    };
    // opening migrates the app database and checks the targets: blocking work
    let core = tokio::task::spawn_blocking(move || {
        Sqlmatic::open_with_model(config, Arc::new(CountingModel))
    })
    .await??;

    let me = Principal::local();
    let turn = core.start_chat(&me, ChatRequest::new("How many customers do we have?")).await?;
    // follow the turn as a WebSocket client would: `message_stream` events of its thread
    let mut events = core.bus().subscribe(256);
    core.bus().add_topics(events.id, [Topic::Thread(turn.thread_id)]);
    let reply = core.spawn_turn(turn).await??;
    while let Ok(event) = events.receiver.try_recv() {
        println!("event: {event}");
    }
    println!("answer: {}", reply.answer);
    for query in &reply.queries {
        println!("ran: {} -> {:?}", query.sql, query.result.rows);
    }
    Ok(())
}
