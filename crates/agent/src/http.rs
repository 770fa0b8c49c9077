//! The one constructor of HTTP clients (LLM providers, tests): installs the rustls crypto
//! provider first, without which reqwest 0.13 with `rustls-no-provider` panics.

use std::time::Duration;

/// A client builder with rustls (ring) installed and TCP_NODELAY set.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    sqlmatic_tools::install_crypto_provider();
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

/// An HTTP client per thread, all with one configuration.
///
/// A reqwest connection is driven by a task on the runtime that opened it. The server runs one
/// single-threaded runtime per worker, so a client shared by all workers makes every response
/// chunk of a turn wake a task on another thread (an eventfd write and two context switches
/// each; measured with `perf` under `cargo xtask bench-agent`). With one client per thread a
/// turn's requests stay on its own worker. The clients live here, not in thread-locals, so
/// dropping this drops them and closes their connections.
#[derive(Debug)]
pub struct PerThreadClient {
    settings: ClientSettings,
    clients: std::sync::Mutex<std::collections::HashMap<std::thread::ThreadId, reqwest::Client>>,
    /// Used where a per-thread client cannot be built (it was built once, so this is rare).
    fallback: reqwest::Client,
}

/// What a [`PerThreadClient`]'s clients are built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSettings {
    /// Time to connect.
    pub connect_timeout: Duration,
}

impl ClientSettings {
    fn build(&self) -> reqwest::Result<reqwest::Client> {
        http_client_builder().connect_timeout(self.connect_timeout).build()
    }
}

impl PerThreadClient {
    /// Builds the first client now, so a bad configuration fails at start-up.
    pub fn new(settings: ClientSettings) -> reqwest::Result<Self> {
        let fallback = settings.build()?;
        Ok(Self { settings, clients: std::sync::Mutex::default(), fallback })
    }

    /// This thread's client (cheap: a reference-counted handle).
    pub fn get(&self) -> reqwest::Client {
        let mut clients = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        clients
            .entry(std::thread::current().id())
            .or_insert_with(|| self.settings.build().unwrap_or_else(|_| self.fallback.clone()))
            .clone()
    }
}
