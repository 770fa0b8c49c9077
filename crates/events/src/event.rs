//! The events the server pushes, and how they serialize.

use serde::{Deserialize, Serialize};
pub use sqlmatic_models::ErrorPayload;
use sqlmatic_models::{DatabaseSchema, MessageId, SchemaPatch, Thread, ThreadId};

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
    Subscribed {
        /// Every topic the connection follows, sorted.
        topics: Vec<String>,
    },
    /// Answers the client's `ping` action.
    Pong {
        /// The `id` the client's `ping` carried, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
}

impl Event {
    /// The event's wire name (`event` in the envelope).
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

/// A target database's structure as clients receive it: whole when they subscribe, then as
/// patches from the structure they were last sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseUpdate {
    /// The target database's name.
    pub database: String,
    /// The `schema_version` of the structure this update gives.
    pub schema_version: i64,
    /// The structure, or how it changed (`schema` or `patch` on the wire).
    #[serde(flatten)]
    pub structure: StructureUpdate,
}

/// The structure itself, or a patch to the one the subscriber was last sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructureUpdate {
    /// The whole structure, as `GET /api/database/structure` answers it.
    Schema(DatabaseSchema),
    /// What changed since the structure of version `since` (only the changed tables: a
    /// schema change reaches thousands of subscribers).
    Patch(SchemaPatch),
}

/// A part of a message being produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageStream {
    /// The thread the answer belongs to.
    pub thread_id: ThreadId,
    /// The answer message being produced.
    pub message_id: MessageId,
    /// What happened (flattened: `type` and its fields).
    #[serde(flatten)]
    pub part: StreamPart,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// One step of an answer being produced (`type` on the wire).
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamPart {
    /// Text of the answer.
    Delta {
        /// The next piece of the answer.
        text: String,
    },
    /// The agent called a tool.
    ToolCall {
        /// The call's id, repeated by its `tool_result`.
        id: String,
        /// The tool's name.
        name: String,
        /// The arguments as the model sent them (parsed JSON, or the raw text).
        arguments: serde_json::Value,
    },
    /// A tool answered.
    ToolResult {
        /// The id of the call this answers.
        id: String,
        /// False when the tool failed (`error` says why).
        ok: bool,
        /// Rows returned, for queries.
        #[serde(skip_serializing_if = "Option::is_none")]
        row_count: Option<u64>,
        /// Whether a cap cut the rows, for queries.
        #[serde(skip_serializing_if = "Option::is_none")]
        truncated: Option<bool>,
        /// How long the call took.
        #[serde(skip_serializing_if = "Option::is_none")]
        elapsed_ms: Option<f64>,
        /// Why the call failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<ErrorPayload>,
        /// The output clients show: an execute_query result or a show_chart spec.
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<serde_json::Value>,
    },
    /// The agent proposed a write; nothing runs until the thread's owner approves this exact
    /// statement (by `digest`) within `expires_in_ms`.
    ApprovalRequired {
        /// What the owner approves or rejects (`POST /api/approvals/{digest}`).
        digest: String,
        /// The exact statement that would run.
        sql: String,
        /// The database it would run on.
        database: String,
        /// How long the proposal waits for a decision.
        expires_in_ms: u64,
    },
    /// The answer is complete.
    Done {
        /// The whole answer.
        answer: String,
        /// `complete` or `cancelled`.
        status: String,
        /// Tokens used (`prompt_tokens`, `completion_tokens`).
        usage: serde_json::Value,
        /// The verified query the answer reused, when it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        verified_query: Option<sqlmatic_models::VerifiedQueryRef>,
    },
    /// The turn failed.
    Error {
        /// A code from the error registry.
        code: String,
        /// What failed, for people.
        message: String,
    },
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

    #[test]
    fn a_database_update_is_whole_or_a_patch() {
        let schema = DatabaseSchema {
            database: "demo".into(),
            schema_version: 3,
            tables: Vec::new(),
            ddl: String::new(),
            warnings: Vec::new(),
        };
        let whole = Event::DatabaseUpdate(Box::new(DatabaseUpdate {
            database: "demo".into(),
            schema_version: 3,
            structure: StructureUpdate::Schema(schema),
        }));
        let v: serde_json::Value = serde_json::from_str(&whole.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"event": "database_update", "payload": {"database": "demo",
                "schema_version": 3, "schema": {"database": "demo", "schema_version": 3,
                "tables": [], "ddl": ""}}})
        );
        let patch = Event::DatabaseUpdate(Box::new(DatabaseUpdate {
            database: "demo".into(),
            schema_version: 4,
            structure: StructureUpdate::Patch(SchemaPatch {
                since: 3,
                names: vec!["a".into()],
                tables: Vec::new(),
                warnings: Vec::new(),
            }),
        }));
        let text = patch.to_json();
        assert_eq!(
            text,
            r#"{"event":"database_update","payload":{"database":"demo","schema_version":4,"patch":{"since":3,"names":["a"],"tables":[],"warnings":[]}}}"#
        );
        for e in [whole, patch] {
            assert_eq!(serde_json::from_str::<Event>(&e.to_json()).unwrap(), e);
        }
    }
}
