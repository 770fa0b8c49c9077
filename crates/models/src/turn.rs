//! What a chat turn produced besides its text: the queries the agent ran (with their results or
//! failures) and the charts it asked for. One structure feeds the reply, the events and the UI.

use serde::{Deserialize, Serialize};

use crate::{ColumnMeta, QueryResult};

/// A failure as clients see it: a stable code and a message for people (and models).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorPayload {
    pub code: String,
    pub message: String,
}

impl ErrorPayload {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into() }
    }
}

/// A query the agent ran during a turn: its SQL and its result, or why it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueryRecord {
    pub sql: String,
    pub columns: Vec<ColumnMeta>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Vec<Object>>))]
    pub rows: Vec<Vec<serde_json::Value>>,
    pub row_count: u64,
    pub total_rows: Option<u64>,
    pub truncated: bool,
    pub elapsed_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorPayload>,
}

impl QueryRecord {
    pub fn succeeded(sql: String, result: QueryResult) -> Self {
        let QueryResult { columns, rows, row_count, total_rows, truncated, elapsed_ms } = result;
        Self { sql, columns, rows, row_count, total_rows, truncated, elapsed_ms, error: None }
    }

    pub fn failed(sql: String, error: ErrorPayload, elapsed_ms: f64) -> Self {
        Self {
            sql,
            columns: Vec::new(),
            rows: Vec::new(),
            row_count: 0,
            total_rows: None,
            truncated: false,
            elapsed_ms,
            error: Some(error),
        }
    }

    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

/// The kinds of chart a client draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChartKind {
    Bar,
    Line,
    Pie,
    Scatter,
}

/// A validated chart of one of a turn's successful queries: what the client draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChartSpec {
    pub kind: ChartKind,
    pub x: String,
    pub y: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Index of the query among this turn's successful queries.
    pub query: usize,
    pub points: u64,
}
