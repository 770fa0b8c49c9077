//! Target databases and their structure.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use sqlmatic_models::{DatabaseSchema, DatabaseSummary};

use crate::error::ApiError;
use crate::wire::DatabaseParam;
use crate::{CurrentUser, State};

/// The configured target databases.
#[utoipa::path(get, path = "/api/databases", tag = "databases", responses((status = 200, body = Vec<DatabaseSummary>)))]
#[get("/api/databases")]
pub async fn list(state: web::Data<State>, user: CurrentUser) -> web::Json<Vec<DatabaseSummary>> {
    web::Json(state.core.databases(&user.0))
}

/// Questions to start a thread with.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Suggestions {
    /// The database they are about.
    pub database: String,
    /// Where they come from: `context` (the context file's onboarding questions) or `schema`
    /// (made from its keys, dates and amounts, without an LLM).
    pub source: &'static str,
    /// The questions, at most six.
    pub questions: Vec<String>,
}

/// Questions to start a thread about a database with: its context file's onboarding questions,
/// else questions made from its structure (foreign keys, date columns, amounts) without an LLM;
/// the web app shows them in an empty thread.
#[utoipa::path(get, path = "/api/databases/{name}/suggestions", tag = "databases",
    params(("name" = String, Path, description = "database name")), responses(
    (status = 200, body = Suggestions), (status = 404, body = crate::wire::ErrorBody)))]
#[get("/api/databases/{name}/suggestions")]
pub async fn suggestions(
    state: web::Data<State>,
    user: CurrentUser,
    name: web::Path<String>,
) -> Result<web::Json<Suggestions>, ApiError> {
    let (source, questions) = state.core.suggestions(&user.0, Some(&name)).await?;
    Ok(web::Json(Suggestions { database: name.into_inner(), source, questions }))
}

/// The ETag of a structure: it changes when the schema (`schema_version`) or a row count changes.
fn etag(schema: &DatabaseSchema) -> String {
    let rows: u64 = schema.tables.iter().filter_map(|t| t.row_count).sum();
    format!("\"{}-{}-{}\"", schema.database, schema.schema_version, rows)
}

/// A database's tables, views, columns, keys, indexes and row counts (the `get_schema` output).
/// Served from cache while the schema is unchanged; `If-None-Match` gets `304`.
#[utoipa::path(get, path = "/api/database/structure", tag = "databases", params(DatabaseParam), responses(
    (status = 200, body = DatabaseSchema), (status = 304, description = "unchanged since the ETag"),
    (status = 404, body = crate::wire::ErrorBody)))]
#[get("/api/database/structure")]
pub async fn structure(
    state: web::Data<State>,
    user: CurrentUser,
    req: HttpRequest,
    query: web::Query<DatabaseParam>,
) -> Result<HttpResponse, ApiError> {
    let schema = state.core.structure(&user.0, query.database.as_deref()).await?;
    let tag = etag(&schema);
    let unchanged =
        req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| {
            v.split(',').any(|t| t.trim().trim_start_matches("W/") == tag || t.trim() == "*")
        });
    let mut response = if unchanged { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response.insert_header((header::ETAG, tag)).insert_header((header::CACHE_CONTROL, "no-cache"));
    if unchanged {
        return Ok(response.finish());
    }
    Ok(response.json(&*schema))
}
