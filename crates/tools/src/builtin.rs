//! The four built-in SQLite tools. Their names and argument names are a public contract:
//! models call them by name.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlmatic_models::{DatabaseMetadata, DatabaseSchema, QueryParams, QueryResult, TableSummary};

use crate::{Tool, ToolContext, ToolError};

/// No arguments.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

fn no_params() -> Value {
    json!({"type": "object", "properties": {}})
}

/// A value bound to a parameter.
fn scalar() -> Value {
    json!({"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]})
}

/// `list_tables {}`
pub struct ListTables;

#[derive(Debug, Serialize)]
pub struct TableList {
    pub database: String,
    pub tables: Vec<TableSummary>,
}

impl Tool for ListTables {
    const NAME: &'static str = "list_tables";
    type Args = NoArgs;
    type Output = TableList;

    fn description(&self) -> &str {
        "List the tables and views of the database with their row counts and descriptions. \
         Cheap; call it first on an unfamiliar database, then get_schema for the tables you need. \
         Example: list_tables {}"
    }

    fn parameters(&self) -> Value {
        no_params()
    }

    async fn call(&self, ctx: &ToolContext, _args: NoArgs) -> Result<TableList, ToolError> {
        ctx.blocking(|ctx| {
            Ok(TableList {
                database: ctx.database.name().to_owned(),
                tables: ctx.database.list_tables(&ctx.limits)?,
            })
        })
        .await
    }
}

/// `get_metadata {}`
pub struct GetMetadata;

impl Tool for GetMetadata {
    const NAME: &'static str = "get_metadata";
    type Args = NoArgs;
    type Output = DatabaseMetadata;

    fn description(&self) -> &str {
        "Facts about the database file: SQLite version, size, page size and count, journal mode, \
         encoding, schema version, number of tables and views, total rows, last modification time. \
         Example: get_metadata {}"
    }

    fn parameters(&self) -> Value {
        no_params()
    }

    async fn call(&self, ctx: &ToolContext, _args: NoArgs) -> Result<DatabaseMetadata, ToolError> {
        ctx.blocking(|ctx| ctx.database.metadata(&ctx.limits)).await
    }
}

/// `get_schema {"tables"?: [...], "sample_rows"?: N}`
pub struct GetSchema;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetSchemaArgs {
    #[serde(default)]
    pub tables: Option<Vec<String>>,
    #[serde(default)]
    pub sample_rows: Option<usize>,
}

impl Tool for GetSchema {
    const NAME: &'static str = "get_schema";
    type Args = GetSchemaArgs;
    type Output = DatabaseSchema;

    fn description(&self) -> &str {
        "The structure of tables and views: columns with types, nullability, defaults and primary \
         keys; foreign keys; indexes; triggers; row counts; descriptions; optionally a few sample \
         rows. Never guess table or column names: read them here before writing SQL. \
         Example: get_schema {\"tables\": [\"orders\", \"customers\"], \"sample_rows\": 3}"
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "tables": {"type": "array", "items": {"type": "string"},
                           "description": "Only these tables or views (default: all)."},
                "sample_rows": {"type": "integer",
                                "description": "Sample rows per table, 0 to 20 (default 0)."}
            }
        })
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        args: GetSchemaArgs,
    ) -> Result<DatabaseSchema, ToolError> {
        let tables = args.tables.unwrap_or_default();
        let sample_rows = args.sample_rows.unwrap_or(0);
        ctx.blocking(move |ctx| ctx.database.schema_with(&tables, sample_rows, &ctx.limits)).await
    }
}

/// `execute_query {"sql": "...", "params"?: [...] | {...}}`
pub struct ExecuteQuery;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecuteQueryArgs {
    pub sql: String,
    #[serde(default)]
    pub params: Option<QueryParams>,
}

impl Tool for ExecuteQuery {
    const NAME: &'static str = "execute_query";
    type Args = ExecuteQueryArgs;
    type Output = QueryResult;

    fn description(&self) -> &str {
        "Run exactly one read-only SQL statement (SQLite dialect: SELECT, WITH, VALUES, EXPLAIN) and \
         get columns and rows back. Writes, DDL, ATTACH and PRAGMA writes are blocked. Results are \
         capped; `truncated` says when rows were cut and `total_rows` how many exist. Prefer LIMIT \
         and aggregates. Use `params` for values: positional `?` with an array of values, or `:name` \
         with [{\"name\": \"c\", \"value\": \"France\"}]. Example: execute_query {\"sql\": \"SELECT name FROM customers WHERE country = ? \
         LIMIT 10\", \"params\": [\"France\"]}"
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "sql": {"type": "string", "description": "One SQLite SELECT/WITH/VALUES statement."},
                "params": {
                    "description": "Bound parameters: values in order for ?/?N, or \
                                    [{\"name\": \"c\", \"value\": …}] for :name.",
                    "anyOf": [
                        {"type": "array", "items": scalar()},
                        {"type": "array", "items": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}, "value": scalar()},
                            "required": ["name", "value"]
                        }}
                    ]
                }
            },
            "required": ["sql"]
        })
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        args: ExecuteQueryArgs,
    ) -> Result<QueryResult, ToolError> {
        let params = args.params.unwrap_or_default().normalized();
        let result = ctx
            .blocking(move |ctx| ctx.database.query(&args.sql, &params, &ctx.limits, &ctx.audit()))
            .await?;
        ctx.results.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(result.clone());
        Ok(result)
    }
}

/// `execute_write {"sql": "...", "params"?: [...] | {...}}`: proposes one write for the user to
/// approve; nothing runs until the thread's owner approves that exact statement.
pub struct ExecuteWrite;

#[derive(Debug, Serialize)]
pub struct WriteOutput {
    pub sql: String,
    pub rows_affected: usize,
    /// True for statements that change the schema.
    pub ddl: bool,
    pub elapsed_ms: f64,
}

impl Tool for ExecuteWrite {
    const NAME: &'static str = "execute_write";
    type Args = ExecuteQueryArgs;
    type Output = WriteOutput;

    fn description(&self) -> &str {
        "Propose one statement that changes the database (INSERT, UPDATE, DELETE, CREATE/ALTER/DROP \
         TABLE or INDEX). It does not run until the user approves this exact statement; the result \
         says whether it was approved (with rows affected), rejected (with the user's reason) or \
         expired. Only for writable databases; explain the change to the user before proposing it. \
         Example: execute_write {\"sql\": \"UPDATE products SET discontinued = 1 WHERE id = ?\", \"params\": [42]}"
    }

    fn parameters(&self) -> Value {
        ExecuteQuery.parameters()
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        args: ExecuteQueryArgs,
    ) -> Result<WriteOutput, ToolError> {
        use crate::ToolErrorCode;
        let params = args.params.unwrap_or_default().normalized();
        let sql = args.sql.trim().to_owned();
        // validate before asking anyone: syntax, one statement, allowed kind, writable target
        let check_sql = sql.clone();
        ctx.blocking(move |ctx| ctx.database.check_write(&check_sql)).await?;
        let Some(gate) = ctx.approvals.clone() else {
            return Err(ToolError::new(
                ToolErrorCode::ReadOnly,
                "writes need a person to approve them, and none can be asked here",
            ));
        };
        match gate.request(ctx, &sql).await {
            crate::Approval::Approved => {
                ctx.blocking(move |ctx| {
                    ctx.database.write(&sql, &params, &ctx.limits, &ctx.audit())
                })
                .await
            }
            crate::Approval::Rejected { reason } => Err(ToolError::new(
                ToolErrorCode::WriteRejected,
                format!(
                    "the user rejected this statement{}; do not run it again unless they ask",
                    reason.map(|r| format!(": {r}")).unwrap_or_default()
                ),
            )),
            crate::Approval::Expired => Err(ToolError::new(
                ToolErrorCode::WriteRejected,
                "nobody approved this statement in time, so it did not run; ask the user whether to propose it again",
            )),
        }
    }
}

/// `show_chart {"kind", "x", "y", "series"?, "title"?, "query"?}`: asks the client to draw a chart
/// of one of this turn's query results. The spec is data, checked against the result's columns
/// and values; no code from the model runs anywhere.
pub struct ShowChart;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChartKind {
    Bar,
    Line,
    Pie,
    Scatter,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowChartArgs {
    pub kind: ChartKind,
    pub x: String,
    pub y: OneOrMany,
    #[serde(default)]
    pub series: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    /// Which of this turn's successful queries (0-based); default the last.
    #[serde(default)]
    pub query: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A validated chart: what the client draws.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChartSpec {
    pub kind: ChartKind,
    pub x: String,
    pub y: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Index of the query among this turn's successful queries.
    pub query: usize,
    pub points: u64,
}

impl Tool for ShowChart {
    const NAME: &'static str = "show_chart";
    type Args = ShowChartArgs;
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

    async fn call(&self, ctx: &ToolContext, args: ShowChartArgs) -> Result<ChartSpec, ToolError> {
        let results = ctx.results.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if results.is_empty() {
            return Err(ToolError::invalid_args(
                "no query has run in this turn yet; run execute_query first, then chart its result",
            ));
        }
        let index = args.query.unwrap_or(results.len() - 1);
        let result = results.get(index).ok_or_else(|| {
            ToolError::invalid_args(format!(
                "query {index} does not exist; this turn has {} successful queries (0-based)",
                results.len()
            ))
        })?;
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
