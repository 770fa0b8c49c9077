//! `get_metadata`: facts about the database file.

use serde_json::Value;
use sqlmatic_models::DatabaseMetadata;

use super::{NoArgs, no_params};
use crate::{Tool, ToolContext, ToolError, ToolOutcome};

/// `get_metadata {}`
pub struct GetMetadata;

impl Tool for GetMetadata {
    const NAME: &'static str = "get_metadata";
    type Args = NoArgs;
    type Output = DatabaseMetadata;

    fn description(&self) -> &str {
        "Facts about the database: engine and version, size, page size and count, journal mode, \
         encoding, schema version, number of tables and views, total rows, last modification time. \
         Example: get_metadata {}"
    }

    fn parameters(&self) -> Value {
        no_params()
    }

    fn outcome(output: DatabaseMetadata) -> Result<ToolOutcome, ToolError> {
        ToolOutcome::other(&output)
    }

    async fn call(&self, ctx: &ToolContext, _args: NoArgs) -> Result<DatabaseMetadata, ToolError> {
        ctx.database.metadata(&ctx.limits).await
    }
}
