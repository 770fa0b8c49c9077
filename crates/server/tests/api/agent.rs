//! The agent end to end through the server, driven by the scripted LLM server.

use std::time::Duration;

use serde_json::{Value, json};
use sqlmatic_agent::testing::{Reply, ScriptedLlm, Step};

use crate::helpers::*;

fn full_turn() -> Vec<Step> {
    vec![
        Step::Reply(Reply::tool("c1", "list_tables", json!({}))),
        Step::Reply(Reply::tool("c2", "get_schema", json!({"tables": ["customers"]}))),
        Step::Reply(Reply::tool(
            "c3",
            "execute_query",
            json!({"sql": "SELECT country, count(*) AS n FROM customers GROUP BY country ORDER BY n DESC LIMIT 3"}),
        )),
        Step::Reply(Reply::text(
            "Germany has the most customers (135). SQL: SELECT country, count(*) ...",
        )),
    ]
}

crate::on_both_engines!(a_rest_chat_runs_the_tools_and_answers_with_the_sql_and_rows);

async fn a_rest_chat_runs_the_tools_and_answers_with_the_sql_and_rows(engine: Engine) {
    let llm = ScriptedLlm::by_round(full_turn(), Duration::ZERO).await;
    let app = engine.spawn("rest_chat", |c| use_llm(c, &llm)).await;
    let r = app
        .post_json("/chat", json!({"message": "Which countries have the most customers?"}))
        .await;
    assert_eq!(r.status(), 200);
    let reply: Value = r.json().await.unwrap();
    assert_eq!(reply["status"], "complete");
    assert!(reply["answer"].as_str().unwrap().starts_with("Germany has the most customers"));
    assert_eq!(reply["steps"], 4);
    assert_eq!(reply["usage"]["prompt_tokens"], 400);
    let q = &reply["queries"][0];
    assert!(q["sql"].as_str().unwrap().starts_with("SELECT country"));
    assert_eq!(q["row_count"], 3);
    assert_eq!(q["rows"][0], json!(["Germany", 135]));
    assert_eq!(q["columns"][1]["name"], "n");

    // what the model saw: schema in the system prompt, tool results bounded and annotated
    let received = llm.received();
    assert_eq!(received.len(), 4);
    let first = &received[0].body["messages"];
    let system = first[0]["content"].as_str().unwrap();
    assert!(system.contains("TABLE customers("), "{system}");
    let dialect = if engine == Engine::Sqlite { "(SQLite)" } else { "(PostgreSQL)" };
    assert!(system.contains(dialect), "the prompt names the dialect: {system}");
    assert_eq!(first[1]["content"], "Which countries have the most customers?");
    let last = received[3].body["messages"].as_array().unwrap();
    let tool_msgs: Vec<&Value> = last.iter().filter(|m| m["role"] == "tool").collect();
    assert_eq!(tool_msgs.len(), 3);
    assert!(
        tool_msgs[1]["content"].as_str().unwrap().contains("\"ddl\""),
        "get_schema is shown compactly"
    );
    let query_result: Value =
        serde_json::from_str(tool_msgs[2]["content"].as_str().unwrap()).unwrap();
    assert_eq!(query_result["rows_shown"], 3);
    assert_eq!(query_result["note"], "all 3 rows shown");

    // what was stored: question, answer, and the turn's tool calls and results under the answer
    let thread: Value = app
        .get(&format!("/api/threads/{}", reply["thread_id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    let messages = thread["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[1]["id"], reply["message_id"]);
    assert_eq!(messages[1]["status"], "complete");
    assert_eq!(messages[1]["content"], reply["answer"]);
    let children: Vec<&Value> =
        messages.iter().filter(|m| m["parent_id"] == reply["message_id"]).collect();
    assert_eq!(children.len(), 6);
    assert_eq!(thread["title"], "Which countries have the most customers?");
    // the answer keeps its queries as the reply gave them: the same structure, not the model's view
    assert_eq!(messages[1]["queries"], reply["queries"]);

    // the query log knows which thread ran what
    let log: Value = app.get("/api/query-log").await.json().await.unwrap();
    assert_eq!(log["entries"][0]["source"], "agent");
    assert_eq!(log["entries"][0]["thread_id"], reply["thread_id"]);
}

#[actix_web::test]
async fn the_websocket_streams_an_ordered_turn() {
    let llm = ScriptedLlm::by_round(full_turn(), Duration::ZERO).await;
    let app = spawn_with(|c| use_llm(c, &llm)).await;
    let mut ws = app.ws_connect().await;
    ws_send(&mut ws, json!({"action": "subscribe", "topics": ["threads", "database"]})).await;
    ws_next_named(&mut ws, "database_update", 5).await;
    ws_send(
        &mut ws,
        json!({"action": "chat", "message": "Which countries have the most customers?"}),
    )
    .await;
    let mut parts: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut database_updates = 0;
    loop {
        let e = ws_next(&mut ws, 10).await;
        match e["event"].as_str().unwrap() {
            "thread_created" => parts.push("thread_created".into()),
            "database_update" => database_updates += 1,
            "message_stream" => {
                let p = &e["payload"];
                assert!(p["thread_id"].is_string() && p["message_id"].is_i64());
                let kind = p["type"].as_str().unwrap().to_owned();
                match kind.as_str() {
                    "delta" => text.push_str(p["text"].as_str().unwrap()),
                    "tool_call" => parts.push(format!("tool_call:{}", p["name"].as_str().unwrap())),
                    "tool_result" => parts.push(format!("tool_result:{}", p["ok"])),
                    "done" => {
                        assert_eq!(p["status"], "complete");
                        assert_eq!(p["answer"].as_str().unwrap(), text);
                        assert_eq!(p["usage"]["completion_tokens"], 50);
                        parts.push("done".into());
                        break;
                    }
                    other => panic!("unexpected {other}: {e}"),
                }
            }
            _ => {}
        }
    }
    assert_eq!(
        parts,
        [
            "thread_created",
            "tool_call:list_tables",
            "tool_result:true",
            "tool_call:get_schema",
            "tool_result:true",
            "tool_call:execute_query",
            "tool_result:true",
            "done"
        ]
    );
    assert!(text.starts_with("Germany has the most customers"));
    assert_eq!(database_updates, 0, "get_schema of an unchanged structure pushes no update");
}

#[actix_web::test]
async fn the_model_recovers_from_its_own_mistakes() {
    let llm = ScriptedLlm::by_round(
        vec![
            Step::Reply(Reply::tool(
                "a",
                "execute_query",
                json!({"sql": "SELECT nmae FROM customers LIMIT 1"}),
            )),
            Step::Reply(
                Reply::tools(&[
                    ("b", "drop_database", json!({})),
                    ("c", "execute_query", json!({"sql": "DELETE FROM customers"})),
                ])
                .in_fragments(7),
            ),
            Step::Reply(Reply::raw_tool("d", "execute_query", "{\"sql\": \"SELECT 1")),
            Step::Reply(Reply::tool(
                "e",
                "execute_query",
                json!({"sql": "SELECT first_name FROM customers WHERE id = 1"}),
            )),
            Step::Reply(Reply::text("The first customer is Amara.")),
        ],
        Duration::ZERO,
    )
    .await;
    let app = spawn_with(|c| use_llm(c, &llm)).await;
    let reply: Value = app
        .post_json("/chat", json!({"message": "Name of customer 1?"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reply["answer"], "The first customer is Amara.");
    assert_eq!(reply["steps"], 5);
    let queries = reply["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 4);
    assert_eq!(queries[0]["error"]["code"], "sql_error");
    assert_eq!(queries[1]["error"]["code"], "read_only");
    assert_eq!(queries[2]["error"]["code"], "invalid_args");
    assert!(queries[3]["error"].is_null());

    let received = llm.received();
    let tool_text = |round: usize, i: usize| -> String {
        let msgs = received[round].body["messages"].as_array().unwrap();
        let tools: Vec<&Value> = msgs.iter().filter(|m| m["role"] == "tool").collect();
        tools[i]["content"].as_str().unwrap().to_owned()
    };
    assert!(
        tool_text(1, 0).contains("no such column: nmae")
            && tool_text(1, 0).contains("customers(id, first_name"),
        "{}",
        tool_text(1, 0)
    );
    assert!(tool_text(2, 1).contains("unknown_tool"), "{}", tool_text(2, 1));
    assert!(tool_text(2, 2).contains("read_only"));
    assert!(tool_text(3, 3).contains("not valid JSON"), "{}", tool_text(3, 3));
}

#[actix_web::test]
async fn llm_failures_end_the_turn_clearly_and_keep_the_thread_usable() {
    let llm = ScriptedLlm::queue(vec![
        Step::Status { status: 500, retry_after: None, body: "{}".into() },
        Step::Status { status: 502, retry_after: None, body: "{}".into() },
        Step::Status { status: 503, retry_after: Some(0), body: "{}".into() },
    ])
    .await;
    let app = spawn_with(|c| use_llm(c, &llm)).await;
    let body = assert_error(
        app.post_json("/chat", json!({"message": "How many orders?"})).await,
        502,
        "llm_unavailable",
    )
    .await;
    let thread_id = body["error"]["details"]["thread_id"].as_str().unwrap().to_owned();
    let thread: Value = app.get(&format!("/api/threads/{thread_id}")).await.json().await.unwrap();
    assert_eq!(thread["messages"][0]["content"], "How many orders?");
    assert_eq!(thread["messages"][1]["status"], "error");

    // a cut stream keeps the partial answer
    // a stream cut after it started is not retried (the user already saw part of it)
    llm.push([Step::CutAfter {
        events: 3,
        reply: Reply::text("There are six thousand orders in the demo shop."),
    }]);
    let body = assert_error(
        app.post_json("/chat", json!({"thread_id": thread_id, "message": "again?"})).await,
        502,
        "llm_stream_interrupted",
    )
    .await;
    let answer_id = body["error"]["details"]["message_id"].as_i64().unwrap();
    let thread: Value = app.get(&format!("/api/threads/{thread_id}")).await.json().await.unwrap();
    let answer = thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == answer_id)
        .unwrap()
        .clone();
    assert_eq!(answer["status"], "error");
    assert_eq!(answer["content"], "There are six ");

    // a stream that goes silent past agent.stream_idle_timeout_ms is a time-out (504), not a
    // broken stream (502)
    llm.push([Step::StallAfter { events: 2, reply: Reply::text("a stream that stops here") }]);
    assert_error(
        app.post_json("/chat", json!({"thread_id": thread_id, "message": "still there?"})).await,
        504,
        "llm_timeout",
    )
    .await;

    // garbage
    llm.push([Step::Garbage]);
    assert_error(
        app.post_json("/chat", json!({"thread_id": thread_id, "message": "hello?"})).await,
        502,
        "llm_bad_response",
    )
    .await;

    // and the thread still works
    llm.push([Step::Reply(Reply::text("Back."))]);
    let r = app.post_json("/chat", json!({"thread_id": thread_id, "message": "ok now?"})).await;
    assert_eq!(r.status(), 200);
    let thread: Value = app.get(&format!("/api/threads/{thread_id}")).await.json().await.unwrap();
    assert_eq!(
        thread["messages"].as_array().unwrap().iter().filter(|m| m["role"] == "user").count(),
        5
    );
}

#[actix_web::test]
async fn max_steps_ends_a_turn_that_never_answers() {
    let llm = ScriptedLlm::by_round(
        vec![Step::Reply(Reply::tool("x", "list_tables", json!({})))],
        Duration::ZERO,
    )
    .await;
    let app = spawn_with(|c| {
        use_llm(c, &llm);
        c.agent.max_steps = 3;
    })
    .await;
    assert_error(
        app.post_json("/chat", json!({"message": "loop forever"})).await,
        502,
        "max_steps_reached",
    )
    .await;
    assert_eq!(llm.received().len(), 3);
}

#[actix_web::test]
async fn a_busy_thread_answers_409_and_other_threads_run_concurrently() {
    let llm = ScriptedLlm::queue(vec![
        Step::Reply(Reply::text("first")),
        Step::delayed(1000, Step::Reply(Reply::text("slow"))),
        Step::Reply(Reply::text("fast")),
    ])
    .await;
    let app = spawn_with(|c| use_llm(c, &llm)).await;
    let first: Value =
        app.post_json("/chat", json!({"message": "one"})).await.json().await.unwrap();
    let thread_id = first["thread_id"].as_str().unwrap().to_owned();
    let client = app.client.clone();
    let url = app.url("/chat");
    let tid = thread_id.clone();
    let slow = tokio::spawn(async move {
        client.post(url).json(&json!({"thread_id": tid, "message": "two"})).send().await.unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = assert_error(
        app.post_json("/chat", json!({"thread_id": thread_id, "message": "three"})).await,
        409,
        "thread_busy",
    )
    .await;
    assert_eq!(body["error"]["details"]["thread_id"], thread_id.as_str());
    let started = std::time::Instant::now();
    let other = app.post_json("/chat", json!({"message": "another thread"})).await;
    assert_eq!(other.status(), 200);
    assert!(started.elapsed() < Duration::from_millis(1000), "another thread is not held up");
    let slow = slow.await.unwrap();
    assert_eq!(slow.status(), 200);
    let thread: Value = app.get(&format!("/api/threads/{thread_id}")).await.json().await.unwrap();
    assert_eq!(
        thread["messages"].as_array().unwrap().iter().filter(|m| m["role"] == "user").count(),
        2,
        "the refused message was not stored"
    );
}

#[actix_web::test]
async fn cancel_stops_an_answer_and_keeps_the_partial_text() {
    let llm = ScriptedLlm::queue(vec![Step::StallAfter {
        events: 3,
        reply: Reply::text("The answer is forty two and more"),
    }])
    .await;
    let app = spawn_with(|c| use_stalling_llm(c, &llm)).await;
    let mut ws = app.ws_connect().await;
    ws_send(&mut ws, json!({"action": "chat", "message": "What is the answer?"})).await;
    let mut text = String::new();
    let mut thread_id = String::new();
    while text.len() < "The answer is ".len() {
        let e = ws_next_named(&mut ws, "message_stream", 5).await;
        thread_id = e["payload"]["thread_id"].as_str().unwrap().to_owned();
        text.push_str(e["payload"]["text"].as_str().unwrap_or_default());
    }
    // a second chat in the same thread is refused while the first runs
    ws_send(&mut ws, json!({"action": "chat", "thread_id": thread_id, "message": "hurry"})).await;
    assert_eq!(ws_next_named(&mut ws, "error", 5).await["payload"]["code"], "thread_busy");
    ws_send(&mut ws, json!({"action": "cancel", "thread_id": thread_id})).await;
    let done = ws_next_named(&mut ws, "message_stream", 5).await;
    assert_eq!(done["payload"]["type"], "done");
    assert_eq!(done["payload"]["status"], "cancelled");
    assert_eq!(done["payload"]["answer"], "The answer is ");
    let thread: Value = app.get(&format!("/api/threads/{thread_id}")).await.json().await.unwrap();
    assert_eq!(thread["messages"][1]["status"], "cancelled");
    assert_eq!(thread["messages"][1]["content"], "The answer is ");
    // nothing left running: cancelling again says so
    ws_send(&mut ws, json!({"action": "cancel", "thread_id": thread_id})).await;
    assert_eq!(ws_next_named(&mut ws, "error", 5).await["payload"]["code"], "not_running");
    let r =
        app.client.post(app.url(&format!("/api/threads/{thread_id}/cancel"))).send().await.unwrap();
    assert_error(r, 409, "not_running").await;
}

#[actix_web::test]
async fn memory_summarises_old_turns_when_the_history_overflows() {
    let long = |s: &str| format!("{s} {}", "detail ".repeat(60));
    let llm = ScriptedLlm::queue(vec![
        Step::Reply(Reply::text(&long("Answer one about customers."))),
        Step::Reply(Reply::text("SUMMARY: the user asked about customers; last SQL: SELECT count(*) FROM customers; 1200 customers.")),
        Step::Reply(Reply::text("Answer two.")),
    ])
    .await;
    let app = spawn_with(|c| {
        use_llm(c, &llm);
        c.memory.max_history_tokens = 200;
    })
    .await;
    let first: Value = app
        .post_json("/chat", json!({"message": long("How many customers?")}))
        .await
        .json()
        .await
        .unwrap();
    let tid = first["thread_id"].as_str().unwrap();
    let second: Value = app
        .post_json("/chat", json!({"thread_id": tid, "message": long("And orders?")}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["answer"], "Answer two.");
    let received = llm.received();
    assert_eq!(received.len(), 3);
    // the summarising call: no tools, the old turn as transcript
    assert!(received[1].body.get("tools").is_none());
    assert!(
        received[1].body["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("User: How many customers?")
    );
    // the next turn sees the summary and the new question, not the old turn
    let msgs = received[2].body["messages"].as_array().unwrap();
    let all = serde_json::to_string(msgs).unwrap();
    assert!(all.contains("SUMMARY: the user asked about customers"));
    assert!(!all.contains("Answer one about customers"));
    assert!(all.contains("And orders?"));
}

#[actix_web::test]
async fn a_restarted_server_continues_a_thread_where_it_stopped() {
    let llm = ScriptedLlm::queue(vec![
        Step::Reply(Reply::text("There are 1200 customers.")),
        Step::Reply(Reply::text("And 6000 orders.")),
    ])
    .await;
    let app = spawn_with(|c| use_llm(c, &llm)).await;
    let first: Value = app
        .post_json("/chat", json!({"message": "How many customers?"}))
        .await
        .json()
        .await
        .unwrap();
    let tid = first["thread_id"].as_str().unwrap().to_owned();
    let dir = app.stop().await;
    let app = spawn_in(dir, |c| use_llm(c, &llm)).await;
    let r = app.post_json("/chat", json!({"thread_id": tid, "message": "And orders?"})).await;
    assert_eq!(r.status(), 200);
    let msgs = llm.received()[1].body["messages"].clone();
    let roles: Vec<&str> =
        msgs.as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert_eq!(msgs[2]["content"], "There are 1200 customers.");
}

#[actix_web::test]
async fn the_anthropic_protocol_end_to_end() {
    let llm = ScriptedLlm::by_round(full_turn(), Duration::ZERO).await;
    let app = spawn_with(|c| {
        use_llm(c, &llm);
        c.agent.provider = Some("anthropic".into());
        c.agent.base_url = Some(llm.anthropic_url());
    })
    .await;
    let reply: Value = app
        .post_json("/chat", json!({"message": "Which countries have the most customers?"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reply["status"], "complete", "{reply}");
    assert_eq!(reply["queries"][0]["rows"][0], json!(["Germany", 135]));
    let received = llm.received();
    assert_eq!(received[0].path, "/v1/messages");
    let last = &received[3].body["messages"];
    assert!(last.as_array().unwrap().iter().any(|m| m["content"][0]["type"] == "tool_result"));
}

#[actix_web::test]
async fn on_a_real_world_database_the_model_sees_broken_objects_marked_and_their_real_error() {
    let (_torture, path) = sqlmatic_tools::test_support::torture_db();
    let llm = ScriptedLlm::by_round(
        vec![
            Step::Reply(Reply::tool(
                "q1",
                "execute_query",
                json!({"sql": "SELECT * FROM stale_view"}),
            )),
            Step::Reply(Reply::tool(
                "q2",
                "execute_query",
                json!({"sql": "SELECT count(*) AS n FROM orders"}),
            )),
            Step::Reply(Reply::text("stale_view is broken; there are 3 orders.")),
        ],
        Duration::ZERO,
    )
    .await;
    let app = spawn_with(|c| {
        use_llm(c, &llm);
        c.database.targets =
            vec![serde_json::from_value(json!({"name": "real", "path": path})).unwrap()];
    })
    .await;
    let r = app.post_json("/chat", json!({"message": "How many orders are there?"})).await;
    assert_eq!(r.status(), 200);
    let reply: Value = r.json().await.unwrap();
    assert_eq!(reply["status"], "complete");
    let received = llm.received();
    let system = received[0].body["messages"][0]["content"].as_str().unwrap().to_owned();
    assert!(
        system
            .contains("VIEW stale_view -- BROKEN, do not query: no such column: c.dropped_column"),
        "{system}"
    );
    assert!(system.contains("TABLE \"order details\"("), "quoted names: {system}");
    let tool_msgs: Vec<Value> = received[2].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .cloned()
        .collect();
    let failed = tool_msgs[0]["content"].as_str().unwrap();
    assert!(failed.contains("no such column: c.dropped_column"), "{failed}");
    assert!(failed.contains("`stale_view` is broken"), "{failed}");
    assert!(
        tool_msgs[1]["content"].as_str().unwrap().contains("[3]"),
        "{}",
        tool_msgs[1]["content"]
    );
}
