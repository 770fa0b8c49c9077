//! Writes by approval: when the agent proposes a write, the thread's owner is asked (a
//! `message_stream` `approval_required` event with the SQL and its digest) and the tool waits.
//! A decision is bound to the digest of that exact statement in that thread, used once, and
//! expires; anything else — another user, another digest, a second use — is "not found".

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ring::digest::{SHA256, digest};
use sqlmatic_events::{Event, EventBus, MessageStream, StreamPart, Topic};
use sqlmatic_models::{MessageId, ThreadId};
use sqlmatic_tools::{Approval, ApprovalGate, ToolContext};
use tokio::sync::oneshot;

struct Pending {
    owner: String,
    decide: oneshot::Sender<Approval>,
}

/// Pending approvals, by digest.
pub struct Approvals {
    pending: Mutex<HashMap<String, Pending>>,
    bus: EventBus,
    timeout: Duration,
}

/// The digest a decision must name: SHA-256 of thread, database and statement.
pub fn write_digest(thread: Option<ThreadId>, database: &str, sql: &str) -> String {
    let input = format!("{}\n{database}\n{sql}", thread.map(|t| t.to_string()).unwrap_or_default());
    digest(&SHA256, input.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes a pending approval when its waiter goes away (decided, expired, or the turn cancelled).
struct Forget<'a> {
    approvals: &'a Approvals,
    digest: String,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.approvals.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.digest);
    }
}

impl Approvals {
    /// Pending writes that expire after `timeout`; decisions are published on `bus`.
    pub fn new(bus: EventBus, timeout: Duration) -> Self {
        Self { pending: Mutex::default(), bus, timeout }
    }

    /// Records `user`'s decision on `digest`; false when there is no such pending approval of theirs.
    pub fn decide(&self, user: &str, digest: &str, decision: Approval) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.get(digest).is_none_or(|p| p.owner != user) {
            return false;
        }
        let Some(p) = pending.remove(digest) else { return false };
        log::info!("write {digest} {:?} by {user}", decision);
        p.decide.send(decision).is_ok()
    }

    /// Proposals waiting for a decision.
    pub fn pending_count(&self) -> usize {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl ApprovalGate for Approvals {
    fn request<'a>(
        &'a self,
        ctx: &'a ToolContext,
        sql: &'a str,
    ) -> sqlmatic_tools::tool::BoxFuture<'a, Approval> {
        Box::pin(async move {
            let database = ctx.database.name().to_owned();
            let digest = write_digest(ctx.thread_id, &database, sql);
            let (tx, rx) = oneshot::channel();
            self.pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(digest.clone(), Pending { owner: ctx.user.clone(), decide: tx });
            let _forget = Forget { approvals: self, digest: digest.clone() };
            if let Some(thread) = ctx.thread_id {
                let event = Event::MessageStream(MessageStream {
                    thread_id: thread,
                    message_id: ctx.message_id.unwrap_or(MessageId(0)),
                    part: StreamPart::ApprovalRequired {
                        digest: digest.clone(),
                        sql: sql.to_owned(),
                        database,
                        expires_in_ms: self.timeout.as_millis().try_into().unwrap_or(u64::MAX),
                    },
                });
                self.bus.publish(&Topic::Thread(thread), &event);
            }
            log::info!("write {digest} awaits approval by {}: {sql}", ctx.user);
            match tokio::time::timeout(self.timeout, rx).await {
                Ok(Ok(decision)) => decision,
                _ => {
                    log::info!("write {digest} expired");
                    Approval::Expired
                }
            }
        })
    }
}

/// The gate as the tools see it.
pub fn gate(approvals: &Arc<Approvals>) -> Arc<dyn ApprovalGate> {
    approvals.clone()
}
