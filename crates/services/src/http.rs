//! The one constructor of HTTP clients (LLM providers, tests): installs the rustls crypto
//! provider first, without which reqwest 0.13 with `rustls-no-provider` panics.

use std::time::Duration;

/// An HTTP client with rustls (ring) and the given timeouts.
pub fn http_client(
    connect_timeout: Duration,
    request_timeout: Option<Duration>,
) -> reqwest::Result<reqwest::Client> {
    // Installing twice is harmless: the second call reports the provider already present.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder().connect_timeout(connect_timeout).tcp_nodelay(true);
    if let Some(t) = request_timeout {
        builder = builder.timeout(t);
    }
    builder.build()
}
