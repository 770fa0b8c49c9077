//! In-process publish/subscribe with a bounded queue per subscriber.
//!
//! Publishing serializes an event once and `try_send`s it to every subscriber of the topic.
//! A subscriber whose queue is full is dropped from the bus and told why through
//! [`Subscription::kicked`], so one slow client can never make the server's memory grow.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, watch};

use crate::{Event, Topic};

/// An event's JSON text, encoded once per publish and shared by every subscriber (reference
/// counted: a WebSocket frame is sent from it without a copy).
pub type EventText = bytestring::ByteString;

/// Identifies one subscriber (one WebSocket connection) on the bus.
pub type SubscriberId = u64;

struct Subscriber {
    topics: HashSet<Topic>,
    tx: mpsc::Sender<EventText>,
    kick: watch::Sender<Option<&'static str>>,
}

#[derive(Default)]
struct Inner {
    subscribers: Mutex<HashMap<SubscriberId, Subscriber>>,
    next_id: AtomicU64,
    events_sent: AtomicU64,
    subscribers_dropped: AtomicU64,
}

/// The event bus; cheap to clone.
#[derive(Clone, Default)]
pub struct EventBus {
    inner: Arc<Inner>,
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusStats {
    /// Subscribers connected now.
    pub subscribers: u64,
    /// Events delivered to a subscriber's queue since start.
    pub events_sent: u64,
    /// Subscribers dropped because their queue was full.
    pub subscribers_dropped: u64,
}

/// A subscriber's end: events arrive on `receiver`; `kicked` turns `Some(reason)` when the bus
/// dropped it. Dropping the subscription unsubscribes.
pub struct Subscription {
    /// This subscriber's id (for adding and removing topics).
    pub id: SubscriberId,
    /// The events of its topics, in publish order, as shared JSON text.
    pub receiver: mpsc::Receiver<EventText>,
    /// Becomes `Some(reason)` when the bus drops this subscriber.
    pub kicked: watch::Receiver<Option<&'static str>>,
    bus: EventBus,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.bus.remove(self.id);
    }
}

/// Reason given to a subscriber that fell behind.
pub const SLOW_CONSUMER: &str = "client too slow: event queue full";

impl EventBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SubscriberId, Subscriber>> {
        // A panic while holding this lock leaves the map consistent (single inserts/removes).
        self.inner.subscribers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a subscriber with a queue of `buffer` events (at least 1).
    pub fn subscribe(&self, buffer: usize) -> Subscription {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, receiver) = mpsc::channel(buffer.max(1));
        let (kick, kicked) = watch::channel(None);
        self.lock().insert(id, Subscriber { topics: HashSet::new(), tx, kick });
        Subscription { id, receiver, kicked, bus: self.clone() }
    }

    fn remove(&self, id: SubscriberId) {
        self.lock().remove(&id);
    }

    /// Adds topics to a subscriber; returns false when it is no longer on the bus.
    pub fn add_topics(&self, id: SubscriberId, topics: impl IntoIterator<Item = Topic>) -> bool {
        match self.lock().get_mut(&id) {
            Some(sub) => {
                sub.topics.extend(topics);
                true
            }
            None => false,
        }
    }

    /// Unsubscribes `id` from `topics`.
    pub fn remove_topics<'a>(&self, id: SubscriberId, topics: impl IntoIterator<Item = &'a Topic>) {
        if let Some(sub) = self.lock().get_mut(&id) {
            for t in topics {
                sub.topics.remove(t);
            }
        }
    }

    /// The topics `id` is subscribed to.
    pub fn topics(&self, id: SubscriberId) -> Vec<Topic> {
        self.lock().get(&id).map(|s| s.topics.iter().cloned().collect()).unwrap_or_default()
    }

    /// How many subscribers listen to `topic`; publishers use it to skip work nobody will see.
    pub fn subscriber_count(&self, topic: &Topic) -> usize {
        self.lock().values().filter(|s| s.topics.contains(topic)).count()
    }

    /// Sends `event` to every subscriber of `topic`; returns how many got it.
    pub fn publish(&self, topic: &Topic, event: &Event) -> usize {
        let mut text: Option<EventText> = None;
        let mut delivered = 0;
        let mut map = self.lock();
        let mut overflowed = Vec::new();
        for (id, sub) in map.iter() {
            if !sub.topics.contains(topic) {
                continue;
            }
            let text = text.get_or_insert_with(|| EventText::from(event.to_json())).clone();
            match sub.tx.try_send(text) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => overflowed.push(*id),
                Err(mpsc::error::TrySendError::Closed(_)) => overflowed.push(*id),
            }
        }
        for id in overflowed {
            if let Some(sub) = map.remove(&id) {
                let _ = sub.kick.send(Some(SLOW_CONSUMER));
                self.inner.subscribers_dropped.fetch_add(1, Ordering::Relaxed);
                log::warn!("dropped event subscriber {id}: {SLOW_CONSUMER}");
            }
        }
        drop(map);
        self.inner.events_sent.fetch_add(delivered as u64, Ordering::Relaxed);
        delivered
    }

    /// Sends `event` to one subscriber only (e.g. the current schema right after it subscribed).
    pub fn send_to(&self, id: SubscriberId, event: &Event) -> bool {
        let mut map = self.lock();
        let Some(sub) = map.get(&id) else { return false };
        match sub.tx.try_send(EventText::from(event.to_json())) {
            Ok(()) => {
                self.inner.events_sent.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => {
                if let Some(sub) = map.remove(&id) {
                    let _ = sub.kick.send(Some(SLOW_CONSUMER));
                    self.inner.subscribers_dropped.fetch_add(1, Ordering::Relaxed);
                }
                false
            }
        }
    }

    /// Counters for metrics.
    pub fn stats(&self) -> BusStats {
        BusStats {
            subscribers: self.lock().len() as u64,
            events_sent: self.inner.events_sent.load(Ordering::Relaxed),
            subscribers_dropped: self.inner.subscribers_dropped.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorPayload;

    fn ev(n: u32) -> Event {
        Event::Error(ErrorPayload::new("t", n.to_string()))
    }

    #[tokio::test]
    async fn delivers_only_to_topic_subscribers() {
        let bus = EventBus::new();
        let mut a = bus.subscribe(4);
        let mut b = bus.subscribe(4);
        assert!(bus.add_topics(a.id, [Topic::Threads]));
        assert!(bus.add_topics(b.id, [Topic::Metrics]));
        assert_eq!(bus.publish(&Topic::Threads, &ev(1)), 1);
        assert!(a.receiver.recv().await.unwrap().contains("\"1\""));
        assert!(b.receiver.try_recv().is_err());
        assert_eq!(bus.stats().events_sent, 1);
    }

    #[tokio::test]
    async fn a_full_queue_kicks_the_subscriber_without_growing() {
        let bus = EventBus::new();
        let mut slow = bus.subscribe(2);
        bus.add_topics(slow.id, [Topic::Threads]);
        for n in 0..10 {
            bus.publish(&Topic::Threads, &ev(n));
        }
        assert_eq!(*slow.kicked.borrow_and_update(), Some(SLOW_CONSUMER));
        assert_eq!(bus.stats().subscribers, 0);
        assert_eq!(bus.stats().subscribers_dropped, 1);
        // only the two queued events remain
        assert!(slow.receiver.recv().await.is_some());
        assert!(slow.receiver.recv().await.is_some());
        assert!(slow.receiver.recv().await.is_none());
    }

    #[tokio::test]
    async fn dropping_a_subscription_unsubscribes() {
        let bus = EventBus::new();
        let s = bus.subscribe(1);
        bus.add_topics(s.id, [Topic::Metrics]);
        assert_eq!(bus.subscriber_count(&Topic::Metrics), 1);
        drop(s);
        assert_eq!(bus.subscriber_count(&Topic::Metrics), 0);
    }
}
