//! Business context at work: loading each target's context file (its verified queries run
//! against the database first), feedback on answers, the candidate → verified gate (promotion
//! re-runs the SQL and records who verified it), export, and the value index's upkeep.

use std::time::SystemTime;

use serde::Deserialize;
use sqlmatic_models::{
    Code, Feedback, Principal, QueryParams, Rating, ValueMatch, VerifiedQuery, VerifiedStatus,
};
use sqlmatic_services::ContextSource;
use sqlmatic_services::knowledge::{
    ContextFile, ContextIssue, ContextReport, FeedbackOutcome, LoadedContext,
};
use sqlmatic_tools::{QueryAudit, TargetDatabase};

use crate::{Error, Result, Sqlmatic};

/// `POST /api/verified-queries`: promote a candidate, or add a question and its SQL.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "database": "demo",
    "question": "How many customers are there per segment?",
    "sql": "SELECT segment, count(*) AS customers FROM customers GROUP BY segment ORDER BY customers DESC"
})))]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// A candidate to promote (from feedback).
    #[serde(default)]
    pub candidate_id: Option<i64>,
    /// With `question` and `sql`: the database of a new verified query.
    #[serde(default)]
    pub database: Option<String>,
    /// The question, as people ask it.
    #[serde(default)]
    pub question: Option<String>,
    /// The SQL that answers it.
    #[serde(default)]
    pub sql: Option<String>,
    /// Offer it as a suggested question in an empty thread.
    #[serde(default)]
    pub use_as_onboarding_question: bool,
}

/// A file's modification time and length: when either changes, the file is loaded again.
pub(crate) type FileStamp = Option<(SystemTime, u64)>;

/// The stamp of the file at `path` (none when it is missing), read off the async executor.
pub(crate) async fn file_stamp(path: &std::path::Path) -> FileStamp {
    let m = tokio::fs::metadata(path).await.ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl Sqlmatic {
    /// Business context, verified queries and feedback.
    pub fn knowledge(&self) -> &sqlmatic_services::KnowledgeService {
        &self.knowledge
    }

    /// Runs `sql` read-only within the limits, for verification. A person's verification is
    /// in the query log (source `context`, `logged`); loading a file's is only in the server log.
    async fn verify_sql(
        &self,
        target: &TargetDatabase,
        user: &str,
        sql: &str,
        logged: bool,
    ) -> Result<()> {
        let audit = QueryAudit {
            user,
            thread_id: None,
            source: "context",
            observer: logged
                .then_some(self.observer.as_ref() as &dyn sqlmatic_tools::QueryObserver),
        };
        let limits = self.config.tools.limits();
        target.query(sql, &QueryParams::default(), &limits, &audit).await?;
        Ok(())
    }

    /// Loads (or reloads) the business context of `database` from its source: parses and
    /// validates the file, runs each verified query (one that fails is reported and not used),
    /// and installs the rest. A file that does not parse leaves the database without context;
    /// the report says why and where.
    pub async fn load_context(&self, database: &str) -> Result<ContextReport> {
        let target = self.targets.get(Some(database))?;
        let Some(source) = self.targets.context_source(database) else {
            // promoted verified queries may exist without a file
            self.knowledge.recount(database).await?;
            return Ok(self.knowledge.context(database).report.clone());
        };
        if let ContextSource::File(path) = &source {
            // taken before the text is read: a write after this is seen as a change
            let stamp = file_stamp(path).await;
            self.context_stamps
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(database.to_owned(), stamp);
        }
        let (label, text) = match &source {
            ContextSource::File(path) => (
                path.display().to_string(),
                tokio::fs::read_to_string(path).await.map_err(|e| ContextIssue {
                    line: None,
                    message: format!("cannot read {}: {e}", path.display()),
                }),
            ),
            ContextSource::Embedded(text) => ("embedded:demo".to_owned(), Ok((*text).to_owned())),
        };
        let mut report = ContextReport {
            database: database.to_owned(),
            source: Some(label.clone()),
            loaded_at: Some(chrono::Utc::now()),
            ..ContextReport::default()
        };
        let parsed = text.and_then(|t| ContextFile::parse(&t).map(|f| (f, t)));
        let (file, text) = match parsed {
            Ok(ok) => ok,
            Err(issue) => {
                log::error!("context of `{database}` ({label}): {issue}; loaded without context");
                report.issues.push(issue);
                self.knowledge
                    .install(
                        database,
                        LoadedContext::new(ContextFile::default(), report.clone()),
                        Vec::new(),
                    )
                    .await?;
                return Ok(report);
            }
        };
        let limits = self.config.tools.limits();
        match target.schema(&limits).await {
            Ok(schema) => report.issues.extend(file.validate(&text, &schema)),
            Err(e) => report.issues.push(ContextIssue {
                line: None,
                message: format!("the database's structure is unreadable, not checked: {e}"),
            }),
        }
        let mut usable = Vec::new();
        for (i, q) in file.verified_queries.iter().enumerate() {
            match self.verify_sql(&target, "sqlmatic", &q.sql, false).await {
                Ok(()) => usable.push(q.clone()),
                Err(e) => {
                    report.rejected_queries += 1;
                    report.issues.push(ContextIssue {
                        line: file.verified_line(&text, i),
                        message: format!(
                            "verified query \"{}\" does not run, so it is not used: {e}",
                            q.question
                        ),
                    });
                }
            }
        }
        report.verified_queries = usable.len();
        report.tables = file.tables.len();
        report.metrics = file.metrics.len();
        report.dimensions = file.dimensions.len();
        report.relationships = file.relationships.len();
        report.rules = file.rules.len();
        for issue in &report.issues {
            log::warn!("context of `{database}` ({label}): {issue}");
        }
        log::info!(
            "context of `{database}` loaded from {label}: {} verified queries ({} rejected), {} metrics, {} rules",
            report.verified_queries,
            report.rejected_queries,
            report.metrics,
            report.rules
        );
        self.knowledge.install(database, LoadedContext::new(file, report.clone()), usable).await?;
        Ok(report)
    }

    /// Loads every target's context (at start-up; the watcher reloads changed files).
    pub async fn load_contexts(&self) {
        let names: Vec<String> = self.targets.all().map(|t| t.name().to_owned()).collect();
        for name in names {
            if let Err(e) = self.load_context(&name).await {
                log::warn!("context of `{name}` not loaded: {e}");
            }
        }
    }

    /// What loading the context of `database` found.
    pub fn context_report(
        &self,
        user: &Principal,
        database: Option<&str>,
    ) -> Result<ContextReport> {
        let target = self.target_for(user, database)?;
        Ok(self.knowledge.context(target.name()).report.clone())
    }

    /// `user` rates one of their answers; an "up" proposes a verified-query candidate.
    pub async fn give_feedback(
        &self,
        user: &Principal,
        message_id: i64,
        rating: Rating,
        comment: Option<String>,
    ) -> Result<FeedbackOutcome> {
        let comment = comment.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
        if comment.as_ref().is_some_and(|c| c.chars().count() > 2000) {
            return Err(Error::invalid(
                Code::InvalidInput,
                "the comment is longer than 2000 characters",
            ));
        }
        let outcome = self.knowledge.feedback(&user.name, message_id, rating, comment).await?;
        if let Some(c) = &outcome.candidate {
            log::info!("feedback: {} proposed candidate {} for `{}`", user.name, c.id, c.database);
        }
        Ok(outcome)
    }

    /// Verified queries (everyone, of the databases they may use) and candidates (admins only).
    pub async fn verified_queries(
        &self,
        user: &Principal,
        database: Option<&str>,
        status: Option<VerifiedStatus>,
    ) -> Result<Vec<VerifiedQuery>> {
        if status == Some(VerifiedStatus::Candidate) && !user.admin {
            return Err(Error::Forbidden("candidates are for admins".into()));
        }
        let databases = match database {
            Some(db) => Some(vec![self.target_for(user, Some(db))?.name().to_owned()]),
            None => user.databases.clone(),
        };
        let all = self.knowledge.list(databases, status).await?;
        Ok(all.into_iter().filter(|q| user.admin || q.status == VerifiedStatus::Verified).collect())
    }

    /// An admin verifies a query: the database runs its SQL again (read-only, within the
    /// limits) and only then is it stored as verified, with the admin's name.
    pub async fn verify_query(
        &self,
        user: &Principal,
        request: VerifyRequest,
    ) -> Result<VerifiedQuery> {
        if !user.admin {
            return Err(Error::Forbidden("verifying queries is for admins".into()));
        }
        let (database, sql, new) = match (&request.candidate_id, &request.question, &request.sql) {
            (Some(id), None, None) => {
                let q = self.knowledge.get(*id).await?;
                (q.database, q.sql, None)
            }
            (None, Some(question), Some(sql))
                if !question.trim().is_empty() && !sql.trim().is_empty() =>
            {
                let target = self.target_for(user, request.database.as_deref())?;
                let db = target.name().to_owned();
                (db.clone(), sql.clone(), Some((db, question.clone(), sql.clone())))
            }
            _ => {
                return Err(Error::invalid(
                    Code::InvalidInput,
                    "give either candidate_id, or question and sql (and optionally database)",
                ));
            }
        };
        let target = self.target_for(user, Some(&database))?;
        if let Err(e) = self.verify_sql(&target, &user.name, &sql, true).await {
            return Err(Error::invalid(
                Code::VerificationFailed,
                format!("the SQL did not run, so it was not verified: {e}"),
            ));
        }
        let verified = self
            .knowledge
            .verify(request.candidate_id, new, &user.name, request.use_as_onboarding_question)
            .await?;
        log::info!("verified query {} of `{}` verified by {}", verified.id, database, user.name);
        Ok(verified)
    }

    /// An admin rejects a candidate or removes a verified query (not one from the file).
    pub async fn delete_verified(&self, user: &Principal, id: i64) -> Result<VerifiedQuery> {
        if !user.admin {
            return Err(Error::Forbidden("managing verified queries is for admins".into()));
        }
        Ok(self.knowledge.delete(id).await?)
    }

    /// Feedback on answers (admins).
    pub async fn feedback_list(
        &self,
        user: &Principal,
        database: Option<&str>,
    ) -> Result<Vec<Feedback>> {
        if !user.admin {
            return Err(Error::Forbidden("feedback is for admins".into()));
        }
        let databases = match database {
            Some(db) => Some(vec![self.target_for(user, Some(db))?.name().to_owned()]),
            None => None,
        };
        Ok(self.knowledge.list_feedback(databases).await?)
    }

    /// The context of `database` with every verified query in use, as context-file YAML.
    pub async fn export_context(&self, user: &Principal, database: Option<&str>) -> Result<String> {
        let target = self.target_for(user, database)?;
        Ok(self.knowledge.export(target.name()).await?)
    }

    /// Stored values of `database` close to `text` (what `find_values` answers).
    pub async fn find_values(
        &self,
        user: &Principal,
        database: Option<&str>,
        column: Option<&str>,
        text: &str,
    ) -> Result<Vec<ValueMatch>> {
        let target = self.target_for(user, database)?;
        Ok(self.knowledge.find_values(target.name(), column, text, 10).await?)
    }

    /// Rebuilds the value index of `database` when its data changed since the last build (or
    /// always, with `force`). Returns what it indexed, or `None` when nothing changed.
    pub async fn refresh_values(
        &self,
        database: &str,
        force: bool,
    ) -> Result<Option<sqlmatic_services::knowledge::values::ValueIndexStats>> {
        let config = &self.config.database.value_index;
        if !config.enabled {
            return Ok(None);
        }
        let target = self.targets.get(Some(database))?;
        let stamp = target.data_stamp().await?;
        if !force && self.knowledge.value_stamp(database).await? == Some(stamp) {
            return Ok(None);
        }
        let stats = self
            .knowledge
            .rebuild_values(&target, config, &self.config.tools.limits(), stamp)
            .await?;
        log::info!(
            "value index of `{database}`: {} values from {} columns ({} skipped) in {:.0} ms",
            stats.values,
            stats.columns,
            stats.skipped,
            stats.elapsed_ms
        );
        Ok(Some(stats))
    }
}
