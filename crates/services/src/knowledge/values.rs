//! The value index behind `find_values`: the most frequent short text values of each target's
//! text columns (masked columns never), kept in the app database as an FTS5 trigram index, and
//! rebuilt by the core when the target's data stamp changes. A lookup asks the index for values
//! sharing trigrams with what was typed, then ranks them by similarity (case, accents, typos,
//! partial words).

use std::time::{Duration, Instant};

use rusqlite::params;
use serde::Serialize;
use sqlmatic_models::{Code, QueryParams, TableKind, ValueMatch};
use sqlmatic_tools::tool::BoxFuture;
use sqlmatic_tools::{QueryAudit, QueryLimits, TargetDatabase, ToolError, ValueLookup};

use super::{KnowledgeService, text};
use crate::app_db::now;
use crate::config::ValueIndexConfig;
use crate::{Error, Result};

/// What a build indexed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ValueIndexStats {
    /// Values indexed.
    pub values: usize,
    /// Columns read.
    pub columns: usize,
    /// Columns skipped because their query failed or the build ran out of time.
    pub skipped: usize,
    /// How long it took.
    pub elapsed_ms: f64,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn is_text(data_type: &str) -> bool {
    let t = data_type.to_ascii_uppercase();
    ["CHAR", "TEXT", "CLOB", "STRING", "CITEXT"].iter().any(|k| t.contains(k))
}

/// Candidates read from the index per lookup before ranking.
const CANDIDATES: usize = 200;
/// Matches below this similarity are not returned.
const MIN_SCORE: f64 = 0.3;

impl KnowledgeService {
    /// The stamp the value index of `database` was built for, if it was built.
    pub async fn value_stamp(&self, database: &str) -> Result<Option<i64>> {
        let name = database.to_owned();
        self.db
            .run(move |c| {
                use rusqlite::OptionalExtension as _;
                Ok(c.prepare_cached("SELECT stamp FROM value_index_state WHERE database = ?1")?
                    .query_row([name], |r| r.get(0))
                    .optional()?)
            })
            .await
    }

    /// Re-reads the text values of `target` (most frequent first, within the config's caps and
    /// time budget) and replaces its index in one transaction, recording `stamp`.
    pub async fn rebuild_values(
        &self,
        target: &TargetDatabase,
        config: &ValueIndexConfig,
        limits: &QueryLimits,
        stamp: i64,
    ) -> Result<ValueIndexStats> {
        let started = Instant::now();
        let budget = Duration::from_millis(config.build_budget_ms);
        let schema =
            target.schema(limits).await.map_err(|e| Error::InvalidInput(e.model_message))?;
        let audit =
            QueryAudit { user: "sqlmatic", thread_id: None, source: "index", observer: None };
        let mut rows: Vec<(String, String, String)> = Vec::new();
        let mut stats = ValueIndexStats::default();
        let per_column = config.max_per_column.max(1);
        for table in schema.tables.iter().filter(|t| {
            matches!(t.kind, TableKind::Table | TableKind::MaterializedView) && t.error.is_none()
        }) {
            let (shown, from) = match table.schema.as_deref() {
                Some(s) if s != "public" => {
                    (format!("{s}.{}", table.name), format!("{}.{}", quote(s), quote(&table.name)))
                }
                Some(s) => (table.name.clone(), format!("{}.{}", quote(s), quote(&table.name))),
                None => (table.name.clone(), quote(&table.name)),
            };
            for column in table.columns.iter().filter(|c| !c.masked && is_text(&c.data_type)) {
                if started.elapsed() > budget || rows.len() >= config.max_values {
                    stats.skipped += 1;
                    continue;
                }
                let col = quote(&column.name);
                let sql = format!(
                    "SELECT {col} FROM {from} WHERE {col} IS NOT NULL AND length({col}) BETWEEN 1 AND {} \
                     GROUP BY {col} ORDER BY count(*) DESC LIMIT {per_column}",
                    config.max_value_chars
                );
                match target.query(&sql, &QueryParams::default(), limits, &audit).await {
                    Ok(result) => {
                        stats.columns += 1;
                        for row in result.rows {
                            if let Some(v) = row.first().and_then(|v| v.as_str())
                                && rows.len() < config.max_values
                            {
                                rows.push((shown.clone(), column.name.clone(), v.to_owned()));
                            }
                        }
                    }
                    Err(e) => {
                        log::debug!(
                            "value index: `{}` {shown}.{} skipped: {}",
                            target.name(),
                            column.name,
                            e.model_message
                        );
                        stats.skipped += 1;
                    }
                }
            }
        }
        stats.values = rows.len();
        let database = target.name().to_owned();
        let columns = stats.columns;
        self.db
            .write(move |c| {
                c.prepare_cached("DELETE FROM value_index WHERE database = ?1")?.execute([&database])?;
                let mut insert = c.prepare_cached(
                    "INSERT INTO value_index(value, database, table_name, column_name) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (table, column, value) in &rows {
                    insert.execute(params![value, database, table, column])?;
                }
                c.prepare_cached(
                    "INSERT INTO value_index_state(database, stamp, value_count, column_count, built_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(database) DO UPDATE SET stamp = excluded.stamp, \
                     value_count = excluded.value_count, column_count = excluded.column_count, \
                     built_at = excluded.built_at",
                )?
                .execute(params![database, stamp, rows.len() as i64, columns as i64, now()])?;
                Ok(())
            })
            .await?;
        stats.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(stats)
    }

    /// The stored values of `database` closest to `typed`, best first.
    pub async fn find_values(
        &self,
        database: &str,
        column: Option<&str>,
        typed: &str,
        limit: usize,
    ) -> Result<Vec<ValueMatch>> {
        let folded = text::fold(typed.trim());
        let (table, column) =
            match column.map(|c| c.rsplit_once('.').map_or((None, c), |(t, c)| (Some(t), c))) {
                Some((t, c)) => (t.map(str::to_owned), Some(c.to_owned())),
                None => (None, None),
            };
        let grams = text::trigrams(&folded);
        let name = database.to_owned();
        let (database, pattern) = (database.to_owned(), folded.clone());
        let found: Option<Vec<(String, String, String)>> = self
            .db
            .run(move |c| {
                // one hop: whether the index is built, and the candidates
                let built = c
                    .prepare_cached("SELECT 1 FROM value_index_state WHERE database = ?1")?
                    .exists([&database])?;
                if !built {
                    return Ok(None);
                }
                let filter = "database = ?2 AND (?3 IS NULL OR column_name = ?3 COLLATE NOCASE) \
                              AND (?4 IS NULL OR table_name = ?4 COLLATE NOCASE)";
                let rows = if grams.is_empty() {
                    // shorter than a trigram: a prefix scan of this database's values
                    let mut stmt = c.prepare_cached(&format!(
                        "SELECT table_name, column_name, value FROM value_index \
                         WHERE {filter} AND value LIKE ?1 || '%' LIMIT {CANDIDATES}"
                    ))?;
                    stmt.query_map(params![pattern, database, column, table], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?
                } else {
                    let query = grams
                        .iter()
                        .map(|g| format!("\"{}\"", g.replace('"', "\"\"")))
                        .collect::<Vec<_>>()
                        .join(" OR ");
                    let mut stmt = c.prepare_cached(&format!(
                        "SELECT table_name, column_name, value FROM value_index \
                         WHERE value_index MATCH ?1 AND {filter} ORDER BY rank LIMIT {CANDIDATES}"
                    ))?;
                    stmt.query_map(params![query, database, column, table], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?
                };
                Ok(Some(rows))
            })
            .await?;
        let Some(found) = found else {
            return Err(Error::Refused {
                code: Code::ValueIndexUnavailable,
                message: format!(
                    "the values of `{name}` are still being indexed; try again shortly or use LIKE"
                ),
            });
        };
        let mut matches: Vec<ValueMatch> = found
            .into_iter()
            .map(|(table, column, value)| {
                let score = text::similarity(&folded, &text::fold(&value));
                ValueMatch { table, column, value, score: (score * 1000.0).round() / 1000.0 }
            })
            .filter(|m| m.score >= MIN_SCORE)
            .collect();
        matches.sort_by(|a, b| {
            b.score.total_cmp(&a.score).then_with(|| a.value.len().cmp(&b.value.len()))
        });
        matches.dedup_by(|a, b| a.value == b.value && a.column == b.column && a.table == b.table);
        matches.truncate(limit);
        Ok(matches)
    }
}

impl ValueLookup for KnowledgeService {
    fn find<'a>(
        &'a self,
        database: &'a str,
        column: Option<&'a str>,
        text: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, std::result::Result<Vec<ValueMatch>, ToolError>> {
        Box::pin(async move {
            self.find_values(database, column, text, limit).await.map_err(|e| match e {
                Error::Refused { code, message } => ToolError::new(code, message),
                other => ToolError::internal(other),
            })
        })
    }
}
