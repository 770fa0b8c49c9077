//! `execute_query`: one read-only statement in the sandbox.

use serde::Deserialize;
use serde_json::{Value, json};
use sqlmatic_models::{QueryParams, QueryResult};

use super::scalar;
use crate::{Tool, ToolContext, ToolError, ToolKind, ToolOutcome};

/// `execute_query {"sql": "...", "params"?: [...] | {...}}`
pub struct ExecuteQuery;

/// `execute_query`'s arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecuteQueryArgs {
    /// One read-only statement.
    pub sql: String,
    /// Values for its parameters.
    #[serde(default)]
    pub params: Option<QueryParams>,
}

impl Tool for ExecuteQuery {
    const NAME: &'static str = "execute_query";
    type Args = ExecuteQueryArgs;
    const KIND: ToolKind = ToolKind::Query;
    type Output = (String, QueryResult);

    fn description(&self) -> &str {
        "Run exactly one read-only SQL statement in the database's dialect (SQLite or \
         PostgreSQL, as the schema says: SELECT, WITH, VALUES) and get columns and rows back. \
         Writes, DDL and settings are blocked by the database itself. Results are capped; \
         `truncated` says when rows were cut and `total_rows` how many exist. Prefer LIMIT and \
         aggregates. Use `params` for values: an array of values for `?` (SQLite) or `$1`, `$2` \
         (PostgreSQL), or for SQLite `:name` with [{\"name\": \"c\", \"value\": \"France\"}]. Example: execute_query {\"sql\": \"SELECT name FROM customers WHERE country = ? \
         LIMIT 10\", \"params\": [\"France\"]}"
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "sql": {"type": "string", "description": "One SELECT/WITH/VALUES statement."},
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

    fn outcome((sql, result): (String, QueryResult)) -> Result<ToolOutcome, ToolError> {
        Ok(ToolOutcome::Query { sql, result })
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        args: ExecuteQueryArgs,
    ) -> Result<(String, QueryResult), ToolError> {
        let params = args.params.unwrap_or_default().normalized();
        let result = ctx.database.query(&args.sql, &params, &ctx.limits, &ctx.audit()).await?;
        Ok((args.sql, result))
    }
}
