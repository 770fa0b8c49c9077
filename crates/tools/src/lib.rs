//! sqlmatic's SQLite tools for LLM agents, usable from Rust without the server.
//!
//! Owns the [`Tool`] trait and [`ToolRegistry`], the read-only sandbox every query runs in
//! ([`sandbox`]), introspection of a target database ([`introspect`]) and the four built-in
//! tools: `list_tables`, `get_metadata`, `get_schema`, `execute_query`, and `execute_write` (writes proposed for a person's approval).
//!
//! Must not know reqwest or actix. Blocking SQLite work runs inside
//! `tokio::task::spawn_blocking`, never on the async executor.

mod builtin;
mod config;
mod error;
mod file;
mod functions;
pub mod introspect;
pub mod sandbox;
pub mod schema;
mod target;
pub mod test_support;
pub mod tool;

pub use builtin::{
    ChartKind, ChartSpec, ExecuteQuery, ExecuteQueryArgs, ExecuteWrite, GetMetadata, GetSchema,
    GetSchemaArgs, ListTables, ShowChart, WriteOutput,
};
pub use config::{QueryLimits, ToolsConfig};
pub use error::{Result, ToolError, ToolErrorCode};
pub use sandbox::OpenMode;
pub use target::{
    QueryAudit, QueryEvent, QueryObserver, QueryOutcome, TableDescription, TargetDatabase,
    TargetSpec,
};
pub use tool::{
    Approval, ApprovalGate, DynTool, Tool, ToolContext, ToolDefinition, ToolRegistry, Toolset,
};
