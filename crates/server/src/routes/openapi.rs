//! The OpenAPI document, generated from the route annotations.

use actix_web::{HttpResponse, get};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sqlmatic",
        description = "Chat with your SQL database: REST API. Live events are on the WebSocket at /ws (see docs/api.md)."
    ),
    paths(
        super::health::healthz,
        super::health::readyz,
        super::databases::list,
        super::databases::structure,
        super::query::run,
        super::threads::list,
        super::threads::create,
        super::threads::get,
        super::threads::rename,
        super::threads::delete,
        super::chat::post,
        super::chat::cancel,
        super::metrics::json,
        super::metrics::prometheus,
        super::metrics::query_log,
        spec,
    ),
    components(schemas(sqlmatic_models::ErrorKind))
)]
pub struct ApiDoc;

/// The OpenAPI document as pretty JSON.
pub fn document() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta", responses((status = 200, body = Object)))]
#[get("/api/openapi.json")]
pub async fn spec() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(document())
}
