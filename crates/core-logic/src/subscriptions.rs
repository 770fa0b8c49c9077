//! Live subscriptions: which topics a user may follow, and what a new subscriber gets first.

use sqlmatic_events::{SubscriberId, Topic};
use sqlmatic_models::Principal;

use crate::{Error, Result, Sqlmatic};

impl Sqlmatic {
    /// Resolves a topic for `user`: `database` becomes the default database's topic; unknown
    /// databases and other users' threads are refused (as not found).
    pub async fn resolve_topic(&self, user: &Principal, topic: Topic) -> Result<Topic> {
        match topic {
            Topic::Database(name) => {
                Ok(Topic::Database(Some(self.target_for(user, name.as_deref())?.name().to_owned())))
            }
            Topic::Thread(id) => {
                self.threads.get(&user.name, id).await?;
                Ok(Topic::Thread(id))
            }
            Topic::Threads => Ok(Topic::UserThreads(user.name.clone())),
            Topic::Metrics if !user.admin => Err(Error::Forbidden("metrics are for admins".into())),
            other => Ok(other),
        }
    }

    /// Subscribes a bus subscriber to resolved topics; a database topic first brings the
    /// structure its subscribers hold up to date, then sends the new one the whole structure.
    pub async fn subscribe(&self, subscriber: SubscriberId, topics: Vec<Topic>) -> Result<()> {
        for topic in topics {
            match topic {
                Topic::Database(Some(name)) => {
                    self.subscribe_to_structure(subscriber, &name).await?
                }
                other => {
                    self.bus.add_topics(subscriber, [other]);
                }
            }
        }
        Ok(())
    }
}
