//! The floors the benchmarks compare sqlmatic with: a bare actix-web server (same actix version,
//! same worker count) with no database, auth, logging, metrics or storage.
//! - `POST /api/query` (`cargo xtask bench`) parses the same JSON body and answers a one-row
//!   JSON result.
//! - `POST /chat` (`cargo xtask bench-load`, when given the model's URL) makes the turn's model
//!   calls over HTTP with one reqwest client per worker, as sqlmatic does, and answers every
//!   tool call with a canned result: the HTTP exchanges of a turn and nothing else.
//!
//! `cargo run --release -p sqlmatic-server --example bare_actix -- PORT WORKERS [MODEL_URL]`

// An example stops at a broken setup.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

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

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(8099);
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(2);
    let model_url = args.next();
    HttpServer::new(move || {
        let app = App::new()
            .route("/api/query", web::post().to(query))
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
