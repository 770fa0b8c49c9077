//! The PostgreSQL engine against the PostgreSQL floor, in one run on one throwaway cluster:
//! the structure (first build and cached), a point lookup and a GROUP BY through
//! `TargetDatabase::query` (guard, read-only transaction with its `SET LOCAL`s, pipelined
//! prepares and `EXPLAIN`, portal, JSON conversion), beside a plain `tokio-postgres` client
//! running the same statements prepared once (the least any client can do).
//!
//! `cargo bench -p sqlmatic-tools --bench postgres` (or `cargo xtask bench`, which runs it).
//! Writes `target/bench/postgres.json`. Needs PostgreSQL's server binaries (as the tests do).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use serde_json::json;
use sqlmatic_models::QueryParams;
use sqlmatic_tools::test_support::median_ms;
use sqlmatic_tools::test_support::postgres::{READER, cluster, grant_reader, spec};
use sqlmatic_tools::{QueryAudit, TargetDatabase, ToolsConfig};

const SETUP: &str = "
CREATE TABLE customers AS SELECT g AS id, (ARRAY['DE','FR','ES','IT','UK','US'])[1 + g % 6] AS country,
  'customer ' || g AS name FROM generate_series(1, 100000) g;
ALTER TABLE customers ADD PRIMARY KEY (id);
CREATE TABLE orders AS SELECT g AS id, 1 + g % 100000 AS customer_id,
  (ARRAY['pending','shipped','delivered','cancelled','returned'])[1 + g % 5] AS status,
  round((g % 10000) / 7.0, 2)::numeric(10,2) AS amount, date '2022-01-01' + g % 1000 AS placed_on
  FROM generate_series(1, 1000000) g;
ALTER TABLE orders ADD PRIMARY KEY (id);
ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers(id);
CREATE INDEX orders_customer ON orders(customer_id);
DO $$ BEGIN FOR i IN 1..200 LOOP
  EXECUTE format('CREATE TABLE extra_%s (id int PRIMARY KEY, a text, b numeric, c date, d jsonb)', i);
END LOOP; END $$;
";

const POINT: &str = "SELECT * FROM orders WHERE id = 123457";
const GROUP_BY: &str = "SELECT status, count(*) AS n, sum(amount) AS total FROM orders GROUP BY status ORDER BY status";
/// What a plain client reads for a structure: every column of every table, in one query.
const STRUCTURE_FLOOR: &str = "SELECT c.table_name, c.column_name, c.data_type, c.is_nullable, c.column_default \
  FROM information_schema.columns c WHERE c.table_schema = 'public' ORDER BY c.table_name, c.ordinal_position";

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let c = cluster();
    c.database("bench_pg", SETUP);
    grant_reader("bench_pg", &["public"]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let config = ToolsConfig { max_queries_per_user: 64, ..ToolsConfig::default() };
    let limits = config.limits();
    let audit = QueryAudit { user: "bench", thread_id: None, source: "bench", observer: None };
    let (floor, connection) = rt
        .block_on(tokio_postgres::connect(&c.url(READER, "bench_pg"), tokio_postgres::NoTls))
        .unwrap();
    rt.spawn(connection);

    let mut report = Vec::new();
    let mut row = |name: &str, ours: f64, floor_ms: f64, floor: &str| {
        println!("| {name} | {ours:.4} | {floor_ms:.4} | {:.2}× | {floor} |", ours / floor_ms);
        report.push(json!({"scenario": name, "sqlmatic_ms": ours, "floor_ms": floor_ms, "ratio": ours / floor_ms, "floor": floor}));
    };
    println!(
        "| scenario | sqlmatic ms | PostgreSQL floor ms | ratio | floor (tokio-postgres, same run) |"
    );
    println!("|---|---|---|---|---|");

    // structure: a fresh target each time (pool, role check, catalogue) against one
    // information_schema query
    let first = median_ms(5, || {
        let db = TargetDatabase::new(spec("bench", READER, "bench_pg"), &config);
        rt.block_on(db.schema(&limits)).unwrap();
    });
    let stmt = rt.block_on(floor.prepare(STRUCTURE_FLOOR)).unwrap();
    let floor_first = median_ms(5, || {
        rt.block_on(floor.query(&stmt, &[])).unwrap();
    });
    row("202 tables: first structure", first, floor_first, "information_schema.columns, prepared");

    let db = TargetDatabase::new(spec("bench", READER, "bench_pg"), &config);
    rt.block_on(db.schema(&limits)).unwrap();
    let cached = median_ms(200, || {
        rt.block_on(db.schema(&limits)).unwrap();
    });
    let one = rt.block_on(floor.prepare("SELECT 1")).unwrap();
    let round_trip = median_ms(200, || {
        rt.block_on(floor.query(&one, &[])).unwrap();
    });
    row("202 tables: cached structure", cached, round_trip, "one round trip (SELECT 1)");
    let fingerprint = median_ms(200, || {
        rt.block_on(db.schema_version()).unwrap();
    });
    row(
        "202 tables: catalogue fingerprint (each watcher poll; a structure 250 ms after the last check)",
        fingerprint,
        round_trip,
        "one round trip (SELECT 1)",
    );

    for (name, sql, n) in
        [("1M rows: point lookup", POINT, 2000), ("1M rows: GROUP BY", GROUP_BY, 20)]
    {
        rt.block_on(db.query(sql, &QueryParams::None, &limits, &audit)).unwrap();
        let ours = median_ms(n, || {
            rt.block_on(db.query(sql, &QueryParams::None, &limits, &audit)).unwrap();
        });
        let stmt = rt.block_on(floor.prepare(sql)).unwrap();
        let floor_ms = median_ms(n, || {
            rt.block_on(floor.query(&stmt, &[])).unwrap();
        });
        row(name, ours, floor_ms, "the same SQL, prepared once");
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("postgres.json"), serde_json::to_string_pretty(&report).unwrap())
        .unwrap();
}
