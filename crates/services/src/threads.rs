//! Threads and their messages in the app database.

use std::str::FromStr;

use rusqlite::{OptionalExtension, Row, params};
use sqlmatic_models::{
    ChartSpec, Message, MessageId, MessageStatus, Page, QueryRecord, Rating, Role, Thread,
    ThreadId, ThreadTitle, VerifiedQueryRef,
};

use crate::app_db::now;
use crate::{AppDb, Error, Result};

/// Threads and their messages, owner-scoped: another owner's thread is "not found".
#[derive(Clone, Debug)]
pub struct ThreadService {
    db: AppDb,
}

/// How a turn ended, for [`ThreadService::finish_turn`].
#[derive(Debug, Clone)]
pub struct FinishedTurn<'a> {
    /// The answer's final status.
    pub status: MessageStatus,
    /// The answer's text (partial when it did not complete).
    pub text: String,
    /// The assistant's tool calls and the tool results, stored under the answer.
    pub transcript: Vec<NewMessage>,
    /// The verified query the answer reused.
    pub verified_query: Option<VerifiedQueryRef>,
    /// The queries the turn ran, as clients saw them (borrowed: the reply keeps them).
    pub queries: &'a [QueryRecord],
    /// The charts it asked for.
    pub charts: &'a [ChartSpec],
}

/// Result bytes stored per query at most: larger results keep their first rows and say
/// `truncated` (Run again in the web app fetches them whole).
const STORED_RESULT_BYTES: usize = 256 * 1024;

/// The turn's queries and charts as stored with the answer (JSON), each result within
/// [`STORED_RESULT_BYTES`]; only a result over the bound is copied (to cut it).
fn stored_turn(queries: &[QueryRecord], charts: &[ChartSpec]) -> Option<String> {
    if queries.is_empty() && charts.is_empty() {
        return None;
    }
    let bounded: Vec<std::borrow::Cow<'_, QueryRecord>> = queries
        .iter()
        .map(|q| {
            let mut bytes = 0;
            let keep = q
                .result
                .rows
                .iter()
                .take_while(|row| {
                    bytes += serde_json::to_string(row).map_or(0, |t| t.len() + 1);
                    bytes <= STORED_RESULT_BYTES
                })
                .count();
            if keep == q.result.rows.len() {
                return std::borrow::Cow::Borrowed(q);
            }
            let mut cut = q.clone();
            cut.result.rows.truncate(keep);
            cut.result.row_count = keep as u64;
            cut.result.truncated = true;
            std::borrow::Cow::Owned(cut)
        })
        .collect();
    // written straight to text: `json!` would copy every value into a `Value` first
    #[derive(serde::Serialize)]
    struct Stored<'a> {
        queries: Vec<std::borrow::Cow<'a, QueryRecord>>,
        charts: &'a [ChartSpec],
    }
    serde_json::to_string(&Stored { queries: bounded, charts }).ok()
}

/// A message to append to a thread.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
    /// Tool calls (assistant) or the call answered (tool).
    pub tool_calls: Option<serde_json::Value>,
    /// Whether it is complete.
    pub status: MessageStatus,
    /// For a turn's intermediate messages: the answer message they belong to.
    pub parent_id: Option<MessageId>,
}

impl NewMessage {
    /// A message with no tool calls and no parent.
    pub fn new(role: Role, content: impl Into<String>, status: MessageStatus) -> Self {
        Self { role, content: content.into(), tool_calls: None, status, parent_id: None }
    }
}

fn parse_time(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_default()
}

const THREAD_COLUMNS: &str = "t.id, t.owner, t.title, t.database, t.created_at, t.updated_at, \
     (SELECT count(*) FROM messages m WHERE m.thread_id = t.id)";

fn thread_from_row(r: &Row<'_>) -> rusqlite::Result<Thread> {
    let id: String = r.get(0)?;
    Ok(Thread {
        id: ThreadId::from_str(&id).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })?,
        owner: r.get(1)?,
        title: r.get(2)?,
        database: r.get(3)?,
        created_at: parse_time(&r.get::<_, String>(4)?),
        updated_at: parse_time(&r.get::<_, String>(5)?),
        message_count: r.get::<_, i64>(6)?.try_into().unwrap_or(0),
    })
}

/// What an answer's stored turn holds.
#[derive(serde::Deserialize, Default)]
struct StoredTurn {
    #[serde(default)]
    queries: Vec<QueryRecord>,
    #[serde(default)]
    charts: Vec<ChartSpec>,
}

fn message_from_row(r: &Row<'_>) -> rusqlite::Result<Message> {
    let turn: StoredTurn = r
        .get::<_, Option<String>>(10)?
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let thread_id: String = r.get(1)?;
    let role: String = r.get(2)?;
    let status: String = r.get(5)?;
    let tool_calls: Option<String> = r.get(4)?;
    Ok(Message {
        id: MessageId(r.get(0)?),
        thread_id: ThreadId::from_str(&thread_id).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
        })?,
        role: Role::parse(&role).unwrap_or(Role::System),
        content: r.get(3)?,
        tool_calls: tool_calls.and_then(|t| serde_json::from_str(&t).ok()),
        status: MessageStatus::parse(&status).unwrap_or(MessageStatus::Error),
        created_at: parse_time(&r.get::<_, String>(6)?),
        parent_id: r.get::<_, Option<i64>>(7)?.map(MessageId),
        verified_query: r.get::<_, Option<String>>(8)?.and_then(|t| serde_json::from_str(&t).ok()),
        feedback: r.get::<_, Option<String>>(9)?.as_deref().and_then(Rating::parse),
        queries: turn.queries,
        charts: turn.charts,
    })
}

/// What [`ThreadService::begin_turn`] stored and read.
#[derive(Debug)]
pub struct BegunTurn {
    /// The thread, when the turn created it.
    pub created: Option<Thread>,
    /// The stored question.
    pub question: Message,
    /// When an answer is to come: its `pending` message, and the thread's history as it
    /// stands after the question.
    pub answer: Option<(Message, crate::memory::StoredHistory)>,
}

impl ThreadService {
    /// Over the app database.
    pub fn new(db: AppDb) -> Self {
        Self { db }
    }

    /// A new empty thread of `owner` about `database`.
    pub async fn create(&self, owner: &str, title: ThreadTitle, database: &str) -> Result<Thread> {
        let (owner, database) = (owner.to_owned(), database.to_owned());
        self.db
            .write(move |c| {
                let id = ThreadId::random();
                let ts = now();
                c.execute(
                    "INSERT INTO threads(id, owner, title, database, created_at, updated_at) VALUES (?1,?2,?3,?4,?5,?5)",
                    params![id.to_string(), owner, title.as_str(), database, ts],
                )?;
                get_thread(c, &owner, id)
            })
            .await
    }

    /// The owner's threads, most recently active first.
    pub async fn list(&self, owner: &str, page: Page) -> Result<(Vec<Thread>, u64)> {
        let owner = owner.to_owned();
        self.db
            .run(move |c| {
                let total: i64 =
                    c.query_row("SELECT count(*) FROM threads WHERE owner = ?1", [&owner], |r| {
                        r.get(0)
                    })?;
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {THREAD_COLUMNS} FROM threads t WHERE t.owner = ?1 \
                     ORDER BY t.updated_at DESC, t.rowid DESC LIMIT ?2 OFFSET ?3"
                ))?;
                let threads = stmt
                    .query_map(params![owner, page.limit, page.offset], thread_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok((threads, total.try_into().unwrap_or(0)))
            })
            .await
    }

    /// A thread of this owner; another owner's thread is "not found" (no existence leak).
    pub async fn get(&self, owner: &str, id: ThreadId) -> Result<Thread> {
        let owner = owner.to_owned();
        self.db.run(move |c| get_thread(c, &owner, id)).await
    }

    /// The thread's messages in order, with the owner's rating of each answer.
    pub async fn messages(&self, owner: &str, id: ThreadId) -> Result<Vec<Message>> {
        let owner = owner.to_owned();
        self.db
            .run(move |c| {
                get_thread(c, &owner, id)?;
                let mut stmt = c.prepare_cached(
                    "SELECT id, thread_id, role, content, tool_calls, status, created_at, parent_id, \
                     verified_query, (SELECT rating FROM feedback f WHERE f.message_id = m.id \
                     AND f.user = ?2), turn FROM messages m WHERE thread_id = ?1 ORDER BY id",
                )?;
                let rows = stmt.query_map(params![id.to_string(), owner], message_from_row)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    /// Renames a thread (it counts as activity).
    pub async fn rename(&self, owner: &str, id: ThreadId, title: ThreadTitle) -> Result<Thread> {
        let owner = owner.to_owned();
        self.db
            .write(move |c| {
                let n = c.execute(
                    "UPDATE threads SET title = ?1, updated_at = ?2 WHERE id = ?3 AND owner = ?4",
                    params![title.as_str(), now(), id.to_string(), owner],
                )?;
                if n == 0 {
                    return Err(Error::NotFound { what: "thread" });
                }
                get_thread(c, &owner, id)
            })
            .await
    }

    /// Deletes a thread and its messages.
    pub async fn delete(&self, owner: &str, id: ThreadId) -> Result<()> {
        let owner = owner.to_owned();
        self.db
            .write(move |c| {
                let n = c.execute(
                    "DELETE FROM threads WHERE id = ?1 AND owner = ?2",
                    params![id.to_string(), owner],
                )?;
                if n == 0 { Err(Error::NotFound { what: "thread" }) } else { Ok(()) }
            })
            .await
    }

    /// Appends a message and touches the thread, in one transaction; returns the stored message.
    pub async fn add_message(
        &self,
        owner: &str,
        thread: ThreadId,
        message: NewMessage,
    ) -> Result<Message> {
        let owner = owner.to_owned();
        self.db
            .write(move |c| {
                // IMMEDIATE: take the write lock up front; a deferred read-then-write transaction
                // fails at once with SQLITE_BUSY when another connection wrote in between.
                owned_thread_exists(c, &owner, thread)?;
                let ts = now();
                let stored = insert_message(c, thread, &message, &ts)?;
                touch(c, thread, &ts)?;
                Ok(stored)
            })
            .await
    }

    /// Starts a turn in one transaction: stores the question and, when `with_answer`, the
    /// answer's `pending` placeholder, and touches the thread; with an answer to come it also
    /// reads the thread's history for the model (same hop, same transaction).
    /// `new_thread` (title, database) creates thread `thread` first, in the same transaction.
    pub async fn begin_turn(
        &self,
        owner: &str,
        thread: ThreadId,
        new_thread: Option<(ThreadTitle, String)>,
        question: String,
        with_answer: bool,
    ) -> Result<BegunTurn> {
        let owner = owner.to_owned();
        self.db
            .write(move |c| {
                let ts = now();
                match &new_thread {
                    Some((title, database)) => {
                        c.prepare_cached(
                            "INSERT INTO threads(id, owner, title, database, created_at, updated_at) VALUES (?1,?2,?3,?4,?5,?5)",
                        )?
                        .execute(params![thread.to_string(), owner, title.as_str(), database, ts])?;
                    }
                    None => owned_thread_exists(c, &owner, thread)?,
                }
                let q = NewMessage::new(Role::User, question, MessageStatus::Complete);
                let question = insert_message(c, thread, &q, &ts)?;
                let pending = if with_answer {
                    let a = NewMessage::new(Role::Assistant, "", MessageStatus::Pending);
                    Some(insert_message(c, thread, &a, &ts)?)
                } else {
                    None
                };
                touch(c, thread, &ts)?;
                // a new thread holds what this transaction wrote: no need to read it back
                let created = new_thread.map(|(title, database)| Thread {
                    id: thread,
                    owner,
                    title: title.as_str().to_owned(),
                    database,
                    created_at: question.created_at,
                    updated_at: question.created_at,
                    message_count: 1 + u64::from(pending.is_some()),
                });
                let answer = match pending {
                    Some(a) => Some((a, crate::memory::read_history(c, thread)?)),
                    None => None,
                };
                Ok(BegunTurn { created, question, answer })
            })
            .await
    }

    /// Ends a turn in one transaction: stores its transcript (the assistant's tool calls and
    /// the tool results, under the answer), and the answer's final status and text with what
    /// the turn produced (queries, charts, the verified query it reused).
    pub async fn finish_turn(
        &self,
        thread: ThreadId,
        answer: MessageId,
        turn: FinishedTurn<'_>,
    ) -> Result<()> {
        let FinishedTurn { status, text, transcript, verified_query, queries, charts } = turn;
        let verified_query = verified_query.and_then(|v| serde_json::to_string(&v).ok());
        let produced = stored_turn(queries, charts);
        self.db
            .write(move |c| {
                let ts = now();
                for message in &transcript {
                    insert_message(c, thread, message, &ts)?;
                }
                let n = c
                    .prepare_cached(
                        "UPDATE messages SET status = ?1, content = ?2, verified_query = ?3, turn = ?4 \
                         WHERE id = ?5",
                    )?
                    .execute(params![status.as_str(), text, verified_query, produced, answer.0])?;
                if n == 0 {
                    return Err(Error::NotFound { what: "message" });
                }
                touch(c, thread, &ts)?;
                Ok(())
            })
            .await
    }

    /// Changes a message's status (and optionally its content), e.g. pending → complete.
    pub async fn set_message_status(
        &self,
        id: MessageId,
        status: MessageStatus,
        content: Option<String>,
    ) -> Result<()> {
        self.db
            .write(move |c| {
                let n = c.execute(
                    "UPDATE messages SET status = ?1, content = coalesce(?2, content) WHERE id = ?3",
                    params![status.as_str(), content, id.0],
                )?;
                if n == 0 { Err(Error::NotFound { what: "message" }) } else { Ok(()) }
            })
            .await
    }

    /// Marks messages left `pending` by a previous run (the server stopped mid-turn) as
    /// `interrupted`; returns how many. Run once at start-up.
    pub async fn mark_interrupted(&self) -> Result<usize> {
        self.db
            .write(|c| {
                Ok(c.execute(
                    "UPDATE messages SET status = 'interrupted' WHERE status = 'pending'",
                    [],
                )?)
            })
            .await
    }

    /// [`ThreadService::mark_interrupted`] for start-up code that is not async yet.
    pub fn mark_interrupted_now(&self) -> Result<usize> {
        Ok(self
            .db
            .conn()?
            .execute("UPDATE messages SET status = 'interrupted' WHERE status = 'pending'", [])?)
    }

    /// Counts for metrics: (threads, messages).
    pub async fn counts(&self) -> Result<(u64, u64)> {
        self.db
            .run(|c| {
                let t: i64 = c.query_row("SELECT count(*) FROM threads", [], |r| r.get(0))?;
                let m: i64 = c.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))?;
                Ok((t.try_into().unwrap_or(0), m.try_into().unwrap_or(0)))
            })
            .await
    }
}

/// `NotFound` unless `owner` has thread `id` (cheaper than reading it whole).
fn owned_thread_exists(c: &rusqlite::Connection, owner: &str, id: ThreadId) -> Result<()> {
    c.prepare_cached("SELECT 1 FROM threads WHERE id = ?1 AND owner = ?2")?
        .query_row(params![id.to_string(), owner], |_| Ok(()))
        .optional()?
        .ok_or(Error::NotFound { what: "thread" })
}

fn insert_message(
    c: &rusqlite::Connection,
    thread: ThreadId,
    m: &NewMessage,
    ts: &str,
) -> Result<Message> {
    let tool_calls = m.tool_calls.as_ref().map(serde_json::Value::to_string);
    c.prepare_cached(
        "INSERT INTO messages(thread_id, role, content, tool_calls, status, created_at, parent_id) VALUES (?1,?2,?3,?4,?5,?6,?7)",
    )?
    .execute(params![
        thread.to_string(),
        m.role.as_str(),
        m.content,
        tool_calls,
        m.status.as_str(),
        ts,
        m.parent_id.map(|p| p.0)
    ])?;
    Ok(Message {
        id: MessageId(c.last_insert_rowid()),
        thread_id: thread,
        role: m.role,
        content: m.content.clone(),
        tool_calls: m.tool_calls.clone(),
        status: m.status,
        created_at: parse_time(ts),
        parent_id: m.parent_id,
        verified_query: None,
        feedback: None,
        queries: Vec::new(),
        charts: Vec::new(),
    })
}

fn touch(c: &rusqlite::Connection, thread: ThreadId, ts: &str) -> Result<()> {
    c.prepare_cached("UPDATE threads SET updated_at = ?1 WHERE id = ?2")?
        .execute(params![ts, thread.to_string()])?;
    Ok(())
}

fn get_thread(c: &rusqlite::Connection, owner: &str, id: ThreadId) -> Result<Thread> {
    c.query_row(
        &format!("SELECT {THREAD_COLUMNS} FROM threads t WHERE t.id = ?1 AND t.owner = ?2"),
        params![id.to_string(), owner],
        thread_from_row,
    )
    .optional()?
    .ok_or(Error::NotFound { what: "thread" })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn service() -> (tempfile::TempDir, ThreadService) {
        let dir = tempfile::tempdir().unwrap();
        let db = AppDb::open_path(&dir.path().join("app.db")).unwrap();
        (dir, ThreadService::new(db))
    }

    fn title(s: &str) -> ThreadTitle {
        ThreadTitle::parse(s).unwrap()
    }

    #[test]
    fn a_stored_result_keeps_its_first_rows_within_the_bound() {
        let big = QueryRecord::succeeded(
            "SELECT x FROM t".into(),
            sqlmatic_models::QueryResult {
                rows: (0..2000)
                    .map(|i| vec![serde_json::json!("x".repeat(500)), i.into()])
                    .collect(),
                row_count: 2000,
                ..Default::default()
            },
        );
        let small = QueryRecord::succeeded("SELECT 1".into(), Default::default());
        let stored: serde_json::Value =
            serde_json::from_str(&stored_turn(&[big, small.clone()], &[]).unwrap()).unwrap();
        let kept = stored["queries"][0]["rows"].as_array().unwrap().len();
        assert!(kept > 100 && kept < 2000, "{kept}");
        assert_eq!(stored["queries"][0]["row_count"], kept);
        assert_eq!(stored["queries"][0]["truncated"], true);
        assert!(stored.to_string().len() < 2 * STORED_RESULT_BYTES);
        assert_eq!(stored["queries"][1], serde_json::to_value(&small).unwrap(), "untouched");
        assert_eq!(stored_turn(&[], &[]), None);
    }

    #[tokio::test]
    async fn thread_lifecycle() {
        let (_dir, threads) = service().await;
        let a = threads.create("local", title("first"), "demo").await.unwrap();
        let b = threads.create("local", title("second"), "demo").await.unwrap();
        let (list, total) = threads.list("local", Page::default()).await.unwrap();
        assert_eq!(total, 2);
        assert_eq!(list.iter().map(|t| t.id).collect::<Vec<_>>(), [b.id, a.id], "newest first");
        let (page, _) = threads.list("local", Page::new(1, 1)).await.unwrap();
        assert_eq!(page[0].id, a.id);

        let renamed = threads.rename("local", a.id, title("renamed")).await.unwrap();
        assert_eq!(renamed.title, "renamed");
        let (list, _) = threads.list("local", Page::default()).await.unwrap();
        assert_eq!(list[0].id, a.id, "renaming is activity");

        threads.delete("local", a.id).await.unwrap();
        assert!(matches!(
            threads.get("local", a.id).await,
            Err(Error::NotFound { what: "thread" })
        ));
        assert!(matches!(threads.delete("local", a.id).await, Err(Error::NotFound { .. })));
    }

    #[tokio::test]
    async fn messages_keep_their_order_and_fields() {
        let (_dir, threads) = service().await;
        let t = threads.create("local", title("q"), "demo").await.unwrap();
        let user = threads
            .add_message(
                "local",
                t.id,
                NewMessage {
                    role: Role::User,
                    content: "how many?".into(),
                    tool_calls: None,
                    status: MessageStatus::Pending,
                    parent_id: None,
                },
            )
            .await
            .unwrap();
        let calls = serde_json::json!([{"id": "c1", "name": "execute_query", "arguments": {"sql": "select 1"}}]);
        threads
            .add_message(
                "local",
                t.id,
                NewMessage {
                    role: Role::Assistant,
                    content: String::new(),
                    tool_calls: Some(calls.clone()),
                    status: MessageStatus::Complete,
                    parent_id: None,
                },
            )
            .await
            .unwrap();
        threads.set_message_status(user.id, MessageStatus::Complete, None).await.unwrap();
        let msgs = threads.messages("local", t.id).await.unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].content, "how many?");
        assert_eq!(msgs[0].status, MessageStatus::Complete);
        assert_eq!(msgs[1].tool_calls, Some(calls));
        assert!(msgs[0].id < msgs[1].id);
        assert_eq!(threads.get("local", t.id).await.unwrap().message_count, 2);
    }

    #[tokio::test]
    async fn other_owners_see_nothing() {
        let (_dir, threads) = service().await;
        threads
            .db
            .run(|c| Ok(c.execute("INSERT INTO users(name, created_at) VALUES ('bob', 'x')", [])?))
            .await
            .unwrap();
        let t = threads.create("local", title("mine"), "demo").await.unwrap();
        assert!(matches!(threads.get("bob", t.id).await, Err(Error::NotFound { .. })));
        assert!(matches!(threads.messages("bob", t.id).await, Err(Error::NotFound { .. })));
        assert_eq!(threads.list("bob", Page::default()).await.unwrap().1, 0);
        let msg = NewMessage {
            role: Role::User,
            content: "x".into(),
            tool_calls: None,
            status: MessageStatus::Complete,
            parent_id: None,
        };
        assert!(matches!(threads.add_message("bob", t.id, msg).await, Err(Error::NotFound { .. })));
    }
}
