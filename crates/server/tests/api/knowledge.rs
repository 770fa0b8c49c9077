//! Business context end to end: context files (validation with lines, reload, failing verified
//! queries left out), feedback → candidate → promotion → retrieval into what the model receives,
//! the reply's `verified_query`, and `find_values` following the data.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlmatic_agent::testing::{Reply, ScriptedLlm, Step};
use sqlmatic_services::knowledge::ContextFile;

use crate::helpers::*;

/// The demo target configured explicitly, with a context file in the test's directory.
fn with_context_file(config: &mut sqlmatic_server::config::Config, file: &std::path::Path) {
    let demo = config.database.demo_path.clone();
    config.database.targets = vec![sqlmatic_tools::TargetSpec {
        context: Some(file.to_owned()),
        ..sqlmatic_services::demo::spec(&demo)
    }];
    config.database.schema_poll_interval_ms = 50;
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < Duration::from_secs(15), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn the_demo_context_loads_whole_and_exports_as_a_context_file() {
    let app = spawn_app().await;
    let report: Value = app.get("/api/databases/demo/context").await.json().await.unwrap();
    assert_eq!(report["source"], "embedded:demo", "{report}");
    assert_eq!(report["rejected_queries"], 0, "{report}");
    assert!(report["verified_queries"].as_u64().unwrap() >= 15, "{report}");
    assert!(report["metrics"].as_u64().unwrap() >= 3, "{report}");
    assert_eq!(report["issues"], json!([]), "{report}");

    let verified: Value =
        app.get("/api/verified-queries?database=demo").await.json().await.unwrap();
    let verified = verified.as_array().unwrap();
    assert_eq!(verified.len() as u64, report["verified_queries"].as_u64().unwrap());
    assert!(verified.iter().all(|q| q["status"] == "verified" && q["source"] == "file"));

    let r = app.get("/api/databases/demo/context/export").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/yaml"));
    let exported = ContextFile::parse(&r.text().await.unwrap()).expect("the export parses");
    let file = ContextFile::parse(sqlmatic_services::demo::CONTEXT).unwrap();
    assert_eq!(exported.metrics, file.metrics);
    assert_eq!(exported.verified_queries.len(), file.verified_queries.len());
    assert_error(app.get("/api/databases/nope/context").await, 404, "database_not_found").await;
}

#[actix_web::test]
async fn a_context_file_names_its_problems_by_line_and_is_reloaded_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("context.yaml");
    // line 4 misspells a key: nothing of the file is used, and the report says where
    std::fs::write(
        &file,
        "rules:\n  - Revenue excludes cancelled orders.\nmetrics:\n  revenue: {sqll: sum(x)}\n",
    )
    .unwrap();
    let app = spawn_with(|c| with_context_file(c, &file)).await;
    let report: Value = app.get("/api/databases/demo/context").await.json().await.unwrap();
    assert_eq!(report["issues"][0]["line"], 4, "{report}");
    assert!(report["issues"][0]["message"].as_str().unwrap().contains("unknown field `sqll`"));
    assert_eq!(report["rules"], 0);

    // fixed, with one verified query that runs and one that does not (line 10)
    std::fs::write(
        &file,
        "rules:
  - Revenue excludes cancelled orders.
tables:
  customers:
    synonyms: [clients]
verified_queries:
  - question: How many clients are there?
    sql: SELECT count(*) FROM customers
    verified_by: ana
    verified_at: '2026-11-01'
  - question: Which clients churned?
    sql: SELECT * FROM churned_clients
    verified_by: ana
    verified_at: '2026-11-01'
  - question: How many suppliers are there?
    sql: SELECT count(*) FROM suppliers
    verified_by: ana
    verified_at: '2026-11-01'
",
    )
    .unwrap();
    eventually("the file to be reloaded", async || {
        let r: Value = app.get("/api/databases/demo/context").await.json().await.unwrap();
        r["rules"] == 1
    })
    .await;
    let report: Value = app.get("/api/databases/demo/context").await.json().await.unwrap();
    assert_eq!(report["verified_queries"], 2, "{report}");
    assert_eq!(report["rejected_queries"], 1, "{report}");
    assert_eq!(report["issues"][0]["line"], 11, "{report}");
    assert!(report["issues"][0]["message"].as_str().unwrap().contains("churned_clients"));
    let verified: Value = app.get("/api/verified-queries").await.json().await.unwrap();
    let questions: Vec<&str> =
        verified.as_array().unwrap().iter().map(|q| q["question"].as_str().unwrap()).collect();
    assert_eq!(questions.len(), 2, "{questions:?}");
    assert!(!questions.contains(&"Which clients churned?"), "a failing query is never used");
    // a file's verified query is changed in the file
    let id = verified[0]["id"].as_i64().unwrap();
    assert_error(
        app.client.delete(app.url(&format!("/api/verified-queries/{id}"))).send().await.unwrap(),
        409,
        "defined_in_context_file",
    )
    .await;
}

fn system_prompt(received: &sqlmatic_agent::testing::Received) -> String {
    received.body["messages"][0]["content"].as_str().unwrap().to_owned()
}

const TOP_SQL: &str = "SELECT p.name, sum(i.quantity) AS units FROM order_items i \
     JOIN products p ON p.id = i.product_id GROUP BY p.id ORDER BY units DESC LIMIT 3";

#[actix_web::test]
async fn feedback_proposes_a_candidate_that_the_model_sees_only_once_verified() {
    let llm = ScriptedLlm::queue(vec![
        Step::Reply(Reply::tool("c1", "execute_query", json!({"sql": TOP_SQL}))),
        Step::Reply(Reply::text("The best sellers are …")),
    ])
    .await;
    let app = spawn_with(|c| {
        use_llm(c, &llm);
        // only the verified queries this test adds
        c.database.targets = vec![sqlmatic_services::demo::spec(&c.database.demo_path)];
    })
    .await;
    let first: Value = app.chat("Which products sell the most units?").await;
    let answer = first["message_id"].as_i64().unwrap();
    assert!(first.get("verified_query").is_none(), "{first}");

    // feedback on something that is not an answer, or not there
    let question = first["user_message_id"].as_i64().unwrap();
    assert_error(
        app.post_json(&format!("/api/messages/{question}/feedback"), json!({"rating": "up"})).await,
        400,
        "not_an_answer",
    )
    .await;
    assert_error(
        app.post_json("/api/messages/999999/feedback", json!({"rating": "up"})).await,
        404,
        "message_not_found",
    )
    .await;
    assert_error(
        app.post_json(&format!("/api/messages/{answer}/feedback"), json!({"rating": "meh"})).await,
        400,
        "invalid_json",
    )
    .await;

    let r: Value = app
        .post_json(
            &format!("/api/messages/{answer}/feedback"),
            json!({"rating": "up", "comment": "right"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["feedback"]["rating"], "up");
    assert_eq!(r["feedback"]["question"], "Which products sell the most units?");
    let candidate = &r["candidate"];
    assert_eq!(candidate["status"], "candidate", "{r}");
    assert_eq!(candidate["sql"], TOP_SQL);
    assert_eq!(candidate["proposed_by"], "local");
    let candidate_id = candidate["id"].as_i64().unwrap();
    // the thread shows the rating
    let thread: Value = app
        .get(&format!("/api/threads/{}", first["thread_id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    let stored = thread["messages"].as_array().unwrap().iter().find(|m| m["id"] == answer).unwrap();
    assert_eq!(stored["feedback"], "up");

    // a candidate is listed for admins, and never reaches the model
    let candidates: Value =
        app.get("/api/verified-queries?status=candidate").await.json().await.unwrap();
    assert_eq!(candidates[0]["id"], candidate_id);
    llm.push([Step::Reply(Reply::text("…"))]);
    let r = app.post_json("/chat", json!({"message": "What are our best selling products?"})).await;
    assert_eq!(r.status(), 200);
    let received = llm.received();
    let prompt = system_prompt(received.last().unwrap());
    assert!(
        !prompt.contains("sum(i.quantity) AS units"),
        "an unverified candidate leaked: {prompt}"
    );

    // promotion re-runs the SQL: SQL that fails is refused
    assert_error(
        app.post_json(
            "/api/verified-queries",
            json!({"question": "Best sellers?", "sql": "SELECT * FROM best_sellers"}),
        )
        .await,
        422,
        "verification_failed",
    )
    .await;
    let r = app.post_json("/api/verified-queries", json!({"candidate_id": candidate_id})).await;
    assert_eq!(r.status(), 201);
    let verified: Value = r.json().await.unwrap();
    assert_eq!(verified["status"], "verified");
    assert_eq!(verified["verified_by"], "local");
    assert!(verified["verified_at"].is_string());

    // now a paraphrase retrieves it, the model reruns it, and the reply says so
    llm.push([
        Step::Reply(Reply::tool("c2", "execute_query", json!({"sql": TOP_SQL}))),
        Step::Reply(Reply::text("Again, the best sellers are …")),
    ]);
    let reply: Value = app.chat("What are our best selling products by units?").await;
    let received = llm.received();
    let prompt = system_prompt(&received[received.len() - 2]);
    assert!(prompt.contains("Verified query (checked by local)"), "{prompt}");
    assert!(prompt.contains(TOP_SQL), "the verified SQL is in the prompt: {prompt}");
    assert_eq!(
        reply["verified_query"],
        json!({"id": candidate_id, "question": "Which products sell the most units?",
               "verified_by": "local", "adapted": false}),
        "{reply}"
    );
    let thread: Value = app
        .get(&format!("/api/threads/{}", reply["thread_id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    let stored = thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == reply["message_id"])
        .unwrap();
    assert_eq!(stored["verified_query"]["id"], candidate_id);

    // an unrelated question does not retrieve it
    llm.push([Step::Reply(Reply::text("…"))]);
    app.post_json("/chat", json!({"message": "Which employees were hired in 2023?"})).await;
    let prompt = system_prompt(llm.received().last().unwrap());
    assert!(!prompt.contains("Verified query"), "{prompt}");

    // feedback is listed for admins; a promoted query can be removed, then it is gone
    let feedback: Value = app.get("/api/feedback").await.json().await.unwrap();
    assert_eq!(feedback[0]["message_id"], answer);
    let r = app
        .client
        .delete(app.url(&format!("/api/verified-queries/{candidate_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_error(
        app.client
            .delete(app.url(&format!("/api/verified-queries/{candidate_id}")))
            .send()
            .await
            .unwrap(),
        404,
        "verified_query_not_found",
    )
    .await;
}

#[actix_web::test]
async fn find_values_finds_stored_values_and_follows_data_changes() {
    let llm = ScriptedLlm::queue(vec![
        Step::Reply(Reply::tool("c1", "find_values", json!({"text": "new yrok"}))),
        Step::Reply(Reply::text("New York")),
    ])
    .await;
    let app = spawn_with(|c| {
        use_llm(c, &llm);
        let demo = c.database.demo_path.clone();
        c.database.targets = vec![sqlmatic_tools::TargetSpec {
            masked_columns: vec!["customers.email".into()],
            ..sqlmatic_services::demo::spec(&demo)
        }];
        c.database.schema_poll_interval_ms = 50;
        c.database.value_index.min_rebuild_interval_ms = 0;
    })
    .await;
    let find = async |text: &str, column: Option<&str>| -> (u16, Value) {
        let mut url = format!("/api/databases/demo/values?text={}", urlencode(text));
        if let Some(c) = column {
            url.push_str(&format!("&column={c}"));
        }
        let r = app.get(&url).await;
        (r.status().as_u16(), r.json().await.unwrap())
    };
    eventually("the value index", async || find("york", None).await.0 == 200).await;
    let top = |v: &Value| v[0]["value"].as_str().unwrap_or_default().to_owned();
    assert_eq!(top(&find("new yrok", None).await.1), "New York", "a typo");
    assert_eq!(top(&find("NEW YORK", None).await.1), "New York", "case");
    assert_eq!(top(&find("york", Some("customers.city")).await.1), "New York", "a partial word");
    assert_eq!(top(&find("sao paulo", Some("city")).await.1), "São Paulo", "accents");
    let (_, cities) = find("york", Some("city")).await;
    assert!(cities.as_array().unwrap().iter().all(|m| m["column"] == "city"), "{cities}");
    assert_eq!(find("zzzzqqqq", None).await.1, json!([]), "nothing alike");
    // masked columns are never indexed
    let (_, emails) = find("example", None).await;
    let emails = emails.as_array().unwrap();
    assert!(emails.iter().any(|m| m["table"] == "employees" && m["column"] == "email"));
    assert!(!emails.iter().any(|m| m["table"] == "customers" && m["column"] == "email"));
    assert_error(app.get("/api/databases/demo/values?text=").await, 400, "invalid_query_string")
        .await;

    // the agent's tool answers from the same index
    let reply: Value = app.chat("customers in new yrok").await;
    assert_eq!(reply["status"], "complete", "{reply}");
    let tool = llm.received()[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(tool.contains("\"New York\""), "{tool}");

    // a value written to the database is found after the index follows the change
    let conn = rusqlite::Connection::open(app.demo_path()).unwrap();
    conn.execute(
        "INSERT INTO customers(first_name, last_name, email, country, city, segment, signup_date) \
         VALUES ('Sig', 'Urdsson', 'sig@example.is', 'Iceland', 'Reykjavík', 'consumer', '2024-12-01')",
        [],
    )
    .unwrap();
    drop(conn);
    eventually("the new value", async || top(&find("reykjavik", None).await.1) == "Reykjavík")
        .await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

crate::on_both_engines!(the_value_index_follows_the_data);

/// The value index is built from each engine's own queries and rebuilt when the data changes
/// (SQLite: the file changed; PostgreSQL: its row counters moved).
async fn the_value_index_follows_the_data(engine: Engine) {
    let app = engine
        .spawn("values", |c| {
            c.database.schema_poll_interval_ms = 50;
            c.database.value_index.min_rebuild_interval_ms = 0;
        })
        .await;
    let top = async |text: &str| -> String {
        let r = app.get(&format!("/api/databases/demo/values?text={}", urlencode(text))).await;
        if r.status() != 200 {
            return String::new();
        }
        let v: Value = r.json().await.unwrap();
        v[0]["value"].as_str().unwrap_or_default().to_owned()
    };
    eventually("the value index", async || top("sao paulo").await == "São Paulo").await;
    assert_eq!(top("BERLN").await, "Berlin", "case and a typo");
    engine.ddl(
        &app,
        "values",
        "INSERT INTO customers(id, first_name, last_name, email, country, city, segment, signup_date) \
         VALUES (900001, 'Sig', 'Urdsson', 'sig@example.is', 'Iceland', 'Reykjavík', 'consumer', '2024-12-01')",
    );
    eventually("the new value", async || top("reykjavik").await == "Reykjavík").await;
}

/// The demo's context file against the same shop in PostgreSQL: it is validated against
/// PostgreSQL's catalogue and each verified query is run by PostgreSQL; the SQLite-only ones
/// (date functions on text dates) are reported with their line and PostgreSQL's reason, and the
/// rest are used.
#[actix_web::test]
async fn the_demo_context_on_postgres_keeps_what_postgres_runs() {
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/context/demo.yaml");
    let app = Engine::Postgres
        .spawn("context", |c| c.database.targets[0].context = Some(file.clone()))
        .await;
    let report: Value = app.get("/api/databases/demo/context").await.json().await.unwrap();
    let issues = report["issues"].as_array().unwrap();
    let rejected = report["rejected_queries"].as_u64().unwrap();
    let used = report["verified_queries"].as_u64().unwrap();
    assert_eq!(used + rejected, 19, "{report}");
    assert!(used >= 12, "{report}");
    assert!(rejected >= 1, "the file uses SQLite's date functions: {report}");
    assert_eq!(issues.len() as u64, rejected, "tables and columns all exist: {report}");
    for issue in issues {
        assert!(issue["line"].as_u64().is_some_and(|l| l > 100), "{issue}");
        assert!(issue["message"].as_str().unwrap().contains("does not run"), "{issue}");
    }
    assert!(
        issues.iter().any(|i| i["message"].as_str().unwrap().contains("julianday")),
        "PostgreSQL's own reason: {report}"
    );
    let verified: Value = app.get("/api/verified-queries").await.json().await.unwrap();
    assert_eq!(verified.as_array().unwrap().len() as u64, used);
}
