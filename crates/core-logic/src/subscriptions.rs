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

    /// Subscribes a bus subscriber to resolved topics, pushing the current schema for database
    /// topics right away.
    pub async fn subscribe(&self, subscriber: SubscriberId, topics: Vec<Topic>) -> Result<()> {
        self.bus.add_topics(subscriber, topics.iter().cloned());
        for topic in topics {
            if let Topic::Database(Some(name)) = topic {
                let event = self.database_update(&name).await?;
                self.bus.send_to(subscriber, &event);
            }
        }
        Ok(())
    }
}
