//! The `sqlmatic` binary's subcommands, run as a user would.

// Test helpers outside #[test] fns: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::{Value, json};
use sqlmatic_agent::testing::{Reply, ScriptedLlm, Step};

fn sqlmatic(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sqlmatic"));
    c.current_dir(dir)
        .env_remove("SQLMATIC_CONFIG")
        .env_remove("SQLMATIC_ENV")
        .env("SQLMATIC_DATABASE__APP_PATH", dir.join("app.db"))
        .env("SQLMATIC_DATABASE__DEMO_PATH", dir.join("demo.db"))
        .env("SQLMATIC_LOGGING__FILE", "");
    c
}

#[tokio::test]
async fn eval_reports_execution_accuracy_against_a_provider() {
    let query =
        |id: &str, sql: &str| Step::Reply(Reply::tool(id, "execute_query", json!({"sql": sql})));
    // each question runs with the demo's business context, then without it
    let llm = ScriptedLlm::queue(vec![
        query("a", "SELECT count(*) FROM customers"),
        Step::Reply(Reply::text("1200")),
        query("b", "SELECT count(*) FROM customers"),
        Step::Reply(Reply::text("1200")),
        query("c", "SELECT count(*) FROM orders"),
        Step::Reply(Reply::text("6000")),
        query("d", "SELECT count(*) FROM orders WHERE status = 'pending'"),
        Step::Reply(Reply::text("many")),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dataset.jsonl"),
        "{\"id\": \"customers\", \"question\": \"How many clients do we have?\", \"gold_sql\": \"SELECT count(*) FROM customers\", \"expected_verified\": [\"How many customers do we have?\"]}\n\
         {\"id\": \"orders\", \"question\": \"How many orders?\", \"gold_sql\": \"SELECT count(*) FROM orders\", \"database\": \"demo\"}\n",
    )
    .unwrap();
    let out = tokio::task::spawn_blocking({
        let (dir, url) = (dir.path().to_owned(), llm.openai_url());
        move || {
            sqlmatic(&dir)
                .args(["eval", "--dataset", "dataset.jsonl", "--out", "report.json"])
                .env("SQLMATIC_AGENT__PROVIDER", "openai")
                .env("SQLMATIC_AGENT__BASE_URL", url)
                .env("SQLMATIC_AGENT__MODEL", "scripted")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("execution accuracy: 2/2 = 100.0%"), "{stdout}");
    assert!(stdout.contains("without business context: 1/2 = 50.0%"), "{stdout}");
    assert!(stdout.contains("verified-query retrieval recall@3: 100.0%"), "{stdout}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["results"][0]["correct"], true);
    assert_eq!(report["results"][0]["recall"], 1.0);
    assert_eq!(report["results"][1]["correct"], true);
    assert_eq!(report["results"][1]["correct_without_context"], false);
    assert_eq!(
        report["results"][1]["predicted_sql_without_context"],
        "SELECT count(*) FROM orders WHERE status = 'pending'"
    );
    // what the model was given: the verified query with context, none without
    let received = llm.received();
    let prompt = |i: usize| received[i].body["messages"][0]["content"].as_str().unwrap().to_owned();
    assert!(
        prompt(0)
            .contains("Verified query (checked by demo-team): \"How many customers do we have?\""),
        "{}",
        prompt(0)
    );
    assert!(!prompt(2).contains("Verified query"), "{}", prompt(2));
}

#[test]
fn eval_without_a_provider_says_what_to_configure() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.jsonl"), "").unwrap();
    let out = sqlmatic(dir.path()).args(["eval", "--dataset", "d.jsonl"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("agent.provider"));
}

#[test]
fn config_prints_the_effective_configuration_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let out = sqlmatic(dir.path())
        .arg("config")
        .env("SQLMATIC_AGENT__API_KEY", "sk-very-secret")
        .env("SQLMATIC_API__PORT", "9999")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["api"]["port"], 9999);
    assert_eq!(v["agent"]["api_key"], "<redacted>");
    assert!(!text.contains("sk-very-secret"));
    let bad = sqlmatic(dir.path()).arg("config").env("SQLMATIC_API__PROT", "1").output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("prot"));
}

#[test]
fn demo_db_loads_the_shop_into_postgres_and_prints_no_password() {
    use sqlmatic_tools::test_support::postgres::{ADMIN, cluster};
    let c = cluster();
    c.database("cli_demo", "");
    let dir = tempfile::tempdir().unwrap();
    // the cluster trusts local connections, so the password is never used: only printed, or not
    let url = format!("postgres://{ADMIN}:hunter2@127.0.0.1:{}/cli_demo?sslmode=disable", c.port);
    for _ in 0..2 {
        // twice: loading again replaces the demo's tables
        let out = sqlmatic(dir.path()).args(["demo-db", "--postgres", &url]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("demo shop loaded") && !stdout.contains("hunter2"), "{stdout}");
    }
    let counts = c.psql(
        "cli_demo",
        "SELECT (SELECT count(*) FROM customers) || ' ' || (SELECT count(*) FROM orders) || ' ' \
         || format_type(atttypid, atttypmod) || ' ' || obj_description('orders'::regclass, 'pg_class') \
         FROM pg_attribute WHERE attrelid = 'order_items'::regclass AND attname = 'unit_price'",
    );
    assert!(counts.starts_with("1200 6000 numeric(10,2) "), "{counts}");
}

/// `sqlmatic mcp` over stdio, driven by rmcp's client as Claude Desktop or Claude Code would
/// start it: tools, a query, a refused write, and nothing but protocol on stdout.
#[tokio::test]
async fn mcp_over_stdio_serves_the_tools() {
    use rmcp::ServiceExt;
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::TokioChildProcess;
    let dir = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sqlmatic"));
    command
        .arg("mcp")
        .current_dir(dir.path())
        .env_remove("SQLMATIC_CONFIG")
        .env_remove("SQLMATIC_ENV")
        .env("SQLMATIC_DATABASE__APP_PATH", dir.path().join("app.db"))
        .env("SQLMATIC_DATABASE__DEMO_PATH", dir.path().join("demo.db"))
        .env("SQLMATIC_LOGGING__FILE", "");
    let client = ().serve(TokioChildProcess::new(command).unwrap()).await.unwrap();
    let names: Vec<String> =
        client.list_all_tools().await.unwrap().into_iter().map(|t| t.name.into_owned()).collect();
    assert!(names.contains(&"execute_query".to_owned()) && names.contains(&"ask".to_owned()));
    let args = |v: Value| v.as_object().cloned().unwrap();
    let r = client
        .call_tool(
            CallToolRequestParams::new("execute_query")
                .with_arguments(args(json!({"sql": "SELECT count(*) FROM orders"}))),
        )
        .await
        .unwrap();
    assert_eq!(r.structured_content.unwrap()["rows"][0][0], 6000);
    let r = client
        .call_tool(
            CallToolRequestParams::new("execute_query")
                .with_arguments(args(json!({"sql": "DROP TABLE orders"}))),
        )
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    assert_eq!(r.structured_content.unwrap()["code"], "read_only");
    client.cancel().await.unwrap();
}
