//! The events the server pushes, and how they serialize.

use serde::{Deserialize, Serialize};
pub use sqlmatic_models::ErrorPayload;
use sqlmatic_models::{DatabaseSchema, MessageId, Thread, ThreadId};

/// An event as it travels on the wire: `{"event": "<name>", "payload": {…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "payload", rename_all = "snake_case")]
pub enum Event {
    /// A target database's structure, sent on subscribe and whenever it changes.
    DatabaseUpdate(Box<DatabaseUpdate>),
    /// A thread was created.
    ThreadCreated(Thread),
    /// Part of an answer being produced in a thread.
    MessageStream(MessageStream),
    /// A metrics snapshot (same shape as `GET /api/metrics`).
    MetricsUpdate(serde_json::Value),
    /// Something the client sent, or something the server did for it, failed.
    Error(ErrorPayload),
    /// Acknowledges `subscribe`/`unsubscribe`: the connection's topics now.
    Subscribed { topics: Vec<String> },
    /// Answers the client's `ping` action.
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Self::DatabaseUpdate(_) => "database_update",
            Self::ThreadCreated(_) => "thread_created",
            Self::MessageStream(_) => "message_stream",
            Self::MetricsUpdate(_) => "metrics_update",
            Self::Error(_) => "error",
            Self::Subscribed { .. } => "subscribed",
            Self::Pong { .. } => "pong",
        }
    }

    /// The envelope as JSON text. Serializing these types cannot fail (no non-string map keys),
    /// but a failure still yields a well-formed error event rather than a panic.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                r#"{{"event":"error","payload":{{"code":"internal","message":"event serialization failed: {}"}}}}"#,
                e.to_string().replace('"', "'")
            )
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseUpdate {
    pub database: String,
    pub schema_version: i64,
    pub schema: DatabaseSchema,
}

/// A part of a message being produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageStream {
    pub thread_id: ThreadId,
    pub message_id: MessageId,
    #[serde(flatten)]
    pub part: StreamPart,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamPart {
    /// Text of the answer.
    Delta { text: String },
    /// The agent called a tool.
    ToolCall { id: String, name: String, arguments: serde_json::Value },
    /// A tool answered.
    ToolResult {
        id: String,
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        row_count: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        truncated: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        elapsed_ms: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<ErrorPayload>,
        /// The output clients show: an execute_query result or a show_chart spec.
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<serde_json::Value>,
    },
    /// The agent proposed a write; nothing runs until the thread's owner approves this exact
    /// statement (by `digest`) within `expires_in_ms`.
    ApprovalRequired { digest: String, sql: String, database: String, expires_in_ms: u64 },
    /// The answer is complete.
    Done { answer: String, status: String, usage: serde_json::Value },
    /// The turn failed.
    Error { code: String, message: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_shape() {
        let e = Event::Error(ErrorPayload::new("bad_json", "expected value"));
        assert_eq!(
            e.to_json(),
            r#"{"event":"error","payload":{"code":"bad_json","message":"expected value"}}"#
        );
        let back: Event = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn message_stream_is_flat_with_a_type() {
        let e = Event::MessageStream(MessageStream {
            thread_id: "5f0c1d2e-0000-4000-8000-000000000000".parse().unwrap(),
            message_id: MessageId(7),
            part: StreamPart::Delta { text: "Hi".into() },
        });
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["event"], "message_stream");
        assert_eq!(v["payload"]["type"], "delta");
        assert_eq!(v["payload"]["text"], "Hi");
        assert_eq!(v["payload"]["message_id"], 7);
    }
}
