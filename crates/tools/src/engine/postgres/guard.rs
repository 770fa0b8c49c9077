//! Defence in depth for PostgreSQL: parse each statement (sqlparser, PostgreSQL dialect) and
//! refuse anything but one plain query, and functions with side effects.
//!
//! PostgreSQL itself is the sandbox (a read-only transaction, a role without write privileges,
//! checked at start-up). This layer is what still holds when an operator runs with a privileged
//! role (`allow_privileged_role: true`), and it gives the model a clear reason before the server
//! is even asked. It errs on the side of refusing: a statement it cannot parse is refused.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, ObjectName, ObjectNamePart, Query, Select, SetExpr, Statement, Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::{ToolError, ToolErrorCode};

/// Functions with side effects (files, other servers, settings, locks, signals, sequences,
/// notifications, replication) or that run SQL given as text. Matched on the last name part,
/// case-insensitively; the prefixes cover families.
const DENIED_FUNCTIONS: &[&str] = &[
    "set_config",
    "nextval",
    "setval",
    "pg_notify",
    "pg_sleep",
    "pg_sleep_for",
    "pg_sleep_until",
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "pg_export_snapshot",
    "txid_current",
    "pg_current_xact_id",
    "pg_stat_file",
    "pg_import_system_collations",
    "pg_log_backend_memory_contexts",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_sequence_last_value",
];

const DENIED_PREFIXES: &[&str] = &[
    "pg_advisory",
    "pg_try_advisory",
    "lo_",
    "dblink",
    "pg_read_",
    "pg_ls_",
    "pg_file_",
    "pg_stat_reset",
    "pg_replication_",
    "pg_create_",
    "pg_drop_",
    "pg_logical_",
    "pg_switch_",
    "pg_wal_",
    "pg_backup_",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_signal_",
];

fn denied(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    DENIED_FUNCTIONS.contains(&name.as_str()) || DENIED_PREFIXES.iter().any(|p| name.starts_with(p))
}

fn last_part(name: &ObjectName) -> Option<String> {
    match name.0.last()? {
        ObjectNamePart::Identifier(ident) => Some(ident.value.clone()),
        ObjectNamePart::Function(f) => Some(f.name.value.clone()),
    }
}

fn refuse(message: String) -> ToolError {
    ToolError::new(ToolErrorCode::ReadOnly, message)
}

struct ReadOnlyQuery;

impl Visitor for ReadOnlyQuery {
    type Break = String;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<String> {
        match statement {
            Statement::Query(_) => ControlFlow::Continue(()),
            other => {
                let text = other.to_string();
                let kind: String =
                    text.split_whitespace().take(2).collect::<Vec<_>>().join(" ").to_uppercase();
                ControlFlow::Break(format!(
                    "refused: only queries (SELECT, WITH, VALUES, TABLE) run here, not `{kind}`"
                ))
            }
        }
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
        if !query.locks.is_empty() {
            return ControlFlow::Break(
                "refused: FOR UPDATE/SHARE locks rows; queries here only read".into(),
            );
        }
        if let SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) =
            &*query.body
        {
            return ControlFlow::Break("refused: data-modifying statements cannot run here".into());
        }
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                if let SetExpr::Insert(_)
                | SetExpr::Update(_)
                | SetExpr::Delete(_)
                | SetExpr::Merge(_) = &*cte.query.body
                {
                    return ControlFlow::Break(
                        "refused: a WITH clause that writes (INSERT/UPDATE/DELETE) cannot run here"
                            .into(),
                    );
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<String> {
        if select.into.is_some() {
            return ControlFlow::Break(
                "refused: SELECT INTO creates a table; queries here only read".into(),
            );
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<String> {
        if let Expr::Function(f) = expr
            && let Some(name) = last_part(&f.name).filter(|n| denied(n))
        {
            return ControlFlow::Break(format!(
                "refused: `{name}()` has side effects or runs SQL from text, and is not allowed here"
            ));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<String> {
        // set-returning functions in FROM (`FROM dblink(…)`) are parsed as relations
        match last_part(relation).filter(|n| denied(n)) {
            Some(name) => ControlFlow::Break(format!(
                "refused: `{name}()` has side effects or runs SQL from text, and is not allowed here"
            )),
            None => ControlFlow::Continue(()),
        }
    }
}

/// Checks that `sql` is exactly one query that calls no denied function.
pub fn check_query(sql: &str) -> Result<(), ToolError> {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| {
        ToolError::new(
            ToolErrorCode::SqlError,
            format!(
                "sqlmatic could not parse this statement as PostgreSQL ({e}); write it as one plain \
                 SELECT/WITH query"
            ),
        )
    })?;
    match statements.len() {
        1 => {}
        0 => return Err(ToolError::new(ToolErrorCode::SqlError, "the statement is empty")),
        n => {
            return Err(ToolError::new(
                ToolErrorCode::MultipleStatements,
                format!("{n} statements were sent; send exactly one per call"),
            ));
        }
    }
    match statements[0].visit(&mut ReadOnlyQuery) {
        ControlFlow::Break(message) => Err(refuse(message)),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// What an approved write may be, and whether it changes the schema.
pub fn check_write(sql: &str) -> Result<bool, ToolError> {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| {
        ToolError::new(ToolErrorCode::SqlError, format!("cannot parse this statement ({e})"))
    })?;
    let [statement] = statements.as_slice() else {
        return Err(ToolError::new(
            ToolErrorCode::MultipleStatements,
            "propose exactly one statement per write",
        ));
    };
    match statement {
        Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => Ok(false),
        Statement::CreateTable(_)
        | Statement::CreateIndex(_)
        | Statement::CreateView(_)
        | Statement::AlterTable(_)
        | Statement::Drop { .. } => Ok(true),
        Statement::Query(_) => {
            Err(ToolError::invalid_args("this statement only reads; use execute_query for reads"))
        }
        other => {
            let kind = other.to_string().split_whitespace().next().unwrap_or("").to_uppercase();
            Err(refuse(format!(
                "`{kind}` cannot be proposed; execute_write takes INSERT, UPDATE, DELETE, CREATE TABLE/INDEX/VIEW, ALTER TABLE or DROP"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_pass_and_everything_else_is_refused() {
        for ok in [
            "SELECT 1",
            "select o.id, sum(i.quantity) from orders o join order_items i on i.order_id = o.id group by o.id",
            "WITH t AS (SELECT 1 AS x) SELECT x FROM t",
            "VALUES (1, 'a')",
            "SELECT data->>'k', tags @> ARRAY['a'] FROM docs WHERE name ILIKE $1",
            "SELECT date_trunc('month', created_at), count(*) FROM sales.orders GROUP BY 1",
        ] {
            assert!(check_query(ok).is_ok(), "{ok}: {:?}", check_query(ok));
        }
        for bad in [
            "DELETE FROM t",
            "SELECT 1; SELECT 2",
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "SELECT * FROM t FOR UPDATE",
            "SELECT * INTO copy FROM t",
            "SELECT set_config('statement_timeout', '0', false)",
            "SELECT pg_catalog.pg_read_file('/etc/passwd')",
            "SELECT * FROM dblink('host=x', 'select 1') AS t(a int)",
            "SELECT pg_advisory_lock(1)",
            "SELECT nextval('s')",
            "SELECT (SELECT lo_export(1, '/tmp/x'))",
            "COPY t TO PROGRAM 'id'",
            "SELECT query_to_xml('delete from t', true, true, '')",
            "this is not sql",
        ] {
            assert!(check_query(bad).is_err(), "{bad} passed");
        }
    }
}
