//! `cargo xtask bench` (files part): big schemas and big files through the tools layer, against
//! the plain-SQLite floor for the same work measured in the same run with Python's `sqlite3`.
//!
//! - a generated 2,000-table database: first structure, cached structure, `list_tables`,
//!   `get_schema` for 5 tables;
//! - a generated database of ≥ 2 GB with a 30-million-row table (`BENCH_BIG_ROWS` to change):
//!   first structure after open, structure after DDL from another process, a point lookup.
//!
//! Databases are generated once under `target/bench/files/` and reused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use sqlmatic_models::QueryParams;
use sqlmatic_tools::engine::sqlite::SqliteDatabase;
use sqlmatic_tools::test_support::median_ms;
use sqlmatic_tools::{TargetDatabase, ToolContext, ToolRegistry, ToolsConfig};

const PY_FLOOR: &str = r#"
import sqlite3, sys, time, json, statistics
path, mode = sys.argv[1], sys.argv[2]
def ms(f, n=1):
    runs = []
    for _ in range(n):
        t = time.perf_counter(); f(); runs.append((time.perf_counter() - t) * 1000)
    return statistics.median(runs)
def catalogue(c, names, count):
    for n in names:
        q = '"' + n.replace('"', '""') + '"'
        c.execute(f'PRAGMA table_xinfo({q})').fetchall()
        c.execute(f'PRAGMA foreign_key_list({q})').fetchall()
        for idx in c.execute(f'PRAGMA index_list({q})').fetchall():
            c.execute('PRAGMA index_info("%s")' % idx[1].replace('"', '""')).fetchall()
        c.execute(f'SELECT {count} FROM {q}').fetchone()
def names(c):
    return [r[0] for r in c.execute("SELECT name FROM sqlite_schema WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
out = {}
if mode == 'many':
    def first():
        c = sqlite3.connect(f'file:{path}?mode=ro', uri=True); catalogue(c, names(c), 'count(*)'); c.close()
    out['structure_first_ms'] = ms(first, 3)
    c = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
    out['structure_cached_ms'] = ms(lambda: c.execute('PRAGMA schema_version').fetchone(), 200)
    out['list_tables_ms'] = ms(lambda: c.execute("SELECT name, type FROM sqlite_schema WHERE type IN ('table','view')").fetchall(), 50)
    five = names(c)[:5]
    out['get_schema_5_ms'] = ms(lambda: catalogue(c, five, 'count(*)'), 50)
else:
    def first():
        c = sqlite3.connect(f'file:{path}?mode=ro', uri=True); catalogue(c, names(c), 'max(rowid)'); c.close()
    out['structure_first_ms'] = ms(first, 3)
    c = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
    out['point_lookup_ms'] = ms(lambda: c.execute('SELECT * FROM events WHERE id = ?', (12345677,)).fetchall(), 2000)
    out['full_count_ms'] = ms(lambda: c.execute('SELECT count(*) FROM events').fetchone(), 1)
print(json.dumps(out))
"#;

fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 is needed for the SQLite floor");
    assert!(out.status.success(), "python3 failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn bench_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench/files");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn many_tables(dir: &Path) -> PathBuf {
    let path = dir.join("many.db");
    if path.exists() {
        return path;
    }
    let tmp = dir.join("many.db.tmp");
    let _ = std::fs::remove_file(&tmp);
    let conn = rusqlite::Connection::open(&tmp).unwrap();
    let mut sql = String::from("BEGIN;");
    for i in 0..2000 {
        let parent = if i > 0 {
            format!(", parent_id INTEGER REFERENCES t{} (id)", i - 1)
        } else {
            String::new()
        };
        sql.push_str(&format!(
            "CREATE TABLE t{i}(id INTEGER PRIMARY KEY, name TEXT NOT NULL, amount REAL, created_at TEXT{parent});
             CREATE INDEX t{i}_name ON t{i}(name);
             WITH RECURSIVE r(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM r WHERE v < {})
             INSERT INTO t{i}(name, amount, created_at) SELECT 'row ' || v, v * 1.5, '2024-01-01' FROM r;",
            i % 50 + 1
        ));
    }
    sql.push_str("COMMIT;");
    conn.execute_batch(&sql).unwrap();
    drop(conn);
    std::fs::rename(&tmp, &path).unwrap();
    path
}

fn big_file(dir: &Path, rows: u64) -> PathBuf {
    let path = dir.join(format!("big-{rows}.db"));
    if path.exists() {
        return path;
    }
    let tmp = dir.join("big.db.tmp");
    let _ = std::fs::remove_file(&tmp);
    eprintln!("generating {} with {rows} rows (once)…", path.display());
    let started = Instant::now();
    let conn = rusqlite::Connection::open(&tmp).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -200000;
         CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 100000)
         INSERT INTO users SELECT i, 'user ' || i FROM r;
         CREATE TABLE events(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
           kind TEXT NOT NULL, amount REAL, created_at TEXT NOT NULL, note TEXT);
         WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < {rows})
         INSERT INTO events SELECT i, i % 100000 + 1, 'kind-' || (i % 17),
           (i % 1000) / 7.0, '2024-01-01T00:00:00Z', 'note for event number ' || i || ' ' || hex(i * 2654435761 % 4294967296)
         FROM r;
         CREATE INDEX events_user ON events(user_id);"
    ))
    .unwrap();
    drop(conn);
    std::fs::rename(&tmp, &path).unwrap();
    eprintln!("generated in {:.0} s", started.elapsed().as_secs_f64());
    path
}

/// The SQLite engine itself: its blocking API is what this benchmark measures.
fn target(path: &Path, config: &ToolsConfig) -> Arc<SqliteDatabase> {
    SqliteDatabase::new(
        serde_json::from_value(json!({"name": "bench", "path": path})).unwrap(),
        config,
    )
}

fn row(what: &str, ours: f64, floor: f64, floor_what: &str) -> Value {
    println!("| {what} | {ours:.3} | {floor:.3} | {:.2}× | {floor_what} |", ours / floor);
    json!({"what": what, "sqlmatic_ms": ours, "floor_ms": floor, "ratio": ours / floor, "floor": floor_what})
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = bench_dir();
    let config = ToolsConfig::default();
    let point =
        sqlmatic_models::SqlQuery::parse("SELECT * FROM events WHERE id = 12345677").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut report = Vec::new();
    println!(
        "| scenario | sqlmatic ms | SQLite floor ms | ratio | floor (Python sqlite3, same run) |"
    );
    println!("|---|---|---|---|---|");

    let many = many_tables(&dir);
    let floor: Value =
        serde_json::from_str(&python(PY_FLOOR, &[many.to_str().unwrap(), "many"])).unwrap();
    let first = median_ms(3, || {
        target(&many, &config).schema(&config.limits()).unwrap();
    });
    report.push(row(
        "2,000 tables: first structure",
        first,
        floor["structure_first_ms"].as_f64().unwrap(),
        "every table's xinfo, FKs, indexes, count(*)",
    ));
    let db = target(&many, &config);
    db.schema(&config.limits()).unwrap();
    let cached = median_ms(200, || {
        db.schema(&config.limits()).unwrap();
    });
    report.push(row(
        "2,000 tables: cached structure",
        cached,
        floor["structure_cached_ms"].as_f64().unwrap(),
        "PRAGMA schema_version",
    ));
    // the tools go through the engine seam, as the agent's do
    let ctx = ToolContext::new(
        TargetDatabase::with_engine(db.spec().clone(), &config, db.clone()),
        config.limits(),
    );
    let toolset = ToolRegistry::builtin().toolset(&config.enabled).unwrap();
    let list = median_ms(50, || {
        rt.block_on(toolset.call("list_tables", &ctx, json!({}))).unwrap();
    });
    report.push(row(
        "2,000 tables: list_tables",
        list,
        floor["list_tables_ms"].as_f64().unwrap(),
        "SELECT name, type FROM sqlite_schema",
    ));
    let five = json!({"tables": ["t0", "t1", "t2", "t3", "t4"]});
    let get5 = median_ms(50, || {
        rt.block_on(toolset.call("get_schema", &ctx, five.clone())).unwrap();
    });
    report.push(row(
        "2,000 tables: get_schema (5 tables)",
        get5,
        floor["get_schema_5_ms"].as_f64().unwrap(),
        "catalogue + count(*) of 5 tables",
    ));

    let rows: u64 =
        std::env::var("BENCH_BIG_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(30_000_000);
    let big = big_file(&dir, rows);
    let size = std::fs::metadata(&big).unwrap().len();
    println!("(big file: {:.2} GB, {rows} rows in `events`)", size as f64 / 1e9);
    let floor: Value =
        serde_json::from_str(&python(PY_FLOOR, &[big.to_str().unwrap(), "big"])).unwrap();
    let t = Instant::now();
    let db = target(&big, &config);
    let s = db.schema(&config.limits()).unwrap();
    let first = t.elapsed().as_secs_f64() * 1000.0;
    let events = s.tables.iter().find(|t| t.name == "events").unwrap();
    println!(
        "(first structure: events row_count {:?}, exact {})",
        events.row_count, events.row_count_exact
    );
    report.push(row(
        "big file: first structure",
        first,
        floor["structure_first_ms"].as_f64().unwrap(),
        "catalogue + max(rowid) per table",
    ));
    // DDL from another process
    let n = std::process::id();
    python(
        "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(f'CREATE TABLE IF NOT EXISTS extra_{sys.argv[2]}(x)'); c.commit()",
        &[big.to_str().unwrap(), &n.to_string()],
    );
    let t = Instant::now();
    let s = db.schema(&config.limits()).unwrap();
    let after_ddl = t.elapsed().as_secs_f64() * 1000.0;
    assert!(s.tables.iter().any(|t| t.name == format!("extra_{n}")));
    report.push(row(
        "big file: structure after DDL",
        after_ddl,
        floor["structure_first_ms"].as_f64().unwrap(),
        "catalogue + max(rowid) per table",
    ));
    let lookup = median_ms(2000, || {
        db.run(&point, &QueryParams::None, &config.limits()).unwrap();
    });
    report.push(row(
        "big file: point lookup",
        lookup,
        floor["point_lookup_ms"].as_f64().unwrap(),
        "same SELECT, fetchall",
    ));
    println!(
        "(a full count(*) of `events` in Python takes {:.0} ms; the structure does not wait for it)",
        floor["full_count_ms"].as_f64().unwrap()
    );
    python(
        "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(f'DROP TABLE IF EXISTS extra_{sys.argv[2]}'); c.commit()",
        &[big.to_str().unwrap(), &n.to_string()],
    );
    let out = dir.join("files.json");
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&json!({"rows": rows, "file_bytes": size, "results": report}))
            .unwrap(),
    )
    .unwrap();
    println!("report: {}", out.display());
}
