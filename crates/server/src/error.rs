//! The one place errors become HTTP: a registered `Code` gives the status; body `{"error":{"code","kind","message"}}`.
//! `code` is stable snake_case; clients match on it, never on `message`. Internal failures are
//! logged with their cause chain and answered with a generic message.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde_json::{Value, json};
use sqlmatic_models::{Code, ErrorKind};

/// Every error response: a registered [`Code`] (which fixes kind and status), the message, and
/// optional `details` and `Retry-After`. Auth, 404/405/415, rate limits and the core's errors all
/// answer through it.
#[derive(Debug)]
pub struct ApiError {
    code: Code,
    message: String,
    details: Option<Value>,
    /// Extra response headers (`Retry-After`, `Allow`).
    headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: None, headers: Vec::new() }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn code(&self) -> Code {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The JSON body, also used as the WebSocket `error` payload.
    pub fn body(&self) -> Value {
        let mut error = json!({"code": self.code.as_str(), "kind": self.code.kind().as_str(), "message": self.message});
        if let Some(d) = &self.details {
            error["details"] = d.clone();
        }
        json!({ "error": error })
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if self.code == Code::Unauthorized {
            response.insert_header((actix_web::http::header::WWW_AUTHENTICATE, "Bearer"));
        }
        for (name, value) in &self.headers {
            response.insert_header((*name, value.as_str()));
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
        let code = e.code();
        let message = match code.kind() {
            ErrorKind::Internal => {
                log::error!("internal error [{code}]: {}", chain(&e));
                "internal error; the server log has the details".to_owned()
            }
            ErrorKind::Unavailable
                if matches!(
                    code,
                    Code::AppDbBusy | Code::AppDbUnwritable | Code::AppDbUnavailable
                ) =>
            {
                log::error!("app database unavailable [{code}]: {}", chain(&e));
                e.to_string()
            }
            _ => e.to_string(),
        };
        let headers = e.retry_after().map(|s| ("Retry-After", s.to_string())).into_iter().collect();
        Self { code, message, details: e.details(), headers }
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
            Code::UnsupportedMediaType,
            "send the body as JSON with `Content-Type: application/json`",
        ),
        E::OverflowKnownLength { length, limit } => ApiError::new(
            Code::PayloadTooLarge,
            format!("the body is {length} bytes; the limit is {limit}"),
        ),
        E::Overflow { limit } => ApiError::new(
            Code::PayloadTooLarge,
            format!("the body exceeds the limit of {limit} bytes"),
        ),
        E::Deserialize(e) => ApiError::new(Code::InvalidJson, format!("invalid JSON body: {e}")),
        other => ApiError::new(Code::InvalidBody, format!("cannot read the body: {other}")),
    };
    actix_web::error::InternalError::from_response(err, api.error_response()).into()
}

pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _req: &HttpRequest,
) -> actix_web::Error {
    let api = ApiError::new(Code::InvalidQueryString, format!("invalid query string: {err}"));
    actix_web::error::InternalError::from_response(err, api.error_response()).into()
}

pub fn path_error(err: actix_web::error::PathError, _req: &HttpRequest) -> actix_web::Error {
    let api = ApiError::new(Code::NotFound, format!("no such resource: {err}"));
    actix_web::error::InternalError::from_response(err, api.error_response()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_statuses() {
        for (code, status) in [
            (Code::SqlError, 400),
            (Code::ReadOnly, 403),
            (Code::DatabaseNotFound, 404),
            (Code::QueryTimeout, 408),
            (Code::LlmTimeout, 504),
            (Code::LlmNotConfigured, 503),
            (Code::UnsupportedMediaType, 415),
            (Code::Internal, 500),
        ] {
            assert_eq!(ApiError::new(code, "x").status_code().as_u16(), status, "{code}");
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

/// The registry, the documentation and the code agree: every `Code` is in `docs/api.md`'s error
/// table with its status, every documented code exists, and every code is produced somewhere.
#[cfg(test)]
mod registry {
    use std::path::{Path, PathBuf};

    use sqlmatic_models::Code;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn sources(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
            }
        }
    }

    #[test]
    fn every_code_is_documented_with_its_status_and_produced() {
        let docs = std::fs::read_to_string(root().join("docs/api.md")).unwrap();
        let documented: Vec<(String, u16)> = docs
            .lines()
            .filter_map(|l| {
                let mut cells = l.strip_prefix("| `")?.split(" | ");
                let code = cells.next()?.strip_suffix('`')?.to_owned();
                let status = cells.next()?.trim().parse().ok()?;
                Some((code, status))
            })
            .collect();
        for &code in Code::ALL {
            let row = documented.iter().find(|(c, _)| c == code.as_str());
            assert_eq!(
                row.map(|(_, s)| *s),
                Some(code.status()),
                "`{code}` must be in docs/api.md's error table with status {}",
                code.status()
            );
        }
        for (code, _) in &documented {
            assert!(Code::parse(code).is_some(), "docs/api.md documents `{code}`, not a Code");
        }
        // produced: named somewhere other than the registry (the two HTTP-layer codes are
        // written by the vendored actix-http patch)
        let mut files = Vec::new();
        sources(&root().join("crates"), &mut files);
        sources(&root().join("vendor/actix-http/src"), &mut files);
        let producers: Vec<&str> = files
            .iter()
            .filter(|(p, _)| {
                !p.ends_with("models/src/code.rs")
                    && !p.components().any(|c| c.as_os_str() == "tests")
            })
            .map(|(_, text)| text.as_str())
            .collect();
        for &code in Code::ALL {
            let variant = format!("{code:?}");
            let named = producers.iter().any(|text| {
                text.contains(&format!("Code::{variant}")) || text.contains(&format!("\"{code}\""))
            });
            assert!(named, "`{code}` is registered but nothing produces it");
        }
    }
}
