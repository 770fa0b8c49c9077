//! The floors the benchmarks compare sqlmatic with: a bare actix-web server (same actix version,
//! same worker count) with no database, auth, logging, metrics or storage.
//! - `POST /api/query` (`cargo xtask bench`) parses the same JSON body and answers a one-row
//!   JSON result.
//! - `POST /chat` (`cargo xtask bench-load`, when given the model's URL) makes the turn's model
//!   calls over HTTP with one reqwest client per worker, as sqlmatic does, and answers every
//!   tool call with a canned result: the HTTP exchanges of a turn and nothing else.
//! - `GET /ws` and `POST /broadcast` (`cargo xtask bench-load`): a WebSocket client's first text
//!   message is answered with a `database_update`; a broadcast's body reaches every connected
//!   client as one text frame, the same bytes shared by all (a tokio broadcast channel). The
//!   fan-out and nothing else: no topics, no authentication, no schema.
//!
//! `cargo run --release -p sqlmatic-server --example bare_actix -- PORT WORKERS [MODEL_URL]`

// An example stops at a broken setup.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytestring::ByteString;
use serde_json::{Value, json};
use tokio::sync::broadcast;

#[path = "support/turn.rs"]
mod turn;

async fn query(body: web::Json<Value>) -> HttpResponse {
    let id = body["params"][0].clone();
    HttpResponse::Ok().json(json!({
        "columns": [{"name": "id", "decl_type": "INTEGER"}],
        "rows": [[id]],
        "row_count": 1,
        "total_rows": 1,
        "truncated": false,
        "elapsed_ms": 0.0
    }))
}

/// The model a worker's `/chat` calls.
struct Model {
    client: reqwest::Client,
    url: String,
    tools: Value,
}

async fn chat(body: web::Json<Value>, model: web::Data<Model>) -> HttpResponse {
    let question = body["message"].as_str().unwrap_or_default();
    let canned = |_: &str, _: &Value| json!({"columns": ["count(*)"], "rows": [[0]]});
    match turn::turn(&model.client, &model.url, &model.tools, question, canned).await {
        Ok(answer) => HttpResponse::Ok().json(json!({"answer": answer, "status": "complete"})),
        Err(message) => {
            HttpResponse::BadGateway().json(json!({"error": {"code": "llm", "message": message}}))
        }
    }
}

/// What every `/ws` client receives.
struct Hub {
    updates: broadcast::Sender<ByteString>,
}

async fn ws(
    req: HttpRequest,
    body: web::Payload,
    hub: web::Data<Hub>,
) -> actix_web::Result<HttpResponse> {
    let (response, mut session, mut stream) = actix_ws::handle(&req, body)?;
    let mut updates = hub.updates.subscribe();
    actix_web::rt::spawn(async move {
        loop {
            let sent = tokio::select! {
                message = stream.recv() => match message {
                    Some(Ok(actix_ws::Message::Text(_))) => {
                        session.text(r#"{"event":"database_update","data":{}}"#).await.is_ok()
                    }
                    Some(Ok(actix_ws::Message::Ping(bytes))) => session.pong(&bytes).await.is_ok(),
                    Some(Ok(actix_ws::Message::Close(_)) | Err(_)) | None => false,
                    Some(Ok(_)) => true,
                },
                update = updates.recv() => match update {
                    Ok(text) => session.text(text).await.is_ok(),
                    Err(broadcast::error::RecvError::Lagged(_)) => true,
                    Err(broadcast::error::RecvError::Closed) => false,
                },
            };
            if !sent {
                break;
            }
        }
        let _ = session.close(None).await;
    });
    Ok(response)
}

async fn broadcast(body: String, hub: web::Data<Hub>) -> HttpResponse {
    let reached = hub.updates.send(ByteString::from(body)).unwrap_or(0);
    HttpResponse::Ok().json(json!({"reached": reached}))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(8099);
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(2);
    let model_url = args.next();
    let hub = web::Data::new(Hub { updates: broadcast::channel(16).0 });
    HttpServer::new(move || {
        let app = App::new()
            .app_data(hub.clone())
            .app_data(web::PayloadConfig::new(1 << 20))
            .route("/api/query", web::post().to(query))
            .route("/ws", web::get().to(ws))
            .route("/broadcast", web::post().to(broadcast))
            .route("/readyz", web::get().to(HttpResponse::Ok));
        match &model_url {
            // this closure runs once per worker: one client each
            Some(url) => app
                .app_data(web::Data::new(Model {
                    client: sqlmatic_agent::http_client(
                        Duration::from_secs(5),
                        Some(Duration::from_secs(60)),
                    )
                    .unwrap(),
                    url: url.clone(),
                    tools: turn::tools(),
                }))
                .route("/chat", web::post().to(chat)),
            None => app,
        }
    })
    .workers(workers)
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
