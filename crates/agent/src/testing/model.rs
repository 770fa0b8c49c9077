//! An in-process scripted [`ChatModel`]: the agent loop tested without HTTP (as rig's tests
//! do), with the same [`Reply`] steps as the HTTP [`super::ScriptedLlm`], which stays for
//! protocol tests.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use sqlmatic_models::{ChatMessage, ToolCall, Usage};

use super::Reply;
use crate::llm::{BoxFuture, ChatModel, Deltas, LlmError, LlmRequest, LlmResponse};

/// Plays back [`Reply`]s: from a queue (one per call), or by the request's round (assistant
/// messages since the last user message), which keeps concurrent conversations independent.
/// Records every request it gets.
#[derive(Debug)]
pub struct ScriptedModel {
    script: Mutex<ModelScript>,
    requests: Mutex<Vec<LlmRequest>>,
}

#[derive(Debug)]
enum ModelScript {
    Queue(VecDeque<Reply>),
    ByRound(Vec<Reply>),
}

impl ScriptedModel {
    /// Answers each call with the next reply, in order.
    pub fn queue(replies: Vec<Reply>) -> Self {
        Self::with(ModelScript::Queue(replies.into()))
    }

    /// Answers each call with the reply of its round (assistant messages since the last question).
    pub fn by_round(replies: Vec<Reply>) -> Self {
        Self::with(ModelScript::ByRound(replies))
    }

    fn with(script: ModelScript) -> Self {
        Self { script: Mutex::new(script), requests: Mutex::default() }
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<LlmRequest> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn next(&self, request: &LlmRequest) -> Result<Reply, LlmError> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).push(request.clone());
        let mut script = self.script.lock().unwrap_or_else(PoisonError::into_inner);
        let reply = match &mut *script {
            ModelScript::Queue(q) => q.pop_front(),
            ModelScript::ByRound(steps) => steps.get(round(request)).or(steps.last()).cloned(),
        };
        reply.ok_or_else(|| LlmError::BadResponse("the script has no more replies".into()))
    }
}

fn round(request: &LlmRequest) -> usize {
    let last_user = request.messages.iter().rposition(|m| matches!(m, ChatMessage::User { .. }));
    request
        .messages
        .iter()
        .skip(last_user.map_or(0, |i| i + 1))
        .filter(|m| matches!(m, ChatMessage::Assistant { .. }))
        .count()
}

fn response(reply: Reply) -> LlmResponse {
    let tool_calls: Vec<ToolCall> = reply
        .tool_calls
        .into_iter()
        .map(|(id, name, arguments)| ToolCall { id, name, arguments })
        .collect();
    LlmResponse {
        finish_reason: Some(if tool_calls.is_empty() { "stop" } else { "tool_calls" }.into()),
        content: reply.text.concat(),
        tool_calls,
        usage: Usage { prompt_tokens: reply.usage.0, completion_tokens: reply.usage.1 },
    }
}

impl ChatModel for ScriptedModel {
    fn describe(&self) -> String {
        "scripted/in-process".into()
    }

    fn complete<'a>(
        &'a self,
        request: &'a LlmRequest,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        Box::pin(async move { self.next(request).map(response) })
    }

    fn stream<'a>(
        &'a self,
        request: &'a LlmRequest,
        deltas: &'a Deltas,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        Box::pin(async move {
            let reply = self.next(request)?;
            for piece in &reply.text {
                let _ = deltas.send(piece.clone());
            }
            Ok(response(reply))
        })
    }
}
