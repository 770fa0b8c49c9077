//! The `Tool` trait (typed arguments, typed outcome), its object-safe twin `DynTool` (JSON
//! arguments in, [`ToolOutcome`] out), and the registry agents build their toolsets from by name.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlmatic_models::{MessageId, ThreadId};

use crate::{
    QueryAudit, QueryLimits, QueryObserver, TargetDatabase, ToolError, ToolErrorCode, ToolKind,
    ToolOutcome, TurnState,
};

/// What a tool call gets that the model must never choose: the database, limits, who is asking.
#[derive(Clone)]
pub struct ToolContext {
    /// The target database the tool works on.
    pub database: Arc<TargetDatabase>,
    /// Limits for every statement.
    pub limits: QueryLimits,
    /// The user the call runs for.
    pub user: String,
    /// The thread the call runs for, if any.
    pub thread_id: Option<ThreadId>,
    /// The answer message of the turn making the call.
    pub message_id: Option<MessageId>,
    /// Where the call comes from, for the query log (`agent`, `api`).
    pub source: &'static str,
    /// Who hears about each statement (query log, metrics).
    pub observer: Option<Arc<dyn QueryObserver>>,
    /// Who decides on proposed writes; without one, writes are refused.
    pub approvals: Option<Arc<dyn ApprovalGate>>,
    /// What this turn's calls produced so far (the agent records them; `show_chart` reads them).
    pub turn: Arc<std::sync::Mutex<TurnState>>,
    /// The value index `find_values` searches; without one, the tool says it is unavailable.
    pub values: Option<Arc<dyn ValueLookup>>,
}

/// Finds stored text values close to what a person typed (case, accents, typos, partial words),
/// from an index the application keeps; masked columns are never in it.
pub trait ValueLookup: Send + Sync {
    /// At most `limit` values of `database` like `text`, best first; `column` (`column` or
    /// `table.column`) narrows the search.
    fn find<'a>(
        &'a self,
        database: &'a str,
        column: Option<&'a str>,
        text: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<sqlmatic_models::ValueMatch>, ToolError>>;
}

/// A person's decision on a proposed write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// The owner approved this exact statement.
    Approved,
    /// The owner refused it.
    Rejected {
        /// Why, when they said.
        reason: Option<String>,
    },
    /// Nobody decided in time.
    Expired,
}

/// Asks the owner of a conversation to approve one exact statement.
pub trait ApprovalGate: Send + Sync {
    /// Asks; resolves when the owner decides or the proposal expires.
    fn request<'a>(&'a self, ctx: &'a ToolContext, sql: &'a str) -> BoxFuture<'a, Approval>;
}

impl ToolContext {
    /// A context for `database` with `limits`, for the local user, source `api`.
    pub fn new(database: Arc<TargetDatabase>, limits: QueryLimits) -> Self {
        Self {
            database,
            limits,
            user: "local".into(),
            thread_id: None,
            message_id: None,
            source: "api",
            observer: None,
            approvals: None,
            turn: Arc::default(),
            values: None,
        }
    }

    /// Who runs the statement and who hears about it.
    pub fn audit(&self) -> QueryAudit<'_> {
        QueryAudit {
            user: &self.user,
            thread_id: self.thread_id,
            source: self.source,
            observer: self.observer.as_deref(),
        }
    }
}

/// A tool the model can call by `NAME` with JSON arguments matching `parameters()`.
pub trait Tool: Send + Sync + 'static {
    /// The name models call it by.
    const NAME: &'static str;
    /// How its outcome is recorded in the turn (a failed `Query` is still a query of the turn).
    const KIND: ToolKind = ToolKind::Other;
    /// Its arguments, from JSON.
    type Args: DeserializeOwned + Send;
    /// What `call` returns before it becomes a [`ToolOutcome`].
    type Output: Send;
    /// Written for the model: what it does, when to use it, an example.
    fn description(&self) -> &str;
    /// JSON Schema of `Args`.
    fn parameters(&self) -> Value;
    /// Runs the tool.
    fn call(
        &self,
        ctx: &ToolContext,
        args: Self::Args,
    ) -> impl Future<Output = Result<Self::Output, ToolError>> + Send;
    /// The typed outcome the model, the clients and the turn see ([`ToolOutcome::other`] for
    /// outputs that are just JSON).
    fn outcome(output: Self::Output) -> Result<ToolOutcome, ToolError>;
}

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Object-safe view of a [`Tool`]: parses JSON arguments, returns the typed outcome.
pub trait DynTool: Send + Sync {
    /// The tool's name.
    fn name(&self) -> &'static str;
    /// How its outcome is recorded.
    fn kind(&self) -> ToolKind;
    /// Its description for the model.
    fn description(&self) -> &str;
    /// Its arguments' JSON Schema.
    fn parameters(&self) -> Value;
    /// Parses `args` and runs the tool.
    fn invoke<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutcome, ToolError>>;
}

impl<T: Tool> DynTool for T {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn kind(&self) -> ToolKind {
        T::KIND
    }

    fn description(&self) -> &str {
        Tool::description(self)
    }

    fn parameters(&self) -> Value {
        Tool::parameters(self)
    }

    fn invoke<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<ToolOutcome, ToolError>> {
        Box::pin(async move {
            // Models often send `null` or nothing for tools without arguments.
            let args = if args.is_null() { Value::Object(Default::default()) } else { args };
            let args: T::Args = serde_json::from_value(args).map_err(|e| {
                ToolError::invalid_args(format!("invalid arguments for {}: {e}", T::NAME))
            })?;
            T::outcome(self.call(ctx, args).await?)
        })
    }
}

/// Name, description and JSON Schema: what a provider advertises to the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolDefinition {
    /// The tool's name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// Its arguments' JSON Schema.
    pub parameters: Value,
}

/// Every tool the server knows, by name.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<&'static str, Arc<dyn DynTool>>,
}

impl ToolRegistry {
    /// The built-in SQLite tools.
    pub fn builtin() -> Self {
        let mut r = Self::default();
        r.register(crate::ListTables);
        r.register(crate::GetMetadata);
        r.register(crate::GetSchema);
        r.register(crate::ExecuteQuery);
        r.register(crate::ExecuteWrite);
        r.register(crate::ShowChart);
        r.register(crate::FindValues);
        r
    }

    /// Adds a tool under its name.
    pub fn register<T: Tool>(&mut self, tool: T) {
        self.tools.insert(T::NAME, Arc::new(tool));
    }

    /// The registered tools' names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.tools.keys().copied().collect()
    }

    /// A toolset of the named tools, in the order given; an unknown name is an error.
    pub fn toolset(&self, names: &[String]) -> Result<Toolset, ToolError> {
        let tools = names
            .iter()
            .map(|n| {
                self.tools.get(n.as_str()).cloned().ok_or_else(|| {
                    ToolError::new(
                        ToolErrorCode::UnknownTool,
                        format!("unknown tool `{n}`; tools are: {}", self.names().join(", ")),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Toolset::new(tools))
    }
}

/// The tools one agent may call.
#[derive(Clone, Default)]
pub struct Toolset {
    tools: Vec<Arc<dyn DynTool>>,
    /// Every tool's definition, built once: a turn offers them to each model call.
    definitions: Arc<[ToolDefinition]>,
    /// The same without `execute_write`, for read-only databases.
    read_only_definitions: Arc<[ToolDefinition]>,
}

impl Toolset {
    fn new(tools: Vec<Arc<dyn DynTool>>) -> Self {
        let definitions: Arc<[ToolDefinition]> = tools
            .iter()
            .map(|t| ToolDefinition {
                name: t.name().to_owned(),
                description: t.description().to_owned(),
                parameters: t.parameters(),
            })
            .collect();
        let read_only_definitions =
            definitions.iter().filter(|d| d.name != crate::ExecuteWrite::NAME).cloned().collect();
        Self { tools, definitions, read_only_definitions }
    }

    /// The definitions to offer for `database`: `execute_write` only where writes are possible.
    pub fn definitions_for(&self, database: &TargetDatabase) -> Arc<[ToolDefinition]> {
        if database.spec().read_only {
            self.read_only_definitions.clone()
        } else {
            self.definitions.clone()
        }
    }

    /// Every tool's definition, in order.
    pub fn definitions(&self) -> Arc<[ToolDefinition]> {
        self.definitions.clone()
    }

    /// True when the toolset has the named tool.
    pub fn contains(&self, name: &str) -> bool {
        self.tools.iter().any(|t| t.name() == name)
    }

    /// The kind of the named tool (`Other` for names it does not have).
    pub fn kind_of(&self, name: &str) -> ToolKind {
        self.tools.iter().find(|t| t.name() == name).map_or(ToolKind::Other, |t| t.kind())
    }

    /// Calls a tool by name and records the call in the turn's state (`ctx.turn`); an unknown
    /// name is a tool error the model can act on.
    pub async fn call(
        &self,
        name: &str,
        ctx: &ToolContext,
        args: Value,
    ) -> Result<ToolOutcome, ToolError> {
        let started = std::time::Instant::now();
        let tool = self.tools.iter().find(|t| t.name() == name);
        let kind = tool.map_or(ToolKind::Other, |t| t.kind());
        // a failed query is still one of the turn's queries: keep its SQL, not the whole arguments
        let sql = (kind == ToolKind::Query).then(|| serde_json::json!({"sql": args["sql"]}));
        let result = match tool {
            Some(tool) => tool.invoke(ctx, args).await,
            None => {
                let names: Vec<&str> = self.tools.iter().map(|t| t.name()).collect();
                Err(ToolError::new(
                    ToolErrorCode::UnknownTool,
                    format!("unknown tool `{name}`; available tools are: {}", names.join(", ")),
                ))
            }
        };
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        ctx.turn.lock().unwrap_or_else(std::sync::PoisonError::into_inner).record(
            kind,
            sql.as_ref().unwrap_or(&Value::Null),
            &result,
            elapsed_ms,
        );
        result
    }
}
