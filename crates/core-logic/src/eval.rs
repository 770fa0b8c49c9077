//! Execution-accuracy evaluation of the agent over a dataset of `{question, gold_sql, database}`
//! lines (Spider/BIRD style): each question runs through the agent in a fresh thread; the last
//! query the agent ran successfully and the gold SQL are both executed, and their result sets
//! compared — as multisets of rows, unless the gold SQL orders its result.
//!
//! Business context is measured two ways: a line may name the verified queries it expects to
//! be retrieved (`expected_verified`, by question or id), giving retrieval recall@k; and with
//! [`EvalOptions::without_context`] each question runs a second time without the context,
//! giving execution accuracy with and without it, side by side.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlmatic_models::QueryParams;

use crate::{ChatRequest, Sqlmatic};

/// One line of the dataset.
#[derive(Debug, Clone, Deserialize)]
pub struct EvalCase {
    /// An id for the report (default: its position in the dataset, from 1).
    #[serde(default)]
    pub id: Option<String>,
    /// The question.
    pub question: String,
    /// SQL whose result is the right answer.
    pub gold_sql: String,
    /// The target database (default: the default one).
    #[serde(default)]
    pub database: Option<String>,
    /// Labels for per-tag accuracy (`join`, `aggregate`, `hard`, …).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Verified queries (their question, or their id as text) retrieval should find for this
    /// question: scored as recall@k.
    #[serde(default)]
    pub expected_verified: Vec<String>,
}

/// How to run an evaluation.
#[derive(Debug, Clone, Copy, Default)]
pub struct EvalOptions {
    /// Also run every question without the business context (twice the model calls), to
    /// report execution accuracy with and without it.
    pub without_context: bool,
}

/// One question's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct EvalResult {
    /// The item's id.
    pub id: String,
    /// The question.
    pub question: String,
    /// The target database.
    pub database: Option<String>,
    /// The item's tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The gold SQL.
    pub gold_sql: String,
    /// The last successful query of the answer, if any.
    pub predicted_sql: Option<String>,
    /// True when its result matches the gold result.
    pub correct: bool,
    /// Why the item could not be judged, if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The answer's text.
    pub answer: String,
    /// Model calls made.
    pub steps: u32,
    /// How long the turn took.
    pub elapsed_ms: f64,
    /// The verified queries retrieval offered for the question (their questions), best first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retrieved: Vec<String>,
    /// Of `expected_verified`, the share retrieved (when the line names any).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recall: Option<f64>,
    /// The answer without business context: right or not (`without_context` runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correct_without_context: Option<bool>,
    /// The last successful query of the answer without business context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_sql_without_context: Option<String>,
}

/// An evaluation run: execution accuracy over a dataset.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Items.
    pub total: usize,
    /// Items answered correctly.
    pub correct: usize,
    /// `correct / total`.
    pub execution_accuracy: f64,
    /// Items that failed to run.
    pub errors: usize,
    /// Verified queries retrieved per question at most (the k of recall@k).
    pub k: usize,
    /// Mean recall@k over the items that name `expected_verified`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrieval_recall_at_k: Option<f64>,
    /// Items answered correctly without business context (`without_context` runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correct_without_context: Option<usize>,
    /// Execution accuracy without business context, beside `execution_accuracy` with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_accuracy_without_context: Option<f64>,
    /// Accuracy per tag, for items that carry `tags`.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub by_tag: std::collections::BTreeMap<String, TagAccuracy>,
    /// Every item's outcome.
    pub results: Vec<EvalResult>,
}

/// Execution accuracy over the items carrying one tag.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TagAccuracy {
    /// Items with the tag.
    pub total: usize,
    /// Of those, answered correctly.
    pub correct: usize,
    /// `correct / total`.
    pub execution_accuracy: f64,
}

/// Accuracy per tag over `results`.
pub fn by_tag(results: &[EvalResult]) -> std::collections::BTreeMap<String, TagAccuracy> {
    let mut tags: std::collections::BTreeMap<String, TagAccuracy> = Default::default();
    for r in results {
        for tag in &r.tags {
            let t = tags.entry(tag.clone()).or_insert(TagAccuracy {
                total: 0,
                correct: 0,
                execution_accuracy: 0.0,
            });
            t.total += 1;
            t.correct += usize::from(r.correct);
            t.execution_accuracy = t.correct as f64 / t.total as f64;
        }
    }
    tags
}

/// Parses a JSONL dataset; blank lines are skipped, a bad line is an error naming it.
pub fn parse_dataset(text: &str) -> Result<Vec<EvalCase>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

/// A value normalised for comparison: integers and reals compare numerically, and a number
/// written as text compares as that number (a year answered `2022` matches gold `'2022'`;
/// PostgreSQL's exact `numeric` strings match the doubles SQLite returns).
fn norm(v: &Value) -> String {
    let number = |f: f64| {
        if f.fract() == 0.0 && f.abs() < 1e15 { format!("{}", f as i64) } else { format!("{f:.6}") }
    };
    match v {
        Value::Number(n) => number(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() && !s.trim().is_empty() => number(f),
            _ => v.to_string(),
        },
        other => other.to_string(),
    }
}

fn rows_key(rows: &[Vec<Value>]) -> Vec<String> {
    rows.iter().map(|r| r.iter().map(norm).collect::<Vec<_>>().join("\u{1f}")).collect()
}

/// Whether the gold SQL's outermost query orders its rows.
fn ordered(sql: &str) -> bool {
    let lower = sql.to_lowercase();
    // the last ORDER BY outside parentheses
    let mut depth = 0i32;
    let bytes = lower.as_bytes();
    let mut found = false;
    for i in 0..bytes.len() {
        match bytes[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b'o' if depth == 0 && lower[i..].starts_with("order by") => found = true,
            _ => {}
        }
    }
    found
}

/// True when both row lists hold the same rows (in the same order when `ordered`).
pub fn same_result(gold: &[Vec<Value>], predicted: &[Vec<Value>], ordered: bool) -> bool {
    let (mut g, mut p) = (rows_key(gold), rows_key(predicted));
    if !ordered {
        g.sort_unstable();
        p.sort_unstable();
    }
    g == p
}

/// One turn's verdict: the last successful query, whether it matched, why not.
struct Verdict {
    predicted_sql: Option<String>,
    correct: bool,
    error: Option<String>,
    answer: String,
    steps: u32,
}

impl Sqlmatic {
    /// Runs one question through the agent (with or without business context) and scores it.
    async fn judge(
        self: &Arc<Self>,
        user: &sqlmatic_models::Principal,
        case: &EvalCase,
        business_context: bool,
    ) -> Verdict {
        let request = ChatRequest {
            database: case.database.clone(),
            business_context,
            ..ChatRequest::new(case.question.clone())
        };
        let mut v = Verdict {
            predicted_sql: None,
            correct: false,
            error: None,
            answer: String::new(),
            steps: 0,
        };
        let reply = match self.chat(user, request).await {
            Ok(reply) => reply,
            Err(e) => {
                v.error = Some(format!("{}: {e}", e.code()));
                return v;
            }
        };
        v.answer = reply.answer.clone();
        v.steps = reply.steps;
        v.predicted_sql =
            reply.queries.iter().rev().find(|q| q.error.is_none()).map(|q| q.sql.clone());
        let Some(pred) = &v.predicted_sql else {
            v.error = Some("the agent ran no successful query".into());
            return v;
        };
        let db = case.database.as_deref();
        let gold = self.query(user, db, case.gold_sql.clone(), QueryParams::None).await;
        let predicted = self.query(user, db, pred.clone(), QueryParams::None).await;
        match (gold, predicted) {
            (Ok(g), Ok(p)) => {
                v.correct = !g.truncated
                    && !p.truncated
                    && same_result(&g.rows, &p.rows, ordered(&case.gold_sql));
                if g.truncated || p.truncated {
                    v.error = Some(
                        "a result was truncated by tools.max_rows; raise it to compare".into(),
                    );
                }
            }
            (Err(e), _) => v.error = Some(format!("gold SQL failed: {e}")),
            (_, Err(e)) => v.error = Some(format!("predicted SQL failed: {e}")),
        }
        v
    }

    /// Runs every case through the agent as `user` and scores it.
    pub async fn evaluate(
        self: &Arc<Self>,
        user: &sqlmatic_models::Principal,
        cases: Vec<EvalCase>,
        options: EvalOptions,
    ) -> EvalReport {
        let k = sqlmatic_services::knowledge::RETRIEVED;
        let mut results = Vec::with_capacity(cases.len());
        for (i, case) in cases.into_iter().enumerate() {
            let id = case.id.clone().unwrap_or_else(|| (i + 1).to_string());
            let started = Instant::now();
            let database =
                case.database.clone().unwrap_or_else(|| self.default_database().to_owned());
            let retrieved =
                self.knowledge.retrieve(&database, &case.question, k).await.unwrap_or_default();
            let recall = (!case.expected_verified.is_empty()).then(|| {
                let found = case
                    .expected_verified
                    .iter()
                    .filter(|want| {
                        retrieved.iter().any(|q| {
                            q.question.eq_ignore_ascii_case(want.trim())
                                || q.id.to_string() == **want
                        })
                    })
                    .count();
                found as f64 / case.expected_verified.len() as f64
            });
            let with = self.judge(user, &case, true).await;
            let without = if options.without_context {
                Some(self.judge(user, &case, false).await)
            } else {
                None
            };
            let result = EvalResult {
                id,
                question: case.question.clone(),
                database: case.database.clone(),
                tags: case.tags.clone(),
                gold_sql: case.gold_sql.clone(),
                predicted_sql: with.predicted_sql,
                correct: with.correct,
                error: with.error,
                answer: with.answer,
                steps: with.steps,
                elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
                retrieved: retrieved.into_iter().map(|q| q.question).collect(),
                recall,
                correct_without_context: without.as_ref().map(|w| w.correct),
                predicted_sql_without_context: without.and_then(|w| w.predicted_sql),
            };
            log::info!("eval {}: {}", result.id, if result.correct { "correct" } else { "wrong" });
            results.push(result);
        }
        let correct = results.iter().filter(|r| r.correct).count();
        let total = results.len();
        let ratio = |n: usize, d: usize| if d > 0 { n as f64 / d as f64 } else { 0.0 };
        let recalls: Vec<f64> = results.iter().filter_map(|r| r.recall).collect();
        let correct_without_context = options
            .without_context
            .then(|| results.iter().filter(|r| r.correct_without_context == Some(true)).count());
        EvalReport {
            total,
            correct,
            execution_accuracy: ratio(correct, total),
            errors: results.iter().filter(|r| r.error.is_some()).count(),
            k,
            retrieval_recall_at_k: (!recalls.is_empty())
                .then(|| recalls.iter().sum::<f64>() / recalls.len() as f64),
            correct_without_context,
            execution_accuracy_without_context: correct_without_context.map(|c| ratio(c, total)),
            by_tag: by_tag(&results),
            results,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn comparison_is_order_insensitive_unless_ordered_and_numeric() {
        let a = vec![vec![json!(1), json!("x")], vec![json!(2.0), json!("y")]];
        let b = vec![vec![json!(2), json!("y")], vec![json!(1.0), json!("x")]];
        assert!(same_result(&a, &b, false));
        assert!(!same_result(&a, &b, true));
        // a number and the same number as text are alike; other text is not a number
        assert!(same_result(&[vec![json!(2022)]], &[vec![json!("2022")]], true));
        assert!(same_result(&[vec![json!(12.5)]], &[vec![json!("12.50")]], true));
        assert!(!same_result(&[vec![json!("2022-01")]], &[vec![json!(2022)]], true));
        assert!(!same_result(&[vec![json!("")]], &[vec![json!(0)]], true));
        assert!(!same_result(&a, &b[..1], false));
        assert!(ordered("SELECT a FROM t ORDER BY a"));
        assert!(!ordered("SELECT a FROM (SELECT a FROM t ORDER BY a LIMIT 3)"));
    }

    #[test]
    fn datasets_name_bad_lines() {
        assert_eq!(parse_dataset("{\"question\":\"q\",\"gold_sql\":\"s\"}\n\n").unwrap().len(), 1);
        assert!(parse_dataset("{}\n").unwrap_err().starts_with("line 1"));
    }

    #[test]
    fn accuracy_is_reported_per_tag() {
        let result = |tags: &[&str], correct: bool| EvalResult {
            id: "1".into(),
            question: "q".into(),
            database: None,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            gold_sql: "SELECT 1".into(),
            predicted_sql: None,
            correct,
            error: None,
            answer: String::new(),
            steps: 0,
            elapsed_ms: 0.0,
            retrieved: vec![],
            recall: None,
            correct_without_context: None,
            predicted_sql_without_context: None,
        };
        let report =
            by_tag(&[result(&["join", "hard"], true), result(&["join"], false), result(&[], true)]);
        assert_eq!(report["join"], TagAccuracy { total: 2, correct: 1, execution_accuracy: 0.5 });
        assert_eq!(report["hard"], TagAccuracy { total: 1, correct: 1, execution_accuracy: 1.0 });
        assert_eq!(report.len(), 2);
        let case: EvalCase =
            serde_json::from_str(r#"{"question": "q", "gold_sql": "SELECT 1", "tags": ["join"]}"#)
                .unwrap();
        assert_eq!(case.tags, ["join"]);
    }
}
