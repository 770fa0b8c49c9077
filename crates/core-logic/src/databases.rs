//! The target databases as the core serves them: which a user may use, tool contexts,
//! readiness, structures, queries for the API, the query log and `database_update` events.

use std::collections::HashMap;
use std::sync::Arc;

use sqlmatic_events::{DatabaseUpdate, Event, StructureUpdate, SubscriberId, Topic};
use sqlmatic_models::{
    DatabaseSchema, DatabaseSummary, Principal, QueryParams, QueryResult, SchemaPatch, ThreadId,
};
use sqlmatic_services::{QueryLogEntry, Targets};
use sqlmatic_tools::{QueryEvent, QueryOutcome, TargetDatabase, ToolContext};

use crate::{Error, Result, Sqlmatic};

impl Sqlmatic {
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
        ctx.values = self.values.clone();
        Ok(ctx)
    }

    /// Start-up checks of every target (PostgreSQL: the role cannot write or escape, masked
    /// columns are unreadable). An unreachable target is only logged; an unsafe role is an
    /// error. Then loads each target's business context. Call once after [`Sqlmatic::open`].
    pub async fn check_targets(&self) -> Result<()> {
        self.targets.check().await?;
        // business contexts next: their verified queries run against the targets
        self.load_contexts().await;
        Ok(())
    }

    /// Readiness: the app database answers and every target can be read. The error names each
    /// unhealthy target and why; on success, how each target is open.
    pub async fn ready(&self) -> Result<Vec<(String, sqlmatic_tools::OpenMode)>> {
        self.app_db.ping().await?;
        let checked = futures_util::future::join_all(
            self.targets.all().map(|t| async move { (t.name().to_owned(), t.health().await) }),
        )
        .await;
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
        let target = self.target(Some(database))?;
        Ok(target.schema(&self.config.tools.limits()).await?)
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
        Ok(ctx.database.query(&sql, &params, &ctx.limits, &ctx.audit()).await?)
    }

    /// Queues a tool call that ran no SQL (the agent's, or a transport's such as MCP, with
    /// its `source`) for the query log; the log's writer stores it.
    #[allow(clippy::too_many_arguments)] // one log row's fields
    pub fn log_tool_call(
        &self,
        user: &str,
        database: &str,
        thread: Option<ThreadId>,
        source: &str,
        name: &str,
        arguments: &str,
        ok: bool,
        elapsed_ms: f64,
    ) {
        self.query_log.record(&QueryEvent {
            database,
            sql: &format!("-- tool {name} {arguments}"),
            user,
            thread_id: thread,
            source,
            outcome: if ok { QueryOutcome::Ok } else { QueryOutcome::Failed },
            rows: 0,
            elapsed_ms,
            error_code: None,
        });
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

    /// Tells `database`'s subscribers how its structure changed since they were last sent it
    /// (a `database_update` patch; nothing when it did not change). Returns how many were told.
    /// With no subscriber the structure is not even read.
    pub async fn publish_structure(&self, database: &str) -> Result<usize> {
        if self.bus.subscriber_count(&Topic::Database(Some(database.to_owned()))) == 0 {
            return Ok(0);
        }
        let mut published = self.published.lock().await;
        self.publish_structure_locked(&mut published, database).await.map(|(_, told)| told)
    }

    /// Brings `database`'s subscribers to its current structure and returns that structure.
    /// The caller holds `published`.
    async fn publish_structure_locked(
        &self,
        published: &mut HashMap<String, Arc<DatabaseSchema>>,
        database: &str,
    ) -> Result<(Arc<DatabaseSchema>, usize)> {
        let current = self.structure_of(database).await?;
        let last = published.insert(database.to_owned(), current.clone());
        if last.as_ref().is_some_and(|last| Arc::ptr_eq(last, &current) || **last == *current) {
            return Ok((current, 0));
        }
        let topic = Topic::Database(Some(database.to_owned()));
        if self.bus.subscriber_count(&topic) == 0 {
            return Ok((current, 0));
        }
        // subscribers that joined the bus directly (MCP's `resources/subscribe`) were sent no
        // structure: they get the whole one
        let structure = match last.and_then(|last| SchemaPatch::between(&last, &current)) {
            Some(patch) => StructureUpdate::Patch(patch),
            None => StructureUpdate::Schema((*current).clone()),
        };
        let told = self.bus.publish(&topic, &database_update(&current, structure));
        Ok((current, told))
    }

    /// Subscribes `subscriber` to `database`'s topic and sends it the whole structure, which
    /// the following patches start from.
    pub(crate) async fn subscribe_to_structure(
        &self,
        subscriber: SubscriberId,
        database: &str,
    ) -> Result<()> {
        let mut published = self.published.lock().await;
        // the others first learn what changed since their structure, so one structure is
        // current for everyone when the new subscriber joins
        let (current, _) = self.publish_structure_locked(&mut published, database).await?;
        self.bus.add_topics(subscriber, [Topic::Database(Some(database.to_owned()))]);
        let whole = StructureUpdate::Schema((*current).clone());
        self.bus.send_to(subscriber, &database_update(&current, whole));
        Ok(())
    }
}

fn database_update(schema: &DatabaseSchema, structure: StructureUpdate) -> Event {
    Event::DatabaseUpdate(Box::new(DatabaseUpdate {
        database: schema.database.clone(),
        schema_version: schema.schema_version,
        structure,
    }))
}
