//! Questions to start with: a context file's onboarding questions, else questions made from a
//! database's structure without an LLM: per foreign key,
//! how many rows of a table each referenced row has; per date column, a monthly trend; per
//! money-like number, a total by what it references. Deterministic, so the same database always
//! offers the same questions.

use std::sync::Arc;

use sqlmatic_models::{DatabaseSchema, Principal, TableInfo, TableKind};

use crate::{Result, Sqlmatic};

/// At most this many questions.
const MAX: usize = 6;

/// A table's name as people say it: `order_items` → `order items`, `sales.orders` → `orders`.
fn spoken(name: &str) -> String {
    name.rsplit('.').next().unwrap_or(name).replace('_', " ")
}

fn is_date(data_type: &str, name: &str) -> bool {
    let t = data_type.to_ascii_lowercase();
    let n = name.to_ascii_lowercase();
    t.contains("date")
        || t.contains("time")
        || n.ends_with("_date")
        || n.ends_with("_at")
        || n == "date"
}

fn is_amount(data_type: &str, name: &str) -> bool {
    let t = data_type.to_ascii_lowercase();
    let numeric = ["int", "real", "numeric", "decimal", "double", "float", "money"]
        .iter()
        .any(|k| t.contains(k));
    let n = name.to_ascii_lowercase();
    numeric
        && ["amount", "total", "price", "revenue", "cost", "value"].iter().any(|k| n.contains(k))
}

/// Starter questions for `schema`, biggest tables first.
pub fn from_schema(schema: &DatabaseSchema) -> Vec<String> {
    let mut tables: Vec<&TableInfo> = schema
        .tables
        .iter()
        .filter(|t| {
            t.error.is_none() && matches!(t.kind, TableKind::Table | TableKind::MaterializedView)
        })
        .collect();
    tables.sort_by(|a, b| {
        b.row_count.unwrap_or(0).cmp(&a.row_count.unwrap_or(0)).then(a.name.cmp(&b.name))
    });
    let mut out: Vec<String> = Vec::new();
    let mut push = |q: String| {
        if !out.contains(&q) {
            out.push(q);
        }
    };
    for t in &tables {
        let name = spoken(&t.name);
        if let Some(c) = t.columns.iter().find(|c| !c.masked && is_date(&c.data_type, &c.name)) {
            push(format!("How many {name} were there per month (by {})?", spoken(&c.name)));
        }
        if let Some(fk) = t.foreign_keys.first() {
            let parent = spoken(&fk.references_table);
            push(format!("Which 10 {parent} have the most {name}?"));
            if let Some(amount) =
                t.columns.iter().find(|c| !c.masked && is_amount(&c.data_type, &c.name))
            {
                let amount = spoken(&amount.name);
                let total = if amount.contains("total") { "" } else { "total " };
                push(format!("What is the {total}{amount} of {name} by {parent}?"));
            }
        }
    }
    if let Some(t) = tables.first() {
        push(format!("How many {} are there?", spoken(&t.name)));
    }
    out.truncate(MAX);
    out
}

impl Sqlmatic {
    /// Questions to start a thread about `database` with: the context file's onboarding
    /// questions (verified queries marked `use_as_onboarding_question`), else questions made
    /// from its structure; and which (`context` or `schema`).
    pub async fn suggestions(
        self: &Arc<Self>,
        user: &Principal,
        database: Option<&str>,
    ) -> Result<(&'static str, Vec<String>)> {
        let target = self.target_for(user, database)?;
        let mut onboarding = self.knowledge.onboarding_questions(target.name()).await?;
        if !onboarding.is_empty() {
            onboarding.truncate(MAX);
            return Ok(("context", onboarding));
        }
        let schema = self.structure(user, database).await?;
        Ok(("schema", from_schema(&schema)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlmatic_models::{ColumnInfo, ForeignKeyInfo};

    fn col(name: &str, data_type: &str) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            data_type: data_type.into(),
            nullable: true,
            ..ColumnInfo::default()
        }
    }

    #[test]
    fn questions_come_from_keys_dates_and_amounts() {
        let orders = TableInfo {
            name: "orders".into(),
            columns: vec![
                col("id", "INTEGER"),
                col("order_date", "TEXT"),
                col("total_amount", "REAL"),
                col("customer_id", "INTEGER"),
            ],
            foreign_keys: vec![ForeignKeyInfo {
                columns: vec!["customer_id".into()],
                references_table: "customers".into(),
                references_columns: vec!["id".into()],
                on_update: String::new(),
                on_delete: String::new(),
                references_missing: false,
            }],
            row_count: Some(100),
            ..TableInfo::default()
        };
        let customers = TableInfo {
            name: "customers".into(),
            columns: vec![col("id", "INTEGER")],
            row_count: Some(10),
            ..TableInfo::default()
        };
        let schema = DatabaseSchema {
            database: "d".into(),
            schema_version: 1,
            tables: vec![customers, orders],
            ddl: String::new(),
            warnings: vec![],
        };
        assert_eq!(
            from_schema(&schema),
            [
                "How many orders were there per month (by order date)?",
                "Which 10 customers have the most orders?",
                "What is the total amount of orders by customers?",
                "How many orders are there?",
            ]
        );
    }
}
