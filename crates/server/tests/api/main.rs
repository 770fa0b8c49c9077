//! The server end to end: started on port 0 with temp databases, driven with a real HTTP client
//! and a real WebSocket client.

// Test helpers outside #[test] fns: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod agent;
mod approvals;
mod browser;
mod chat;
mod databases;
mod errors;
mod faults;
mod knowledge;
mod mcp;
mod metrics;
mod props;
mod query;
mod security;
mod threads;
mod ws;
