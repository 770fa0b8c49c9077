//! `execute_write`: a write proposed for a person's approval, run only once approved.

use serde::Serialize;
use serde_json::Value;

use super::ExecuteQueryArgs;
use crate::{ExecuteQuery, Tool, ToolContext, ToolError, ToolKind, ToolOutcome};

/// `execute_write {"sql": "...", "params"?: [...] | {...}}`: proposes one write for the user to
/// approve; nothing runs until the thread's owner approves that exact statement.
pub struct ExecuteWrite;

/// What an approved write did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriteOutput {
    /// The statement that ran.
    pub sql: String,
    /// Rows it inserted, updated or deleted.
    pub rows_affected: usize,
    /// True for statements that change the schema.
    pub ddl: bool,
    /// How long it ran.
    pub elapsed_ms: f64,
}

impl Tool for ExecuteWrite {
    const NAME: &'static str = "execute_write";
    type Args = ExecuteQueryArgs;
    const KIND: ToolKind = ToolKind::Write;
    type Output = WriteOutput;

    fn description(&self) -> &str {
        "Propose one statement that changes the database (INSERT, UPDATE, DELETE, CREATE/ALTER/DROP \
         TABLE or INDEX). It does not run until the user approves this exact statement; the result \
         says whether it was approved (with rows affected), rejected (with the user's reason) or \
         expired. Only for writable databases; explain the change to the user before proposing it. \
         Example: execute_write {\"sql\": \"UPDATE products SET discontinued = 1 WHERE id = ?\", \"params\": [42]}"
    }

    fn parameters(&self) -> Value {
        ExecuteQuery.parameters()
    }

    fn outcome(output: WriteOutput) -> Result<ToolOutcome, ToolError> {
        Ok(ToolOutcome::Write(output))
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        args: ExecuteQueryArgs,
    ) -> Result<WriteOutput, ToolError> {
        use crate::ToolErrorCode;
        let params = args.params.unwrap_or_default().normalized();
        let sql = args.sql.trim().to_owned();
        // validate before asking anyone: syntax, one statement, allowed kind, writable target
        ctx.database.check_write(&sql).await?;
        let Some(gate) = ctx.approvals.clone() else {
            return Err(ToolError::new(
                ToolErrorCode::ReadOnly,
                "writes need a person to approve them, and none can be asked here",
            ));
        };
        match gate.request(ctx, &sql).await {
            crate::Approval::Approved => {
                ctx.database.write(&sql, &params, &ctx.limits, &ctx.audit()).await
            }
            crate::Approval::Rejected { reason } => Err(ToolError::new(
                ToolErrorCode::WriteRejected,
                format!(
                    "the user rejected this statement{}; do not run it again unless they ask",
                    reason.map(|r| format!(": {r}")).unwrap_or_default()
                ),
            )),
            crate::Approval::Expired => Err(ToolError::new(
                ToolErrorCode::WriteRejected,
                "nobody approved this statement in time, so it did not run; ask the user whether to propose it again",
            )),
        }
    }
}
