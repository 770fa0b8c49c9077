//! Threads as their owners see them: list, create, read with messages, rename, delete.

use sqlmatic_events::{Event, Topic};
use sqlmatic_models::{Code, Page, Principal, Thread, ThreadId, ThreadTitle};

use crate::{Error, Result, Sqlmatic, ThreadWithMessages};

impl Sqlmatic {
    /// The user's threads, most recently active first, and how many there are.
    pub async fn list_threads(&self, user: &Principal, page: Page) -> Result<(Vec<Thread>, u64)> {
        Ok(self.threads.list(&user.name, page).await?)
    }

    /// Creates an empty thread (`thread_created`).
    pub async fn create_thread(
        &self,
        user: &Principal,
        title: Option<&str>,
        database: Option<&str>,
    ) -> Result<Thread> {
        let title = match title {
            Some(t) => ThreadTitle::parse(t).map_err(|m| Error::invalid(Code::InvalidTitle, m))?,
            None => ThreadTitle::from_question(""),
        };
        let target = self.target_for(user, database)?;
        let thread = self.threads.create(&user.name, title, target.name()).await?;
        self.bus
            .publish(&Topic::UserThreads(user.name.clone()), &Event::ThreadCreated(thread.clone()));
        Ok(thread)
    }

    /// A thread with its messages.
    pub async fn get_thread(&self, user: &Principal, id: ThreadId) -> Result<ThreadWithMessages> {
        let thread = self.threads.get(&user.name, id).await?;
        let messages = self.threads.messages(&user.name, id).await?;
        Ok(ThreadWithMessages { thread, messages })
    }

    /// Renames a thread.
    pub async fn rename_thread(
        &self,
        user: &Principal,
        id: ThreadId,
        title: &str,
    ) -> Result<Thread> {
        let title = ThreadTitle::parse(title).map_err(|m| Error::invalid(Code::InvalidTitle, m))?;
        Ok(self.threads.rename(&user.name, id, title).await?)
    }

    /// Deletes a thread and its messages.
    pub async fn delete_thread(&self, user: &Principal, id: ThreadId) -> Result<()> {
        Ok(self.threads.delete(&user.name, id).await?)
    }
}
