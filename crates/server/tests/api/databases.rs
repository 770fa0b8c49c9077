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

#[actix_web::test]
async fn structure_has_etag_and_304() {
    let app = spawn_app().await;
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
    rusqlite::Connection::open(app.demo_path())
        .unwrap()
        .execute_batch("CREATE TABLE added_later(x)")
        .unwrap();
    let r = app
        .client
        .get(app.url("/api/database/structure"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
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
