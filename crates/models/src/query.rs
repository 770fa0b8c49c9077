//! SQL text, parameters and query results.

use serde::{Deserialize, Serialize};

/// SQL text that passed the cheap checks every tool relies on: not blank, not absurdly long.
/// The read-only sandbox still decides whether it may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlQuery(String);

/// Why a string is not acceptable SQL text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSql {
    /// Only whitespace, semicolons or comments.
    #[error("the SQL is empty")]
    Empty,
    /// Longer than [`SqlQuery::MAX_BYTES`].
    #[error("the SQL is {len} bytes long; the limit is {max}")]
    TooLong {
        /// The text's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A NUL character, which SQLite would cut the text at.
    #[error("the SQL contains a NUL character")]
    Nul,
}

impl SqlQuery {
    /// The longest SQL text accepted, in bytes.
    pub const MAX_BYTES: usize = 100_000;

    /// Trims and checks SQL text.
    pub fn parse(sql: &str) -> Result<Self, InvalidSql> {
        if sql.contains('\0') {
            return Err(InvalidSql::Nul);
        }
        let trimmed = crate::text::trim_invisible(sql);
        if trimmed.chars().all(|c| c == ';' || crate::text::is_invisible(c)) {
            return Err(InvalidSql::Empty);
        }
        if trimmed.len() > Self::MAX_BYTES {
            return Err(InvalidSql::TooLong { len: trimmed.len(), max: Self::MAX_BYTES });
        }
        if trimmed.contains('\0') {
            return Err(InvalidSql::Nul);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The trimmed SQL text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Bound parameters: positional (`?`, `?1`) or named (`:name`, `@name`, `$name`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum QueryParams {
    /// No parameters.
    #[default]
    #[serde(skip)]
    None,
    /// Values for `?` and `?N`, in order.
    Positional(Vec<serde_json::Value>),
    /// Values for `:name`, `@name`, `$name`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    Named(serde_json::Map<String, serde_json::Value>),
}

impl QueryParams {
    /// Named parameters may also come as `[{"name": "c", "value": "Japan"}, …]`: the form a
    /// strict JSON Schema can describe (it cannot describe an object with arbitrary keys).
    pub fn normalized(self) -> Self {
        let Self::Positional(values) = &self else { return self };
        let pairs: Option<serde_json::Map<String, serde_json::Value>> = (!values.is_empty())
            .then(|| {
                values
                    .iter()
                    .map(|v| {
                        let o = v.as_object().filter(|o| o.len() == 2)?;
                        Some((o.get("name")?.as_str()?.to_owned(), o.get("value")?.clone()))
                    })
                    .collect()
            })
            .flatten();
        match pairs {
            Some(map) => Self::Named(map),
            None => self,
        }
    }
}

/// A result column: its name and the type it was declared with, if it comes from a table column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ColumnMeta {
    /// The column's name in the result.
    pub name: String,
    /// The declared type of the table column it comes from, if any.
    pub decl_type: Option<String>,
}

/// The rows a read-only query returned, bounded by the row and byte caps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueryResult {
    /// The result's columns, in order.
    pub columns: Vec<ColumnMeta>,
    /// Rows as typed JSON values: integers stay integers, blobs are `{"$blob": base64}` or
    /// `{"$blob_bytes": n}` when large.
    pub rows: Vec<Vec<serde_json::Value>>,
    /// Rows returned here.
    pub row_count: u64,
    /// Rows the query produced in all, when they could be counted within the time limit.
    pub total_rows: Option<u64>,
    /// True when the row or byte cap cut the result.
    pub truncated: bool,
    /// How long the statement ran.
    pub elapsed_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_parse_rejects_blank_and_nul() {
        assert_eq!(SqlQuery::parse("  ;; "), Err(InvalidSql::Empty));
        assert_eq!(SqlQuery::parse("select 1\0"), Err(InvalidSql::Nul));
        assert!(matches!(
            SqlQuery::parse(&"x".repeat(SqlQuery::MAX_BYTES + 1)),
            Err(InvalidSql::TooLong { .. })
        ));
        assert_eq!(
            SqlQuery::parse(" select 1 ").map(|q| q.as_str().to_owned()),
            Ok("select 1".into())
        );
    }

    #[test]
    fn params_deserialize_by_shape() {
        let p: QueryParams = serde_json::from_str("[1, \"a\"]").unwrap();
        assert!(matches!(p, QueryParams::Positional(v) if v.len() == 2));
        let p: QueryParams = serde_json::from_str("{\"id\": 3}").unwrap();
        assert!(matches!(p, QueryParams::Named(m) if m.contains_key("id")));
    }
}
