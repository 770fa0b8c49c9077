//! The floor of `cargo xtask bench-agent`: the hand-written tool-calling loop of
//! `benches/python/agent_loop.py`, in Rust (reqwest + rusqlite on one thread). Same turn, same
//! scripted model, same database; no server in front, nothing stored. What sqlmatic spends
//! beyond this per turn is what its server, storage and events cost; the Python loop's CPU over
//! this one is the most any Rust implementation of the turn gained on the same machine.
//!
//! `cargo run --release -p sqlmatic-server --example agent_loop -- BASE_URL DB_PATH TURNS`
//! prints one JSON line: `cpu_ms_per_turn`, `tools_cpu_ms_per_turn` (the three tool calls
//! alone), `wall_ms_median`.

// An example reports on stdout and stops at a broken setup.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, types::ValueRef};
use serde_json::{Value, json};

#[path = "../benches/support/proc.rs"]
#[allow(dead_code)] // the memory readings are the benchmarks'
mod proc;
#[path = "support/turn.rs"]
mod turn;

/// This process's CPU time so far, in ms.
fn cpu_ms() -> f64 {
    proc::cpu_ms(std::process::id())
}

fn list_tables(db: &Connection) -> Value {
    let mut stmt = db
        .prepare_cached(
            "SELECT name FROM sqlite_master WHERE type IN ('table','view') AND name NOT LIKE 'sqlite_%'",
        )
        .unwrap();
    let names: Vec<String> =
        stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
    json!({"tables": names})
}

fn get_schema(db: &Connection, args: &Value) -> Value {
    let mut out = serde_json::Map::new();
    let mut stmt = db.prepare_cached("SELECT * FROM pragma_table_info(?)").unwrap();
    for table in args["tables"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        let columns: Vec<Value> = stmt
            .query_map([table], |c| {
                Ok(json!({"name": c.get::<_, String>(1)?, "type": c.get::<_, String>(2)?,
                          "notnull": c.get::<_, bool>(3)?, "pk": c.get::<_, i64>(5)? > 0}))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        out.insert(table.to_owned(), Value::Array(columns));
    }
    Value::Object(out)
}

fn execute_query(db: &Connection, args: &Value) -> Result<Value, rusqlite::Error> {
    let mut stmt = db.prepare_cached(args["sql"].as_str().unwrap_or_default())?;
    let columns: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        if out.len() == 200 {
            break;
        }
        let values: Vec<Value> = (0..columns.len())
            .map(|i| match row.get_ref(i) {
                Ok(ValueRef::Integer(n)) => json!(n),
                Ok(ValueRef::Real(x)) => json!(x),
                Ok(ValueRef::Text(t)) => json!(String::from_utf8_lossy(t)),
                Ok(ValueRef::Blob(b)) => json!(b.len()),
                _ => Value::Null,
            })
            .collect();
        out.push(Value::Array(values));
    }
    Ok(json!({"columns": columns, "rows": out}))
}

fn run_tool(db: &Connection, name: &str, args: &Value) -> Value {
    match name {
        "list_tables" => list_tables(db),
        "get_schema" => get_schema(db, args),
        "execute_query" => {
            execute_query(db, args).unwrap_or_else(|e| json!({"error": e.to_string()}))
        }
        other => json!({"error": format!("no tool {other}")}),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(base_url), Some(db_path), Some(turns)) = (args.next(), args.next(), args.next())
    else {
        eprintln!("usage: agent_loop BASE_URL DB_PATH TURNS");
        std::process::exit(2);
    };
    let turns: usize = turns.parse().expect("TURNS is a number");
    let db = Connection::open_with_flags(&db_path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = sqlmatic_agent::http_client(Duration::from_secs(5), None).unwrap();
    let tools = turn::tools();
    let ask = async |question: String| {
        let answer =
            turn::turn(&client, &base_url, &tools, &question, |n, a| run_tool(&db, n, a)).await;
        assert!(!answer.expect("a turn").is_empty(), "empty answer");
    };
    rt.block_on(async {
        for i in 0..20 {
            ask(format!("warm-up {i}")).await;
        }
    });
    let cpu_start = cpu_ms();
    let mut walls = Vec::with_capacity(turns);
    rt.block_on(async {
        for i in 0..turns {
            let started = Instant::now();
            ask(format!("Which countries order the most? ({i})")).await;
            walls.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    });
    let cpu_per_turn = (cpu_ms() - cpu_start) / turns as f64;
    // the floor every side pays: the three tool calls alone, without any model call
    let sql = "SELECT c.country, count(*) AS orders FROM orders o JOIN customers c ON c.id = o.customer_id \
               GROUP BY c.country ORDER BY orders DESC LIMIT 5";
    let tools_start = cpu_ms();
    for _ in 0..turns {
        run_tool(&db, "list_tables", &json!({}));
        run_tool(&db, "get_schema", &json!({"tables": ["customers", "orders"]}));
        run_tool(&db, "execute_query", &json!({"sql": sql}));
    }
    let tools_per_turn = (cpu_ms() - tools_start) / turns as f64;
    walls.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({"cpu_ms_per_turn": cpu_per_turn, "tools_cpu_ms_per_turn": tools_per_turn,
               "wall_ms_median": walls[walls.len() / 2]})
    );
}
