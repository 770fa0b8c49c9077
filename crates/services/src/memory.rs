//! A thread's memory: the history the model sees on each turn, rebuilt from the app database
//! (so a thread continues exactly where it stopped, across restarts).
//!
//! The history fits in `memory.max_history_tokens` (estimated). When it overflows, the oldest
//! whole turns (tool calls kept with their results) are summarised by the LLM into a persisted
//! summary that keeps the SQL facts; later turns send summary + recent turns. If summarising
//! fails, the oldest turns are simply left out (deterministic trim).

use std::collections::HashSet;

use rusqlite::{OptionalExtension, params};
use sqlmatic_agent::MemoryConfig;
use sqlmatic_agent::llm::{ChatModel, LlmRequest};
use sqlmatic_models::{ChatMessage, MessageStatus, Role, ThreadId, ToolCall};

use crate::app_db::now;
use crate::{AppDb, Result};

const SUMMARY_PROMPT: &str = "You maintain the memory of a conversation between a user and a SQL assistant working on a \
SQLite database. Write a concise summary that lets the assistant continue the conversation. Keep the SQL facts: the \
tables and columns used, filters and parameters, the last SQL query run (verbatim), and the key figures of the answers. \
Drop pleasantries. Plain text, no preamble.";

/// A thread's history for the model, within a token budget, with persisted summaries.
#[derive(Clone, Debug)]
pub struct MemoryService {
    db: AppDb,
    config: MemoryConfig,
}

/// A stored message, as memory reads it.
#[derive(Debug, Clone)]
struct Row {
    id: i64,
    role: Role,
    content: String,
    tool_calls: Option<serde_json::Value>,
    status: MessageStatus,
    parent_id: Option<i64>,
}

/// A thread's stored summary and the messages after it, as [`read_history`] read them.
#[derive(Debug, Clone, Default)]
pub struct StoredHistory {
    summary: Option<String>,
    rows: Vec<Row>,
}

/// Reads what [`MemoryService::window`] needs of `thread`: its summary and the messages the
/// summary does not cover. Blocking; any connection (the writer's too, inside a transaction).
pub fn read_history(c: &rusqlite::Connection, thread: ThreadId) -> Result<StoredHistory> {
    let id = thread.to_string();
    let summary: Option<(String, i64)> = c
        .prepare_cached(
            "SELECT summary, through_message_id FROM memory_summaries WHERE thread_id = ?1",
        )?
        .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let through = summary.as_ref().map_or(0, |s| s.1);
    let mut stmt = c.prepare_cached(
        "SELECT id, role, content, tool_calls, status, parent_id FROM messages \
         WHERE thread_id = ?1 AND id > ?2 ORDER BY id",
    )?;
    let rows = stmt
        .query_map(params![id, through], |r| {
            let role: String = r.get(1)?;
            let status: String = r.get(4)?;
            let tool_calls: Option<String> = r.get(3)?;
            Ok(Row {
                id: r.get(0)?,
                role: Role::parse(&role).unwrap_or(Role::System),
                content: r.get(2)?,
                tool_calls: tool_calls.and_then(|t| serde_json::from_str(&t).ok()),
                status: MessageStatus::parse(&status).unwrap_or(MessageStatus::Error),
                parent_id: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(StoredHistory { summary: summary.map(|s| s.0), rows })
}

/// One user question and everything that answered it.
#[derive(Debug, Clone, Default)]
struct Turn {
    messages: Vec<ChatMessage>,
    last_id: i64,
}

impl Turn {
    fn tokens(&self) -> usize {
        self.messages.iter().map(ChatMessage::estimated_tokens).sum()
    }
}

/// How a stored intermediate message carries its tool data (`messages.tool_calls`).
pub fn tool_calls_json(calls: &[ToolCall]) -> serde_json::Value {
    serde_json::to_value(calls).unwrap_or_default()
}

/// `messages.tool_calls` of a tool-result row.
pub fn tool_result_json(tool_call_id: &str, name: &str, is_error: bool) -> serde_json::Value {
    if is_error {
        serde_json::json!({"tool_call_id": tool_call_id, "name": name, "is_error": true})
    } else {
        serde_json::json!({"tool_call_id": tool_call_id, "name": name})
    }
}

fn to_turns(rows: Vec<Row>) -> Vec<Turn> {
    let mut turns: Vec<Turn> = Vec::new();
    for row in rows.iter().filter(|r| r.parent_id.is_none()) {
        match row.role {
            Role::User => turns
                .push(Turn { messages: vec![ChatMessage::user(&row.content)], last_id: row.id }),
            Role::Assistant => {
                let Some(turn) = turns.last_mut() else { continue };
                for child in rows.iter().filter(|c| c.parent_id == Some(row.id)) {
                    turn.last_id = turn.last_id.max(child.id);
                    match child.role {
                        Role::Assistant => {
                            let calls: Vec<ToolCall> = child
                                .tool_calls
                                .clone()
                                .and_then(|v| serde_json::from_value(v).ok())
                                .unwrap_or_default();
                            turn.messages.push(ChatMessage::Assistant {
                                content: child.content.clone(),
                                tool_calls: calls,
                            });
                        }
                        Role::Tool => {
                            let meta = child.tool_calls.clone().unwrap_or_default();
                            turn.messages.push(ChatMessage::Tool {
                                tool_call_id: meta["tool_call_id"]
                                    .as_str()
                                    .unwrap_or_default()
                                    .to_owned(),
                                name: meta["name"].as_str().unwrap_or_default().to_owned(),
                                content: child.content.clone(),
                                is_error: meta["is_error"].as_bool().unwrap_or(false),
                            });
                        }
                        _ => {}
                    }
                }
                turn.last_id = turn.last_id.max(row.id);
                let content = match row.status {
                    MessageStatus::Complete => row.content.clone(),
                    MessageStatus::Pending if row.content.is_empty() => String::new(),
                    MessageStatus::Cancelled => {
                        format!("{} [answer cancelled by the user]", row.content)
                    }
                    MessageStatus::Error => format!("{} [answer failed]", row.content),
                    MessageStatus::Interrupted | MessageStatus::Pending => {
                        format!("{} [answer interrupted]", row.content)
                    }
                };
                if !content.trim().is_empty() {
                    turn.messages.push(ChatMessage::assistant(content.trim()));
                }
            }
            Role::System | Role::Tool => {}
        }
    }
    for turn in &mut turns {
        sanitize(&mut turn.messages);
    }
    turns
}

/// Providers reject tool calls without results and results without calls (a turn cut short
/// leaves both): drop the unmatched halves.
fn sanitize(messages: &mut Vec<ChatMessage>) {
    let answered: HashSet<String> = messages
        .iter()
        .filter_map(|m| {
            if let ChatMessage::Tool { tool_call_id, .. } = m {
                Some(tool_call_id.clone())
            } else {
                None
            }
        })
        .collect();
    let called: HashSet<String> = messages
        .iter()
        .flat_map(|m| {
            if let ChatMessage::Assistant { tool_calls, .. } = m {
                tool_calls.iter().map(|c| c.id.clone()).collect()
            } else {
                Vec::new()
            }
        })
        .collect();
    messages.retain_mut(|m| match m {
        ChatMessage::Assistant { content, tool_calls } => {
            tool_calls.retain(|c| answered.contains(&c.id));
            !content.is_empty() || !tool_calls.is_empty()
        }
        ChatMessage::Tool { tool_call_id, .. } => called.contains(tool_call_id),
        _ => true,
    });
}

fn transcript(turns: &[Turn]) -> String {
    let mut out = String::new();
    for m in turns.iter().flat_map(|t| &t.messages) {
        let line = match m {
            ChatMessage::User { content } => format!("User: {content}"),
            ChatMessage::Assistant { content, tool_calls } if tool_calls.is_empty() => {
                format!("Assistant: {content}")
            }
            ChatMessage::Assistant { tool_calls, .. } => tool_calls
                .iter()
                .map(|c| format!("Assistant called {} with {}", c.name, c.arguments))
                .collect::<Vec<_>>()
                .join("\n"),
            ChatMessage::Tool { name, content, .. } => {
                format!("Result of {name}: {}", content.chars().take(600).collect::<String>())
            }
            ChatMessage::System { content } => format!("Earlier summary: {content}"),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The summarising model and the model name to ask.
pub struct Summarizer<'a> {
    /// The model that writes summaries.
    pub model: &'a dyn ChatModel,
    /// Its name at the provider.
    pub model_name: &'a str,
}

impl MemoryService {
    /// Over the app database, with these settings.
    pub fn new(db: AppDb, config: MemoryConfig) -> Self {
        Self { db, config }
    }

    /// The history for the next model call in `thread`, ending with the newest user message.
    pub async fn history(
        &self,
        thread: ThreadId,
        summarizer: Option<Summarizer<'_>>,
    ) -> Result<Vec<ChatMessage>> {
        let stored = self.db.run(move |c| read_history(c, thread)).await?;
        self.window(thread, stored, summarizer).await
    }

    /// The history for the next model call from what [`read_history`] read (a turn reads it in
    /// the transaction that stores its question, saving a hop): the newest turns that fit
    /// `max_history_tokens`, older ones summarised (or dropped when summaries are off).
    pub async fn window(
        &self,
        thread: ThreadId,
        stored: StoredHistory,
        summarizer: Option<Summarizer<'_>>,
    ) -> Result<Vec<ChatMessage>> {
        let StoredHistory { summary, rows } = stored;
        let mut turns = to_turns(rows);
        let summary_tokens = summary.as_ref().map_or(0, |s| s.len() / 4 + 8);
        let mut total: usize = summary_tokens + turns.iter().map(Turn::tokens).sum::<usize>();
        let mut dropped = Vec::new();
        while total > self.config.max_history_tokens && turns.len() > 1 {
            let t = turns.remove(0);
            total -= t.tokens();
            dropped.push(t);
        }
        let mut summary = summary;
        if !dropped.is_empty() {
            log::info!(
                "memory: thread {thread} history over budget; {} older turn(s) leave the window",
                dropped.len()
            );
            match summarizer.filter(|_| self.config.summarize) {
                Some(s) => match self.summarize(s, summary.as_deref(), &dropped).await {
                    Ok(text) => {
                        let through = dropped.iter().map(|t| t.last_id).max().unwrap_or(0);
                        self.store_summary(thread, &text, through).await?;
                        log::info!("memory: thread {thread} summarised through message {through}");
                        summary = Some(text);
                    }
                    Err(e) => log::warn!(
                        "memory: summarising thread {thread} failed ({e}); trimming the oldest turns instead"
                    ),
                },
                None => log::info!("memory: thread {thread} trimmed (summaries off)"),
            }
        }
        let mut out = Vec::new();
        if let Some(s) = summary {
            out.push(ChatMessage::system(format!(
                "Summary of the earlier conversation in this thread:\n{s}"
            )));
        }
        out.extend(turns.into_iter().flat_map(|t| t.messages));
        Ok(out)
    }

    async fn summarize(
        &self,
        s: Summarizer<'_>,
        previous: Option<&str>,
        dropped: &[Turn],
    ) -> Result<String, sqlmatic_agent::llm::LlmError> {
        let mut text = String::new();
        if let Some(p) = previous {
            text.push_str(&format!("Summary so far:\n{p}\n\nConversation to add:\n"));
        }
        text.push_str(&transcript(dropped));
        let request = LlmRequest {
            model: s.model_name.to_owned(),
            messages: vec![ChatMessage::system(SUMMARY_PROMPT), ChatMessage::user(text)],
            tools: std::sync::Arc::from([]),
            temperature: 0.0,
            max_tokens: self.config.summary_max_tokens,
        };
        let response = s.model.complete(&request).await?;
        let summary = response.content.trim().to_owned();
        if summary.is_empty() {
            return Err(sqlmatic_agent::llm::LlmError::BadResponse("the summary is empty".into()));
        }
        Ok(summary)
    }

    async fn store_summary(&self, thread: ThreadId, summary: &str, through: i64) -> Result<()> {
        let (id, summary) = (thread.to_string(), summary.to_owned());
        self.db
            .run(move |c| {
                c.execute(
                    "INSERT INTO memory_summaries(thread_id, summary, through_message_id, updated_at) VALUES (?1,?2,?3,?4) \
                     ON CONFLICT(thread_id) DO UPDATE SET summary = excluded.summary, \
                     through_message_id = excluded.through_message_id, updated_at = excluded.updated_at",
                    params![id, summary, through, now()],
                )?;
                Ok(())
            })
            .await
    }

    /// The stored summary of a thread, if any: (summary, through message id).
    pub async fn summary(&self, thread: ThreadId) -> Result<Option<(String, i64)>> {
        let id = thread.to_string();
        self.db
            .run(move |c| {
                Ok(c.query_row(
                    "SELECT summary, through_message_id FROM memory_summaries WHERE thread_id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        id: i64,
        role: Role,
        content: &str,
        tool_calls: Option<serde_json::Value>,
        status: MessageStatus,
        parent: Option<i64>,
    ) -> Row {
        Row { id, role, content: content.into(), tool_calls, status, parent_id: parent }
    }

    #[test]
    fn turns_rebuild_tool_calls_before_the_answer_and_drop_dangling_calls() {
        let call = |id: &str| ToolCall {
            id: id.into(),
            name: "execute_query".into(),
            arguments: "{}".into(),
        };
        let rows = vec![
            row(1, Role::User, "q1", None, MessageStatus::Complete, None),
            row(2, Role::Assistant, "answer 1", None, MessageStatus::Complete, None),
            row(
                3,
                Role::Assistant,
                "",
                Some(tool_calls_json(&[call("a")])),
                MessageStatus::Complete,
                Some(2),
            ),
            row(
                4,
                Role::Tool,
                "{rows}",
                Some(tool_result_json("a", "execute_query", false)),
                MessageStatus::Complete,
                Some(2),
            ),
            row(5, Role::User, "q2", None, MessageStatus::Complete, None),
            row(6, Role::Assistant, "partial", None, MessageStatus::Interrupted, None),
            row(
                7,
                Role::Assistant,
                "",
                Some(tool_calls_json(&[call("b")])),
                MessageStatus::Complete,
                Some(6),
            ),
            row(8, Role::User, "q3", None, MessageStatus::Complete, None),
            row(9, Role::Assistant, "", None, MessageStatus::Pending, None),
        ];
        let turns = to_turns(rows);
        assert_eq!(turns.len(), 3);
        assert_eq!(turns[0].messages.len(), 4);
        assert!(
            matches!(&turns[0].messages[1], ChatMessage::Assistant { tool_calls, .. } if tool_calls.len() == 1)
        );
        assert!(
            matches!(&turns[0].messages[3], ChatMessage::Assistant { content, .. } if content == "answer 1")
        );
        assert_eq!(turns[0].last_id, 4);
        // the unanswered call "b" is dropped; the partial answer is marked
        assert_eq!(turns[1].messages.len(), 2);
        assert!(
            matches!(&turns[1].messages[1], ChatMessage::Assistant { content, tool_calls } if content.contains("interrupted") && tool_calls.is_empty())
        );
        assert_eq!(turns[2].messages, vec![ChatMessage::user("q3")]);
    }

    #[tokio::test]
    async fn memory_falls_back_to_trimming_when_summarising_fails() {
        use sqlmatic_agent::llm::openai::OpenAi;
        use sqlmatic_agent::testing::{ScriptedLlm, Step, provider_settings};
        use sqlmatic_models::ThreadTitle;

        use crate::{NewMessage, ThreadService};
        let dir = tempfile::tempdir().unwrap();
        let db = AppDb::open_path(&dir.path().join("app.db")).unwrap();
        let threads = ThreadService::new(db.clone());
        let t = threads.create("local", ThreadTitle::parse("t").unwrap(), "demo").await.unwrap();
        let add = async |role: Role, text: String| {
            let message = NewMessage::new(role, text, MessageStatus::Complete);
            threads.add_message("local", t.id, message).await.unwrap();
        };
        for i in 0..3 {
            add(Role::User, format!("question {i} {}", "x".repeat(400))).await;
            add(Role::Assistant, format!("answer {i}")).await;
        }
        add(Role::User, "latest?".into()).await;
        let memory = MemoryService::new(
            db,
            MemoryConfig { max_history_tokens: 300, ..MemoryConfig::default() },
        );
        let failing = ScriptedLlm::queue(vec![
            Step::Status {
                status: 500,
                retry_after: None,
                body: "{}".into()
            };
            3
        ])
        .await;
        let model = OpenAi::new(provider_settings(failing.openai_url())).unwrap();
        let history = memory
            .history(t.id, Some(Summarizer { model: &model, model_name: "m" }))
            .await
            .unwrap();
        let text = serde_json::to_string(&history).unwrap();
        assert!(text.contains("latest?"));
        assert!(!text.contains("question 0"), "the oldest turns were trimmed");
        assert!(!text.contains("Summary of the earlier"), "no summary when summarising failed");
        assert!(history.iter().map(ChatMessage::estimated_tokens).sum::<usize>() <= 300);
        assert!(memory.summary(t.id).await.unwrap().is_none());
    }
}
