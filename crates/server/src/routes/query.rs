//! Read-only SQL over REST.

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, post, web};
use sqlmatic_models::QueryResult;

use crate::error::ApiError;
use crate::wire::{QueryFormat, QueryRequest};
use crate::{CurrentUser, State};

/// Runs one read-only statement. `?format=csv` returns the rows as CSV.
#[utoipa::path(post, path = "/api/query", tag = "query", params(QueryFormat), request_body = QueryRequest, responses(
    (status = 200, description = "the rows: JSON, or CSV with `?format=csv`",
        content((QueryResult = "application/json"), (String = "text/csv"))),
    (status = 400, description = "sql_error, multiple_statements, invalid_args", body = crate::wire::ErrorBody),
    (status = 403, description = "read_only: the statement would write", body = crate::wire::ErrorBody),
    (status = 404, description = "database_not_found", body = crate::wire::ErrorBody),
    (status = 408, description = "query_timeout", body = crate::wire::ErrorBody)))]
#[post("/api/query")]
pub async fn run(
    state: web::Data<State>,
    user: CurrentUser,
    format: web::Query<QueryFormat>,
    body: crate::wire::JsonObject<QueryRequest>,
) -> Result<HttpResponse, ApiError> {
    let csv = format.format == Some(crate::wire::OutputFormat::Csv);
    let QueryRequest { sql, params, database } = body.into_inner();
    let result =
        state.core.query(&user.0, database.as_deref(), sql, params.unwrap_or_default()).await?;
    if !csv {
        return Ok(HttpResponse::Ok().json(result));
    }
    let mut response = HttpResponse::Ok();
    response
        .content_type("text/csv; charset=utf-8")
        .insert_header((header::CONTENT_DISPOSITION, "attachment; filename=\"query.csv\""))
        .insert_header(("X-Sqlmatic-Row-Count", result.row_count.to_string()))
        .insert_header(("X-Sqlmatic-Truncated", result.truncated.to_string()));
    Ok(response.streaming(csv_stream(result)))
}

/// RFC 4180 field quoting.
fn csv_field(out: &mut String, value: &serde_json::Value) {
    let text = match value {
        serde_json::Value::Null => return,
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&text);
    }
}

fn csv_line(values: impl Iterator<Item = serde_json::Value>) -> String {
    let mut line = String::new();
    for (i, v) in values.enumerate() {
        if i > 0 {
            line.push(',');
        }
        csv_field(&mut line, &v);
    }
    line.push_str("\r\n");
    line
}

/// The CSV body in chunks of 256 rows, so a large result is never one big string.
fn csv_stream(
    result: QueryResult,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> {
    let header = csv_line(result.columns.iter().map(|c| serde_json::Value::String(c.name.clone())));
    let chunks: Vec<Vec<Vec<serde_json::Value>>> =
        result.rows.chunks(256).map(<[_]>::to_vec).collect();
    futures_util::stream::iter(std::iter::once(Ok(Bytes::from(header))).chain(
        chunks.into_iter().map(|rows| {
            let mut s = String::new();
            for row in rows {
                s.push_str(&csv_line(row.into_iter()));
            }
            Ok(Bytes::from(s))
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(
            csv_line(
                [json!(1), json!("a,b"), json!(null), json!("say \"hi\""), json!(2.5)].into_iter()
            ),
            "1,\"a,b\",,\"say \"\"hi\"\"\",2.5\r\n"
        );
    }
}
