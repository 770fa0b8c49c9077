//! MCP over Streamable HTTP (`/mcp` on the server), driven by rmcp's own client: tools with
//! their annotations and schemas, each tool, a masked column, grants, a bad token, the schema
//! resource, `ask` with progress and its thread over REST, an older protocol revision, and the
//! end of a session.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation,
    ProgressNotificationParam, ProtocolVersion, ReadResourceRequestParams,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Map, Value, json};
use sqlmatic_agent::testing::{Reply, ScriptedLlm, Step};

use crate::helpers::*;

/// A client that speaks `version` and keeps the progress notifications it receives.
#[derive(Clone)]
struct Client {
    version: ProtocolVersion,
    progress: Arc<Mutex<Vec<String>>>,
    updated: Arc<Mutex<Vec<String>>>,
}

impl ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(ClientCapabilities::default(), Implementation::new("sqlmatic-test", "1"))
            .with_protocol_version(self.version.clone())
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(params.message.unwrap_or_default());
    }

    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.updated.lock().unwrap().push(params.uri);
    }
}

async fn connect(
    app: &TestApp,
    token: Option<&str>,
    version: ProtocolVersion,
) -> Result<(RunningService<RoleClient, Client>, Client), String> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(app.url("/mcp"));
    if let Some(t) = token {
        config = config.auth_header(t.to_owned());
    }
    let client = Client { version, progress: Arc::default(), updated: Arc::default() };
    let running = client
        .clone()
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .map_err(|e| e.to_string())?;
    Ok((running, client))
}

fn args(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

async fn call(
    client: &RunningService<RoleClient, Client>,
    tool: &str,
    arguments: Value,
) -> rmcp::model::CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args(arguments)))
        .await
        .unwrap()
}

/// Calls `tool` with `options` (a progress token, a timeout); the raw outcome.
async fn call_with(
    client: &RunningService<RoleClient, Client>,
    tool: &str,
    arguments: Value,
    options: rmcp::service::PeerRequestOptions,
) -> Result<rmcp::model::ServerResult, rmcp::ServiceError> {
    let request = CallToolRequestParams::new(tool.to_owned()).with_arguments(args(arguments));
    client
        .send_request_with_option(
            rmcp::model::ClientRequest::CallToolRequest(rmcp::model::Request::new(request)),
            options,
        )
        .await?
        .await_response()
        .await
}

/// Options asking for progress notifications.
fn with_progress() -> rmcp::service::PeerRequestOptions {
    rmcp::service::PeerRequestOptions::default().with_meta(
        rmcp::model::RequestMetaObject::with_progress_token(rmcp::model::ProgressToken(
            rmcp::model::NumberOrString::Number(7),
        )),
    )
}

#[actix_web::test]
async fn mcp_over_http_serves_the_tools_with_the_users_grants() {
    let (other_dir, other) = sqlmatic_tools::test_support::fixture_db(
        "CREATE TABLE secrets(x); INSERT INTO secrets VALUES ('s');",
    );
    let app = spawn_with(|c| {
        c.api.auth.mode = sqlmatic_server::auth::AuthMode::Token;
        let demo = c.database.demo_path.clone();
        c.database.targets = vec![
            serde_json::from_value(json!({"name": "demo", "path": demo, "default": true,
                "masked_columns": ["customers.email"]}))
            .unwrap(),
            serde_json::from_value(json!({"name": "other", "path": other})).unwrap(),
        ];
    })
    .await;
    let alice = app.core.users().add("alice", false, Some(vec!["demo".into()])).unwrap();
    let bob = app.core.users().add("bob", false, None).unwrap();

    // no token, or a bad one: refused before any MCP exchange
    let r = app.post_json("/mcp", json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    assert!(
        connect(&app, Some("sqm_not_a_token"), ProtocolVersion::LATEST_WITH_INITIALIZE)
            .await
            .is_err()
    );

    let (client, _) =
        connect(&app, Some(&alice), ProtocolVersion::LATEST_WITH_INITIALIZE).await.unwrap();
    let info = client.peer_info().unwrap();
    assert_eq!(info.server_info.as_ref().unwrap().name, "sqlmatic");
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for t in [
        "list_databases",
        "list_tables",
        "get_schema",
        "get_metadata",
        "execute_query",
        "find_values",
        "ask",
    ] {
        assert!(names.contains(&t), "{t} missing from {names:?}");
    }
    assert!(!names.contains(&"execute_write"), "no writable database: no write tool");
    let query = tools.iter().find(|t| t.name == "execute_query").unwrap();
    let annotations = query.annotations.as_ref().unwrap();
    assert_eq!(annotations.read_only_hint, Some(true));
    assert_eq!(annotations.destructive_hint, Some(false));
    assert!(query.description.as_ref().unwrap().contains("truncated"), "limits are stated");
    assert!(query.output_schema.is_some());
    assert_eq!(
        query.input_schema["properties"]["database"]["enum"],
        json!(["demo"]),
        "only alice's databases"
    );

    // list_databases: only what alice was granted
    let r = call(&client, "list_databases", json!({})).await;
    let dbs = &r.structured_content.as_ref().unwrap()["databases"];
    assert_eq!(dbs.as_array().unwrap().len(), 1);
    assert_eq!(dbs[0]["name"], "demo");

    // execute_query: text for the model, structured rows for programs
    let r =
        call(&client, "execute_query", json!({"sql": "SELECT count(*) AS n FROM customers"})).await;
    assert_eq!(r.is_error, Some(false));
    let structured = r.structured_content.unwrap();
    assert_eq!(structured["rows"][0][0], 1200, "{structured}");
    assert!(r.content[0].as_text().unwrap().text.contains("1200"), "{:?}", r.content);
    // a masked column reads as NULL; a write is refused; another user's database is unknown
    let r =
        call(&client, "execute_query", json!({"sql": "SELECT email FROM customers LIMIT 1"})).await;
    assert_eq!(r.structured_content.unwrap()["rows"][0][0], Value::Null);
    let r = call(&client, "execute_query", json!({"sql": "DELETE FROM customers"})).await;
    assert_eq!(r.is_error, Some(true));
    assert_eq!(r.structured_content.unwrap()["code"], "read_only");
    let r = call(
        &client,
        "execute_query",
        json!({"sql": "SELECT * FROM secrets", "database": "other"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert_eq!(r.structured_content.unwrap()["code"], "database_not_found");
    // the other tools
    let r = call(&client, "list_tables", json!({})).await;
    assert!(r.structured_content.unwrap().to_string().contains("order_items"));
    let r = call(&client, "get_schema", json!({"tables": ["orders"]})).await;
    assert!(r.structured_content.unwrap().to_string().contains("customer_id"));
    let r = call(&client, "get_metadata", json!({})).await;
    assert_eq!(r.is_error, Some(false));
    // stored values, once the index is built
    let started = std::time::Instant::now();
    loop {
        let r = call(&client, "find_values", json!({"text": "sao paulo"})).await;
        if r.is_error == Some(false) {
            assert_eq!(r.structured_content.unwrap()["matches"][0]["value"], "São Paulo");
            break;
        }
        assert_eq!(r.structured_content.unwrap()["code"], "value_index_unavailable");
        assert!(started.elapsed() < std::time::Duration::from_secs(15), "no value index");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // bad input: an unknown tool is a protocol error; bad arguments are tool errors
    let unknown = client
        .call_tool(CallToolRequestParams::new("drop_everything").with_arguments(args(json!({}))))
        .await;
    assert!(unknown.is_err(), "{unknown:?}");
    let r = call(&client, "ask", json!({})).await;
    assert_eq!(r.structured_content.unwrap()["code"], "invalid_args");
    let r = call(&client, "ask", json!({"question": "x", "thread_id": "not-a-thread"})).await;
    assert_eq!(r.structured_content.unwrap()["code"], "thread_not_found");
    let r = call(&client, "get_schema", json!({"tables": ["no_such_table"]})).await;
    assert_eq!(r.is_error, Some(true));
    // the schema as a resource
    let resources = client.list_resources(None).await.unwrap();
    assert_eq!(resources.resources.len(), 1);
    assert_eq!(resources.resources[0].uri, "sqlmatic://demo/schema");
    let read = client
        .read_resource(ReadResourceRequestParams::new("sqlmatic://demo/schema"))
        .await
        .unwrap();
    let text = serde_json::to_string(&read.contents).unwrap();
    assert!(text.contains("order_items"));

    // every MCP query is in alice's query log
    let alice_p =
        sqlmatic_models::Principal { name: "alice".into(), admin: false, databases: None };
    let log = app.core.query_log(&alice_p, None, 50).await.unwrap();
    assert!(log.iter().any(|e| e.source == "mcp" && e.sql.contains("count(*)")), "{log:?}");
    assert!(
        log.iter().any(|e| e.source == "mcp" && e.sql.starts_with("-- tool get_schema")),
        "calls that run no SQL are logged too: {log:?}"
    );

    // bob sees both databases; the older protocol revision works too
    let (old, _) = connect(&app, Some(&bob), ProtocolVersion::V_2025_03_26).await.unwrap();
    assert_eq!(old.peer_info().unwrap().protocol_version, ProtocolVersion::V_2025_03_26);
    let r =
        call(&old, "execute_query", json!({"sql": "SELECT x FROM secrets", "database": "other"}))
            .await;
    assert_eq!(r.structured_content.unwrap()["rows"], json!([["s"]]));
    drop(other_dir);
}

#[actix_web::test]
async fn mcp_refuses_origins_that_are_not_allowed() {
    let app = spawn_with(|c| c.api.allowed_origins = vec!["https://app.example".into()]).await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}});
    let r = app
        .client
        .post(app.url("/mcp"))
        .header("Origin", "https://evil.example")
        .header("Accept", "application/json, text/event-stream")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(r, 403, "forbidden").await;
    let r = app
        .client
        .post(app.url("/mcp"))
        .header("Origin", "https://app.example")
        .header("Accept", "application/json, text/event-stream")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// The Streamable HTTP session's end, as the official Python SDK does it on every disconnect: a
/// DELETE it counts as done only on 200 or 204, after which the session id is unknown (404);
/// without a session id it is a 400. Both errors in the API's `{"error": …}` shape.
#[actix_web::test]
async fn a_deleted_session_ends_with_no_content_and_is_gone() {
    let app = spawn_app().await;
    let mcp = |method: reqwest::Method| {
        app.client
            .request(method, app.url("/mcp"))
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2025-06-18")
    };
    let init = mcp(reqwest::Method::POST)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), 200);
    let session = init.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let ended =
        mcp(reqwest::Method::DELETE).header("Mcp-Session-Id", &session).send().await.unwrap();
    assert_eq!(ended.status(), 204);
    let after = mcp(reqwest::Method::POST)
        .header("Mcp-Session-Id", &session)
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_error(after, 404, "not_found").await;
    // transport mistakes get the API's error shape, not rmcp's bare text
    let anonymous = mcp(reqwest::Method::DELETE).send().await.unwrap();
    let body = assert_error(anonymous, 400, "malformed_request").await;
    assert!(body["error"]["message"].as_str().unwrap().contains("Session ID"), "{body}");
    let put = mcp(reqwest::Method::PUT).send().await.unwrap();
    assert_eq!(put.headers()["allow"], "GET, POST, DELETE");
    let body = assert_error(put, 405, "method_not_allowed").await;
    assert!(
        body["error"]["message"].as_str().unwrap().ends_with("use GET, POST, DELETE"),
        "{body}"
    );
}

#[actix_web::test]
async fn ask_answers_with_the_agent_reports_progress_and_leaves_a_thread() {
    let sql =
        "SELECT country, count(*) AS n FROM customers GROUP BY country ORDER BY n DESC LIMIT 3";
    let llm = ScriptedLlm::by_round(
        vec![
            Step::Reply(Reply::tool("c1", "execute_query", json!({"sql": sql}))),
            Step::Reply(Reply::text("Germany has the most customers (135).")),
        ],
        Duration::from_millis(20),
    )
    .await;
    let app = spawn_with(|c| use_llm(c, &llm)).await;
    let (client, probe) =
        connect(&app, None, ProtocolVersion::LATEST_WITH_INITIALIZE).await.unwrap();
    let result = call_with(
        &client,
        "ask",
        json!({"question": "Which countries have the most customers?"}),
        with_progress(),
    )
    .await
    .unwrap();
    let rmcp::model::ServerResult::CallToolResult(result) = result else { panic!("{result:?}") };
    let structured = result.structured_content.unwrap();
    assert_eq!(structured["answer"], "Germany has the most customers (135).");
    assert_eq!(structured["queries"][0]["sql"], sql);
    let progress = probe.progress.lock().unwrap().clone();
    assert!(progress.iter().any(|m| m.contains("execute_query")), "{progress:?}");
    // the thread is there for the web app and REST
    let thread: Value = app
        .get(&format!("/api/threads/{}", structured["thread_id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(thread["messages"][0]["content"], "Which countries have the most customers?");
}

#[actix_web::test]
async fn execute_write_waits_for_the_users_approval() {
    let app = spawn_with(|c| {
        let demo = c.database.demo_path.clone();
        c.database.targets = vec![
            serde_json::from_value(json!({"name": "demo", "path": demo, "read_only": false}))
                .unwrap(),
        ];
    })
    .await;
    let (client, probe) =
        connect(&app, None, ProtocolVersion::LATEST_WITH_INITIALIZE).await.unwrap();
    let client = Arc::new(client);
    let tools = client.list_all_tools().await.unwrap();
    let write =
        tools.iter().find(|t| t.name == "execute_write").expect("listed for a writable database");
    assert_eq!(write.annotations.as_ref().unwrap().destructive_hint, Some(true));

    let propose = |sql: &'static str| {
        let client = client.clone();
        tokio::spawn(async move {
            call_with(&client, "execute_write", json!({"sql": sql}), with_progress()).await.unwrap()
        })
    };
    // the owner decides by digest, as the web app does
    let decide = |sql: &str, approve: bool| {
        let digest = sqlmatic_core_logic::approvals::write_digest(None, "demo", sql);
        let app = &app;
        async move {
            for _ in 0..100 {
                let r = app
                    .post_json(&format!("/api/approvals/{digest}"), json!({"approve": approve}))
                    .await;
                if r.status() == 200 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("the write never waited for approval");
        }
    };
    let sql = "UPDATE customers SET city = 'Lyon' WHERE id = 1";
    let call = propose(sql);
    decide(sql, true).await;
    let rmcp::model::ServerResult::CallToolResult(r) = call.await.unwrap() else { panic!() };
    assert_eq!(r.is_error, Some(false), "{r:?}");
    assert_eq!(r.structured_content.unwrap()["rows_affected"], 1);
    let (_, body) = app.query(json!({"sql": "SELECT city FROM customers WHERE id = 1"})).await;
    assert_eq!(body["rows"][0][0], "Lyon");
    let progress = probe.progress.lock().unwrap().clone();
    assert!(progress.iter().any(|m| m.contains("/api/approvals/")), "{progress:?}");

    let sql = "DELETE FROM payments";
    let call = propose(sql);
    decide(sql, false).await;
    let rmcp::model::ServerResult::CallToolResult(r) = call.await.unwrap() else { panic!() };
    assert_eq!(r.structured_content.unwrap()["code"], "write_rejected");
    let (_, body) = app.query(json!({"sql": "SELECT count(*) FROM payments"})).await;
    assert!(body["rows"][0][0].as_i64().unwrap() > 0, "nothing was deleted");
}

#[actix_web::test]
#[allow(deprecated)] // resources/subscribe: the revisions clients speak today
async fn a_subscribed_schema_resource_is_updated_when_the_schema_changes() {
    let app = spawn_with(|c| c.database.schema_poll_interval_ms = 100).await;
    let (client, probe) =
        connect(&app, None, ProtocolVersion::LATEST_WITH_INITIALIZE).await.unwrap();
    client
        .subscribe(rmcp::model::SubscribeRequestParams::new("sqlmatic://demo/schema"))
        .await
        .unwrap();
    // let the watcher read the current version first
    tokio::time::sleep(Duration::from_millis(300)).await;
    rusqlite::Connection::open(app.demo_path())
        .unwrap()
        .execute_batch("CREATE TABLE mcp_added(x)")
        .unwrap();
    for _ in 0..50 {
        if !probe.updated.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        probe.updated.lock().unwrap().first().map(String::as_str),
        Some("sqlmatic://demo/schema")
    );
    let read = client
        .read_resource(ReadResourceRequestParams::new("sqlmatic://demo/schema"))
        .await
        .unwrap();
    assert!(serde_json::to_string(&read.contents).unwrap().contains("mcp_added"));
}

#[actix_web::test]
async fn cancelling_ask_stops_the_answer() {
    let llm = ScriptedLlm::by_round(vec![Step::Hang], Duration::ZERO).await;
    let app = spawn_with(|c| use_llm(c, &llm)).await;
    let (client, _) = connect(&app, None, ProtocolVersion::LATEST_WITH_INITIALIZE).await.unwrap();
    // the client gives up after 500 ms and sends notifications/cancelled
    let result = call_with(
        &client,
        "ask",
        json!({"question": "How many orders are there?"}),
        rmcp::service::PeerRequestOptions::with_timeout(Duration::from_millis(500)),
    )
    .await;
    assert!(matches!(result, Err(rmcp::ServiceError::Timeout { .. })), "{result:?}");
    // the turn is stopped and stored as cancelled, with the question kept
    let mut status = Value::Null;
    for _ in 0..50 {
        let threads: Value = app.get("/api/threads").await.json().await.unwrap();
        let id = threads["threads"][0]["id"].as_str().unwrap().to_owned();
        let thread: Value = app.get(&format!("/api/threads/{id}")).await.json().await.unwrap();
        status = thread["messages"][1]["status"].clone();
        if status == "cancelled" {
            assert_eq!(thread["messages"][0]["content"], "How many orders are there?");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "cancelled");
    assert_eq!(app.core.running_turns(), 0);
}
