//! sqlmatic's services: storage, everything stateful below the chat domain.
//!
//! - [`AppDb`]: sqlmatic's own SQLite database (r2d2 pool, WAL, migrations);
//! - [`ThreadService`]: threads and their ordered messages;
//! - [`QueryLog`]: every SQL statement a tool ran, who ran it and how it ended;
//! - [`Targets`]: the configured target databases users query, with the bundled [`demo`] database;
//! - [`MemoryService`]: a thread's history within a token budget, with persisted summaries;
//! - [`KnowledgeService`]: business context (context files, verified queries and their
//!   lexical index, feedback) and the value index behind `find_values`;
//! - [`DatabaseConfig`]: its configuration section.
//!
//! The agent and the LLM providers are in `sqlmatic-agent`, below this crate: they store nothing.
//!
//! Must not know actix or HTTP status codes: errors carry a [`sqlmatic_models::ErrorKind`].

#![warn(missing_docs)]

mod app_db;
mod config;
#[cfg(feature = "demo")]
pub mod demo;
mod error;
pub mod knowledge;
pub mod memory;
mod query_log;
mod targets;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;
mod threads;
pub mod users;

pub use app_db::AppDb;
pub use config::{DatabaseConfig, ValueIndexConfig};
pub use error::{Error, Result};
pub use knowledge::KnowledgeService;
pub use memory::MemoryService;
pub use query_log::{QueryLog, QueryLogEntry};
pub use targets::{ContextSource, Targets};
pub use threads::{BegunTurn, FinishedTurn, NewMessage, ThreadService};
pub use users::{UserInfo, UserService};
