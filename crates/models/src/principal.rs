//! Who a request acts for.

use serde::{Deserialize, Serialize};

/// An authenticated user (or the implicit local user when authentication is off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Principal {
    /// The user's name.
    pub name: String,
    /// Admins see everyone's query log and metrics and manage users.
    pub admin: bool,
    /// Target databases this user may use; `None` means all.
    pub databases: Option<Vec<String>>,
}

impl Principal {
    /// The implicit user of `api.auth.mode: none`.
    pub fn local() -> Self {
        Self { name: "local".into(), admin: true, databases: None }
    }

    /// True when this principal may query `database` (no grant list means all).
    pub fn may_use(&self, database: &str) -> bool {
        self.databases.as_ref().is_none_or(|d| d.iter().any(|n| n == database))
    }
}
