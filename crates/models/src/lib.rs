//! sqlmatic's data models: ids, threads, messages, database schemas, query results and the
//! error kinds every layer maps its errors onto.
//!
//! Owns plain data and the validation of newtypes (parse once, trust afterwards).
//! Must not do IO of any kind: no files, sockets, SQLite or HTTP.

#![warn(missing_docs)]

mod chat;
mod code;
mod error;
mod ids;
mod knowledge;
mod principal;
mod query;
mod schema;
pub mod text;
mod thread;
mod turn;

pub use chat::{ChatMessage, ToolCall, Usage};
pub use code::Code;
pub use error::ErrorKind;
pub use ids::{InvalidId, MessageId, ThreadId};
pub use knowledge::{
    Feedback, Rating, ValueMatch, VerifiedQuery, VerifiedQueryRef, VerifiedStatus,
};
pub use principal::Principal;
pub use query::{ColumnMeta, InvalidSql, QueryParams, QueryResult, SqlQuery};
pub use schema::{
    ColumnInfo, DatabaseMetadata, DatabaseSchema, DatabaseSummary, ForeignKeyInfo, Generated,
    IndexInfo, ObjectError, PatchMismatch, SchemaPatch, TableInfo, TableKind, TableSummary,
    TriggerInfo,
};
pub use thread::{Message, MessageStatus, Role, Thread, ThreadTitle};
pub use turn::{ChartKind, ChartSpec, ErrorPayload, QueryRecord};

/// Cursor-less pagination parameters shared by list endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Items per page, `1..=MAX_LIMIT`.
    pub limit: u32,
    /// Items to skip.
    pub offset: u32,
}

impl Page {
    /// The largest page.
    pub const MAX_LIMIT: u32 = 200;

    /// Clamps the limit to `1..=MAX_LIMIT`.
    pub fn new(limit: u32, offset: u32) -> Self {
        Self { limit: limit.clamp(1, Self::MAX_LIMIT), offset }
    }
}

impl Default for Page {
    fn default() -> Self {
        Self { limit: 50, offset: 0 }
    }
}
