//! The context file (`docs/context.md`): what people know about a database that its schema does
//! not say. Parsed strictly (an unknown key is an error, so a typo is never silently ignored)
//! and validated against the database's structure; every problem names its line.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlmatic_models::DatabaseSchema;

/// A context file, as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextFile {
    /// What the database is for, in a sentence or two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Table (and view) descriptions, synonyms and column notes, by table name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tables: BTreeMap<String, TableContext>,
    /// Named measures with their SQL expression (`revenue: sum(quantity * unit_price)`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, Expression>,
    /// Named ways to group or filter, with their SQL expression.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dimensions: BTreeMap<String, Expression>,
    /// Joins that are not declared as foreign keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relationships: Vec<Relationship>,
    /// Business rules in plain words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// Questions with SQL a person checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verified_queries: Vec<VerifiedEntry>,
}

/// What people call a table and what it means.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableContext {
    /// What a row is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Other words people use for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub synonyms: Vec<String>,
    /// Column notes by column name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, ColumnContext>,
}

/// What a column means and what people call it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnContext {
    /// What it holds (units, codes, caveats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Other words people use for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub synonyms: Vec<String>,
}

/// A named SQL expression (a metric or a dimension).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expression {
    /// The SQL expression, written against the tables it names.
    pub sql: String,
    /// What it means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Other words people use for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub synonyms: Vec<String>,
}

/// A join the schema does not declare.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relationship {
    /// `table.column`
    pub from: String,
    /// `table.column`
    pub to: String,
    /// What the relationship means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A verified query as the file writes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifiedEntry {
    /// The question, as people ask it.
    pub question: String,
    /// The SQL a person checked.
    pub sql: String,
    /// Who checked it.
    pub verified_by: String,
    /// When (a date or timestamp, as text).
    pub verified_at: String,
    /// Offer it as a suggested question in an empty thread.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_as_onboarding_question: bool,
}

/// One problem in a context file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContextIssue {
    /// The line (1-based) it is on, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for ContextIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The first line at or after `from` (0-based) containing `needle`, 1-based.
fn line_of(text: &str, needle: &str, from: usize) -> Option<usize> {
    text.lines().enumerate().skip(from).find(|(_, l)| l.contains(needle)).map(|(i, _)| i + 1)
}

/// The line of a YAML key (`name:`), searched from `from`.
fn key_line(text: &str, key: &str, from: usize) -> Option<usize> {
    let plain = format!("{key}:");
    let quoted = format!("\"{key}\":");
    text.lines()
        .enumerate()
        .skip(from)
        .find(|(_, l)| {
            let t = l.trim_start().trim_start_matches("- ");
            t.starts_with(&plain) || t.starts_with(&quoted)
        })
        .map(|(i, _)| i + 1)
}

impl ContextFile {
    /// Parses a context file; a syntax error or an unknown key names its line.
    pub fn parse(text: &str) -> Result<Self, ContextIssue> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml::from_str(text).map_err(|e| ContextIssue {
            line: e.location().map(|l| l.line()),
            message: e.to_string().split(" at line ").next().unwrap_or_default().to_owned(),
        })
    }

    /// Checks the file against the database's structure: tables and columns it describes
    /// exist, relationships name `table.column`s that exist, names are SQL-safe, verified
    /// queries have a question and SQL. Problems name their line in `text` (the file's text).
    pub fn validate(&self, text: &str, schema: &DatabaseSchema) -> Vec<ContextIssue> {
        let mut issues = Vec::new();
        let find_table = |name: &str| {
            schema.tables.iter().find(|t| {
                t.name.eq_ignore_ascii_case(name)
                    || t.schema
                        .as_deref()
                        .is_some_and(|s| format!("{s}.{}", t.name).eq_ignore_ascii_case(name))
            })
        };
        let tables_at = key_line(text, "tables", 0).unwrap_or(1) - 1;
        for (name, table) in &self.tables {
            let line = key_line(text, name, tables_at);
            let Some(info) = find_table(name) else {
                issues.push(ContextIssue {
                    line,
                    message: format!("table `{name}` is not in the database"),
                });
                continue;
            };
            for column in table.columns.keys() {
                if !info.columns.iter().any(|c| c.name.eq_ignore_ascii_case(column)) {
                    issues.push(ContextIssue {
                        line: key_line(text, column, line.unwrap_or(1) - 1),
                        message: format!("table `{name}` has no column `{column}`"),
                    });
                }
            }
        }
        let column_exists = |qualified: &str| {
            let Some((table, column)) = qualified.rsplit_once('.') else { return false };
            find_table(table).is_some_and(|t| t.columns.iter().any(|c| c.name == column))
        };
        for r in &self.relationships {
            for end in [&r.from, &r.to] {
                if !column_exists(end) {
                    issues.push(ContextIssue {
                        line: line_of(text, end, 0),
                        message: format!(
                            "relationship end `{end}` is not a table.column of the database"
                        ),
                    });
                }
            }
        }
        for (kind, named) in [("metric", &self.metrics), ("dimension", &self.dimensions)] {
            for (name, e) in named {
                let ok = !name.is_empty()
                    && name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == ' ');
                if !ok {
                    issues.push(ContextIssue {
                        line: key_line(text, name, 0),
                        message: format!(
                            "{kind} name `{name}` must be letters, digits, _ or spaces"
                        ),
                    });
                }
                if e.sql.trim().is_empty() {
                    issues.push(ContextIssue {
                        line: key_line(text, name, 0),
                        message: format!("{kind} `{name}` has no sql"),
                    });
                }
            }
        }
        let mut from = key_line(text, "verified_queries", 0).unwrap_or(1) - 1;
        for (i, q) in self.verified_queries.iter().enumerate() {
            let line = line_of(text, q.question.lines().next().unwrap_or_default(), from);
            from = line.unwrap_or(from + 1);
            if q.question.trim().is_empty() || q.sql.trim().is_empty() {
                issues.push(ContextIssue {
                    line,
                    message: format!("verified query #{} needs a question and sql", i + 1),
                });
            }
            if q.verified_by.trim().is_empty() {
                issues.push(ContextIssue {
                    line,
                    message: format!("verified query #{} needs verified_by", i + 1),
                });
            }
        }
        issues
    }

    /// The line of verified query `index`'s question in `text`, for reports.
    pub fn verified_line(&self, text: &str, index: usize) -> Option<usize> {
        let mut from = key_line(text, "verified_queries", 0).unwrap_or(1) - 1;
        let mut line = None;
        for q in self.verified_queries.iter().take(index + 1) {
            line = line_of(text, q.question.lines().next().unwrap_or_default(), from);
            from = line.unwrap_or(from + 1);
        }
        line
    }

    /// The file as YAML (`GET /api/databases/{name}/context/export`).
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlmatic_models::{ColumnInfo, TableInfo};

    fn schema() -> DatabaseSchema {
        let table = |name: &str, cols: &[&str]| TableInfo {
            name: name.into(),
            columns: cols
                .iter()
                .map(|c| ColumnInfo { name: (*c).into(), ..ColumnInfo::default() })
                .collect(),
            ..TableInfo::default()
        };
        DatabaseSchema {
            database: "shop".into(),
            tables: vec![
                table("customers", &["id", "name", "city"]),
                table("orders", &["id", "customer_ref", "total"]),
            ],
            schema_version: 0,
            ddl: String::new(),
            warnings: vec![],
        }
    }

    const GOOD: &str = "\
description: A shop
tables:
  customers:
    description: People who buy
    synonyms: [clients]
    columns:
      city: {description: Where they live}
metrics:
  revenue:
    sql: sum(orders.total)
relationships:
  - from: orders.customer_ref
    to: customers.id
rules:
  - Revenue excludes cancelled orders.
verified_queries:
  - question: How many customers are there?
    sql: SELECT count(*) FROM customers
    verified_by: ana
    verified_at: 2026-11-01
    use_as_onboarding_question: true
";

    #[test]
    fn a_good_file_parses_and_validates() {
        let file = ContextFile::parse(GOOD).unwrap();
        assert_eq!(file.tables["customers"].synonyms, ["clients"]);
        assert_eq!(file.metrics["revenue"].sql, "sum(orders.total)");
        assert!(file.verified_queries[0].use_as_onboarding_question);
        assert_eq!(file.validate(GOOD, &schema()), []);
        assert_eq!(file.verified_line(GOOD, 0), Some(17));
        // export round-trips
        assert_eq!(ContextFile::parse(&file.to_yaml()).unwrap(), file);
    }

    #[test]
    fn syntax_errors_and_unknown_keys_name_their_line() {
        let typo = GOOD.replace("    synonyms: [clients]", "    synonym: [clients]");
        let e = ContextFile::parse(&typo).unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("unknown field `synonym`"), "{e}");

        let broken = GOOD.replace("sql: sum(orders.total)", "sql: [sum(orders.total)");
        let e = ContextFile::parse(&broken).unwrap_err();
        assert!(e.line.is_some_and(|l| l >= 10), "{e}");

        let missing = GOOD.replace("    verified_by: ana\n", "");
        let e = ContextFile::parse(&missing).unwrap_err();
        assert!(e.message.contains("missing field `verified_by`"), "{e}");
        assert_eq!(e.line, Some(17), "{e}");
    }

    #[test]
    fn names_the_schema_does_not_have_are_reported_with_their_line() {
        let text = GOOD
            .replace("  customers:\n", "  clients:\n")
            .replace("to: customers.id", "to: customers.uid");
        let file = ContextFile::parse(&text).unwrap();
        let issues = file.validate(&text, &schema());
        let shown: Vec<String> = issues.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "line 3: table `clients` is not in the database",
                "line 13: relationship end `customers.uid` is not a table.column of the database",
            ]
        );
    }
}
