//! The turn loop the benchmarks' floors share: what a developer writes by hand around an
//! OpenAI-compatible chat-completions endpoint, as `benches/python/agent_loop.py` does in Python.
//! No prompt building, no storage, no events: only the model calls and the tool calls.

use serde_json::{Value, json};

/// The three tools of the benchmarks' turn, declared as `agent_loop.py` declares them.
pub fn tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "list_tables", "description": "List tables.",
         "parameters": {"type": "object", "properties": {}, "additionalProperties": false}}},
        {"type": "function", "function": {"name": "get_schema", "description": "Columns of tables.",
         "parameters": {"type": "object", "properties": {"tables": {"type": "array", "items": {"type": "string"}}},
                        "required": ["tables"], "additionalProperties": false}}},
        {"type": "function", "function": {"name": "execute_query", "description": "Run one read-only SELECT.",
         "parameters": {"type": "object", "properties": {"sql": {"type": "string"}},
                        "required": ["sql"], "additionalProperties": false}}}
    ])
}

/// Asks `question` of the model at `base_url` (…/v1) with `tools`, answering each tool call
/// with `run_tool(name, arguments)`, until the model answers in text (at most 10 calls).
pub async fn turn(
    client: &reqwest::Client,
    base_url: &str,
    tools: &Value,
    question: &str,
    mut run_tool: impl FnMut(&str, &Value) -> Value,
) -> Result<String, String> {
    let mut messages = vec![
        json!({"role": "system", "content": "Answer questions about the SQLite database with the tools."}),
        json!({"role": "user", "content": question}),
    ];
    for _ in 0..10 {
        let response = client
            .post(format!("{base_url}/chat/completions"))
            .json(&json!({"model": "scripted", "messages": messages, "tools": tools}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("the model answered {}", response.status()));
        }
        let mut reply: Value = response.json().await.map_err(|e| e.to_string())?;
        let mut message = reply["choices"][0]["message"].take();
        let calls = message["tool_calls"].as_array().cloned().unwrap_or_default();
        if calls.is_empty() {
            return Ok(message["content"].as_str().unwrap_or_default().to_owned());
        }
        // as the openai SDK's model_dump(exclude_none=True) sends it back
        if let Some(m) = message.as_object_mut() {
            m.retain(|_, v| !v.is_null());
        }
        messages.push(message);
        for call in calls {
            let f = &call["function"];
            let arguments: Value =
                serde_json::from_str(f["arguments"].as_str().unwrap_or("{}")).unwrap_or(json!({}));
            let result = run_tool(f["name"].as_str().unwrap_or_default(), &arguments);
            messages.push(
                json!({"role": "tool", "tool_call_id": call["id"], "content": result.to_string()}),
            );
        }
    }
    Err("no answer within 10 model calls".into())
}
