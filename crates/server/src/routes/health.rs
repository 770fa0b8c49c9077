//! Liveness and readiness.

use actix_web::{HttpResponse, get, web};

use crate::State;
use crate::error::ApiError;
use crate::wire::{DatabaseReady, Health, Ready};

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> web::Json<Health> {
    web::Json(Health { status: "ok", version: env!("CARGO_PKG_VERSION") })
}

/// Readiness: the app database and every target database can be read; a 503 names each
/// unreadable target and why.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = Ready), (status = 503, body = crate::wire::ErrorBody)))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    let databases = state.core.ready().await?;
    Ok(HttpResponse::Ok().json(Ready {
        status: "ready",
        app_db: true,
        default_database: state.core.default_database().to_owned(),
        databases: databases
            .into_iter()
            .map(|(name, mode)| DatabaseReady {
                name,
                mode: match mode {
                    sqlmatic_tools::OpenMode::ReadOnly => "read_only",
                    sqlmatic_tools::OpenMode::Immutable => "immutable",
                },
            })
            .collect(),
    }))
}
