//! The floor `cargo xtask bench` compares `POST /api/query` with: a bare actix-web server (same
//! actix version, same worker count) whose handler parses the same JSON body and answers a
//! one-row JSON result, with no database, auth, logging or metrics.
//! `cargo run --release -p sqlmatic-server --example bare_actix -- PORT WORKERS`

use actix_web::{App, HttpResponse, HttpServer, web};

async fn query(body: web::Json<serde_json::Value>) -> HttpResponse {
    let id = body["params"][0].clone();
    HttpResponse::Ok().json(serde_json::json!({
        "columns": [{"name": "id", "decl_type": "INTEGER"}],
        "rows": [[id]],
        "row_count": 1,
        "total_rows": 1,
        "truncated": false,
        "elapsed_ms": 0.0
    }))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(8099);
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(2);
    HttpServer::new(|| {
        App::new()
            .route("/api/query", web::post().to(query))
            .route("/readyz", web::get().to(HttpResponse::Ok))
    })
    .workers(workers)
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
