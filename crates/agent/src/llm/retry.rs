//! Sending an LLM request with retries: connect errors, timeouts before a response, 429 and 5xx
//! are retried with exponential backoff and jitter; `Retry-After` is honoured (capped).

use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode};

use super::{LlmError, error_text};

/// Retries of a model call: exponential backoff with jitter, `Retry-After` honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all.
    pub max_attempts: u32,
    /// The first delay.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl RetryPolicy {
    /// Backoff before attempt `attempt + 1`: base × 2^(attempt-1), capped, with jitter in
    /// [50 %, 100 %] so that many clients do not retry in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << (attempt.saturating_sub(1)).min(16));
        let capped = exp.min(self.max);
        capped.mul_f64(0.5 + 0.5 * jitter())
    }
}

/// A number in [0, 1) from the clock: jitter needs spread, not cryptographic randomness.
fn jitter() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ nanos;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// `Retry-After` in seconds (HTTP dates are rare from LLM APIs and are ignored).
fn retry_after(resp: &Response) -> Option<Duration> {
    let v = resp.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map(Duration::from_secs_f64)
}

/// Sends the request built by `build` until it succeeds, fails for good, or attempts run out.
pub async fn send(
    url: &str,
    policy: &RetryPolicy,
    build: impl Fn() -> RequestBuilder,
) -> Result<Response, LlmError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let last = attempt >= policy.max_attempts;
        let wait = match build().send().await {
            Ok(resp) if resp.status().is_success() => return Ok(resp),
            Ok(resp)
                if resp.status() == StatusCode::TOO_MANY_REQUESTS
                    || resp.status().is_server_error() =>
            {
                let status = resp.status().as_u16();
                if last {
                    log::warn!("LLM call to {url} failed with HTTP {status}; no attempts left");
                    return Err(if status == 429 {
                        LlmError::RateLimited
                    } else {
                        LlmError::ServerError { status }
                    });
                }
                let wait = retry_after(&resp).map_or_else(
                    || policy.backoff(attempt),
                    |ra| ra.min(policy.max.max(policy.base)),
                );
                log::warn!(
                    "LLM call to {url} got HTTP {status}; retry {attempt} in {} ms",
                    wait.as_millis()
                );
                wait
            }
            Ok(resp) => {
                let status = resp.status().as_u16();
                return Err(LlmError::Rejected { status, message: error_text(resp).await });
            }
            Err(e) if e.is_timeout() => {
                if last {
                    return Err(LlmError::Timeout);
                }
                log::warn!("LLM call to {url} timed out; retry {attempt}");
                policy.backoff(attempt)
            }
            Err(e) if e.is_connect() || e.is_request() => {
                if last {
                    return Err(LlmError::Unreachable { url: url.to_owned(), source: e });
                }
                log::warn!("LLM call to {url} failed to connect ({e}); retry {attempt}");
                policy.backoff(attempt)
            }
            Err(e) => return Err(LlmError::Unreachable { url: url.to_owned(), source: e }),
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        for _ in 0..50 {
            let b1 = p.backoff(1);
            assert!(b1 >= Duration::from_millis(50) && b1 <= Duration::from_millis(100), "{b1:?}");
            let b3 = p.backoff(3);
            assert!(b3 >= Duration::from_millis(200) && b3 <= Duration::from_millis(400), "{b3:?}");
            let b10 = p.backoff(10);
            assert!(
                b10 <= Duration::from_millis(1000) && b10 >= Duration::from_millis(500),
                "{b10:?}"
            );
        }
    }
}
