//! The chat domain's error: what failed, its kind and a stable code.

use sqlmatic_models::{Code, ErrorKind, MessageId, ThreadId};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Service(#[from] sqlmatic_services::Error),
    #[error("{}", .0.model_message)]
    Tool(#[from] sqlmatic_tools::ToolError),
    #[error("{message}")]
    InvalidInput { code: Code, message: String },
    /// The request is well formed but contradicts the state of what it names.
    #[error("{message}")]
    Conflict { code: Code, message: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("you already have {0} answers running; wait for one to finish")]
    TooManyChats(usize),
    #[error("too many {what}; retry in {} s", retry_after_secs(*.retry_after))]
    RateLimited { what: &'static str, retry_after: std::time::Duration },
    #[error(
        "no LLM provider is configured, so questions cannot be answered yet; your message was stored \
         in thread {thread_id}. Set agent.provider (openai or anthropic), agent.base_url and agent.model \
         in config/config.yaml (or SQLMATIC_AGENT__PROVIDER, SQLMATIC_AGENT__BASE_URL, \
         SQLMATIC_AGENT__MODEL) and the key in SQLMATIC_AGENT__API_KEY, then restart"
    )]
    LlmNotConfigured { thread_id: ThreadId, message_id: MessageId },
    #[error("{0}")]
    Agent(#[source] sqlmatic_services::agent::AgentError),
    #[error("thread {0} is still answering a question; wait for it or cancel it")]
    ThreadBusy(ThreadId),
    #[error("no answer is running in thread {0}")]
    NotRunning(ThreadId),
    #[error("no pending write with that digest (it was decided, expired, or is not yours)")]
    ApprovalNotFound,
    /// A turn that started failed; the question and any partial answer are stored.
    #[error("{source}")]
    Turn { source: Box<Error>, thread_id: ThreadId, message_id: MessageId },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(code: Code, message: impl Into<String>) -> Self {
        Self::InvalidInput { code, message: message.into() }
    }

    pub fn agent(e: sqlmatic_services::agent::AgentError) -> Self {
        Self::Agent(e)
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Agent(e) => e.kind(),
            Self::ThreadBusy(_) | Self::NotRunning(_) => ErrorKind::Conflict,
            Self::ApprovalNotFound => ErrorKind::NotFound,
            Self::Turn { source, .. } => source.kind(),
            Self::Service(e) => e.kind(),
            Self::Tool(e) => e.kind(),
            Self::InvalidInput { .. } => ErrorKind::InvalidInput,
            Self::Conflict { .. } => ErrorKind::Conflict,
            Self::Forbidden(_) => ErrorKind::Forbidden,
            Self::TooManyChats(_) | Self::RateLimited { .. } => ErrorKind::RateLimited,
            Self::LlmNotConfigured { .. } => ErrorKind::Unavailable,
        }
    }

    pub fn code(&self) -> Code {
        match self {
            Self::Agent(e) => e.code(),
            Self::ThreadBusy(_) => Code::ThreadBusy,
            Self::NotRunning(_) => Code::NotRunning,
            Self::ApprovalNotFound => Code::ApprovalNotFound,
            Self::Turn { source, .. } => source.code(),
            Self::Service(e) => e.code(),
            Self::Tool(e) => e.code,
            Self::InvalidInput { code, .. } | Self::Conflict { code, .. } => *code,
            Self::Forbidden(_) => Code::Forbidden,
            Self::TooManyChats(_) => Code::TooManyChats,
            Self::RateLimited { .. } => Code::RateLimited,
            Self::LlmNotConfigured { .. } => Code::LlmNotConfigured,
        }
    }

    /// Whole seconds after which a rate-limited request may be retried (`Retry-After`).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(retry_after_secs(*retry_after)),
            _ => None,
        }
    }

    /// Extra fields clients may use (e.g. the thread a stored message went to).
    pub fn details(&self) -> Option<serde_json::Value> {
        match self {
            Self::LlmNotConfigured { thread_id, message_id }
            | Self::Turn { thread_id, message_id, .. } => {
                Some(serde_json::json!({"thread_id": thread_id, "message_id": message_id}))
            }
            Self::ThreadBusy(thread_id) => Some(serde_json::json!({"thread_id": thread_id})),
            _ => None,
        }
    }
}

fn retry_after_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}
