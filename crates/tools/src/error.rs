//! The one error type tools return. It speaks to two audiences: `model_message` is short and
//! actionable for the LLM (and API clients); `detail` is for logs only.

use std::fmt;

use sqlmatic_models::ErrorKind;

/// Stable machine-readable reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolErrorCode {
    InvalidArgs,
    UnknownTool,
    ReadOnly,
    SqlError,
    MultipleStatements,
    QueryTimeout,
    ValueTooLarge,
    TableNotFound,
    QueryTooExpensive,
    WriteRejected,
    DatabaseUnavailable,
    /// Every connection of the target is in use for longer than `tools.pool_wait_ms`.
    TargetBusy,
    /// The user already runs `tools.max_queries_per_user` queries on the target.
    TooManyQueries,
    Internal,
}

impl ToolErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgs => "invalid_args",
            Self::UnknownTool => "unknown_tool",
            Self::ReadOnly => "read_only",
            Self::SqlError => "sql_error",
            Self::MultipleStatements => "multiple_statements",
            Self::QueryTimeout => "query_timeout",
            Self::ValueTooLarge => "value_too_large",
            Self::TableNotFound => "table_not_found",
            Self::QueryTooExpensive => "query_too_expensive",
            Self::WriteRejected => "write_rejected",
            Self::DatabaseUnavailable => "database_unavailable",
            Self::TargetBusy => "target_busy",
            Self::TooManyQueries => "too_many_queries",
            Self::Internal => "internal",
        }
    }

    pub fn kind(self) -> ErrorKind {
        match self {
            Self::InvalidArgs
            | Self::UnknownTool
            | Self::SqlError
            | Self::MultipleStatements
            | Self::ValueTooLarge
            | Self::QueryTooExpensive => ErrorKind::InvalidInput,
            Self::TableNotFound => ErrorKind::NotFound,
            Self::ReadOnly | Self::WriteRejected => ErrorKind::Forbidden,
            Self::QueryTimeout => ErrorKind::Timeout,
            Self::DatabaseUnavailable | Self::TargetBusy => ErrorKind::Unavailable,
            Self::TooManyQueries => ErrorKind::RateLimited,
            Self::Internal => ErrorKind::Internal,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError {
    pub code: ToolErrorCode,
    /// What the model (or API client) is told: what failed and how to fix it.
    pub model_message: String,
    /// Extra context for logs; never sent to clients.
    pub detail: Option<String>,
    /// Whether the same call may succeed if simply retried.
    pub retryable: bool,
}

pub type Result<T, E = ToolError> = std::result::Result<T, E>;

impl ToolError {
    pub fn new(code: ToolErrorCode, model_message: impl Into<String>) -> Self {
        Self { code, model_message: model_message.into(), detail: None, retryable: false }
    }

    pub fn with_detail(mut self, detail: impl fmt::Display) -> Self {
        self.detail = Some(detail.to_string());
        self
    }

    pub fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }

    pub fn invalid_args(message: impl Into<String>) -> Self {
        Self::new(ToolErrorCode::InvalidArgs, message)
    }

    pub fn internal(detail: impl fmt::Display) -> Self {
        Self::new(ToolErrorCode::Internal, "internal error while running the tool")
            .with_detail(detail)
    }

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
