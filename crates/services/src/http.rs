//! The one constructor of HTTP clients (LLM providers, tests): installs the rustls crypto
//! provider first, without which reqwest 0.13 with `rustls-no-provider` panics.

use std::time::Duration;

/// A client builder with rustls (ring) installed and TCP_NODELAY set.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    // Installing twice is harmless: the second call reports the provider already present.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .user_agent(concat!("sqlmatic/", env!("CARGO_PKG_VERSION")))
}

/// An HTTP client with the given timeouts.
pub fn http_client(
    connect_timeout: Duration,
    request_timeout: Option<Duration>,
) -> reqwest::Result<reqwest::Client> {
    let mut builder = http_client_builder().connect_timeout(connect_timeout);
    if let Some(t) = request_timeout {
        builder = builder.timeout(t);
    }
    builder.build()
}
