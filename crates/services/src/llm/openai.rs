//! The OpenAI-compatible chat-completions protocol: `POST {base_url}/chat/completions` with
//! `tools`, answers with `tool_calls`; streaming over SSE with tool-call arguments arriving in
//! fragments (by `index`), several calls per turn, and usage in the final chunk.

use eventsource_stream::Eventsource;
use serde::{Deserialize, Serialize};
use sqlmatic_models::{ChatMessage, ToolCall, Usage};

use super::{
    BoxFuture, ChatModel, Deltas, LlmError, LlmRequest, LlmResponse, ProviderSettings, join_url,
    read_json,
};

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

pub struct OpenAi {
    settings: ProviderSettings,
    client: reqwest::Client,
    url: String,
}

impl OpenAi {
    pub fn new(settings: ProviderSettings) -> Result<Self, LlmError> {
        let client = crate::http_client_builder()
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.stream_idle_timeout)
            .build()
            .map_err(LlmError::Client)?;
        let url = if settings.base_url.ends_with("/chat/completions") {
            settings.base_url.clone()
        } else {
            join_url(&settings.base_url, "chat/completions")
        };
        Ok(Self { settings, client, url })
    }
}

// ---- wire format (private) ----

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    temperature: f32,
    max_tokens: u32,
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
    parameters: &'a serde_json::Value,
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    choices: Vec<WireChoice>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireRespMessage,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireRespMessage {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireRespToolCall>,
}

#[derive(Deserialize)]
struct WireRespToolCall {
    #[serde(default)]
    id: String,
    function: WireRespFunction,
}

#[derive(Deserialize)]
struct WireRespFunction {
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize, Clone, Copy)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Usage { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens }
    }
}

#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    delta: WireDelta,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireDelta {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireDeltaToolCall>,
}

#[derive(Deserialize)]
struct WireDeltaToolCall {
    #[serde(default)]
    index: usize,
    id: Option<String>,
    function: Option<WireDeltaFunction>,
}

#[derive(Deserialize)]
struct WireDeltaFunction {
    name: Option<String>,
    arguments: Option<String>,
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

fn wire_request(request: &LlmRequest, stream: bool) -> WireRequest<'_> {
    WireRequest {
        model: &request.model,
        messages: wire_messages(&request.messages),
        tools: request
            .tools
            .iter()
            .map(|t| WireTool {
                kind: "function",
                function: WireToolSpec {
                    name: &t.name,
                    description: &t.description,
                    parameters: &t.parameters,
                },
            })
            .collect(),
        temperature: request.temperature,
        max_tokens: request.max_tokens,
        stream,
        stream_options: stream.then_some(StreamOptions { include_usage: true }),
    }
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
        let body = wire_request(request, deltas.is_some());
        let body = serde_json::to_vec(&body).map_err(|e| LlmError::BadResponse(e.to_string()))?;
        let build = || {
            let mut rb = self
                .client
                .post(&self.url)
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
        let resp = self.settings.send(&self.url, build).await?;
        let result = match deltas {
            None => {
                let wire: WireResponse = read_json(resp).await?;
                let choice =
                    wire.choices.into_iter().next().ok_or_else(|| {
                        LlmError::BadResponse("no choices in the response".into())
                    })?;
                let mut tool_calls: Vec<ToolCall> = choice
                    .message
                    .tool_calls
                    .into_iter()
                    .map(|c| ToolCall {
                        id: c.id,
                        name: c.function.name,
                        arguments: c.function.arguments,
                    })
                    .collect();
                ensure_ids(&mut tool_calls);
                LlmResponse {
                    content: choice.message.content.unwrap_or_default(),
                    tool_calls,
                    usage: wire.usage.map(Usage::from).unwrap_or_default(),
                    finish_reason: choice.finish_reason,
                }
            }
            Some(deltas) => self.read_stream(resp, deltas).await?,
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
        let mut calls: Vec<ToolCall> = Vec::new();
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
            for choice in chunk.choices {
                if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                    let _ = deltas.send(text.clone());
                    out.content.push_str(&text);
                }
                for d in choice.delta.tool_calls {
                    if calls.len() <= d.index {
                        calls.resize_with(d.index + 1, || ToolCall {
                            id: String::new(),
                            name: String::new(),
                            arguments: String::new(),
                        });
                    }
                    let call = &mut calls[d.index];
                    if let Some(id) = d.id.filter(|i| !i.is_empty()) {
                        call.id = id;
                    }
                    if let Some(f) = d.function {
                        if let Some(name) = f.name {
                            call.name.push_str(&name);
                        }
                        if let Some(args) = f.arguments {
                            call.arguments.push_str(&args);
                        }
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
        calls.retain(|c| !c.name.is_empty());
        ensure_ids(&mut calls);
        out.tool_calls = calls;
        Ok(out)
    }
}

impl ChatModel for OpenAi {
    fn describe(&self) -> String {
        format!("openai-compatible at {}", self.url)
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
            },
        ];
        let req = LlmRequest {
            model: "m".into(),
            messages,
            tools: vec![],
            temperature: 0.0,
            max_tokens: 10,
        };
        let v = serde_json::to_value(wire_request(&req, true)).unwrap();
        assert_eq!(v["messages"][2]["content"], serde_json::Value::Null);
        assert_eq!(v["messages"][2]["tool_calls"][0]["function"]["name"], "list_tables");
        assert_eq!(v["messages"][3]["role"], "tool");
        assert_eq!(v["messages"][3]["tool_call_id"], "c1");
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert!(v.get("tools").is_none());
    }
}
