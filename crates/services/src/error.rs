//! The services layer's error.

use sqlmatic_models::ErrorKind;

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
        }
    }

    /// Stable snake_case code for clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { what: "thread" } => "thread_not_found",
            Self::NotFound { what: "message" } => "message_not_found",
            Self::NotFound { what: "user" } => "user_not_found",
            Self::NotFound { .. } => "not_found",
            Self::InvalidInput(_) => "invalid_input",
            Self::UnknownDatabase { .. } => "database_not_found",
            Self::AppDbBusy(_) => "app_db_busy",
            Self::AppDbUnwritable(_) => "app_db_unwritable",
            Self::Pool(_) => "app_db_unavailable",
            Self::AppDb(_) | Self::Io { .. } | Self::Join(_) => "internal",
        }
    }
}
