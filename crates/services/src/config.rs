//! The `database` configuration section.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sqlmatic_tools::TargetSpec;

/// `database:` in `config/config.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// sqlmatic's own database (threads, messages, query log); its directory is created.
    pub app_path: PathBuf,
    /// Connections to the app database.
    pub app_pool_size: u32,
    /// How long a writer waits for a lock on the app database.
    pub busy_timeout_ms: u64,
    /// Caps the app database at this many pages (`PRAGMA max_page_count`; 0: no cap). When it
    /// is full, writes answer `503 app_db_unwritable` and everything stored stays readable.
    pub app_max_pages: u64,
    /// Where the bundled demo database is generated when no target is configured.
    pub demo_path: PathBuf,
    /// How often target databases are checked for schema changes (`PRAGMA schema_version`).
    pub schema_poll_interval_ms: u64,
    /// The databases users query. Empty: the bundled demo database.
    pub targets: Vec<TargetSpec>,
    /// The index of stored text values behind the `find_values` tool.
    pub value_index: ValueIndexConfig,
}

/// `database.value_index:` the index of stored text values `find_values` searches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValueIndexConfig {
    /// Build and keep the index (off: `find_values` answers `value_index_unavailable`).
    pub enabled: bool,
    /// Values indexed per target at most.
    pub max_values: usize,
    /// Distinct values read per column at most (the most frequent first).
    pub max_per_column: usize,
    /// Longer values are not indexed (free text is not what people filter on).
    pub max_value_chars: usize,
    /// Time one build may take; columns not reached are left out until the next build.
    pub build_budget_ms: u64,
    /// A changed target is re-indexed at most this often: a busy database changes all the time,
    /// and each build reads every text column.
    pub min_rebuild_interval_ms: u64,
}

impl Default for ValueIndexConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_values: 50_000,
            max_per_column: 1_000,
            max_value_chars: 100,
            build_budget_ms: 20_000,
            min_rebuild_interval_ms: 300_000,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            app_path: PathBuf::from("data/sqlmatic.db"),
            app_pool_size: 8,
            busy_timeout_ms: 5000,
            app_max_pages: 0,
            demo_path: PathBuf::from("data/demo.db"),
            schema_poll_interval_ms: 1000,
            targets: Vec::new(),
            value_index: ValueIndexConfig::default(),
        }
    }
}

impl DatabaseConfig {
    /// Checks the values; the error says which key is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.app_pool_size == 0 {
            return Err("database.app_pool_size must be greater than 0".into());
        }
        if self.schema_poll_interval_ms < 50 {
            return Err("database.schema_poll_interval_ms must be at least 50".into());
        }
        let mut seen = std::collections::HashSet::new();
        for t in &self.targets {
            t.validate()?;
            if !seen.insert(t.name.as_str()) {
                return Err(format!("database.targets: the name `{}` is used twice", t.name));
            }
        }
        if self.targets.iter().filter(|t| t.default).count() > 1 {
            return Err("database.targets: only one target may be `default: true`".into());
        }
        Ok(())
    }
}
