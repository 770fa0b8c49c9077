//! The chat domain's error: what failed, its kind and a stable code.

use sqlmatic_models::{ErrorKind, MessageId, ThreadId};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Service(#[from] sqlmatic_services::Error),
    #[error("{}", .0.model_message)]
    Tool(#[from] sqlmatic_tools::ToolError),
    #[error("{message}")]
    InvalidInput { code: &'static str, message: String },
    #[error(
        "no LLM provider is configured, so questions cannot be answered yet; your message was stored \
         in thread {thread_id}. Set agent.provider (openai or anthropic), agent.base_url and agent.model \
         in config/config.yaml (or SQLMATIC_AGENT__PROVIDER, SQLMATIC_AGENT__BASE_URL, \
         SQLMATIC_AGENT__MODEL) and the key in SQLMATIC_AGENT__API_KEY, then restart"
    )]
    LlmNotConfigured { thread_id: ThreadId, message_id: MessageId },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidInput { code, message: message.into() }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Service(e) => e.kind(),
            Self::Tool(e) => e.kind(),
            Self::InvalidInput { .. } => ErrorKind::InvalidInput,
            Self::LlmNotConfigured { .. } => ErrorKind::Unavailable,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Service(e) => e.code(),
            Self::Tool(e) => e.code.as_str(),
            Self::InvalidInput { code, .. } => code,
            Self::LlmNotConfigured { .. } => "llm_not_configured",
        }
    }

    /// Extra fields clients may use (e.g. the thread a stored message went to).
    pub fn details(&self) -> Option<serde_json::Value> {
        match self {
            Self::LlmNotConfigured { thread_id, message_id } => {
                Some(serde_json::json!({"thread_id": thread_id, "message_id": message_id}))
            }
            _ => None,
        }
    }
}
