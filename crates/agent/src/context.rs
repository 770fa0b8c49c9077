//! What the prompt says about the database. A small schema goes in whole; a large one (over
//! `agent.schema_token_budget`) is cut to the table names plus the tables most relevant to the
//! question — a lexical ranking over table and column names and descriptions — and their
//! foreign-key neighbours. The model fetches the rest with `get_schema`/`list_tables`.

use std::collections::BTreeSet;

use sqlmatic_models::DatabaseSchema;
use sqlmatic_tools::Dialect;
use sqlmatic_tools::introspect::render_ddl;

/// Tables picked by relevance at most (before foreign-key neighbours).
const TOP_TABLES: usize = 6;

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 3)
        .map(|w| {
            let w = w.to_lowercase();
            // crude plural folding: orders/order, categories/category
            if let Some(stem) = w.strip_suffix("ies") {
                format!("{stem}y")
            } else if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") {
                w[..w.len() - 1].to_owned()
            } else {
                w
            }
        })
        .collect()
}

/// Scores each table against the question: name matches weigh most, then columns, then
/// descriptions.
pub fn rank(schema: &DatabaseSchema, question: &str) -> Vec<(usize, f64)> {
    let q: BTreeSet<String> = words(question).into_iter().collect();
    let mut scored: Vec<(usize, f64)> = schema
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let name: BTreeSet<String> = words(&t.name).into_iter().collect();
            let cols: BTreeSet<String> = t.columns.iter().flat_map(|c| words(&c.name)).collect();
            let desc: BTreeSet<String> = t
                .description
                .iter()
                .chain(t.columns.iter().filter_map(|c| c.description.as_ref()))
                .flat_map(|d| words(d))
                .collect();
            let score = q.iter().map(|w| {
                3.0 * f64::from(u8::from(name.contains(w)))
                    + f64::from(u8::from(cols.contains(w)))
                    + 0.5 * f64::from(u8::from(desc.contains(w)))
            });
            (i, score.sum())
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored
}

/// The schema part of the system prompt: the dialect (its name and what differs: quoting,
/// dates, parameters), then the tables.
pub fn schema_context(
    schema: &DatabaseSchema,
    dialect: &Dialect,
    question: &str,
    token_budget: usize,
) -> String {
    let full = &schema.ddl;
    let head = format!("Database `{}` ({}). {}", schema.database, dialect.name, dialect.hints);
    if full.len() / 4 <= token_budget {
        return format!("{head}\nSchema:\n{full}");
    }
    let ranked = rank(schema, question);
    let mut picked: BTreeSet<usize> =
        ranked.iter().filter(|(_, s)| *s > 0.0).take(TOP_TABLES).map(|(i, _)| *i).collect();
    // foreign-key neighbours of the picked tables, both directions
    let names: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).collect();
    let seeds: Vec<usize> = picked.iter().copied().collect();
    for i in seeds {
        let t = &schema.tables[i];
        for fk in &t.foreign_keys {
            if let Some(j) = names.iter().position(|n| n.eq_ignore_ascii_case(&fk.references_table))
            {
                picked.insert(j);
            }
        }
        for (j, other) in schema.tables.iter().enumerate() {
            if other.foreign_keys.iter().any(|fk| fk.references_table.eq_ignore_ascii_case(&t.name))
            {
                picked.insert(j);
            }
        }
    }
    // keep within budget: drop the lowest-ranked picks first
    let order: Vec<usize> = ranked.iter().map(|(i, _)| *i).filter(|i| picked.contains(i)).collect();
    let mut chosen: Vec<usize> = Vec::new();
    let mut used = 0;
    for i in order {
        let line = render_ddl(std::slice::from_ref(&schema.tables[i]));
        if used + line.len() / 4 > token_budget && !chosen.is_empty() {
            continue;
        }
        used += line.len() / 4;
        chosen.push(i);
    }
    chosen.sort_unstable();
    let tables: Vec<_> = chosen.iter().map(|i| schema.tables[*i].clone()).collect();
    let mut names_list: Vec<&str> = names.clone();
    names_list.sort_unstable();
    format!(
        "{head}\nIt has {} tables and views: {}.\nThe schema is large; the tables most relevant to \
         the question are:\n{}Use get_schema for any other table before querying it.",
        names.len(),
        names_list.join(", "),
        render_ddl(&tables)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlmatic_models::{ColumnInfo, ForeignKeyInfo, TableInfo, TableKind};

    fn table(name: &str, cols: &[&str], fk: Option<&str>) -> TableInfo {
        TableInfo {
            name: name.into(),
            kind: TableKind::Table,
            columns: cols
                .iter()
                .map(|c| ColumnInfo {
                    name: (*c).into(),
                    data_type: "TEXT".into(),
                    nullable: true,
                    default: None,
                    primary_key: 0,
                    description: None,
                    masked: false,
                    ..ColumnInfo::default()
                })
                .collect(),
            foreign_keys: fk
                .map(|t| {
                    vec![ForeignKeyInfo {
                        columns: vec![format!("{t}_id")],
                        references_table: t.into(),
                        references_columns: vec!["id".into()],
                        on_update: String::new(),
                        on_delete: String::new(),
                        references_missing: false,
                    }]
                })
                .unwrap_or_default(),
            indexes: vec![],
            triggers: vec![],
            row_count: Some(1),
            description: None,
            sql: None,
            sample_rows: None,
            ..TableInfo::default()
        }
    }

    fn big_schema() -> DatabaseSchema {
        let mut tables = vec![
            table("customers", &["id", "name", "country"], None),
            table("orders", &["id", "customer_id", "total"], Some("customers")),
            table("invoices", &["id", "order_id"], Some("orders")),
        ];
        for i in 0..200 {
            tables.push(table(
                &format!("audit_{i}"),
                &["id", "payload", "created_at", "actor", "detail", "extra"],
                None,
            ));
        }
        let ddl = render_ddl(&tables);
        DatabaseSchema { database: "big".into(), schema_version: 1, tables, ddl, warnings: vec![] }
    }

    #[test]
    fn small_schemas_go_in_whole() {
        let mut s = big_schema();
        s.tables.truncate(3);
        s.ddl = render_ddl(&s.tables);
        let ctx = schema_context(&s, &Dialect::SQLITE, "anything", 10_000);
        assert!(ctx.contains("TABLE customers(") && ctx.contains("TABLE invoices("));
        assert!(ctx.starts_with("Database `big` (SQLite). Quote identifiers"), "{ctx}");
        let pg = schema_context(&s, &Dialect::POSTGRES, "anything", 10_000);
        assert!(pg.contains("(PostgreSQL)") && pg.contains("date_trunc"), "{pg}");
    }

    #[test]
    fn large_schemas_keep_the_relevant_tables_and_their_neighbours() {
        let s = big_schema();
        let ctx =
            schema_context(&s, &Dialect::SQLITE, "What is the total of orders per country?", 500);
        assert!(ctx.contains("TABLE orders("), "{ctx}");
        assert!(ctx.contains("TABLE customers("), "FK neighbour: {ctx}");
        assert!(ctx.contains("TABLE invoices("), "referencing neighbour: {ctx}");
        assert!(!ctx.contains("TABLE audit_7("));
        assert!(ctx.contains("audit_199"), "all names are listed");
        assert!(ctx.len() < s.ddl.len() / 4);
    }

    #[test]
    fn ranking_prefers_names_over_columns() {
        let s = big_schema();
        let r = rank(&s, "customers by country");
        assert_eq!(s.tables[r[0].0].name, "customers");
    }
}
