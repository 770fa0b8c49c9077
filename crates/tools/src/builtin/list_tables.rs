//! `list_tables`: the cheap first look at an unfamiliar database.

use serde::Serialize;
use serde_json::Value;
use sqlmatic_models::TableSummary;

use super::{NoArgs, no_params};
use crate::{Tool, ToolContext, ToolError, ToolOutcome};

/// `list_tables {}`
pub struct ListTables;

/// `list_tables`' answer.
#[derive(Debug, Serialize)]
pub struct TableList {
    /// The target database's name.
    pub database: String,
    /// Its tables and views with row counts.
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

    fn outcome(output: TableList) -> Result<ToolOutcome, ToolError> {
        ToolOutcome::other(&output)
    }

    async fn call(&self, ctx: &ToolContext, _args: NoArgs) -> Result<TableList, ToolError> {
        Ok(TableList {
            database: ctx.database.name().to_owned(),
            tables: ctx.database.list_tables(&ctx.limits).await?,
        })
    }
}
