//! What the model is shown of a tool's output: bounded in rows and bytes, and always saying how
//! many rows exist, how many are shown, and whether the row cap truncated them.

use serde_json::{Value, json};

/// Bounds `output` of tool `name` for the model.
pub fn for_model(name: &str, output: &Value, max_rows: usize, max_bytes: usize) -> String {
    let shaped = match name {
        "execute_query" => shape_query(output, max_rows, max_bytes),
        // the compact DDL says the same as the JSON structure in a fraction of the tokens
        "get_schema" => {
            let mut v = json!({"database": output["database"], "schema_version": output["schema_version"], "ddl": output["ddl"]});
            let samples: serde_json::Map<String, Value> = output["tables"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| t["sample_rows"].is_array())
                .map(|t| {
                    let cols: Vec<Value> = t["columns"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| c["name"].clone())
                        .collect();
                    (
                        t["name"].as_str().unwrap_or_default().to_owned(),
                        json!({"columns": cols, "rows": t["sample_rows"]}),
                    )
                })
                .collect();
            if !samples.is_empty() {
                v["sample_rows"] = Value::Object(samples);
            }
            v
        }
        _ => output.clone(),
    };
    cap_text(shaped.to_string(), max_bytes)
}

fn shape_query(output: &Value, max_rows: usize, max_bytes: usize) -> Value {
    let rows = output["rows"].as_array().cloned().unwrap_or_default();
    let returned = rows.len();
    let total = output["total_rows"].as_u64();
    let cap_truncated = output["truncated"].as_bool().unwrap_or(false);
    let columns: Vec<Value> =
        output["columns"].as_array().into_iter().flatten().map(|c| c["name"].clone()).collect();
    let mut shown = returned.min(max_rows);
    loop {
        let note = note(shown, returned, total, cap_truncated);
        let v = json!({
            "columns": columns,
            "rows": rows[..shown],
            "rows_shown": shown,
            "rows_total": total,
            "truncated": cap_truncated || shown < returned,
            "note": note,
        });
        if v.to_string().len() <= max_bytes || shown == 0 {
            return v;
        }
        shown /= 2;
    }
}

fn note(shown: usize, returned: usize, total: Option<u64>, cap_truncated: bool) -> String {
    let total_text = match total {
        Some(t) => format!("{t} rows in all"),
        None => "the total number of rows is unknown (counting took too long)".into(),
    };
    if shown == returned && !cap_truncated {
        format!("all {shown} rows shown")
    } else if cap_truncated {
        format!(
            "showing {shown} rows; the result was truncated by the row cap; {total_text}. Use aggregates, filters or LIMIT."
        )
    } else {
        format!(
            "showing {shown} of {returned} rows; {total_text}. Use aggregates, filters or LIMIT."
        )
    }
}

/// Cuts text to `max` bytes at a char boundary, saying so.
pub fn cap_text(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub(80);
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… [output cut at {max} bytes; ask for less, e.g. fewer tables or a LIMIT]",
        &text[..end]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(n: usize, total: u64, truncated: bool) -> Value {
        json!({
            "columns": [{"name": "id", "decl_type": "INTEGER"}],
            "rows": (0..n).map(|i| json!([i])).collect::<Vec<_>>(),
            "row_count": n, "total_rows": total, "truncated": truncated, "elapsed_ms": 1.0
        })
    }

    #[test]
    fn small_results_are_shown_whole() {
        let v: Value =
            serde_json::from_str(&for_model("execute_query", &query(3, 3, false), 50, 10_000))
                .unwrap();
        assert_eq!(v["rows_shown"], 3);
        assert_eq!(v["truncated"], false);
        assert_eq!(v["note"], "all 3 rows shown");
    }

    #[test]
    fn large_results_say_what_was_cut() {
        let v: Value = serde_json::from_str(&for_model(
            "execute_query",
            &query(1000, 5000, true),
            50,
            100_000,
        ))
        .unwrap();
        assert_eq!(v["rows_shown"], 50);
        assert_eq!(v["rows_total"], 5000);
        assert_eq!(v["truncated"], true);
        assert!(v["note"].as_str().unwrap().contains("truncated by the row cap"));
        let v: Value =
            serde_json::from_str(&for_model("execute_query", &query(200, 200, false), 500, 300))
                .unwrap();
        assert!(v["rows_shown"].as_u64().unwrap() < 200);
        assert!(v["note"].as_str().unwrap().contains("of 200 rows"));
    }

    #[test]
    fn other_outputs_are_capped_in_bytes() {
        let big = json!({"x": "y".repeat(5000)});
        let s = for_model("list_tables", &big, 10, 1000);
        assert!(s.len() <= 1000 + 100);
        assert!(s.contains("output cut"));
    }
}
