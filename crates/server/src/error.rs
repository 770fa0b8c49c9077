//! The one place errors become HTTP: `kind → status`, body `{"error":{"code","kind","message"}}`.
//! `code` is stable snake_case; clients match on it, never on `message`. Internal failures are
//! logged with their cause chain and answered with a generic message.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde_json::{Value, json};
use sqlmatic_models::ErrorKind;

#[derive(Debug)]
pub struct ApiError {
    kind: ErrorKind,
    code: String,
    message: String,
    details: Option<Value>,
    /// Seconds for `Retry-After` (rate limits).
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { kind, code: code.into(), message: message.into(), details: None, retry_after: None }
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, "not_found", message)
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The JSON body, also used as the WebSocket `error` payload.
    pub fn body(&self) -> Value {
        let mut error =
            json!({"code": self.code, "kind": self.kind.as_str(), "message": self.message});
        if let Some(d) = &self.details {
            error["details"] = d.clone();
        }
        json!({ "error": error })
    }
}

pub fn status_of(kind: ErrorKind, code: &str) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Upstream => StatusCode::BAD_GATEWAY,
        // A query over its time limit is the client's request timing out; other time limits
        // are a gateway's.
        ErrorKind::Timeout if code == "query_timeout" => StatusCode::REQUEST_TIMEOUT,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(self.kind, &self.code)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(secs) = self.retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()));
        }
        response.json(self.body())
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl From<sqlmatic_core_logic::Error> for ApiError {
    fn from(e: sqlmatic_core_logic::Error) -> Self {
        let kind = e.kind();
        let code = e.code();
        let message = match kind {
            ErrorKind::Internal => {
                log::error!("internal error [{code}]: {}", chain(&e));
                "internal error; the server log has the details".to_owned()
            }
            ErrorKind::Unavailable if code.starts_with("app_db") => {
                log::error!("app database unavailable [{code}]: {}", chain(&e));
                e.to_string()
            }
            _ => e.to_string(),
        };
        Self {
            kind,
            code: code.to_owned(),
            message,
            details: e.details(),
            retry_after: e.retry_after(),
        }
    }
}

impl From<sqlmatic_services::Error> for ApiError {
    fn from(e: sqlmatic_services::Error) -> Self {
        sqlmatic_core_logic::Error::from(e).into()
    }
}

/// JSON body errors: wrong content type → 415, too large → 413, malformed → 400 with the reason.
pub fn json_error(err: actix_web::error::JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let api = match &err {
        E::ContentType => ApiError::new(
            ErrorKind::InvalidInput,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        E::OverflowKnownLength { length, limit } => ApiError::new(
            ErrorKind::TooLarge,
            "payload_too_large",
            format!("the body is {length} bytes; the limit is {limit}"),
        ),
        E::Overflow { limit } => ApiError::new(
            ErrorKind::TooLarge,
            "payload_too_large",
            format!("the body exceeds the limit of {limit} bytes"),
        ),
        E::Deserialize(e) => {
            ApiError::bad_request("invalid_json", format!("invalid JSON body: {e}"))
        }
        other => ApiError::bad_request("invalid_body", format!("cannot read the body: {other}")),
    };
    let status = if matches!(err, E::ContentType) {
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    } else {
        api.status_code()
    };
    actix_web::error::InternalError::from_response(
        err,
        HttpResponse::build(status).json(api.body()),
    )
    .into()
}

pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _req: &HttpRequest,
) -> actix_web::Error {
    let api = ApiError::bad_request("invalid_query_string", format!("invalid query string: {err}"));
    actix_web::error::InternalError::from_response(err, api.error_response()).into()
}

pub fn path_error(err: actix_web::error::PathError, _req: &HttpRequest) -> actix_web::Error {
    let api = ApiError::new(ErrorKind::NotFound, "not_found", format!("no such resource: {err}"));
    actix_web::error::InternalError::from_response(err, api.error_response()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_statuses() {
        for (kind, code, status) in [
            (ErrorKind::InvalidInput, "sql_error", 400),
            (ErrorKind::Forbidden, "read_only", 403),
            (ErrorKind::NotFound, "database_not_found", 404),
            (ErrorKind::Timeout, "query_timeout", 408),
            (ErrorKind::Timeout, "llm_timeout", 504),
            (ErrorKind::Unavailable, "llm_not_configured", 503),
            (ErrorKind::Internal, "internal", 500),
        ] {
            assert_eq!(status_of(kind, code).as_u16(), status, "{code}");
        }
    }

    #[test]
    fn internal_errors_do_not_leak() {
        let e = sqlmatic_core_logic::Error::Tool(sqlmatic_tools::ToolError::internal(
            "secret path /etc/x",
        ));
        let api = ApiError::from(e);
        assert!(!api.body().to_string().contains("/etc/x"));
    }
}
