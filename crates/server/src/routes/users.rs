//! Who am I, and (admins) users and their agent settings.

use actix_web::{HttpResponse, get, put, web};
use sqlmatic_agent::AgentOverrides;
use sqlmatic_models::Code;
use sqlmatic_models::Principal;

use crate::error::ApiError;
use crate::{Admin, CurrentUser, State};

/// The caller: name, admin flag, databases.
#[utoipa::path(get, path = "/api/me", tag = "users", responses((status = 200, body = Principal), (status = 401, body = crate::wire::ErrorBody)))]
#[get("/api/me")]
pub async fn me(user: CurrentUser) -> web::Json<Principal> {
    web::Json(user.0)
}

/// Every user (admins).
#[utoipa::path(get, path = "/api/users", tag = "users", responses((status = 200, body = Object), (status = 403, body = crate::wire::ErrorBody)))]
#[get("/api/users")]
pub async fn list(state: web::Data<State>, _admin: Admin) -> Result<HttpResponse, ApiError> {
    let users = state.core.users().clone();
    let list = web::block(move || users.list())
        .await
        .map_err(|e| ApiError::new(Code::Internal, e.to_string()))??;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "users": list })))
}

/// A user's stored agent settings (admins): `model`, `temperature`, `tools`, `databases`, `system_prompt`.
#[utoipa::path(get, path = "/api/users/{name}/agent", tag = "users", params(("name" = String, Path)), responses(
    (status = 200, body = AgentOverrides), (status = 403, body = crate::wire::ErrorBody), (status = 404, body = crate::wire::ErrorBody)))]
#[get("/api/users/{name}/agent")]
pub async fn agent_settings(
    state: web::Data<State>,
    _admin: Admin,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let settings = state.core.users().agent_settings(&name).await?.unwrap_or_default();
    Ok(HttpResponse::Ok().json(settings))
}

/// Replaces a user's stored agent settings (admins); the user's agent is rebuilt on its next turn.
#[utoipa::path(put, path = "/api/users/{name}/agent", tag = "users", params(("name" = String, Path)), request_body = AgentOverrides, responses(
    (status = 200, body = AgentOverrides), (status = 400, body = crate::wire::ErrorBody), (status = 403, body = crate::wire::ErrorBody), (status = 404, body = crate::wire::ErrorBody)))]
#[put("/api/users/{name}/agent")]
pub async fn set_agent_settings(
    state: web::Data<State>,
    _admin: Admin,
    name: web::Path<String>,
    body: crate::wire::JsonObject<AgentOverrides>,
) -> Result<HttpResponse, ApiError> {
    let settings = body.into_inner();
    if settings.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(ApiError::new(Code::InvalidSettings, "temperature must be between 0 and 2"));
    }
    if let Some(tools) = &settings.tools {
        state
            .core
            .tools()
            .toolset(tools)
            .map_err(|e| ApiError::new(Code::InvalidSettings, e.model_message))?;
    }
    state.core.users().set_agent_settings(&name, &settings).await?;
    Ok(HttpResponse::Ok().json(settings))
}
