//! The conversation as an LLM sees it: provider-neutral messages, tool calls and token usage.
//! Providers translate these to and from their wire formats.

use serde::{Deserialize, Serialize};

/// A tool call the model asked for. `arguments` is the JSON text exactly as the model produced
/// it (it may be invalid: the agent reports that back to the model).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// One message of an LLM conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ChatMessage {
    System {
        content: String,
    },
    User {
        content: String,
    },
    Assistant {
        content: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    /// A tool's result for the call `tool_call_id`.
    Tool {
        tool_call_id: String,
        name: String,
        content: String,
        /// The tool failed and `content` is its error (Anthropic's `is_error`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        Self::System { content: content.into() }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::User { content: content.into() }
    }

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
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Self) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
    }
}
