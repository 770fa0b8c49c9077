//! The `tools` configuration section.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `tools:` in `config/config.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolsConfig {
    /// Wall-clock limit of one query, enforced by SQLite's progress handler.
    pub query_timeout_ms: u64,
    /// Rows a query returns at most; the result says `truncated` past that.
    pub max_rows: usize,
    /// Approximate JSON bytes of a result at most; the result says `truncated` past that.
    pub max_result_bytes: usize,
    /// Largest string or blob SQLite may build (`SQLITE_LIMIT_LENGTH`): stops huge `zeroblob`s.
    pub max_value_bytes: usize,
    /// Blobs up to this size are returned as base64; larger ones as their size only.
    pub inline_blob_bytes: usize,
    /// Sample rows per table `get_schema` may return at most.
    pub max_sample_rows: usize,
    /// Read-only connections per target database.
    pub pool_size: u32,
    /// How long a query waits for a free connection before `target_busy` (503).
    pub pool_wait_ms: u64,
    /// Queries one user may run at once on one target (more wait, then `too_many_queries`,
    /// 429), so no user can hold every connection.
    pub max_queries_per_user: usize,
    /// Queries whose plan would scan more rows than this are refused before they run (0: off).
    /// PostgreSQL: the largest row estimate of any step of `EXPLAIN`'s plan.
    pub max_scan_rows: u64,
    /// PostgreSQL: queries whose `EXPLAIN` total cost exceeds this are refused (0: off).
    pub max_plan_cost: f64,
    /// PostgreSQL: how long a query waits for a lock (`SET LOCAL lock_timeout`).
    pub lock_timeout_ms: u64,
    /// Time exact row counts may take while a structure is built; tables not counted by then
    /// (or with more than 250,000 rows by a cheap bound) show an estimate until a background
    /// count finishes.
    pub count_budget_ms: u64,
    /// Time limit of one background `count(*)`; a table that takes longer keeps its estimate.
    pub background_count_timeout_ms: u64,
    /// The tools an agent gets, by name.
    pub enabled: Vec<String>,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        Self {
            query_timeout_ms: 2000,
            max_rows: 1000,
            max_result_bytes: 4 << 20,
            max_value_bytes: 4 << 20,
            inline_blob_bytes: 1024,
            max_sample_rows: 20,
            pool_size: 4,
            pool_wait_ms: 2000,
            max_queries_per_user: 3,
            max_scan_rows: 50_000_000,
            max_plan_cost: 100_000_000.0,
            lock_timeout_ms: 1000,
            count_budget_ms: 250,
            background_count_timeout_ms: 60_000,
            enabled: vec![
                "list_tables".into(),
                "get_metadata".into(),
                "get_schema".into(),
                "execute_query".into(),
                "execute_write".into(),
                "show_chart".into(),
                "find_values".into(),
            ],
        }
    }
}

impl ToolsConfig {
    /// The per-query limits these settings give.
    pub fn limits(&self) -> QueryLimits {
        QueryLimits {
            timeout: Duration::from_millis(self.query_timeout_ms.max(1)),
            max_rows: self.max_rows.max(1),
            max_result_bytes: self.max_result_bytes.max(1024),
            inline_blob_bytes: self.inline_blob_bytes,
            max_sample_rows: self.max_sample_rows,
            max_scan_rows: self.max_scan_rows,
            max_plan_cost: self.max_plan_cost.max(0.0),
        }
    }

    /// Checks the values; the error names the key and what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.query_timeout_ms == 0 {
            return Err("tools.query_timeout_ms must be greater than 0".into());
        }
        if self.max_rows == 0 {
            return Err("tools.max_rows must be greater than 0".into());
        }
        if self.max_queries_per_user == 0 {
            return Err("tools.max_queries_per_user must be greater than 0".into());
        }
        if self.max_plan_cost.is_nan() || self.max_plan_cost < 0.0 {
            return Err("tools.max_plan_cost must be 0 (off) or more".into());
        }
        if self.pool_size == 0 {
            return Err("tools.pool_size must be greater than 0".into());
        }
        if self.max_value_bytes < 1024 || self.max_value_bytes > 1 << 30 {
            return Err("tools.max_value_bytes must be between 1024 and 1073741824".into());
        }
        Ok(())
    }
}

/// Per-query limits, injected through the tool context (never chosen by the model).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueryLimits {
    /// A statement's time limit.
    pub timeout: Duration,
    /// Rows returned at most.
    pub max_rows: usize,
    /// Bytes of result at most.
    pub max_result_bytes: usize,
    /// Blobs up to this size are returned inline (base64); larger ones by size only.
    pub inline_blob_bytes: usize,
    /// Sample rows `get_schema` returns at most.
    pub max_sample_rows: usize,
    /// Plans that would scan more rows are refused (0: no limit).
    pub max_scan_rows: u64,
    /// PostgreSQL plans that cost more are refused (0: no limit).
    pub max_plan_cost: f64,
}

impl Default for QueryLimits {
    fn default() -> Self {
        ToolsConfig::default().limits()
    }
}
