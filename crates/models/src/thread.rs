//! Threads and the messages in them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{MessageId, ThreadId};

/// A conversation about one target database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Thread {
    /// The thread's id.
    pub id: ThreadId,
    /// The user who owns it.
    pub owner: String,
    /// Its title.
    pub title: String,
    /// The target database it is about.
    pub database: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When a message was last added.
    pub updated_at: DateTime<Utc>,
    /// Messages in it (intermediate tool messages included).
    pub message_count: u64,
}

/// A validated thread title: trimmed, 1..=200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadTitle(String);

impl ThreadTitle {
    /// The longest title, in characters.
    pub const MAX_CHARS: usize = 200;

    /// Trims and checks a title; the error says why it is refused.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let cleaned: String =
            raw.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>();
        let trimmed = crate::text::trim_invisible(&cleaned);
        if trimmed.is_empty() {
            return Err("title must not be empty".into());
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(format!("title must be at most {} characters", Self::MAX_CHARS));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// A short title derived from a thread's first question: first line, at most 60 characters,
    /// cut at a word boundary.
    pub fn from_question(question: &str) -> Self {
        const LIMIT: usize = 60;
        let first_line = question.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
        let mut title = String::new();
        for word in first_line.split_whitespace() {
            let extra =
                if title.is_empty() { word.chars().count() } else { word.chars().count() + 1 };
            if title.chars().count() + extra > LIMIT {
                if title.is_empty() {
                    title = word.chars().take(LIMIT).collect();
                }
                title.push('…');
                break;
            }
            if !title.is_empty() {
                title.push(' ');
            }
            title.push_str(word);
        }
        Self::parse(&title).unwrap_or_else(|_| Self("New thread".into()))
    }

    /// The title.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The title, owned.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Instructions (not stored in threads today).
    System,
    /// A person's question.
    User,
    /// An answer (or, under an answer, the model's tool calls).
    Assistant,
    /// A tool's result, under its answer.
    Tool,
}

impl Role {
    /// The role's stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::Tool => "tool",
        }
    }

    /// The role of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "system" => Self::System,
            "user" => Self::User,
            "assistant" => Self::Assistant,
            "tool" => Self::Tool,
            _ => return None,
        })
    }
}

/// Where a message stands in its turn's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Stored and final.
    Complete,
    /// Stored, the turn it starts is still running or waiting for an LLM.
    Pending,
    /// The turn failed; the content may be a partial answer.
    Error,
    /// The user cancelled the turn; the content is the partial answer.
    Cancelled,
    /// The server stopped while the turn was running.
    Interrupted,
}

impl MessageStatus {
    /// The status's stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Pending => "pending",
            Self::Error => "error",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
        }
    }

    /// The status of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "complete" => Self::Complete,
            "pending" => Self::Pending,
            "error" => Self::Error,
            "cancelled" => Self::Cancelled,
            "interrupted" => Self::Interrupted,
            _ => return None,
        })
    }
}

/// One message in a thread, in the order it was stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    /// The message's id, increasing within the app database.
    pub id: MessageId,
    /// The thread it belongs to.
    pub thread_id: ThreadId,
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
    /// Tool calls an assistant message made, or the call a tool message answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub tool_calls: Option<serde_json::Value>,
    /// Whether it is complete.
    pub status: MessageStatus,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// The answer message this intermediate message (tool call or tool result) belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<MessageId>,
    /// An answer that reused a verified query says which.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_query: Option<crate::VerifiedQueryRef>,
    /// The thread owner's rating of this answer, if they gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<crate::Rating>,
    /// An answer's queries as its turn ran them (results as clients saw them, each stored up
    /// to a size bound: a cut result says `truncated`), failed ones too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<crate::QueryRecord>,
    /// An answer's charts (`show_chart` specs; `query` indexes its successful queries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<crate::ChartSpec>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_title(question: &str, expected: &str) {
        assert_eq!(ThreadTitle::from_question(question).as_str(), expected);
    }

    #[test]
    fn titles_come_from_the_first_line() {
        check_title("How many customers?\nper country", "How many customers?");
        check_title("   \n  top products ", "top products");
        check_title("", "New thread");
        check_title(
            "Which employees sold the most products in each region during the last quarter of 2024?",
            "Which employees sold the most products in each region during…",
        );
    }

    #[test]
    fn title_validation() {
        assert!(ThreadTitle::parse("  ").is_err());
        assert!(ThreadTitle::parse(&"x".repeat(201)).is_err());
        assert_eq!(ThreadTitle::parse(" a\tb ").map(ThreadTitle::into_inner), Ok("a b".into()));
    }
}
