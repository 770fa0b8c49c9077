//! The one registry of error codes: every code any layer produces, with its kind and its HTTP
//! status. Clients match on the code (stable snake_case), never on the message; `docs/api.md`
//! lists every code with the same status (a test in the server holds the two together).

use crate::ErrorKind;

macro_rules! codes {
    ($( $(#[doc = $doc:literal])+ $variant:ident = $code:literal, $kind:ident, $status:literal; )+) => {
        /// A stable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $( $(#[doc = $doc])+ $variant, )+
        }

        impl Code {
            /// Every code, in registry order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),+];

            /// The code's text (`{"code": "…"}`).
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)+ }
            }

            /// The class of failure.
            pub fn kind(self) -> ErrorKind {
                match self { $(Code::$variant => ErrorKind::$kind,)+ }
            }

            /// The HTTP status the server answers with (WebSocket-only codes: the status the
            /// same failure would have over REST).
            pub fn status(self) -> u16 {
                match self { $(Code::$variant => $status,)+ }
            }

            /// The code for its text, e.g. from a stored or received payload.
            pub fn parse(code: &str) -> Option<Code> {
                match code { $($code => Some(Code::$variant),)+ _ => None }
            }
        }
    };
}

codes! {
    /// The body is not valid JSON for the route.
    InvalidJson = "invalid_json", InvalidInput, 400;
    /// The body could not be read.
    InvalidBody = "invalid_body", InvalidInput, 400;
    /// A query parameter has the wrong type or value.
    InvalidQueryString = "invalid_query_string", InvalidInput, 400;
    /// The body is not sent as `application/json`.
    UnsupportedMediaType = "unsupported_media_type", InvalidInput, 415;
    /// The body exceeds `api.body_limit_bytes`.
    PayloadTooLarge = "payload_too_large", TooLarge, 413;
    /// The request head is over the HTTP layer's limits (vendored actix-http patch).
    HeadersTooLarge = "headers_too_large", TooLarge, 431;
    /// The request is not valid HTTP/1.1 (vendored actix-http patch).
    MalformedRequest = "malformed_request", InvalidInput, 400;
    /// No route for this method and path.
    RouteNotFound = "route_not_found", NotFound, 404;
    /// The path exists, the method does not.
    MethodNotAllowed = "method_not_allowed", InvalidInput, 405;
    /// A path parameter does not name a resource.
    NotFound = "not_found", NotFound, 404;
    /// SQLite rejected the statement, or it is empty.
    SqlError = "sql_error", InvalidInput, 400;
    /// More than one statement in one request.
    MultipleStatements = "multiple_statements", InvalidInput, 400;
    /// Arguments or parameters do not match what the tool or statement takes.
    InvalidArgs = "invalid_args", InvalidInput, 400;
    /// A string or blob would exceed `tools.max_value_bytes`.
    ValueTooLarge = "value_too_large", InvalidInput, 400;
    /// The statement would write; the sandbox refuses it.
    ReadOnly = "read_only", Forbidden, 403;
    /// The query reads a masked column; PostgreSQL refused it (the role may not read it).
    ColumnMasked = "column_masked", Forbidden, 403;
    /// A PostgreSQL target's role could write or escape the sandbox, or read a masked column;
    /// sqlmatic refuses to use it (`allow_privileged_role` overrides the first two).
    UnsafeRole = "unsafe_role", Unavailable, 503;
    /// The statement ran past `tools.query_timeout_ms` (also a tool over its time limit).
    QueryTimeout = "query_timeout", Timeout, 408;
    /// The plan would scan more than `tools.max_scan_rows` rows.
    QueryTooExpensive = "query_too_expensive", InvalidInput, 400;
    /// No target database of that name.
    DatabaseNotFound = "database_not_found", NotFound, 404;
    /// The target database's file is missing or not a healthy SQLite database.
    DatabaseUnavailable = "database_unavailable", Unavailable, 503;
    /// Every connection of the target stayed in use for `tools.pool_wait_ms`.
    TargetBusy = "target_busy", Unavailable, 503;
    /// The user already runs `tools.max_queries_per_user` queries on the target.
    TooManyQueries = "too_many_queries", RateLimited, 429;
    /// `get_schema` was asked for an unknown table.
    TableNotFound = "table_not_found", NotFound, 404;
    /// The model called a tool that does not exist (tool results only).
    UnknownTool = "unknown_tool", InvalidInput, 400;
    /// The person rejected a proposed write, or nobody approved it in time (tool results only).
    WriteRejected = "write_rejected", Forbidden, 403;
    /// No such thread for this user.
    ThreadNotFound = "thread_not_found", NotFound, 404;
    /// No such message.
    MessageNotFound = "message_not_found", NotFound, 404;
    /// No such user.
    UserNotFound = "user_not_found", NotFound, 404;
    /// Input a lower layer refused (the message says what).
    InvalidInput = "invalid_input", InvalidInput, 400;
    /// A thread title is blank or too long.
    InvalidTitle = "invalid_title", InvalidInput, 400;
    /// A chat message is blank.
    EmptyMessage = "empty_message", InvalidInput, 400;
    /// A chat message is too long.
    MessageTooLong = "message_too_long", InvalidInput, 400;
    /// A chat names a database other than its thread's.
    DatabaseMismatch = "database_mismatch", Conflict, 409;
    /// No LLM provider is configured; the message was stored.
    LlmNotConfigured = "llm_not_configured", Unavailable, 503;
    /// No token, or a bad, rotated or revoked one.
    Unauthorized = "unauthorized", Unauthorized, 401;
    /// The route or topic is for admins.
    Forbidden = "forbidden", Forbidden, 403;
    /// Too many requests or chats; `Retry-After` says when to retry.
    RateLimited = "rate_limited", RateLimited, 429;
    /// The user already has `api.rate_limit.max_concurrent_chats` answers running.
    TooManyChats = "too_many_chats", RateLimited, 429;
    /// No pending write with that digest for this user.
    ApprovalNotFound = "approval_not_found", NotFound, 404;
    /// Agent settings with an unknown tool or a bad value.
    InvalidSettings = "invalid_settings", InvalidInput, 400;
    /// The thread is still answering.
    ThreadBusy = "thread_busy", Conflict, 409;
    /// Cancel: no answer is running in the thread.
    NotRunning = "not_running", Conflict, 409;
    /// MCP: the client cancelled the call (a write did not run; an answer is stored cancelled).
    RequestCancelled = "request_cancelled", Conflict, 409;
    /// The user's agent may not use that database.
    DatabaseForbidden = "database_forbidden", Forbidden, 403;
    /// The provider cannot be reached or answered 5xx after all retries.
    LlmUnavailable = "llm_unavailable", Upstream, 502;
    /// The provider answered 429 after all retries.
    LlmRateLimited = "llm_rate_limited", Upstream, 502;
    /// The provider refused the request (4xx).
    LlmRejected = "llm_rejected", Upstream, 502;
    /// The provider sent something that is not its protocol.
    LlmBadResponse = "llm_bad_response", Upstream, 502;
    /// The answer stream was cut before it ended.
    LlmStreamInterrupted = "llm_stream_interrupted", Upstream, 502;
    /// The provider did not answer (or went silent) within the time limits.
    LlmTimeout = "llm_timeout", Timeout, 504;
    /// The model kept calling tools for `agent.max_steps` calls.
    MaxStepsReached = "max_steps_reached", Upstream, 502;
    /// sqlmatic's own database is locked.
    AppDbBusy = "app_db_busy", Unavailable, 503;
    /// sqlmatic's own database cannot be written.
    AppDbUnwritable = "app_db_unwritable", Unavailable, 503;
    /// No connection to sqlmatic's own database.
    AppDbUnavailable = "app_db_unavailable", Unavailable, 503;
    /// A WebSocket frame that is not a valid action.
    BadMessage = "bad_message", InvalidInput, 400;
    /// A WebSocket topic that does not exist.
    UnknownTopic = "unknown_topic", InvalidInput, 400;
    /// More topics in one subscribe than allowed.
    TooManyTopics = "too_many_topics", InvalidInput, 400;
    /// A topic naming an unknown database or someone else's thread.
    TopicNotFound = "topic_not_found", NotFound, 404;
    /// No verified query or candidate with that id.
    VerifiedQueryNotFound = "verified_query_not_found", NotFound, 404;
    /// A verified query's SQL did not run read-only within the limits; it was not promoted.
    VerificationFailed = "verification_failed", InvalidInput, 422;
    /// The verified query comes from the context file; change it there.
    DefinedInContextFile = "defined_in_context_file", Conflict, 409;
    /// Feedback is given on an answer (an assistant message), not on this message.
    NotAnAnswer = "not_an_answer", InvalidInput, 400;
    /// The value index of the database is not built yet (or value lookup is off).
    ValueIndexUnavailable = "value_index_unavailable", Unavailable, 503;
    /// A bug; the server log has the details.
    Internal = "internal", Internal, 500;
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Codes travel as their text (`{"code": "…"}`).
impl From<Code> for String {
    fn from(code: Code) -> Self {
        code.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for &code in Code::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
            assert_eq!(Code::parse(s), Some(code));
            assert!((400..600).contains(&code.status()), "{s}");
        }
    }
}
