//! One chat turn, end to end: validate, create the thread if needed (`thread_created`), refuse a
//! second turn on a busy thread, store the user's message before anything can fail, run the
//! agent, publish `message_stream` events to `thread:<id>` subscribers, store the turn's tool
//! calls and results under the answer message, and finish the answer as complete, error or
//! cancelled — never losing the question or a partial answer.

use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use serde_json::json;
use sqlmatic_agent::{Agent, AgentError, AgentEvent, CallMade, context};
use sqlmatic_events::{Event, MessageStream, StreamPart, Topic};
pub use sqlmatic_models::QueryRecord;
use sqlmatic_models::{
    ChartSpec, ChatMessage, Code, MessageId, MessageStatus, Principal, Role, Thread, ThreadId,
    ThreadTitle, Usage,
};
use sqlmatic_services::memory::{StoredHistory, Summarizer, tool_calls_json, tool_result_json};
use sqlmatic_services::{FinishedTurn, NewMessage};
use sqlmatic_tools::TurnState;
use tokio::sync::watch;

use crate::{Error, Result, Sqlmatic};

/// The longest question accepted, in characters.
pub const MAX_MESSAGE_CHARS: usize = 32_000;

/// A chat turn's input.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// The thread to continue (a new one when absent).
    pub thread_id: Option<ThreadId>,
    /// The question.
    pub message: String,
    /// The target database of a new thread (default: the user's default).
    pub database: Option<String>,
    /// Stream the model's answer (deltas); false asks for whole answers.
    pub stream: bool,
    /// Give the model the database's business context (verified queries, metrics, rules);
    /// `sqlmatic eval` turns it off to measure what the context is worth.
    pub business_context: bool,
}

impl ChatRequest {
    /// A question in a new thread, streamed.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            thread_id: None,
            message: message.into(),
            database: None,
            stream: true,
            business_context: true,
        }
    }
}

/// A finished turn.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatReply {
    /// The thread.
    pub thread_id: ThreadId,
    /// The answer message.
    pub message_id: MessageId,
    /// The question message.
    pub user_message_id: MessageId,
    /// The answer's text.
    pub answer: String,
    /// `complete` or `cancelled`.
    pub status: MessageStatus,
    /// The queries the agent ran, failed ones too.
    pub queries: Vec<QueryRecord>,
    /// Charts the agent asked for (`show_chart` specs; `query` indexes this turn's successful queries).
    pub charts: Vec<ChartSpec>,
    /// Tokens used.
    pub usage: Usage,
    /// Model calls made.
    pub steps: u32,
    /// The verified query the answer reused (its SQL ran as verified, or with only literal
    /// values changed), when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_query: Option<sqlmatic_models::VerifiedQueryRef>,
}

/// Removes a thread from the in-flight set when its turn ends, however it ends.
pub(crate) struct InFlight {
    core: Arc<Sqlmatic>,
    thread: ThreadId,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.core.inflight.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.thread);
    }
}

/// A turn whose question is stored and whose thread is reserved; [`Sqlmatic::run_turn`] runs it.
pub struct PreparedTurn {
    user: String,
    /// The thread (new or existing).
    pub thread_id: ThreadId,
    /// The target database the thread is about.
    pub database: String,
    /// The stored question.
    pub user_message_id: MessageId,
    /// The `pending` answer message.
    pub answer_id: MessageId,
    question: String,
    /// The thread's stored history, read with the question's transaction.
    history: StoredHistory,
    stream: bool,
    business_context: bool,
    agent: Arc<Agent>,
    cancel: watch::Receiver<bool>,
    _inflight: InFlight,
}

impl std::fmt::Debug for PreparedTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedTurn")
            .field("thread", &self.thread_id)
            .field("answer_id", &self.answer_id)
            .finish_non_exhaustive()
    }
}

enum Ending {
    Done(Result<sqlmatic_agent::AgentOutcome, AgentError>),
    Cancelled,
}

impl Sqlmatic {
    fn validate_message(message: &str) -> Result<&str> {
        let text = sqlmatic_models::text::trim_invisible(message);
        if text.is_empty() {
            return Err(Error::invalid(Code::EmptyMessage, "the message is empty; ask a question"));
        }
        if text.chars().count() > MAX_MESSAGE_CHARS {
            return Err(Error::invalid(
                Code::MessageTooLong,
                format!("the message is longer than {MAX_MESSAGE_CHARS} characters"),
            ));
        }
        Ok(text)
    }

    /// The one way a turn starts (REST and WebSocket): applies the user's chat rate limit and
    /// concurrent-chat cap, validates, resolves or creates the thread, checks access once,
    /// reserves the thread and stores the question.
    pub async fn start_chat(
        self: &Arc<Self>,
        principal: &Principal,
        request: ChatRequest,
    ) -> Result<PreparedTurn> {
        let user = principal.name.as_str();
        if self.config().chats_per_minute > 0
            && let Err(retry_after) = self.chat_rate.take(user)
        {
            return Err(Error::RateLimited { what: "chats", retry_after });
        }
        let text = Self::validate_message(&request.message)?.to_owned();
        let stored_settings = self.users.agent_settings(user).await.ok().flatten();
        let agent = self.agents.agent_for(user, stored_settings.as_ref()).map_err(Error::agent)?;
        // a new thread is created in the same transaction that stores its first question
        let (thread, new_thread, database) = match request.thread_id {
            Some(id) => {
                let thread = self.threads.get(user, id).await?;
                if let Some(db) = request.database.as_deref().filter(|db| *db != thread.database) {
                    return Err(Error::Conflict {
                        code: Code::DatabaseMismatch,
                        message: format!(
                            "thread {id} is about database `{}`, not `{db}`; start a new thread",
                            thread.database
                        ),
                    });
                }
                (thread.id, None, thread.database)
            }
            None => {
                let target = self.target_for(principal, request.database.as_deref())?;
                if let Some(a) = &agent
                    && !a.settings().may_use(target.name())
                {
                    return Err(Error::agent(AgentError::DatabaseForbidden(
                        target.name().to_owned(),
                    )));
                }
                let title = ThreadTitle::from_question(&text);
                let database = target.name().to_owned();
                (ThreadId::random(), Some((title, database.clone())), database)
            }
        };
        let Some(agent) = agent else {
            let begun = self.threads.begin_turn(user, thread, new_thread, text, false).await?;
            self.announce(user, begun.created);
            let stored = begun.question.id;
            log::info!("chat: stored message {stored} in thread {thread} (no LLM configured)");
            return Err(Error::LlmNotConfigured { thread_id: thread, message_id: stored });
        };
        if !agent.settings().may_use(&database) || !principal.may_use(&database) {
            return Err(Error::agent(AgentError::DatabaseForbidden(database)));
        }
        let (cancel_tx, cancel) = watch::channel(false);
        {
            let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
            if inflight.contains_key(&thread) {
                return Err(Error::ThreadBusy(thread));
            }
            let limit = self.config().max_concurrent_chats;
            let running = inflight.values().filter(|(owner, _)| owner == user).count();
            if limit > 0 && running >= limit {
                return Err(Error::TooManyChats(running));
            }
            inflight.insert(thread, (user.to_owned(), cancel_tx));
        }
        let guard = InFlight { core: self.clone(), thread };
        let begun = self.threads.begin_turn(user, thread, new_thread, text.clone(), true).await?;
        self.announce(user, begun.created);
        let stored = begun.question;
        let (answer, history) = begun.answer.ok_or_else(|| {
            Error::Service(sqlmatic_services::Error::NotFound { what: "message" })
        })?;
        log::info!("chat: turn in thread {thread} (question {}, answer {})", stored.id, answer.id);
        Ok(PreparedTurn {
            user: user.to_owned(),
            thread_id: thread,
            database,
            user_message_id: stored.id,
            answer_id: answer.id,
            question: text,
            history,
            stream: request.stream,
            business_context: request.business_context,
            agent,
            cancel,
            _inflight: guard,
        })
    }

    /// One chat turn: start it ([`Self::start_chat`]), run it to the end on its own task
    /// ([`Self::spawn_turn`]), and return the reply. The WebSocket's `chat` action takes the same
    /// two steps, subscribing to the thread in between.
    pub async fn chat(
        self: &Arc<Self>,
        user: &Principal,
        request: ChatRequest,
    ) -> Result<ChatReply> {
        let turn = self.start_chat(user, request).await?;
        self.spawn_turn(turn)
            .await
            .map_err(|e| Error::Service(sqlmatic_services::Error::Join(e)))?
    }

    /// Runs a prepared turn on its own task, so a client that goes away (or a WebSocket that
    /// keeps reading, e.g. a `cancel`) does not stop it. REST awaits the handle; WebSocket
    /// clients follow the turn's `message_stream` events instead.
    pub fn spawn_turn(
        self: &Arc<Self>,
        turn: PreparedTurn,
    ) -> tokio::task::JoinHandle<Result<ChatReply>> {
        let core = self.clone();
        tokio::spawn(async move { core.run_turn(turn).await })
    }

    /// Stops the answer in flight in `thread_id`.
    /// Cancels every running turn of these users (their credentials were revoked or rotated).
    pub(crate) fn cancel_turns_of(&self, users: &[String]) -> usize {
        let inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        let mut n = 0;
        for (thread, (owner, tx)) in inflight.iter() {
            if users.contains(owner) {
                let _ = tx.send(true);
                log::warn!(
                    "chat: turn in thread {thread} cancelled: {owner}'s credentials changed"
                );
                n += 1;
            }
        }
        n
    }

    /// Stops the answer running in `thread_id` (the owner's only).
    pub async fn cancel(&self, user: &Principal, thread_id: ThreadId) -> Result<()> {
        self.threads.get(&user.name, thread_id).await?;
        let inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        match inflight.get(&thread_id) {
            Some((_, tx)) => {
                let _ = tx.send(true);
                log::info!("chat: cancel requested in thread {thread_id}");
                Ok(())
            }
            None => Err(Error::NotRunning(thread_id)),
        }
    }

    /// Publishes `thread_created` for a thread a turn just created.
    fn announce(&self, user: &str, created: Option<Thread>) {
        if let Some(thread) = created {
            self.bus.publish(&Topic::UserThreads(user.to_owned()), &Event::ThreadCreated(thread));
        }
    }

    fn stream_event(&self, thread: ThreadId, message: MessageId, part: StreamPart) {
        self.bus.publish(
            &Topic::Thread(thread),
            &Event::MessageStream(MessageStream { thread_id: thread, message_id: message, part }),
        );
    }

    /// Runs a prepared turn to its end.
    pub async fn run_turn(self: &Arc<Self>, mut turn: PreparedTurn) -> Result<ChatReply> {
        let thread_id = turn.thread_id;
        let answer_id = turn.answer_id;
        let history = std::mem::take(&mut turn.history);
        let mut run = TurnRun {
            core: self.clone(),
            turn: &turn,
            partial: String::new(),
            state: Arc::default(),
            transcript: Vec::new(),
            offered: Vec::new(),
        };
        let ending = run.drive(history).await;
        // what the agent recorded, even when the turn was cancelled mid-way
        let TurnState { queries, charts } =
            std::mem::take(&mut *run.state.lock().unwrap_or_else(PoisonError::into_inner));
        let ran: Vec<String> =
            queries.iter().filter(|q| q.is_ok()).map(|q| q.sql.clone()).collect();
        let verified_query = sqlmatic_services::KnowledgeService::reused(&ran, &run.offered);
        let (status, answer, result) = match ending {
            Ok(Ending::Done(Ok(outcome))) => {
                (MessageStatus::Complete, outcome.answer.clone(), Ok(outcome))
            }
            Ok(Ending::Cancelled) => (MessageStatus::Cancelled, run.partial.clone(), Err(None)),
            Ok(Ending::Done(Err(e))) => {
                (MessageStatus::Error, run.partial.clone(), Err(Some(Error::agent(e))))
            }
            Err(e) => (MessageStatus::Error, run.partial.clone(), Err(Some(e))),
        };
        let transcript = std::mem::take(&mut run.transcript);
        if let Err(e) = self
            .threads
            .finish_turn(
                thread_id,
                answer_id,
                FinishedTurn {
                    status,
                    text: answer.clone(),
                    transcript,
                    verified_query: verified_query
                        .clone()
                        .filter(|_| status == MessageStatus::Complete),
                    queries: &queries,
                    charts: &charts,
                },
            )
            .await
        {
            log::error!("chat: cannot store the answer {answer_id} of thread {thread_id}: {e}");
        }
        match result {
            Ok(outcome) => {
                let usage = json!({"prompt_tokens": outcome.usage.prompt_tokens, "completion_tokens": outcome.usage.completion_tokens});
                self.stream_event(
                    thread_id,
                    answer_id,
                    StreamPart::Done {
                        answer: answer.clone(),
                        status: "complete".into(),
                        usage,
                        verified_query: verified_query.clone(),
                    },
                );
                log::info!(
                    "chat: thread {thread_id} answered in {} step(s), usage {:?}",
                    outcome.steps,
                    outcome.usage
                );
                Ok(ChatReply {
                    thread_id,
                    message_id: answer_id,
                    user_message_id: turn.user_message_id,
                    answer,
                    status,
                    queries,
                    charts,
                    usage: outcome.usage,
                    steps: outcome.steps,
                    verified_query,
                })
            }
            Err(None) => {
                self.stream_event(
                    thread_id,
                    answer_id,
                    StreamPart::Done {
                        answer: answer.clone(),
                        status: "cancelled".into(),
                        usage: json!({}),
                        verified_query: None,
                    },
                );
                log::info!(
                    "chat: thread {thread_id} cancelled with {} characters of answer",
                    answer.len()
                );
                Ok(ChatReply {
                    thread_id,
                    message_id: answer_id,
                    user_message_id: turn.user_message_id,
                    answer,
                    status,
                    queries,
                    charts,
                    usage: Usage::default(),
                    steps: 0,
                    verified_query: None,
                })
            }
            Err(Some(e)) => {
                log::warn!("chat: thread {thread_id} failed: {e}");
                self.stream_event(
                    thread_id,
                    answer_id,
                    StreamPart::Error { code: e.code().as_str().into(), message: e.to_string() },
                );
                Err(Error::Turn { source: Box::new(e), thread_id, message_id: answer_id })
            }
        }
    }
}

struct TurnRun<'a> {
    core: Arc<Sqlmatic>,
    turn: &'a PreparedTurn,
    partial: String,
    /// The turn's queries and charts, recorded by the agent's tool calls.
    state: Arc<Mutex<TurnState>>,
    /// The assistant's tool calls and the tool results, stored with the answer when the turn
    /// ends (one transaction per turn, not one per message).
    transcript: Vec<NewMessage>,
    /// The verified queries the prompt offered (to tell whether the answer reused one).
    offered: Vec<sqlmatic_models::VerifiedQuery>,
}

impl TurnRun<'_> {
    /// Runs the agent from the thread's stored history to the turn's end (or its cancel).
    async fn drive(&mut self, stored: StoredHistory) -> Result<Ending> {
        let turn = self.turn;
        let core = self.core.clone();
        let agent = &turn.agent;
        let summarizer =
            Summarizer { model: agent.model().as_ref(), model_name: &agent.settings().model };
        let history: Vec<ChatMessage> =
            core.memory.window(turn.thread_id, stored, Some(summarizer)).await?;
        let schema = core.structure_of(&turn.database).await?;
        let dialect = core.target(Some(&turn.database))?.dialect();
        let mut system_context = context::schema_context(
            &schema,
            dialect,
            &turn.question,
            agent.settings().schema_token_budget,
        );
        let (business, offered) = core
            .knowledge
            .prompt_section(
                &turn.database,
                &turn.question,
                if turn.business_context { agent.settings().context_token_budget } else { 0 },
            )
            .await?;
        if !business.is_empty() {
            system_context.push_str("\n\n");
            system_context.push_str(&business);
        }
        self.offered = offered;
        let mut ctx =
            core.tool_context(&turn.user, Some(&turn.database), Some(turn.thread_id), "agent")?;
        ctx.message_id = Some(turn.answer_id);
        ctx.turn = self.state.clone();
        ctx.approvals = Some(crate::approvals::gate(&core.approvals));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let run = agent.run(&system_context, history, &ctx, &tx, turn.stream);
        tokio::pin!(run);
        let mut cancel = turn.cancel.clone();
        let ending = loop {
            tokio::select! {
                biased;
                changed = cancel.changed() => {
                    if changed.is_err() || *cancel.borrow() { break Ending::Cancelled; }
                }
                Some(event) = rx.recv() => self.handle(event).await,
                result = &mut run => break Ending::Done(result),
            }
        };
        // events sent just before the end
        while let Ok(event) = rx.try_recv() {
            self.handle(event).await;
        }
        Ok(ending)
    }

    async fn handle(&mut self, event: AgentEvent) {
        let (core, thread, answer) = (&self.core, self.turn.thread_id, self.turn.answer_id);
        match event {
            AgentEvent::Delta(text) => {
                self.partial.push_str(&text);
                core.stream_event(thread, answer, StreamPart::Delta { text });
            }
            AgentEvent::ToolCall(CallMade { id, name, arguments }) => {
                core.stream_event(thread, answer, StreamPart::ToolCall { id, name, arguments });
            }
            AgentEvent::ToolResult { call, outcome, elapsed_ms } => {
                let done = outcome.as_deref().ok();
                if !done.is_some_and(|o| o.is_logged_by_database()) {
                    // queries are logged by the database with their SQL; other calls here
                    core.log_tool_call(
                        &self.turn.user,
                        &self.turn.database,
                        Some(thread),
                        "agent",
                        &call.name,
                        &call.arguments.to_string(),
                        done.is_some(),
                        elapsed_ms,
                    );
                }
                core.stream_event(
                    thread,
                    answer,
                    StreamPart::ToolResult {
                        id: call.id,
                        ok: done.is_some(),
                        row_count: done.and_then(|o| o.row_count()),
                        truncated: done.and_then(|o| o.truncated()),
                        elapsed_ms: Some(elapsed_ms),
                        error: outcome.as_ref().err().map(|e| e.payload()),
                        result: done.and_then(|o| o.for_client()),
                    },
                );
                if done.is_some_and(|o| o.refreshes_schema()) {
                    let database = &self.turn.database;
                    if let Err(e) = core.publish_structure(database).await {
                        log::warn!("chat: cannot publish database_update for `{database}`: {e}");
                    }
                }
            }
            AgentEvent::Message(message) => {
                let new = match message {
                    ChatMessage::Assistant { content, tool_calls } => NewMessage {
                        tool_calls: Some(tool_calls_json(&tool_calls)),
                        parent_id: Some(answer),
                        ..NewMessage::new(Role::Assistant, content, MessageStatus::Complete)
                    },
                    ChatMessage::Tool { tool_call_id, name, content, is_error } => NewMessage {
                        tool_calls: Some(tool_result_json(&tool_call_id, &name, is_error)),
                        parent_id: Some(answer),
                        ..NewMessage::new(Role::Tool, content, MessageStatus::Complete)
                    },
                    _ => return,
                };
                self.transcript.push(new);
            }
        }
    }
}
