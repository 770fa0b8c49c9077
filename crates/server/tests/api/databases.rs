use serde_json::Value;

use crate::helpers::*;

#[actix_web::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ok");
    let r = app.get("/readyz").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["default_database"], "demo");
}

#[actix_web::test]
async fn readiness_fails_clearly_when_the_default_database_is_gone() {
    let app = spawn_app().await;
    std::fs::remove_file(app.demo_path()).unwrap();
    assert_error(app.get("/readyz").await, 503, "database_unavailable").await;
}

#[actix_web::test]
async fn lists_the_demo_database() {
    let app = spawn_app().await;
    let list: Value = app.get("/api/databases").await.json().await.unwrap();
    assert_eq!(list[0]["name"], "demo");
    assert_eq!(list[0]["is_default"], true);
    assert_eq!(list[0]["read_only"], true);
}

crate::on_both_engines!(
    structure_has_etag_and_304,
    suggestions_come_from_the_context_or_the_schema
);

async fn suggestions_come_from_the_context_or_the_schema(engine: Engine) {
    let app = engine.spawn("suggestions", |_| {}).await;
    let r: Value = app.get("/api/databases/demo/suggestions").await.json().await.unwrap();
    if engine == Engine::Sqlite {
        // the generated demo has the demo context: its onboarding questions, in file order
        assert_eq!(r["source"], "context", "{r}");
        assert_eq!(r["questions"][0], "How many customers do we have?", "{r}");
        assert_eq!(r["questions"].as_array().unwrap().len(), 4, "{r}");
        return;
    }
    assert_eq!(r["source"], "schema");
    let questions: Vec<&str> =
        r["questions"].as_array().unwrap().iter().map(|q| q.as_str().unwrap()).collect();
    assert!((3..=6).contains(&questions.len()), "{questions:?}");
    assert!(questions.iter().any(|q| q.contains("order items")), "{questions:?}");
    assert!(questions.iter().all(|q| q.ends_with('?')));
    assert_error(app.get("/api/databases/nope/suggestions").await, 404, "database_not_found").await;
}

async fn structure_has_etag_and_304(engine: Engine) {
    let app = engine.spawn("structure", |_| {}).await;
    let r = app.get("/api/database/structure").await;
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    let names: Vec<&str> =
        body["tables"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    for t in [
        "customers",
        "employees",
        "products",
        "categories",
        "suppliers",
        "orders",
        "order_items",
        "payments",
        "order_totals",
    ] {
        assert!(names.contains(&t), "{t} missing from {names:?}");
    }
    let orders = body["tables"].as_array().unwrap().iter().find(|t| t["name"] == "orders").unwrap();
    assert!(orders["row_count"].as_u64().unwrap() >= 5000);
    assert!(!orders["foreign_keys"].as_array().unwrap().is_empty());
    assert!(body["ddl"].as_str().unwrap().contains("TABLE orders("));

    let r = app
        .client
        .get(app.url("/api/database/structure?database=demo"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    // DDL from another process-like connection changes the ETag.
    engine.ddl(&app, "structure", "CREATE TABLE added_later(x int)");
    // SQLite sees it at once (the file's schema version); PostgreSQL within 250 ms (a
    // fingerprint check vouches for the cached structure that long)
    let started = std::time::Instant::now();
    let r = loop {
        let r = app
            .client
            .get(app.url("/api/database/structure"))
            .header("If-None-Match", &etag)
            .send()
            .await
            .unwrap();
        if r.status() != 304 || started.elapsed() > std::time::Duration::from_secs(2) {
            break r;
        }
        assert_eq!(engine, Engine::Postgres, "SQLite must see the change at once");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(r.status(), 200);
    assert_ne!(r.headers()["etag"].to_str().unwrap(), etag);
    let body: Value = r.json().await.unwrap();
    assert!(body["tables"].as_array().unwrap().iter().any(|t| t["name"] == "added_later"));
}

#[actix_web::test]
async fn unknown_database_is_404() {
    let app = spawn_app().await;
    let body = assert_error(
        app.get("/api/database/structure?database=nope").await,
        404,
        "database_not_found",
    )
    .await;
    assert!(body["error"]["message"].as_str().unwrap().contains("demo"));
}

#[actix_web::test]
async fn configured_targets_replace_the_demo() {
    let (_fixture_dir, path) = sqlmatic_tools::test_support::fixture_db(
        "CREATE TABLE t(x); INSERT INTO t VALUES (1),(2);",
    );
    let app = spawn_with(|c| {
        c.database.targets = vec![
            serde_json::from_value(serde_json::json!({"name": "mine", "path": path})).unwrap(),
        ];
    })
    .await;
    let list: Value = app.get("/api/databases").await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "mine");
    let (status, body) = app.query(serde_json::json!({"sql": "SELECT sum(x) AS s FROM t"})).await;
    assert_eq!(status, 200);
    assert_eq!(body["rows"], serde_json::json!([[3]]));
}

/// The torture database (every feature real files have, a stale view, a broken trigger, a
/// missing virtual-table module, an unknown collation) as the only target.
async fn spawn_on_torture() -> (TestApp, tempfile::TempDir) {
    let (torture_dir, path) = sqlmatic_tools::test_support::torture_db();
    let app = spawn_with(|c| {
        c.database.targets = vec![
            serde_json::from_value(serde_json::json!({"name": "real", "path": path})).unwrap(),
        ];
    })
    .await;
    (app, torture_dir)
}

#[actix_web::test]
async fn a_real_world_database_with_broken_objects_stays_usable() {
    let (app, _torture) = spawn_on_torture().await;
    let r = app.get("/api/database/structure").await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let find = |name: &str| {
        body["tables"].as_array().unwrap().iter().find(|t| t["name"] == name).cloned().unwrap()
    };
    assert_eq!(find("stale_view")["error"]["message"], "no such column: c.dropped_column");
    assert_eq!(find("stale_view")["row_count"], Value::Null);
    assert_eq!(find("ghost_vt")["error"]["code"], "missing_module");
    assert_eq!(find("docs")["kind"], "virtual");
    assert_eq!(find("docs")["module"], "fts5");
    assert_eq!(find("orders")["row_count"], 3);
    assert_eq!(find("orders")["row_count_exact"], true);
    assert!(find("orders")["error"].is_null());
    assert!(body["tables"].as_array().unwrap().iter().all(|t| t["name"] != "docs_content"));
    // the cost gate reads the same structure: ordinary queries run
    for sql in [
        "SELECT * FROM orders LIMIT 2",
        "SELECT count(*) FROM boxes",
        "SELECT title FROM docs WHERE docs MATCH 'fox'",
        "SELECT * FROM \"order details\"",
    ] {
        let r = app.post_json("/api/query", serde_json::json!({"sql": sql})).await;
        assert_eq!(r.status(), 200, "{sql}: {}", r.text().await.unwrap());
    }
    let body = assert_error(
        app.post_json("/api/query", serde_json::json!({"sql": "SELECT * FROM stale_view"})).await,
        400,
        "sql_error",
    )
    .await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("no such column: c.dropped_column"), "{message}");
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["databases"], serde_json::json!([{"name": "real", "mode": "read_only"}]));
}

#[actix_web::test]
async fn an_unhealthy_target_is_named_and_the_healthy_ones_serve() {
    let bad_dir = tempfile::tempdir().unwrap();
    let bad = bad_dir.path().join("export.db");
    std::fs::write(&bad, "id,name\n1,ann\n").unwrap();
    let empty = bad_dir.path().join("empty.db");
    std::fs::write(&empty, "").unwrap();
    let app = spawn_with(|c| {
        let demo = c.database.demo_path.clone();
        c.database.targets = vec![
            serde_json::from_value(
                serde_json::json!({"name": "demo", "path": demo, "default": true}),
            )
            .unwrap(),
            serde_json::from_value(serde_json::json!({"name": "export", "path": bad})).unwrap(),
            serde_json::from_value(serde_json::json!({"name": "empty", "path": empty})).unwrap(),
        ];
    })
    .await;
    let body = assert_error(app.get("/readyz").await, 503, "database_unavailable").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("database `export` is unavailable: its file is not a SQLite database"),
        "{message}"
    );
    assert!(
        message.contains("database `empty` is unavailable: its file is empty (0 bytes)"),
        "{message}"
    );
    let body = assert_error(
        app.get("/api/database/structure?database=export").await,
        503,
        "database_unavailable",
    )
    .await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("looks like a text file"),
        "{body}"
    );
    let r = app
        .post_json("/api/query", serde_json::json!({"sql": "SELECT 1", "database": "empty"}))
        .await;
    assert_error(r, 503, "database_unavailable").await;
    // the healthy default keeps working
    assert_eq!(app.get("/api/database/structure").await.status(), 200);
    let r = app
        .post_json("/api/query", serde_json::json!({"sql": "SELECT count(*) FROM customers"}))
        .await;
    assert_eq!(r.status(), 200);
}

/// A read-only PostgreSQL target whose role could write or escape is a configuration error:
/// the server does not start, and says why and what to do.
#[actix_web::test]
async fn a_privileged_postgres_role_stops_the_server_from_starting() {
    use sqlmatic_tools::test_support::postgres::{ADMIN, spec};
    let shop = sqlmatic_services::testing::postgres_shop("api_privileged").await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.database.targets = vec![sqlmatic_tools::TargetSpec {
        url: spec("demo", ADMIN, "api_privileged").url,
        ..shop.clone()
    }];
    let err = sqlmatic_server::Application::build(config.clone()).await.err().unwrap().to_string();
    assert!(err.contains("superuser") && err.contains("GRANT SELECT"), "{err}");
    config.database.targets[0].allow_privileged_role = true;
    let app = sqlmatic_server::Application::build(config).await.unwrap();
    drop(app);
}
