//! REST routes, one file per resource, wired in [`configure`].

use actix_web::web;

pub mod chat;
pub mod databases;
pub mod health;
pub mod knowledge;
pub mod metrics;
pub mod openapi;
pub mod query;
pub mod threads;
pub mod users;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // the hottest routes first: actix tries resources in order, and each dynamic one on the
    // way is a regex match (`/api/query` came after seven of them)
    cfg.service(query::run)
        .service(chat::post)
        .service(health::healthz)
        .service(health::readyz)
        .service(databases::list)
        .service(databases::structure)
        .service(databases::suggestions)
        .service(knowledge::context)
        .service(knowledge::export)
        .service(knowledge::values)
        .service(knowledge::feedback)
        .service(knowledge::list_verified)
        .service(knowledge::verify)
        .service(knowledge::delete_verified)
        .service(knowledge::list_feedback)
        .service(threads::list)
        .service(threads::create)
        .service(threads::get)
        .service(threads::rename)
        .service(threads::delete)
        .service(chat::cancel)
        .service(chat::decide)
        .service(metrics::json)
        .service(metrics::prometheus)
        .service(metrics::query_log)
        .service(users::me)
        .service(users::list)
        .service(users::agent_settings)
        .service(users::set_agent_settings)
        .service(openapi::spec)
        .route("/ws", web::get().to(crate::ws::connect))
        .route("/mcp", web::route().to(crate::mcp::endpoint));
}
