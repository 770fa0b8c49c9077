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
        }
    }
}

impl DatabaseConfig {
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
