//! sqlmatic's chat domain: what the server does, without HTTP.
//!
//! [`Sqlmatic`] is the application core the server wraps: it owns the app database services,
//! the target databases and tools, the [`sqlmatic_events::EventBus`], [`Metrics`], the
//! background [`watch`] tasks (schema changes, metrics pushes) and the chat turn
//! ([`Sqlmatic::chat`]). Its methods live with their responsibility: `chat` (turns), `threads`,
//! `databases` (targets, structures, API queries, the query log), `knowledge` (business
//! context, verified queries, feedback, the value index), `subscriptions`, `approvals`,
//! `limits` (chat rate limit), `metrics`, `watch` (background tasks).
//!
//! Must not know actix or HTTP status codes; errors carry an [`sqlmatic_models::ErrorKind`] and a
//! stable code, which only the server maps onto HTTP.

#![warn(missing_docs)]

mod app;
pub mod approvals;
mod chat;
mod databases;
mod error;
pub mod eval;
mod knowledge;
pub mod limits;
mod metrics;
mod subscriptions;
pub mod suggestions;
mod threads;
pub mod watch;

pub use app::{CoreConfig, Sqlmatic, ThreadWithMessages};
pub use chat::{ChatReply, ChatRequest, MAX_MESSAGE_CHARS, PreparedTurn, QueryRecord};
pub use error::{Error, Result};
pub use knowledge::VerifyRequest;
pub use metrics::Metrics;
