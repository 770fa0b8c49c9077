//! Scripted models for tests and benchmarks (behind the `test-utils` feature): [`ScriptedModel`]
//! in process, and [`ScriptedLlm`], a scripted LLM server: a real HTTP/1.1 server on 127.0.0.1 that
//! speaks the OpenAI-compatible chat-completions protocol (`…/chat/completions`) and Anthropic's
//! Messages API (`…/messages`), streaming real SSE (chunked) or answering JSON, and injecting
//! faults: error statuses with `Retry-After`, a slow first byte, a connection cut mid-stream,
//! garbage, or no answer at all. TCP_NODELAY is set on every connection.
//!
//! Responses come from a [`Script`]: either a queue consumed one step per request, or steps
//! chosen by the request's round (assistant messages since the last user message), which keeps
//! concurrent conversations independent.

mod model;

pub use model::ScriptedModel;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Provider settings for tests against a [`ScriptedLlm`] at `base_url`: short time limits and
/// quick retries (3 attempts, 10–50 ms apart), so fault tests finish fast.
pub fn provider_settings(base_url: String) -> crate::llm::ProviderSettings {
    crate::llm::ProviderSettings {
        base_url,
        api_key: Some("sk-test".into()),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        stream_idle_timeout: Duration::from_millis(400),
        retry: crate::llm::retry::RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(10),
            max: Duration::from_millis(50),
        },
        compat: Default::default(),
    }
}

/// A model turn to play back.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// Text, sent as one delta per piece.
    pub text: Vec<String>,
    /// (id, name, arguments JSON text) of tool calls.
    pub tool_calls: Vec<(String, String, String)>,
    /// Pieces each tool call's arguments are split into (at least 1).
    pub fragments: usize,
    /// (prompt, completion) tokens reported.
    pub usage: (u64, u64),
}

impl Reply {
    /// A text answer, streamed word by word.
    pub fn text(text: &str) -> Self {
        // a few pieces so streaming is visible
        let pieces: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
        Self { text: pieces, fragments: 1, usage: (100, 20), ..Self::default() }
    }

    /// One tool call.
    pub fn tool(id: &str, name: &str, arguments: Value) -> Self {
        Self {
            tool_calls: vec![(id.into(), name.into(), arguments.to_string())],
            fragments: 1,
            usage: (100, 10),
            ..Self::default()
        }
    }

    /// Several tool calls in one answer (id, name, arguments).
    pub fn tools(calls: &[(&str, &str, Value)]) -> Self {
        Self {
            tool_calls: calls
                .iter()
                .map(|(i, n, a)| (i.to_string(), n.to_string(), a.to_string()))
                .collect(),
            fragments: 1,
            usage: (100, 10),
            ..Self::default()
        }
    }

    /// A tool call whose arguments are raw text (e.g. invalid JSON).
    pub fn raw_tool(id: &str, name: &str, arguments: &str) -> Self {
        Self {
            tool_calls: vec![(id.into(), name.into(), arguments.into())],
            fragments: 1,
            usage: (100, 10),
            ..Self::default()
        }
    }

    /// Splits each tool call's arguments into `n` streamed pieces.
    pub fn in_fragments(mut self, n: usize) -> Self {
        self.fragments = n.max(1);
        self
    }
}

/// One HTTP response.
#[derive(Debug, Clone)]
pub enum Step {
    /// A model answer, in the protocol the request spoke (streamed when it asked to stream).
    Reply(Reply),
    /// An error status with an optional `Retry-After` (seconds).
    Status {
        /// The HTTP status.
        status: u16,
        /// `Retry-After`, in seconds.
        retry_after: Option<u64>,
        /// The body.
        body: String,
    },
    /// Waits before sending anything.
    Delay {
        /// How long.
        ms: u64,
        /// Then this.
        then: Box<Step>,
    },
    /// Streams the reply but closes the connection after `events` SSE events.
    CutAfter {
        /// Events sent.
        events: usize,
        /// The reply they come from.
        reply: Reply,
    },
    /// Streams the first `events` SSE events, then goes silent (the connection stays open).
    StallAfter {
        /// Events sent.
        events: usize,
        /// The reply they come from.
        reply: Reply,
    },
    /// Streams the reply one SSE event every `every_ms`: never silent for long, but slow.
    Drip {
        /// The pause between events.
        every_ms: u64,
        /// The reply.
        reply: Reply,
    },
    /// 200 with a body that is not the protocol.
    Garbage,
    /// 200 with exactly this body: a provider's published or recorded payload, replayed byte
    /// for byte (`text/event-stream` when it starts with `data:` or `event:`).
    Raw(String),
    /// Never answers.
    Hang,
}

impl Step {
    /// `then`, after `ms` milliseconds.
    pub fn delayed(ms: u64, then: Step) -> Self {
        Self::Delay { ms, then: Box::new(then) }
    }
}

/// The order steps are played in.
#[derive(Debug, Clone)]
pub enum Script {
    /// One step per request, in order, whatever the conversation.
    Queue(VecDeque<Step>),
    /// The step of the request's round: how many assistant messages follow the last question.
    ByRound(Vec<Step>),
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The request path.
    pub path: String,
    /// Its headers.
    pub headers: Vec<(String, String)>,
    /// Its JSON body.
    pub body: Value,
}

struct State {
    script: Mutex<Script>,
    received: Mutex<Vec<Received>>,
    latency: Duration,
    /// Connections accepted so far.
    connections: std::sync::atomic::AtomicUsize,
}

/// The running server; it stops when dropped.
pub struct ScriptedLlm {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedLlm {
    /// Starts a server that plays `steps` in order, one per request.
    pub async fn queue(steps: Vec<Step>) -> Self {
        Self::start(Script::Queue(steps.into()), Duration::ZERO).await
    }

    /// Starts a server that answers each request with the step of its round.
    pub async fn by_round(steps: Vec<Step>, latency: Duration) -> Self {
        Self::start(Script::ByRound(steps), latency).await
    }

    /// Starts a server playing `script`, each answer after `latency`.
    pub async fn start(script: Script, latency: Duration) -> Self {
        #[allow(clippy::unwrap_used)] // binding 127.0.0.1:0 only fails on a broken machine
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        #[allow(clippy::unwrap_used)]
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            script: Mutex::new(script),
            received: Mutex::default(),
            latency,
            connections: std::sync::atomic::AtomicUsize::new(0),
        });
        let s = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                s.connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream, s.clone()));
            }
        });
        Self { port, state, task }
    }

    /// Base URL for the OpenAI-compatible provider.
    pub fn openai_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Base URL for the Anthropic provider.
    pub fn anthropic_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many connections clients opened to it (a client that reuses its connections opens
    /// one per concurrent request).
    pub fn connections(&self) -> usize {
        self.state.connections.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Appends steps to a queue script.
    pub fn push(&self, steps: impl IntoIterator<Item = Step>) {
        if let Script::Queue(q) =
            &mut *self.state.script.lock().unwrap_or_else(PoisonError::into_inner)
        {
            q.extend(steps);
        }
    }
}

fn round(body: &Value) -> usize {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last_user =
        messages.iter().rposition(|m| m["role"] == "user" && !is_anthropic_tool_result(m));
    messages
        .iter()
        .skip(last_user.map_or(0, |i| i + 1))
        .filter(|m| m["role"] == "assistant")
        .count()
}

fn is_anthropic_tool_result(m: &Value) -> bool {
    m["content"].as_array().is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_result"))
}

async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Option<(String, Vec<(String, String)>, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut lines = head.lines();
            let path = lines.next()?.split_whitespace().nth(1)?.to_owned();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| {
                    l.split_once(':')
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                })
                .collect();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut chunk = [0u8; 8192];
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..end + 4 + len].to_vec();
            buf.drain(..end + 4 + len);
            return Some((path, headers, body));
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn serve(mut stream: TcpStream, state: Arc<State>) {
    let mut buf = Vec::new();
    while let Some((path, headers, body)) = read_request(&mut stream, &mut buf).await {
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let anthropic = path.ends_with("/messages");
        let streaming = body["stream"].as_bool().unwrap_or(false);
        // as strict as the real APIs: a request they would refuse is refused here too (and
        // consumes no scripted step)
        let checked = if anthropic { check_anthropic(&body) } else { check_openai(&body) };
        let step = match checked {
            Err((code, message)) => Some(Step::Status {
                status: 400,
                retry_after: None,
                body: serde_json::json!({"error": {"message": message, "type": "invalid_request_error", "code": code}})
                    .to_string(),
            }),
            Ok(()) => {
                let mut script = state.script.lock().unwrap_or_else(PoisonError::into_inner);
                match &mut *script {
                    Script::Queue(q) => q.pop_front(),
                    Script::ByRound(steps) => steps.get(round(&body)).or(steps.last()).cloned(),
                }
            }
        };
        state.received.lock().unwrap_or_else(PoisonError::into_inner).push(Received {
            path: path.clone(),
            headers,
            body: body.clone(),
        });
        if !state.latency.is_zero() {
            tokio::time::sleep(state.latency).await;
        }
        let step = step.unwrap_or(Step::Status {
            status: 500,
            retry_after: None,
            body: r#"{"error":{"message":"script exhausted"}}"#.into(),
        });
        if !respond(&mut stream, step, anthropic, streaming).await {
            return;
        }
    }
}

/// Resolves when the client has closed the connection (or reset it), as a real server notices
/// a client that gave up: a hanging, stalled or slow step then ends with it instead of
/// outliving the test.
async fn peer_closed(stream: &TcpStream) {
    let mut byte = [0u8; 1];
    match stream.peek(&mut byte).await {
        Ok(0) | Err(_) => {}
        // clients here never pipeline; a byte sent early changes nothing for this response
        Ok(_) => std::future::pending().await,
    }
}

/// Writes one response; false when the connection must close.
async fn respond(stream: &mut TcpStream, mut step: Step, anthropic: bool, streaming: bool) -> bool {
    while let Step::Delay { ms, then } = step {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => {}
            () = peer_closed(stream) => return false,
        }
        step = *then;
    }
    match step {
        Step::Delay { .. } => true,
        Step::Hang => {
            peer_closed(stream).await;
            false
        }
        Step::Status { status, retry_after, body } => {
            let extra = retry_after.map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default();
            let head = format!(
                "HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await.is_ok()
                && stream.write_all(body.as_bytes()).await.is_ok()
        }
        Step::Raw(body) => {
            let ct = if body.starts_with("data:") || body.starts_with("event:") {
                "text/event-stream"
            } else {
                "application/json"
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await.is_ok()
                && stream.write_all(body.as_bytes()).await.is_ok()
        }
        Step::Garbage => {
            let body =
                if streaming { "data: {this is not json\n\n" } else { "<html>not json</html>" };
            let ct = if streaming { "text/event-stream" } else { "application/json" };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await.is_ok()
                && stream.write_all(body.as_bytes()).await.is_ok()
        }
        Step::Reply(reply) if !streaming => {
            let body =
                if anthropic { anthropic_json(&reply) } else { openai_json(&reply) }.to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await.is_ok()
                && stream.write_all(body.as_bytes()).await.is_ok()
        }
        Step::Reply(reply) => write_sse(stream, &sse_events(&reply, anthropic), usize::MAX).await,
        Step::CutAfter { events, reply } => {
            write_sse(stream, &sse_events(&reply, anthropic), events).await;
            false
        }
        Step::Drip { every_ms, reply } => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return false;
            }
            for e in sse_events(&reply, anthropic) {
                tokio::time::sleep(Duration::from_millis(every_ms)).await;
                if stream.write_all(format!("{:x}\r\n{e}\r\n", e.len()).as_bytes()).await.is_err() {
                    return false;
                }
            }
            stream.write_all(b"0\r\n\r\n").await.is_ok()
        }
        Step::StallAfter { events, reply } => {
            let all = sse_events(&reply, anthropic);
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            for e in all.iter().take(events) {
                let _ = stream.write_all(format!("{:x}\r\n{e}\r\n", e.len()).as_bytes()).await;
            }
            let _ = stream.flush().await;
            peer_closed(stream).await;
            false
        }
    }
}

async fn write_sse(stream: &mut TcpStream, events: &[String], limit: usize) -> bool {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return false;
    }
    for (i, e) in events.iter().enumerate() {
        if i >= limit {
            let _ = stream.flush().await;
            let _ = stream.shutdown().await;
            return false;
        }
        let chunk = format!("{:x}\r\n{e}\r\n", e.len());
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            return false;
        }
    }
    stream.write_all(b"0\r\n\r\n").await.is_ok()
}

fn split(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let size = chars.len().div_ceil(n.max(1)).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

fn sse_events(reply: &Reply, anthropic: bool) -> Vec<String> {
    if anthropic { anthropic_sse(reply) } else { openai_sse(reply) }
}

fn openai_sse(reply: &Reply) -> Vec<String> {
    let data = |v: Value| format!("data: {v}\n\n");
    let mut out = Vec::new();
    for t in &reply.text {
        out.push(data(json!({"choices": [{"index": 0, "delta": {"content": t}}]})));
    }
    for (i, (id, name, args)) in reply.tool_calls.iter().enumerate() {
        out.push(data(json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}}]})));
        for piece in split(args, reply.fragments) {
            out.push(data(json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": i, "function": {"arguments": piece}}]}}]})));
        }
    }
    let finish = if reply.tool_calls.is_empty() { "stop" } else { "tool_calls" };
    out.push(data(json!({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})));
    out.push(data(json!({"choices": [], "usage": {"prompt_tokens": reply.usage.0, "completion_tokens": reply.usage.1}})));
    out.push("data: [DONE]\n\n".into());
    out
}

fn openai_json(reply: &Reply) -> Value {
    let calls: Vec<Value> = reply
        .tool_calls
        .iter()
        .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
        .collect();
    json!({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text.concat(), "tool_calls": calls},
                     "finish_reason": if reply.tool_calls.is_empty() { "stop" } else { "tool_calls" }}],
        "usage": {"prompt_tokens": reply.usage.0, "completion_tokens": reply.usage.1}
    })
}

fn anthropic_sse(reply: &Reply) -> Vec<String> {
    let ev = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
    let mut out = vec![ev(
        "message_start",
        json!({"type": "message_start", "message": {"usage": {"input_tokens": reply.usage.0, "output_tokens": 0}}}),
    )];
    let mut index = 0;
    if !reply.text.is_empty() {
        out.push(ev("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
        for t in &reply.text {
            out.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}})));
        }
        out.push(ev("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
        index = 1;
    }
    out.push(ev("ping", json!({"type": "ping"})));
    for (id, name, args) in &reply.tool_calls {
        out.push(ev("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})));
        for piece in split(args, reply.fragments) {
            out.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": piece}})));
        }
        out.push(ev("content_block_stop", json!({"type": "content_block_stop", "index": index})));
        index += 1;
    }
    let stop = if reply.tool_calls.is_empty() { "end_turn" } else { "tool_use" };
    out.push(ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": reply.usage.1}})));
    out.push(ev("message_stop", json!({"type": "message_stop"})));
    out
}

fn anthropic_json(reply: &Reply) -> Value {
    let mut content = Vec::new();
    if !reply.text.is_empty() {
        content.push(json!({"type": "text", "text": reply.text.concat()}));
    }
    for (id, name, args) in &reply.tool_calls {
        content.push(json!({"type": "tool_use", "id": id, "name": name, "input": serde_json::from_str::<Value>(args).unwrap_or(json!({}))}));
    }
    json!({
        "content": content,
        "stop_reason": if reply.tool_calls.is_empty() { "end_turn" } else { "tool_use" },
        "usage": {"input_tokens": reply.usage.0, "output_tokens": reply.usage.1}
    })
}

type Refusal = (&'static str, String);

/// What OpenAI's chat-completions API refuses with 400, as its documentation and error messages
/// state: tool schemas (arrays without `items` always; the strict rules with `strict: true`),
/// function names, tool messages that answer no call, calls left unanswered, `stream_options`
/// without `stream`, and `max_tokens`/`temperature` on reasoning models.
pub fn check_openai(body: &Value) -> Result<(), Refusal> {
    let bad = |code: &'static str, m: String| Err((code, m));
    if body["model"].as_str().is_none_or(str::is_empty) {
        return bad("invalid_request_error", "you must provide a model parameter".into());
    }
    let Some(messages) = body["messages"].as_array().filter(|m| !m.is_empty()) else {
        return bad("invalid_request_error", "'messages' must be a non-empty array".into());
    };
    if body.get("stream_options").is_some() && body["stream"] != true {
        return bad(
            "invalid_request_error",
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.".into(),
        );
    }
    let model = body["model"].as_str().unwrap_or_default();
    let reasoning = model.starts_with("o1")
        || model.starts_with("o3")
        || model.starts_with("o4")
        || model.starts_with("gpt-5");
    if reasoning && body.get("max_tokens").is_some() {
        return bad(
            "unsupported_parameter",
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.".into(),
        );
    }
    if reasoning && body.get("temperature").is_some_and(|t| t.as_f64() != Some(1.0)) {
        return bad("unsupported_value", "Unsupported value: 'temperature' does not support 0 with this model. Only the default (1) value is supported.".into());
    }
    for (i, tool) in body["tools"].as_array().into_iter().flatten().enumerate() {
        let f = &tool["function"];
        let name = f["name"].as_str().unwrap_or_default();
        if name.is_empty()
            || name.len() > 64
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return bad(
                "invalid_value",
                format!("Invalid 'tools[{i}].function.name': string does not match pattern."),
            );
        }
        let params = &f["parameters"];
        let mut problems = sqlmatic_tools::schema::check_anthropic(params);
        if f["strict"] == true {
            problems.extend(sqlmatic_tools::schema::check_openai_strict(params));
        }
        if let Some(p) = problems.first() {
            return bad(
                "invalid_function_parameters",
                format!("Invalid schema for function '{name}': In context={p}"),
            );
        }
    }
    let mut open: Vec<String> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        match m["role"].as_str() {
            Some("tool") => {
                let id = m["tool_call_id"].as_str().unwrap_or_default();
                match open.iter().position(|o| o == id) {
                    Some(at) => {
                        open.remove(at);
                    }
                    None => {
                        return bad(
                            "invalid_request_error",
                            format!(
                                "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls' (messages[{i}])."
                            ),
                        );
                    }
                }
            }
            Some(role) => {
                if !open.is_empty() {
                    return bad(
                        "invalid_request_error",
                        format!(
                            "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
                            open.join(", ")
                        ),
                    );
                }
                if role == "assistant" {
                    open = m["tool_calls"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c["id"].as_str().map(str::to_owned))
                        .collect();
                }
            }
            None => return bad("invalid_request_error", format!("messages[{i}]: missing role")),
        }
    }
    Ok(())
}

/// What Anthropic's Messages API refuses with 400: no `max_tokens`, input schemas whose root is
/// not an object, and `tool_result` blocks that answer no `tool_use` of the message before.
pub fn check_anthropic(body: &Value) -> Result<(), Refusal> {
    let bad = |m: String| Err(("invalid_request_error", m));
    if body["max_tokens"].as_u64().is_none() {
        return bad("max_tokens: Field required".into());
    }
    for (i, tool) in body["tools"].as_array().into_iter().flatten().enumerate() {
        if let Some(p) = sqlmatic_tools::schema::check_anthropic(&tool["input_schema"]).first() {
            return bad(format!("tools.{i}.custom.input_schema: {p}"));
        }
    }
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    for (i, m) in messages.iter().enumerate() {
        for block in m["content"].as_array().into_iter().flatten() {
            if block["type"] != "tool_result" {
                continue;
            }
            let id = block["tool_use_id"].as_str().unwrap_or_default();
            let answered = i > 0
                && messages[i - 1]["content"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|b| b["type"] == "tool_use" && b["id"] == id);
            if !answered {
                return bad(format!(
                    "messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                ));
            }
        }
    }
    Ok(())
}
