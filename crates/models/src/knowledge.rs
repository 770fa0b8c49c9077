//! Business context that people vouch for: verified queries (a question and the SQL a person
//! checked), the candidates feedback proposes, the feedback itself, and stored values found by
//! lookup.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A thumbs-up or thumbs-down on an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    /// The answer was right; its question and SQL become a verified-query candidate.
    Up,
    /// The answer was wrong.
    Down,
}

impl Rating {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Rating::Up => "up",
            Rating::Down => "down",
        }
    }

    /// From the stored text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "up" => Some(Rating::Up),
            "down" => Some(Rating::Down),
            _ => None,
        }
    }
}

/// Whether a verified query may be used yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum VerifiedStatus {
    /// Proposed by feedback; never used for retrieval until an admin promotes it.
    Candidate,
    /// Checked by a person and by the database; used for retrieval.
    Verified,
}

impl VerifiedStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifiedStatus::Candidate => "candidate",
            VerifiedStatus::Verified => "verified",
        }
    }

    /// From the stored text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "candidate" => Some(VerifiedStatus::Candidate),
            "verified" => Some(VerifiedStatus::Verified),
            _ => None,
        }
    }
}

/// A question with SQL a person checked (or, as a candidate, may check).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifiedQuery {
    /// Its id in the app database.
    pub id: i64,
    /// The target database it is about.
    pub database: String,
    /// The question, as people ask it.
    pub question: String,
    /// The SQL that answers it.
    pub sql: String,
    /// `candidate` or `verified`.
    pub status: VerifiedStatus,
    /// Where it comes from: `file` (the context file), `feedback` (a thumbs-up), `api`.
    pub source: String,
    /// Who verified it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_by: Option<String>,
    /// When it was verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
    /// Offered as a suggested question in an empty thread.
    pub onboarding: bool,
    /// Who proposed it (a candidate from feedback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposed_by: Option<String>,
    /// The answer message whose feedback proposed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<i64>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// An answer's note that it reused a verified query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifiedQueryRef {
    /// The verified query's id.
    pub id: i64,
    /// Its question.
    pub question: String,
    /// Who verified it.
    pub verified_by: String,
    /// True when the agent changed only literal values (a name, a date, a number) of the
    /// verified SQL; false when it ran the verified SQL as it is.
    pub adapted: bool,
}

/// Feedback on an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Feedback {
    /// Its id.
    pub id: i64,
    /// The answer it is about.
    pub message_id: i64,
    /// Who gave it.
    pub user: String,
    /// Up or down.
    pub rating: Rating,
    /// What they said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The database the answer is about.
    pub database: String,
    /// The question the answer answers.
    pub question: String,
    /// When it was given (or last changed).
    pub created_at: DateTime<Utc>,
}

/// A stored value close to what the user typed (`find_values`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValueMatch {
    /// The table (PostgreSQL: `schema.table` outside `public`).
    pub table: String,
    /// The column.
    pub column: String,
    /// The value exactly as stored: use it verbatim in SQL.
    pub value: String,
    /// Similarity from 0 to 1.
    pub score: f64,
}
