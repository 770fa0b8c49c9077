//! Request and response bodies of the REST API (wire DTOs). Models stay free of HTTP concerns.

use serde::{Deserialize, Serialize};
use sqlmatic_models::{Message, QueryParams, Thread, ThreadId};
use utoipa::{IntoParams, ToSchema};

/// `POST /api/query`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// One read-only SQLite statement.
    pub sql: String,
    /// Positional (array) or named (object) parameters.
    #[serde(default)]
    pub params: Option<QueryParams>,
    /// Target database name; the default one when absent.
    #[serde(default)]
    pub database: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueryFormat {
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DatabaseParam {
    /// Target database name; the default one when absent.
    pub database: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Pagination {
    /// 1-200, default 50.
    pub limit: Option<u32>,
    /// Default 0.
    pub offset: Option<u32>,
}

/// `POST /api/threads`
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateThread {
    pub title: Option<String>,
    pub database: Option<String>,
}

/// `PATCH /api/threads/{id}`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameThread {
    pub title: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ThreadList {
    pub threads: Vec<Thread>,
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ThreadDetail {
    #[serde(flatten)]
    pub thread: Thread,
    pub messages: Vec<Message>,
}

/// `POST /chat`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatBody {
    /// Continue this thread; a new thread is created when absent.
    pub thread_id: Option<ThreadId>,
    pub message: String,
    /// For a new thread: which database it is about.
    pub database: Option<String>,
    /// Stream the model's answer token by token (default true); `message_stream` events go to
    /// `thread:<id>` subscribers either way, and the reply carries the whole answer.
    #[serde(default)]
    pub stream: Option<bool>,
}

/// The reply of `POST /chat` (documentation of `sqlmatic_core_logic::ChatReply`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatReplyDoc {
    pub thread_id: String,
    /// The answer message.
    pub message_id: i64,
    pub user_message_id: i64,
    pub answer: String,
    /// `complete` or `cancelled`.
    pub status: String,
    /// Every execute_query of the turn: `{sql, columns, rows, row_count, total_rows, truncated, elapsed_ms, error?}`.
    #[schema(value_type = Vec<Object>)]
    pub queries: Vec<serde_json::Value>,
    pub usage: sqlmatic_models::Usage,
    /// Model calls made.
    pub steps: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    pub status: &'static str,
    pub app_db: bool,
    pub default_database: String,
    /// Every configured target database and how it is open.
    pub databases: Vec<DatabaseReady>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseReady {
    pub name: String,
    /// `read_only`, or `immutable` for a WAL database whose `-wal`/`-shm` files cannot be
    /// created (changes by other processes are not seen).
    pub mode: &'static str,
}

/// The error body every failing route returns.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `read_only`, `sql_error`, `thread_not_found`.
    pub code: String,
    /// The error's class: invalid_input, not_found, forbidden, timeout, unavailable…
    pub kind: String,
    pub message: String,
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// `POST /api/approvals/{digest}` and the WebSocket `approve`/`reject` actions.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalBody {
    pub approve: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A JSON body that may be absent (no body at all: `T::default()`); a body that is there, sent
/// with `Content-Length` or chunked, is read and checked exactly like `web::Json` (type, size,
/// syntax, unknown fields).
pub struct OptionalJson<T>(pub T);

impl<T: serde::de::DeserializeOwned + Default + 'static> actix_web::FromRequest
    for OptionalJson<T>
{
    type Error = actix_web::Error;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(
        req: &actix_web::HttpRequest,
        payload: &mut actix_web::dev::Payload,
    ) -> Self::Future {
        use actix_web::http::header;
        let headers = req.headers();
        let has_body = headers.contains_key(header::TRANSFER_ENCODING)
            || headers.get(header::CONTENT_LENGTH).is_some_and(|l| l != "0");
        if !has_body {
            return Box::pin(async { Ok(OptionalJson(T::default())) });
        }
        let json = actix_web::web::Json::<T>::from_request(req, payload);
        Box::pin(async move { json.await.map(|j| OptionalJson(j.into_inner())) })
    }
}
