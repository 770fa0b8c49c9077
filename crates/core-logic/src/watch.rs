//! Background tasks: schema-change detection, periodic metrics pushes, credential changes, and
//! business-context upkeep (context files reloaded when they change, value indexes rebuilt when
//! the data changes).
//!
//! Each runs until its [`BackgroundTasks`] is dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlmatic_events::{Event, Topic};

use crate::Sqlmatic;

/// Handles of the background tasks; dropping it stops them.
#[derive(Debug, Default)]
pub struct BackgroundTasks {
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        for h in &self.handles {
            h.abort();
        }
    }
}

/// Starts the schema watcher and the metrics publisher. Must be called inside a Tokio runtime.
pub fn start(core: &Arc<Sqlmatic>) -> BackgroundTasks {
    let poll = Duration::from_millis(core.config().database.schema_poll_interval_ms);
    let metrics_every = core.config().metrics_interval.max(Duration::from_millis(100));
    BackgroundTasks {
        handles: vec![
            tokio::spawn(watch_schemas(Arc::downgrade(core), poll)),
            tokio::spawn(publish_metrics(Arc::downgrade(core), metrics_every)),
            tokio::spawn(watch_credentials(Arc::downgrade(core), CREDENTIAL_POLL)),
            tokio::spawn(watch_knowledge(Arc::downgrade(core), poll)),
        ],
    }
}

/// Polls each target's schema fingerprint (SQLite's `PRAGMA schema_version`, a hash of
/// PostgreSQL's catalogue); when it changes, every subscriber of the
/// database's topic gets a `database_update` patch.
async fn watch_schemas(core: std::sync::Weak<Sqlmatic>, every: Duration) {
    let mut last: HashMap<String, i64> = HashMap::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    log::info!("schema watcher started (every {} ms)", every.as_millis());
    loop {
        tick.tick().await;
        let Some(core) = core.upgrade() else { break };
        let targets: Vec<_> = core.targets().all().cloned().collect();
        for target in targets {
            let name = target.name().to_owned();
            let version = match target.schema_version().await {
                Ok(v) => v,
                Err(e) => {
                    log::debug!("schema watcher: `{name}` unreadable: {e}");
                    continue;
                }
            };
            let changed = last.insert(name.clone(), version).is_some_and(|old| old != version);
            if changed {
                match core.publish_structure(&name).await {
                    Ok(0) => {}
                    Ok(n) => log::info!(
                        "schema of `{name}` changed (version {version}); told {n} subscriber(s)"
                    ),
                    Err(e) => {
                        log::warn!("schema watcher: cannot read the new schema of `{name}`: {e}")
                    }
                }
            }
        }
    }
    log::info!("schema watcher stopped");
}

/// How often the app database is asked for revoked or rotated credentials (also changed by
/// `sqlmatic user revoke|rotate` from another process): a socket or turn of such a user ends
/// within about this long.
const CREDENTIAL_POLL: Duration = Duration::from_millis(250);

/// Cancels the running turns of users whose credentials changed and tells their sockets.
async fn watch_credentials(core: std::sync::Weak<Sqlmatic>, every: Duration) {
    let mut last = match core.upgrade() {
        Some(core) => core.users().credential_changes(0).await.map(|(_, last)| last).unwrap_or(0),
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(core) = core.upgrade() else { break };
        match core.users().credential_changes(last).await {
            Ok((users, newest)) if !users.is_empty() => {
                last = newest;
                let cancelled = core.cancel_turns_of(&users);
                log::warn!(
                    "credentials changed for {}: {cancelled} turn(s) cancelled, sockets re-checked",
                    users.join(", ")
                );
                core.credentials.send_replace(Arc::from(users));
            }
            Ok(_) => {}
            Err(e) => log::debug!("credential watcher: {e}"),
        }
    }
}

/// Reloads a context file whose length or modification time changed, and rebuilds a target's
/// value index when its data stamp changed. The stamp is read at most every
/// `value_index.min_rebuild_interval_ms` (no rebuild could follow sooner), not every tick.
async fn watch_knowledge(core: std::sync::Weak<Sqlmatic>, every: Duration) {
    let mut checked: HashMap<String, tokio::time::Instant> = HashMap::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        tick.tick().await;
        let Some(core) = core.upgrade() else { break };
        let names: Vec<String> = core.targets().all().map(|t| t.name().to_owned()).collect();
        let min_rebuild =
            Duration::from_millis(core.config().database.value_index.min_rebuild_interval_ms);
        for name in names {
            if let Some(sqlmatic_services::ContextSource::File(path)) =
                core.targets().context_source(&name)
            {
                let stamp = crate::knowledge::file_stamp(&path).await;
                let loaded = core
                    .context_stamps
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(&name)
                    .copied();
                if loaded.is_some_and(|loaded| loaded != stamp) {
                    match core.load_context(&name).await {
                        Ok(report) => log::info!(
                            "context of `{name}` reloaded: {} issue(s)",
                            report.issues.len()
                        ),
                        Err(e) => log::warn!("context of `{name}` not reloaded: {e}"),
                    }
                }
            }
            if checked.get(&name).is_some_and(|at| at.elapsed() < min_rebuild) {
                continue;
            }
            match core.refresh_values(&name, false).await {
                Ok(_) => {
                    checked.insert(name.clone(), tokio::time::Instant::now());
                }
                // an unreachable target is tried again next tick
                Err(e) => log::debug!("value index of `{name}` not rebuilt: {e}"),
            }
        }
        if first {
            first = false;
            log::info!("context watcher started (every {} ms)", every.as_millis());
        }
    }
}

async fn publish_metrics(core: std::sync::Weak<Sqlmatic>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(core) = core.upgrade() else { break };
        if core.bus().subscriber_count(&Topic::Metrics) == 0 {
            continue;
        }
        let snapshot = core.metrics_snapshot().await;
        core.bus().publish(&Topic::Metrics, &Event::MetricsUpdate(snapshot));
    }
}
