//! A chat turn over REST.

use actix_web::{HttpResponse, post, web};
use sqlmatic_core_logic::ChatRequest;

use crate::error::ApiError;
use crate::wire::ChatBody;
use crate::{CurrentUser, State};

/// Asks a question in a thread (a new one when `thread_id` is absent). The message is stored
/// before anything else; with no LLM provider configured the answer is `503 llm_not_configured`,
/// whose `details` carry the `thread_id` and `message_id` it was stored under.
#[utoipa::path(post, path = "/chat", tag = "chat", request_body = ChatBody, responses(
    (status = 400, description = "empty_message, message_too_long, database_mismatch", body = crate::wire::ErrorBody),
    (status = 404, description = "thread_not_found, database_not_found", body = crate::wire::ErrorBody),
    (status = 503, description = "llm_not_configured", body = crate::wire::ErrorBody)))]
#[post("/chat")]
pub async fn post(
    state: web::Data<State>,
    user: CurrentUser,
    body: web::Json<ChatBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let message = state
        .core
        .chat(
            &user.0,
            ChatRequest {
                thread_id: body.thread_id,
                message: body.message,
                database: body.database,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(message))
}
