//! The server end to end: started on port 0 with temp databases, driven with a real HTTP client
//! and a real WebSocket client.

mod helpers;

mod chat;
mod databases;
mod errors;
mod metrics;
mod query;
mod threads;
mod ws;
