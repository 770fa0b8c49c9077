//! Counters, gauges and latency histograms in one Prometheus registry: `/metrics` renders it as
//! text, `/api/metrics` and `metrics_update` as JSON with percentiles estimated from the buckets.

use std::time::{Duration, Instant};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use serde_json::{Value, json};
use sqlmatic_tools::{QueryEvent, QueryObserver};

const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Counters and histograms of the server: HTTP requests, WebSocket connections, queries, events.
pub struct Metrics {
    registry: Registry,
    started: Instant,
    http_requests: IntCounterVec,
    http_latency: HistogramVec,
    ws_connections: IntGauge,
    ws_connections_total: IntCounterVec,
    queries: IntCounterVec,
    query_latency: HistogramVec,
    events_sent: IntGauge,
    threads: IntGauge,
    messages: IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()), labels)
        .unwrap_or_else(|e| unreachable!("static histogram definition: {e}"))
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable!("static counter: {e}"))
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).unwrap_or_else(|e| unreachable!("static gauge: {e}"))
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Self {
            registry: Registry::new_custom(Some("sqlmatic".into()), None)
                .unwrap_or_else(|e| unreachable!("static registry: {e}")),
            started: Instant::now(),
            http_requests: counter(
                "http_requests_total",
                "HTTP requests by route, method and status",
                &["route", "method", "status"],
            ),
            http_latency: latency(
                "http_request_duration_seconds",
                "HTTP request latency by route",
                &["route"],
            ),
            ws_connections: gauge("ws_connections", "Open WebSocket connections"),
            ws_connections_total: counter(
                "ws_connections_total",
                "WebSocket connections accepted",
                &["outcome"],
            ),
            queries: counter(
                "queries_total",
                "SQL statements run by tools, by outcome",
                &["outcome"],
            ),
            query_latency: latency("query_duration_seconds", "SQL statement latency", &["outcome"]),
            events_sent: gauge("events_sent", "Events delivered to subscribers since start"),
            threads: gauge("threads", "Threads in the app database"),
            messages: gauge("messages", "Messages in the app database"),
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.http_requests.clone()),
            Box::new(m.http_latency.clone()),
            Box::new(m.ws_connections.clone()),
            Box::new(m.ws_connections_total.clone()),
            Box::new(m.queries.clone()),
            Box::new(m.query_latency.clone()),
            Box::new(m.events_sent.clone()),
            Box::new(m.threads.clone()),
            Box::new(m.messages.clone()),
        ];
        for c in collectors {
            if let Err(e) = m.registry.register(c) {
                log::error!("metrics registration failed: {e}");
            }
        }
        m
    }
}

/// Estimates a quantile from cumulative buckets by linear interpolation (as Prometheus does).
fn quantile(q: f64, buckets: &[(f64, u64)], count: u64) -> Option<f64> {
    if count == 0 {
        return None;
    }
    let rank = q * count as f64;
    let mut prev_bound = 0.0;
    let mut prev_count = 0u64;
    for &(bound, cumulative) in buckets {
        if cumulative as f64 >= rank {
            let in_bucket = (cumulative - prev_count) as f64;
            let frac = if in_bucket > 0.0 { (rank - prev_count as f64) / in_bucket } else { 1.0 };
            return Some(prev_bound + (bound - prev_bound) * frac);
        }
        prev_bound = bound;
        prev_count = cumulative;
    }
    Some(prev_bound)
}

fn buckets_of(h: &prometheus::proto::Histogram) -> Vec<(f64, u64)> {
    h.get_bucket().iter().map(|b| (b.upper_bound(), b.cumulative_count())).collect()
}

fn summarize(h: &prometheus::proto::Histogram) -> Value {
    summarize_buckets(&buckets_of(h), h.get_sample_count(), h.get_sample_sum())
}

fn summarize_buckets(buckets: &[(f64, u64)], count: u64, sum: f64) -> Value {
    let ms = |q: f64| quantile(q, buckets, count).map(|s| (s * 1e6).round() / 1e3);
    json!({
        "count": count,
        "mean_ms": if count > 0 { Some((sum / count as f64 * 1e6).round() / 1e3) } else { None },
        "p50_ms": ms(0.5),
        "p90_ms": ms(0.9),
        "p99_ms": ms(0.99),
    })
}

impl Metrics {
    /// Fresh metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one HTTP request.
    pub fn observe_http(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.http_requests.with_label_values(&[route, method, &status.to_string()]).inc();
        self.http_latency.with_label_values(&[route]).observe(elapsed.as_secs_f64());
    }

    /// A WebSocket connection opened.
    pub fn ws_opened(&self) {
        self.ws_connections.inc();
        self.ws_connections_total.with_label_values(&["accepted"]).inc();
    }

    /// A WebSocket connection closed.
    pub fn ws_closed(&self) {
        self.ws_connections.dec();
    }

    /// A WebSocket upgrade refused.
    pub fn ws_rejected(&self) {
        self.ws_connections_total.with_label_values(&["rejected"]).inc();
    }

    /// Refreshes the gauges that are read from elsewhere (bus, app database).
    pub fn set_levels(&self, events_sent: u64, threads: u64, messages: u64) {
        self.events_sent.set(i64::try_from(events_sent).unwrap_or(i64::MAX));
        self.threads.set(i64::try_from(threads).unwrap_or(i64::MAX));
        self.messages.set(i64::try_from(messages).unwrap_or(i64::MAX));
    }

    /// Prometheus text exposition format.
    pub fn prometheus_text(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            log::error!("metrics encoding failed: {e}");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    /// The JSON snapshot served by `/api/metrics` and pushed as `metrics_update`.
    pub fn snapshot(&self) -> Value {
        let mut by_route = Vec::new();
        let mut latency_by_route = serde_json::Map::new();
        let mut requests_total = 0u64;
        let mut queries = serde_json::Map::new();
        let mut query_latency = Vec::new();
        let mut ws = json!({});
        let mut levels = serde_json::Map::new();
        for family in self.registry.gather() {
            let name = family.name().trim_start_matches("sqlmatic_");
            for m in family.get_metric() {
                let label = |k: &str| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == k)
                        .map(|l| l.value().to_owned())
                        .unwrap_or_default()
                };
                match name {
                    "http_requests_total" => {
                        let count = m.get_counter().get_value() as u64;
                        requests_total += count;
                        by_route.push(json!({"route": label("route"), "method": label("method"), "status": label("status").parse::<u16>().unwrap_or(0), "count": count}));
                    }
                    "http_request_duration_seconds" => {
                        latency_by_route.insert(label("route"), summarize(m.get_histogram()));
                    }
                    "queries_total" => {
                        queries.insert(label("outcome"), json!(m.get_counter().get_value() as u64));
                    }
                    "query_duration_seconds" => query_latency.push(m.get_histogram().clone()),
                    "ws_connections_total" => {
                        ws[label("outcome")] = json!(m.get_counter().get_value() as u64);
                    }
                    "ws_connections" | "events_sent" | "threads" | "messages" => {
                        levels.insert(name.to_owned(), json!(m.get_gauge().get_value() as i64));
                    }
                    _ => {}
                }
            }
        }
        let run: u64 = queries.values().filter_map(Value::as_u64).sum();
        let merged = merge_histograms(&query_latency);
        let level = |k: &str| levels.get(k).cloned().unwrap_or(json!(0));
        json!({
            "uptime_seconds": self.started.elapsed().as_secs(),
            "http": {"requests_total": requests_total, "by_route": by_route, "latency": latency_by_route},
            "websocket": {
                "connections": level("ws_connections"),
                "accepted_total": ws.get("accepted").cloned().unwrap_or(json!(0)),
                "rejected_total": ws.get("rejected").cloned().unwrap_or(json!(0)),
                "events_sent": level("events_sent"),
            },
            "queries": {
                "run": run,
                "ok": queries.get("ok").cloned().unwrap_or(json!(0)),
                "blocked": queries.get("blocked").cloned().unwrap_or(json!(0)),
                "failed": queries.get("failed").cloned().unwrap_or(json!(0)),
                "timed_out": queries.get("timed_out").cloned().unwrap_or(json!(0)),
                "latency": merged,
            },
            "threads": level("threads"),
            "messages": level("messages"),
        })
    }
}

fn merge_histograms(hs: &[prometheus::proto::Histogram]) -> Value {
    let mut buckets: Vec<(f64, u64)> = LATENCY_BUCKETS.iter().map(|b| (*b, 0)).collect();
    let (mut count, mut sum) = (0, 0.0);
    for h in hs {
        count += h.get_sample_count();
        sum += h.get_sample_sum();
        for (slot, b) in buckets.iter_mut().zip(h.get_bucket()) {
            slot.1 += b.cumulative_count();
        }
    }
    summarize_buckets(&buckets, count, sum)
}

impl QueryObserver for Metrics {
    fn on_query(&self, e: &QueryEvent<'_>) {
        let outcome = e.outcome.as_str();
        self.queries.with_label_values(&[outcome]).inc();
        self.query_latency.with_label_values(&[outcome]).observe(e.elapsed_ms / 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let buckets = [(0.01, 50), (0.1, 90), (1.0, 100)];
        assert_eq!(quantile(0.5, &buckets, 100), Some(0.01));
        let p90 = quantile(0.9, &buckets, 100).unwrap();
        assert!((p90 - 0.1).abs() < 1e-9);
        let p95 = quantile(0.95, &buckets, 100).unwrap();
        assert!((p95 - 0.55).abs() < 1e-9, "{p95}");
        assert_eq!(quantile(0.5, &buckets, 0), None);
    }

    #[test]
    fn snapshot_counts_requests_and_renders_text() {
        let m = Metrics::new();
        for _ in 0..9 {
            m.observe_http("/healthz", "GET", 200, Duration::from_micros(300));
        }
        m.observe_http("/api/query", "POST", 403, Duration::from_millis(20));
        m.ws_opened();
        let s = m.snapshot();
        assert_eq!(s["http"]["requests_total"], 10);
        assert_eq!(s["http"]["latency"]["/healthz"]["count"], 9);
        assert!(s["http"]["latency"]["/healthz"]["p99_ms"].as_f64().unwrap() <= 0.5);
        assert_eq!(s["websocket"]["connections"], 1);
        let text = m.prometheus_text();
        assert!(text.contains("sqlmatic_http_requests_total{method=\"POST\",route=\"/api/query\",status=\"403\"} 1"), "{text}");
        assert!(text.contains("sqlmatic_http_request_duration_seconds_bucket"));
    }
}
