//! Who a request acts for.

use serde::{Deserialize, Serialize};

/// An authenticated user (or the implicit local user when authentication is off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Principal {
    pub name: String,
    pub admin: bool,
    /// Target databases this user may use; `None` means all.
    pub databases: Option<Vec<String>>,
}

impl Principal {
    /// The implicit user of `api.auth.mode: none`.
    pub fn local() -> Self {
        Self { name: "local".into(), admin: true, databases: None }
    }

    pub fn may_use(&self, database: &str) -> bool {
        self.databases.as_ref().is_none_or(|d| d.iter().any(|n| n == database))
    }
}
