//! The one error type tools return. It speaks to two audiences: `model_message` is short and
//! actionable for the LLM (and API clients); `detail` is for logs only.

use std::fmt;

use sqlmatic_models::ErrorKind;

/// Stable machine-readable reason: the one registry, [`sqlmatic_models::Code`].
pub type ToolErrorCode = sqlmatic_models::Code;

/// A tool's failure: a code from the registry, a message for the model, detail for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError {
    /// Why it failed, from the registry.
    pub code: ToolErrorCode,
    /// What the model (or API client) is told: what failed and how to fix it.
    pub model_message: String,
    /// Extra context for logs; never sent to clients.
    pub detail: Option<String>,
    /// Whether the same call may succeed if simply retried.
    pub retryable: bool,
}

/// A result whose error is a [`ToolError`].
pub type Result<T, E = ToolError> = std::result::Result<T, E>;

impl ToolError {
    /// An error with a code and what to tell the model.
    pub fn new(code: ToolErrorCode, model_message: impl Into<String>) -> Self {
        Self { code, model_message: model_message.into(), detail: None, retryable: false }
    }

    /// Adds context for the logs.
    pub fn with_detail(mut self, detail: impl fmt::Display) -> Self {
        self.detail = Some(detail.to_string());
        self
    }

    /// Marks the call as worth retrying unchanged.
    pub fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }

    /// The arguments do not fit the tool.
    pub fn invalid_args(message: impl Into<String>) -> Self {
        Self::new(ToolErrorCode::InvalidArgs, message)
    }

    /// A bug or an unexpected state; the detail goes to the logs only.
    pub fn internal(detail: impl fmt::Display) -> Self {
        Self::new(ToolErrorCode::Internal, "internal error while running the tool")
            .with_detail(detail)
    }

    /// The error as clients see it (`{code, message}`; `detail` stays in the logs).
    pub fn payload(&self) -> sqlmatic_models::ErrorPayload {
        sqlmatic_models::ErrorPayload::new(self.code, &self.model_message)
    }

    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        self.code.kind()
    }

    /// The result the model sees when a tool fails.
    pub fn to_model_json(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.code.as_str(), "message": self.model_message}})
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.model_message)
    }
}

impl std::error::Error for ToolError {}
