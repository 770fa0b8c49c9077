//! The error taxonomy every layer's `Error::kind()` answers with; only the server maps it to HTTP.

use serde::{Deserialize, Serialize};

/// What kind of failure an error is, independent of transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The caller sent something malformed or invalid.
    InvalidInput,
    /// The thing asked for does not exist (or is not visible to the caller).
    NotFound,
    /// The request conflicts with current state (e.g. a thread already answering).
    Conflict,
    /// The caller is not authenticated.
    Unauthorized,
    /// The caller may not do this (e.g. a write through the read-only sandbox).
    Forbidden,
    /// The caller exceeded a rate or size limit.
    RateLimited,
    /// The request was too large to accept.
    TooLarge,
    /// A dependency (LLM provider, target database) failed.
    Upstream,
    /// A time limit was hit.
    Timeout,
    /// A required part is not configured or temporarily out of service.
    Unavailable,
    /// A bug or an unexpected state on our side.
    Internal,
}

impl ErrorKind {
    /// The kind's snake_case name (the body's `kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid_input",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limited",
            Self::TooLarge => "too_large",
            Self::Upstream => "upstream",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}
