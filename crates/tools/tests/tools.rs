//! The built-in tools through the registry, as an agent calls them.

// Test helpers outside #[test] fns: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use sqlmatic_tools::test_support::{fixture_context, fixture_target};
use sqlmatic_tools::{
    QueryEvent, QueryObserver, ToolContext, ToolErrorCode, ToolRegistry, ToolsConfig,
};
use std::sync::{Arc, Mutex};

mod files;
mod postgres;

const SHOP: &str = "
    CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT DEFAULT 'FR', score REAL, avatar BLOB);
    CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE, total REAL);
    CREATE INDEX orders_customer ON orders(customer_id);
    CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
    CREATE TRIGGER orders_audit AFTER INSERT ON orders BEGIN SELECT 1; END;
    INSERT INTO customers VALUES (1,'Ada','UK',9.5,x'00ff'),(2,'Linus','FI',NULL,NULL),(3,'Grace','US',7.25,zeroblob(5000));
    INSERT INTO orders VALUES (1,1,50.0),(2,1,150.0),(3,2,300.5);
";

async fn call(
    ctx: &ToolContext,
    tool: &str,
    args: Value,
) -> Result<Value, sqlmatic_tools::ToolError> {
    let registry = ToolRegistry::builtin();
    let toolset = registry.toolset(&ToolsConfig::default().enabled).unwrap();
    toolset.call(tool, ctx, args).await.map(|outcome| outcome.to_json())
}

#[tokio::test]
async fn execute_query_returns_typed_values() {
    let (_dir, ctx) = fixture_context(SHOP);
    let out = call(
        &ctx,
        "execute_query",
        json!({"sql": "SELECT id, name, score, avatar FROM customers ORDER BY id"}),
    )
    .await
    .unwrap();
    assert_eq!(out["columns"][0], json!({"name": "id", "decl_type": "INTEGER"}));
    assert_eq!(out["rows"][0], json!([1, "Ada", 9.5, {"$blob": "AP8="}]));
    assert_eq!(out["rows"][1], json!([2, "Linus", null, null]));
    assert_eq!(out["rows"][2][3], json!({"$blob_bytes": 5000}));
    assert_eq!(out["row_count"], 3);
    assert_eq!(out["total_rows"], 3);
    assert_eq!(out["truncated"], false);
    assert!(out["elapsed_ms"].as_f64().unwrap() >= 0.0);
}

#[tokio::test]
async fn positional_and_named_parameters() {
    let (_dir, ctx) = fixture_context(SHOP);
    let out = call(
        &ctx,
        "execute_query",
        json!({"sql": "SELECT name FROM customers WHERE country = ?", "params": ["FI"]}),
    )
    .await
    .unwrap();
    assert_eq!(out["rows"], json!([["Linus"]]));
    let out = call(
        &ctx,
        "execute_query",
        json!({"sql": "SELECT count(*) AS n FROM orders WHERE customer_id = :c AND total > $min", "params": {"c": 1, "min": 60}}),
    )
    .await
    .unwrap();
    assert_eq!(out["rows"], json!([[1]]));
    let err =
        call(&ctx, "execute_query", json!({"sql": "SELECT ?", "params": []})).await.unwrap_err();
    assert_eq!(err.code, ToolErrorCode::InvalidArgs);
    let err = call(&ctx, "execute_query", json!({"sql": "SELECT :a", "params": {"b": 1}}))
        .await
        .unwrap_err();
    assert!(err.model_message.contains(":a"), "{err}");
    let err =
        call(&ctx, "execute_query", json!({"sql": "SELECT ?", "params": [[1]]})).await.unwrap_err();
    assert_eq!(err.code, ToolErrorCode::InvalidArgs);
}

#[tokio::test]
async fn row_and_byte_caps_truncate_and_say_so() {
    let config = ToolsConfig { max_rows: 2, ..ToolsConfig::default() };
    let (_dir, target) = fixture_target(SHOP, &config);
    let ctx = ToolContext::new(target, config.limits());
    let out = call(&ctx, "execute_query", json!({"sql": "SELECT * FROM orders"})).await.unwrap();
    assert_eq!(out["row_count"], 2);
    assert_eq!(out["total_rows"], 3);
    assert_eq!(out["truncated"], true);

    let config = ToolsConfig { max_result_bytes: 1024, ..ToolsConfig::default() };
    let (_dir, target) = fixture_target(
        "CREATE TABLE s(x TEXT); WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r WHERE i < 100) INSERT INTO s SELECT printf('%0100d', i) FROM r;",
        &config,
    );
    let ctx = ToolContext::new(target, config.limits());
    let out = call(&ctx, "execute_query", json!({"sql": "SELECT x FROM s"})).await.unwrap();
    assert!(out["row_count"].as_u64().unwrap() < 100);
    assert_eq!(out["total_rows"], 100);
    assert_eq!(out["truncated"], true);
}

#[tokio::test]
async fn errors_tell_the_model_what_to_do() {
    let (_dir, ctx) = fixture_context(SHOP);
    let err =
        call(&ctx, "execute_query", json!({"sql": "SELECT * FROM customer"})).await.unwrap_err();
    assert_eq!(err.code, ToolErrorCode::SqlError);
    assert!(
        err.model_message.contains("tables are: big_orders, customers, orders"),
        "{}",
        err.model_message
    );
    let err = call(&ctx, "execute_query", json!({"sql": "SELECT nmae FROM customers"}))
        .await
        .unwrap_err();
    assert!(
        err.model_message.contains("customers(id, name, country, score, avatar)"),
        "{}",
        err.model_message
    );
    let err = call(&ctx, "execute_query", json!({"sql": "SELEC 1"})).await.unwrap_err();
    assert!(err.model_message.contains("syntax error"), "{}", err.model_message);
    let err = call(&ctx, "execute_query", json!({"query": "SELECT 1"})).await.unwrap_err();
    assert_eq!(err.code, ToolErrorCode::InvalidArgs);
    let err = call(&ctx, "drop_everything", json!({})).await.unwrap_err();
    assert_eq!(err.code, ToolErrorCode::UnknownTool);
    assert!(err.model_message.contains("execute_query"));
}

#[tokio::test]
async fn get_schema_describes_everything() {
    let (_dir, ctx) = fixture_context(SHOP);
    let out = call(&ctx, "get_schema", json!({})).await.unwrap();
    let tables = out["tables"].as_array().unwrap();
    let names: Vec<&str> = tables.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["big_orders", "customers", "orders"]);
    let orders = &tables[2];
    assert_eq!(orders["row_count"], 3);
    assert_eq!(
        orders["columns"][0],
        json!({"name": "id", "type": "INTEGER", "nullable": true, "default": null, "primary_key": 1})
    );
    assert_eq!(orders["columns"][1]["nullable"], false);
    assert_eq!(
        orders["foreign_keys"][0],
        json!({"columns": ["customer_id"], "references_table": "customers", "references_columns": ["id"], "on_update": "NO ACTION", "on_delete": "CASCADE"})
    );
    assert_eq!(orders["indexes"][0]["name"], "orders_customer");
    assert_eq!(orders["triggers"][0]["name"], "orders_audit");
    assert_eq!(tables[0]["kind"], "view");
    assert_eq!(tables[0]["row_count"], Value::Null);
    assert_eq!(tables[1]["columns"][2]["default"], "'FR'");
    let ddl = out["ddl"].as_str().unwrap();
    assert!(ddl.contains("TABLE orders(id INTEGER PK, customer_id INTEGER NOT NULL -> customers.id, total REAL) -- 3 rows"), "{ddl}");

    let out =
        call(&ctx, "get_schema", json!({"tables": ["Customers"], "sample_rows": 2})).await.unwrap();
    assert_eq!(out["tables"].as_array().unwrap().len(), 1);
    assert_eq!(out["tables"][0]["sample_rows"].as_array().unwrap().len(), 2);
    let err = call(&ctx, "get_schema", json!({"tables": ["nope"]})).await.unwrap_err();
    assert_eq!(err.code, ToolErrorCode::TableNotFound);
    assert!(err.model_message.contains("customers"));
}

#[tokio::test]
async fn descriptions_from_config_reach_the_schema() {
    let (_dir, path) = sqlmatic_tools::test_support::fixture_db(SHOP);
    let spec: sqlmatic_tools::TargetSpec = serde_json::from_value(json!({
        "name": "shop", "path": path,
        "tables": {"customers": {"description": "People who buy", "columns": {"score": "loyalty 0-10"}}}
    }))
    .unwrap();
    let config = ToolsConfig::default();
    let ctx = ToolContext::new(sqlmatic_tools::TargetDatabase::new(spec, &config), config.limits());
    let out = call(&ctx, "list_tables", json!({})).await.unwrap();
    assert_eq!(
        out["tables"][1],
        json!({"name": "customers", "kind": "table", "row_count": 3, "row_count_exact": true, "description": "People who buy"})
    );
    let out = call(&ctx, "get_schema", json!({"tables": ["customers"]})).await.unwrap();
    assert_eq!(out["tables"][0]["columns"][3]["description"], "loyalty 0-10");
    assert!(out["ddl"].as_str().unwrap().contains("score REAL /* loyalty 0-10 */"));
}

#[tokio::test]
async fn get_metadata_reports_the_file() {
    let (_dir, ctx) = fixture_context(SHOP);
    let out = call(&ctx, "get_metadata", Value::Null).await.unwrap();
    assert_eq!(out["table_count"], 2);
    assert_eq!(out["view_count"], 1);
    assert_eq!(out["total_rows"], 6);
    assert_eq!(out["encoding"], "UTF-8");
    assert!(out["engine_version"].as_str().unwrap().starts_with("3."));
    assert!(out["file_size_bytes"].as_u64().unwrap() > 0);
    assert!(out["page_count"].as_u64().unwrap() > 0);
    assert!(out["last_modified"].is_string());
}

#[tokio::test]
async fn the_schema_cache_follows_ddl_from_another_connection() {
    let (_dir, ctx) = fixture_context(SHOP);
    let first = ctx.database.schema(&ctx.limits).await.unwrap();
    let again = ctx.database.schema(&ctx.limits).await.unwrap();
    assert!(Arc::ptr_eq(&first, &again), "an unchanged schema must come from the cache");
    let writer = rusqlite::Connection::open(ctx.database.spec().path.as_ref().unwrap()).unwrap();
    writer.execute_batch("CREATE TABLE added(x)").unwrap();
    let after = ctx.database.schema(&ctx.limits).await.unwrap();
    assert!(after.schema_version > first.schema_version);
    assert!(after.tables.iter().any(|t| t.name == "added"));
    // in WAL mode a commit may change only the -wal file (the writer stays open, so nothing is
    // checkpointed): the cache must see it, for DDL and for data (row counts)
    let _: String = writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).unwrap();
    let wal = ctx.database.schema(&ctx.limits).await.unwrap();
    assert!(Arc::ptr_eq(&wal, &ctx.database.schema(&ctx.limits).await.unwrap()));
    writer.execute_batch("CREATE TABLE added_in_wal(x)").unwrap();
    let after = ctx.database.schema(&ctx.limits).await.unwrap();
    assert!(after.tables.iter().any(|t| t.name == "added_in_wal"), "{:?}", after.tables);
    let orders = |s: &sqlmatic_models::DatabaseSchema| {
        s.tables.iter().find(|t| t.name == "orders").and_then(|t| t.row_count)
    };
    assert_eq!(orders(&after), Some(3));
    writer.execute_batch("INSERT INTO orders VALUES (4, 3, 1.0)").unwrap();
    let counted = ctx.database.schema(&ctx.limits).await.unwrap();
    assert_eq!(orders(&counted), Some(4), "a data change reaches the cached row counts");
    let listed = call(&ctx, "get_schema", json!({"tables": ["added_in_wal"]})).await.unwrap();
    assert_eq!(listed["tables"][0]["name"], "added_in_wal", "{listed}");
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, &'static str, u64)>>);

impl QueryObserver for Recorder {
    fn on_query(&self, e: &QueryEvent<'_>) {
        self.0.lock().unwrap().push((e.sql.to_owned(), e.outcome.as_str(), e.rows));
    }
}

#[tokio::test]
async fn observers_see_every_query() {
    let (_dir, mut ctx) = fixture_context(SHOP);
    let recorder = Arc::new(Recorder::default());
    ctx.observer = Some(recorder.clone());
    call(&ctx, "execute_query", json!({"sql": "SELECT * FROM orders"})).await.unwrap();
    call(&ctx, "execute_query", json!({"sql": "DELETE FROM orders"})).await.unwrap_err();
    let seen = recorder.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        [("SELECT * FROM orders".into(), "ok", 3), ("DELETE FROM orders".into(), "blocked", 0)]
    );
}

#[tokio::test]
async fn a_missing_file_is_a_clear_error_and_recovers() {
    let (dir, ctx) = fixture_context(SHOP);
    let path = ctx.database.spec().path.clone().unwrap();
    let moved = dir.path().join("moved.db");
    std::fs::rename(&path, &moved).unwrap();
    let err = call(&ctx, "list_tables", json!({})).await.unwrap_err();
    assert_eq!(err.code, ToolErrorCode::DatabaseUnavailable);
    std::fs::rename(&moved, &path).unwrap();
    call(&ctx, "list_tables", json!({})).await.unwrap();
}

fn masked_context(masked: &[&str], max_scan_rows: u64) -> (tempfile::TempDir, ToolContext) {
    let (dir, path) = sqlmatic_tools::test_support::fixture_db(SHOP);
    let spec: sqlmatic_tools::TargetSpec =
        serde_json::from_value(json!({"name": "shop", "path": path, "masked_columns": masked}))
            .unwrap();
    let config = ToolsConfig { max_scan_rows, ..ToolsConfig::default() };
    (dir, ToolContext::new(sqlmatic_tools::TargetDatabase::new(spec, &config), config.limits()))
}

#[tokio::test]
async fn masked_columns_read_as_null_everywhere() {
    let (_dir, ctx) = masked_context(&["customers.name", "Orders.Total"], 0);
    let q = |sql: &str| call(&ctx, "execute_query", json!({"sql": sql}));
    assert_eq!(
        q("SELECT id, name FROM customers ORDER BY id").await.unwrap()["rows"][0],
        json!([1, null])
    );
    assert_eq!(q("SELECT * FROM customers WHERE id = 1").await.unwrap()["rows"][0][1], Value::Null);
    assert_eq!(
        q("SELECT count(*) FROM customers WHERE name = 'Ada'").await.unwrap()["rows"][0][0],
        0,
        "no probing through WHERE"
    );
    assert_eq!(
        q("SELECT count(*) FROM customers WHERE name LIKE 'A%'").await.unwrap()["rows"][0][0],
        0
    );
    assert_eq!(
        q("SELECT max(total) FROM big_orders").await.unwrap()["rows"][0][0],
        Value::Null,
        "through views too"
    );
    assert_eq!(
        q("SELECT country FROM customers WHERE id = 1").await.unwrap()["rows"][0][0],
        "UK",
        "other columns are intact"
    );
    let schema =
        call(&ctx, "get_schema", json!({"tables": ["customers"], "sample_rows": 2})).await.unwrap();
    let name = &schema["tables"][0]["columns"][1];
    assert_eq!(name["masked"], true);
    assert!(schema["tables"][0]["columns"][0].get("masked").is_none());
    assert_eq!(schema["tables"][0]["sample_rows"][0][1], Value::Null);
    assert!(
        schema["ddl"].as_str().unwrap().contains("name TEXT MASKED NOT NULL"),
        "{}",
        schema["ddl"]
    );
}

#[tokio::test]
async fn the_cost_gate_refuses_huge_scans_before_they_run() {
    let (_dir, ctx) = masked_context(&[], 5);
    let q = |sql: &str| call(&ctx, "execute_query", json!({"sql": sql}));
    let err = q("SELECT count(*) FROM orders a, orders b").await.unwrap_err();
    assert_eq!(err.code, ToolErrorCode::QueryTooExpensive);
    assert!(
        err.model_message.contains("about 9 rows") && err.model_message.contains("SCAN"),
        "{}",
        err.model_message
    );
    q("SELECT * FROM orders").await.unwrap();
    q("SELECT * FROM orders a JOIN customers c ON c.id = a.customer_id WHERE a.id = 2")
        .await
        .unwrap();
}

#[tokio::test]
async fn show_chart_specs_are_checked_against_the_turns_results() {
    let (_dir, ctx) = fixture_context(SHOP);
    let chart = |args: Value| call(&ctx, "show_chart", args);
    let err = chart(json!({"kind": "bar", "x": "name", "y": "score"})).await.unwrap_err();
    assert!(err.model_message.contains("no query has run"), "{}", err.model_message);
    call(
        &ctx,
        "execute_query",
        json!({"sql": "SELECT name, score, country FROM customers ORDER BY id"}),
    )
    .await
    .unwrap();
    let spec =
        chart(json!({"kind": "bar", "x": "name", "y": "score", "title": "Scores"})).await.unwrap();
    assert_eq!(
        spec,
        json!({"kind": "bar", "x": "name", "y": ["score"], "title": "Scores", "query": 0, "points": 3})
    );
    for (args, fragment) in [
        (
            json!({"kind": "bar", "x": "nope", "y": "score"}),
            "no column `nope`; its columns are: name, score, country",
        ),
        (json!({"kind": "line", "x": "name", "y": ["country"]}), "`country` is not numeric"),
        (json!({"kind": "pie", "x": "name", "y": ["score", "score"]}), "exactly one y"),
        (json!({"kind": "bar", "x": "name", "y": "score", "query": 5}), "query 5 does not exist"),
        (json!({"kind": "donut", "x": "name", "y": "score"}), "invalid arguments"),
        (
            json!({"kind": "bar", "x": "name", "y": "score", "code": "alert(1)"}),
            "invalid arguments",
        ),
    ] {
        let err = chart(args.clone()).await.unwrap_err();
        assert!(err.model_message.contains(fragment), "{args}: {}", err.model_message);
    }
    // the turn's state, which the reply and the events are built from, recorded every call
    call(&ctx, "execute_query", json!({"sql": "SELECT nope FROM customers"})).await.unwrap_err();
    let turn = ctx.turn.lock().unwrap().clone();
    assert_eq!(turn.charts.len(), 1);
    assert_eq!(turn.charts[0].y, ["score"]);
    assert_eq!(turn.queries.len(), 2);
    assert_eq!(turn.queries[0].result.row_count, 3);
    assert_eq!(turn.queries[1].sql, "SELECT nope FROM customers");
    assert_eq!(turn.queries[1].error.as_ref().unwrap().code, "sql_error");
    assert_eq!(turn.successful().len(), 1);
}

/// Every registered tool's schema, as each provider receives it, follows that provider's
/// published rules (OpenAI strict function calling; Gemini's and other OpenAI-compatible
/// servers' subset; Anthropic's input_schema), so a new tool cannot regress them.
#[test]
fn every_tool_schema_is_accepted_by_every_provider() {
    let registry = ToolRegistry::builtin();
    let names: Vec<String> = registry.names().iter().map(|n| n.to_string()).collect();
    let defs = registry.toolset(&names).unwrap().definitions();
    assert_eq!(defs.len(), names.len());
    for d in defs.iter() {
        let canonical = &d.parameters;
        let strict = sqlmatic_tools::schema::openai_strict(canonical);
        for (provider, violations) in [
            (
                "canonical (Gemini, OpenAI-compatible servers)",
                sqlmatic_tools::schema::check_canonical(canonical),
            ),
            ("OpenAI strict", sqlmatic_tools::schema::check_openai_strict(&strict)),
            ("Anthropic", sqlmatic_tools::schema::check_anthropic(canonical)),
        ] {
            assert!(violations.is_empty(), "{} for {provider}: {violations:?}", d.name);
        }
        assert!(
            d.name.len() <= 64 && d.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        );
        assert!(!d.description.is_empty() && d.description.len() <= 1024, "{}", d.name);
    }
}

/// A read-only database is never offered `execute_write`; a writable one is. The definitions
/// are built once per toolset and shared by every turn's model calls.
#[test]
fn execute_write_is_offered_only_where_writes_are_possible() {
    let names: Vec<String> =
        ["execute_query", "execute_write"].iter().map(|n| n.to_string()).collect();
    let toolset = ToolRegistry::builtin().toolset(&names).unwrap();
    let config = ToolsConfig::default();
    let (_dir, read_only) = fixture_target("CREATE TABLE t(x);", &config);
    assert!(read_only.spec().read_only);
    let (_dir2, path) = sqlmatic_tools::test_support::fixture_db("CREATE TABLE t(x);");
    let spec = sqlmatic_tools::TargetSpec {
        read_only: false,
        ..sqlmatic_tools::TargetSpec::read_only("writable", path)
    };
    let writable = sqlmatic_tools::TargetDatabase::new(spec, &config);
    let offered =
        |target| toolset.definitions_for(target).iter().map(|d| d.name.clone()).collect::<Vec<_>>();
    assert_eq!(offered(&read_only), ["execute_query"]);
    assert_eq!(offered(&writable), ["execute_query", "execute_write"]);
    assert!(Arc::ptr_eq(&toolset.definitions_for(&writable), &toolset.definitions_for(&writable)));
}

/// What a strict model sends (every property, `null` where it has nothing to say) is what the
/// tools read.
#[tokio::test]
async fn strict_mode_arguments_with_nulls_and_named_pairs_work() {
    let (_dir, ctx) = fixture_context(SHOP);
    let out = call(&ctx, "get_schema", json!({"tables": null, "sample_rows": null})).await.unwrap();
    assert_eq!(out["tables"].as_array().unwrap().len(), 3);
    let out = call(
        &ctx,
        "execute_query",
        json!({"sql": "SELECT count(*) FROM customers", "params": null}),
    )
    .await
    .unwrap();
    assert_eq!(out["rows"], json!([[3]]));
    let out = call(
        &ctx,
        "execute_query",
        json!({"sql": "SELECT name FROM customers WHERE country = :c", "params": [{"name": "c", "value": "UK"}]}),
    )
    .await
    .unwrap();
    assert_eq!(out["rows"], json!([["Ada"]]));
}

/// Integers keep every digit both ways: i64 values as JSON numbers, larger ones as text, never
/// as a rounded float.
#[tokio::test]
async fn huge_integers_round_trip_exactly() {
    let (_dir, ctx) = fixture_context(SHOP);
    let out = call(
        &ctx,
        "execute_query",
        json!({"sql": "SELECT ?, ?, ?, 9223372036854775807, -9223372036854775808",
               "params": [9223372036854775807_i64, 18446744073709551615_u64, -9007199254740993_i64]}),
    )
    .await
    .unwrap();
    assert_eq!(
        out["rows"][0],
        json!([
            9223372036854775807_i64,
            "18446744073709551615",
            -9007199254740993_i64,
            9223372036854775807_i64,
            i64::MIN
        ])
    );
    let text = serde_json::to_string(&out["rows"]).unwrap();
    assert!(
        text.contains("9223372036854775807,\"18446744073709551615\",-9007199254740993"),
        "{text}"
    );
}
