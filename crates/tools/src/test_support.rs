//! Helpers for tests in this and other crates: temp-file SQLite databases built from SQL.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{TargetDatabase, TargetSpec, ToolContext, ToolsConfig};

/// A temp directory holding `fixture.db`, created by running `sql` on a writable connection.
/// Keep the `TempDir` alive as long as the file is used.
pub fn fixture_db(sql: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("fixture.db");
    let conn = rusqlite::Connection::open(&path).unwrap_or_else(|e| panic!("open fixture: {e}"));
    conn.execute_batch(sql).unwrap_or_else(|e| panic!("fixture SQL failed: {e}"));
    (dir, path)
}

/// A target database over a fixture, named `fixture`.
pub fn fixture_target(sql: &str, config: &ToolsConfig) -> (tempfile::TempDir, Arc<TargetDatabase>) {
    let (dir, path) = fixture_db(sql);
    let spec = TargetSpec {
        name: "fixture".into(),
        path,
        read_only: true,
        default: true,
        description: None,
        tables: Default::default(),
        masked_columns: Vec::new(),
    };
    (dir, TargetDatabase::new(spec, config))
}

/// A tool context over a fixture with default limits.
pub fn fixture_context(sql: &str) -> (tempfile::TempDir, ToolContext) {
    let config = ToolsConfig::default();
    let (dir, target) = fixture_target(sql, &config);
    (dir, ToolContext::new(target, config.limits()))
}
