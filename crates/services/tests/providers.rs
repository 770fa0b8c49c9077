//! Both providers against the scripted server: real HTTP, real SSE, injected faults.

// Test helpers outside #[test] fns: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use sqlmatic_models::ChatMessage;
use sqlmatic_services::llm::anthropic::Anthropic;
use sqlmatic_services::llm::openai::OpenAi;
use sqlmatic_services::llm::retry::RetryPolicy;
use sqlmatic_services::llm::{ChatModel, LlmError, LlmRequest, ProviderSettings};
use sqlmatic_services::testing::{Reply, ScriptedLlm, Step};
use sqlmatic_tools::ToolRegistry;

fn settings(base_url: String) -> ProviderSettings {
    ProviderSettings {
        base_url,
        api_key: Some("sk-test".into()),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        stream_idle_timeout: Duration::from_millis(400),
        retry: RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(10),
            max: Duration::from_millis(50),
        },
    }
}

fn request() -> LlmRequest {
    let tools =
        ToolRegistry::builtin().toolset(&["list_tables".into(), "execute_query".into()]).unwrap();
    LlmRequest {
        model: "test-model".into(),
        messages: vec![ChatMessage::system("be brief"), ChatMessage::user("how many customers?")],
        tools: tools.definitions(),
        temperature: 0.0,
        max_tokens: 100,
    }
}

async fn stream(
    model: &dyn ChatModel,
) -> (Result<sqlmatic_services::llm::LlmResponse, LlmError>, String) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let req = request();
    let result = model.stream(&req, &tx).await;
    drop(tx);
    let mut text = String::new();
    while let Some(t) = rx.recv().await {
        text.push_str(&t);
    }
    (result, text)
}

#[tokio::test]
async fn openai_streams_text_and_fragmented_parallel_tool_calls() {
    let sql = json!({"sql": "SELECT count(*) FROM customers WHERE country = 'France' AND segment = 'enterprise'"});
    let llm = ScriptedLlm::queue(vec![
        Step::Reply(
            Reply::tools(&[("c1", "list_tables", json!({})), ("c2", "execute_query", sql.clone())])
                .in_fragments(12),
        ),
        Step::Reply(Reply::text("There are 42 customers.")),
    ])
    .await;
    let model = OpenAi::new(settings(llm.openai_url())).unwrap();
    let (r, text) = stream(&model).await;
    let r = r.unwrap();
    assert_eq!(text, "");
    assert_eq!(r.tool_calls.len(), 2);
    assert_eq!(r.tool_calls[0].name, "list_tables");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&r.tool_calls[1].arguments).unwrap(), sql);
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!((r.usage.prompt_tokens, r.usage.completion_tokens), (100, 10));
    let (r, text) = stream(&model).await;
    assert_eq!(text, "There are 42 customers.");
    assert_eq!(r.unwrap().content, "There are 42 customers.");

    let sent = &llm.received()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["model"], "test-model");
    assert_eq!(sent.body["tools"][0]["function"]["name"], "list_tables");
    assert!(sent.headers.iter().any(|(k, v)| k == "authorization" && v == "Bearer sk-test"));
}

#[tokio::test]
async fn openai_non_streaming() {
    let llm =
        ScriptedLlm::queue(vec![Step::Reply(Reply::tool("x", "list_tables", json!({})))]).await;
    let model = OpenAi::new(settings(llm.openai_url())).unwrap();
    let r = model.complete(&request()).await.unwrap();
    assert_eq!(r.tool_calls[0].id, "x");
    assert_eq!(llm.received()[0].body["stream"], false);
}

#[tokio::test]
async fn retries_5xx_and_429_honouring_retry_after() {
    let llm = ScriptedLlm::queue(vec![
        Step::Status { status: 503, retry_after: None, body: "{}".into() },
        Step::Status { status: 429, retry_after: Some(0), body: "{}".into() },
        Step::Reply(Reply::text("ok")),
    ])
    .await;
    let model = OpenAi::new(settings(llm.openai_url())).unwrap();
    assert_eq!(stream(&model).await.1, "ok");
    assert_eq!(llm.received().len(), 3);
}

#[tokio::test]
async fn faults_become_typed_errors() {
    let cases: Vec<(Step, &str)> = vec![
        (Step::Status { status: 500, retry_after: None, body: "{}".into() }, "llm_unavailable"),
        (Step::Status { status: 429, retry_after: Some(0), body: "{}".into() }, "llm_rate_limited"),
        (
            Step::Status {
                status: 401,
                retry_after: None,
                body: r#"{"error":{"message":"bad key"}}"#.into(),
            },
            "llm_rejected",
        ),
        (Step::delayed(1500, Step::Reply(Reply::text("late"))), "llm_timeout"),
        (
            Step::CutAfter { events: 2, reply: Reply::text("a long answer that will be cut") },
            "llm_stream_interrupted",
        ),
        (Step::Garbage, "llm_bad_response"),
    ];
    for (step, code) in cases {
        // each fault repeated so retries see it too
        let llm = ScriptedLlm::queue(vec![step.clone(), step.clone(), step]).await;
        let model = OpenAi::new(settings(llm.openai_url())).unwrap();
        let err = stream(&model).await.0.unwrap_err();
        assert_eq!(err.code(), code, "{err}");
        if code == "llm_rejected" {
            assert!(err.to_string().contains("bad key"));
            assert_eq!(llm.received().len(), 1, "4xx is not retried");
        }
    }
}

#[tokio::test]
async fn an_unreachable_provider_is_reported() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let model = OpenAi::new(settings(format!("http://127.0.0.1:{port}/v1"))).unwrap();
    let err = model.complete(&request()).await.unwrap_err();
    assert_eq!(err.code(), "llm_unavailable");
}

#[tokio::test]
async fn anthropic_streams_text_and_tool_use() {
    let llm = ScriptedLlm::queue(vec![
        Step::Reply(
            Reply {
                text: vec!["Let me ".into(), "check.".into()],
                ..Reply::tools(&[
                    ("t1", "list_tables", json!({})),
                    ("t2", "execute_query", json!({"sql": "SELECT 1"})),
                ])
            }
            .in_fragments(5),
        ),
        Step::Reply(Reply::text("Done.")),
        Step::CutAfter { events: 3, reply: Reply::text("cut") },
    ])
    .await;
    let model = Anthropic::new(settings(llm.anthropic_url())).unwrap();
    let (r, text) = stream(&model).await;
    let r = r.unwrap();
    assert_eq!(text, "Let me check.");
    assert_eq!(
        r.tool_calls.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["list_tables", "execute_query"]
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&r.tool_calls[1].arguments).unwrap(),
        json!({"sql": "SELECT 1"})
    );
    assert_eq!(r.finish_reason.as_deref(), Some("tool_use"));
    assert_eq!((r.usage.prompt_tokens, r.usage.completion_tokens), (100, 10));
    let (r, _) = stream(&model).await;
    assert_eq!(r.unwrap().content, "Done.");
    assert_eq!(stream(&model).await.0.unwrap_err().code(), "llm_stream_interrupted");

    let sent = &llm.received()[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.body["system"], "be brief");
    assert_eq!(sent.body["tools"][0]["input_schema"]["type"], "object");
    assert!(sent.headers.iter().any(|(k, v)| k == "x-api-key" && v == "sk-test"));
    assert!(sent.headers.iter().any(|(k, _)| k == "anthropic-version"));
}

#[tokio::test]
async fn anthropic_non_streaming() {
    let llm = ScriptedLlm::queue(vec![Step::Reply(Reply::tool(
        "t1",
        "execute_query",
        json!({"sql": "SELECT 2"}),
    ))])
    .await;
    let model = Anthropic::new(settings(llm.anthropic_url())).unwrap();
    let r = model.complete(&request()).await.unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&r.tool_calls[0].arguments).unwrap(),
        json!({"sql": "SELECT 2"})
    );
}

#[tokio::test]
async fn memory_falls_back_to_trimming_when_summarising_fails() {
    use sqlmatic_models::{MessageStatus, Role, ThreadTitle};
    use sqlmatic_services::memory::Summarizer;
    use sqlmatic_services::{AppDb, MemoryConfig, MemoryService, NewMessage, ThreadService};
    let dir = tempfile::tempdir().unwrap();
    let db = AppDb::open_path(&dir.path().join("app.db")).unwrap();
    let threads = ThreadService::new(db.clone());
    let t = threads.create("local", ThreadTitle::parse("t").unwrap(), "demo").await.unwrap();
    for i in 0..3 {
        let q = format!("question {i} {}", "x".repeat(400));
        threads
            .add_message("local", t.id, NewMessage::new(Role::User, q, MessageStatus::Complete))
            .await
            .unwrap();
        threads
            .add_message(
                "local",
                t.id,
                NewMessage::new(Role::Assistant, format!("answer {i}"), MessageStatus::Complete),
            )
            .await
            .unwrap();
    }
    threads
        .add_message("local", t.id, NewMessage::new(Role::User, "latest?", MessageStatus::Complete))
        .await
        .unwrap();
    let memory =
        MemoryService::new(db, MemoryConfig { max_history_tokens: 300, ..MemoryConfig::default() });
    let failing =
        ScriptedLlm::queue(vec![
            Step::Status { status: 500, retry_after: None, body: "{}".into() };
            3
        ])
        .await;
    let model = OpenAi::new(settings(failing.openai_url())).unwrap();
    let history =
        memory.history(t.id, Some(Summarizer { model: &model, model_name: "m" })).await.unwrap();
    let text = serde_json::to_string(&history).unwrap();
    assert!(text.contains("latest?"));
    assert!(!text.contains("question 0"), "the oldest turns were trimmed");
    assert!(!text.contains("Summary of the earlier"), "no summary when summarising failed");
    assert!(history.iter().map(ChatMessage::estimated_tokens).sum::<usize>() <= 300);
    assert!(memory.summary(t.id).await.unwrap().is_none());
}
