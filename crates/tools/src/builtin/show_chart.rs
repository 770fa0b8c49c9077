//! `show_chart`: a chart of one of this turn's query results, checked against its columns.

use serde::Deserialize;
use serde_json::{Value, json};
use sqlmatic_models::{ChartKind, ChartSpec};

use crate::{Tool, ToolContext, ToolError, ToolKind, ToolOutcome};

/// `show_chart {"kind", "x", "y", "series"?, "title"?, "query"?}`: asks the client to draw a chart
/// of one of this turn's query results. The spec is data, checked against the result's columns
/// and values; no code from the model runs anywhere.
pub struct ShowChart;

/// `show_chart`'s arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowChartArgs {
    /// The kind of chart.
    pub kind: ChartKind,
    /// The result column for the x axis.
    pub x: String,
    /// One or more numeric result columns.
    pub y: OneOrMany,
    /// A column that splits the data into series.
    #[serde(default)]
    pub series: Option<String>,
    /// The chart's title.
    #[serde(default)]
    pub title: Option<String>,
    /// Which of this turn's successful queries (0-based); default the last.
    #[serde(default)]
    pub query: Option<usize>,
}

/// A column name, or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One column.
    One(String),
    /// Several columns.
    Many(Vec<String>),
}

impl Tool for ShowChart {
    const NAME: &'static str = "show_chart";
    type Args = ShowChartArgs;
    const KIND: ToolKind = ToolKind::Chart;
    type Output = ChartSpec;

    fn description(&self) -> &str {
        "Show the user a chart of a query result from this turn (by default the last one). `x` and \
         `y` name result columns; y columns must be numeric; `series` splits lines or bars by a column; \
         pie takes one y. Use it when a chart says more than the table (trends, comparisons, shares). \
         Example: show_chart {\"kind\": \"bar\", \"x\": \"country\", \"y\": \"revenue\", \"title\": \"Revenue by country\"}"
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "kind": {"type": "string", "enum": ["bar", "line", "pie", "scatter"]},
                "x": {"type": "string", "description": "Result column for the x axis (or pie labels)."},
                "y": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                      "description": "Numeric result column(s)."},
                "series": {"type": "string", "description": "Optional column that splits the data into series."},
                "title": {"type": "string"},
                "query": {"type": "integer", "description": "Which query of this turn, 0-based (default: the last)."}
            },
            "required": ["kind", "x", "y"]
        })
    }

    fn outcome(output: ChartSpec) -> Result<ToolOutcome, ToolError> {
        Ok(ToolOutcome::Chart(output))
    }

    async fn call(&self, ctx: &ToolContext, args: ShowChartArgs) -> Result<ChartSpec, ToolError> {
        let turn = ctx.turn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let results = turn.successful();
        if results.is_empty() {
            return Err(ToolError::invalid_args(
                "no query has run in this turn yet; run execute_query first, then chart its result",
            ));
        }
        let index = args.query.unwrap_or(results.len() - 1);
        let result = &results
            .get(index)
            .ok_or_else(|| {
                ToolError::invalid_args(format!(
                    "query {index} does not exist; this turn has {} successful queries (0-based)",
                    results.len()
                ))
            })?
            .result;
        let names: Vec<&str> = result.columns.iter().map(|c| c.name.as_str()).collect();
        let position = |name: &str| {
            names.iter().position(|n| *n == name).ok_or_else(|| {
                ToolError::invalid_args(format!(
                    "the result has no column `{name}`; its columns are: {}",
                    names.join(", ")
                ))
            })
        };
        position(&args.x)?;
        if let Some(s) = &args.series {
            position(s)?;
        }
        let y = match args.y {
            OneOrMany::One(y) => vec![y],
            OneOrMany::Many(y) => y,
        };
        if y.is_empty() {
            return Err(ToolError::invalid_args("y names no column"));
        }
        if args.kind == ChartKind::Pie && y.len() != 1 {
            return Err(ToolError::invalid_args("a pie chart takes exactly one y column"));
        }
        for column in &y {
            let i = position(column)?;
            if result.rows.iter().any(|r| !(r[i].is_number() || r[i].is_null())) {
                return Err(ToolError::invalid_args(format!(
                    "column `{column}` is not numeric, so it cannot be a y axis"
                )));
            }
        }
        Ok(ChartSpec {
            kind: args.kind,
            x: args.x,
            y,
            series: args.series,
            title: args.title,
            query: index,
            points: result.row_count,
        })
    }
}
