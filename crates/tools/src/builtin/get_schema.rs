//! `get_schema`: tables and views with columns, keys, indexes, triggers and sample rows.

use serde::Deserialize;
use serde_json::{Value, json};
use sqlmatic_models::DatabaseSchema;

use crate::{Tool, ToolContext, ToolError, ToolKind, ToolOutcome};

/// `get_schema {"tables"?: [...], "sample_rows"?: N}`
pub struct GetSchema;

/// `get_schema`'s arguments.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetSchemaArgs {
    /// Only these tables or views (default: all).
    #[serde(default)]
    pub tables: Option<Vec<String>>,
    /// Sample rows per table (default 0).
    #[serde(default)]
    pub sample_rows: Option<usize>,
}

impl Tool for GetSchema {
    const NAME: &'static str = "get_schema";
    type Args = GetSchemaArgs;
    const KIND: ToolKind = ToolKind::Schema;
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

    fn outcome(output: DatabaseSchema) -> Result<ToolOutcome, ToolError> {
        Ok(ToolOutcome::Schema(Box::new(output)))
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        args: GetSchemaArgs,
    ) -> Result<DatabaseSchema, ToolError> {
        let tables = args.tables.unwrap_or_default();
        let sample_rows = args.sample_rows.unwrap_or(0);
        ctx.database.schema_with(&tables, sample_rows, &ctx.limits).await
    }
}
