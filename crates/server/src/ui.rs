//! The web app: static files compiled into the binary (nothing to deploy), served with their
//! content types, an ETag so browsers revalidate cheaply, and a content security policy that
//! allows only this origin's scripts, styles and WebSocket.

use std::hash::{Hash, Hasher};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($path:literal, $file:literal, $ct:expr) => {
        Asset { path: $path, content_type: $ct, body: include_str!(concat!("../ui/", $file)) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("/", "index.html", "text/html; charset=utf-8"),
    asset!("/ui/style.css", "style.css", "text/css; charset=utf-8"),
    asset!("/ui/js/api.js", "js/api.js", JS),
    asset!("/ui/js/app.js", "js/app.js", JS),
    asset!("/ui/js/chart.js", "js/chart.js", JS),
    asset!("/ui/js/chat.js", "js/chat.js", JS),
    asset!("/ui/js/dom.js", "js/dom.js", JS),
    asset!("/ui/js/knowledge.js", "js/knowledge.js", JS),
    asset!("/ui/js/markdown.js", "js/markdown.js", JS),
    asset!("/ui/js/vendor/marked.js", "js/vendor/marked.js", JS),
    asset!("/ui/js/vendor/purify.js", "js/vendor/purify.js", JS),
    asset!("/ui/js/metrics.js", "js/metrics.js", JS),
    asset!("/ui/js/results.js", "js/results.js", JS),
    asset!("/ui/js/structure.js", "js/structure.js", JS),
];

/// The policy for the page: same-origin scripts, styles and connections (WebSocket included);
/// blob: for CSV downloads and data: for inline images; nothing may frame it.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                       connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Whether `path` belongs to the web app (public: the sign-in page must load without a token).
pub fn is_ui_path(path: &str) -> bool {
    path == "/" || path.starts_with("/ui/")
}

fn etag(body: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}

async fn serve(req: HttpRequest) -> HttpResponse {
    let Some(asset) = ASSETS.iter().find(|a| a.path == req.path()) else {
        let e = crate::error::ApiError::new(
            sqlmatic_models::Code::NotFound,
            format!("no file {}", req.path()),
        );
        return actix_web::ResponseError::error_response(&e);
    };
    let tag = etag(asset.body);
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == tag);
    let mut response = if fresh { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response
        .insert_header((header::ETAG, tag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::CONTENT_TYPE, asset.content_type));
    if fresh { response.finish() } else { response.body(asset.body) }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(serve)).route("/ui/{tail:.*}", web::get().to(serve));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_served() {
        for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            for line in a.body.lines().filter(|l| l.starts_with("import ")) {
                let module = line
                    .rsplit("from '")
                    .next()
                    .and_then(|s| s.split('\'').next())
                    .unwrap_or_default();
                let path = format!("/ui/js/{}", module.trim_start_matches("./"));
                assert!(
                    ASSETS.iter().any(|x| x.path == path),
                    "{} imports {module}, which is not served",
                    a.path
                );
            }
        }
    }
}
