use serde_json::{Value, json};

use crate::helpers::*;

#[actix_web::test]
async fn thread_crud() {
    let app = spawn_app().await;
    let r = app.post_json("/api/threads", json!({"title": "Revenue questions"})).await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["title"], "Revenue questions");
    assert_eq!(created["database"], "demo");
    assert_eq!(location, format!("/api/threads/{}", created["id"].as_str().unwrap()));

    let r = app.client.post(app.url("/api/threads")).send().await.unwrap();
    assert_eq!(r.status(), 201, "a body is optional");
    let second: Value = r.json().await.unwrap();
    assert_eq!(second["title"], "New thread");

    let list: Value = app.get("/api/threads").await.json().await.unwrap();
    assert_eq!(list["total"], 2);
    assert_eq!(list["threads"][0]["id"], second["id"], "newest first");
    let page: Value = app.get("/api/threads?limit=1&offset=1").await.json().await.unwrap();
    assert_eq!(page["threads"].as_array().unwrap().len(), 1);
    assert_eq!(page["threads"][0]["id"], created["id"]);

    let r = app
        .client
        .patch(app.url(&location))
        .json(&json!({"title": "Renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["title"], "Renamed");

    let detail: Value = app.get(&location).await.json().await.unwrap();
    assert_eq!(detail["title"], "Renamed");
    assert_eq!(detail["messages"], json!([]));

    let r = app.client.delete(app.url(&location)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_error(app.get(&location).await, 404, "thread_not_found").await;
    assert_error(
        app.client.delete(app.url(&location)).send().await.unwrap(),
        404,
        "thread_not_found",
    )
    .await;
}

#[actix_web::test]
async fn thread_input_errors() {
    let app = spawn_app().await;
    assert_error(app.get("/api/threads/not-a-uuid").await, 404, "thread_not_found").await;
    assert_error(
        app.post_json("/api/threads", json!({"title": "   "})).await,
        400,
        "invalid_title",
    )
    .await;
    assert_error(
        app.post_json("/api/threads", json!({"database": "nope"})).await,
        404,
        "database_not_found",
    )
    .await;
    assert_error(
        app.post_json("/api/threads", json!({"colour": "red"})).await,
        400,
        "invalid_json",
    )
    .await;
    let t: Value = app.post_json("/api/threads", json!({})).await.json().await.unwrap();
    let url = app.url(&format!("/api/threads/{}", t["id"].as_str().unwrap()));
    assert_error(
        app.client.patch(&url).json(&json!({"title": ""})).send().await.unwrap(),
        400,
        "invalid_title",
    )
    .await;
    assert_error(app.get("/api/threads?limit=abc").await, 400, "invalid_query_string").await;
}
