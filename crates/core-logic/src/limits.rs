//! Token buckets: the chat rate limit the core applies to every turn (REST and WebSocket alike),
//! and the request limit the server applies per request.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Token buckets by key.
#[derive(Debug)]
pub struct Buckets {
    per_minute: f64,
    state: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Buckets {
    /// Buckets of `per_minute` tokens, refilled continuously.
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute: f64::from(per_minute.max(1)), state: Mutex::default() }
    }

    /// Takes one token for `key`; `Err(wait)` when there is none.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let rate = self.per_minute / 60.0;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.len() > 10_000 {
            // forget idle keys so the map cannot grow without bound
            state.retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(120));
        }
        let (tokens, at) = state.entry(key.to_owned()).or_insert((self.per_minute, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(self.per_minute);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }
}
