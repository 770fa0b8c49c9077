//! `find_values`: the real stored values closest to what the user typed, so a filter matches
//! what the data holds ("new york" → `'New York City'`) instead of what the model guessed.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlmatic_models::{Code, ValueMatch};

use crate::{Tool, ToolContext, ToolError, ToolOutcome};

/// `find_values {"text": "...", "column"?: "table.column"}`
pub struct FindValues;

/// Matches returned at most.
const LIMIT: usize = 10;

/// `find_values`' arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindValuesArgs {
    /// What the user typed.
    pub text: String,
    /// `column` or `table.column` to search (default: every indexed text column).
    #[serde(default)]
    pub column: Option<String>,
}

/// `find_values`' answer.
#[derive(Debug, Serialize)]
pub struct FoundValues {
    /// Stored values, best first; use them verbatim in SQL.
    pub matches: Vec<ValueMatch>,
}

impl Tool for FindValues {
    const NAME: &'static str = "find_values";
    type Args = FindValuesArgs;
    type Output = FoundValues;

    fn description(&self) -> &str {
        "Find the values actually stored in text columns that are closest to what the user \
         typed (ignores case and accents, tolerates typos and partial words). Call it before \
         filtering on a name, place, category or status the user wrote, and use the value \
         exactly as returned. Example: find_values {\"text\": \"new york\", \"column\": \
         \"customers.city\"}"
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "text": {"type": "string", "description": "What the user typed, e.g. \"new york\"."},
                "column": {"type": "string",
                           "description": "Optional: search only this column, as column or table.column."}
            },
            "required": ["text"]
        })
    }

    fn outcome(output: FoundValues) -> Result<ToolOutcome, ToolError> {
        ToolOutcome::other(&output)
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        args: FindValuesArgs,
    ) -> Result<FoundValues, ToolError> {
        let text = args.text.trim();
        if text.is_empty() || text.chars().count() > 200 {
            return Err(ToolError::invalid_args("text must be 1 to 200 characters"));
        }
        let Some(values) = &ctx.values else {
            return Err(ToolError::new(
                Code::ValueIndexUnavailable,
                "value lookup is not available here; query the column with LIKE instead",
            ));
        };
        let column = args.column.as_deref().map(str::trim).filter(|c| !c.is_empty());
        let matches = values.find(ctx.database.name(), column, text, LIMIT).await?;
        Ok(FoundValues { matches })
    }
}
