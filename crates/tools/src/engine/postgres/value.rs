//! Running one query on PostgreSQL and turning its rows into typed JSON without loss.
//!
//! PostgreSQL renders each row as JSON itself (`row_to_json`): every type it knows, extension
//! types included, arrives in its own text form (timestamps ISO 8601, arrays and `jsonb` as JSON,
//! `interval` and `inet` as text), which no client-side decoder of the binary protocol matches.
//! Numbers are read as raw text and become JSON numbers only when that loses nothing: a
//! `numeric` with more digits than a double holds stays an exact string. `bytea` becomes a blob
//! like SQLite's.

use std::time::Instant;

use base64::Engine as _;
use bytes::BytesMut;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use sqlmatic_models::{ColumnMeta, QueryParams, QueryResult};
use tokio_postgres::types::{Format, IsNull, ToSql, Type, to_sql_checked};

use super::PostgresDatabase;
use crate::{QueryLimits, ToolError, ToolErrorCode};

/// A parameter sent as text, so PostgreSQL parses it as whatever type the statement needs
/// (`int4`, `numeric`, `date`, `uuid`, …) exactly as it would parse a literal.
#[derive(Debug, Clone)]
pub struct TextParam(pub Option<String>);

impl ToSql for TextParam {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0 {
            None => Ok(IsNull::Yes),
            Some(text) => {
                out.extend_from_slice(text.as_bytes());
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// The JSON parameters as text parameters for `$1`, `$2`, …
pub fn text_params(params: &QueryParams) -> Result<Vec<TextParam>, ToolError> {
    let values = match params {
        QueryParams::None => return Ok(Vec::new()),
        QueryParams::Positional(values) => values,
        QueryParams::Named(_) => {
            return Err(ToolError::invalid_args(
                "PostgreSQL takes positional parameters: write $1, $2 in the SQL and pass `params` \
                 as an array of values",
            ));
        }
    };
    Ok(values
        .iter()
        .map(|v| {
            TextParam(match v {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            })
        })
        .collect())
}

/// Borrowed views of the parameters, as the driver takes them.
pub fn param_refs(params: &[TextParam]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// A text column of any type (the JSON of a row, `EXPLAIN`'s JSON): the bytes as UTF-8.
struct AnyText(String);

impl<'a> tokio_postgres::types::FromSql<'a> for AnyText {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        // jsonb's binary form is a version byte, then the text
        let raw = if *ty == Type::JSONB { raw.get(1..).unwrap_or_default() } else { raw };
        Ok(AnyText(std::str::from_utf8(raw)?.to_owned()))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// Runs one query in `tx` (a read-only transaction): its timeouts, the cost gate, then the rows
/// until the caps.
///
/// Round trips: the `SET LOCAL`s, the two `Parse`s and `EXPLAIN` are pipelined (one), then
/// `Bind` and `Execute`. When the plan expects no more rows than the cap, the portal is run to
/// the end in one `Execute` (which lets PostgreSQL use parallel workers; a row limit on
/// `Execute` forbids them) and read as a stream that stops at the caps; otherwise rows are
/// fetched in chunks, so a huge result is never sent.
pub async fn run(
    db: &PostgresDatabase,
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    params: &[TextParam],
    limits: &QueryLimits,
    started: Instant,
) -> Result<QueryResult, ToolError> {
    let refs = param_refs(params);
    // the newline ends a trailing `--` comment inside the subquery
    let wrapped = format!("SELECT row_to_json(q)::text FROM (\n{sql}\n) q");
    let explain = format!("EXPLAIN (FORMAT JSON) {sql}");
    let settings = format!(
        "SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {}",
        limits.timeout.as_millis().max(1),
        db.config.lock_timeout_ms.max(1)
    );
    // `unknown`, like a quoted literal: PostgreSQL infers each parameter's type from the query
    let typed: Vec<(&(dyn ToSql + Sync), Type)> =
        refs.iter().map(|p| (*p, Type::UNKNOWN)).collect();
    // pipelined: sent at once, answered in order
    let (set, inner, outer, plan) =
        tokio::join!(tx.batch_execute(&settings), tx.prepare(sql), tx.prepare(&wrapped), async {
            if db.gates(limits) {
                tx.query_typed(&explain, &typed).await.map(Some)
            } else {
                Ok(None)
            }
        });
    set.map_err(|e| db.error(&e))?;
    if let Ok(inner) = &inner
        && inner.params().len() != params.len()
    {
        return Err(ToolError::invalid_args(format!(
            "the statement takes {} parameter(s) ($1…) and {} were given",
            inner.params().len(),
            params.len()
        )));
    }
    // answers of one pipeline: the first real failure explains the others, which only say
    // "current transaction is aborted" (a type lookup of the driver can be among them)
    let failures = [inner.as_ref().err(), outer.as_ref().err(), plan.as_ref().err()];
    let first = failures
        .iter()
        .flatten()
        .find(|e| e.code() != Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION));
    if let Some(e) = first.or(failures.iter().flatten().next()) {
        return Err(db.error(e));
    }
    let (Ok(inner), Ok(outer), Ok(plan)) = (inner, outer, plan) else {
        return Err(ToolError::internal("a pipelined answer went missing"));
    };
    if inner.columns().is_empty() {
        return Err(ToolError::new(
            ToolErrorCode::ReadOnly,
            "refused: this statement returns no rows; only queries run here",
        ));
    }
    let mut expected_rows = None;
    if let Some(row) = plan.as_ref().and_then(|rows| rows.first()) {
        let AnyText(text) = row.try_get(0).map_err(|e| db.error(&e))?;
        let plan: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        db.check_plan(&plan, limits)?;
        expected_rows = plan[0]["Plan"]["Plan Rows"].as_f64();
    }
    let columns: Vec<ColumnMeta> = inner
        .columns()
        .iter()
        .map(|c| ColumnMeta { name: c.name().to_owned(), decl_type: Some(type_name(c.type_())) })
        .collect();
    let types: Vec<Type> = inner.columns().iter().map(|c| c.type_().clone()).collect();

    let portal = tx.bind(&outer, &refs).await.map_err(|e| db.error(&e))?;
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    let mut truncated = false;
    let small = expected_rows.is_some_and(|n| n <= limits.max_rows as f64);
    if small {
        use futures_util::TryStreamExt;
        let stream = tx.query_portal_raw(&portal, 0).await.map_err(|e| db.error(&e))?;
        futures_util::pin_mut!(stream);
        // past the caps the stream is dropped: the driver discards the rest as it arrives
        while let Some(row) = stream.try_next().await.map_err(|e| db.error(&e))? {
            if rows.len() >= limits.max_rows {
                truncated = true;
                break;
            }
            let AnyText(json) = row.try_get(0).map_err(|e| db.error(&e))?;
            bytes += json.len();
            if bytes > limits.max_result_bytes && !rows.is_empty() {
                truncated = true;
                break;
            }
            rows.push(decode_row(&json, &types, limits.inline_blob_bytes)?);
        }
    }
    'fetch: loop {
        if small {
            break;
        }
        let want = (limits.max_rows + 1 - rows.len()).clamp(1, 500);
        let chunk = tx.query_portal(&portal, want as i32).await.map_err(|e| db.error(&e))?;
        let done = chunk.len() < want;
        for row in chunk {
            if rows.len() >= limits.max_rows {
                truncated = true;
                break 'fetch;
            }
            let AnyText(json) = row.try_get(0).map_err(|e| db.error(&e))?;
            bytes += json.len();
            if bytes > limits.max_result_bytes && !rows.is_empty() {
                truncated = true;
                break 'fetch;
            }
            rows.push(decode_row(&json, &types, limits.inline_blob_bytes)?);
        }
        if done {
            break;
        }
    }
    let row_count = rows.len() as u64;
    let total_rows =
        if truncated { count_all(tx, sql, &refs, limits, started).await } else { Some(row_count) };
    Ok(QueryResult {
        columns,
        rows,
        row_count,
        total_rows,
        truncated,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// How many rows the whole query has, when that can be counted in the time left (else `None`).
async fn count_all(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    refs: &[&(dyn ToSql + Sync)],
    limits: &QueryLimits,
    started: Instant,
) -> Option<u64> {
    let left = limits.timeout.checked_sub(started.elapsed())?.as_millis();
    if left < 5 {
        return None;
    }
    tx.batch_execute(&format!("SET LOCAL statement_timeout = {left}")).await.ok()?;
    let row = tx.query_one(&format!("SELECT count(*) FROM (\n{sql}\n) q"), refs).await.ok()?;
    row.try_get::<_, i64>(0).ok().map(|n| n.max(0) as u64)
}

/// The type's SQL name (`integer`, `numeric`, `text[]`), as a schema shows it.
fn type_name(ty: &Type) -> String {
    match *ty {
        Type::INT2 => "smallint".into(),
        Type::INT4 => "integer".into(),
        Type::INT8 => "bigint".into(),
        Type::FLOAT4 => "real".into(),
        Type::FLOAT8 => "double precision".into(),
        Type::BOOL => "boolean".into(),
        Type::VARCHAR => "character varying".into(),
        Type::BPCHAR => "character".into(),
        Type::TIMESTAMPTZ => "timestamp with time zone".into(),
        Type::TIMESTAMP => "timestamp without time zone".into(),
        _ => match ty.kind() {
            tokio_postgres::types::Kind::Array(inner) => format!("{}[]", type_name(inner)),
            _ => ty.name().to_owned(),
        },
    }
}

/// One row's JSON object, its values in column order (duplicate names kept).
fn decode_row(
    json: &str,
    types: &[Type],
    inline_blob_bytes: usize,
) -> Result<Vec<Value>, ToolError> {
    struct Ordered<'a>(Vec<&'a RawValue>);
    struct OrderedVisitor;
    impl<'de> Visitor<'de> for OrderedVisitor {
        type Value = Ordered<'de>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered<'de>, A::Error> {
            let mut values = Vec::new();
            while map.next_key::<IgnoredAny>()?.is_some() {
                values.push(map.next_value::<&'de RawValue>()?);
            }
            Ok(Ordered(values))
        }
    }
    let mut de = serde_json::Deserializer::from_str(json);
    let Ordered(raw) = (&mut de)
        .deserialize_map(OrderedVisitor)
        .map_err(|e| ToolError::internal(format!("row JSON from PostgreSQL: {e}")))?;
    Ok(raw
        .iter()
        .enumerate()
        .map(|(i, v)| convert(v.get(), types.get(i), inline_blob_bytes))
        .collect())
}

/// One value's JSON text as typed JSON.
fn convert(raw: &str, ty: Option<&Type>, inline_blob_bytes: usize) -> Value {
    if raw == "null" {
        return Value::Null;
    }
    match ty {
        Some(t) if *t == Type::BYTEA => {
            let text: String = serde_json::from_str(raw).unwrap_or_default();
            let hex = text.strip_prefix("\\x").unwrap_or(&text);
            let bytes: Option<Vec<u8>> = (0..hex.len())
                .step_by(2)
                .map(|i| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
                .collect();
            match bytes {
                Some(b) if b.len() <= inline_blob_bytes => {
                    serde_json::json!({"$blob": base64::engine::general_purpose::STANDARD.encode(b)})
                }
                Some(b) => serde_json::json!({"$blob_bytes": b.len()}),
                None => Value::String(text),
            }
        }
        Some(t) if *t == Type::FLOAT4 || *t == Type::FLOAT8 => {
            serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
        }
        _ if raw.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => exact_number(raw),
        _ => serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned())),
    }
}

/// A decimal as a JSON number when a double (or an integer) holds it exactly, else as a string.
pub(crate) fn exact_number(text: &str) -> Value {
    if !text.contains(['.', 'e', 'E']) {
        if let Ok(i) = text.parse::<i64>() {
            return Value::from(i);
        }
        if let Ok(u) = text.parse::<u64>() {
            return Value::from(u);
        }
        return Value::String(text.to_owned());
    }
    let normal = |s: &str| -> String {
        let s = s.strip_prefix('+').unwrap_or(s);
        let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { s };
        if s == "-0" { "0".to_owned() } else { s.to_owned() }
    };
    match text.parse::<f64>() {
        Ok(f)
            if f.is_finite()
                && !text.contains(['e', 'E'])
                && normal(text) == normal(&f.to_string()) =>
        {
            serde_json::Number::from_f64(f)
                .map_or_else(|| Value::String(text.to_owned()), Value::Number)
        }
        _ => Value::String(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_exact_or_strings() {
        assert_eq!(exact_number("42"), Value::from(42));
        assert_eq!(exact_number("-7"), Value::from(-7));
        assert_eq!(exact_number("12.50"), serde_json::json!(12.5));
        assert_eq!(exact_number("0.1"), serde_json::json!(0.1));
        assert_eq!(exact_number("18446744073709551615"), Value::from(u64::MAX));
        assert_eq!(
            exact_number("123456789012345678901234567890"),
            Value::from("123456789012345678901234567890")
        );
        assert_eq!(
            exact_number("3.14159265358979323846264338"),
            Value::from("3.14159265358979323846264338")
        );
        assert_eq!(exact_number("-0.0"), serde_json::json!(-0.0));
    }

    #[test]
    fn rows_keep_column_order_and_duplicates() {
        let row = decode_row(
            r#"{"a":1,"a":"x","b":null,"c":[1,2],"d":"\\x0102"}"#,
            &[Type::INT4, Type::TEXT, Type::TEXT, Type::INT4_ARRAY, Type::BYTEA],
            16,
        )
        .unwrap();
        assert_eq!(
            row,
            vec![
                Value::from(1),
                Value::from("x"),
                Value::Null,
                serde_json::json!([1, 2]),
                serde_json::json!({"$blob": "AQI="})
            ]
        );
    }
}
