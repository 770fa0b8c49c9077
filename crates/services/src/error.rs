//! The services layer's error.

use sqlmatic_models::{Code, ErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("{0}")]
    InvalidInput(String),
    #[error("no database named `{name}`; databases are: {known}")]
    UnknownDatabase { name: String, known: String },
    #[error("the app database is busy or locked")]
    AppDbBusy(#[source] rusqlite::Error),
    #[error("the app database cannot be written (read-only file or disk full)")]
    AppDbUnwritable(#[source] rusqlite::Error),
    #[error("app database error")]
    AppDb(#[source] rusqlite::Error),
    #[error("no connection to the app database")]
    Pool(#[from] r2d2::Error),
    #[error("cannot prepare {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("a blocking task failed")]
    Join(#[from] tokio::task::JoinError),
    /// A request the service refuses for a reason with its own code.
    #[error("{message}")]
    Refused { code: Code, message: String },
}

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
