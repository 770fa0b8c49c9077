//! sqlmatic's agent: the tool-calling loop and what it talks to, with no storage.
//!
//! - [`Agent`], [`AgentService`]: the loop over a [`llm::ChatModel`] and a tool set, and one
//!   agent per user built (and cached) from the configuration;
//! - [`llm`]: the `ChatModel` trait and the OpenAI-compatible and Anthropic providers;
//! - [`context`]: the schema section of the system prompt, ranked and within a budget;
//! - [`http_client`]: the one way to build an HTTP client (rustls provider installed);
//! - [`AgentConfig`], [`MemoryConfig`]: their configuration sections;
//! - `testing` (feature `test-utils`): a scripted model in process and a scripted LLM server.
//!
//! Must not know storage (rusqlite, the app database) or actix: the services layer above it
//! persists what a turn produced.

#![warn(missing_docs)]

mod agent;
mod config;
pub mod context;
pub mod http;
pub mod llm;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;

pub use agent::{
    Agent, AgentError, AgentEvent, AgentOutcome, AgentService, AgentSettings, CallMade,
};
pub use config::{AgentConfig, AgentOverrides, DEFAULT_SYSTEM_PROMPT, MemoryConfig};
pub use http::{ClientSettings, PerThreadClient, http_client, http_client_builder};
