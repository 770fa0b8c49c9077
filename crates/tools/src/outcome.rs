//! What a tool call produced, typed: how it renders for the model (bounded in rows and bytes) and
//! for clients, and the turn's state ([`TurnState`]) the agent builds from it.
//!
//! A tool declares its [`ToolKind`] and turns its output into a [`ToolOutcome`]; everything
//! downstream (the agent's transcript, the stream events, the reply, the UI) reads the outcome's
//! variants, never tool names or JSON paths.

use serde::Serialize;
use serde_json::{Value, json};
use sqlmatic_models::{ChartSpec, DatabaseSchema, QueryRecord, QueryResult};

use crate::{ToolError, WriteOutput};

/// What kind of result a tool produces; decides how a failure is recorded in the turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    /// Runs one read-only statement (`sql` in its arguments).
    Query,
    /// Describes the database's structure.
    Schema,
    /// Runs an approved write (`sql` in its arguments).
    Write,
    /// Asks the client to draw a chart of a query result of this turn.
    Chart,
    /// Anything else: its output goes to the model and the transcript as JSON.
    Other,
}

/// A successful tool call's output.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolOutcome {
    /// A statement and its result.
    Query {
        /// The statement as the model wrote it.
        sql: String,
        /// What it returned.
        result: QueryResult,
    },
    /// The structure (`get_schema`).
    Schema(Box<DatabaseSchema>),
    /// An approved write's result.
    Write(WriteOutput),
    /// A validated chart spec.
    Chart(ChartSpec),
    /// Any other output, as JSON.
    Other(Value),
}

/// Serializes as the tool's output alone (`Query` as its result), as the tools always answered.
impl Serialize for ToolOutcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Query { result, .. } => result.serialize(s),
            Self::Schema(schema) => schema.serialize(s),
            Self::Write(write) => write.serialize(s),
            Self::Chart(chart) => chart.serialize(s),
            Self::Other(value) => value.serialize(s),
        }
    }
}

/// How much of an outcome the model is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelBounds {
    /// Rows shown at most.
    pub max_rows: usize,
    /// Bytes of text at most.
    pub max_bytes: usize,
}

impl ToolOutcome {
    /// Any serializable output as an `Other` outcome.
    pub fn other(output: &impl Serialize) -> Result<Self, ToolError> {
        serde_json::to_value(output).map(Self::Other).map_err(ToolError::internal)
    }

    /// As JSON (what [`Serialize`] gives).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// What the model is shown: bounded, and saying how many rows exist, how many are shown and
    /// whether a cap cut them.
    pub fn for_model(&self, bounds: ModelBounds) -> String {
        let shaped = match self {
            Self::Query { result, .. } => shape_query(result, bounds),
            // the compact DDL says the same as the JSON structure in a fraction of the tokens
            Self::Schema(schema) => {
                let mut v = json!({"database": schema.database, "schema_version": schema.schema_version, "ddl": schema.ddl});
                let samples: serde_json::Map<String, Value> = schema
                    .tables
                    .iter()
                    .filter_map(|t| {
                        let rows = t.sample_rows.as_ref()?;
                        let cols: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
                        Some((t.name.clone(), json!({"columns": cols, "rows": rows})))
                    })
                    .collect();
                if !samples.is_empty() {
                    v["sample_rows"] = Value::Object(samples);
                }
                v
            }
            other => other.to_json(),
        };
        cap_text(shaped.to_string(), bounds.max_bytes)
    }

    /// What clients show beside the answer: a query's full result or a chart spec.
    pub fn for_client(&self) -> Option<Value> {
        match self {
            Self::Query { .. } | Self::Chart(_) => Some(self.to_json()),
            _ => None,
        }
    }

    /// Rows returned, for queries.
    pub fn row_count(&self) -> Option<u64> {
        match self {
            Self::Query { result, .. } => Some(result.row_count),
            _ => None,
        }
    }

    /// Whether a cap cut the rows, for queries.
    pub fn truncated(&self) -> Option<bool> {
        match self {
            Self::Query { result, .. } => Some(result.truncated),
            _ => None,
        }
    }

    /// True when the structure clients show is stale after this outcome (or was just read).
    pub fn refreshes_schema(&self) -> bool {
        match self {
            Self::Schema(_) => true,
            Self::Write(w) => w.ddl,
            _ => false,
        }
    }

    /// Queries and writes are written to the query log with their SQL by the database itself.
    pub fn is_logged_by_database(&self) -> bool {
        matches!(self, Self::Query { .. })
    }
}

/// What one turn's tool calls produced so far: its queries (failed ones too) and its charts.
/// The agent records every call here; `show_chart` reads it; the reply is built from it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TurnState {
    /// Every query the turn ran, failed ones too, in order.
    pub queries: Vec<QueryRecord>,
    /// Every chart it asked for.
    pub charts: Vec<ChartSpec>,
}

impl TurnState {
    /// Records one finished call of a tool of `kind` with `arguments`.
    pub fn record(
        &mut self,
        kind: ToolKind,
        arguments: &Value,
        result: &Result<ToolOutcome, ToolError>,
        elapsed_ms: f64,
    ) {
        match (kind, result) {
            (_, Ok(ToolOutcome::Query { sql, result })) => {
                self.queries.push(QueryRecord::succeeded(sql.clone(), result.clone()))
            }
            (_, Ok(ToolOutcome::Chart(chart))) => self.charts.push(chart.clone()),
            (ToolKind::Query, Err(e)) => self.queries.push(QueryRecord::failed(
                arguments["sql"].as_str().unwrap_or_default().to_owned(),
                e.payload(),
                elapsed_ms,
            )),
            _ => {}
        }
    }

    /// The successful queries' records, in order: what `show_chart`'s `query` index counts.
    pub fn successful(&self) -> Vec<&QueryRecord> {
        self.queries.iter().filter(|q| q.is_ok()).collect()
    }
}

fn shape_query(result: &QueryResult, bounds: ModelBounds) -> Value {
    let rows = &result.rows;
    let returned = rows.len();
    let total = result.total_rows;
    let cap_truncated = result.truncated;
    let columns: Vec<&str> = result.columns.iter().map(|c| c.name.as_str()).collect();
    let mut shown = returned.min(bounds.max_rows);
    loop {
        let note = note(shown, returned, total, cap_truncated);
        let v = json!({
            "columns": columns,
            "rows": rows[..shown],
            "rows_shown": shown,
            "rows_total": total,
            "truncated": cap_truncated || shown < returned,
            "note": note,
        });
        if v.to_string().len() <= bounds.max_bytes || shown == 0 {
            return v;
        }
        shown /= 2;
    }
}

fn note(shown: usize, returned: usize, total: Option<u64>, cap_truncated: bool) -> String {
    let total_text = match total {
        Some(t) => format!("{t} rows in all"),
        None => "the total number of rows is unknown (counting took too long)".into(),
    };
    if shown == returned && !cap_truncated {
        format!("all {shown} rows shown")
    } else if cap_truncated {
        format!(
            "showing {shown} rows; the result was truncated by the row cap; {total_text}. Use aggregates, filters or LIMIT."
        )
    } else {
        format!(
            "showing {shown} of {returned} rows; {total_text}. Use aggregates, filters or LIMIT."
        )
    }
}

/// Cuts text to `max` bytes at a char boundary, saying so.
pub fn cap_text(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub(80);
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… [output cut at {max} bytes; ask for less, e.g. fewer tables or a LIMIT]",
        &text[..end]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlmatic_models::ColumnMeta;

    fn query(n: usize, total: u64, truncated: bool) -> ToolOutcome {
        ToolOutcome::Query {
            sql: "SELECT id FROM t".into(),
            result: QueryResult {
                columns: vec![ColumnMeta { name: "id".into(), decl_type: Some("INTEGER".into()) }],
                rows: (0..n).map(|i| vec![json!(i)]).collect(),
                row_count: n as u64,
                total_rows: Some(total),
                truncated,
                elapsed_ms: 1.0,
            },
        }
    }

    fn shown(outcome: &ToolOutcome, max_rows: usize, max_bytes: usize) -> Value {
        serde_json::from_str(&outcome.for_model(ModelBounds { max_rows, max_bytes })).unwrap()
    }

    #[test]
    fn small_results_are_shown_whole() {
        let v = shown(&query(3, 3, false), 50, 10_000);
        assert_eq!(v["rows_shown"], 3);
        assert_eq!(v["truncated"], false);
        assert_eq!(v["note"], "all 3 rows shown");
    }

    #[test]
    fn large_results_say_what_was_cut() {
        let v = shown(&query(1000, 5000, true), 50, 100_000);
        assert_eq!(v["rows_shown"], 50);
        assert_eq!(v["rows_total"], 5000);
        assert_eq!(v["truncated"], true);
        assert!(v["note"].as_str().unwrap().contains("truncated by the row cap"));
        let v = shown(&query(200, 200, false), 500, 300);
        assert!(v["rows_shown"].as_u64().unwrap() < 200);
        assert!(v["note"].as_str().unwrap().contains("of 200 rows"));
    }

    #[test]
    fn other_outputs_are_capped_in_bytes() {
        let big = ToolOutcome::Other(json!({"x": "y".repeat(5000)}));
        let s = big.for_model(ModelBounds { max_rows: 10, max_bytes: 1000 });
        assert!(s.len() <= 1000 + 100);
        assert!(s.contains("output cut"));
    }

    #[test]
    fn the_turn_records_queries_failed_ones_too_and_charts() {
        let mut turn = TurnState::default();
        turn.record(
            ToolKind::Query,
            &json!({"sql": "SELECT id FROM t"}),
            &Ok(query(2, 2, false)),
            1.0,
        );
        let failure = ToolError::invalid_args("no such column: x");
        turn.record(ToolKind::Query, &json!({"sql": "SELECT x FROM t"}), &Err(failure), 2.0);
        turn.record(ToolKind::Other, &json!({}), &Err(ToolError::invalid_args("nope")), 1.0);
        assert_eq!(turn.queries.len(), 2);
        assert_eq!(turn.queries[1].sql, "SELECT x FROM t");
        assert_eq!(turn.queries[1].error.as_ref().unwrap().code, "invalid_args");
        assert_eq!(turn.successful().len(), 1);
    }
}
