//! The OpenAPI document, generated from the route annotations.

use actix_web::{HttpResponse, get};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sqlmatic",
        description = "Chat with your SQL database: REST API. Live events are on the WebSocket at /ws (see docs/api.md)."
    ),
    paths(
        super::health::healthz,
        super::health::readyz,
        super::databases::list,
        super::databases::structure,
        super::databases::suggestions,
        super::knowledge::context,
        super::knowledge::export,
        super::knowledge::values,
        super::knowledge::feedback,
        super::knowledge::list_verified,
        super::knowledge::verify,
        super::knowledge::delete_verified,
        super::knowledge::list_feedback,
        super::query::run,
        super::threads::list,
        super::threads::create,
        super::threads::get,
        super::threads::rename,
        super::threads::delete,
        super::chat::post,
        super::chat::cancel,
        super::metrics::json,
        super::metrics::prometheus,
        super::metrics::query_log,
        super::users::me,
        super::users::list,
        super::users::agent_settings,
        super::users::set_agent_settings,
        super::chat::decide,
        websocket,
        spec,
    ),
    components(schemas(sqlmatic_models::ErrorKind, crate::wire::ErrorBody, crate::wire::OutputFormat)),
    modifiers(&Conventions)
)]
pub struct ApiDoc;

/// Routes anyone may call, also with `api.auth.mode: token`.
const PUBLIC: &[&str] = &["/healthz", "/readyz", "/api/openapi.json"];

/// Routes only admins may call (`403 forbidden` for other users).
const ADMIN_ONLY: &[&str] = &[
    "/api/metrics",
    "/metrics",
    "/api/users",
    "/api/users/{name}/agent",
    "/api/feedback",
    "/api/verified-queries/{id}",
];

/// What every route shares, added to each operation so the document lists exactly what the
/// server sends: the bearer scheme, 401 and 429 from the auth and rate-limit middleware, 413,
/// 415 and 400 from the body and query extractors, 403 on admin routes, 503 when the app
/// database is busy.
struct Conventions;

fn error_response(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
        )
        .build()
        .into()
}

impl utoipa::Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
        // a user's tools are names of the server's tools, nothing else
        if let Some(utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(agent))) =
            components.schemas.get_mut("AgentOverrides")
            && let Some(utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Array(tools))) =
                agent.properties.get_mut("tools")
            && let utoipa::openapi::schema::ArrayItems::RefOrSchema(items) = &mut tools.items
            && let utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(item)) = items.as_mut()
        {
            let names = sqlmatic_tools::ToolRegistry::builtin().names();
            item.enum_values = Some(names.into_iter().map(serde_json::Value::from).collect());
        }
        for (schema, field) in crate::wire::VISIBLE_FIELDS {
            if let Some(utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(object))) =
                components.schemas.get_mut(*schema)
                && let Some(utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(property))) =
                    object.properties.get_mut(*field)
            {
                property.pattern = Some(crate::wire::VISIBLE.to_owned());
            }
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            let public = PUBLIC.contains(&path.as_str());
            let ops =
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for op in ops.into_iter().flatten() {
                let mut add = |status: &str, description: &str| {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error_response(description));
                };
                if !public {
                    add(
                        "401",
                        "unauthorized: a missing, bad or revoked token (api.auth.mode: token)",
                    );
                    add("429", "rate_limited: too many requests; `Retry-After` says when to retry");
                    add("503", "app_db_busy, app_db_unwritable, database_unavailable, target_busy");
                }
                if ADMIN_ONLY.contains(&path.as_str()) {
                    add("403", "forbidden: admins only");
                }
                if op.request_body.is_some() {
                    add("400", "invalid_json: the body is not valid JSON of the documented shape");
                    add("413", "payload_too_large: the body is over api.body_limit_bytes");
                    add("415", "unsupported_media_type: send Content-Type: application/json");
                }
                let has_query = op.parameters.iter().flatten().any(|p| match p {
                    utoipa::openapi::RefOr::T(p) => {
                        p.parameter_in == utoipa::openapi::path::ParameterIn::Query
                    }
                    utoipa::openapi::RefOr::Ref(_) => false,
                });
                if has_query {
                    add("400", "invalid_query_string: a query parameter has the wrong type");
                }
                if public {
                    // no authentication: an empty requirement overrides the global bearer one
                    op.security = Some(vec![SecurityRequirement::default()]);
                }
            }
        }
    }
}

/// The WebSocket: live events and chat (see docs/api.md for the protocol). Authenticate with
/// `Authorization: Bearer` or the subprotocols `sqlmatic, bearer.<token>`.
#[utoipa::path(get, path = "/ws", tag = "websocket", responses(
    (status = 101, description = "switching to the WebSocket protocol"),
    (status = 400, description = "not a WebSocket upgrade request", body = crate::wire::ErrorBody)))]
#[allow(dead_code)] // documentation only: `/ws` is served by `crate::ws::connect`
fn websocket() {}

/// Every documented path with its methods, for `405 method_not_allowed` and `Allow`.
pub fn route_methods() -> &'static [(String, Vec<&'static str>)] {
    static ROUTES: std::sync::OnceLock<Vec<(String, Vec<&'static str>)>> =
        std::sync::OnceLock::new();
    ROUTES.get_or_init(|| {
        let doc = ApiDoc::openapi();
        let mut routes: Vec<(String, Vec<&'static str>)> = doc
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("PUT", item.put.is_some()),
                    ("POST", item.post.is_some()),
                    ("DELETE", item.delete.is_some()),
                    ("PATCH", item.patch.is_some()),
                ];
                (path.clone(), methods.iter().filter(|m| m.1).map(|m| m.0).collect())
            })
            .collect();
        routes.push(("/".into(), vec!["GET"]));
        routes
    })
}

/// The methods a path takes, if it is a route at all (`{x}` in a template matches one segment).
pub fn methods_for(path: &str) -> Option<&'static [&'static str]> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    route_methods()
        .iter()
        .find_map(|(template, methods)| {
            let parts: Vec<&str> = template.trim_end_matches('/').split('/').collect();
            let matches = parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(t, s)| t.starts_with('{') || t == s);
            matches.then_some(methods.as_slice())
        })
        .or_else(|| path.starts_with("/ui/").then_some(&["GET"][..]))
}

/// The OpenAPI document as pretty JSON.
pub fn document() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta", responses((status = 200, body = Object)))]
#[get("/api/openapi.json")]
pub async fn spec() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(document())
}
