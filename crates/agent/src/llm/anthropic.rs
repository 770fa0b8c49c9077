//! Anthropic's Messages API: `POST {base_url}/v1/messages` with `tools`, answers with
//! `tool_use` blocks; tool results go back as `tool_result` blocks in a user message.
//! Streaming over SSE: `content_block_start/delta/stop`, `message_delta` (usage, stop reason).

use eventsource_stream::Eventsource;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlmatic_models::{ChatMessage, ToolCall, Usage};

use super::{
    BoxFuture, ChatModel, Deltas, LlmError, LlmRequest, LlmResponse, ProviderSettings, join_url,
    read_json,
};

/// Where Anthropic's API is when `agent.base_url` is not set.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
const API_VERSION: &str = "2023-06-01";

/// Anthropic's Messages API, streamed over SSE.
pub struct Anthropic {
    settings: ProviderSettings,
    client: crate::http::PerThreadClient,
    url: super::Endpoint,
    tools: super::EncodedTools,
}

impl Anthropic {
    /// A client with these settings.
    pub fn new(settings: ProviderSettings) -> Result<Self, LlmError> {
        let client = crate::http::PerThreadClient::new(crate::http::ClientSettings {
            connect_timeout: settings.connect_timeout,
        })
        .map_err(LlmError::Client)?;
        let base = settings.base_url.trim_end_matches('/');
        let url = if base.ends_with("/messages") {
            base.to_owned()
        } else if base.ends_with("/v1") {
            join_url(base, "messages")
        } else {
            join_url(base, "v1/messages")
        };
        Ok(Self { settings, client, url: super::Endpoint::new(url), tools: Default::default() })
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "String::is_empty")]
    system: String,
    messages: Vec<WireMessage>,
    /// The encoded tools array, shared by the calls of a tool set.
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a serde_json::value::RawValue>,
    max_tokens: u32,
    temperature: f32,
    stream: bool,
}

#[derive(Serialize)]
struct WireMessage {
    role: &'static str,
    content: Vec<Value>,
}

/// Builds Anthropic's alternating user/assistant messages: system text goes to `system`,
/// consecutive messages of one role are merged, tool results become `tool_result` blocks.
fn wire_messages(messages: &[ChatMessage]) -> (String, Vec<WireMessage>) {
    let mut system = String::new();
    let mut out: Vec<WireMessage> = Vec::new();
    let mut push = |role: &'static str, block: Value| match out.last_mut() {
        Some(last) if last.role == role => last.content.push(block),
        _ => out.push(WireMessage { role, content: vec![block] }),
    };
    for m in messages {
        match m {
            ChatMessage::System { content } => {
                if !system.is_empty() {
                    system.push_str("\n\n");
                }
                system.push_str(content);
            }
            ChatMessage::User { content } => push("user", json!({"type": "text", "text": content})),
            ChatMessage::Assistant { content, tool_calls } => {
                if !content.is_empty() {
                    push("assistant", json!({"type": "text", "text": content}));
                }
                for c in tool_calls {
                    // the API wants an object; a model's invalid JSON is kept visible to it
                    let input = serde_json::from_str::<Value>(&c.arguments)
                        .ok()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({"_invalid_arguments": c.arguments}));
                    push(
                        "assistant",
                        json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}),
                    );
                }
            }
            ChatMessage::Tool { tool_call_id, content, is_error, .. } => {
                let mut block =
                    json!({"type": "tool_result", "tool_use_id": tool_call_id, "content": content});
                if *is_error {
                    block["is_error"] = Value::Bool(true);
                }
                push("user", block);
            }
        }
    }
    (system, out)
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    content: Vec<Value>,
    stop_reason: Option<String>,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

fn blocks_to_response(blocks: Vec<Value>) -> (String, Vec<ToolCall>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b["type"].as_str() {
            Some("text") => text.push_str(b["text"].as_str().unwrap_or_default()),
            Some("tool_use") => calls.push(ToolCall {
                id: b["id"].as_str().unwrap_or_default().to_owned(),
                name: b["name"].as_str().unwrap_or_default().to_owned(),
                arguments: b["input"].to_string(),
            }),
            _ => {}
        }
    }
    (text, calls)
}

impl Anthropic {
    async fn call(
        &self,
        request: &LlmRequest,
        deltas: Option<&Deltas>,
    ) -> Result<LlmResponse, LlmError> {
        let (system, messages) = wire_messages(&request.messages);
        let tools = self.tools.get(&request.tools, |tools| {
            let wire: Vec<Value> = tools
                .iter()
                .map(|t| {
                    json!({"name": t.name, "description": t.description, "input_schema": t.parameters})
                })
                .collect();
            serde_json::to_string(&wire)
        })?;
        let body = WireRequest {
            model: &request.model,
            system,
            messages,
            tools: tools.as_deref(),
            max_tokens: request.max_tokens,
            temperature: request.temperature,
            stream: deltas.is_some(),
        };
        // shared by the retries without a copy each
        let body = bytes::Bytes::from(
            serde_json::to_vec(&body).map_err(|e| LlmError::BadResponse(e.to_string()))?,
        );
        let build = || {
            let mut rb = self
                .url
                .post(&self.client.get())
                .header("content-type", "application/json")
                .header("anthropic-version", API_VERSION)
                .body(body.clone());
            if let Some(key) = &self.settings.api_key {
                rb = rb.header("x-api-key", key);
            }
            if deltas.is_none() {
                rb = rb.timeout(self.settings.request_timeout);
            }
            rb
        };
        let started = std::time::Instant::now();
        let resp = self.settings.send(self.url.as_str(), build).await?;
        match deltas {
            None => {
                let wire: WireResponse = read_json(resp).await?;
                let (content, tool_calls) = blocks_to_response(wire.content);
                Ok(LlmResponse {
                    content,
                    tool_calls,
                    usage: Usage {
                        prompt_tokens: wire.usage.input_tokens,
                        completion_tokens: wire.usage.output_tokens,
                    },
                    finish_reason: wire.stop_reason,
                })
            }
            Some(deltas) => {
                self.settings.within_request_time(started, self.read_stream(resp, deltas)).await
            }
        }
    }

    async fn read_stream(
        &self,
        resp: reqwest::Response,
        deltas: &Deltas,
    ) -> Result<LlmResponse, LlmError> {
        let mut events = resp.bytes_stream().eventsource();
        let mut out = LlmResponse::default();
        // (index, call) for tool_use blocks; arguments accumulate as partial JSON
        let mut calls: Vec<(u64, ToolCall)> = Vec::new();
        let mut stopped = false;
        loop {
            let Some(event) = self.settings.next_event(&mut events, "anthropic").await? else {
                break;
            };
            if event.data.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&event.data)
                .map_err(|e| LlmError::BadResponse(format!("invalid stream event: {e}")))?;
            match v["type"].as_str().unwrap_or(event.event.as_str()) {
                "message_start" => {
                    out.usage.prompt_tokens =
                        v["message"]["usage"]["input_tokens"].as_u64().unwrap_or(0);
                }
                "content_block_start" => {
                    let block = &v["content_block"];
                    if block["type"] == "tool_use" {
                        calls.push((
                            v["index"].as_u64().unwrap_or(0),
                            ToolCall {
                                id: block["id"].as_str().unwrap_or_default().to_owned(),
                                name: block["name"].as_str().unwrap_or_default().to_owned(),
                                arguments: String::new(),
                            },
                        ));
                    } else if let Some(text) = block["text"].as_str().filter(|t| !t.is_empty()) {
                        let _ = deltas.send(text.to_owned());
                        out.content.push_str(text);
                    }
                }
                "content_block_delta" => {
                    let delta = &v["delta"];
                    match delta["type"].as_str() {
                        Some("text_delta") => {
                            let text = delta["text"].as_str().unwrap_or_default();
                            if !text.is_empty() {
                                let _ = deltas.send(text.to_owned());
                                out.content.push_str(text);
                            }
                        }
                        Some("input_json_delta") => {
                            let index = v["index"].as_u64().unwrap_or(0);
                            if let Some((_, call)) = calls.iter_mut().find(|(i, _)| *i == index) {
                                call.arguments
                                    .push_str(delta["partial_json"].as_str().unwrap_or_default());
                            }
                        }
                        _ => {}
                    }
                }
                "message_delta" => {
                    if let Some(reason) = v["delta"]["stop_reason"].as_str() {
                        out.finish_reason = Some(reason.to_owned());
                    }
                    if let Some(n) = v["usage"]["output_tokens"].as_u64() {
                        out.usage.completion_tokens = n;
                    }
                }
                "message_stop" => {
                    stopped = true;
                    break;
                }
                "error" => {
                    let message =
                        v["error"]["message"].as_str().unwrap_or("unknown error").to_owned();
                    return Err(if v["error"]["type"] == "overloaded_error" {
                        LlmError::ServerError { status: 529 }
                    } else {
                        LlmError::BadResponse(message)
                    });
                }
                _ => {}
            }
        }
        if !stopped {
            return Err(LlmError::StreamCut);
        }
        super::release_stream(events).await;
        out.tool_calls = calls
            .into_iter()
            .map(|(_, mut c)| {
                if c.arguments.trim().is_empty() {
                    c.arguments = "{}".into();
                }
                c
            })
            .collect();
        Ok(out)
    }
}

impl ChatModel for Anthropic {
    fn describe(&self) -> String {
        format!("anthropic at {}", self.url.as_str())
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
    fn tool_results_become_user_blocks_and_roles_alternate() {
        let messages = vec![
            ChatMessage::system("rules"),
            ChatMessage::user("q"),
            ChatMessage::Assistant {
                content: "let me look".into(),
                tool_calls: vec![
                    ToolCall {
                        id: "t1".into(),
                        name: "list_tables".into(),
                        arguments: "{}".into(),
                    },
                    ToolCall {
                        id: "t2".into(),
                        name: "get_schema".into(),
                        arguments: "not json".into(),
                    },
                ],
            },
            ChatMessage::Tool {
                tool_call_id: "t1".into(),
                name: "list_tables".into(),
                content: "[]".into(),
                is_error: false,
            },
            ChatMessage::Tool {
                tool_call_id: "t2".into(),
                name: "get_schema".into(),
                content: "{}".into(),
                is_error: true,
            },
        ];
        let (system, wire) = wire_messages(&messages);
        assert_eq!(system, "rules");
        assert_eq!(wire.iter().map(|m| m.role).collect::<Vec<_>>(), ["user", "assistant", "user"]);
        assert_eq!(wire[1].content.len(), 3);
        assert_eq!(wire[1].content[2]["input"]["_invalid_arguments"], "not json");
        assert_eq!(wire[2].content[1]["tool_use_id"], "t2");
        assert_eq!(wire[2].content[1]["is_error"], true, "a failed tool is marked");
        assert!(wire[2].content[0].get("is_error").is_none());
    }
}
