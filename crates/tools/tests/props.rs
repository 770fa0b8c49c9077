//! Property tests: whatever a model sends, tools answer with a result or a typed error — never a
//! panic — and the database file never changes.

// Test helpers outside #[test] fns: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use serde_json::{Value, json};
use sqlmatic_tools::test_support::fixture_context;
use sqlmatic_tools::{ToolRegistry, ToolsConfig};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::String),
        "(SELECT|select|DROP|PRAGMA|WITH|ATTACH|sql|tables|params|sample_rows|;|'|\"|\\(|\\)|\\*| )*".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::hash_map("(sql|params|tables|sample_rows|[a-z]{1,8})", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

const FIXTURE: &str =
    "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1,'a'),(2,'b');";

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_arguments_never_panic(tool in prop_oneof![Just("list_tables"), Just("get_metadata"), Just("get_schema"), Just("execute_query"), Just("nope")], args in json_value()) {
        let (_dir, ctx) = fixture_context(FIXTURE);
        let before = std::fs::read(ctx.database.spec().path.as_ref().unwrap()).unwrap();
        let toolset = ToolRegistry::builtin().toolset(&ToolsConfig::default().enabled).unwrap();
        let result = runtime().block_on(toolset.call(tool, &ctx, args));
        if let Err(e) = result {
            prop_assert!(!e.model_message.is_empty());
        }
        prop_assert_eq!(std::fs::read(ctx.database.spec().path.as_ref().unwrap()).unwrap(), before);
    }

    #[test]
    fn arbitrary_sql_is_run_or_refused_and_never_writes(sql in prop_oneof![
        any::<String>(),
        "(SELECT|INSERT|DELETE|DROP|CREATE|PRAGMA|ATTACH|VACUUM|WITH|VALUES|BEGIN|COMMIT|;|,|\\(|\\)|\\*|t|v|id|1|'x'|=| )*",
        (0usize..3000).prop_map(|n| format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n))),
    ]) {
        let (_dir, ctx) = fixture_context(FIXTURE);
        let before = std::fs::read(ctx.database.spec().path.as_ref().unwrap()).unwrap();
        let toolset = ToolRegistry::builtin().toolset(&["execute_query".into()]).unwrap();
        let result = runtime().block_on(toolset.call("execute_query", &ctx, json!({"sql": sql})));
        if let Err(e) = result {
            prop_assert!(!e.model_message.is_empty());
        }
        prop_assert_eq!(std::fs::read(ctx.database.spec().path.as_ref().unwrap()).unwrap(), before);
    }
}

#[test]
fn huge_inputs_are_refused_clearly() {
    let (_dir, ctx) = fixture_context(FIXTURE);
    let toolset = ToolRegistry::builtin().toolset(&["execute_query".into()]).unwrap();
    let rt = runtime();
    let huge = format!("SELECT '{}'", "x".repeat(2_000_000));
    let err = rt.block_on(toolset.call("execute_query", &ctx, json!({"sql": huge}))).unwrap_err();
    assert!(err.model_message.contains("long"), "{}", err.model_message);
    let many_params: Vec<Value> = (0..5000).map(Value::from).collect();
    let err = rt
        .block_on(toolset.call(
            "execute_query",
            &ctx,
            json!({"sql": "SELECT ?", "params": many_params}),
        ))
        .unwrap_err();
    assert!(!err.model_message.is_empty());
}
