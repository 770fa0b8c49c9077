//! sqlmatic's live events: the [`Event`] enum, its JSON envelope `{"event": name, "payload": {…}}`,
//! the [`Topic`]s clients subscribe to, and the in-process [`EventBus`] that fans events out.
//!
//! Owns the event vocabulary and bounded per-subscriber delivery. Must not know rusqlite,
//! reqwest or actix: a WebSocket session is just one kind of subscriber.

#![warn(missing_docs)]

mod bus;
mod event;
mod topic;

pub use bus::{BusStats, EventBus, EventText, SubscriberId, Subscription};
pub use event::{DatabaseUpdate, ErrorPayload, Event, MessageStream, StreamPart, StructureUpdate};
pub use topic::{InvalidTopic, Topic};
