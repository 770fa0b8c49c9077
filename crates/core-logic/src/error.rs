//! The chat domain's error: what failed, its kind and a stable code.

use sqlmatic_models::{Code, ErrorKind, MessageId, ThreadId};

/// What a core operation failed with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A service (app database, targets, users) failed.
    #[error(transparent)]
    Service(#[from] sqlmatic_services::Error),
    /// A tool or a query failed.
    #[error("{}", .0.model_message)]
    Tool(#[from] sqlmatic_tools::ToolError),
    /// The input is refused (`code` says why).
    #[error("{message}")]
    InvalidInput {
        /// The registry code.
        code: Code,
        /// What is wrong.
        message: String,
    },
    /// The request is well formed but contradicts the state of what it names.
    #[error("{message}")]
    Conflict {
        /// The registry code.
        code: Code,
        /// What conflicts.
        message: String,
    },
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The user already has this many answers running.
    #[error("you already have {0} answers running; wait for one to finish")]
    TooManyChats(usize),
    /// Over a rate limit.
    #[error("too many {what}; retry in {} s", retry_after_secs(*.retry_after))]
    RateLimited {
        /// What was limited (`chats`).
        what: &'static str,
        /// When to retry.
        retry_after: std::time::Duration,
    },
    /// No model is configured; the question was stored.
    #[error(
        "no LLM provider is configured, so questions cannot be answered yet; your message was stored \
         in thread {thread_id}. Set agent.provider (openai or anthropic), agent.base_url and agent.model \
         in config/config.yaml (or SQLMATIC_AGENT__PROVIDER, SQLMATIC_AGENT__BASE_URL, \
         SQLMATIC_AGENT__MODEL) and the key in SQLMATIC_AGENT__API_KEY, then restart"
    )]
    LlmNotConfigured {
        /// The thread the question went to.
        thread_id: ThreadId,
        /// The stored question.
        message_id: MessageId,
    },
    /// The agent failed (model, steps, access).
    #[error("{0}")]
    Agent(#[source] sqlmatic_agent::AgentError),
    /// The thread has a turn running.
    #[error("thread {0} is still answering a question; wait for it or cancel it")]
    ThreadBusy(ThreadId),
    /// Cancel: nothing runs in the thread.
    #[error("no answer is running in thread {0}")]
    NotRunning(ThreadId),
    /// No pending write with that digest for this user.
    #[error("no pending write with that digest (it was decided, expired, or is not yours)")]
    ApprovalNotFound,
    /// A turn that started failed; the question and any partial answer are stored.
    #[error("{source}")]
    Turn {
        /// What failed.
        source: Box<Error>,
        /// The thread of the turn.
        thread_id: ThreadId,
        /// The answer message (status `error`, partial text kept).
        message_id: MessageId,
    },
}

/// A result whose error is the core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Refused input with a registry code.
    pub fn invalid(code: Code, message: impl Into<String>) -> Self {
        Self::InvalidInput { code, message: message.into() }
    }

    /// The agent's failure.
    pub fn agent(e: sqlmatic_agent::AgentError) -> Self {
        Self::Agent(e)
    }

    /// The class of failure.
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

    /// The registry code clients see.
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
