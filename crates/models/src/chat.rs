//! The conversation as an LLM sees it: provider-neutral messages, tool calls and token usage.
//! Providers translate these to and from their wire formats.

use serde::{Deserialize, Serialize};

/// A tool call the model asked for. `arguments` is the JSON text exactly as the model produced
/// it (it may be invalid: the agent reports that back to the model).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToolCall {
    /// The call's id, which the tool result repeats.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as the model sent them (JSON text, possibly invalid).
    pub arguments: String,
}

/// One message of an LLM conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ChatMessage {
    /// Instructions for the model.
    System {
        /// The text.
        content: String,
    },
    /// A person's message.
    User {
        /// The text.
        content: String,
    },
    /// The model's answer, with the tools it asked for.
    Assistant {
        /// The text (may be empty when it only calls tools).
        content: String,
        /// The tools it called, in order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    /// A tool's result for the call `tool_call_id`.
    Tool {
        /// The id of the call this answers.
        tool_call_id: String,
        /// The tool's name.
        name: String,
        /// What the model is shown of the result (or the error).
        content: String,
        /// The tool failed and `content` is its error (Anthropic's `is_error`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::System { content: content.into() }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::User { content: content.into() }
    }

    /// An assistant message without tool calls.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::Assistant { content: content.into(), tool_calls: Vec::new() }
    }

    /// Characters of text in the message, for token estimates.
    pub fn text_len(&self) -> usize {
        match self {
            Self::System { content } | Self::User { content } => content.len(),
            Self::Assistant { content, tool_calls } => {
                content.len()
                    + tool_calls
                        .iter()
                        .map(|c| c.name.len() + c.arguments.len() + 16)
                        .sum::<usize>()
            }
            Self::Tool { content, name, .. } => content.len() + name.len(),
        }
    }

    /// A rough token count (4 characters per token plus overhead), good enough for budgets.
    pub fn estimated_tokens(&self) -> usize {
        self.text_len() / 4 + 4
    }
}

/// Tokens a call used, as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    /// Tokens of the request.
    pub prompt_tokens: u64,
    /// Tokens of the answer.
    pub completion_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Self) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
    }
}
