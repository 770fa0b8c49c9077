//! What a client can subscribe to.

use std::fmt;
use std::str::FromStr;

use sqlmatic_models::ThreadId;

/// A subscription topic. `database` alone means the default target database and is resolved
/// to `Database(Some(name))` by whoever knows the default.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// A target database's `database_update`s (`database:<name>`; `None`: the default one).
    Database(Option<String>),
    /// `threads` as a client writes it; the server resolves it to the caller's [`Topic::UserThreads`].
    Threads,
    /// One user's thread events (never parsed from a client).
    UserThreads(String),
    /// `message_stream` events of one thread (`thread:<id>`).
    Thread(ThreadId),
    /// `metrics_update` snapshots (admins).
    Metrics,
}

/// A topic name that is not one of the documented forms (the offending text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown topic `{0}`; topics are database, database:<name>, threads, thread:<id>, metrics")]
pub struct InvalidTopic(pub String);

impl FromStr for Topic {
    type Err = InvalidTopic;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidTopic(s.chars().take(100).collect());
        match s {
            "database" => Ok(Self::Database(None)),
            "threads" => Ok(Self::Threads),
            "metrics" => Ok(Self::Metrics),
            _ => {
                if let Some(name) = s.strip_prefix("database:") {
                    if name.is_empty() || name.len() > 100 {
                        return Err(invalid());
                    }
                    Ok(Self::Database(Some(name.to_owned())))
                } else if let Some(id) = s.strip_prefix("thread:") {
                    id.parse().map(Self::Thread).map_err(|_| invalid())
                } else {
                    Err(invalid())
                }
            }
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Database(None) => f.write_str("database"),
            Self::Database(Some(name)) => write!(f, "database:{name}"),
            Self::Threads | Self::UserThreads(_) => f.write_str("threads"),
            Self::Thread(id) => write!(f, "thread:{id}"),
            Self::Metrics => f.write_str("metrics"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<Topic>) {
        assert_eq!(input.parse::<Topic>().ok(), expected, "{input}");
    }

    #[test]
    fn parses_topics() {
        check("database", Some(Topic::Database(None)));
        check("database:demo", Some(Topic::Database(Some("demo".into()))));
        check("database:", None);
        check("threads", Some(Topic::Threads));
        check("metrics", Some(Topic::Metrics));
        check("thread:nope", None);
        check("everything", None);
        let id = sqlmatic_models::ThreadId::random();
        check(&format!("thread:{id}"), Some(Topic::Thread(id)));
        assert_eq!(Topic::Thread(id).to_string(), format!("thread:{id}"));
    }
}
