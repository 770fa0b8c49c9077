//! Business context: what people know about a database that its schema does not say, and the
//! gate that keeps unchecked knowledge out of the prompt.
//!
//! - the context file of each target ([`mod@file`]): descriptions, synonyms, metrics, dimensions,
//!   relationships, rules and verified queries; loaded by the core, which runs each verified
//!   query against the database first and drops those that fail;
//! - verified queries in the app database with a lexical index (SQLite FTS5, BM25): only
//!   `verified` rows are indexed, so a candidate proposed by a thumbs-up is never retrieved until
//!   an admin promotes it (and the database ran it again);
//! - [`KnowledgeService::prompt_section`]: for one question, the closest verified queries and
//!   the metrics, rules and synonyms it mentions, within a token budget;
//! - feedback on answers; the value index behind `find_values` ([`values`]).

pub mod file;
pub mod text;
pub mod values;

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;
use sqlmatic_models::{Code, Feedback, Rating, VerifiedQuery, VerifiedQueryRef, VerifiedStatus};

use crate::app_db::now;
use crate::{AppDb, Error, Result};
pub use file::{ContextFile, ContextIssue, VerifiedEntry};

/// Verified queries put in the prompt at most.
pub const RETRIEVED: usize = 3;

/// What loading a target's context file found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContextReport {
    /// The target database.
    pub database: String,
    /// Where the context comes from: a file's path, `embedded:demo`, or none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// When it was last loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loaded_at: Option<DateTime<Utc>>,
    /// Tables described.
    pub tables: usize,
    /// Named metrics.
    pub metrics: usize,
    /// Named dimensions.
    pub dimensions: usize,
    /// Undeclared relationships.
    pub relationships: usize,
    /// Business rules.
    pub rules: usize,
    /// The file's verified queries that ran and are used.
    pub verified_queries: usize,
    /// The file's verified queries that failed to run and are not used.
    pub rejected_queries: usize,
    /// Problems, each with its line.
    pub issues: Vec<ContextIssue>,
}

/// A target's loaded context.
#[derive(Debug, Clone, Default)]
pub struct LoadedContext {
    /// The file as parsed (empty when it failed to parse).
    pub file: ContextFile,
    /// What loading it found.
    pub report: ContextReport,
    /// The file's names, rules and synonyms folded once at install, not on every question.
    keys: MatchKeys,
}

impl LoadedContext {
    /// A context as loaded from `file`.
    pub fn new(file: ContextFile, report: ContextReport) -> Self {
        Self { file, report, keys: MatchKeys::default() }
    }
}

/// What questions are matched against, folded once: the stems of each name and rule, and the
/// folded words of each synonym.
#[derive(Debug, Clone, Default)]
struct MatchKeys {
    stems: HashMap<String, BTreeSet<String>>,
    phrases: HashMap<String, Vec<String>>,
}

impl MatchKeys {
    fn of(file: &ContextFile) -> Self {
        let mut keys = Self::default();
        let names = file
            .metrics
            .keys()
            .chain(file.dimensions.keys())
            .chain(file.tables.keys())
            .chain(&file.rules);
        for text in names {
            keys.stems.insert(text.clone(), text::stems(text));
        }
        let synonyms =
            file.metrics.values().chain(file.dimensions.values()).flat_map(|e| &e.synonyms).chain(
                file.tables.values().flat_map(|t| {
                    t.synonyms.iter().chain(t.columns.values().flat_map(|c| &c.synonyms))
                }),
            );
        for s in synonyms {
            keys.phrases.insert(s.clone(), split_words(&text::fold(s)));
        }
        keys
    }

    fn stems(&self, text: &str) -> std::borrow::Cow<'_, BTreeSet<String>> {
        match self.stems.get(text) {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => std::borrow::Cow::Owned(text::stems(text)),
        }
    }

    /// True when the question's folded `words` say synonym `phrase` as whole words.
    fn said(&self, words: &[String], phrase: &str) -> bool {
        let owned;
        let wanted = match self.phrases.get(phrase) {
            Some(w) => w.as_slice(),
            None => {
                owned = split_words(&text::fold(phrase));
                owned.as_slice()
            }
        };
        !wanted.is_empty() && words.windows(wanted.len()).any(|w| w == wanted)
    }
}

/// What a thumbs-up or -down stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedbackOutcome {
    /// The feedback.
    pub feedback: Feedback,
    /// The verified-query candidate an "up" proposed (its question and the answer's last
    /// successful SQL); none when the answer ran no query or the pair is already known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate: Option<VerifiedQuery>,
}

/// Business context, verified queries, feedback and the value index; cheap to clone.
#[derive(Clone)]
pub struct KnowledgeService {
    db: AppDb,
    contexts: Arc<RwLock<HashMap<String, Arc<LoadedContext>>>>,
    /// Verified queries per database, as last counted: a database with none (most without a
    /// context file) skips the index and its thread hop on every question.
    verified_counts: Arc<RwLock<HashMap<String, usize>>>,
    /// The stems of verified questions, by text: retrieval re-ranks the same few questions on
    /// every turn, and folding (Unicode decomposition) costs more than the lookup.
    question_stems: Arc<Mutex<HashMap<String, Arc<BTreeSet<String>>>>>,
}

/// Verified questions whose stems are remembered at most (then forgotten all at once).
const REMEMBERED_QUESTIONS: usize = 4096;

impl std::fmt::Debug for KnowledgeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnowledgeService").finish_non_exhaustive()
    }
}

const VERIFIED_COLUMNS: &str = "id, database, question, sql, status, source, verified_by, \
     verified_at, onboarding, proposed_by, message_id, created_at";

fn verified_from_row(r: &Row<'_>) -> rusqlite::Result<VerifiedQuery> {
    let status: String = r.get(4)?;
    Ok(VerifiedQuery {
        id: r.get(0)?,
        database: r.get(1)?,
        question: r.get(2)?,
        sql: r.get(3)?,
        status: VerifiedStatus::parse(&status).unwrap_or(VerifiedStatus::Candidate),
        source: r.get(5)?,
        verified_by: r.get(6)?,
        verified_at: r.get(7)?,
        onboarding: r.get::<_, i64>(8)? != 0,
        proposed_by: r.get(9)?,
        message_id: r.get(10)?,
        created_at: parse_time(&r.get::<_, String>(11)?),
    })
}

fn parse_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).unwrap_or_default()
}

/// The words an index row is found by besides its question: the identifiers of its SQL.
fn sql_terms(sql: &str) -> String {
    let mut seen = BTreeSet::new();
    sql.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| w.len() > 2 && !w.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_lowercase)
        .filter(|w| seen.insert(w.clone()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn index_verified(c: &rusqlite::Connection, id: i64, question: &str, sql: &str) -> Result<()> {
    c.prepare_cached("INSERT INTO verified_fts(rowid, question, terms) VALUES (?1, ?2, ?3)")?
        .execute(params![id, question, sql_terms(sql)])?;
    Ok(())
}

fn get_verified(c: &rusqlite::Connection, id: i64) -> Result<VerifiedQuery> {
    c.query_row(
        &format!("SELECT {VERIFIED_COLUMNS} FROM verified_queries WHERE id = ?1"),
        [id],
        verified_from_row,
    )
    .optional()?
    .ok_or(Error::NotFound { what: "verified query" })
}

impl KnowledgeService {
    /// Over sqlmatic's own database.
    pub fn new(db: AppDb) -> Self {
        Self {
            db,
            contexts: Arc::default(),
            verified_counts: Arc::default(),
            question_stems: Arc::default(),
        }
    }

    /// The loaded context of `database` (empty when it has none).
    pub fn context(&self, database: &str) -> Arc<LoadedContext> {
        self.contexts
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(database)
            .cloned()
            .unwrap_or_else(|| {
                Arc::new(LoadedContext::new(
                    ContextFile::default(),
                    ContextReport { database: database.to_owned(), ..Default::default() },
                ))
            })
    }

    /// Counts the verified queries of `database` again (after they changed, and at start-up for
    /// every target), so retrieval knows when there is nothing to look for.
    pub async fn recount(&self, database: &str) -> Result<usize> {
        let name = database.to_owned();
        let n = self
            .db
            .run(move |c| {
                let n: i64 = c
                    .prepare_cached(
                        "SELECT count(*) FROM verified_queries WHERE database = ?1 AND status = 'verified'",
                    )?
                    .query_row([name], |r| r.get(0))?;
                Ok(usize::try_from(n).unwrap_or(0))
            })
            .await?;
        self.verified_counts
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(database.to_owned(), n);
        Ok(n)
    }

    /// Installs a loaded context and the file's usable verified queries (those that ran),
    /// replacing what the previous load of the file stored.
    pub async fn install(
        &self,
        database: &str,
        mut loaded: LoadedContext,
        usable: Vec<VerifiedEntry>,
    ) -> Result<()> {
        loaded.keys = MatchKeys::of(&loaded.file);
        let db_name = database.to_owned();
        self.db
            .write(move |c| {
                c.prepare_cached(
                    "DELETE FROM verified_fts WHERE rowid IN \
                     (SELECT id FROM verified_queries WHERE database = ?1 AND source = 'file')",
                )?
                .execute([&db_name])?;
                c.prepare_cached(
                    "DELETE FROM verified_queries WHERE database = ?1 AND source = 'file'",
                )?
                .execute([&db_name])?;
                let ts = now();
                for q in &usable {
                    c.prepare_cached(
                        "INSERT INTO verified_queries(database, question, sql, status, source, \
                         verified_by, verified_at, onboarding, created_at) \
                         VALUES (?1, ?2, ?3, 'verified', 'file', ?4, ?5, ?6, ?7)",
                    )?
                    .execute(params![
                        db_name,
                        q.question.trim(),
                        q.sql.trim(),
                        q.verified_by,
                        q.verified_at,
                        q.use_as_onboarding_question,
                        ts
                    ])?;
                    index_verified(c, c.last_insert_rowid(), &q.question, &q.sql)?;
                }
                Ok(())
            })
            .await?;
        self.contexts
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(database.to_owned(), Arc::new(loaded));
        self.recount(database).await?;
        Ok(())
    }

    /// The verified queries of `database` closest to `question`, best first: BM25 over their
    /// questions (and, weighted less, the identifiers of their SQL), then kept only when the two
    /// questions share at least half of the meaningful words of the shorter one (after
    /// synonyms), ordered by how many they share, so an unrelated question retrieves nothing.
    pub async fn retrieve(
        &self,
        database: &str,
        question: &str,
        k: usize,
    ) -> Result<Vec<VerifiedQuery>> {
        if self.verified_counts.read().unwrap_or_else(PoisonError::into_inner).get(database)
            == Some(&0)
        {
            return Ok(Vec::new());
        }
        let context = self.context(database);
        let asked = expand_synonyms(&context, question);
        // each word and its stem: FTS5's porter stemmer and ours disagree on some ("monthly")
        let mut terms: Vec<String> = Vec::new();
        for w in text::words(&asked) {
            let stem = text::stem(&w);
            if stem != w && !terms.contains(&stem) {
                terms.push(stem);
            }
            if !terms.contains(&w) {
                terms.push(w);
            }
        }
        if terms.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let query = terms.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(" OR ");
        let db_name = database.to_owned();
        let found = self
            .db
            .run(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {} FROM verified_fts f JOIN verified_queries v ON v.id = f.rowid \
                     WHERE verified_fts MATCH ?1 AND v.database = ?2 AND v.status = 'verified' \
                     ORDER BY bm25(verified_fts, 4.0, 1.0) LIMIT 20",
                    VERIFIED_COLUMNS
                        .split(", ")
                        .map(|c| format!("v.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))?;
                let rows = stmt.query_map(params![query, db_name], verified_from_row)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await?;
        let asked = text::stems(&asked);
        // BM25 found them; how much of each question the user's shares decides
        let mut scored: Vec<(usize, f64, usize, VerifiedQuery)> = found
            .into_iter()
            .enumerate()
            .filter_map(|(rank, q)| {
                let theirs = self.question_stems(&q.question);
                let shared = theirs.intersection(&asked).count();
                let enough = shared >= 1 && shared * 2 >= theirs.len().min(asked.len()).max(1);
                enough.then(|| (shared, shared as f64 / theirs.len().max(1) as f64, rank, q))
            })
            .collect();
        scored.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)).then(a.2.cmp(&b.2)));
        Ok(scored.into_iter().take(k).map(|(_, _, _, q)| q).collect())
    }

    /// The stems of a verified question, remembered.
    fn question_stems(&self, question: &str) -> Arc<BTreeSet<String>> {
        let mut memo = self.question_stems.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(stems) = memo.get(question) {
            return stems.clone();
        }
        if memo.len() >= REMEMBERED_QUESTIONS {
            memo.clear();
        }
        let stems = Arc::new(text::stems(question));
        memo.insert(question.to_owned(), stems.clone());
        stems
    }

    /// The business context for one question, within `budget_tokens` (about four characters
    /// each), most useful first: the closest verified queries, then the metrics, dimensions,
    /// rules and synonyms the question mentions, then relationships and table notes. Returns
    /// the text (empty when there is nothing) and the verified queries it carries.
    pub async fn prompt_section(
        &self,
        database: &str,
        question: &str,
        budget_tokens: usize,
    ) -> Result<(String, Vec<VerifiedQuery>)> {
        if budget_tokens == 0 {
            return Ok((String::new(), Vec::new()));
        }
        let context = self.context(database);
        let retrieved = self.retrieve(database, question, RETRIEVED).await?;
        let file = &context.file;
        let keys = &context.keys;
        let asked = text::stems(question);
        let words = split_words(&text::fold(question));
        // named by a word of its name, or by one of its synonyms as a whole word or phrase
        let mentions = |name: &str, synonyms: &[String]| {
            !keys.stems(name).is_disjoint(&asked) || synonyms.iter().any(|s| keys.said(&words, s))
        };
        let mut parts: Vec<String> = Vec::new();
        let mut used_queries = Vec::new();
        for q in &retrieved {
            parts.push(format!(
                "Verified query (checked by {}): \"{}\"\n{}",
                q.verified_by.as_deref().unwrap_or("a person"),
                q.question,
                q.sql
            ));
            used_queries.push(q.clone());
        }
        for (kind, named) in [("Metric", &file.metrics), ("Dimension", &file.dimensions)] {
            for (name, e) in named {
                if mentions(name, &e.synonyms) {
                    let mut line = format!("{kind} {name} = {}", e.sql.trim());
                    if let Some(d) = &e.description {
                        let _ = write!(line, " ({})", d.trim());
                    }
                    parts.push(line);
                }
            }
        }
        for rule in &file.rules {
            if !keys.stems(rule).is_disjoint(&asked) {
                parts.push(format!("Rule: {}", rule.trim()));
            }
        }
        for (table, t) in &file.tables {
            for s in t.synonyms.iter().filter(|s| keys.said(&words, s)) {
                parts.push(format!("\"{s}\" means table {table}"));
            }
            for (column, c) in &t.columns {
                for s in c.synonyms.iter().filter(|s| keys.said(&words, s)) {
                    parts.push(format!("\"{s}\" means column {table}.{column}"));
                }
            }
        }
        for r in &file.relationships {
            let mut line = format!("Join {} = {} (not declared as a foreign key)", r.from, r.to);
            if let Some(d) = &r.description {
                let _ = write!(line, ": {}", d.trim());
            }
            parts.push(line);
        }
        for (table, t) in &file.tables {
            if mentions(table, &t.synonyms) {
                if let Some(d) = &t.description {
                    parts.push(format!("Table {table}: {}", d.trim()));
                }
                for (column, c) in &t.columns {
                    if let Some(d) = &c.description {
                        parts.push(format!("Column {table}.{column}: {}", d.trim()));
                    }
                }
            }
        }
        if let Some(d) = &file.description {
            parts.push(format!("About this database: {}", d.trim()));
        }
        let mut out = String::new();
        let mut kept_queries = 0;
        let budget_chars = budget_tokens * 4;
        for (i, part) in parts.iter().enumerate() {
            if out.len() + part.len() + 3 > budget_chars {
                continue;
            }
            out.push_str("- ");
            out.push_str(part);
            out.push('\n');
            if i < used_queries.len() {
                kept_queries += 1;
            }
        }
        used_queries.truncate(kept_queries);
        if out.is_empty() {
            return Ok((out, used_queries));
        }
        let head = "Business context from this team (people checked it; prefer it to guesses). \
                    When a verified query answers the question, run its SQL as it is, changing \
                    only literal values the question changes:\n";
        Ok((format!("{head}{out}"), used_queries))
    }

    /// Which verified query (if any) the turn reused: an exact match of a successful query's
    /// SQL first (case and spacing aside), else one that differs only in literal values.
    pub fn reused(ran: &[String], offered: &[VerifiedQuery]) -> Option<VerifiedQueryRef> {
        let as_ref = |q: &VerifiedQuery, adapted: bool| VerifiedQueryRef {
            id: q.id,
            question: q.question.clone(),
            verified_by: q.verified_by.clone().unwrap_or_default(),
            adapted,
        };
        if offered.is_empty() {
            return None;
        }
        for literals in [true, false] {
            let ran: Vec<String> = ran.iter().map(|sql| text::sql_shape(sql, literals)).collect();
            for q in offered {
                let shape = text::sql_shape(&q.sql, literals);
                if ran.contains(&shape) {
                    return Some(as_ref(q, !literals));
                }
            }
        }
        None
    }

    /// Questions offered in an empty thread: the verified queries marked as onboarding ones.
    pub async fn onboarding_questions(&self, database: &str) -> Result<Vec<String>> {
        let db_name = database.to_owned();
        self.db
            .run(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT question FROM verified_queries WHERE database = ?1 \
                     AND status = 'verified' AND onboarding = 1 ORDER BY id",
                )?;
                let rows = stmt.query_map([db_name], |r| r.get(0))?;
                Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
            })
            .await
    }

    /// Verified queries and candidates, newest first, of the given databases (all for `None`),
    /// optionally of one status.
    pub async fn list(
        &self,
        databases: Option<Vec<String>>,
        status: Option<VerifiedStatus>,
    ) -> Result<Vec<VerifiedQuery>> {
        self.db
            .run(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {VERIFIED_COLUMNS} FROM verified_queries \
                     WHERE (?1 IS NULL OR status = ?1) ORDER BY id DESC"
                ))?;
                let rows =
                    stmt.query_map(params![status.map(VerifiedStatus::as_str)], verified_from_row)?;
                let all = rows.collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(all
                    .into_iter()
                    .filter(|q| databases.as_ref().is_none_or(|d| d.contains(&q.database)))
                    .collect())
            })
            .await
    }

    /// One verified query or candidate.
    pub async fn get(&self, id: i64) -> Result<VerifiedQuery> {
        self.db.run(move |c| get_verified(c, id)).await
    }

    /// Stores a verified query whose SQL the caller has just run successfully: a promoted
    /// candidate (`candidate` set) keeps its id; otherwise a new row from `source`.
    pub async fn verify(
        &self,
        candidate: Option<i64>,
        new: Option<(String, String, String)>,
        verified_by: &str,
        onboarding: bool,
    ) -> Result<VerifiedQuery> {
        let by = verified_by.to_owned();
        let verified = self
            .db
            .write(move |c| {
                let ts = now();
                let id = match (candidate, new) {
                    (Some(id), _) => {
                        let q = get_verified(c, id)?;
                        if q.status == VerifiedStatus::Verified {
                            return Ok(q);
                        }
                        c.prepare_cached(
                            "UPDATE verified_queries SET status = 'verified', verified_by = ?1, \
                             verified_at = ?2, onboarding = ?3 WHERE id = ?4",
                        )?
                        .execute(params![by, ts, onboarding, id])?;
                        index_verified(c, id, &q.question, &q.sql)?;
                        id
                    }
                    (None, Some((database, question, sql))) => {
                        c.prepare_cached(
                            "INSERT INTO verified_queries(database, question, sql, status, source, \
                             verified_by, verified_at, onboarding, created_at) \
                             VALUES (?1, ?2, ?3, 'verified', 'api', ?4, ?5, ?6, ?5)",
                        )?
                        .execute(params![
                            database,
                            question.trim(),
                            sql.trim(),
                            by,
                            ts,
                            onboarding
                        ])?;
                        let id = c.last_insert_rowid();
                        index_verified(c, id, &question, &sql)?;
                        id
                    }
                    (None, None) => {
                        return Err(Error::InvalidInput(
                            "give a candidate_id, or a database, question and sql".into(),
                        ));
                    }
                };
                get_verified(c, id)
            })
            .await?;
        self.recount(&verified.database).await?;
        Ok(verified)
    }

    /// Removes a candidate (rejecting it) or a verified query that did not come from the
    /// context file.
    pub async fn delete(&self, id: i64) -> Result<VerifiedQuery> {
        let removed = self
            .db
            .write(move |c| {
                let q = get_verified(c, id)?;
                if q.source == "file" {
                    return Err(Error::Refused {
                        code: Code::DefinedInContextFile,
                        message: format!(
                            "verified query {id} comes from the context file of `{}`; remove it there",
                            q.database
                        ),
                    });
                }
                c.prepare_cached("DELETE FROM verified_fts WHERE rowid = ?1")?.execute([id])?;
                c.prepare_cached("DELETE FROM verified_queries WHERE id = ?1")?.execute([id])?;
                Ok(q)
            })
            .await?;
        self.recount(&removed.database).await?;
        Ok(removed)
    }

    /// Records `user`'s rating of answer `message_id` (in a thread they own; a second rating
    /// replaces the first). An "up" proposes the turn's question and its last successful SQL
    /// as a candidate, unless that pair is already known.
    pub async fn feedback(
        &self,
        user: &str,
        message_id: i64,
        rating: Rating,
        comment: Option<String>,
    ) -> Result<FeedbackOutcome> {
        let user = user.to_owned();
        self.db
            .write(move |c| {
                let found: Option<(String, String, String)> = c
                    .prepare_cached(
                        "SELECT m.role, t.id, t.database FROM messages m JOIN threads t \
                         ON t.id = m.thread_id WHERE m.id = ?1 AND t.owner = ?2",
                    )?
                    .query_row(params![message_id, user], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .optional()?;
                let Some((role, thread, database)) = found else {
                    return Err(Error::NotFound { what: "message" });
                };
                if role != "assistant" {
                    return Err(Error::Refused {
                        code: Code::NotAnAnswer,
                        message: format!(
                            "message {message_id} is a {role} message; rate the answer instead"
                        ),
                    });
                }
                let question: String = c
                    .prepare_cached(
                        "SELECT content FROM messages WHERE thread_id = ?1 AND id < ?2 \
                         AND role = 'user' AND parent_id IS NULL ORDER BY id DESC LIMIT 1",
                    )?
                    .query_row(params![thread, message_id], |r| r.get(0))
                    .optional()?
                    .unwrap_or_default();
                let ts = now();
                c.prepare_cached(
                    "INSERT INTO feedback(message_id, user, rating, comment, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(message_id, user) DO UPDATE SET \
                     rating = excluded.rating, comment = excluded.comment, created_at = excluded.created_at",
                )?
                .execute(params![message_id, user, rating.as_str(), comment, ts])?;
                let id: i64 = c.query_row(
                    "SELECT id FROM feedback WHERE message_id = ?1 AND user = ?2",
                    params![message_id, user],
                    |r| r.get(0),
                )?;
                let feedback = Feedback {
                    id,
                    message_id,
                    user: user.clone(),
                    rating,
                    comment,
                    database: database.clone(),
                    question: question.clone(),
                    created_at: parse_time(&ts),
                };
                let mut candidate = None;
                if rating == Rating::Up
                    && let Some(sql) = last_successful_sql(c, message_id)?
                {
                    let known: bool = c
                        .prepare_cached(
                            "SELECT 1 FROM verified_queries WHERE database = ?1 AND question = ?2 AND sql = ?3",
                        )?
                        .exists(params![database, question.trim(), sql.trim()])?;
                    if !known && !question.trim().is_empty() {
                        c.prepare_cached(
                            "INSERT INTO verified_queries(database, question, sql, status, source, \
                             proposed_by, message_id, created_at) \
                             VALUES (?1, ?2, ?3, 'candidate', 'feedback', ?4, ?5, ?6)",
                        )?
                        .execute(params![database, question.trim(), sql.trim(), user, message_id, ts])?;
                        candidate = Some(get_verified(c, c.last_insert_rowid())?);
                    }
                }
                Ok(FeedbackOutcome { feedback, candidate })
            })
            .await
    }

    /// Feedback on answers about the given databases (all for `None`), newest first.
    pub async fn list_feedback(&self, databases: Option<Vec<String>>) -> Result<Vec<Feedback>> {
        self.db
            .run(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT f.id, f.message_id, f.user, f.rating, f.comment, t.database, \
                     coalesce((SELECT q.content FROM messages q WHERE q.thread_id = m.thread_id \
                       AND q.id < m.id AND q.role = 'user' AND q.parent_id IS NULL \
                       ORDER BY q.id DESC LIMIT 1), ''), f.created_at \
                     FROM feedback f JOIN messages m ON m.id = f.message_id \
                     JOIN threads t ON t.id = m.thread_id ORDER BY f.id DESC",
                )?;
                let rows = stmt.query_map([], |r| {
                    let rating: String = r.get(3)?;
                    Ok(Feedback {
                        id: r.get(0)?,
                        message_id: r.get(1)?,
                        user: r.get(2)?,
                        rating: Rating::parse(&rating).unwrap_or(Rating::Down),
                        comment: r.get(4)?,
                        database: r.get(5)?,
                        question: r.get(6)?,
                        created_at: parse_time(&r.get::<_, String>(7)?),
                    })
                })?;
                let all = rows.collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(all
                    .into_iter()
                    .filter(|f| databases.as_ref().is_none_or(|d| d.contains(&f.database)))
                    .collect())
            })
            .await
    }

    /// The context file of `database` with every verified query now in use (the file's and
    /// the promoted ones), in the file's format: what an admin commits back to the file.
    pub async fn export(&self, database: &str) -> Result<String> {
        let mut file = self.context(database).file.clone();
        let verified = self.list(Some(vec![database.to_owned()]), Some(VerifiedStatus::Verified));
        let mut verified = verified.await?;
        verified.reverse();
        file.verified_queries = verified
            .into_iter()
            .map(|q| VerifiedEntry {
                question: q.question,
                sql: q.sql,
                verified_by: q.verified_by.unwrap_or_default(),
                verified_at: q.verified_at.unwrap_or_default(),
                use_as_onboarding_question: q.onboarding,
            })
            .collect();
        Ok(file.to_yaml())
    }
}

/// The words of folded text.
fn split_words(folded: &str) -> Vec<String> {
    folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The question with each table or column synonym it uses followed by what it stands for
/// ("clients" → "clients customers"), so retrieval sees the schema's words too.
fn expand_synonyms(context: &LoadedContext, question: &str) -> String {
    let words = split_words(&text::fold(question));
    let mut out = question.to_owned();
    let mut add = |synonyms: &[String], name: &str| {
        if synonyms.iter().any(|s| context.keys.said(&words, s)) {
            out.push(' ');
            out.push_str(&name.replace('_', " "));
        }
    };
    for (table, t) in &context.file.tables {
        add(&t.synonyms, table);
        for (column, c) in &t.columns {
            add(&c.synonyms, column);
        }
    }
    out
}

/// The SQL of the last `execute_query` call of an answer's turn whose result was not an error.
fn last_successful_sql(c: &rusqlite::Connection, answer: i64) -> Result<Option<String>> {
    let mut stmt =
        c.prepare_cached("SELECT role, tool_calls FROM messages WHERE parent_id = ?1 ORDER BY id")?;
    let rows =
        stmt.query_map([answer], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)))?;
    let mut calls: HashMap<String, String> = HashMap::new();
    let mut last = None;
    for row in rows {
        let (role, tool_calls) = row?;
        let Some(json) =
            tool_calls.and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        else {
            continue;
        };
        if role == "assistant" {
            for call in json.as_array().into_iter().flatten() {
                if call["name"] == "execute_query"
                    && let Some(args) = call["arguments"].as_str()
                    && let Ok(args) = serde_json::from_str::<serde_json::Value>(args)
                    && let Some(sql) = args["sql"].as_str()
                {
                    calls
                        .insert(call["id"].as_str().unwrap_or_default().to_owned(), sql.to_owned());
                }
            }
        } else if role == "tool"
            && json["is_error"] != true
            && let Some(sql) = json["tool_call_id"].as_str().and_then(|id| calls.get(id))
        {
            last = Some(sql.clone());
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn demo_knowledge() -> (tempfile::TempDir, KnowledgeService) {
        let dir = tempfile::tempdir().unwrap();
        let db = AppDb::open_path(&dir.path().join("app.db")).unwrap();
        let knowledge = KnowledgeService::new(db);
        let file = ContextFile::parse(crate::demo::CONTEXT).unwrap();
        let usable = file.verified_queries.clone();
        knowledge
            .install("demo", LoadedContext::new(file, ContextReport::default()), usable)
            .await
            .unwrap();
        (dir, knowledge)
    }

    async fn top(k: &KnowledgeService, question: &str) -> Vec<String> {
        k.retrieve("demo", question, RETRIEVED)
            .await
            .unwrap()
            .into_iter()
            .map(|q| q.question)
            .collect()
    }

    #[tokio::test]
    async fn paraphrases_find_their_verified_query_and_unrelated_questions_find_none() {
        let (_dir, k) = demo_knowledge().await;
        assert_eq!(top(&k, "Show me monthly revenue").await[0], "What is the revenue per month?");
        assert_eq!(
            top(&k, "how many clients do we have").await[0],
            "How many customers do we have?"
        );
        assert!(
            top(&k, "top products by revenue")
                .await
                .contains(&"Which 10 products bring in the most revenue?".to_owned())
        );
        assert_eq!(
            top(&k, "which sales reps sold the most").await[0],
            "Which employees sold the most?"
        );
        assert_eq!(top(&k, "What is the weather in Paris?").await, Vec::<String>::new());
        assert_eq!(top(&k, "Tell me a joke").await, Vec::<String>::new());
        // another database's queries are not retrieved
        assert!(k.retrieve("other", "Show me monthly revenue", 3).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn counts_follow_verification_so_empty_databases_skip_the_index() {
        let (_dir, k) = demo_knowledge().await;
        assert_eq!(k.recount("demo").await.unwrap(), 19, "install counted the file's");
        assert_eq!(k.recount("shop").await.unwrap(), 0);
        assert!(k.retrieve("shop", "How many suppliers are there?", 3).await.unwrap().is_empty());
        let q = k
            .verify(
                None,
                Some(("shop".into(), "How many suppliers are there?".into(), "SELECT 1".into())),
                "ana",
                false,
            )
            .await
            .unwrap();
        let found = k.retrieve("shop", "how many suppliers", 3).await.unwrap();
        assert_eq!(found.first().map(|f| f.id), Some(q.id), "verifying counted it");
        k.delete(q.id).await.unwrap();
        assert!(k.retrieve("shop", "how many suppliers", 3).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_prompt_section_carries_what_the_question_mentions_within_the_budget() {
        let (_dir, k) = demo_knowledge().await;
        let (text, offered) =
            k.prompt_section("demo", "What was the revenue per month?", 1500).await.unwrap();
        assert_eq!(offered[0].question, "What is the revenue per month?");
        assert!(text.contains("Verified query (checked by demo-team)"), "{text}");
        assert!(text.contains("Metric revenue = sum(order_items.quantity"), "{text}");
        assert!(text.contains("Rule: Revenue never counts cancelled or returned orders"), "{text}");
        assert!(!text.contains("Metric return_rate"), "unrelated metrics stay out: {text}");
        assert!(text.len() <= 1500 * 4 + 400, "{}", text.len());
        let (clients, _) =
            k.prompt_section("demo", "Which clients live in Paris?", 1500).await.unwrap();
        assert!(clients.contains("\"clients\" means table customers"), "{clients}");
        // a tiny budget keeps what fits, and only the verified queries it kept count as offered
        let (small, offered) =
            k.prompt_section("demo", "What was the revenue per month?", 60).await.unwrap();
        assert!(small.len() < 60 * 4 + 400, "{small}");
        assert!(offered.len() <= 1);
        let (none, offered) =
            k.prompt_section("demo", "What was the revenue per month?", 0).await.unwrap();
        assert!(none.is_empty() && offered.is_empty());
    }

    /// The demo eval set (`eval/demo.jsonl`) words each verified question differently; retrieval
    /// must find the verified query each line expects among its top k.
    #[tokio::test]
    async fn the_demo_eval_paraphrases_retrieve_their_verified_queries() {
        let (_dir, k) = demo_knowledge().await;
        let text = include_str!("../../../../eval/demo.jsonl");
        let (mut expected, mut found, mut misses) = (0, 0, Vec::new());
        for line in text.lines() {
            let case: serde_json::Value = serde_json::from_str(line).unwrap();
            let question = case["question"].as_str().unwrap();
            let retrieved = top(&k, question).await;
            for want in case["expected_verified"].as_array().into_iter().flatten() {
                expected += 1;
                if retrieved.iter().any(|q| q == want.as_str().unwrap()) {
                    found += 1;
                } else {
                    misses.push(format!("{question} -> {retrieved:?}"));
                }
            }
        }
        let recall = f64::from(found) / f64::from(expected);
        eprintln!("recall@{RETRIEVED} on eval/demo.jsonl: {found}/{expected} = {recall:.3}");
        assert!(expected >= 15);
        assert!(recall >= 0.9, "recall {recall:.3}; missed: {misses:#?}");
    }

    #[test]
    fn reuse_is_exact_or_adapted_in_literals_only() {
        let q = VerifiedQuery {
            id: 7,
            database: "demo".into(),
            question: "Customers in France?".into(),
            sql: "SELECT count(*) FROM customers WHERE country = 'France'".into(),
            status: VerifiedStatus::Verified,
            source: "file".into(),
            verified_by: Some("ana".into()),
            verified_at: None,
            onboarding: false,
            proposed_by: None,
            message_id: None,
            created_at: Utc::now(),
        };
        let offered = [q];
        let exact = KnowledgeService::reused(
            &["select count(*) from customers where country='France';".into()],
            &offered,
        );
        assert_eq!(exact.map(|r| r.adapted), Some(false));
        let adapted = KnowledgeService::reused(
            &["SELECT count(*) FROM customers WHERE country = 'Spain'".into()],
            &offered,
        );
        assert_eq!(adapted.map(|r| (r.id, r.adapted)), Some((7, true)));
        assert!(
            KnowledgeService::reused(&["SELECT count(*) FROM orders".into()], &offered).is_none()
        );
    }
}
