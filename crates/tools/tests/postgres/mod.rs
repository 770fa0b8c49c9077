//! The PostgreSQL engine against a real PostgreSQL server (a throwaway cluster this process
//! starts): typed values, the catalogue, read-only enforced by PostgreSQL, the role check,
//! masked columns by column privileges, limits, a hostile corpus with a checksum of every table.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sqlmatic_models::{QueryParams, TableKind};
use sqlmatic_tools::test_support::assert_refused;
use sqlmatic_tools::test_support::postgres::{READER, WRITER, cluster, grant_reader, spec};
use sqlmatic_tools::{
    QueryAudit, TargetDatabase, TargetSpec, ToolContext, ToolErrorCode, ToolsConfig,
};

use super::call;

const AUDIT: QueryAudit<'static> =
    QueryAudit { user: "test", thread_id: None, source: "test", observer: None };

/// Every kind of thing a real PostgreSQL database has.
const FIXTURE: &str = r#"
CREATE SCHEMA sales;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN positive_int AS integer CHECK (VALUE > 0);
CREATE TABLE customers (
  id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL,
  email text NOT NULL UNIQUE,
  card text,
  mood mood DEFAULT 'ok',
  tags text[] DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT '2024-01-02 03:04:05+00',
  name_upper text GENERATED ALWAYS AS (upper(name)) STORED
);
COMMENT ON TABLE customers IS 'People who buy';
COMMENT ON COLUMN customers.email IS 'Login e-mail';
INSERT INTO customers (name, email, card, mood, tags) VALUES
  ('Ada', 'ada@x', '4111', 'happy', '{vip,early}'), ('Linus', 'linus@x', NULL, 'sad', '{}'),
  ('Grace', 'grace@x', '5500', 'ok', '{vip}');
CREATE TABLE sales.orders (
  id bigint PRIMARY KEY,
  customer_id integer NOT NULL REFERENCES public.customers(id) ON DELETE CASCADE,
  amount numeric(30,10) NOT NULL, qty positive_int NOT NULL, ratio double precision, paid boolean,
  placed_on date, note jsonb, receipt bytea, span interval, ref uuid, at timestamptz
);
INSERT INTO sales.orders VALUES
  (1, 1, 12.5, 2, 0.25, true, '2024-03-01', '{"k": [1, 2]}', '\x0102ff', '1 day 02:00',
   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-03-01 10:00:00+00'),
  (2, 1, 12345678901234567890.0123456789, 1, NULL, false, '2024-03-02', NULL, NULL, NULL, NULL, NULL),
  (3, 2, 0.1, 3, 1e300, NULL, NULL, '[]', NULL, NULL, NULL, NULL);
CREATE INDEX orders_paid_on ON sales.orders (placed_on) WHERE paid;
CREATE VIEW sales.big_orders AS SELECT id, amount FROM sales.orders WHERE amount > 100;
CREATE MATERIALIZED VIEW sales.totals AS SELECT customer_id, sum(amount) AS total FROM sales.orders GROUP BY 1;
CREATE TABLE events (id bigint, at date NOT NULL, what text) PARTITION BY RANGE (at);
CREATE TABLE events_2023 PARTITION OF events FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
INSERT INTO events SELECT g, date '2023-06-01' + g % 400, 'e' || g FROM generate_series(1, 1000) g;
CREATE TABLE big AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 20000) g;
CREATE SEQUENCE counter;
"#;

/// A database `name` with the fixture, the reader granted everything but `customers.card`.
fn fixture(name: &str) {
    let c = cluster();
    c.database(name, FIXTURE);
    grant_reader(name, &["public", "sales"]);
    c.psql(
        name,
        &format!(
            "REVOKE SELECT ON customers FROM {READER}; \
             GRANT SELECT (id, name, email, mood, tags, created_at, name_upper) ON customers TO {READER}; \
             GRANT ALL ON ALL TABLES IN SCHEMA public, sales TO {WRITER}; \
             GRANT USAGE ON SCHEMA sales TO {WRITER}; GRANT USAGE, UPDATE ON SEQUENCE counter TO {WRITER};"
        ),
    );
}

fn reader_target(database: &str, config: &ToolsConfig) -> Arc<TargetDatabase> {
    let spec = TargetSpec {
        masked_columns: vec!["customers.card".into()],
        ..spec("pg", READER, database)
    };
    TargetDatabase::new(spec, config)
}

async fn query(
    db: &TargetDatabase,
    sql: &str,
) -> Result<sqlmatic_models::QueryResult, sqlmatic_tools::ToolError> {
    db.query(sql, &QueryParams::None, &ToolsConfig::default().limits(), &AUDIT).await
}

#[tokio::test]
async fn values_arrive_typed_and_without_loss() {
    fixture("pg_values");
    let db = reader_target("pg_values", &ToolsConfig::default());
    db.verify().await.unwrap();
    let r = query(
        &db,
        "SELECT id, amount, qty, ratio, paid, placed_on, note, receipt, span, ref, at, 1 AS id \
         FROM sales.orders ORDER BY 1",
    )
    .await
    .unwrap();
    let names: Vec<&str> = r.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "id",
            "amount",
            "qty",
            "ratio",
            "paid",
            "placed_on",
            "note",
            "receipt",
            "span",
            "ref",
            "at",
            "id"
        ]
    );
    assert_eq!(r.columns[1].decl_type.as_deref(), Some("numeric"));
    assert_eq!(
        r.rows[0],
        vec![
            json!(1),
            json!(12.5),
            json!(2),
            json!(0.25),
            json!(true),
            json!("2024-03-01"),
            json!({"k": [1, 2]}),
            json!({"$blob": "AQL/"}),
            json!("1 day 02:00:00"),
            json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            json!("2024-03-01T10:00:00+00:00"),
            json!(1),
        ]
    );
    // more digits than a double holds: an exact string, not a rounded number
    assert_eq!(r.rows[1][1], json!("12345678901234567890.0123456789"));
    assert_eq!(r.rows[2][1], json!(0.1));
    assert_eq!(r.rows[2][3], json!(1e300));
    assert_eq!(r.rows[1][6], Value::Null);
    // enums and arrays
    let r = query(&db, "SELECT mood, tags FROM customers ORDER BY id").await.unwrap();
    assert_eq!(r.rows[0], vec![json!("happy"), json!(["vip", "early"])]);
    // positional parameters, sent as text so PostgreSQL parses them as the column's type
    let r = db
        .query(
            "SELECT id FROM sales.orders WHERE amount > $1 AND placed_on >= $2 ORDER BY id",
            &QueryParams::Positional(vec![json!(1), json!("2024-03-01")]),
            &ToolsConfig::default().limits(),
            &AUDIT,
        )
        .await
        .unwrap();
    assert_eq!(r.rows, vec![vec![json!(1)], vec![json!(2)]]);
}

#[tokio::test]
async fn the_catalogue_becomes_the_structure() {
    fixture("pg_catalogue");
    let db = reader_target("pg_catalogue", &ToolsConfig::default());
    let s = db.schema(&ToolsConfig::default().limits()).await.unwrap();
    let table = |n: &str| {
        s.tables.iter().find(|t| t.name == n).unwrap_or_else(|| {
            panic!("no {n}: {:?}", s.tables.iter().map(|t| &t.name).collect::<Vec<_>>())
        })
    };
    let customers = table("customers");
    assert_eq!(customers.description.as_deref(), Some("People who buy"));
    let col = |t: &sqlmatic_models::TableInfo, n: &str| {
        t.columns.iter().find(|c| c.name == n).unwrap().clone()
    };
    assert_eq!(col(customers, "id").primary_key, 1);
    assert_eq!(col(customers, "id").default.as_deref(), Some("GENERATED ALWAYS AS IDENTITY"));
    assert_eq!(col(customers, "email").description.as_deref(), Some("Login e-mail"));
    assert!(col(customers, "card").masked, "a column the role cannot read is masked");
    assert!(col(customers, "mood").data_type.contains("ENUM('sad', 'ok', 'happy')"));
    assert_eq!(col(customers, "tags").data_type, "text[]");
    assert_eq!(col(customers, "name_upper").generated, Some(sqlmatic_models::Generated::Stored));
    assert_eq!(customers.row_count, Some(3));
    let orders = table("sales.orders");
    assert_eq!(orders.schema.as_deref(), Some("sales"));
    assert!(col(orders, "qty").data_type.contains("DOMAIN over integer"));
    assert_eq!(orders.foreign_keys[0].references_table, "customers");
    assert_eq!(orders.foreign_keys[0].on_delete, "CASCADE");
    assert!(orders.indexes.iter().any(|i| i.name == "orders_paid_on" && i.partial));
    assert_eq!(table("sales.big_orders").kind, TableKind::View);
    assert_eq!(table("sales.totals").kind, TableKind::MaterializedView);
    let events = table("events");
    assert_eq!(events.partitions, ["events_2023", "events_2024"]);
    assert_eq!(events.row_count, Some(1000), "the parent counts its partitions' rows");
    assert!(!s.tables.iter().any(|t| t.name == "events_2023"), "partitions are grouped");
    assert_eq!(table("big").row_count, Some(20000));
    assert!(s.ddl.contains("TABLE sales.orders("), "{}", s.ddl);
    // the prompt's DDL names schema-qualified tables so they can be pasted into SQL
    let r = query(&db, "SELECT count(*) FROM events").await.unwrap();
    assert_eq!(r.rows[0][0], json!(1000));

    // DDL from another session changes the fingerprint the watcher polls
    let before = db.schema_version().await.unwrap();
    cluster().psql("pg_catalogue", "ALTER TABLE big ADD COLUMN extra int");
    let after = db.schema_version().await.unwrap();
    assert_ne!(before, after);
    let s = db.schema(&ToolsConfig::default().limits()).await.unwrap();
    assert!(
        s.tables.iter().any(|t| t.name == "big" && t.columns.iter().any(|c| c.name == "extra"))
    );
    cluster().psql("pg_catalogue", "COMMENT ON TABLE big IS 'lots'");
    assert_ne!(db.schema_version().await.unwrap(), after, "comments are part of the fingerprint");

    // the tools see the same
    let ctx = ToolContext::new(db.clone(), ToolsConfig::default().limits());
    let out =
        call(&ctx, "get_schema", json!({"tables": ["customers"], "sample_rows": 2})).await.unwrap();
    let sample = &out["tables"][0]["sample_rows"];
    assert_eq!(sample.as_array().unwrap().len(), 2, "{out}");
    let card = out["tables"][0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c["name"] == "card")
        .unwrap();
    assert_eq!(sample[0][card], Value::Null, "masked columns never show a value");
    let meta = call(&ctx, "get_metadata", json!({})).await.unwrap();
    assert_eq!(meta["engine"], "postgresql");
    assert!(meta["engine_version"].as_str().unwrap().chars().next().unwrap().is_ascii_digit());
}

#[tokio::test]
async fn masked_columns_are_refused_by_postgresql_and_named() {
    fixture("pg_masked");
    let db = reader_target("pg_masked", &ToolsConfig::default());
    db.schema(&ToolsConfig::default().limits()).await.unwrap();
    for sql in [
        "SELECT card FROM customers",
        "SELECT * FROM customers",
        "SELECT count(card) FROM customers",
    ] {
        let err = query(&db, sql).await.unwrap_err();
        assert_eq!(err.code, ToolErrorCode::ColumnMasked, "{sql}: {err:?}");
        assert!(err.model_message.contains("customers.card"), "{}", err.model_message);
    }
    query(&db, "SELECT id, name FROM customers").await.unwrap();

    // a masked column the role CAN read is a configuration error
    let leaky = TargetSpec {
        masked_columns: vec!["customers.email".into()],
        ..spec("pg", READER, "pg_masked")
    };
    let err = TargetDatabase::new(leaky, &ToolsConfig::default()).verify().await.unwrap_err();
    assert_eq!(err.code, ToolErrorCode::UnsafeRole, "{err:?}");
    assert!(
        err.model_message.contains("customers.email")
            && err.model_message.contains("GRANT SELECT ("),
        "{}",
        err.model_message
    );
}

#[tokio::test]
async fn roles_that_can_write_or_escape_are_refused_unless_allowed() {
    fixture("pg_roles");
    let config = ToolsConfig::default();
    let writer = TargetDatabase::new(spec("pg", WRITER, "pg_roles"), &config);
    let err = writer.verify().await.unwrap_err();
    assert_eq!(err.code, ToolErrorCode::UnsafeRole);
    assert!(err.model_message.contains("may write to"), "{}", err.model_message);
    let err = query(&writer, "SELECT 1").await.unwrap_err();
    assert_eq!(err.code, ToolErrorCode::UnsafeRole, "queries are refused too");

    let admin = TargetDatabase::new(spec("pg", "sqlmatic_admin", "pg_roles"), &config);
    let err = admin.verify().await.unwrap_err();
    assert!(err.model_message.contains("superuser"), "{}", err.model_message);
    let allowed =
        TargetSpec { allow_privileged_role: true, ..spec("pg", "sqlmatic_admin", "pg_roles") };
    TargetDatabase::new(allowed, &config).verify().await.unwrap();

    // a writable target may use a writing role, and runs approved writes in their own transaction
    let writable = TargetSpec { read_only: false, ..spec("pg", WRITER, "pg_roles") };
    let writable = TargetDatabase::new(writable, &config);
    writable.verify().await.unwrap();
    writable.check_write("UPDATE sales.orders SET paid = true WHERE id = 3").await.unwrap();
    let out = writable
        .write(
            "UPDATE sales.orders SET paid = true WHERE id > $1",
            &QueryParams::Positional(vec![json!(1)]),
            &config.limits(),
            &AUDIT,
        )
        .await
        .unwrap();
    assert_eq!(out.rows_affected, 2);
    assert!(!out.ddl);
    assert_eq!(
        writable.check_write("SELECT 1").await.unwrap_err().code,
        ToolErrorCode::InvalidArgs
    );
    assert_eq!(writable.check_write("VACUUM").await.unwrap_err().code, ToolErrorCode::ReadOnly);
    // ...while a read-only target refuses writes before asking anyone
    let ro = reader_target("pg_roles", &config);
    assert_eq!(ro.check_write("DELETE FROM big").await.unwrap_err().code, ToolErrorCode::ReadOnly);
}

#[tokio::test]
async fn limits_stop_the_transfer_and_say_so() {
    fixture("pg_limits");
    let config = ToolsConfig { max_rows: 100, query_timeout_ms: 1500, ..ToolsConfig::default() };
    let db = reader_target("pg_limits", &config);
    let r = db
        .query("SELECT * FROM big ORDER BY id", &QueryParams::None, &config.limits(), &AUDIT)
        .await
        .unwrap();
    assert_eq!(r.row_count, 100);
    assert!(r.truncated);
    assert_eq!(r.total_rows, Some(20000));
    // the plan expects 1,000 rows (fewer than the cap: one Execute, parallel workers allowed)
    // and there are 50,000: the stream still stops at the cap
    let wide = ToolsConfig { max_rows: 2000, ..config.clone() };
    let sql = "SELECT g FROM generate_series(1, (SELECT 50000)) g";
    let r = db.query(sql, &QueryParams::None, &wide.limits(), &AUDIT).await.unwrap();
    assert_eq!((r.row_count, r.truncated, r.total_rows), (2000, true, Some(50000)));
    let small = ToolsConfig { max_result_bytes: 2048, ..config.clone() };
    let r =
        db.query("SELECT h FROM big", &QueryParams::None, &small.limits(), &AUDIT).await.unwrap();
    assert!(r.truncated && r.row_count < 100, "{} rows", r.row_count);

    let started = std::time::Instant::now();
    let err = db
        .query(
            "SELECT count(*) FROM generate_series(1, 100000000000) g",
            &QueryParams::None,
            &ToolsConfig { max_plan_cost: 0.0, max_scan_rows: 0, ..config.clone() }.limits(),
            &AUDIT,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ToolErrorCode::QueryTimeout, "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(6));
    let err = db
        .query("SELECT * FROM big a, big b, big c", &QueryParams::None, &config.limits(), &AUDIT)
        .await
        .unwrap_err();
    assert_eq!(err.code, ToolErrorCode::QueryTooExpensive, "{err:?}");
    // the pool survived all of that
    query(&db, "SELECT 1 AS one").await.unwrap();
    let err = query(&db, "SELECT nope FROM big").await.unwrap_err();
    assert_eq!(err.code, ToolErrorCode::SqlError);
    let err = query(&db, "SELECT * FROM nothing_here").await.unwrap_err();
    assert!(err.model_message.contains("tables are:"), "{}", err.model_message);
}

/// Statements that would write, escape, lock, wait or blow up. With a read-only role every one
/// is refused or stopped and no row changes; with a superuser and `allow_privileged_role`, the
/// parser alone must hold them.
fn hostile() -> Vec<&'static str> {
    vec![
        "DELETE FROM big",
        "UPDATE customers SET name = 'x'",
        "INSERT INTO big VALUES (0, 'x')",
        "TRUNCATE big",
        "DROP TABLE big",
        "ALTER TABLE big ADD COLUMN y int",
        "CREATE TABLE t2 (x int)",
        "CREATE TEMP TABLE t3 AS SELECT 1",
        "SELECT * INTO newtable FROM big",
        "WITH d AS (DELETE FROM big RETURNING *) SELECT count(*) FROM d",
        "WITH u AS (UPDATE customers SET name = 'x' RETURNING id) SELECT * FROM u",
        "WITH i AS (INSERT INTO big VALUES (0, 'x') RETURNING id) SELECT * FROM i",
        "SELECT * FROM big FOR UPDATE",
        "SELECT * FROM big FOR SHARE",
        "SELECT * FROM customers FOR NO KEY UPDATE",
        "LOCK TABLE big IN ACCESS EXCLUSIVE MODE",
        "DO $$ BEGIN DELETE FROM big; END $$",
        "CALL some_procedure()",
        "PREPARE p AS DELETE FROM big",
        "EXECUTE p",
        "DECLARE c CURSOR WITH HOLD FOR SELECT * FROM big",
        "SET ROLE sqlmatic_admin",
        "RESET ROLE",
        "SET SESSION AUTHORIZATION sqlmatic_admin",
        "SET statement_timeout = 0",
        "SELECT set_config('statement_timeout', '0', false)",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "VACUUM big",
        "ANALYZE big",
        "REFRESH MATERIALIZED VIEW sales.totals",
        "SELECT nextval('counter')",
        "SELECT setval('counter', 100)",
        "COPY big TO PROGRAM 'touch /tmp/sqlmatic-pwned'",
        "COPY big TO '/tmp/sqlmatic-pwned.csv'",
        "COPY big FROM '/etc/passwd'",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT pg_read_binary_file('/etc/passwd')",
        "SELECT * FROM pg_ls_dir('/')",
        "SELECT pg_stat_file('/etc/passwd')",
        "SELECT lo_import('/etc/passwd')",
        "SELECT lo_export(1, '/tmp/sqlmatic-lo')",
        "SELECT * FROM dblink('dbname=postgres', 'DELETE FROM big') AS t(x text)",
        "SELECT pg_advisory_lock(42)",
        "SELECT pg_try_advisory_xact_lock(42)",
        "SELECT pg_terminate_backend(pg_backend_pid())",
        "SELECT pg_cancel_backend(1)",
        "SELECT pg_reload_conf()",
        "LISTEN channel",
        "NOTIFY channel, 'hi'",
        "SELECT pg_notify('channel', 'hi')",
        "SELECT query_to_xml('DELETE FROM big', true, true, '')",
        "SELECT pg_sleep(30)",
        "SELECT count(*) FROM generate_series(1, 100000000000)",
        "SELECT length(repeat('x', 1073741823)) FROM generate_series(1, 3)",
        "SELECT repeat(repeat('x', 100000000), 100)",
        "GRANT SELECT ON customers TO public",
        "CREATE ROLE intruder LOGIN SUPERUSER",
        "ALTER SYSTEM SET fsync = on",
        "SELECT 1; DELETE FROM big",
        "BEGIN",
        "COMMIT",
        "SAVEPOINT s",
        "CREATE EXTENSION dblink",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'DELETE FROM big RETURNING 1'",
        "SELECT pg_create_restore_point('x')",
        "SELECT txid_current()",
        "SELECT pg_export_snapshot()",
        "SECURITY LABEL ON TABLE big IS 'x'",
        "COMMENT ON TABLE big IS 'defaced'",
        "REINDEX TABLE big",
        "CLUSTER big",
        "DISCARD ALL",
        "CHECKPOINT",
    ]
}

async fn assert_all_refused(db: &TargetDatabase, database: &str) {
    let before = cluster().checksum(database);
    let config = ToolsConfig { query_timeout_ms: 1000, ..ToolsConfig::default() };
    assert!(hostile().len() >= 50);
    for sql in hostile() {
        assert_refused(sql, db.query(sql, &QueryParams::None, &config.limits(), &AUDIT).await);
    }
    assert_eq!(cluster().checksum(database), before, "a row, a relation or a role changed");
    assert!(!std::path::Path::new("/tmp/sqlmatic-pwned").exists());
    // and reads still work afterwards
    assert_eq!(query(db, "SELECT count(*) FROM big").await.unwrap().rows[0][0], json!(20000));
}

#[tokio::test]
async fn the_hostile_corpus_changes_nothing_with_a_read_only_role() {
    fixture("pg_hostile_ro");
    let db = reader_target("pg_hostile_ro", &ToolsConfig::default());
    db.verify().await.unwrap();
    assert_all_refused(&db, "pg_hostile_ro").await;
}

#[tokio::test]
async fn the_parser_alone_holds_for_a_superuser() {
    fixture("pg_hostile_su");
    let spec =
        TargetSpec { allow_privileged_role: true, ..spec("pg", "sqlmatic_admin", "pg_hostile_su") };
    let db = TargetDatabase::new(spec, &ToolsConfig::default());
    db.verify().await.unwrap();
    assert_all_refused(&db, "pg_hostile_su").await;
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error() {
    let spec = TargetSpec {
        url: Some("postgres://nobody@127.0.0.1:1/none?sslmode=disable".into()),
        path: None,
        ..TargetSpec::read_only("down", "")
    };
    let db =
        TargetDatabase::new(spec, &ToolsConfig { pool_wait_ms: 500, ..ToolsConfig::default() });
    let err = db.health().await.unwrap_err();
    assert_eq!(err.code, ToolErrorCode::DatabaseUnavailable, "{err:?}");
    assert!(err.model_message.contains("cannot be reached"), "{}", err.model_message);
}
