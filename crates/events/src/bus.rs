//! In-process publish/subscribe with a bounded queue per subscriber.
//!
//! Publishing serializes an event once and `try_send`s it to every subscriber of the topic.
//! A subscriber whose queue is full is dropped from the bus and told why through
//! [`Subscription::kicked`], so one slow client can never make the server's memory grow.

use std::collections::HashMap;
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
    topics: Vec<Topic>,
    tx: mpsc::Sender<EventText>,
    kick: watch::Sender<Option<&'static str>>,
}

/// The subscribers, and for each topic who listens to it: a publish visits only the
/// subscribers of its topic, not every connection.
#[derive(Default)]
struct Subscribers {
    by_id: HashMap<SubscriberId, Subscriber>,
    by_topic: HashMap<Topic, Vec<SubscriberId>>,
}

impl Subscribers {
    fn remove(&mut self, id: SubscriberId) -> Option<Subscriber> {
        let sub = self.by_id.remove(&id)?;
        for topic in &sub.topics {
            self.unlist(id, topic);
        }
        Some(sub)
    }

    fn unlist(&mut self, id: SubscriberId, topic: &Topic) {
        if let Some(ids) = self.by_topic.get_mut(topic) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.by_topic.remove(topic);
            }
        }
    }

    /// Drops a subscriber that fell behind, telling it why.
    fn kick(&mut self, id: SubscriberId, dropped: &AtomicU64) {
        if let Some(sub) = self.remove(id) {
            let _ = sub.kick.send(Some(SLOW_CONSUMER));
            dropped.fetch_add(1, Ordering::Relaxed);
            log::warn!("dropped event subscriber {id}: {SLOW_CONSUMER}");
        }
    }
}

#[derive(Default)]
struct Inner {
    subscribers: Mutex<Subscribers>,
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Subscribers> {
        // A panic while holding this lock leaves the maps consistent (single inserts/removes).
        self.inner.subscribers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a subscriber with a queue of `buffer` events (at least 1).
    pub fn subscribe(&self, buffer: usize) -> Subscription {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, receiver) = mpsc::channel(buffer.max(1));
        let (kick, kicked) = watch::channel(None);
        self.lock().by_id.insert(id, Subscriber { topics: Vec::new(), tx, kick });
        Subscription { id, receiver, kicked, bus: self.clone() }
    }

    fn remove(&self, id: SubscriberId) {
        self.lock().remove(id);
    }

    /// Adds topics to a subscriber; returns false when it is no longer on the bus.
    pub fn add_topics(&self, id: SubscriberId, topics: impl IntoIterator<Item = Topic>) -> bool {
        let mut map = self.lock();
        let Subscribers { by_id, by_topic } = &mut *map;
        let Some(sub) = by_id.get_mut(&id) else { return false };
        for topic in topics {
            if !sub.topics.contains(&topic) {
                by_topic.entry(topic.clone()).or_default().push(id);
                sub.topics.push(topic);
            }
        }
        true
    }

    /// Unsubscribes `id` from `topics`.
    pub fn remove_topics<'a>(&self, id: SubscriberId, topics: impl IntoIterator<Item = &'a Topic>) {
        let mut map = self.lock();
        for topic in topics {
            let Some(sub) = map.by_id.get_mut(&id) else { return };
            let before = sub.topics.len();
            sub.topics.retain(|t| t != topic);
            if sub.topics.len() != before {
                map.unlist(id, topic);
            }
        }
    }

    /// The topics `id` is subscribed to.
    pub fn topics(&self, id: SubscriberId) -> Vec<Topic> {
        self.lock().by_id.get(&id).map(|s| s.topics.clone()).unwrap_or_default()
    }

    /// How many subscribers listen to `topic`; publishers use it to skip work nobody will see.
    pub fn subscriber_count(&self, topic: &Topic) -> usize {
        self.lock().by_topic.get(topic).map_or(0, Vec::len)
    }

    /// Sends `event` to every subscriber of `topic`; returns how many got it. The event is
    /// encoded once, and only when someone listens.
    pub fn publish(&self, topic: &Topic, event: &Event) -> usize {
        let mut map = self.lock();
        let Some(ids) = map.by_topic.get(topic) else { return 0 };
        let text = EventText::from(event.to_json());
        let mut delivered = 0;
        let mut overflowed = Vec::new();
        for id in ids {
            let Some(sub) = map.by_id.get(id) else { continue };
            match sub.tx.try_send(text.clone()) {
                Ok(()) => delivered += 1,
                Err(_) => overflowed.push(*id),
            }
        }
        for id in overflowed {
            map.kick(id, &self.inner.subscribers_dropped);
        }
        drop(map);
        self.inner.events_sent.fetch_add(delivered as u64, Ordering::Relaxed);
        delivered
    }

    /// Sends `event` to one subscriber only (e.g. the current schema right after it subscribed).
    pub fn send_to(&self, id: SubscriberId, event: &Event) -> bool {
        let mut map = self.lock();
        let Some(sub) = map.by_id.get(&id) else { return false };
        match sub.tx.try_send(EventText::from(event.to_json())) {
            Ok(()) => {
                self.inner.events_sent.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => {
                map.kick(id, &self.inner.subscribers_dropped);
                false
            }
        }
    }

    /// Counters for metrics.
    pub fn stats(&self) -> BusStats {
        BusStats {
            subscribers: self.lock().by_id.len() as u64,
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

    #[tokio::test]
    async fn the_topic_index_follows_adds_removes_and_kicks() {
        let bus = EventBus::new();
        let mut a = bus.subscribe(1);
        let mut b = bus.subscribe(4);
        bus.add_topics(a.id, [Topic::Metrics, Topic::Threads, Topic::Metrics]);
        bus.add_topics(b.id, [Topic::Metrics]);
        assert_eq!(bus.topics(a.id), vec![Topic::Metrics, Topic::Threads], "no duplicates");
        assert_eq!(bus.subscriber_count(&Topic::Metrics), 2);
        bus.remove_topics(a.id, &[Topic::Threads]);
        assert_eq!(bus.subscriber_count(&Topic::Threads), 0);
        assert_eq!(bus.publish(&Topic::Threads, &ev(0)), 0, "nobody listens any more");
        // a's queue holds one: the second publish kicks it, and it leaves every topic
        assert_eq!(bus.publish(&Topic::Metrics, &ev(1)), 2);
        assert_eq!(bus.publish(&Topic::Metrics, &ev(2)), 1);
        assert_eq!(*a.kicked.borrow_and_update(), Some(SLOW_CONSUMER));
        assert_eq!(bus.subscriber_count(&Topic::Metrics), 1);
        assert!(a.receiver.recv().await.is_some());
        assert!(b.receiver.recv().await.unwrap().contains("\"1\""));
        assert!(b.receiver.recv().await.unwrap().contains("\"2\""));
        assert_eq!(bus.stats().subscribers, 1);
    }
}
