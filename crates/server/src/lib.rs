//! sqlmatic's server: the REST API (actix-web) and WebSocket events (actix-ws) over the chat
//! domain in `sqlmatic-core-logic`, plus configuration loading (figment), logging (log4rs) and
//! the error → HTTP mapping.
//!
//! Owns HTTP, WebSocket framing and configuration; must not contain SQL or prompt text.
//! Handlers stay thin: extract, call the core, convert.

pub mod auth;
pub mod config;
pub mod error;
pub mod logging;
pub mod mcp;
pub mod routes;
pub mod ui;
pub mod wire;
pub mod ws;

use sqlmatic_models::Code;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::{
    Condition, DefaultHeaders, ErrorHandlerResponse, ErrorHandlers, Next, from_fn,
};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError as _, web};
use sqlmatic_core_logic::{CoreConfig, Sqlmatic, watch};

use crate::config::{ApiConfig, Config};
use crate::error::ApiError;

/// What every handler can reach: the core and the API settings. Handlers never see pools.
pub struct State {
    pub core: Arc<Sqlmatic>,
    pub api: ApiConfig,
    pub limiter: auth::Limiter,
}

pub use auth::{Admin, CurrentUser};

pub const LOCAL_USER: &str = "local";

/// Logs every request (method, path, status, latency), counts it in the metrics by route
/// pattern, and tags the response with an `X-Request-Id`.
async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let path = req.path().to_owned();
    let metrics = req.app_data::<web::Data<State>>().map(|s| s.core.clone());
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let mut res = next.call(req).await?;
    let elapsed = started.elapsed();
    let status = res.status();
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".into());
    if let Ok(v) = header::HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(header::HeaderName::from_static("x-request-id"), v);
    }
    if let Some(core) = metrics {
        core.metrics().observe_http(&route, &method, status.as_u16(), elapsed);
    }
    let ms = elapsed.as_secs_f64() * 1000.0;
    if status.is_server_error() {
        let cause = res.response().error().map(|e| format!(" ({e})")).unwrap_or_default();
        log::warn!("{method} {path} {} {ms:.2}ms request_id={request_id}{cause}", status.as_u16());
    } else {
        log::info!("{method} {path} {} {ms:.2}ms request_id={request_id}", status.as_u16());
    }
    Ok(res)
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    // a known path with another method: 405 and the methods it takes
    if let Some(methods) = routes::openapi::methods_for(req.path())
        && !methods.iter().any(|m| *m == req.method().as_str())
    {
        let e = ApiError::new(
            Code::MethodNotAllowed,
            format!(
                "{} is not allowed on {}; use {}",
                req.method(),
                req.path(),
                methods.join(", ")
            ),
        );
        return e.with_header("Allow", methods.join(", ")).error_response();
    }
    let e =
        ApiError::new(Code::RouteNotFound, format!("no route for {} {}", req.method(), req.path()));
    e.error_response()
}

/// Turns actix's empty 405 (and rmcp's bare-text one on `/mcp`) into our JSON error, naming
/// the methods the response's own `Allow` gives, or else the OpenAPI document's.
fn method_not_allowed<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let (req, res) = res.into_parts();
    let methods = match res.headers().get(actix_web::http::header::ALLOW) {
        Some(allow) => allow.to_str().unwrap_or_default().to_owned(),
        None => routes::openapi::methods_for(req.path()).unwrap_or_default().join(", "),
    };
    let e = ApiError::new(
        Code::MethodNotAllowed,
        format!("{} is not allowed on {}; use {methods}", req.method(), req.path()),
    );
    let e = if methods.is_empty() { e } else { e.with_header("Allow", methods) };
    let response = e.error_response();
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(req, response).map_into_right_body()))
}

/// Headers every response carries: no sniffing, no framing, no referrer leaks. API responses
/// are JSON, so the content security policy forbids everything.
fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cross-Origin-Resource-Policy", "same-origin"))
        .add(("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"))
}

/// CORS for the configured origins (`*` allows any).
fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::IF_NONE_MATCH])
        .expose_headers([
            "ETag",
            "X-Request-Id",
            "Retry-After",
            "X-Sqlmatic-Row-Count",
            "X-Sqlmatic-Truncated",
        ])
        .max_age(3600);
    for o in origins {
        cors = if o == "*" { cors.allow_any_origin() } else { cors.allowed_origin(o) };
    }
    cors
}

/// A bound, not yet running server. `main` and the tests take the same path.
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    core: Arc<Sqlmatic>,
    _tasks: watch::BackgroundTasks,
}

impl Application {
    /// Opens the core (app database, targets), starts the background tasks and binds the
    /// listener (port 0 picks a free one).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let core_config = CoreConfig {
            database: config.database.clone(),
            tools: config.tools.clone(),
            agent: config.agent.clone(),
            memory: config.memory.clone(),
            max_concurrent_chats: if config.api.rate_limit.enabled {
                config.api.rate_limit.max_concurrent_chats
            } else {
                0
            },
            chats_per_minute: if config.api.rate_limit.enabled {
                config.api.rate_limit.chats_per_minute
            } else {
                0
            },
            metrics_interval: Duration::from_millis(config.api.metrics_interval_ms),
        };
        auth::check_bind(&config.api.host, &config.api.auth).map_err(anyhow::Error::msg)?;
        let core = tokio::task::spawn_blocking(move || Sqlmatic::open(core_config)).await??;
        core.check_targets().await?;
        let tasks = watch::start(&core);
        let listener =
            TcpListener::bind((config.api.host.as_str(), config.api.port)).map_err(|e| {
                anyhow::anyhow!("cannot listen on {}:{}: {e}", config.api.host, config.api.port)
            })?;
        let port = listener.local_addr()?.port();
        let api = config.api.clone();
        let state = web::Data::new(State {
            core: core.clone(),
            api: api.clone(),
            limiter: auth::Limiter::new(api.rate_limit.clone()),
        });
        log::info!("authentication: {:?}; rate limits: {:?}", api.auth.mode, api.rate_limit);
        // one MCP service for every worker: its sessions must be found whichever worker a
        // client's next request lands on
        let mcp = web::Data::new(mcp::http_service(core.clone()));
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(mcp.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(api.body_limit_bytes)
                        .error_handler(error::json_error),
                )
                .app_data(web::QueryConfig::default().error_handler(error::query_error))
                .app_data(web::PathConfig::default().error_handler(error::path_error))
                // innermost first: auth and limits, then JSON 405s, logging and metrics,
                // security headers, and CORS outermost (it answers preflights itself)
                .wrap(from_fn(auth::authenticate))
                .wrap(
                    ErrorHandlers::new()
                        .handler(StatusCode::METHOD_NOT_ALLOWED, method_not_allowed),
                )
                .wrap(from_fn(observe))
                .wrap(security_headers())
                .wrap(Condition::new(!api.allowed_origins.is_empty(), cors(&api.allowed_origins)))
                .configure(routes::configure)
                .configure(ui::configure)
                .default_service(web::to(not_found))
        })
        .listen_auto_h2c(listener)?
        .shutdown_timeout(config.api.shutdown_timeout_secs);
        if config.api.workers > 0 {
            server = server.workers(config.api.workers);
        }
        log::info!("listening on http://{}:{port}", config.api.host);
        Ok(Self { port, server: server.run(), core, _tasks: tasks })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn core(&self) -> &Arc<Sqlmatic> {
        &self.core
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (Ctrl-C / SIGTERM, or the handle).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        log::info!("server stopped");
        result
    }
}
