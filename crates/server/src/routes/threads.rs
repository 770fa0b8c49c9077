//! Threads: list, create, read, rename, delete.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use sqlmatic_models::Code;
use sqlmatic_models::{Page, Thread, ThreadId};

use crate::error::ApiError;
use crate::wire::{CreateThread, Pagination, RenameThread, ThreadDetail, ThreadList};
use crate::{CurrentUser, State};

fn thread_id(raw: &str) -> Result<ThreadId, ApiError> {
    raw.parse().map_err(|_| ApiError::new(Code::ThreadNotFound, "thread not found"))
}

/// The caller's threads, most recently active first.
#[utoipa::path(get, path = "/api/threads", tag = "threads", params(Pagination), responses((status = 200, body = ThreadList)))]
#[get("/api/threads")]
pub async fn list(
    state: web::Data<State>,
    user: CurrentUser,
    page: web::Query<Pagination>,
) -> Result<web::Json<ThreadList>, ApiError> {
    let page = Page::new(page.limit.unwrap_or(Page::default().limit), page.offset.unwrap_or(0));
    let (threads, total) = state.core.list_threads(&user.0, page).await?;
    Ok(web::Json(ThreadList { threads, total, limit: page.limit, offset: page.offset }))
}

/// Creates a thread (and pushes `thread_created` to `threads` subscribers).
#[utoipa::path(post, path = "/api/threads", tag = "threads", request_body = Option<CreateThread>, responses(
    (status = 201, body = Thread), (status = 400, body = crate::wire::ErrorBody), (status = 404, body = crate::wire::ErrorBody)))]
#[post("/api/threads")]
pub async fn create(
    state: web::Data<State>,
    user: CurrentUser,
    body: crate::wire::OptionalJson<CreateThread>,
) -> Result<HttpResponse, actix_web::Error> {
    let body = body.0;
    let thread = state
        .core
        .create_thread(&user.0, body.title.as_deref(), body.database.as_deref())
        .await
        .map_err(ApiError::from)?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/threads/{}", thread.id)))
        .json(thread))
}

/// A thread with its messages in order.
#[utoipa::path(get, path = "/api/threads/{id}", tag = "threads", params(("id" = String, Path, description = "thread id")), responses(
    (status = 200, body = ThreadDetail), (status = 404, body = crate::wire::ErrorBody)))]
#[get("/api/threads/{id}")]
pub async fn get(
    state: web::Data<State>,
    user: CurrentUser,
    id: web::Path<String>,
) -> Result<web::Json<ThreadDetail>, ApiError> {
    let t = state.core.get_thread(&user.0, thread_id(&id)?).await?;
    Ok(web::Json(ThreadDetail { thread: t.thread, messages: t.messages }))
}

/// Renames a thread.
#[utoipa::path(patch, path = "/api/threads/{id}", tag = "threads", params(("id" = String, Path, description = "thread id")), request_body = RenameThread, responses(
    (status = 200, body = Thread), (status = 400, body = crate::wire::ErrorBody), (status = 404, body = crate::wire::ErrorBody)))]
#[patch("/api/threads/{id}")]
pub async fn rename(
    state: web::Data<State>,
    user: CurrentUser,
    id: web::Path<String>,
    body: crate::wire::JsonObject<RenameThread>,
) -> Result<web::Json<Thread>, ApiError> {
    Ok(web::Json(state.core.rename_thread(&user.0, thread_id(&id)?, &body.title).await?))
}

/// Deletes a thread and its messages.
#[utoipa::path(delete, path = "/api/threads/{id}", tag = "threads", params(("id" = String, Path, description = "thread id")), responses(
    (status = 204), (status = 404, body = crate::wire::ErrorBody)))]
#[delete("/api/threads/{id}")]
pub async fn delete(
    state: web::Data<State>,
    user: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.core.delete_thread(&user.0, thread_id(&id)?).await?;
    Ok(HttpResponse::NoContent().finish())
}
