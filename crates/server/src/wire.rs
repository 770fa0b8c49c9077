//! Request and response bodies of the REST API (wire DTOs). Models stay free of HTTP concerns.

use serde::{Deserialize, Serialize};
use sqlmatic_models::{Message, QueryParams, Thread, ThreadId};
use utoipa::{IntoParams, ToSchema};

/// Text with something visible in it: not only whitespace, control or invisible format
/// characters (the server's `sqlmatic_models::text::is_blank`), as a JSON Schema pattern. The
/// OpenAPI document puts it on [`VISIBLE_FIELDS`].
pub const VISIBLE: &str = "[^\\s\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u034f\\u061c\\u115f\\u1160\\u17b4\\u17b5\\u180e\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\u2800\\u3164\\ufe00-\\ufe0f\\ufeff\\uffa0]";

/// Fields that must contain something visible: (schema, property).
pub const VISIBLE_FIELDS: &[(&str, &str)] = &[
    ("QueryRequest", "sql"),
    ("CreateThread", "title"),
    ("RenameThread", "title"),
    ("ChatBody", "message"),
];

/// `POST /api/query`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "sql": "SELECT city, count(*) AS customers FROM customers WHERE country = ? GROUP BY city ORDER BY customers DESC LIMIT 5",
    "params": ["Germany"],
    "database": "demo"
}))]
pub struct QueryRequest {
    /// One read-only SQLite statement (at most 100,000 bytes).
    #[schema(min_length = 1, max_length = 100000)]
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
    pub format: Option<OutputFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Json,
    Csv,
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
    /// 1-200, default 50 (larger values are clamped).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub limit: Option<u32>,
    /// Default 0.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub offset: Option<u32>,
}

/// `POST /api/threads`
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Revenue by country", "database": "demo"}))]
pub struct CreateThread {
    /// 1-200 characters; derived from the first question when absent.
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    pub database: Option<String>,
}

/// `PATCH /api/threads/{id}`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Top customers in 2024"}))]
pub struct RenameThread {
    #[schema(min_length = 1, max_length = 200)]
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
#[schema(example = json!({"message": "Which five countries have the most customers?", "database": "demo"}))]
pub struct ChatBody {
    /// Continue this thread; a new thread is created when absent.
    pub thread_id: Option<ThreadId>,
    /// The question, at most 32,000 characters.
    #[schema(min_length = 1, max_length = 32000)]
    pub message: String,
    /// For a new thread: which database it is about.
    pub database: Option<String>,
    /// Stream the model's answer token by token (default true); `message_stream` events go to
    /// `thread:<id>` subscribers either way, and the reply carries the whole answer.
    #[serde(default)]
    pub stream: Option<bool>,
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
#[schema(example = json!({"approve": false, "reason": "not on the production database"}))]
pub struct ApprovalBody {
    pub approve: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A JSON body that may be absent (no body, or `null`: `T::default()`); a body that is there,
/// sent with `Content-Length` or chunked, is checked exactly like [`JsonObject`].
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
        let json = actix_web::web::Json::<serde_json::Value>::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            match json.await?.into_inner() {
                serde_json::Value::Null => Ok(OptionalJson(T::default())),
                value => decode_object(value, &req).map(OptionalJson),
            }
        })
    }
}

/// A JSON body that must be an object, read like `web::Json` (content type, size, syntax) and
/// then decoded: serde would also take a struct from an array (`["SELECT 1"]`), which the API
/// documents as invalid.
pub struct JsonObject<T>(pub T);

impl<T> JsonObject<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for JsonObject<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

fn decode_object<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    req: &actix_web::HttpRequest,
) -> Result<T, actix_web::Error> {
    let decoded = match &value {
        serde_json::Value::Object(_) => serde_json::from_value(value),
        other => Err(serde::de::Error::custom(format!(
            "expected a JSON object, got {}",
            match other {
                serde_json::Value::Null => "null",
                serde_json::Value::Bool(_) => "a boolean",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::String(_) => "a string",
                _ => "an array",
            }
        ))),
    };
    decoded.map_err(|e| {
        crate::error::json_error(actix_web::error::JsonPayloadError::Deserialize(e), req)
    })
}

impl<T: serde::de::DeserializeOwned + 'static> actix_web::FromRequest for JsonObject<T> {
    type Error = actix_web::Error;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(
        req: &actix_web::HttpRequest,
        payload: &mut actix_web::dev::Payload,
    ) -> Self::Future {
        let json = actix_web::web::Json::<serde_json::Value>::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move { decode_object(json.await?.into_inner(), &req).map(JsonObject) })
    }
}
