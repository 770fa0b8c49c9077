//! Describe a SQLite file as the agent sees it: tables with row counts, then the compact DDL and
//! anything broken: `cargo run -p sqlmatic-tools --example introspect -- some.db`.
//! Without an argument it describes a small database it makes in a temp directory.

#![allow(clippy::print_stdout)] // an example prints its results

use sqlmatic_tools::{TargetDatabase, TargetSpec, ToolsConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scratch = tempfile::tempdir()?;
    let path = match std::env::args().nth(1) {
        Some(path) => std::path::PathBuf::from(path),
        None => {
            let path = scratch.path().join("shop.db");
            rusqlite::Connection::open(&path)?.execute_batch(
                "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT);
                 CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), total REAL);
                 CREATE INDEX orders_customer ON orders(customer_id);
                 CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
                 CREATE VIEW stale AS SELECT dropped_column FROM customers;",
            )?;
            path
        }
    };
    let config = ToolsConfig::default();
    let limits = config.limits();
    let database = TargetDatabase::new(TargetSpec::read_only("db", path), &config);
    for table in database.list_tables(&limits).await? {
        match table.row_count {
            Some(n) if table.row_count_exact => {
                println!("{:?} {}: {n} rows", table.kind, table.name)
            }
            Some(n) => println!("{:?} {}: about {n} rows", table.kind, table.name),
            None => println!("{:?} {}", table.kind, table.name),
        }
    }
    let schema = database.schema(&limits).await?;
    println!("\nschema version {}:\n{}", schema.schema_version, schema.ddl);
    for table in schema.tables.iter().filter(|t| t.error.is_some()) {
        if let Some(e) = &table.error {
            println!("broken: {} ({}: {})", table.name, e.code, e.message);
        }
    }
    Ok(())
}
