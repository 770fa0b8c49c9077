//! sqlmatic's services: everything stateful below the chat domain.
//!
//! - [`AppDb`]: sqlmatic's own SQLite database (r2d2 pool, WAL, migrations);
//! - [`ThreadService`]: threads and their ordered messages;
//! - [`QueryLog`]: every SQL statement a tool ran, who ran it and how it ended;
//! - [`Targets`]: the configured target databases users query, with the bundled [`demo`] database;
//! - [`http_client`]: the one way to build an HTTP client (rustls provider installed);
//! - [`AgentConfig`]: the LLM agent's settings (the agent itself lands with the agent issue).
//!
//! Must not know actix or HTTP status codes: errors carry a [`sqlmatic_models::ErrorKind`].

mod agent_config;
mod app_db;
mod config;
pub mod demo;
mod error;
mod http;
mod query_log;
mod targets;
mod threads;

pub use agent_config::AgentConfig;
pub use app_db::AppDb;
pub use config::DatabaseConfig;
pub use error::{Error, Result};
pub use http::http_client;
pub use query_log::{QueryLog, QueryLogEntry};
pub use targets::Targets;
pub use threads::{NewMessage, ThreadService};
