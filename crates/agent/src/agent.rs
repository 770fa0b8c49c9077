//! The agent: the tool-calling loop over a [`ChatModel`] and a [`Toolset`], and the
//! [`AgentService`] that builds (and caches) one agent per user from the configuration.
//!
//! The loop: history + tools → model; when the model asks for tools, run them (calls of one turn
//! concurrently, each within its time limit), append the results and ask again, until a final
//! answer or `max_steps`. Tool failures — SQL errors, blocked statements, bad or invalid
//! arguments, unknown tools, time limits — go back to the model as tool results so it can correct
//! itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlmatic_models::{ChatMessage, ErrorKind, ToolCall, Usage};
use sqlmatic_tools::{
    ModelBounds, Tool as _, ToolContext, ToolError, ToolErrorCode, ToolOutcome, ToolRegistry,
    Toolset,
};
use tokio::sync::mpsc::UnboundedSender;

use crate::llm::{ChatModel, LlmError, LlmRequest};
use crate::{AgentConfig, AgentOverrides};

/// The settings one user's agent runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSettings {
    /// The model's name at the provider.
    pub model: String,
    /// Sampling temperature.
    pub temperature: f32,
    /// Tokens per model call at most.
    pub max_tokens: u32,
    /// Model calls per turn at most.
    pub max_steps: u32,
    /// The system prompt, before the database's context.
    pub system_prompt: String,
    /// The tools it may call, by name.
    pub tools: Vec<String>,
    /// Databases this agent may use; `None` = all.
    pub databases: Option<Vec<String>>,
    /// Time limit of one tool call.
    pub tool_timeout: Duration,
    /// How long a proposed write waits for the user's decision.
    pub approval_timeout: Duration,
    /// Rows of a result the model sees at most.
    pub result_max_rows: usize,
    /// Bytes of a tool result the model sees at most.
    pub result_max_bytes: usize,
    /// Above this many tokens the prompt carries the most relevant tables only.
    pub schema_token_budget: usize,
    /// Tokens of business context per question (`agent.context_token_budget`).
    pub context_token_budget: usize,
}

impl AgentSettings {
    /// The settings for `user`: the `agent` section, then the user's overrides from the
    /// configuration, then those stored in the app database (`stored`, editable by admins).
    pub fn for_user(
        config: &AgentConfig,
        default_tools: &[String],
        user: &str,
        stored: Option<&AgentOverrides>,
    ) -> Self {
        let mut o = config.users.get(user).cloned().unwrap_or_default();
        if let Some(s) = stored {
            let s = s.clone();
            o = AgentOverrides {
                model: s.model.or(o.model),
                temperature: s.temperature.or(o.temperature),
                tools: s.tools.or(o.tools),
                databases: s.databases.or(o.databases),
                system_prompt: s.system_prompt.or(o.system_prompt),
            };
        }
        Self {
            model: o.model.unwrap_or_else(|| config.model.clone().unwrap_or_default()),
            temperature: o.temperature.unwrap_or(config.temperature),
            max_tokens: config.max_tokens,
            max_steps: config.max_steps,
            system_prompt: o.system_prompt.unwrap_or_else(|| config.system_prompt().to_owned()),
            tools: o.tools.unwrap_or_else(|| default_tools.to_vec()),
            databases: o.databases,
            tool_timeout: Duration::from_millis(config.tool_timeout_ms),
            approval_timeout: Duration::from_millis(config.approval_timeout_ms),
            result_max_rows: config.result_max_rows,
            result_max_bytes: config.result_max_bytes,
            schema_token_budget: config.schema_token_budget,
            context_token_budget: config.context_token_budget,
        }
    }

    /// True when this agent may use `database`.
    pub fn may_use(&self, database: &str) -> bool {
        self.databases.as_ref().is_none_or(|d| d.iter().any(|n| n == database))
    }
}

/// What happens during a turn, in order, for streaming and storage.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// Answer text as the model produces it.
    Delta(String),
    /// The model called a tool.
    ToolCall(CallMade),
    /// A tool answered: the call it answers and its typed outcome (shared, never re-serialized),
    /// or its failure.
    ToolResult {
        /// The call it answers.
        call: CallMade,
        /// What the tool produced, or why it failed.
        outcome: Result<Arc<ToolOutcome>, ToolError>,
        /// How long the call took.
        elapsed_ms: f64,
    },
    /// A complete message of the turn's transcript (assistant tool calls, tool results), for storage.
    Message(ChatMessage),
}

/// A tool call as the model made it, with its arguments parsed (the raw text when not JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct CallMade {
    /// The call's id, which its result repeats.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// Its arguments.
    pub arguments: Value,
}

/// A finished turn.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentOutcome {
    /// The answer's text.
    pub answer: String,
    /// Tokens used.
    pub usage: Usage,
    /// Model calls made.
    pub steps: u32,
}

/// Why a turn failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The model call failed.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// The model kept calling tools for this many steps.
    #[error("the agent did not reach an answer within {0} steps")]
    MaxSteps(u32),
    /// The user's agent may not use this database.
    #[error("the database `{0}` is not available to this agent")]
    DatabaseForbidden(String),
    /// The configured tools are not valid (an unknown name).
    #[error("tool configuration: {}", .0.model_message)]
    Tools(ToolError),
}

impl From<LlmError> for Box<AgentError> {
    fn from(e: LlmError) -> Self {
        Box::new(AgentError::Llm(e))
    }
}

impl AgentError {
    /// The class of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Llm(e) => e.kind(),
            Self::MaxSteps(_) => ErrorKind::Upstream,
            Self::DatabaseForbidden(_) => ErrorKind::Forbidden,
            Self::Tools(_) => ErrorKind::Internal,
        }
    }

    /// The registry code.
    pub fn code(&self) -> sqlmatic_models::Code {
        use sqlmatic_models::Code;
        match self {
            Self::Llm(e) => e.code(),
            Self::MaxSteps(_) => Code::MaxStepsReached,
            Self::DatabaseForbidden(_) => Code::DatabaseForbidden,
            Self::Tools(_) => Code::Internal,
        }
    }
}

/// One user's agent: a model, the toolset and the settings it runs with.
pub struct Agent {
    model: Arc<dyn ChatModel>,
    toolset: Toolset,
    settings: AgentSettings,
}

fn parse_arguments(call: &ToolCall) -> Result<Value, ToolError> {
    let text = if call.arguments.trim().is_empty() { "{}" } else { call.arguments.as_str() };
    serde_json::from_str(text).map_err(|e| {
        ToolError::invalid_args(format!(
            "the arguments of {} are not valid JSON ({e}); send a JSON object matching its schema",
            call.name
        ))
    })
}

fn log_tool(call: &ToolCall, result: &Result<ToolOutcome, ToolError>, elapsed: f64) {
    match result {
        Ok(_) => log::info!("tool {} ({}) ok in {elapsed:.1} ms", call.name, call.id),
        Err(e) => log::info!("tool {} ({}) failed in {elapsed:.1} ms: {e}", call.name, call.id),
    }
}

impl Agent {
    /// An agent over `model` with `toolset`.
    pub fn new(model: Arc<dyn ChatModel>, toolset: Toolset, settings: AgentSettings) -> Self {
        Self { model, toolset, settings }
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &AgentSettings {
        &self.settings
    }

    /// The model it asks.
    pub fn model(&self) -> &Arc<dyn ChatModel> {
        &self.model
    }

    /// A write waits for a person, so its limit includes the approval time.
    fn time_limit(&self, tool: &str) -> Duration {
        if tool == sqlmatic_tools::ExecuteWrite::NAME {
            self.settings.tool_timeout + self.settings.approval_timeout
        } else {
            self.settings.tool_timeout
        }
    }

    async fn run_tool(
        &self,
        call: &ToolCall,
        arguments: &Value,
        ctx: &ToolContext,
    ) -> (Result<ToolOutcome, ToolError>, f64) {
        let started = Instant::now();
        let limit = self.time_limit(&call.name);
        let result = match parse_arguments(call) {
            Err(e) => Err(e),
            Ok(args) => {
                match tokio::time::timeout(limit, self.toolset.call(&call.name, ctx, args)).await {
                    // the toolset recorded the call in the turn
                    Ok(r) => {
                        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
                        log_tool(call, &r, elapsed);
                        return (r, elapsed);
                    }
                    Err(_) => Err(ToolError::new(
                        ToolErrorCode::QueryTimeout,
                        format!("{} did not finish within {} ms", call.name, limit.as_millis()),
                    )),
                }
            }
        };
        // a call that never reached the end of the toolset is still part of the turn
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        ctx.turn.lock().unwrap_or_else(PoisonError::into_inner).record(
            self.toolset.kind_of(&call.name),
            arguments,
            &result,
            elapsed,
        );
        log_tool(call, &result, elapsed);
        (result, elapsed)
    }

    /// Runs one turn. `history` ends with the user's question; `system_context` is appended to
    /// the system prompt (the schema). Events go to `events` as they happen; `stream` chooses
    /// streaming model calls.
    pub async fn run(
        &self,
        system_context: &str,
        history: Vec<ChatMessage>,
        ctx: &ToolContext,
        events: &UnboundedSender<AgentEvent>,
        stream: bool,
    ) -> Result<AgentOutcome, AgentError> {
        let mut messages = Vec::with_capacity(history.len() + 8);
        messages.push(ChatMessage::system(format!(
            "{}\n\n{system_context}",
            self.settings.system_prompt
        )));
        messages.extend(history);
        // one request, its conversation growing in place: no copy of the prompt per step
        let mut request = LlmRequest {
            model: self.settings.model.clone(),
            messages,
            tools: self.toolset.definitions_for(&ctx.database),
            temperature: self.settings.temperature,
            max_tokens: self.settings.max_tokens,
        };
        let mut usage = Usage::default();
        for step in 1..=self.settings.max_steps {
            let response = if stream {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
                let forward = async {
                    while let Some(text) = rx.recv().await {
                        let _ = events.send(AgentEvent::Delta(text));
                    }
                };
                let call = async {
                    let r = self.model.stream(&request, &tx).await;
                    drop(tx);
                    r
                };
                let (r, ()) = tokio::join!(call, forward);
                r?
            } else {
                let r = self.model.complete(&request).await?;
                if !r.content.is_empty() {
                    let _ = events.send(AgentEvent::Delta(r.content.clone()));
                }
                r
            };
            usage += response.usage;
            let assistant = ChatMessage::Assistant {
                content: response.content.clone(),
                tool_calls: response.tool_calls.clone(),
            };
            if response.tool_calls.is_empty() {
                return Ok(AgentOutcome { answer: response.content, usage, steps: step });
            }
            let _ = events.send(AgentEvent::Message(assistant.clone()));
            request.messages.push(assistant);
            let calls: Vec<CallMade> = response
                .tool_calls
                .iter()
                .map(|c| CallMade {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    arguments: serde_json::from_str(&c.arguments)
                        .unwrap_or_else(|_| Value::String(c.arguments.clone())),
                })
                .collect();
            for call in &calls {
                let _ = events.send(AgentEvent::ToolCall(call.clone()));
            }
            let results = futures_util::future::join_all(
                response
                    .tool_calls
                    .iter()
                    .zip(&calls)
                    .map(|(c, m)| self.run_tool(c, &m.arguments, ctx)),
            )
            .await;
            let bounds = ModelBounds {
                max_rows: self.settings.result_max_rows,
                max_bytes: self.settings.result_max_bytes,
            };
            for (call, (result, elapsed_ms)) in calls.into_iter().zip(results) {
                let (content, is_error) = match &result {
                    Ok(outcome) => (outcome.for_model(bounds), false),
                    Err(e) => (e.to_model_json().to_string(), true),
                };
                let message = ChatMessage::Tool {
                    tool_call_id: call.id.clone(),
                    name: call.name.clone(),
                    content,
                    is_error,
                };
                let _ = events.send(AgentEvent::ToolResult {
                    call,
                    outcome: result.map(Arc::new),
                    elapsed_ms,
                });
                let _ = events.send(AgentEvent::Message(message.clone()));
                request.messages.push(message);
            }
        }
        Err(AgentError::MaxSteps(self.settings.max_steps))
    }
}

/// Per-user agents built from the configuration, cached, and rebuilt when a user's settings change.
pub struct AgentService {
    config: Mutex<AgentConfig>,
    default_tools: Vec<String>,
    registry: ToolRegistry,
    model: Option<Arc<dyn ChatModel>>,
    agents: Mutex<HashMap<String, Arc<Agent>>>,
}

impl AgentService {
    /// Agents over the provider `config` names (none configured: no model, and chat answers
    /// `llm_not_configured`).
    pub fn new(
        config: AgentConfig,
        registry: ToolRegistry,
        default_tools: Vec<String>,
    ) -> Result<Self, LlmError> {
        let model = crate::llm::build(&config)?;
        if let Some(m) = &model {
            log::info!(
                "agent: {} with model {}",
                m.describe(),
                config.model.as_deref().unwrap_or("")
            );
        }
        Ok(Self {
            config: Mutex::new(config),
            default_tools,
            registry,
            model,
            agents: Mutex::default(),
        })
    }

    /// An agent service over an explicit model (tests, embedding apps).
    pub fn with_model(
        config: AgentConfig,
        registry: ToolRegistry,
        default_tools: Vec<String>,
        model: Arc<dyn ChatModel>,
    ) -> Self {
        Self {
            config: Mutex::new(config),
            default_tools,
            registry,
            model: Some(model),
            agents: Mutex::default(),
        }
    }

    /// True when a model is configured.
    pub fn is_configured(&self) -> bool {
        self.model.is_some()
    }

    /// Replaces the configuration; agents whose settings changed are rebuilt on next use.
    pub fn update_config(&self, config: AgentConfig) {
        *self.config.lock().unwrap_or_else(PoisonError::into_inner) = config;
    }

    /// The settings `user`'s agent runs with (configuration, then stored overrides).
    pub fn settings_for(&self, user: &str, stored: Option<&AgentOverrides>) -> AgentSettings {
        let config = self.config.lock().unwrap_or_else(PoisonError::into_inner);
        AgentSettings::for_user(&config, &self.default_tools, user, stored)
    }

    /// The user's agent, or `None` when no model is configured. `stored` are the user's
    /// settings from the app database.
    pub fn agent_for(
        &self,
        user: &str,
        stored: Option<&AgentOverrides>,
    ) -> Result<Option<Arc<Agent>>, AgentError> {
        let Some(model) = &self.model else { return Ok(None) };
        let settings = self.settings_for(user, stored);
        let mut agents = self.agents.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(a) = agents.get(user).filter(|a| a.settings == settings) {
            return Ok(Some(a.clone()));
        }
        let toolset = self.registry.toolset(&settings.tools).map_err(AgentError::Tools)?;
        let agent = Arc::new(Agent::new(model.clone(), toolset, settings));
        log::info!("agent for `{user}` built (model {})", agent.settings.model);
        agents.insert(user.to_owned(), agent.clone());
        Ok(Some(agent))
    }

    /// The configured model, if any.
    pub fn model(&self) -> Option<&Arc<dyn ChatModel>> {
        self.model.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Silent;

    impl ChatModel for Silent {
        fn describe(&self) -> String {
            "silent".into()
        }

        fn complete<'a>(
            &'a self,
            _r: &'a LlmRequest,
        ) -> crate::llm::BoxFuture<'a, Result<crate::llm::LlmResponse, LlmError>> {
            Box::pin(async { Err(LlmError::Timeout) })
        }

        fn stream<'a>(
            &'a self,
            _r: &'a LlmRequest,
            _d: &'a crate::llm::Deltas,
        ) -> crate::llm::BoxFuture<'a, Result<crate::llm::LlmResponse, LlmError>> {
            Box::pin(async { Err(LlmError::Timeout) })
        }
    }

    #[test]
    fn agents_are_cached_per_user_and_rebuilt_when_settings_change() {
        let tools = vec!["list_tables".to_owned(), "execute_query".to_owned()];
        let mut config = AgentConfig { model: Some("m".into()), ..AgentConfig::default() };
        config.users.insert(
            "bob".into(),
            AgentOverrides {
                temperature: Some(0.7),
                databases: Some(vec!["demo".into()]),
                ..Default::default()
            },
        );
        let service = AgentService::with_model(
            config.clone(),
            ToolRegistry::builtin(),
            tools,
            Arc::new(Silent),
        );
        let a1 = service.agent_for("alice", None).unwrap().unwrap();
        let a2 = service.agent_for("alice", None).unwrap().unwrap();
        assert!(Arc::ptr_eq(&a1, &a2), "cached");
        let bob = service.agent_for("bob", None).unwrap().unwrap();
        assert_eq!(bob.settings().temperature, 0.7);
        assert!(bob.settings().may_use("demo") && !bob.settings().may_use("other"));
        assert!(a1.settings().may_use("other"));
        config.users.get_mut("bob").unwrap().temperature = Some(0.1);
        service.update_config(config);
        let bob2 = service.agent_for("bob", None).unwrap().unwrap();
        assert!(!Arc::ptr_eq(&bob, &bob2), "rebuilt after a change");
        assert_eq!(bob2.settings().temperature, 0.1);
        assert!(
            Arc::ptr_eq(&a1, &service.agent_for("alice", None).unwrap().unwrap()),
            "others untouched"
        );
    }

    /// The loop without HTTP: an in-process scripted model and a real fixture database.
    mod loop_ {
        use serde_json::json;
        use sqlmatic_tools::test_support::fixture_context;
        use sqlmatic_tools::{ToolKind, ToolOutcome};

        use super::*;
        use crate::testing::{Reply, ScriptedModel};

        const SHOP: &str =
            "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, country TEXT);
            INSERT INTO customers VALUES (1,'Ada','UK'),(2,'Linus','FI'),(3,'Grace','US');";

        fn agent(model: Arc<ScriptedModel>, max_steps: u32) -> Agent {
            let config =
                AgentConfig { model: Some("m".into()), max_steps, ..AgentConfig::default() };
            let tools: Vec<String> =
                ["list_tables", "execute_query", "show_chart"].map(String::from).to_vec();
            let toolset = ToolRegistry::builtin().toolset(&tools).unwrap();
            Agent::new(model, toolset, AgentSettings::for_user(&config, &tools, "local", None))
        }

        async fn run(
            agent: &Agent,
            ctx: &ToolContext,
        ) -> (Result<AgentOutcome, AgentError>, Vec<AgentEvent>) {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let history = vec![ChatMessage::User { content: "How many customers?".into() }];
            let outcome =
                agent.run("schema: customers(id, name, country)", history, ctx, &tx, true).await;
            drop(tx);
            let mut events = Vec::new();
            while let Some(e) = rx.recv().await {
                events.push(e);
            }
            (outcome, events)
        }

        #[tokio::test]
        async fn a_turn_calls_tools_records_them_and_answers() {
            let (_dir, ctx) = fixture_context(SHOP);
            let model = Arc::new(ScriptedModel::by_round(vec![
                Reply::tool("c1", "list_tables", json!({})),
                Reply::tools(&[
                    (
                        "c2",
                        "execute_query",
                        json!({"sql": "SELECT country, count(*) AS n FROM customers GROUP BY country"}),
                    ),
                    ("c3", "execute_query", json!({"sql": "SELECT nope FROM customers"})),
                ]),
                Reply::tool("c4", "show_chart", json!({"kind": "bar", "x": "country", "y": "n"})),
                Reply::text("There are 3 customers."),
            ]));
            let (outcome, events) = run(&agent(model.clone(), 10), &ctx).await;
            let outcome = outcome.unwrap();
            assert_eq!(outcome.answer, "There are 3 customers.");
            assert_eq!(outcome.steps, 4);
            // the turn's state: both queries (one failed), one chart of the successful one
            let turn = ctx.turn.lock().unwrap().clone();
            // (c2 and c3 run concurrently: they are recorded in the order they finish)
            assert_eq!(turn.queries.len(), 2);
            let by_sql = |fragment: &str| {
                turn.queries.iter().find(|q| q.sql.contains(fragment)).unwrap().clone()
            };
            assert_eq!(by_sql("GROUP BY").result.row_count, 3);
            assert_eq!(by_sql("nope").error.as_ref().unwrap().code, "sql_error");
            assert_eq!(turn.charts.len(), 1);
            assert_eq!(turn.charts[0].query, 0);
            // typed results, in call order, carrying their call
            let results: Vec<(&str, bool)> = events
                .iter()
                .filter_map(|e| match e {
                    AgentEvent::ToolResult { call, outcome, .. } => {
                        Some((call.id.as_str(), outcome.is_ok()))
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(results, [("c1", true), ("c2", true), ("c3", false), ("c4", true)]);
            assert!(events.iter().any(|e| matches!(e,
                AgentEvent::ToolResult { outcome: Ok(o), .. } if matches!(&**o, ToolOutcome::Query { result, .. } if result.row_count == 3))));
            // the model saw the failure as an error result (Anthropic's is_error), and the rows
            let requests = model.requests();
            assert_eq!(requests.len(), 4);
            let tool_messages: Vec<(&str, bool)> = requests[2]
                .messages
                .iter()
                .filter_map(|m| match m {
                    ChatMessage::Tool { tool_call_id, is_error, .. } => {
                        Some((tool_call_id.as_str(), *is_error))
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(tool_messages, [("c1", false), ("c2", false), ("c3", true)]);
            assert_eq!(agent(model, 10).toolset.kind_of("execute_query"), ToolKind::Query);
            // streamed text arrived as deltas
            let text: String = events
                .iter()
                .filter_map(|e| if let AgentEvent::Delta(t) = e { Some(t.as_str()) } else { None })
                .collect();
            assert_eq!(text, "There are 3 customers.");
        }

        #[tokio::test]
        async fn bad_arguments_and_unknown_tools_go_back_to_the_model_and_steps_are_bounded() {
            let (_dir, ctx) = fixture_context(SHOP);
            let model = Arc::new(ScriptedModel::by_round(vec![
                Reply::raw_tool("c1", "execute_query", "{not json"),
                Reply::tool("c2", "drop_everything", json!({})),
                Reply::tool("c3", "list_tables", json!({})),
            ]));
            let (outcome, events) = run(&agent(model.clone(), 3), &ctx).await;
            assert!(matches!(outcome, Err(AgentError::MaxSteps(3))), "{outcome:?}");
            let errors: Vec<String> = events
                .iter()
                .filter_map(|e| match e {
                    AgentEvent::ToolResult { outcome: Err(e), .. } => {
                        Some(e.code.as_str().to_owned())
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(errors, ["invalid_args", "unknown_tool"]);
            // a query whose arguments were not even JSON is still one of the turn's queries
            let turn = ctx.turn.lock().unwrap().clone();
            assert_eq!(turn.queries.len(), 1);
            assert_eq!(turn.queries[0].error.as_ref().unwrap().code, "invalid_args");
        }
    }

    #[test]
    fn unknown_tool_names_in_settings_are_an_error() {
        let config = AgentConfig { model: Some("m".into()), ..AgentConfig::default() };
        let service = AgentService::with_model(
            config,
            ToolRegistry::builtin(),
            vec!["nope".into()],
            Arc::new(Silent),
        );
        assert!(matches!(service.agent_for("x", None), Err(AgentError::Tools(_))));
    }
}
