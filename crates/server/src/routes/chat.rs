//! Chat turns over REST.

use actix_web::{HttpResponse, post, web};
use sqlmatic_core_logic::ChatRequest;
use sqlmatic_models::Code;
use sqlmatic_models::ThreadId;

use crate::error::ApiError;
use crate::wire::ChatBody;
use crate::{CurrentUser, State};

/// Asks a question in a thread (a new one when `thread_id` is absent) and answers when the agent
/// is done. The question is stored before anything else; `message_stream` events go to
/// `thread:<id>` subscribers meanwhile. Failures keep the question and any partial answer and
/// carry `details.thread_id` and `details.message_id`.
#[utoipa::path(post, path = "/chat", tag = "chat", request_body = ChatBody, responses(
    (status = 200, body = sqlmatic_core_logic::ChatReply),
    (status = 400, description = "empty_message, message_too_long", body = crate::wire::ErrorBody),
    (status = 403, description = "database_forbidden", body = crate::wire::ErrorBody),
    (status = 404, description = "thread_not_found, database_not_found", body = crate::wire::ErrorBody),
    (status = 409, description = "thread_busy: the thread is still answering; database_mismatch: the thread is about another database", body = crate::wire::ErrorBody),
    (status = 502, description = "llm_unavailable, llm_rejected, llm_bad_response, llm_stream_interrupted, llm_rate_limited, max_steps_reached", body = crate::wire::ErrorBody),
    (status = 503, description = "llm_not_configured", body = crate::wire::ErrorBody),
    (status = 504, description = "llm_timeout", body = crate::wire::ErrorBody)))]
#[post("/chat")]
pub async fn post(
    state: web::Data<State>,
    user: CurrentUser,
    body: crate::wire::JsonObject<ChatBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = ChatRequest {
        thread_id: body.thread_id,
        message: body.message,
        database: body.database,
        stream: body.stream.unwrap_or(true),
        business_context: true,
    };
    let reply = state.core.chat(&user.0, request).await?;
    Ok(HttpResponse::Ok().json(reply))
}

/// Stops the answer running in a thread; the partial answer is stored as `cancelled`.
#[utoipa::path(post, path = "/api/threads/{id}/cancel", tag = "chat", params(("id" = String, Path, description = "thread id")), responses(
    (status = 202, description = "cancellation requested"),
    (status = 404, body = crate::wire::ErrorBody), (status = 409, description = "not_running", body = crate::wire::ErrorBody)))]
#[post("/api/threads/{id}/cancel")]
pub async fn cancel(
    state: web::Data<State>,
    user: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: ThreadId =
        id.parse().map_err(|_| ApiError::new(Code::ThreadNotFound, "thread not found"))?;
    state.core.cancel(&user.0, id).await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({"thread_id": id, "status": "cancelling"})))
}

/// A decision on a write the agent proposed (`approval_required`): `{"approve": true}` runs that
/// exact statement; `{"approve": false, "reason"?}` refuses it. Single use; only the thread's owner.
#[utoipa::path(post, path = "/api/approvals/{digest}", tag = "chat", params(("digest" = String, Path, description = "the digest from approval_required")),
    request_body = crate::wire::ApprovalBody, responses(
    (status = 200, description = "decided"), (status = 404, description = "approval_not_found: decided, expired or not yours", body = crate::wire::ErrorBody)))]
#[post("/api/approvals/{digest}")]
pub async fn decide(
    state: web::Data<State>,
    user: CurrentUser,
    digest: web::Path<String>,
    body: crate::wire::JsonObject<crate::wire::ApprovalBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    state.core.decide_write(&user.0, &digest, body.approve, body.reason)?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({"digest": digest.into_inner(), "approved": body.approve})))
}
