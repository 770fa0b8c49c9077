//! sqlmatic's services: everything stateful below the chat domain.
//!
//! - [`AppDb`]: sqlmatic's own SQLite database (r2d2 pool, WAL, migrations);
//! - [`ThreadService`]: threads and their ordered messages;
//! - [`QueryLog`]: every SQL statement a tool ran, who ran it and how it ended;
//! - [`Targets`]: the configured target databases users query, with the bundled [`demo`] database;
//! - [`http_client`]: the one way to build an HTTP client (rustls provider installed);
//! - [`llm`]: the `ChatModel` trait and the OpenAI-compatible and Anthropic providers;
//! - [`agent`]: the tool-calling loop and per-user agents;
//! - [`MemoryService`]: a thread's history within a token budget, with persisted summaries;
//! - [`KnowledgeService`]: business context (context files, verified queries and their
//!   lexical index, feedback) and the value index behind `find_values`;
//! - [`AgentConfig`], [`MemoryConfig`]: their configuration sections.
//!
//! Must not know actix or HTTP status codes: errors carry a [`sqlmatic_models::ErrorKind`].

#![warn(missing_docs)]

pub mod agent;
mod agent_config;
mod app_db;
mod config;
#[cfg(feature = "demo")]
pub mod demo;
mod error;
pub mod http;
pub mod knowledge;
pub mod llm;
pub mod memory;
mod query_log;
mod targets;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;
mod threads;
pub mod users;

pub use agent_config::{AgentConfig, AgentOverrides, DEFAULT_SYSTEM_PROMPT, MemoryConfig};
pub use app_db::AppDb;
pub use config::{DatabaseConfig, ValueIndexConfig};
pub use error::{Error, Result};
pub use http::{ClientSettings, PerThreadClient, http_client, http_client_builder};
pub use knowledge::KnowledgeService;
pub use memory::MemoryService;
pub use query_log::{QueryLog, QueryLogEntry};
pub use targets::{ContextSource, Targets};
pub use threads::{FinishedTurn, NewMessage, ThreadService};
pub use users::{UserInfo, UserService};
