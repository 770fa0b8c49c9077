use serde_json::{Value, json};

use crate::helpers::*;

#[actix_web::test]
async fn bad_requests_get_json_errors() {
    let app = spawn_with(|c| c.api.body_limit_bytes = 4096).await;
    assert_error(app.get("/no/such/route").await, 404, "route_not_found").await;
    let r = app
        .client
        .post(app.url("/api/query"))
        .header("content-type", "text/plain")
        .body("SELECT 1")
        .send()
        .await
        .unwrap();
    assert_error(r, 415, "unsupported_media_type").await;
    let r = app
        .client
        .post(app.url("/api/query"))
        .header("content-type", "application/json")
        .body("{\"sql\": ")
        .send()
        .await
        .unwrap();
    let body = assert_error(r, 400, "invalid_json").await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("EOF"),
        "the parser's reason: {body}"
    );
    let r = app.post_json("/api/query", json!({"sql": "x".repeat(10_000)})).await;
    assert_error(r, 413, "payload_too_large").await;
    // a wrong method on a real path is 405 with the methods it takes, not 404
    for (method, path, allow) in [
        (reqwest::Method::PUT, "/api/threads", "GET, POST"),
        (reqwest::Method::POST, "/api/databases", "GET"),
        (reqwest::Method::DELETE, "/api/query", "POST"),
        (
            reqwest::Method::POST,
            "/api/threads/7b0b1a2e-0000-4000-8000-000000000000",
            "GET, DELETE, PATCH",
        ),
        (reqwest::Method::PUT, "/ws", "GET"),
    ] {
        let r = app.client.request(method.clone(), app.url(path)).send().await.unwrap();
        assert_eq!(
            r.headers().get("allow").and_then(|a| a.to_str().ok()),
            Some(allow),
            "{method} {path}"
        );
        assert_error(r, 405, "method_not_allowed").await;
    }
}

#[actix_web::test]
async fn every_response_has_a_request_id() {
    let app = spawn_app().await;
    let r = app.get("/healthz").await;
    assert_eq!(r.headers()["x-request-id"].len(), 32);
}

#[actix_web::test]
async fn openapi_describes_every_route() {
    let app = spawn_app().await;
    let doc: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with('3'));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/healthz",
        "/readyz",
        "/api/databases",
        "/api/database/structure",
        "/api/query",
        "/api/threads",
        "/api/threads/{id}",
        "/chat",
        "/api/metrics",
        "/metrics",
        "/api/query-log",
        "/api/openapi.json",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    assert!(paths["/api/threads/{id}"].get("patch").is_some());
    assert!(paths["/api/threads/{id}"].get("delete").is_some());
    assert!(doc["components"]["schemas"]["QueryResult"].is_object());
}

#[test]
fn the_committed_openapi_document_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed.trim() == sqlmatic_server::routes::openapi::document().trim(),
        "docs/openapi.json is stale: run `cargo xtask openapi`"
    );
}

#[actix_web::test]
async fn the_web_app_is_served_with_types_caching_and_a_csp() {
    let app = spawn_with(|c| c.api.auth.mode = sqlmatic_server::auth::AuthMode::Token).await;
    // public even in token mode: the sign-in page must load
    let r = app.get("/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        csp.contains("script-src 'self'")
            && csp.contains("connect-src 'self' ws: wss:")
            && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        r.text().await.unwrap().contains("<script type=\"module\" src=\"/ui/js/app.js\"></script>")
    );
    let again = app.client.get(app.url("/")).header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    for (path, ct) in [
        ("/ui/style.css", "text/css; charset=utf-8"),
        ("/ui/js/app.js", "text/javascript; charset=utf-8"),
        ("/ui/js/chart.js", "text/javascript; charset=utf-8"),
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], ct, "{path}");
    }
    assert_error(app.get("/ui/js/nope.js").await, 404, "not_found").await;
    assert_error(app.get("/api/threads").await, 401, "unauthorized").await;
}

/// A chunked body is checked exactly like one with a `Content-Length` (it used to skip every
/// check and create a thread).
#[actix_web::test]
async fn chunked_and_sized_bodies_are_checked_alike() {
    let app = spawn_app().await;
    let big = vec![b'x'; 50 << 20];
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("application/json", b"{not json".to_vec(), 400, "invalid_json"),
        ("application/json", br#"{"title": "t", "evil": 1}"#.to_vec(), 400, "invalid_json"),
        ("text/plain", br#"{"title": "t"}"#.to_vec(), 415, "unsupported_media_type"),
        ("application/json", big, 413, "payload_too_large"),
    ];
    for (content_type, body, status, code) in cases {
        for chunked in [false, true] {
            let request =
                app.client.post(app.url("/api/threads")).header("content-type", content_type);
            let request = if chunked {
                let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                    body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
                request.body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
            } else {
                request.body(body.clone())
            };
            let r = request.send().await.unwrap();
            let what = format!("{content_type}, {} bytes, chunked={chunked}", body.len());
            assert_eq!(r.status().as_u16(), status, "{what}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], code, "{what}: {v}");
        }
    }
    let listed: Value = app.get("/api/threads").await.json().await.unwrap();
    assert_eq!(listed["total"], 0, "no bad body created a thread");
    // no body at all still creates a thread
    let r = app.client.post(app.url("/api/threads")).send().await.unwrap();
    assert_eq!(r.status(), 201);
}

/// The docs say HTTP/2: a client that speaks it from the first byte (h2c prior knowledge, as
/// `curl --http2-prior-knowledge`) gets answers, and HTTP/1.1 clients still do.
#[actix_web::test]
async fn http2_with_prior_knowledge_is_served() {
    let app = spawn_app().await;
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let r = h2.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let r = h2
        .post(app.url("/api/query"))
        .json(&json!({"sql": "SELECT count(*) FROM customers"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.get("/healthz").await.version(), reqwest::Version::HTTP_11);
}

/// Errors the HTTP layer writes before any route runs are JSON too (vendor/actix-http/PATCHED.md):
/// a request head with too many headers gets `431 headers_too_large`, garbage gets
/// `400 malformed_request`, both with `Content-Type: application/json`.
#[actix_web::test]
async fn errors_written_by_the_http_layer_are_json() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let many_headers: String = (0..120).map(|i| format!("X-Filler-{i}: {i}\r\n")).collect();
    let cases = [
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n"),
            431,
            "headers_too_large",
        ),
        ("GET /healthz HTTP/1.1\r\nHo st\0: x\r\n\r\n".to_string(), 400, "malformed_request"),
    ];
    for (request, status, code) in cases {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let raw = String::from_utf8(raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
        let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {raw}"));
        assert_eq!(v["error"]["code"], code, "{v}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}
