//! The archive's tables: embedded migrations, run at start under an
//! advisory lock (so replicas starting together do not race), and recorded
//! in `{schema}.schema_migrations`.

use tokio_postgres::Client;
use tracing::info;

/// Every migration, in order: (version, SQL with `{schema}` for the schema).
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../migrations/0001_archive.sql")),
    (2, include_str!("../migrations/0002_conversations.sql")),
];

/// `sql` for `schema` (already checked to be a plain lowercase identifier,
/// see [`crate::settings`]).
pub fn in_schema(sql: &str, schema: &str) -> String {
    sql.replace("{schema}", &format!("\"{schema}\""))
}

/// Creates the schema and runs the migrations it has not run yet.
pub async fn migrate(client: &mut Client, schema: &str) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    // One migrating replica at a time, for this schema.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('openim-sync:' || $1::text))",
        &[&schema],
    )
    .await?;
    tx.batch_execute(&in_schema(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
             version    integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
        schema,
    ))
    .await?;
    let done: Vec<i32> = tx
        .query(
            &in_schema("SELECT version FROM {schema}.schema_migrations", schema),
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    for (version, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        tx.batch_execute(&in_schema(sql, schema)).await?;
        tx.execute(
            &in_schema(
                "INSERT INTO {schema}.schema_migrations (version) VALUES ($1)",
                schema,
            ),
            &[version],
        )
        .await?;
        info!(version, schema, "migration applied");
    }
    tx.commit().await
}
