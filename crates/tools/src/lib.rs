//! sqlmatic's database tools for LLM agents (SQLite and PostgreSQL), usable from Rust without
//! the server.
//!
//! Owns the [`Tool`] trait and [`ToolRegistry`], the [`Engine`] seam and its two engines
//! ([`engine::sqlite`], [`engine::postgres`]), [`TargetDatabase`] (what every engine shares:
//! query slots, logging, observers), the SQLite sandbox ([`sandbox`]) and introspection
//! ([`introspect`]), the typed outcome of a
//! tool call ([`ToolOutcome`]: how it renders for the model and for clients) and the built-in
//! tools, one file each: `list_tables`, `get_metadata`, `get_schema`, `execute_query`,
//! `execute_write` (writes proposed for a person's approval) and `show_chart`.
//!
//! Must not know reqwest or actix. Blocking SQLite work runs on a queue drained by
//! `spawn_blocking` runners (one hop per operation, none for work queued behind a busy
//! runner), never on the async executor; PostgreSQL is asynchronous (`tokio-postgres`).

#![warn(missing_docs)]

mod builtin;
mod config;
pub mod engine;
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
    ExecuteQuery, ExecuteQueryArgs, ExecuteWrite, FindValues, FindValuesArgs, FoundValues,
    GetMetadata, GetSchema, GetSchemaArgs, ListTables, OneOrMany, ShowChart, ShowChartArgs,
    TableList, WriteOutput,
};
pub use config::{QueryLimits, ToolsConfig};

/// Installs rustls' crypto provider (ring) for the process, once; every TLS client sqlmatic
/// makes (PostgreSQL here, the LLM providers' HTTP clients in `services`) needs it first.
/// Installing twice is harmless: the second call finds it present.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
pub use engine::{Dialect, Engine};
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
    ValueLookup,
};
