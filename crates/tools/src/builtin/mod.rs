//! The built-in tools, one file each. Their names and argument names are a public contract:
//! models call them by name. A new tool is a new file here (a [`crate::Tool`] impl: name, kind,
//! description, JSON Schema, call, outcome) plus one `register` line in
//! [`crate::ToolRegistry::builtin`].

mod execute_query;
mod execute_write;
mod find_values;
mod get_metadata;
mod get_schema;
mod list_tables;
mod show_chart;

pub use execute_query::{ExecuteQuery, ExecuteQueryArgs};
pub use execute_write::{ExecuteWrite, WriteOutput};
pub use find_values::{FindValues, FindValuesArgs, FoundValues};
pub use get_metadata::GetMetadata;
pub use get_schema::{GetSchema, GetSchemaArgs};
pub use list_tables::{ListTables, TableList};
pub use show_chart::{OneOrMany, ShowChart, ShowChartArgs};

use serde::Deserialize;
use serde_json::{Value, json};

/// No arguments.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

pub(crate) fn no_params() -> Value {
    json!({"type": "object", "properties": {}})
}

/// A value bound to a parameter.
pub(crate) fn scalar() -> Value {
    json!({"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]})
}
