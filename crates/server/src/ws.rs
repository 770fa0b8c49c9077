//! The WebSocket endpoint `/ws`: a client subscribes to topics and receives events; it may also
//! ping and chat. Each connection gets a bounded event queue on the bus; a client that stops
//! reading is disconnected with a close reason instead of growing memory. A heartbeat pings the
//! client and closes it after the idle timeout.

use sqlmatic_models::Code;
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, Session};
use futures_util::StreamExt;
use serde::Deserialize;
use sqlmatic_core_logic::ChatRequest;
use sqlmatic_events::{ErrorPayload, Event, Topic};
use sqlmatic_models::ThreadId;

use crate::error::ApiError;
use crate::{CurrentUser, State};

/// Topics in one subscribe message at most.
const MAX_TOPICS: usize = 64;

/// What a client may send: `{"action": "...", ...}`.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ClientAction {
    Subscribe {
        topics: Vec<String>,
    },
    Unsubscribe {
        topics: Vec<String>,
    },
    Ping {
        #[serde(default)]
        id: Option<serde_json::Value>,
    },
    Chat {
        #[serde(default)]
        thread_id: Option<ThreadId>,
        message: String,
        #[serde(default)]
        database: Option<String>,
    },
    Cancel {
        thread_id: ThreadId,
    },
    Approve {
        digest: String,
    },
    Reject {
        digest: String,
        #[serde(default)]
        reason: Option<String>,
    },
}

/// Parses a client frame; the error is the `error` event to send back.
pub fn parse_action(text: &str) -> Result<ClientAction, ErrorPayload> {
    serde_json::from_str(text).map_err(|e| {
        ErrorPayload::new(Code::BadMessage,
            format!(
                "cannot read the message ({e}); send JSON like {{\"action\":\"subscribe\",\"topics\":[\"database\"]}} \
                 with action subscribe, unsubscribe, ping, chat, cancel, approve or reject"
            ),
        )
    })
}

fn parse_topics(raw: &[String]) -> Result<Vec<Topic>, ErrorPayload> {
    if raw.len() > MAX_TOPICS {
        return Err(ErrorPayload::new(
            Code::TooManyTopics,
            format!("at most {MAX_TOPICS} topics per message"),
        ));
    }
    raw.iter()
        .map(|t| {
            t.parse::<Topic>().map_err(|e| ErrorPayload::new(Code::UnknownTopic, e.to_string()))
        })
        .collect()
}

/// A frame over the limit, or fragments that add up to more: actix-ws reports the second as an
/// I/O error with this text only (actix-ws 0.4 `aggregated.rs`).
fn is_too_big(e: &actix_ws::ProtocolError) -> bool {
    match e {
        actix_ws::ProtocolError::Overflow => true,
        actix_ws::ProtocolError::Io(io) => io.to_string().contains("maximum continuation size"),
        _ => false,
    }
}

fn error_event(e: ApiError) -> Event {
    Event::Error(ErrorPayload::new(e.code(), e.message()))
}

/// Upgrades the request and runs the session on the current worker.
pub async fn connect(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<State>,
    user: CurrentUser,
) -> Result<HttpResponse, actix_web::Error> {
    // browsers authenticate with the subprotocols `sqlmatic, bearer.<token>`; answer `sqlmatic`
    let (response, session, stream) = actix_ws::handle_with_protocols(&req, body, &["sqlmatic"])?;
    let max = state.api.ws_max_frame_bytes;
    let stream = stream.max_frame_size(max).aggregate_continuations().max_continuation_size(max);
    let peer = req.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    // the token the socket was opened with: checked again when its user's credentials change
    let token = crate::auth::token_of(&req);
    actix_web::rt::spawn(run(state.into_inner(), user, token, session, stream, peer));
    Ok(response)
}

struct Conn {
    state: std::sync::Arc<State>,
    user: CurrentUser,
    session: Session,
}

impl Conn {
    async fn send(&mut self, event: &Event) -> bool {
        self.session.text(event.to_json()).await.is_ok()
    }

    /// Handles one client action; false when the connection is gone.
    async fn handle(&mut self, subscriber: u64, text: &str) -> bool {
        let action = match parse_action(text) {
            Ok(a) => a,
            Err(e) => return self.send(&Event::Error(e)).await,
        };
        let state = self.state.clone();
        let core = &state.core;
        match action {
            ClientAction::Ping { id } => self.send(&Event::Pong { id }).await,
            ClientAction::Subscribe { topics } => {
                let topics = match parse_topics(&topics) {
                    Ok(t) => t,
                    Err(e) => return self.send(&Event::Error(e)).await,
                };
                let mut resolved = Vec::with_capacity(topics.len());
                for topic in topics {
                    match core.resolve_topic(&self.user.0, topic.clone()).await {
                        // a topic named twice (or as `database` and `database:<default>`) once
                        Ok(t) if resolved.contains(&t) => {}
                        Ok(t) => resolved.push(t),
                        Err(e) => {
                            let mut err = ErrorPayload::new(
                                Code::TopicNotFound,
                                format!("cannot subscribe to `{topic}`: {e}"),
                            );
                            if e.kind() != sqlmatic_models::ErrorKind::NotFound {
                                err.code = e.code().into();
                            }
                            return self.send(&Event::Error(err)).await;
                        }
                    }
                }
                log::info!(
                    "ws {subscriber}: subscribe {}",
                    resolved.iter().map(Topic::to_string).collect::<Vec<_>>().join(", ")
                );
                let ack =
                    Event::Subscribed { topics: current_topics(core.bus(), subscriber, &resolved) };
                if !self.send(&ack).await {
                    return false;
                }
                if let Err(e) = core.subscribe(subscriber, resolved).await {
                    return self.send(&error_event(e.into())).await;
                }
                true
            }
            ClientAction::Unsubscribe { topics } => {
                let topics = match parse_topics(&topics) {
                    Ok(t) => t,
                    Err(e) => return self.send(&Event::Error(e)).await,
                };
                let mut resolved = Vec::new();
                for t in topics {
                    resolved.push(core.resolve_topic(&self.user.0, t.clone()).await.unwrap_or(t));
                }
                core.bus().remove_topics(subscriber, resolved.iter());
                log::info!(
                    "ws {subscriber}: unsubscribe {}",
                    resolved.iter().map(Topic::to_string).collect::<Vec<_>>().join(", ")
                );
                let topics = core.bus().topics(subscriber).iter().map(Topic::to_string).collect();
                self.send(&Event::Subscribed { topics }).await
            }
            ClientAction::Chat { thread_id, message, database } => {
                let request = ChatRequest {
                    thread_id,
                    message,
                    database,
                    stream: true,
                    business_context: true,
                };
                match core.start_chat(&self.user.0, request).await {
                    Ok(turn) => {
                        // follow the turn's events; the turn runs on its own so this connection
                        // can still read a `cancel`
                        core.bus().add_topics(subscriber, [Topic::Thread(turn.thread_id)]);
                        log::info!("ws {subscriber}: chat in thread {}", turn.thread_id);
                        // the turn reports through its events; the handle is not awaited
                        drop(core.spawn_turn(turn));
                        true
                    }
                    Err(e) => self.send(&error_event(e.into())).await,
                }
            }
            ClientAction::Cancel { thread_id } => {
                match core.cancel(&self.user.0, thread_id).await {
                    Ok(()) => true,
                    Err(e) => self.send(&error_event(e.into())).await,
                }
            }
            ClientAction::Approve { digest } => {
                match core.decide_write(&self.user.0, &digest, true, None) {
                    Ok(()) => true,
                    Err(e) => self.send(&error_event(e.into())).await,
                }
            }
            ClientAction::Reject { digest, reason } => {
                match core.decide_write(&self.user.0, &digest, false, reason) {
                    Ok(()) => true,
                    Err(e) => self.send(&error_event(e.into())).await,
                }
            }
        }
    }
}

fn current_topics(bus: &sqlmatic_events::EventBus, id: u64, adding: &[Topic]) -> Vec<String> {
    let mut all: Vec<String> = bus.topics(id).iter().chain(adding).map(Topic::to_string).collect();
    all.sort();
    all.dedup();
    all
}

/// A watch channel's new values as a stream. Its wait for a change stays registered between
/// values, where `changed()` in a `select!` loop registers and unregisters on every turn of the
/// loop: every session shares the credentials channel, so a fan-out to 10,000 sessions did that
/// 10,000 times on one lock. Ends when the sender is gone.
fn watch_values<T: Clone + Send + Sync + 'static>(
    rx: tokio::sync::watch::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let value = rx.borrow_and_update().clone();
        Some((value, rx))
    })
    .fuse()
}

async fn run(
    state: std::sync::Arc<State>,
    user: CurrentUser,
    token: Option<String>,
    session: Session,
    mut stream: actix_ws::AggregatedMessageStream,
    peer: String,
) {
    let api = state.api.clone();
    let mut subscription = state.core.bus().subscribe(api.ws_buffer_size);
    let id = subscription.id;
    state.core.metrics().ws_opened();
    log::info!("ws {id}: connected from {peer} as {}", user.0.name);
    let mut conn = Conn { state: state.clone(), user, session };
    let mut heartbeat = tokio::time::interval(Duration::from_millis(api.ws_heartbeat_interval_ms));
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let idle = Duration::from_millis(api.ws_idle_timeout_ms);
    let mut last_seen = Instant::now();
    let mut credentials = std::pin::pin!(watch_values(state.core.credential_changes()));
    let mut kicked = std::pin::pin!(watch_values(subscription.kicked.clone()));
    let close: Option<CloseReason> = loop {
        tokio::select! {
            biased;
            Some(names) = credentials.next() => {
                let changed = names.contains(&conn.user.0.name);
                let Some(token) = token.as_deref().filter(|_| changed) else { continue };
                if !matches!(state.core.users().authenticate(token).await, Ok(Some(_))) {
                    break Some(CloseReason {
                        code: CloseCode::Policy,
                        description: Some("token revoked or rotated; sign in again".into()),
                    });
                }
            }
            kick = kicked.next() => {
                let why = kick.flatten().unwrap_or("dropped by the server");
                break Some(CloseReason { code: CloseCode::Again, description: Some(why.to_owned()) });
            }
            Some(text) = subscription.receiver.recv() => {
                // Waiting here is what fills the queue of a client that does not read.
                let sent = tokio::select! {
                    r = conn.session.text(text) => r.is_ok(),
                    kick = kicked.next() => {
                        let why = kick.flatten().unwrap_or("dropped by the server");
                        break Some(CloseReason { code: CloseCode::Again, description: Some(why.to_owned()) });
                    }
                };
                if !sent { break None; }
            }
            msg = stream.recv() => {
                last_seen = Instant::now();
                let alive = match msg {
                    None => break None,
                    Some(Ok(AggregatedMessage::Text(text))) => conn.handle(id, &text).await,
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        conn.send(&Event::Error(ErrorPayload::new(Code::BadMessage, "binary frames are not supported; send JSON text"))).await
                    }
                    Some(Ok(AggregatedMessage::Ping(bytes))) => conn.session.pong(&bytes).await.is_ok(),
                    Some(Ok(AggregatedMessage::Pong(_))) => true,
                    Some(Ok(AggregatedMessage::Close(reason))) => {
                        log::info!("ws {id}: client closed ({reason:?})");
                        break reason;
                    }
                    Some(Err(e)) => {
                        log::warn!("ws {id}: protocol error: {e}");
                        let code = if is_too_big(&e) { CloseCode::Size } else { CloseCode::Protocol };
                        let description = if code == CloseCode::Size {
                            format!("message larger than {} bytes", api.ws_max_frame_bytes)
                        } else {
                            format!("protocol error: {e}")
                        };
                        break Some(CloseReason { code, description: Some(description) });
                    }
                };
                if !alive { break None; }
            }
            _ = heartbeat.tick() => {
                if last_seen.elapsed() > idle {
                    break Some(CloseReason { code: CloseCode::Normal, description: Some("idle timeout".into()) });
                }
                if conn.session.ping(b"").await.is_err() { break None; }
            }
        }
    };
    drop(subscription);
    state.core.metrics().ws_closed();
    log::info!(
        "ws {id}: disconnected{}",
        close
            .as_ref()
            .and_then(|c| c.description.as_deref())
            .map(|d| format!(" ({d})"))
            .unwrap_or_default()
    );
    // A client that does not read may never take the close frame: do not wait for it forever.
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.session.close(close)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_actions() {
        assert_eq!(
            parse_action(r#"{"action":"subscribe","topics":["database","threads"]}"#),
            Ok(ClientAction::Subscribe { topics: vec!["database".into(), "threads".into()] })
        );
        assert_eq!(parse_action(r#"{"action":"ping"}"#), Ok(ClientAction::Ping { id: None }));
        assert!(matches!(
            parse_action(r#"{"action":"chat","message":"hi"}"#),
            Ok(ClientAction::Chat { .. })
        ));
        for bad in [
            "",
            "nope",
            "{}",
            r#"{"action":"dance"}"#,
            r#"{"action":"subscribe"}"#,
            "[1,2]",
            r#"{"action":"subscribe","topics":"x"}"#,
        ] {
            let err = parse_action(bad).unwrap_err();
            assert_eq!(err.code, "bad_message", "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_gets_bad_message(text in proptest::prelude::any::<String>()) {
            if let Err(e) = parse_action(&text) {
                proptest::prop_assert_eq!(e.code, "bad_message");
            }
        }

        #[test]
        fn any_topic_list_is_validated_without_panicking(topics in proptest::collection::vec(proptest::prelude::any::<String>(), 0..80)) {
            if let Err(e) = parse_topics(&topics) {
                proptest::prop_assert!(e.code == "unknown_topic" || e.code == "too_many_topics");
            }
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(parse_action(&deep).unwrap_err().code, "bad_message");
        let deep_obj =
            format!(r#"{{"action":"ping","id":{}1{}}}"#, "[".repeat(5000), "]".repeat(5000));
        assert_eq!(parse_action(&deep_obj).unwrap_err().code, "bad_message");
    }

    #[test]
    fn topics_are_validated() {
        assert!(parse_topics(&["database:demo".into(), "metrics".into()]).is_ok());
        assert_eq!(parse_topics(&["weather".into()]).unwrap_err().code, "unknown_topic");
        assert_eq!(
            parse_topics(&vec!["threads".to_owned(); 65]).unwrap_err().code,
            "too_many_topics"
        );
    }
}
