//! What a chat turn produced besides its text: the queries the agent ran (with their results or
//! failures) and the charts it asked for. One structure feeds the reply, the events and the UI.

use serde::{Deserialize, Serialize};

use crate::QueryResult;

/// A failure as clients see it: a stable code and a message for people (and models).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorPayload {
    /// A code from the registry.
    pub code: String,
    /// What failed, for people (and models).
    pub message: String,
}

impl ErrorPayload {
    /// A payload from a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into() }
    }
}

/// A query the agent ran during a turn: its SQL and its result, or why it failed (then the
/// result is empty). Serializes flat: `sql`, the result's fields, `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueryRecord {
    /// The statement as the model wrote it.
    pub sql: String,
    /// What it returned (empty when it failed).
    #[serde(flatten)]
    pub result: QueryResult,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorPayload>,
}

impl QueryRecord {
    /// A query that ran.
    pub fn succeeded(sql: String, result: QueryResult) -> Self {
        Self { sql, result, error: None }
    }

    /// A query that failed.
    pub fn failed(sql: String, error: ErrorPayload, elapsed_ms: f64) -> Self {
        Self {
            sql,
            result: QueryResult { elapsed_ms, ..QueryResult::default() },
            error: Some(error),
        }
    }

    /// True when it ran.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

/// The kinds of chart a client draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChartKind {
    /// Bars, one per x value (grouped by `series`).
    Bar,
    /// Lines over x.
    Line,
    /// Shares of one y.
    Pie,
    /// Points (x, y).
    Scatter,
}

/// A validated chart of one of a turn's successful queries: what the client draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChartSpec {
    /// The kind of chart.
    pub kind: ChartKind,
    /// The result column for the x axis (or pie labels).
    pub x: String,
    /// Numeric result columns.
    pub y: Vec<String>,
    /// A column that splits the data into series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    /// The chart's title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Index of the query among this turn's successful queries.
    pub query: usize,
    /// Points drawn (the result's rows).
    pub points: u64,
}
