//! Test support for the storage layer (behind the `test-utils` feature): the demo shop loaded into
//! the test process's PostgreSQL cluster. The scripted models are in `sqlmatic_agent::testing`.

/// The demo shop in a fresh database `database` of the test process's PostgreSQL cluster
/// (`sqlmatic_tools::test_support::postgres`), read by the read-only role: a target named
/// `demo`, like the bundled SQLite demo, with the same descriptions.
#[cfg(feature = "demo")]
pub async fn postgres_shop(database: &str) -> sqlmatic_tools::TargetSpec {
    use sqlmatic_tools::test_support::postgres::{ADMIN, READER, cluster, grant_reader, spec};
    let name = database.to_owned();
    tokio::task::spawn_blocking(move || cluster().database(&name, ""))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    crate::demo::load_postgres(&cluster().url(ADMIN, database))
        .await
        .unwrap_or_else(|e| panic!("loading the demo shop into PostgreSQL: {e}"));
    let name = database.to_owned();
    tokio::task::spawn_blocking(move || grant_reader(&name, &["public"]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let demo = crate::demo::spec(std::path::Path::new(""));
    sqlmatic_tools::TargetSpec {
        description: demo.description,
        tables: demo.tables,
        default: true,
        ..spec("demo", READER, database)
    }
}
