//! Authentication and request limits, in one middleware that runs before every handler.
//!
//! - `api.auth.mode: none`: every request is the implicit local (admin) user; the server refuses
//!   to listen on a non-loopback address unless `api.auth.allow_insecure_bind` says so.
//! - `api.auth.mode: token`: `Authorization: Bearer <token>`; browsers opening the WebSocket,
//!   which cannot set headers, offer the subprotocols `sqlmatic, bearer.<token>` instead (the
//!   server answers with `sqlmatic`). Missing or bad tokens get `401 unauthorized`.
//! - A token bucket per user (per IP when anonymous) for requests answers `429` with
//!   `Retry-After` (chat turns have their own, in the core).

use sqlmatic_models::Code;
use std::net::IpAddr;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError as _, web};
use serde::{Deserialize, Serialize};
use sqlmatic_core_logic::limits::Buckets;
use sqlmatic_models::Principal;

use crate::State;
use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// One implicit local user; for a single person on their own machine.
    #[default]
    None,
    /// API tokens (`sqlmatic user add`).
    Token,
}

/// `api.auth`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// Allow `mode: none` on a non-loopback address (anyone who reaches it is admin).
    pub allow_insecure_bind: bool,
}

/// `api.rate_limit`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Requests per minute per user (per IP when anonymous); bursts up to this many.
    pub requests_per_minute: u32,
    /// Chat turns per minute per user.
    pub chats_per_minute: u32,
    /// Answers one user may have running at once.
    pub max_concurrent_chats: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            requests_per_minute: 120,
            chats_per_minute: 20,
            max_concurrent_chats: 3,
        }
    }
}

/// Requests per minute per user (per IP when anonymous). Chat turns are limited by the core
/// ([`sqlmatic_core_logic::CoreConfig::chats_per_minute`]), the same for REST and WebSocket.
#[derive(Debug)]
pub struct Limiter {
    pub config: RateLimitConfig,
    requests: Buckets,
}

impl Limiter {
    pub fn new(config: RateLimitConfig) -> Self {
        Self { requests: Buckets::new(config.requests_per_minute), config }
    }

    pub fn request(&self, key: &str) -> Result<(), Duration> {
        if self.config.enabled { self.requests.take(key) } else { Ok(()) }
    }
}

/// `429 rate_limited` with `Retry-After`, worded and rounded as for chats (the core's error).
pub fn rate_limited(wait: Duration) -> HttpResponse {
    ApiError::from(sqlmatic_core_logic::Error::RateLimited { what: "requests", retry_after: wait })
        .error_response()
}

fn unauthorized(message: &str) -> HttpResponse {
    ApiError::new(Code::Unauthorized, message).error_response()
}

/// Routes anyone may call.
fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/api/openapi.json") || crate::ui::is_ui_path(path)
}

/// The bearer token of a request: the `Authorization` header, or a `bearer.<token>` WebSocket
/// subprotocol.
pub fn token_of(req: &HttpRequest) -> Option<String> {
    if let Some(v) = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .map(|t| t.trim().to_owned());
    }
    req.headers().get(header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok()).and_then(|v| {
        v.split(',').map(str::trim).find_map(|p| p.strip_prefix("bearer.")).map(str::to_owned)
    })
}

fn peer_ip(req: &ServiceRequest) -> String {
    req.peer_addr().map(|a| a.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0])).to_string()
}

/// Authenticates, rate-limits, and records the principal for [`CurrentUser`].
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<State>>().cloned() else {
        return next.call(req).await.map(ServiceResponse::map_into_left_body);
    };
    let public = is_public(req.path());
    let principal = match state.api.auth.mode {
        AuthMode::None => Some(Principal::local()),
        AuthMode::Token if public => None,
        AuthMode::Token => {
            // failed attempts count against the caller's IP, which also slows token guessing
            let anonymous_limit =
                |req: &ServiceRequest| state.limiter.request(&format!("ip:{}", peer_ip(req)));
            let Some(token) = token_of(req.request()) else {
                let r = match anonymous_limit(&req) {
                    Err(wait) => rate_limited(wait),
                    Ok(()) => unauthorized(
                        "send `Authorization: Bearer <token>` (sqlmatic user add NAME prints one)",
                    ),
                };
                return Ok(req.into_response(r).map_into_right_body());
            };
            match state.core.users().authenticate(&token).await {
                Ok(Some(p)) => Some(p),
                Ok(None) => {
                    log::warn!("rejected a bad or revoked token from {}", peer_ip(&req));
                    let r = match anonymous_limit(&req) {
                        Err(wait) => rate_limited(wait),
                        Ok(()) => {
                            unauthorized("the token is not valid (revoked, rotated or mistyped)")
                        }
                    };
                    return Ok(req.into_response(r).map_into_right_body());
                }
                Err(e) => {
                    let e = ApiError::from(e);

                    return Ok(req.into_response(e.error_response()).map_into_right_body());
                }
            }
        }
    };
    if !matches!(req.path(), "/healthz" | "/readyz") {
        let key = principal
            .as_ref()
            .map_or_else(|| format!("ip:{}", peer_ip(&req)), |p| format!("user:{}", p.name));
        if let Err(wait) = state.limiter.request(&key) {
            return Ok(req.into_response(rate_limited(wait)).map_into_right_body());
        }
    }
    if let Some(p) = principal {
        req.extensions_mut().insert(p);
    }
    next.call(req).await.map(ServiceResponse::map_into_left_body)
}

/// The user a request acts for (set by [`authenticate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentUser(pub Principal);

impl FromRequest for CurrentUser {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<Principal>()
                .cloned()
                .map(CurrentUser)
                .ok_or_else(|| ApiError::new(Code::Unauthorized, "authentication required")),
        )
    }
}

/// An admin (403 for other users).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin(pub Principal);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        std::future::ready(CurrentUser::from_request(req, payload).into_inner().and_then(
            |CurrentUser(p)| {
                if p.admin {
                    Ok(Admin(p))
                } else {
                    Err(ApiError::new(Code::Forbidden, "this needs an admin"))
                }
            },
        ))
    }
}

/// Refuses `mode: none` on a non-loopback address unless explicitly allowed.
pub fn check_bind(host: &str, auth: &AuthConfig) -> Result<(), String> {
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if auth.mode == AuthMode::None && !loopback && !auth.allow_insecure_bind {
        return Err(format!(
            "refusing to listen on {host} without authentication: anyone who reaches it would be admin. \
             Set api.auth.mode: token (and create users with `sqlmatic user add`), or \
             api.auth.allow_insecure_bind: true if a proxy in front authenticates"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_allow_a_burst_then_refill() {
        let b = Buckets::new(60);
        for _ in 0..60 {
            assert!(b.take("k").is_ok());
        }
        let wait = b.take("k").unwrap_err();
        assert!(wait <= Duration::from_millis(1100) && wait > Duration::ZERO, "{wait:?}");
        assert!(b.take("other").is_ok(), "keys are independent");
    }

    #[test]
    fn insecure_binds_are_refused() {
        let none = AuthConfig::default();
        assert!(check_bind("127.0.0.1", &none).is_ok());
        assert!(check_bind("::1", &none).is_ok());
        assert!(check_bind("0.0.0.0", &none).is_err());
        assert!(
            check_bind("0.0.0.0", &AuthConfig { allow_insecure_bind: true, ..none.clone() })
                .is_ok()
        );
        assert!(check_bind("0.0.0.0", &AuthConfig { mode: AuthMode::Token, ..none }).is_ok());
    }
}
