//! The application core on its own: temp app database, fixture target, no HTTP.

// Test helpers outside #[test] fns: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use sqlmatic_core_logic::{ChatRequest, CoreConfig, Error, Sqlmatic, watch};
use sqlmatic_events::Topic;
use sqlmatic_models::{Page, QueryParams, Role};
use sqlmatic_services::DatabaseConfig;

fn local() -> sqlmatic_models::Principal {
    sqlmatic_models::Principal::local()
}

fn someone() -> sqlmatic_models::Principal {
    sqlmatic_models::Principal { name: "someone".into(), admin: false, databases: None }
}

struct Fixture {
    core: Arc<Sqlmatic>,
    target_path: std::path::PathBuf,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn open(poll_ms: u64) -> Fixture {
    let (target_dir, target_path) = sqlmatic_tools::test_support::fixture_db(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1,'a');",
    );
    let app_dir = tempfile::tempdir().unwrap();
    let spec =
        serde_json::from_value(serde_json::json!({"name": "fx", "path": target_path})).unwrap();
    let config = CoreConfig {
        database: DatabaseConfig {
            app_path: app_dir.path().join("app.db"),
            schema_poll_interval_ms: poll_ms,
            targets: vec![spec],
            ..DatabaseConfig::default()
        },
        metrics_interval: Duration::from_millis(100),
        ..CoreConfig::default()
    };
    Fixture { core: Sqlmatic::open(config).unwrap(), target_path, _dirs: (app_dir, target_dir) }
}

#[tokio::test]
async fn a_chat_turn_stores_the_question_before_anything_can_fail() {
    let fx = open(1000);
    let mut sub = fx.core.bus().subscribe(8);
    fx.core.bus().add_topics(sub.id, [Topic::UserThreads("local".into())]);
    let err =
        fx.core.chat(&local(), ChatRequest::new("  How many rows in t?  ")).await.unwrap_err();
    let Error::LlmNotConfigured { thread_id, message_id } = err else { panic!("{err:?}") };
    let created: serde_json::Value =
        serde_json::from_str(&sub.receiver.recv().await.unwrap()).unwrap();
    assert_eq!(created["event"], "thread_created");
    assert_eq!(created["payload"]["title"], "How many rows in t?");
    let thread = fx.core.get_thread(&local(), thread_id).await.unwrap();
    assert_eq!(thread.thread.database, "fx");
    assert_eq!(thread.messages.len(), 1);
    assert_eq!(thread.messages[0].id, message_id);
    assert_eq!(thread.messages[0].role, Role::User);
    assert_eq!(thread.messages[0].content, "How many rows in t?");
}

#[tokio::test]
async fn invalid_chats_store_nothing() {
    let fx = open(1000);
    for (message, code) in [("   ", "empty_message"), (&"x".repeat(40_000)[..], "message_too_long")]
    {
        let err = fx.core.chat(&local(), ChatRequest::new(message)).await.unwrap_err();
        assert_eq!(err.code().as_str(), code);
    }
    let err = fx
        .core
        .chat(&local(), ChatRequest { database: Some("nope".into()), ..ChatRequest::new("hi") })
        .await
        .unwrap_err();
    assert_eq!(err.code().as_str(), "database_not_found");
    assert_eq!(fx.core.list_threads(&local(), Page::default()).await.unwrap().1, 0);
}

#[tokio::test]
async fn queries_reach_the_query_log_and_metrics() {
    let fx = open(1000);
    let r =
        fx.core.query(&local(), None, "SELECT v FROM t".into(), QueryParams::None).await.unwrap();
    assert_eq!(r.rows, vec![vec![serde_json::json!("a")]]);
    let err = fx
        .core
        .query(&local(), Some("fx"), "DROP TABLE t".into(), QueryParams::None)
        .await
        .unwrap_err();
    assert_eq!(err.code().as_str(), "read_only");
    let log = fx.core.query_log(&local(), None, 10).await.unwrap();
    assert_eq!(log.iter().map(|e| e.outcome.as_str()).collect::<Vec<_>>(), ["blocked", "ok"]);
    let m = fx.core.metrics_snapshot().await;
    assert_eq!(m["queries"]["run"], 2);
    assert_eq!(m["queries"]["blocked"], 1);
}

/// The next `database_update` on a subscription: its version and what it carries.
async fn next_structure(
    sub: &mut sqlmatic_events::Subscription,
) -> (i64, sqlmatic_events::StructureUpdate) {
    let text = tokio::time::timeout(Duration::from_secs(5), sub.receiver.recv())
        .await
        .expect("a database_update within 5 s")
        .unwrap();
    match serde_json::from_str::<sqlmatic_events::Event>(&text).unwrap() {
        sqlmatic_events::Event::DatabaseUpdate(u) => (u.schema_version, u.structure),
        other => panic!("expected a database_update, got {other:?}"),
    }
}

fn patched(
    mut held: sqlmatic_models::DatabaseSchema,
    (version, update): (i64, sqlmatic_events::StructureUpdate),
) -> (sqlmatic_models::DatabaseSchema, sqlmatic_models::SchemaPatch) {
    let sqlmatic_events::StructureUpdate::Patch(patch) = update else {
        panic!("a change is sent as a patch: {update:?}")
    };
    patch.apply(&mut held, version).unwrap();
    (held, patch)
}

#[tokio::test]
async fn subscribers_get_the_schema_now_and_patches_later() {
    use sqlmatic_events::StructureUpdate;
    let fx = open(50);
    let _tasks = watch::start(&fx.core);
    let mut early = fx.core.bus().subscribe(8);
    let topic = fx.core.resolve_topic(&local(), Topic::Database(None)).await.unwrap();
    assert_eq!(topic, Topic::Database(Some("fx".into())));
    fx.core.subscribe(early.id, vec![topic.clone()]).await.unwrap();
    let (version, StructureUpdate::Schema(held)) = next_structure(&mut early).await else {
        panic!("a new subscriber gets the whole structure")
    };
    assert_eq!(held.schema_version, version);
    let tables = held.tables.len();
    // let the watcher record the current version before changing it
    tokio::time::sleep(Duration::from_millis(200)).await;

    // another connection changes the schema: the watcher sends only the new table
    rusqlite_exec(&fx.target_path, "CREATE TABLE added(x)");
    let (held, patch) = patched(held, next_structure(&mut early).await);
    assert_eq!(patch.since, version);
    assert!(held.schema_version > version);
    assert_eq!(patch.tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["added"]);
    assert_eq!(patch.names.len(), tables + 1);
    let now = fx.core.structure(&local(), None).await.unwrap();
    assert_eq!(held, sqlmatic_models::DatabaseSchema { ddl: String::new(), ..(*now).clone() });

    // a change the watcher has not seen yet, then a new subscriber: the early one is patched
    // first, the late one starts from the same structure, and the watcher sends nothing again
    rusqlite_exec(&fx.target_path, "DROP TABLE added; CREATE TABLE other(y)");
    let mut late = fx.core.bus().subscribe(8);
    fx.core.subscribe(late.id, vec![topic]).await.unwrap();
    let (held, patch) = patched(held, next_structure(&mut early).await);
    assert_eq!(patch.tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["other"]);
    let (_, StructureUpdate::Schema(whole)) = next_structure(&mut late).await else {
        panic!("a new subscriber gets the whole structure")
    };
    assert_eq!(held, sqlmatic_models::DatabaseSchema { ddl: String::new(), ..whole.clone() });
    assert!(!held.tables.iter().any(|t| t.name == "added"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(early.receiver.try_recv().is_err(), "one update per change");
    assert!(late.receiver.try_recv().is_err(), "one update per change");
}

#[tokio::test]
async fn metrics_are_pushed_to_metrics_subscribers() {
    let fx = open(1000);
    let _tasks = watch::start(&fx.core);
    let mut sub = fx.core.bus().subscribe(8);
    fx.core.subscribe(sub.id, vec![Topic::Metrics]).await.unwrap();
    let m =
        tokio::time::timeout(Duration::from_secs(5), sub.receiver.recv()).await.unwrap().unwrap();
    assert!(m.starts_with(r#"{"event":"metrics_update""#));
}

#[tokio::test]
async fn other_users_threads_are_invisible() {
    let fx = open(1000);
    let t = fx.core.create_thread(&local(), Some("mine"), None).await.unwrap();
    let err = fx.core.resolve_topic(&someone(), Topic::Thread(t.id)).await.unwrap_err();
    assert_eq!(err.code().as_str(), "thread_not_found");
    let err = fx.core.get_thread(&someone(), t.id).await.unwrap_err();
    assert_eq!(err.code().as_str(), "thread_not_found");
}

/// DDL from another connection, as another process would run it.
fn rusqlite_exec(path: &std::path::Path, sql: &str) {
    rusqlite::Connection::open(path).unwrap().execute_batch(sql).unwrap();
}

fn open_with_llm(llm: &sqlmatic_agent::testing::ScriptedLlm) -> Fixture {
    let mut fx = open(1000);
    let mut config = fx.core.config().clone();
    config.agent.provider = Some("openai".into());
    config.agent.base_url = Some(llm.openai_url());
    config.agent.model = Some("scripted".into());
    config.agent.retry_base_ms = 5;
    // reopen on the same app database with the agent configured
    fx.core = Sqlmatic::open(config).unwrap();
    fx
}

#[tokio::test]
async fn a_turn_streams_events_and_stores_its_transcript() {
    use sqlmatic_agent::testing::{Reply, ScriptedLlm, Step};
    let llm = ScriptedLlm::by_round(
        vec![
            Step::Reply(Reply::tool(
                "q",
                "execute_query",
                serde_json::json!({"sql": "SELECT count(*) AS n FROM t"}),
            )),
            Step::Reply(Reply::text("There is 1 row.")),
        ],
        Duration::ZERO,
    )
    .await;
    let fx = open_with_llm(&llm);
    let turn = fx.core.start_chat(&local(), ChatRequest::new("How many rows?")).await.unwrap();
    let mut sub = fx.core.bus().subscribe(64);
    fx.core.bus().add_topics(sub.id, [Topic::Thread(turn.thread_id)]);
    let reply = fx.core.run_turn(turn).await.unwrap();
    assert_eq!(reply.answer, "There is 1 row.");
    assert_eq!(reply.queries[0].result.rows, vec![vec![serde_json::json!(1)]]);
    let mut kinds = Vec::new();
    while let Ok(e) = sub.receiver.try_recv() {
        let v: serde_json::Value = serde_json::from_str(&e).unwrap();
        kinds.push(v["payload"]["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(kinds.first().map(String::as_str), Some("tool_call"));
    assert_eq!(kinds.last().map(String::as_str), Some("done"));
    assert!(kinds.iter().any(|k| k == "delta"));
    let thread = fx.core.get_thread(&local(), reply.thread_id).await.unwrap();
    assert_eq!(thread.messages.len(), 4, "question, answer, tool call, tool result");
    assert!(thread.messages[2..].iter().all(|m| m.parent_id == Some(reply.message_id)));
}

#[tokio::test]
async fn an_interrupted_turn_is_marked_on_restart() {
    use sqlmatic_agent::testing::{Reply, ScriptedLlm, Step};
    let llm = ScriptedLlm::queue(vec![Step::StallAfter {
        events: 1,
        reply: Reply::text("partial answer"),
    }])
    .await;
    let fx = open_with_llm(&llm);
    let turn = fx.core.start_chat(&local(), ChatRequest::new("slow question")).await.unwrap();
    let (thread_id, answer_id) = (turn.thread_id, turn.answer_id);
    // the process "dies" with the turn in flight: the answer row stays pending
    drop(turn);
    let reopened = Sqlmatic::open(fx.core.config().clone()).unwrap();
    let thread = reopened.get_thread(&local(), thread_id).await.unwrap();
    let answer = thread.messages.iter().find(|m| m.id == answer_id).unwrap();
    assert_eq!(answer.status, sqlmatic_models::MessageStatus::Interrupted);
    assert_eq!(thread.messages[0].content, "slow question");
}

#[tokio::test]
async fn evaluation_scores_execution_accuracy() {
    use sqlmatic_agent::testing::{Reply, ScriptedLlm, Step};
    let llm = ScriptedLlm::queue(vec![
        Step::Reply(Reply::tool(
            "a",
            "execute_query",
            serde_json::json!({"sql": "SELECT v FROM t"}),
        )),
        Step::Reply(Reply::text("a")),
        Step::Reply(Reply::tool(
            "b",
            "execute_query",
            serde_json::json!({"sql": "SELECT id FROM t"}),
        )),
        Step::Reply(Reply::text("1")),
        Step::Reply(Reply::text("I don't know")),
    ])
    .await;
    let fx = open_with_llm(&llm);
    let cases = sqlmatic_core_logic::eval::parse_dataset(
        r#"{"id": "q1", "question": "values?", "gold_sql": "SELECT v FROM t"}
{"id": "q2", "question": "values again?", "gold_sql": "SELECT v FROM t", "database": "fx"}
{"id": "q3", "question": "unanswerable", "gold_sql": "SELECT 1"}"#,
    )
    .unwrap();
    let report = fx.core.evaluate(&local(), cases, Default::default()).await;
    assert_eq!(report.total, 3);
    assert_eq!(report.correct, 1, "{report:#?}");
    assert!((report.execution_accuracy - 1.0 / 3.0).abs() < 1e-9);
    assert!(report.results[0].correct);
    assert_eq!(report.results[1].predicted_sql.as_deref(), Some("SELECT id FROM t"));
    assert!(!report.results[1].correct);
    assert!(report.results[2].error.as_deref().unwrap().contains("no successful query"));
}

/// Context is measurable: retrieval recall@k from the lines' `expected_verified`, and execution
/// accuracy with and without the context from a second run of each question; the model asked
/// without context gets no verified query in its prompt.
#[tokio::test]
async fn evaluation_measures_retrieval_and_the_effect_of_context() {
    use sqlmatic_agent::testing::{Reply, ScriptedLlm, Step};
    let llm = ScriptedLlm::queue(vec![
        // with context: the verified SQL
        Step::Reply(Reply::tool(
            "a",
            "execute_query",
            serde_json::json!({"sql": "SELECT v FROM t WHERE id = 1"}),
        )),
        Step::Reply(Reply::text("a")),
        // without: a guess
        Step::Reply(Reply::tool(
            "b",
            "execute_query",
            serde_json::json!({"sql": "SELECT id FROM t"}),
        )),
        Step::Reply(Reply::text("1")),
    ])
    .await;
    let fx = open_with_llm(&llm);
    let context = fx.target_path.with_file_name("context.yaml");
    std::fs::write(
        &context,
        "verified_queries:
  - question: What is the value of the first row?
    sql: SELECT v FROM t WHERE id = 1
    verified_by: ana
    verified_at: '2026-11-01'
  - question: How many rows are there?
    sql: SELECT count(*) FROM t
    verified_by: ana
    verified_at: '2026-11-01'
",
    )
    .unwrap();
    let mut config = fx.core.config().clone();
    config.database.targets[0].context = Some(context);
    let core = Sqlmatic::open(config).unwrap();
    core.check_targets().await.unwrap();
    let cases = sqlmatic_core_logic::eval::parse_dataset(
        r#"{"id": "v", "question": "What is the first row's value?", "gold_sql": "SELECT v FROM t", "expected_verified": ["What is the value of the first row?", "999"]}"#,
    )
    .unwrap();
    let report = core
        .evaluate(&local(), cases, sqlmatic_core_logic::eval::EvalOptions { without_context: true })
        .await;
    assert_eq!(report.k, 3);
    assert_eq!(report.retrieval_recall_at_k, Some(0.5), "{report:#?}");
    assert_eq!(report.results[0].retrieved[0], "What is the value of the first row?");
    assert_eq!(report.execution_accuracy, 1.0, "{report:#?}");
    assert_eq!(report.correct_without_context, Some(0));
    assert_eq!(report.execution_accuracy_without_context, Some(0.0));
    assert_eq!(
        report.results[0].predicted_sql_without_context.as_deref(),
        Some("SELECT id FROM t")
    );
    let received = llm.received();
    let prompt = |i: usize| received[i].body["messages"][0]["content"].as_str().unwrap().to_owned();
    assert!(prompt(0).contains("SELECT v FROM t WHERE id = 1"), "{}", prompt(0));
    assert!(!prompt(2).contains("Verified query"), "{}", prompt(2));
}

#[tokio::test]
async fn an_llm_fault_storm_ends_every_turn_cleanly_and_leaves_nothing_behind() {
    use sqlmatic_agent::testing::{Reply, ScriptedLlm, Step};
    // counted before the scripted server starts: its tasks, and the connections the core opened
    // to it, must all be gone at the end too (a baseline taken with the server's accept loop in
    // it raced that loop's abort)
    let alive = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let baseline = alive();
    let status = |s: u16| Step::Status { status: s, retry_after: Some(0), body: "{}".into() };
    let llm = ScriptedLlm::queue(vec![
        status(500),
        status(502),
        status(503),
        status(429),
        status(429),
        status(429),
        Step::Garbage,
        Step::CutAfter { events: 2, reply: Reply::text("partial answer that gets cut") },
        // one call: the whole-call limit includes the retries
        Step::Hang,
        Step::Reply(Reply::raw_tool("x", "execute_query", "{not json")),
        Step::Reply(Reply::text("recovered")),
    ])
    .await;
    let mut fx = open(1000);
    let mut config = fx.core.config().clone();
    config.agent.provider = Some("openai".into());
    config.agent.base_url = Some(llm.openai_url());
    config.agent.model = Some("scripted".into());
    config.agent.retry_base_ms = 1;
    config.agent.retry_max_ms = 5;
    config.agent.stream_idle_timeout_ms = 300;
    // a model that never answers: over the whole-call limit (the idle limit applies between
    // events of a stream that has started). Wide enough that the first turn's three retried
    // failures fit in it on a loaded machine.
    config.agent.request_timeout_ms = 2000;
    fx.core = Sqlmatic::open(config).unwrap();
    let first = fx.core.chat(&local(), ChatRequest::new("q")).await.unwrap_err();
    let Error::Turn { thread_id, .. } = &first else { panic!("{first:?}") };
    let thread_id = *thread_id;
    let mut codes = vec![first.code().as_str()];
    for _ in 0..4 {
        let e = fx
            .core
            .chat(&local(), ChatRequest { thread_id: Some(thread_id), ..ChatRequest::new("again") })
            .await
            .unwrap_err();
        codes.push(e.code().as_str());
    }
    assert_eq!(
        codes,
        [
            "llm_unavailable",
            "llm_rate_limited",
            "llm_bad_response",
            "llm_stream_interrupted",
            "llm_timeout"
        ]
    );
    // invalid tool arguments are the model's problem to fix, not a failed turn
    let ok = fx
        .core
        .chat(&local(), ChatRequest { thread_id: Some(thread_id), ..ChatRequest::new("last") })
        .await
        .unwrap();
    assert_eq!(ok.answer, "recovered");
    let thread = fx.core.get_thread(&local(), thread_id).await.unwrap();
    let questions =
        thread.messages.iter().filter(|m| m.role == sqlmatic_models::Role::User).count();
    assert_eq!(questions, 6, "every question kept");
    let cut = thread
        .messages
        .iter()
        .find(|m| m.content == "partial answer ")
        .expect("the cut answer's text kept");
    assert_eq!(cut.status, sqlmatic_models::MessageStatus::Error);
    // nothing left running: no turn in flight, no pending approval, no subscriber; and once the
    // core and the scripted server are gone, every task they started has ended
    assert_eq!(fx.core.running_turns(), 0);
    assert_eq!(fx.core.pending_approvals(), 0);
    assert_eq!(fx.core.bus().stats().subscribers, 0);
    drop(fx);
    drop(llm);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while alive() > baseline && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(alive(), baseline, "tasks left behind");
}
