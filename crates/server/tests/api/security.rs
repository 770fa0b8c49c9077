//! Authentication, ownership, grants, admin rights and request limits.

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;

struct Users {
    admin: String,
    alice: String,
    bob: String,
}

/// A token-mode server with two targets (`demo`, `other`) and users admin, alice (demo only), bob.
async fn spawn_secured(
    adjust: impl FnOnce(&mut sqlmatic_server::config::Config),
) -> (TestApp, Users, tempfile::TempDir) {
    let (other_dir, other) = sqlmatic_tools::test_support::fixture_db(
        "CREATE TABLE secrets(x); INSERT INTO secrets VALUES ('s');",
    );
    let app = spawn_with(|c| {
        c.api.auth.mode = sqlmatic_server::auth::AuthMode::Token;
        let demo = c.database.demo_path.clone();
        c.database.targets = vec![
            serde_json::from_value(json!({"name": "demo", "path": demo, "default": true})).unwrap(),
            serde_json::from_value(json!({"name": "other", "path": other})).unwrap(),
        ];
        adjust(c);
    })
    .await;
    let users = app.core.users();
    let tokens = Users {
        admin: users.add("admin", true, None).unwrap(),
        alice: users.add("alice", false, Some(vec!["demo".into()])).unwrap(),
        bob: users.add("bob", false, None).unwrap(),
    };
    (app, tokens, other_dir)
}

impl TestApp {
    async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.unwrap()
    }

    async fn post_as(&self, token: &str, path: &str, body: Value) -> reqwest::Response {
        self.client.post(self.url(path)).bearer_auth(token).json(&body).send().await.unwrap()
    }
}

#[actix_web::test]
async fn requests_need_a_valid_token() {
    let (app, t, _d) = spawn_secured(|_| {}).await;
    let r = app.get("/api/threads").await;
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_error(r, 401, "unauthorized").await;
    assert_error(app.get_as("sqm_000000000000_wrong", "/api/threads").await, 401, "unauthorized")
        .await;
    assert_error(app.get_as(&format!("{}x", t.alice), "/api/threads").await, 401, "unauthorized")
        .await;
    assert_eq!(app.get("/healthz").await.status(), 200, "health is public");
    assert_eq!(app.get("/api/openapi.json").await.status(), 200);
    let me: Value = app.get_as(&t.alice, "/api/me").await.json().await.unwrap();
    assert_eq!(me, json!({"name": "alice", "admin": false, "databases": ["demo"]}));
    // revocation takes effect immediately
    app.core.users().revoke("alice").unwrap();
    assert_error(app.get_as(&t.alice, "/api/me").await, 401, "unauthorized").await;
}

#[actix_web::test]
async fn threads_belong_to_their_owner() {
    let (app, t, _d) = spawn_secured(|_| {}).await;
    let mine: Value = app
        .post_as(&t.alice, "/api/threads", json!({"title": "alice's"}))
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/api/threads/{}", mine["id"].as_str().unwrap());
    assert_eq!(app.get_as(&t.alice, &path).await.status(), 200);
    // another user, even an admin, gets 404: no existence leak
    assert_error(app.get_as(&t.bob, &path).await, 404, "thread_not_found").await;
    assert_error(app.get_as(&t.admin, &path).await, 404, "thread_not_found").await;
    let r = app.client.delete(app.url(&path)).bearer_auth(&t.bob).send().await.unwrap();
    assert_error(r, 404, "thread_not_found").await;
    let bobs: Value = app.get_as(&t.bob, "/api/threads").await.json().await.unwrap();
    assert_eq!(bobs["total"], 0);
    assert_error(
        app.post_as(&t.bob, "/chat", json!({"thread_id": mine["id"], "message": "hi"})).await,
        404,
        "thread_not_found",
    )
    .await;
}

#[actix_web::test]
async fn users_only_reach_their_granted_databases() {
    let (app, t, _d) = spawn_secured(|_| {}).await;
    let dbs: Value = app.get_as(&t.alice, "/api/databases").await.json().await.unwrap();
    assert_eq!(
        dbs.as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect::<Vec<_>>(),
        ["demo"]
    );
    let dbs: Value = app.get_as(&t.bob, "/api/databases").await.json().await.unwrap();
    assert_eq!(dbs.as_array().unwrap().len(), 2);
    let denied = app
        .post_as(
            &t.alice,
            "/api/query",
            json!({"sql": "SELECT * FROM secrets", "database": "other"}),
        )
        .await;
    let body = assert_error(denied, 404, "database_not_found").await;
    assert!(
        body["error"]["message"].as_str().unwrap().ends_with("databases are: demo"),
        "only granted ones are listed: {body}"
    );
    assert_error(
        app.get_as(&t.alice, "/api/database/structure?database=other").await,
        404,
        "database_not_found",
    )
    .await;
    assert_error(
        app.post_as(&t.alice, "/api/threads", json!({"database": "other"})).await,
        404,
        "database_not_found",
    )
    .await;
    let ok = app
        .post_as(&t.bob, "/api/query", json!({"sql": "SELECT * FROM secrets", "database": "other"}))
        .await;
    assert_eq!(ok.status(), 200);
}

#[actix_web::test]
async fn admins_see_metrics_and_everyones_query_log() {
    let (app, t, _d) = spawn_secured(|_| {}).await;
    app.post_as(&t.alice, "/api/query", json!({"sql": "SELECT 1"})).await;
    app.post_as(&t.bob, "/api/query", json!({"sql": "SELECT 2"})).await;
    assert_error(app.get_as(&t.alice, "/api/metrics").await, 403, "forbidden").await;
    assert_error(app.get_as(&t.alice, "/metrics").await, 403, "forbidden").await;
    assert_eq!(app.get_as(&t.admin, "/api/metrics").await.status(), 200);
    let own: Value = app.get_as(&t.alice, "/api/query-log?user=bob").await.json().await.unwrap();
    assert_eq!(
        own["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["user"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["alice"]
    );
    let all: Value = app.get_as(&t.admin, "/api/query-log").await.json().await.unwrap();
    assert_eq!(all["entries"].as_array().unwrap().len(), 2);
    let bobs: Value = app.get_as(&t.admin, "/api/query-log?user=bob").await.json().await.unwrap();
    assert_eq!(bobs["entries"][0]["sql"], "SELECT 2");
    // agent settings are admin-editable and persisted
    let r = app
        .client
        .put(app.url("/api/users/alice/agent"))
        .bearer_auth(&t.admin)
        .json(&json!({"temperature": 0.3, "tools": ["list_tables", "execute_query"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let s: Value = app.get_as(&t.admin, "/api/users/alice/agent").await.json().await.unwrap();
    assert_eq!(s["temperature"], 0.3);
    let r = app
        .client
        .put(app.url("/api/users/alice/agent"))
        .bearer_auth(&t.alice)
        .json(&json!({"temperature": 1.0}))
        .send()
        .await
        .unwrap();
    assert_error(r, 403, "forbidden").await;
    let r = app
        .client
        .put(app.url("/api/users/alice/agent"))
        .bearer_auth(&t.admin)
        .json(&json!({"tools": ["rm_rf"]}))
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "invalid_settings").await;
    let users: Value = app.get_as(&t.admin, "/api/users").await.json().await.unwrap();
    assert_eq!(users["users"].as_array().unwrap().len(), 4, "local, admin, alice, bob");
}

#[actix_web::test]
async fn the_websocket_is_authenticated_before_the_upgrade() {
    let (app, t, _d) = spawn_secured(|_| {}).await;
    let url = format!("ws://127.0.0.1:{}/ws", app.port);
    let err = tokio_tungstenite::connect_async(&url).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    // browsers: the token as a subprotocol; the server answers `sqlmatic`
    let mut req = url.clone().into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", format!("sqlmatic, bearer.{}", t.bob).parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "sqlmatic");
    // another user's thread cannot be followed; thread events go to their owner only
    let alices: Value =
        app.post_as(&t.alice, "/api/threads", json!({})).await.json().await.unwrap();
    ws_send(&mut ws, json!({"action": "subscribe", "topics": [format!("thread:{}", alices["id"].as_str().unwrap()), "metrics"]})).await;
    assert_eq!(ws_next(&mut ws, 5).await["payload"]["code"], "topic_not_found");
    ws_send(&mut ws, json!({"action": "subscribe", "topics": ["metrics"]})).await;
    assert_eq!(ws_next(&mut ws, 5).await["payload"]["code"], "forbidden");
    ws_send(&mut ws, json!({"action": "subscribe", "topics": ["threads"]})).await;
    assert_eq!(ws_next(&mut ws, 5).await["event"], "subscribed");
    app.post_as(&t.alice, "/api/threads", json!({"title": "not for bob"})).await;
    let bobs: Value = app
        .post_as(&t.bob, "/api/threads", json!({"title": "for bob"}))
        .await
        .json()
        .await
        .unwrap();
    let e = ws_next(&mut ws, 5).await;
    assert_eq!(e["event"], "thread_created");
    assert_eq!(e["payload"]["id"], bobs["id"], "bob sees only his own thread_created");
}

#[actix_web::test]
async fn hammering_the_api_gets_429_with_retry_after() {
    let (app, t, _d) = spawn_secured(|c| c.api.rate_limit.requests_per_minute = 5).await;
    for _ in 0..5 {
        assert_eq!(app.get_as(&t.alice, "/api/threads").await.status(), 200);
    }
    let r = app.get_as(&t.alice, "/api/threads").await;
    assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_error(r, 429, "rate_limited").await;
    assert_eq!(app.get_as(&t.bob, "/api/threads").await.status(), 200, "limits are per user");
    assert_eq!(app.get("/healthz").await.status(), 200, "health checks are never limited");
    // anonymous and failed attempts are limited per IP (token guessing too)
    for _ in 0..5 {
        assert_eq!(app.get_as("sqm_000000000000_guess", "/api/threads").await.status(), 401);
    }
    assert_error(app.get_as("sqm_000000000000_guess", "/api/threads").await, 429, "rate_limited")
        .await;
}

#[actix_web::test]
async fn security_headers_and_cors() {
    let app = spawn_with(|c| c.api.allowed_origins = vec!["http://app.example".into()]).await;
    let r = app.get("/api/databases").await;
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(
        r.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'")
    );
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/query"))
        .header("Origin", "http://app.example")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type, authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.headers()["access-control-allow-origin"], "http://app.example");
    let other = app
        .client
        .get(app.url("/api/databases"))
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[actix_web::test]
async fn no_auth_on_a_public_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.api.host = "0.0.0.0".into();
    let err = sqlmatic_server::Application::build(config.clone()).await.err().unwrap().to_string();
    assert!(err.contains("refusing to listen on 0.0.0.0 without authentication"), "{err}");
    config.api.auth.allow_insecure_bind = true;
    assert!(sqlmatic_server::Application::build(config).await.is_ok());
}

/// A socket opened with a token ends when the token is revoked or rotated (the CLI does the
/// same from another process), and the user's running answer is cancelled, within a second.
#[actix_web::test]
async fn revoked_or_rotated_tokens_close_open_sockets_and_cancel_turns() {
    use sqlmatic_agent::testing::{Reply, ScriptedLlm, Step};
    let llm = ScriptedLlm::queue(vec![Step::StallAfter {
        events: 3,
        reply: Reply::text("thinking about it for a long time"),
    }])
    .await;
    // the turn ends only if the revocation cancels it
    let (app, t, _d) = spawn_secured(|c| use_stalling_llm(c, &llm)).await;
    let open = |token: String| {
        let url = format!("ws://127.0.0.1:{}/ws", app.port);
        async move {
            let mut req = url.into_client_request().unwrap();
            req.headers_mut().insert("Authorization", format!("Bearer {token}").parse().unwrap());
            tokio_tungstenite::connect_async(req).await.unwrap().0
        }
    };
    let closed_within_a_second = |mut ws: Ws| async move {
        let started = std::time::Instant::now();
        loop {
            let frame = tokio::time::timeout(
                std::time::Duration::from_secs(3),
                futures_util::StreamExt::next(&mut ws),
            )
            .await
            .expect("the socket closes");
            match frame {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(f)))) => {
                    assert_eq!(u16::from(f.code), 1008, "{f:?}");
                    assert!(f.reason.contains("revoked"), "{f:?}");
                    break;
                }
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
        started.elapsed()
    };
    // alice has an answer running on her socket; bob just listens
    let mut alice = open(t.alice.clone()).await;
    ws_send(&mut alice, json!({"action": "chat", "message": "count everything"})).await;
    let first = ws_next_named(&mut alice, "message_stream", 5).await;
    let thread_id = first["payload"]["thread_id"].as_str().unwrap().to_owned();
    let bob = open(t.bob.clone()).await;
    assert_eq!(app.core.running_turns(), 1);
    app.core.users().revoke("alice").unwrap();
    let took = closed_within_a_second(alice).await;
    assert!(took < std::time::Duration::from_millis(1500), "closed after {took:?}");
    for _ in 0..40 {
        if app.core.running_turns() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(app.core.running_turns(), 0, "alice's turn was cancelled");
    assert_error(app.get_as(&t.alice, "/api/threads").await, 401, "unauthorized").await;
    // the thread was kept, with the question
    let thread = app
        .core
        .get_thread(
            &sqlmatic_models::Principal { name: "alice".into(), admin: false, databases: None },
            thread_id.parse().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(thread.messages[0].content, "count everything");
    // rotation ends bob's old socket too; his new token works
    let new_token = app.core.users().rotate("bob").unwrap();
    closed_within_a_second(bob).await;
    let mut fresh = open(new_token.clone()).await;
    ws_send(&mut fresh, json!({"action": "subscribe", "topics": ["threads"]})).await;
    assert_eq!(ws_next(&mut fresh, 5).await["event"], "subscribed");
    assert_eq!(app.get_as(&new_token, "/api/threads").await.status(), 200);
}

/// REST and WebSocket chats start through one core entry point, so they draw from one chat
/// budget per user: after two turns over REST, a WebSocket `chat` gets an `error` event
/// `rate_limited`, and REST a `429` with `Retry-After`; a refused turn stores nothing.
#[actix_web::test]
async fn the_chat_rate_limit_is_shared_by_rest_and_websocket() {
    use sqlmatic_agent::testing::{Reply, ScriptedLlm, Step};
    let llm =
        ScriptedLlm::by_round(vec![Step::Reply(Reply::text("ok"))], std::time::Duration::ZERO)
            .await;
    let app = spawn_with(|c| {
        use_llm(c, &llm);
        c.api.rate_limit.chats_per_minute = 2;
    })
    .await;
    for i in 0..2 {
        let r = app.post_json("/chat", json!({"message": format!("question {i}")})).await;
        assert_eq!(r.status(), 200, "turn {i}");
    }
    let mut ws = app.ws_connect().await;
    ws_send(&mut ws, json!({"action": "chat", "message": "over the websocket"})).await;
    let e = ws_next_named(&mut ws, "error", 5).await;
    assert_eq!(e["payload"]["code"], "rate_limited", "{e}");
    let r = app.post_json("/chat", json!({"message": "one more"})).await;
    assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_error(r, 429, "rate_limited").await;
    let threads: Value = app.get("/api/threads").await.json().await.unwrap();
    assert_eq!(threads["total"], 2, "refused turns stored nothing");
}

/// Verified queries follow database grants; candidates, promotion, removal and feedback lists
/// are for admins; feedback is on your own answers only.
#[actix_web::test]
async fn verified_queries_and_feedback_respect_grants_roles_and_owners() {
    let (app, t, _d) = spawn_secured(|_| {}).await;
    let r = app
        .post_as(
            &t.admin,
            "/api/verified-queries",
            json!({"database": "other", "question": "How many secrets?", "sql": "SELECT count(*) FROM secrets"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    // alice may use demo only: other's verified query is not hers to see
    let mine: Value = app.get_as(&t.alice, "/api/verified-queries").await.json().await.unwrap();
    assert!(mine.as_array().unwrap().iter().all(|q| q["database"] == "demo"), "{mine}");
    let bobs: Value = app.get_as(&t.bob, "/api/verified-queries").await.json().await.unwrap();
    assert!(bobs.as_array().unwrap().iter().any(|q| q["id"] == id), "{bobs}");
    for path in [
        "/api/verified-queries?database=other",
        "/api/databases/other/context",
        "/api/databases/other/context/export",
        "/api/databases/other/values?text=s",
    ] {
        assert_error(app.get_as(&t.alice, path).await, 404, "database_not_found").await;
    }
    // admin-only
    assert_error(
        app.get_as(&t.bob, "/api/verified-queries?status=candidate").await,
        403,
        "forbidden",
    )
    .await;
    assert_error(app.get_as(&t.bob, "/api/feedback").await, 403, "forbidden").await;
    assert_error(
        app.post_as(&t.bob, "/api/verified-queries", json!({"candidate_id": id})).await,
        403,
        "forbidden",
    )
    .await;
    let r = app
        .client
        .delete(app.url(&format!("/api/verified-queries/{id}")))
        .bearer_auth(&t.bob)
        .send()
        .await
        .unwrap();
    assert_error(r, 403, "forbidden").await;
    // feedback: on your own answers only
    let r: Value =
        app.post_as(&t.bob, "/chat", json!({"message": "hello"})).await.json().await.unwrap();
    let question = r["error"]["details"]["message_id"].as_i64().unwrap();
    let path = format!("/api/messages/{question}/feedback");
    assert_error(
        app.post_as(&t.alice, &path, json!({"rating": "up"})).await,
        404,
        "message_not_found",
    )
    .await;
    assert_error(app.post_as(&t.bob, &path, json!({"rating": "up"})).await, 400, "not_an_answer")
        .await;
}
