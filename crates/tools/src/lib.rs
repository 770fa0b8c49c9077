//! sqlmatic's SQLite tools for LLM agents, usable from Rust without the server.
//!
//! Owns the [`Tool`] trait and [`ToolRegistry`], the read-only sandbox every query runs in
//! ([`sandbox`]), introspection of a target database ([`introspect`]), the typed outcome of a
//! tool call ([`ToolOutcome`]: how it renders for the model and for clients) and the built-in
//! tools, one file each: `list_tables`, `get_metadata`, `get_schema`, `execute_query`,
//! `execute_write` (writes proposed for a person's approval) and `show_chart`.
//!
//! Must not know reqwest or actix. Blocking SQLite work runs inside
//! `tokio::task::spawn_blocking`, never on the async executor.

#![warn(missing_docs)]

mod builtin;
mod config;
mod error;
mod file;
mod functions;
pub mod introspect;
pub mod outcome;
pub mod sandbox;
pub mod schema;
mod target;
#[cfg(any(test, feature = "test-utils"))]
pub mod test_support;
pub mod tool;

pub use builtin::{
    ExecuteQuery, ExecuteQueryArgs, ExecuteWrite, GetMetadata, GetSchema, GetSchemaArgs,
    ListTables, OneOrMany, ShowChart, ShowChartArgs, TableList, WriteOutput,
};
pub use config::{QueryLimits, ToolsConfig};
pub use error::{Result, ToolError, ToolErrorCode};
pub use outcome::{ModelBounds, ToolKind, ToolOutcome, TurnState};
pub use sandbox::OpenMode;
pub use sqlmatic_models::{ChartKind, ChartSpec};
pub use target::{
    QueryAudit, QueryEvent, QueryObserver, QueryOutcome, TableDescription, TargetDatabase,
    TargetSpec,
};
pub use tool::{
    Approval, ApprovalGate, DynTool, Tool, ToolContext, ToolDefinition, ToolRegistry, Toolset,
};
