//! LLM providers behind one [`ChatModel`] trait, over the project's own message types
//! ([`sqlmatic_models::ChatMessage`]). Wire structs stay private to each provider.
//!
//! - [`openai`]: the OpenAI-compatible chat-completions protocol (OpenAI, Ollama, vLLM,
//!   llama.cpp, LM Studio, OpenRouter…), tool calls, SSE streaming;
//! - [`anthropic`]: the Messages API, `tool_use`/`tool_result` blocks, SSE streaming.
//!
//! Both retry connect errors, 429 and 5xx with exponential backoff and jitter, honouring
//! `Retry-After` ([`retry`]).

pub mod anthropic;
pub mod openai;
pub mod retry;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sqlmatic_models::{ChatMessage, ErrorKind, ToolCall, Usage};
use sqlmatic_tools::ToolDefinition;
use tokio::sync::mpsc::UnboundedSender;

use crate::AgentConfig;

/// The `tools` array of a provider's request body, encoded once per tool set and reused by
/// every call (a turn makes several): a tool's definition is fixed for its name in a process,
/// so the names and descriptions identify a set. Keeps the last few sets (users may differ).
#[derive(Default)]
pub(crate) struct EncodedTools {
    cached: std::sync::Mutex<Vec<(u64, Arc<serde_json::value::RawValue>)>>,
}

impl EncodedTools {
    const KEPT: usize = 8;

    /// The encoded array for `tools` (None when empty), from the cache or from `encode`.
    pub(crate) fn get(
        &self,
        tools: &[ToolDefinition],
        encode: impl FnOnce(&[ToolDefinition]) -> serde_json::Result<String>,
    ) -> Result<Option<Arc<serde_json::value::RawValue>>, LlmError> {
        use std::hash::{Hash, Hasher};
        if tools.is_empty() {
            return Ok(None);
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for t in tools {
            (&t.name, &t.description).hash(&mut hasher);
        }
        let key = hasher.finish();
        let mut cached = self.cached.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, raw)) = cached.iter().find(|(k, _)| *k == key) {
            return Ok(Some(raw.clone()));
        }
        let raw: Arc<serde_json::value::RawValue> = serde_json::value::RawValue::from_string(
            encode(tools).map_err(|e| LlmError::BadResponse(e.to_string()))?,
        )
        .map_err(|e| LlmError::BadResponse(e.to_string()))?
        .into();
        if cached.len() == Self::KEPT {
            cached.remove(0);
        }
        cached.push((key, raw.clone()));
        Ok(Some(raw))
    }
}

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One call to a model.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmRequest {
    /// The model's name at the provider.
    pub model: String,
    /// The conversation, system prompt first.
    pub messages: Vec<ChatMessage>,
    /// The tools it may call (shared: a toolset builds its definitions once).
    pub tools: Arc<[ToolDefinition]>,
    /// Sampling temperature.
    pub temperature: f32,
    /// Tokens of answer at most.
    pub max_tokens: u32,
}

/// What the model answered: text, tool calls, or both.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LlmResponse {
    /// The answer's text (may be empty when it calls tools).
    pub content: String,
    /// The tools it asks to call.
    pub tool_calls: Vec<ToolCall>,
    /// Tokens used.
    pub usage: Usage,
    /// Why it stopped, as the provider says.
    pub finish_reason: Option<String>,
}

/// Where streamed text goes, piece by piece, as it arrives.
pub type Deltas = UnboundedSender<String>;

/// Why a model call failed (after retries).
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// No connection to the provider.
    #[error("the LLM provider cannot be reached at {url}")]
    Unreachable {
        /// The provider's base URL.
        url: String,
        /// The connection error.
        #[source]
        source: reqwest::Error,
    },
    /// No answer (or silence) within the time limits.
    #[error("the LLM provider did not answer in time")]
    Timeout,
    /// HTTP 429 until the retries ran out.
    #[error("the LLM provider is rate limiting requests (HTTP 429) and retries ran out")]
    RateLimited,
    /// HTTP 5xx until the retries ran out.
    #[error("the LLM provider failed with HTTP {status} and retries ran out")]
    ServerError {
        /// The last status.
        status: u16,
    },
    /// HTTP 4xx: the request is refused (bad key, unknown model…).
    #[error("the LLM provider rejected the request (HTTP {status}): {message}")]
    Rejected {
        /// The status.
        status: u16,
        /// The provider's reason.
        message: String,
    },
    /// Not the provider's protocol.
    #[error("the LLM provider sent a response sqlmatic cannot read: {0}")]
    BadResponse(String),
    /// The stream ended before the answer did.
    #[error("the LLM provider's stream was cut before the answer was complete")]
    StreamCut,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
}

impl LlmError {
    /// The class of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Timeout => ErrorKind::Timeout,
            Self::Client(_) => ErrorKind::Internal,
            _ => ErrorKind::Upstream,
        }
    }

    /// The registry code.
    pub fn code(&self) -> sqlmatic_models::Code {
        use sqlmatic_models::Code;
        match self {
            Self::Unreachable { .. } | Self::ServerError { .. } => Code::LlmUnavailable,
            Self::Timeout => Code::LlmTimeout,
            Self::RateLimited => Code::LlmRateLimited,
            Self::Rejected { .. } => Code::LlmRejected,
            Self::BadResponse(_) => Code::LlmBadResponse,
            Self::StreamCut => Code::LlmStreamInterrupted,
            Self::Client(_) => Code::Internal,
        }
    }
}

/// A chat model: one call in, one answer out; `stream` forwards text as it arrives.
pub trait ChatModel: Send + Sync {
    /// `provider/model`, for logs.
    fn describe(&self) -> String;
    /// One whole answer.
    fn complete<'a>(
        &'a self,
        request: &'a LlmRequest,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>>;
    /// One answer, its text sent to `deltas` as it arrives.
    fn stream<'a>(
        &'a self,
        request: &'a LlmRequest,
        deltas: &'a Deltas,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>>;
}

/// Which name an OpenAI-compatible server takes for the answer's token limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensField {
    /// OpenAI's current field; its reasoning models reject `max_tokens`.
    #[default]
    MaxCompletionTokens,
    /// For servers that only know the older field.
    MaxTokens,
}

/// How requests adapt to an OpenAI-compatible server's dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderCompat {
    /// Send tool schemas in OpenAI's strict form with `strict: true`.
    pub strict_tools: bool,
    /// The name the answer's token limit is sent under.
    pub max_tokens_field: MaxTokensField,
    /// Some models refuse any `temperature`.
    pub send_temperature: bool,
}

impl Default for ProviderCompat {
    fn default() -> Self {
        Self {
            strict_tools: true,
            max_tokens_field: MaxTokensField::default(),
            send_temperature: true,
        }
    }
}

/// Connection settings shared by the providers.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// The provider's base URL.
    pub base_url: String,
    /// The key, when the provider needs one.
    pub api_key: Option<String>,
    /// Time to connect.
    pub connect_timeout: Duration,
    /// Limit of one call, retries included.
    pub request_timeout: Duration,
    /// Longest silence within a streamed answer.
    pub stream_idle_timeout: Duration,
    /// How failed calls are retried.
    pub retry: retry::RetryPolicy,
    /// What this OpenAI-compatible server accepts.
    pub compat: ProviderCompat,
}

impl ProviderSettings {
    /// The settings `agent` gives, with `default_base` when no base URL is set.
    pub fn from_config(config: &AgentConfig, default_base: &str) -> Self {
        Self {
            base_url: config
                .base_url
                .clone()
                .filter(|b| !b.is_empty())
                .unwrap_or_else(|| default_base.to_owned()),
            api_key: config.api_key.clone().filter(|k| !k.is_empty()),
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            request_timeout: Duration::from_millis(config.request_timeout_ms),
            stream_idle_timeout: Duration::from_millis(config.stream_idle_timeout_ms),
            retry: retry::RetryPolicy {
                max_attempts: config.max_attempts.max(1),
                base: Duration::from_millis(config.retry_base_ms),
                max: Duration::from_millis(config.retry_max_ms.max(config.retry_base_ms)),
            },
            compat: ProviderCompat {
                strict_tools: config.strict_tools,
                max_tokens_field: config.max_tokens_field,
                send_temperature: config.send_temperature,
            },
        }
    }
}

/// The configured model, or `None` when no provider is configured.
pub fn build(config: &AgentConfig) -> Result<Option<Arc<dyn ChatModel>>, LlmError> {
    Ok(match config.provider.as_deref() {
        Some("openai") => Some(Arc::new(openai::OpenAi::new(ProviderSettings::from_config(
            config,
            openai::DEFAULT_BASE_URL,
        ))?)),
        Some("anthropic") => Some(Arc::new(anthropic::Anthropic::new(
            ProviderSettings::from_config(config, anthropic::DEFAULT_BASE_URL),
        )?)),
        _ => None,
    })
}

impl ProviderSettings {
    /// Sends with retries, within the request time limit.
    pub(crate) async fn send(
        &self,
        url: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, LlmError> {
        tokio::time::timeout(self.request_timeout, retry::send(url, &self.retry, build))
            .await
            .map_err(|_| LlmError::Timeout)?
    }

    /// A streamed answer within what is left of `request_timeout` since `started` (which bounds
    /// the whole call, body included; silence between events is `next_event`'s limit).
    pub(crate) async fn within_request_time<T>(
        &self,
        started: std::time::Instant,
        read: impl std::future::Future<Output = Result<T, LlmError>>,
    ) -> Result<T, LlmError> {
        let left = self.request_timeout.saturating_sub(started.elapsed());
        tokio::time::timeout(left, read).await.map_err(|_| LlmError::Timeout)?
    }

    /// The next SSE event, `None` at the end; silence past the idle limit is a timeout, a broken
    /// stream is `StreamCut`.
    pub(crate) async fn next_event<S, E>(
        &self,
        events: &mut S,
        provider: &str,
    ) -> Result<Option<eventsource_stream::Event>, LlmError>
    where
        S: futures_util::Stream<Item = Result<eventsource_stream::Event, E>> + Unpin,
        E: std::fmt::Display,
    {
        use futures_util::StreamExt;
        match tokio::time::timeout(self.stream_idle_timeout, events.next())
            .await
            .map_err(|_| LlmError::Timeout)?
        {
            None => Ok(None),
            Some(Ok(e)) => Ok(Some(e)),
            Some(Err(e)) => {
                log::warn!("{provider} stream broke: {e}");
                Err(LlmError::StreamCut)
            }
        }
    }
}

/// A provider's endpoint: the URL as configured (for messages) and parsed once, not per call.
#[derive(Debug)]
pub(crate) struct Endpoint {
    url: String,
    parsed: Option<reqwest::Url>,
}

impl Endpoint {
    pub(crate) fn new(url: String) -> Self {
        let parsed = reqwest::Url::parse(&url).ok();
        Self { url, parsed }
    }

    /// The URL as configured.
    pub(crate) fn as_str(&self) -> &str {
        &self.url
    }

    /// A POST to it; an unparsable URL fails when sent, naming it.
    pub(crate) fn post(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        match &self.parsed {
            Some(url) => client.post(url.clone()),
            None => client.post(&self.url),
        }
    }
}

/// Reads the rest of a stream that ended in words (`[DONE]`, `message_stop`) to the end of its
/// body, so its connection goes back to the pool: a response dropped before its last chunk
/// closes the connection, and the next model call pays a new connection (a TLS handshake at a
/// real provider; measured at one new connection per turn under `cargo xtask bench-agent`).
/// The end follows at once from a server that keeps to the protocol; one that holds the body
/// open gets [`RELEASE_WAIT`], then loses the connection.
pub(crate) async fn release_stream<S>(mut events: S)
where
    S: futures_util::Stream + Unpin,
{
    use futures_util::StreamExt;
    let _ =
        tokio::time::timeout(RELEASE_WAIT, async { while events.next().await.is_some() {} }).await;
}

/// How long a finished stream's body may take to end before its connection is dropped.
pub(crate) const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// A whole JSON response body.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
) -> Result<T, LlmError> {
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| if e.is_timeout() { LlmError::Timeout } else { LlmError::StreamCut })?;
    serde_json::from_slice(&bytes).map_err(|e| LlmError::BadResponse(format!("invalid JSON: {e}")))
}

/// Joins `base` and `path` with exactly one slash.
pub(crate) fn join_url(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

/// The first part of an error body, for messages (providers put the reason there).
pub(crate) async fn error_text(resp: reqwest::Response) -> String {
    let text = resp.text().await.unwrap_or_default();
    let reason = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().or(v["message"].as_str()).map(str::to_owned))
        .unwrap_or(text);
    reason.chars().take(300).collect()
}
