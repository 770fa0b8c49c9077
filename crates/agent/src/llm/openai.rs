//! The OpenAI-compatible chat-completions protocol: `POST {base_url}/chat/completions` with
//! `tools`, answers with `tool_calls`; streaming over SSE with tool-call arguments arriving in
//! fragments (by `index`), several calls per turn, and usage in the final chunk.

use eventsource_stream::Eventsource;
use serde::{Deserialize, Serialize};
use sqlmatic_models::{ChatMessage, ToolCall, Usage};

use super::{
    BoxFuture, ChatModel, Deltas, LlmError, LlmRequest, LlmResponse, MaxTokensField,
    ProviderCompat, ProviderSettings, join_url, read_json,
};

/// Where OpenAI's API is when `agent.base_url` is not set.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// Any OpenAI-compatible Chat Completions server (OpenAI, Ollama, vLLM, llama.cpp, LM Studio…), streamed over SSE.
pub struct OpenAi {
    settings: ProviderSettings,
    client: crate::http::PerThreadClient,
    url: super::Endpoint,
    tools: super::EncodedTools,
}

impl OpenAi {
    /// A client with these settings.
    pub fn new(settings: ProviderSettings) -> Result<Self, LlmError> {
        let client = crate::http::PerThreadClient::new(crate::http::ClientSettings {
            connect_timeout: settings.connect_timeout,
        })
        .map_err(LlmError::Client)?;
        let url = if settings.base_url.ends_with("/chat/completions") {
            settings.base_url.clone()
        } else {
            join_url(&settings.base_url, "chat/completions")
        };
        Ok(Self { settings, client, url: super::Endpoint::new(url), tools: Default::default() })
    }
}

// ---- wire format (private) ----

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    /// The encoded `[WireTool]` array ([`wire_tools`]), shared by the calls of a tool set.
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a serde_json::value::RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    /// OpenAI's current name; reasoning models reject `max_tokens`.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    /// The older name, for servers that only know it (`agent.max_tokens_field`).
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<WireToolCall<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireToolSpec<'a>,
}

#[derive(Serialize)]
struct WireToolSpec<'a> {
    name: &'a str,
    description: &'a str,
    parameters: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

// Responses are read tolerantly: servers differ (`null` for absent fields, `content` as an array
// of parts, arguments as an object, tool-call deltas without `index`), and unknown fields are
// ignored.

#[derive(Deserialize)]
struct WireResponse {
    choices: Option<Vec<WireChoice>>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: Option<WireRespMessage>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireRespMessage {
    content: Option<serde_json::Value>,
    tool_calls: Option<Vec<WireRespToolCall>>,
}

#[derive(Deserialize)]
struct WireRespToolCall {
    id: Option<String>,
    function: Option<WireRespFunction>,
}

#[derive(Deserialize)]
struct WireRespFunction {
    name: Option<String>,
    arguments: Option<serde_json::Value>,
}

#[derive(Deserialize, Clone, Copy)]
struct WireUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Usage {
            prompt_tokens: u.prompt_tokens.unwrap_or(0),
            completion_tokens: u.completion_tokens.unwrap_or(0),
        }
    }
}

#[derive(Deserialize)]
struct WireChunk {
    choices: Option<Vec<WireChunkChoice>>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    delta: Option<WireDelta>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireDelta {
    content: Option<serde_json::Value>,
    tool_calls: Option<Vec<WireDeltaToolCall>>,
}

#[derive(Deserialize)]
struct WireDeltaToolCall {
    index: Option<usize>,
    id: Option<String>,
    function: Option<WireDeltaFunction>,
}

#[derive(Deserialize)]
struct WireDeltaFunction {
    name: Option<String>,
    arguments: Option<serde_json::Value>,
}

/// Text of a `content` that is a string or an array of parts (`[{"type":"text","text":…}]`).
fn text_of(content: Option<serde_json::Value>) -> String {
    match content {
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Array(parts)) => parts
            .iter()
            .filter(|p| p["type"].as_str().is_none_or(|t| t == "text"))
            .filter_map(|p| p["text"].as_str().or(p.as_str()))
            .collect(),
        _ => String::new(),
    }
}

/// Arguments as JSON text, whether sent as a string (OpenAI) or as an object (some servers).
fn arguments_of(arguments: Option<serde_json::Value>) -> String {
    match arguments {
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Puts streamed tool-call fragments together. OpenAI numbers them by `index` and sends the id
/// once; some servers send whole calls without `index`, or several calls all with `index: 0`
/// and their own ids.
#[derive(Default)]
struct CallAssembler {
    calls: Vec<ToolCall>,
    /// wire index → position in `calls`
    slots: std::collections::HashMap<usize, usize>,
}

impl CallAssembler {
    fn add(&mut self, d: WireDeltaToolCall) {
        let id = d.id.filter(|i| !i.is_empty());
        let fresh = |calls: &mut Vec<ToolCall>| {
            calls.push(ToolCall {
                id: String::new(),
                name: String::new(),
                arguments: String::new(),
            });
            calls.len() - 1
        };
        let at = match d.index {
            Some(i) => match self.slots.get(&i).copied() {
                Some(at)
                    if id.as_ref().is_none_or(|id| {
                        self.calls[at].id.is_empty() || self.calls[at].id == *id
                    }) =>
                {
                    at
                }
                _ => {
                    let at = fresh(&mut self.calls);
                    self.slots.insert(i, at);
                    at
                }
            },
            None => match &id {
                Some(id) => match self.calls.iter().position(|c| c.id == *id) {
                    Some(at) => at,
                    None => fresh(&mut self.calls),
                },
                None if self.calls.is_empty() => fresh(&mut self.calls),
                None => self.calls.len() - 1,
            },
        };
        let call = &mut self.calls[at];
        if let Some(id) = id {
            call.id = id;
        }
        if let Some(f) = d.function {
            if let Some(name) = f.name {
                call.name.push_str(&name);
            }
            call.arguments.push_str(&arguments_of(f.arguments));
        }
    }

    fn finish(mut self) -> Vec<ToolCall> {
        self.calls.retain(|c| !c.name.is_empty());
        ensure_ids(&mut self.calls);
        self.calls
    }
}

fn wire_messages(messages: &[ChatMessage]) -> Vec<WireMessage<'_>> {
    messages
        .iter()
        .map(|m| match m {
            ChatMessage::System { content } => WireMessage {
                role: "system",
                content: Some(content),
                tool_calls: None,
                tool_call_id: None,
            },
            ChatMessage::User { content } => WireMessage {
                role: "user",
                content: Some(content),
                tool_calls: None,
                tool_call_id: None,
            },
            ChatMessage::Assistant { content, tool_calls } => WireMessage {
                role: "assistant",
                content: if content.is_empty() && !tool_calls.is_empty() {
                    None
                } else {
                    Some(content)
                },
                tool_calls: (!tool_calls.is_empty()).then(|| {
                    tool_calls
                        .iter()
                        .map(|c| WireToolCall {
                            id: &c.id,
                            kind: "function",
                            function: WireFunction { name: &c.name, arguments: &c.arguments },
                        })
                        .collect()
                }),
                tool_call_id: None,
            },
            ChatMessage::Tool { tool_call_id, content, .. } => WireMessage {
                role: "tool",
                content: Some(content),
                tool_calls: None,
                tool_call_id: Some(tool_call_id),
            },
        })
        .collect()
}

fn wire_request<'a>(
    request: &'a LlmRequest,
    tools: Option<&'a serde_json::value::RawValue>,
    stream: bool,
    compat: &ProviderCompat,
) -> WireRequest<'a> {
    let old_name = compat.max_tokens_field == MaxTokensField::MaxTokens;
    WireRequest {
        model: &request.model,
        messages: wire_messages(&request.messages),
        tools,
        temperature: compat.send_temperature.then_some(request.temperature),
        max_completion_tokens: (!old_name).then_some(request.max_tokens),
        max_tokens: old_name.then_some(request.max_tokens),
        stream,
        stream_options: stream.then_some(StreamOptions { include_usage: true }),
    }
}

/// The request's `tools` array as JSON: strict schemas when the server takes them.
fn wire_tools(
    tools: &[sqlmatic_tools::ToolDefinition],
    compat: &ProviderCompat,
) -> serde_json::Result<String> {
    let wire: Vec<WireTool<'_>> = tools
        .iter()
        .map(|t| WireTool {
            kind: "function",
            function: WireToolSpec {
                name: &t.name,
                description: &t.description,
                parameters: if compat.strict_tools {
                    sqlmatic_tools::schema::openai_strict(&t.parameters)
                } else {
                    t.parameters.clone()
                },
                strict: compat.strict_tools.then_some(true),
            },
        })
        .collect();
    serde_json::to_string(&wire)
}

/// Gives tool calls without an id (some local servers omit them) a stable one.
fn ensure_ids(calls: &mut [ToolCall]) {
    for (i, c) in calls.iter_mut().enumerate() {
        if c.id.is_empty() {
            c.id = format!("call_{i}");
        }
    }
}

impl OpenAi {
    async fn call(
        &self,
        request: &LlmRequest,
        deltas: Option<&Deltas>,
    ) -> Result<LlmResponse, LlmError> {
        let compat = &self.settings.compat;
        let tools = self.tools.get(&request.tools, |t| wire_tools(t, compat))?;
        let body = wire_request(request, tools.as_deref(), deltas.is_some(), compat);
        // shared by the retries without a copy each
        let body = bytes::Bytes::from(
            serde_json::to_vec(&body).map_err(|e| LlmError::BadResponse(e.to_string()))?,
        );
        let build = || {
            let mut rb = self
                .url
                .post(&self.client.get())
                .header("content-type", "application/json")
                .body(body.clone());
            if let Some(key) = &self.settings.api_key {
                rb = rb.bearer_auth(key);
            }
            if deltas.is_none() {
                rb = rb.timeout(self.settings.request_timeout);
            }
            rb
        };
        let started = std::time::Instant::now();
        let resp = self.settings.send(self.url.as_str(), build).await?;
        let result = match deltas {
            None => {
                let wire: WireResponse = read_json(resp).await?;
                let choice =
                    wire.choices.unwrap_or_default().into_iter().next().ok_or_else(|| {
                        LlmError::BadResponse("no choices in the response".into())
                    })?;
                let message =
                    choice.message.unwrap_or(WireRespMessage { content: None, tool_calls: None });
                let mut tool_calls: Vec<ToolCall> = message
                    .tool_calls
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|c| {
                        let f = c.function?;
                        Some(ToolCall {
                            id: c.id.unwrap_or_default(),
                            name: f.name.filter(|n| !n.is_empty())?,
                            arguments: arguments_of(f.arguments),
                        })
                    })
                    .collect();
                ensure_ids(&mut tool_calls);
                LlmResponse {
                    content: text_of(message.content),
                    tool_calls,
                    usage: wire.usage.map(Usage::from).unwrap_or_default(),
                    finish_reason: choice.finish_reason,
                }
            }
            Some(deltas) => {
                self.settings.within_request_time(started, self.read_stream(resp, deltas)).await?
            }
        };
        log::debug!(
            "openai {} answered in {} ms: {} chars, {} tool call(s), usage {:?}",
            request.model,
            started.elapsed().as_millis(),
            result.content.len(),
            result.tool_calls.len(),
            result.usage
        );
        Ok(result)
    }

    async fn read_stream(
        &self,
        resp: reqwest::Response,
        deltas: &Deltas,
    ) -> Result<LlmResponse, LlmError> {
        let mut events = resp.bytes_stream().eventsource();
        let mut out = LlmResponse::default();
        let mut calls = CallAssembler::default();
        let mut done = false;
        loop {
            let Some(event) = self.settings.next_event(&mut events, "openai").await? else { break };
            let data = event.data.trim();
            if data == "[DONE]" {
                done = true;
                break;
            }
            if data.is_empty() {
                continue;
            }
            let chunk: WireChunk = serde_json::from_str(data)
                .map_err(|e| LlmError::BadResponse(format!("invalid stream chunk: {e}")))?;
            if let Some(u) = chunk.usage {
                out.usage = u.into();
            }
            for choice in chunk.choices.unwrap_or_default() {
                if let Some(delta) = choice.delta {
                    let text = text_of(delta.content);
                    if !text.is_empty() {
                        let _ = deltas.send(text.clone());
                        out.content.push_str(&text);
                    }
                    for d in delta.tool_calls.unwrap_or_default() {
                        calls.add(d);
                    }
                }
                if choice.finish_reason.is_some() {
                    out.finish_reason = choice.finish_reason;
                }
            }
        }
        if !done && out.finish_reason.is_none() {
            return Err(LlmError::StreamCut);
        }
        if done {
            super::release_stream(events).await;
        }
        out.tool_calls = calls.finish();
        Ok(out)
    }
}

impl ChatModel for OpenAi {
    fn describe(&self) -> String {
        format!("openai-compatible at {}", self.url.as_str())
    }

    fn complete<'a>(
        &'a self,
        request: &'a LlmRequest,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        Box::pin(self.call(request, None))
    }

    fn stream<'a>(
        &'a self,
        request: &'a LlmRequest,
        deltas: &'a Deltas,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        Box::pin(self.call(request, Some(deltas)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_maps_to_the_wire() {
        let messages = vec![
            ChatMessage::system("s"),
            ChatMessage::user("q"),
            ChatMessage::Assistant {
                content: String::new(),
                tool_calls: vec![ToolCall {
                    id: "c1".into(),
                    name: "list_tables".into(),
                    arguments: "{}".into(),
                }],
            },
            ChatMessage::Tool {
                tool_call_id: "c1".into(),
                name: "list_tables".into(),
                content: "[]".into(),
                is_error: false,
            },
        ];
        let req = LlmRequest {
            model: "m".into(),
            messages,
            tools: std::sync::Arc::from([]),
            temperature: 0.0,
            max_tokens: 10,
        };
        let v = serde_json::to_value(wire_request(&req, None, true, &ProviderCompat::default()))
            .unwrap();
        assert_eq!(v["messages"][2]["content"], serde_json::Value::Null);
        assert_eq!(v["messages"][2]["tool_calls"][0]["function"]["name"], "list_tables");
        assert_eq!(v["messages"][3]["role"], "tool");
        assert_eq!(v["messages"][3]["tool_call_id"], "c1");
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert!(v.get("tools").is_none());
    }
}
