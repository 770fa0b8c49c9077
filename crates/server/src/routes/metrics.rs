//! Metrics as JSON and as Prometheus text, and the query log.

use actix_web::{HttpResponse, get, web};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::{Admin, CurrentUser, State};

/// Uptime, HTTP requests by route and status with latency percentiles, WebSocket connections,
/// events sent, queries by outcome with latency, threads and messages. Admins only.
#[utoipa::path(get, path = "/api/metrics", tag = "metrics", responses((status = 200, body = Object)))]
#[get("/api/metrics")]
pub async fn json(state: web::Data<State>, _admin: Admin) -> HttpResponse {
    HttpResponse::Ok().json(state.core.metrics_snapshot().await)
}

/// The same metrics in the Prometheus text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "metrics", responses((status = 200, content_type = "text/plain", body = String)))]
#[get("/metrics")]
pub async fn prometheus(state: web::Data<State>, _admin: Admin) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.core.prometheus_text().await)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// 1-1000, default 100.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub limit: Option<u32>,
    /// Admins: only this user's entries (default: everyone's). Ignored for other users.
    pub user: Option<String>,
}

/// The newest entries of the query log: every SQL a tool ran, by whom, how it ended. Users see
/// their own entries; admins everyone's.
#[utoipa::path(get, path = "/api/query-log", tag = "metrics", params(LogParams), responses((status = 200, body = Object)))]
#[get("/api/query-log")]
pub async fn query_log(
    state: web::Data<State>,
    user: CurrentUser,
    params: web::Query<LogParams>,
) -> Result<HttpResponse, ApiError> {
    let entries =
        state.core.query_log(&user.0, params.user.as_deref(), params.limit.unwrap_or(100)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "entries": entries })))
}
