use serde_json::{Value, json};

use crate::helpers::*;

#[actix_web::test]
async fn metrics_count_requests_queries_and_threads() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.get("/healthz").await;
    }
    app.query(json!({"sql": "SELECT 1"})).await;
    app.query(json!({"sql": "DELETE FROM orders"})).await;
    app.query(json!({"sql": "SELEC"})).await;
    app.post_json("/api/threads", json!({})).await;
    let m: Value = app.get("/api/metrics").await.json().await.unwrap();
    let healthz = m["http"]["by_route"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "/healthz")
        .unwrap();
    assert_eq!(healthz["count"], 3);
    assert_eq!(healthz["status"], 200);
    assert_eq!(m["http"]["latency"]["/healthz"]["count"], 3);
    assert!(m["http"]["latency"]["/healthz"]["p99_ms"].is_number());
    assert_eq!(m["queries"]["run"], 3);
    assert_eq!(m["queries"]["ok"], 1);
    assert_eq!(m["queries"]["blocked"], 1);
    assert_eq!(m["queries"]["failed"], 1);
    assert_eq!(m["queries"]["latency"]["count"], 3);
    assert_eq!(m["threads"], 1);
    assert!(m["uptime_seconds"].is_u64());

    let r = app.get("/metrics").await;
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = r.text().await.unwrap();
    assert!(
        text.contains(
            "sqlmatic_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 3"
        ),
        "{text}"
    );
    assert!(text.contains("sqlmatic_queries_total{outcome=\"blocked\"} 1"));
    assert!(text.contains("sqlmatic_threads 1"));
}
