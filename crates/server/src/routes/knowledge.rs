//! Business context: each database's context report and export, feedback on answers,
//! verified queries and their candidates, and stored-value lookup.

use actix_web::{HttpResponse, delete, get, post, web};
use serde::Deserialize;
use sqlmatic_core_logic::VerifyRequest;
use sqlmatic_models::{Code, Feedback, Rating, ValueMatch, VerifiedQuery, VerifiedStatus};
use sqlmatic_services::knowledge::{ContextReport, FeedbackOutcome};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::wire::{DatabaseParam, JsonObject};
use crate::{Admin, CurrentUser, State};

fn numeric_id(id: &str, code: Code, what: &str) -> Result<i64, ApiError> {
    id.parse::<i64>().map_err(|_| ApiError::new(code, format!("no {what} with id `{id}`")))
}

/// `POST /api/messages/{id}/feedback`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"rating": "down", "comment": "it counted cancelled orders too"}))]
pub struct FeedbackBody {
    /// `up`: the answer is right (its question and SQL become a verified-query candidate);
    /// `down`: it is wrong.
    pub rating: Rating,
    /// What was right or wrong, up to 2000 characters.
    #[serde(default)]
    pub comment: Option<String>,
}

/// Rates an answer in one of your threads. A second rating replaces the first. An `up` on an
/// answer that ran a query proposes its question and last successful SQL as a candidate, which
/// is never used until an admin verifies it.
#[utoipa::path(post, path = "/api/messages/{id}/feedback", tag = "knowledge",
    params(("id" = String, Path, description = "the answer's message id")),
    request_body = FeedbackBody, responses(
    (status = 200, body = FeedbackOutcome), (status = 400, body = crate::wire::ErrorBody),
    (status = 404, body = crate::wire::ErrorBody)))]
#[post("/api/messages/{id}/feedback")]
pub async fn feedback(
    state: web::Data<State>,
    user: CurrentUser,
    id: web::Path<String>,
    body: JsonObject<FeedbackBody>,
) -> Result<web::Json<FeedbackOutcome>, ApiError> {
    let id = numeric_id(&id, Code::MessageNotFound, "message")?;
    let body = body.into_inner();
    Ok(web::Json(state.core.give_feedback(&user.0, id, body.rating, body.comment).await?))
}

/// `GET /api/verified-queries` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifiedFilter {
    /// Only this database's.
    pub database: Option<String>,
    /// `verified` or `candidate` (candidates: admins only).
    pub status: Option<VerifiedStatus>,
}

/// Verified queries of the databases you may use; admins also see candidates.
#[utoipa::path(get, path = "/api/verified-queries", tag = "knowledge", params(VerifiedFilter),
    responses((status = 200, body = Vec<VerifiedQuery>), (status = 403, body = crate::wire::ErrorBody),
    (status = 404, body = crate::wire::ErrorBody)))]
#[get("/api/verified-queries")]
pub async fn list_verified(
    state: web::Data<State>,
    user: CurrentUser,
    filter: web::Query<VerifiedFilter>,
) -> Result<web::Json<Vec<VerifiedQuery>>, ApiError> {
    let filter = filter.into_inner();
    Ok(web::Json(
        state.core.verified_queries(&user.0, filter.database.as_deref(), filter.status).await?,
    ))
}

/// Verifies a query (admins): promotes a candidate (`candidate_id`), or adds a `question` with
/// its `sql`. The database runs the SQL first, read-only within the limits; SQL that fails is
/// refused with `422 verification_failed`. The admin is recorded as `verified_by`.
#[utoipa::path(post, path = "/api/verified-queries", tag = "knowledge", request_body = VerifyRequest,
    responses((status = 201, body = VerifiedQuery, links(("delete" = (
        operation_id = "delete_verified",
        parameters(("id" = "$response.body#/id")),
        description = "Remove the verified query just added",
    )))), (status = 400, body = crate::wire::ErrorBody),
    (status = 404, body = crate::wire::ErrorBody), (status = 422, body = crate::wire::ErrorBody)))]
#[post("/api/verified-queries")]
pub async fn verify(
    state: web::Data<State>,
    admin: Admin,
    body: JsonObject<VerifyRequest>,
) -> Result<HttpResponse, ApiError> {
    let verified = state.core.verify_query(&admin.0, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(verified))
}

/// Rejects a candidate or removes a verified query (admins); those from a context file are
/// changed in the file (`409 defined_in_context_file`).
#[utoipa::path(delete, path = "/api/verified-queries/{id}", tag = "knowledge",
    params(("id" = String, Path, description = "verified query id")), responses(
    (status = 204), (status = 404, body = crate::wire::ErrorBody), (status = 409, body = crate::wire::ErrorBody)))]
#[delete("/api/verified-queries/{id}")]
pub async fn delete_verified(
    state: web::Data<State>,
    admin: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = numeric_id(&id, Code::VerifiedQueryNotFound, "verified query")?;
    state.core.delete_verified(&admin.0, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Feedback on answers, newest first (admins).
#[utoipa::path(get, path = "/api/feedback", tag = "knowledge", params(DatabaseParam),
    responses((status = 200, body = Vec<Feedback>), (status = 404, body = crate::wire::ErrorBody)))]
#[get("/api/feedback")]
pub async fn list_feedback(
    state: web::Data<State>,
    admin: Admin,
    query: web::Query<DatabaseParam>,
) -> Result<web::Json<Vec<Feedback>>, ApiError> {
    Ok(web::Json(state.core.feedback_list(&admin.0, query.database.as_deref()).await?))
}

/// What loading the database's context file found: where it comes from, what it holds, and
/// every problem with its line (a verified query that did not run is listed and not used).
#[utoipa::path(get, path = "/api/databases/{name}/context", tag = "knowledge",
    params(("name" = String, Path, description = "database name")), responses(
    (status = 200, body = ContextReport), (status = 404, body = crate::wire::ErrorBody)))]
#[get("/api/databases/{name}/context")]
pub async fn context(
    state: web::Data<State>,
    user: CurrentUser,
    name: web::Path<String>,
) -> Result<web::Json<ContextReport>, ApiError> {
    Ok(web::Json(state.core.context_report(&user.0, Some(&name))?))
}

/// The database's context in the context file's YAML format, with every verified query in use
/// (the file's and the promoted ones): what an admin commits back to the file.
#[utoipa::path(get, path = "/api/databases/{name}/context/export", tag = "knowledge",
    params(("name" = String, Path, description = "database name")), responses(
    (status = 200, content_type = "application/yaml", body = serde_json::Value,
        description = "the context file: a YAML mapping"),
    (status = 404, body = crate::wire::ErrorBody)))]
#[get("/api/databases/{name}/context/export")]
pub async fn export(
    state: web::Data<State>,
    user: CurrentUser,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let yaml = state.core.export_context(&user.0, Some(&name)).await?;
    Ok(HttpResponse::Ok().content_type("application/yaml; charset=utf-8").body(yaml))
}

/// `GET /api/databases/{name}/values`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ValuesQuery {
    /// What the user typed (1-200 characters; only spaces matches nothing).
    #[param(min_length = 1, max_length = 200)]
    pub text: String,
    /// `column` or `table.column` to search (default: every indexed text column).
    pub column: Option<String>,
}

/// Stored text values closest to `text` (case, accents, typos, partial words): what the
/// `find_values` tool answers.
#[utoipa::path(get, path = "/api/databases/{name}/values", tag = "knowledge",
    params(("name" = String, Path, description = "database name"), ValuesQuery), responses(
    (status = 200, body = Vec<ValueMatch>), (status = 400, body = crate::wire::ErrorBody),
    (status = 404, body = crate::wire::ErrorBody)))]
#[get("/api/databases/{name}/values")]
pub async fn values(
    state: web::Data<State>,
    user: CurrentUser,
    name: web::Path<String>,
    query: web::Query<ValuesQuery>,
) -> Result<web::Json<Vec<ValueMatch>>, ApiError> {
    if query.text.is_empty() || query.text.chars().count() > 200 {
        return Err(ApiError::new(Code::InvalidQueryString, "text must be 1 to 200 characters"));
    }
    let text = query.text.trim();
    if text.is_empty() {
        return Ok(web::Json(Vec::new()));
    }
    let column = query.column.as_deref().map(str::trim).filter(|c| !c.is_empty());
    Ok(web::Json(state.core.find_values(&user.0, Some(&name), column, text).await?))
}
