//! The services layer's error.

use sqlmatic_models::{Code, ErrorKind};

/// What a service failed with: its kind and code come from the one registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such thread, message, user, verified query…
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: &'static str,
    },
    /// Input the service refuses; the message says what.
    #[error("{0}")]
    InvalidInput(String),
    /// No target database of that name.
    #[error("no database named `{name}`; databases are: {known}")]
    UnknownDatabase {
        /// The name asked for (cut to 100 characters).
        name: String,
        /// The names there are.
        known: String,
    },
    /// The app database is locked.
    #[error("the app database is busy or locked")]
    AppDbBusy(#[source] rusqlite::Error),
    /// The app database cannot be written.
    #[error("the app database cannot be written (read-only file or disk full)")]
    AppDbUnwritable(#[source] rusqlite::Error),
    /// Any other app-database failure (a bug, or a damaged file).
    #[error("app database error")]
    AppDb(#[source] rusqlite::Error),
    /// No connection to the app database.
    #[error("no connection to the app database")]
    Pool(#[from] r2d2::Error),
    /// A file or directory could not be prepared.
    #[error("cannot prepare {path}")]
    Io {
        /// Which.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Blocking work panicked or was cancelled.
    #[error("a blocking task failed")]
    Join(#[from] tokio::task::JoinError),
    /// A request the service refuses for a reason with its own code.
    #[error("{message}")]
    Refused {
        /// The registry code.
        code: Code,
        /// What to tell the caller.
        message: String,
    },
}

/// A result whose error is the services' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::*;
        match e.sqlite_error_code() {
            Some(DatabaseBusy | DatabaseLocked) => Self::AppDbBusy(e),
            Some(ReadOnly | DiskFull) => Self::AppDbUnwritable(e),
            _ => Self::AppDb(e),
        }
    }
}

impl Error {
    /// The class of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } | Self::UnknownDatabase { .. } => ErrorKind::NotFound,
            Self::InvalidInput(_) => ErrorKind::InvalidInput,
            Self::AppDbBusy(_) | Self::AppDbUnwritable(_) | Self::Pool(_) => ErrorKind::Unavailable,
            Self::AppDb(_) | Self::Io { .. } | Self::Join(_) => ErrorKind::Internal,
            Self::Refused { code, .. } => code.kind(),
        }
    }

    /// Stable snake_case code for clients.
    pub fn code(&self) -> Code {
        match self {
            Self::NotFound { what: "thread" } => Code::ThreadNotFound,
            Self::NotFound { what: "message" } => Code::MessageNotFound,
            Self::NotFound { what: "user" } => Code::UserNotFound,
            Self::NotFound { what: "verified query" } => Code::VerifiedQueryNotFound,
            Self::NotFound { .. } => Code::NotFound,
            Self::InvalidInput(_) => Code::InvalidInput,
            Self::UnknownDatabase { .. } => Code::DatabaseNotFound,
            Self::AppDbBusy(_) => Code::AppDbBusy,
            Self::AppDbUnwritable(_) => Code::AppDbUnwritable,
            Self::Pool(_) => Code::AppDbUnavailable,
            Self::AppDb(_) | Self::Io { .. } | Self::Join(_) => Code::Internal,
            Self::Refused { code, .. } => *code,
        }
    }
}
