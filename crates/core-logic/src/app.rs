//! The application core: one value the server (or an embedding app) holds and calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlmatic_events::{DatabaseUpdate, Event, EventBus, SubscriberId, Topic};
use sqlmatic_models::{
    Code, DatabaseSchema, DatabaseSummary, Message, Page, Principal, QueryParams, QueryResult,
    Thread, ThreadId, ThreadTitle,
};
use sqlmatic_services::agent::AgentService;
use sqlmatic_services::llm::ChatModel;
use sqlmatic_services::{
    AgentConfig, AppDb, DatabaseConfig, MemoryConfig, MemoryService, QueryLog, QueryLogEntry,
    Targets, ThreadService, UserService,
};
use sqlmatic_tools::{
    QueryEvent, QueryObserver, QueryOutcome, TargetDatabase, ToolContext, ToolRegistry, ToolsConfig,
};
use tokio::sync::watch;

use crate::{Error, Metrics, Result};

/// Everything the core needs; the server composes it from each crate's config section.
#[derive(Debug, Clone, Default)]
pub struct CoreConfig {
    pub database: DatabaseConfig,
    pub tools: ToolsConfig,
    pub agent: AgentConfig,
    pub memory: MemoryConfig,
    /// Chats one user may have running at once (0: no limit).
    pub max_concurrent_chats: usize,
    /// Chat turns one user may start per minute, in bursts up to this many (0: no limit).
    pub chats_per_minute: u32,
    /// How often `metrics_update` is pushed to `metrics` subscribers.
    pub metrics_interval: Duration,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ThreadWithMessages {
    #[serde(flatten)]
    pub thread: Thread,
    pub messages: Vec<Message>,
}

/// Query observers in sequence: the query log, then metrics.
struct Observers(Vec<Arc<dyn QueryObserver>>);

impl QueryObserver for Observers {
    fn on_query(&self, event: &QueryEvent<'_>) {
        for o in &self.0 {
            o.on_query(event);
        }
    }
}

pub struct Sqlmatic {
    config: CoreConfig,
    app_db: AppDb,
    pub(crate) threads: ThreadService,
    pub(crate) users: UserService,
    pub(crate) approvals: Arc<crate::approvals::Approvals>,
    pub(crate) memory: MemoryService,
    pub(crate) agents: AgentService,
    /// Threads with a turn running: whose, and how to cancel it.
    pub(crate) inflight: Mutex<HashMap<ThreadId, (String, watch::Sender<bool>)>>,
    /// Chat turns started per user (`chats_per_minute`).
    pub(crate) chat_rate: crate::limits::Buckets,
    /// Users whose credentials changed last (revoked, rotated): sockets opened with an old
    /// token re-check it and close.
    pub(crate) credentials: watch::Sender<Arc<[String]>>,
    query_log: QueryLog,
    targets: Targets,
    tools: ToolRegistry,
    pub(crate) bus: EventBus,
    metrics: Arc<Metrics>,
    observer: Arc<dyn QueryObserver>,
}

impl std::fmt::Debug for Sqlmatic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlmatic").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Sqlmatic {
    /// Opens the app database (migrating it), the target databases (generating the demo one if
    /// needed) and the tools. Blocking: call it before the runtime or in `spawn_blocking`.
    pub fn open(config: CoreConfig) -> Result<Arc<Self>> {
        Self::open_inner(config, None)
    }

    /// As [`Self::open`], with the agent answering through `model` instead of the provider
    /// `config.agent` names: for apps that embed sqlmatic with their own [`ChatModel`].
    pub fn open_with_model(config: CoreConfig, model: Arc<dyn ChatModel>) -> Result<Arc<Self>> {
        Self::open_inner(config, Some(model))
    }

    fn open_inner(config: CoreConfig, model: Option<Arc<dyn ChatModel>>) -> Result<Arc<Self>> {
        let app_db = AppDb::open(&config.database)?;
        let targets = Targets::open(&config.database, &config.tools)?;
        let tools = ToolRegistry::builtin();
        tools.toolset(&config.tools.enabled)?;
        let agents = match model {
            Some(model) => AgentService::with_model(
                config.agent.clone(),
                tools.clone(),
                config.tools.enabled.clone(),
                model,
            ),
            None => {
                AgentService::new(config.agent.clone(), tools.clone(), config.tools.enabled.clone())
                    .map_err(|e| Error::agent(e.into()))?
            }
        };
        let threads = ThreadService::new(app_db.clone());
        let interrupted = threads.mark_interrupted_now()?;
        if interrupted > 0 {
            log::warn!(
                "{interrupted} answer(s) were in flight when sqlmatic last stopped; marked interrupted"
            );
        }
        let query_log = QueryLog::new(app_db.clone());
        let metrics = Arc::new(Metrics::new());
        let observer: Arc<dyn QueryObserver> =
            Arc::new(Observers(vec![Arc::new(query_log.clone()), metrics.clone()]));
        log::info!(
            "sqlmatic core ready: databases [{}], default `{}`, chat {}",
            targets.all().map(|t| t.name().to_owned()).collect::<Vec<_>>().join(", "),
            targets.default_name(),
            if config.agent.is_configured() { "configured" } else { "not configured" }
        );
        let bus = EventBus::new();
        Ok(Arc::new(Self {
            threads,
            users: UserService::new(app_db.clone()),
            approvals: Arc::new(crate::approvals::Approvals::new(
                bus.clone(),
                Duration::from_millis(config.agent.approval_timeout_ms),
            )),
            memory: MemoryService::new(app_db.clone(), config.memory.clone()),
            agents,
            inflight: Mutex::default(),
            chat_rate: crate::limits::Buckets::new(config.chats_per_minute),
            credentials: watch::Sender::new(Arc::from(Vec::new())),
            config,
            app_db,
            query_log,
            targets,
            tools,
            bus,
            metrics,
            observer,
        }))
    }

    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn tools(&self) -> &ToolRegistry {
        &self.tools
    }

    pub fn default_database(&self) -> &str {
        self.targets.default_name()
    }

    /// The databases `user` may use.
    pub fn databases(&self, user: &Principal) -> Vec<DatabaseSummary> {
        self.targets.summaries().into_iter().filter(|d| user.may_use(&d.name)).collect()
    }

    /// Any configured target, unchecked (internal use: watcher, readiness).
    pub fn target(&self, name: Option<&str>) -> Result<Arc<TargetDatabase>> {
        Ok(self.targets.get(name)?)
    }

    /// The target `user` asked for (or their default); a database not granted to them answers
    /// exactly like one that does not exist.
    pub fn target_for(&self, user: &Principal, name: Option<&str>) -> Result<Arc<TargetDatabase>> {
        let visible = || self.databases(user).into_iter().map(|d| d.name).collect::<Vec<_>>();
        let not_found = |name: &str| {
            Error::Service(sqlmatic_services::Error::UnknownDatabase {
                name: name.chars().take(100).collect(),
                known: visible().join(", "),
            })
        };
        match name {
            Some(n) if !user.may_use(n) => Err(not_found(n)),
            Some(n) => self.target(Some(n)),
            None if user.may_use(self.default_database()) => self.target(None),
            None => match visible().first() {
                Some(first) => self.target(Some(first)),
                None => Err(not_found(self.default_database())),
            },
        }
    }

    pub(crate) fn targets(&self) -> &Targets {
        &self.targets
    }

    /// A tool context for `user` on `database`: what the agent and `/api/query` run tools with.
    pub fn tool_context(
        &self,
        user: &str,
        database: Option<&str>,
        thread_id: Option<ThreadId>,
        source: &'static str,
    ) -> Result<ToolContext> {
        let mut ctx = ToolContext::new(self.target(database)?, self.config.tools.limits());
        ctx.user = user.to_owned();
        ctx.thread_id = thread_id;
        ctx.source = source;
        ctx.observer = Some(self.observer.clone());
        Ok(ctx)
    }

    /// Readiness: the app database answers and every target can be read. The error names each
    /// unhealthy target and why; on success, how each target is open.
    pub async fn ready(&self) -> Result<Vec<(String, sqlmatic_tools::OpenMode)>> {
        self.app_db.ping().await?;
        let targets: Vec<_> = self.targets.all().cloned().collect();
        let checked = tokio::task::spawn_blocking(move || {
            targets.iter().map(|t| (t.name().to_owned(), t.health())).collect::<Vec<_>>()
        })
        .await
        .map_err(|e| Error::Tool(sqlmatic_tools::ToolError::internal(e)))?;
        let mut healthy = Vec::with_capacity(checked.len());
        let mut failures: Vec<sqlmatic_tools::ToolError> = Vec::new();
        for (name, health) in checked {
            match health {
                Ok(mode) => healthy.push((name, mode)),
                Err(e) => failures.push(e),
            }
        }
        match failures.len() {
            0 => Ok(healthy),
            1 => Err(Error::Tool(failures.remove(0))),
            _ => {
                let message = failures
                    .iter()
                    .map(|e| e.model_message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                let mut first = failures.remove(0);
                first.model_message = message;
                Err(Error::Tool(first))
            }
        }
    }

    /// The structure of a database `user` may see, from cache unless it changed.
    pub async fn structure(
        &self,
        user: &Principal,
        database: Option<&str>,
    ) -> Result<Arc<DatabaseSchema>> {
        let target = self.target_for(user, database)?;
        self.structure_of(target.name()).await
    }

    pub(crate) async fn structure_of(&self, database: &str) -> Result<Arc<DatabaseSchema>> {
        let ctx = ToolContext::new(self.target(Some(database))?, self.config.tools.limits());
        Ok(ctx.blocking(|ctx| ctx.database.schema(&ctx.limits)).await?)
    }

    /// Runs one read-only query for a user of the REST API.
    pub async fn query(
        &self,
        user: &Principal,
        database: Option<&str>,
        sql: String,
        params: QueryParams,
    ) -> Result<QueryResult> {
        let target = self.target_for(user, database)?;
        let ctx = self.tool_context(&user.name, Some(target.name()), None, "api")?;
        Ok(ctx
            .blocking(move |ctx| ctx.database.query(&sql, &params, &ctx.limits, &ctx.audit()))
            .await?)
    }

    /// Queues a non-SQL tool call of the agent for the query log (the log's writer stores it).
    #[allow(clippy::too_many_arguments)] // one log row's fields
    pub(crate) fn log_tool_call(
        &self,
        user: &str,
        database: &str,
        thread: ThreadId,
        name: &str,
        arguments: &str,
        ok: bool,
        elapsed_ms: f64,
    ) {
        self.query_log.record(&QueryEvent {
            database,
            sql: &format!("-- tool {name} {arguments}"),
            user,
            thread_id: Some(thread),
            source: "agent",
            outcome: if ok { QueryOutcome::Ok } else { QueryOutcome::Failed },
            rows: 0,
            elapsed_ms,
            error_code: None,
        });
    }

    /// Chat turns running now.
    pub fn running_turns(&self) -> usize {
        self.inflight.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    /// Writes waiting for a decision.
    pub fn pending_approvals(&self) -> usize {
        self.approvals.pending_count()
    }

    /// The owner's decision on a proposed write (by its digest).
    pub fn decide_write(
        &self,
        user: &Principal,
        digest: &str,
        approve: bool,
        reason: Option<String>,
    ) -> Result<()> {
        let decision = if approve {
            sqlmatic_tools::Approval::Approved
        } else {
            sqlmatic_tools::Approval::Rejected { reason }
        };
        if self.approvals.decide(&user.name, digest, decision) {
            Ok(())
        } else {
            Err(Error::ApprovalNotFound)
        }
    }

    /// The query log: admins see everyone's (or `of` one user's), users their own.
    pub async fn query_log(
        &self,
        user: &Principal,
        of: Option<&str>,
        limit: u32,
    ) -> Result<Vec<QueryLogEntry>> {
        let filter = if user.admin { of } else { Some(user.name.as_str()) };
        Ok(self.query_log.recent(filter, limit.clamp(1, 1000)).await?)
    }

    pub fn users(&self) -> &UserService {
        &self.users
    }

    /// Tells of users whose credentials changed: a socket of such a user checks its token again.
    pub fn credential_changes(&self) -> watch::Receiver<Arc<[String]>> {
        self.credentials.subscribe()
    }

    // --- threads ---

    pub async fn list_threads(&self, user: &Principal, page: Page) -> Result<(Vec<Thread>, u64)> {
        Ok(self.threads.list(&user.name, page).await?)
    }

    pub async fn create_thread(
        &self,
        user: &Principal,
        title: Option<&str>,
        database: Option<&str>,
    ) -> Result<Thread> {
        let title = match title {
            Some(t) => ThreadTitle::parse(t).map_err(|m| Error::invalid(Code::InvalidTitle, m))?,
            None => ThreadTitle::from_question(""),
        };
        let target = self.target_for(user, database)?;
        let thread = self.threads.create(&user.name, title, target.name()).await?;
        self.bus
            .publish(&Topic::UserThreads(user.name.clone()), &Event::ThreadCreated(thread.clone()));
        Ok(thread)
    }

    pub async fn get_thread(&self, user: &Principal, id: ThreadId) -> Result<ThreadWithMessages> {
        let thread = self.threads.get(&user.name, id).await?;
        let messages = self.threads.messages(&user.name, id).await?;
        Ok(ThreadWithMessages { thread, messages })
    }

    pub async fn rename_thread(
        &self,
        user: &Principal,
        id: ThreadId,
        title: &str,
    ) -> Result<Thread> {
        let title = ThreadTitle::parse(title).map_err(|m| Error::invalid(Code::InvalidTitle, m))?;
        Ok(self.threads.rename(&user.name, id, title).await?)
    }

    pub async fn delete_thread(&self, user: &Principal, id: ThreadId) -> Result<()> {
        Ok(self.threads.delete(&user.name, id).await?)
    }

    // --- events ---

    /// The `database_update` event for a database's current structure.
    pub async fn database_update(&self, database: &str) -> Result<Event> {
        let schema = self.structure_of(database).await?;
        Ok(Event::DatabaseUpdate(Box::new(DatabaseUpdate {
            database: schema.database.clone(),
            schema_version: schema.schema_version,
            schema: (*schema).clone(),
        })))
    }

    /// Resolves a topic for `user`: `database` becomes the default database's topic; unknown
    /// databases and other users' threads are refused (as not found).
    pub async fn resolve_topic(&self, user: &Principal, topic: Topic) -> Result<Topic> {
        match topic {
            Topic::Database(name) => {
                Ok(Topic::Database(Some(self.target_for(user, name.as_deref())?.name().to_owned())))
            }
            Topic::Thread(id) => {
                self.threads.get(&user.name, id).await?;
                Ok(Topic::Thread(id))
            }
            Topic::Threads => Ok(Topic::UserThreads(user.name.clone())),
            Topic::Metrics if !user.admin => Err(Error::Forbidden("metrics are for admins".into())),
            other => Ok(other),
        }
    }

    /// Subscribes a bus subscriber to resolved topics, pushing the current schema for database
    /// topics right away.
    pub async fn subscribe(&self, subscriber: SubscriberId, topics: Vec<Topic>) -> Result<()> {
        self.bus.add_topics(subscriber, topics.iter().cloned());
        for topic in topics {
            if let Topic::Database(Some(name)) = topic {
                let event = self.database_update(&name).await?;
                self.bus.send_to(subscriber, &event);
            }
        }
        Ok(())
    }

    /// The metrics snapshot, with levels refreshed from the bus and the app database.
    pub async fn metrics_snapshot(&self) -> serde_json::Value {
        self.refresh_levels().await;
        self.metrics.snapshot()
    }

    pub async fn prometheus_text(&self) -> String {
        self.refresh_levels().await;
        self.metrics.prometheus_text()
    }

    async fn refresh_levels(&self) {
        let (threads, messages) = match self.threads.counts().await {
            Ok(c) => c,
            Err(e) => {
                log::warn!("metrics: cannot count threads: {e}");
                (0, 0)
            }
        };
        self.metrics.set_levels(self.bus.stats().events_sent, threads, messages);
    }
}
