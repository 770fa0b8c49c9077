//! The application core: one value the server (or an embedding app) holds and calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlmatic_agent::llm::ChatModel;
use sqlmatic_agent::{AgentConfig, AgentService, MemoryConfig};
use sqlmatic_events::EventBus;
use sqlmatic_models::{Message, Principal, Thread, ThreadId};
use sqlmatic_services::{
    AppDb, DatabaseConfig, KnowledgeService, MemoryService, QueryLog, Targets, ThreadService,
    UserService,
};
use sqlmatic_tools::{QueryEvent, QueryObserver, ToolRegistry, ToolsConfig};
use tokio::sync::watch;

use crate::{Error, Metrics, Result};

/// Everything the core needs; the server composes it from each crate's config section.
#[derive(Debug, Clone, Default)]
pub struct CoreConfig {
    /// Sqlmatic's own database and the target databases.
    pub database: DatabaseConfig,
    /// Tools, the sandbox's limits.
    pub tools: ToolsConfig,
    /// The model and the agent.
    pub agent: AgentConfig,
    /// Conversation memory.
    pub memory: MemoryConfig,
    /// Chats one user may have running at once (0: no limit).
    pub max_concurrent_chats: usize,
    /// Chat turns one user may start per minute, in bursts up to this many (0: no limit).
    pub chats_per_minute: u32,
    /// How often `metrics_update` is pushed to `metrics` subscribers.
    pub metrics_interval: Duration,
}

/// A thread with its messages in order (intermediate tool messages included).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ThreadWithMessages {
    /// The thread.
    #[serde(flatten)]
    pub thread: Thread,
    /// Its messages.
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

/// The application core: one value the server (or an embedding app) holds and calls; every method takes the caller's `Principal`.
pub struct Sqlmatic {
    pub(crate) config: CoreConfig,
    pub(crate) app_db: AppDb,
    pub(crate) threads: ThreadService,
    pub(crate) users: UserService,
    pub(crate) approvals: Arc<crate::approvals::Approvals>,
    pub(crate) memory: MemoryService,
    pub(crate) knowledge: KnowledgeService,
    pub(crate) agents: AgentService,
    /// Threads with a turn running: whose, and how to cancel it.
    pub(crate) inflight: Mutex<HashMap<ThreadId, (String, watch::Sender<bool>)>>,
    /// Chat turns started per user (`chats_per_minute`).
    pub(crate) chat_rate: crate::limits::Buckets,
    /// Users whose credentials changed last (revoked, rotated): sockets opened with an old
    /// token re-check it and close.
    pub(crate) credentials: watch::Sender<Arc<[String]>>,
    pub(crate) query_log: QueryLog,
    pub(crate) targets: Targets,
    pub(crate) tools: ToolRegistry,
    pub(crate) bus: EventBus,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) observer: Arc<dyn QueryObserver>,
    /// What `find_values` searches (none when `database.value_index.enabled` is off); built
    /// once, handed to every tool context.
    pub(crate) values: Option<Arc<dyn sqlmatic_tools::ValueLookup>>,
    /// The stamp of each context file as it was when last loaded: the watcher reloads when the
    /// file's differs (a change between start-up and the watcher's first look included).
    pub(crate) context_stamps: Mutex<HashMap<String, crate::knowledge::FileStamp>>,
    /// The structure each database's subscribers were last sent, which the next
    /// `database_update` patches. Held while an update is published, so subscribers never see
    /// a patch to a structure they were not sent.
    pub(crate) published: tokio::sync::Mutex<HashMap<String, Arc<sqlmatic_models::DatabaseSchema>>>,
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
        let knowledge = KnowledgeService::new(app_db.clone());
        Ok(Arc::new(Self {
            threads,
            users: UserService::new(app_db.clone()),
            approvals: Arc::new(crate::approvals::Approvals::new(
                bus.clone(),
                Duration::from_millis(config.agent.approval_timeout_ms),
            )),
            memory: MemoryService::new(app_db.clone(), config.memory.clone()),
            knowledge: knowledge.clone(),
            values: config
                .database
                .value_index
                .enabled
                .then(|| Arc::new(knowledge.clone()) as Arc<dyn sqlmatic_tools::ValueLookup>),
            agents,
            inflight: Mutex::default(),
            context_stamps: Mutex::default(),
            published: tokio::sync::Mutex::default(),
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

    /// The configuration it runs with.
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// The event bus (subscribe to follow events).
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// Metrics (Prometheus registry and JSON snapshot).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The tools the agent can be given.
    pub fn tools(&self) -> &ToolRegistry {
        &self.tools
    }

    /// The database used when none is named.
    pub fn default_database(&self) -> &str {
        self.targets.default_name()
    }

    /// Chat turns running now.
    pub fn running_turns(&self) -> usize {
        self.inflight.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    /// The gate a transport gives a tool context whose writes a person must approve (decided
    /// by the owner with [`Sqlmatic::decide_write`], `POST /api/approvals/{digest}`).
    pub fn approval_gate(&self) -> Arc<dyn sqlmatic_tools::ApprovalGate> {
        crate::approvals::gate(&self.approvals)
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

    /// Users, tokens and agent settings.
    pub fn users(&self) -> &UserService {
        &self.users
    }

    /// Tells of users whose credentials changed: a socket of such a user checks its token again.
    pub fn credential_changes(&self) -> watch::Receiver<Arc<[String]>> {
        self.credentials.subscribe()
    }

    // --- threads ---

    // --- events ---

    /// The metrics snapshot, with levels refreshed from the bus and the app database.
    pub async fn metrics_snapshot(&self) -> serde_json::Value {
        self.refresh_levels().await;
        self.metrics.snapshot()
    }

    /// The metrics in Prometheus' text format.
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
