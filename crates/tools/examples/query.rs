//! Open a SQLite file (or a `postgres://` URL) and run one sandboxed, read-only query, as the agent's `execute_query`
//! tool does: `cargo run -p sqlmatic-tools --example query -- shop.db "SELECT ..."`.
//! Without arguments it makes a small database in a temp directory and queries that.

#![allow(clippy::print_stdout)] // an example prints its results

use sqlmatic_tools::{
    TargetDatabase, TargetSpec, ToolContext, ToolOutcome, ToolRegistry, ToolsConfig,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let scratch = tempfile::tempdir()?;
    let path = match args.next() {
        Some(path) => std::path::PathBuf::from(path),
        None => {
            let path = scratch.path().join("shop.db");
            rusqlite::Connection::open(&path)?.execute_batch(
                "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, country TEXT);
                 INSERT INTO customers VALUES (1,'Ada','UK'),(2,'Linus','FI'),(3,'Grace','US');",
            )?;
            path
        }
    };
    let sql = args
        .next()
        .unwrap_or_else(|| "SELECT country, count(*) AS n FROM customers GROUP BY country".into());

    // The sandbox: a read-only connection, an authorizer, time, row and byte limits.
    let config = ToolsConfig::default();
    let spec = if path.to_string_lossy().starts_with("postgres") {
        TargetSpec {
            url: Some(path.to_string_lossy().into_owned()),
            path: None,
            ..TargetSpec::read_only("shop", "")
        }
    } else {
        TargetSpec::read_only("shop", path)
    };
    let database = TargetDatabase::new(spec, &config);
    database.verify().await?;
    let ctx = ToolContext::new(database, config.limits());

    // Directly: typed (SQLite's blocking work runs on the target's runner threads, PostgreSQL is
    // async).
    let result = ctx.database.query(&sql, &Default::default(), &ctx.limits, &ctx.audit()).await?;
    println!("{} rows in {:.2} ms", result.row_count, result.elapsed_ms);
    for row in &result.rows {
        println!("  {}", serde_json::Value::from(row.clone()));
    }

    // As a model calls it: the tool by name with JSON arguments, answering a typed outcome that
    // knows how to render itself for a model (bounded) and for a client.
    let toolset = ToolRegistry::builtin().toolset(&["execute_query".into()])?;
    let outcome = toolset.call("execute_query", &ctx, serde_json::json!({"sql": sql})).await?;
    if let ToolOutcome::Query { result, .. } = &outcome {
        println!("the tool returned {} columns", result.columns.len());
    }
    println!(
        "the model sees: {}",
        outcome.for_model(sqlmatic_tools::ModelBounds { max_rows: 50, max_bytes: 4000 })
    );

    // Writes never get through the sandbox, whatever the SQL says.
    let refused = toolset
        .call("execute_query", &ctx, serde_json::json!({"sql": "DELETE FROM customers"}))
        .await;
    println!("DELETE: {}", refused.err().map(|e| e.to_string()).unwrap_or_default());
    Ok(())
}
