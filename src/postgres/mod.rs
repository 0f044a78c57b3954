//! PostgreSQL storage, for `--db-uri postgres://…`: one database that several
//! servers and all their accounts share.
//!
//! [`connect`] opens a connection pool and brings the schema up to date with the
//! migrations of `migrations/postgres` (refinery, history in
//! `refinery_schema_history`). Every table is named `wa_…` and keyed first by the
//! account, so that one account's rows never meet another's:
//! [`whatsapp_store::WhatsAppStore`] is one account's WhatsApp session.

pub mod whatsapp_store;

#[cfg(test)]
pub(crate) mod testing;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

/// The advisory lock held while migrating: servers that start together take
/// turns, and the later ones find the schema done.
const MIGRATION_LOCK: i64 = 0x7761_5f73_746f_7265; // "wa_store"

/// A pool of connections to the database of `uri` (a `postgres://` URL or
/// `key=value` settings), on a schema brought up to date.
///
/// Errors say what failed, never the URI (it may hold a password).
pub async fn connect(uri: &str) -> anyhow::Result<Pool> {
    let config = uri
        .parse::<tokio_postgres::Config>()
        .map_err(|e| anyhow::anyhow!("the PostgreSQL URI is not valid: {e}"))?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(16)
        .build()
        .context("cannot make the PostgreSQL connection pool")?;
    migrate(&pool).await?;
    Ok(pool)
}

/// Runs the migrations not yet applied, under [`MIGRATION_LOCK`].
async fn migrate(pool: &Pool) -> anyhow::Result<()> {
    let mut client = pool.get().await.context("cannot connect to PostgreSQL")?;
    client
        .batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .await
        .context("cannot take the PostgreSQL migration lock")?;
    let ran = embedded::migrations::runner()
        .run_async(&mut **client)
        .await;
    // Released before any error is returned: the connection goes back to the pool.
    let unlocked = client
        .batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .await;
    ran.map_err(|e| anyhow::anyhow!("cannot migrate the PostgreSQL database: {e}"))?;
    unlocked.context("cannot release the PostgreSQL migration lock")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrations_run_once_even_when_servers_start_together() {
        let (server, pool) = testing::database().await;
        // Already migrated: nothing to do.
        connect(&server.uri("wa")).await.unwrap();
        server.create_database("fresh");
        let uri = server.uri("fresh");
        let (first, second) = tokio::join!(connect(&uri), connect(&uri));
        first.unwrap();
        second.unwrap();
        let client = pool.get().await.unwrap();
        let applied: i64 = client
            .query_one("SELECT count(*) FROM refinery_schema_history", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(applied, 1);
    }

    #[tokio::test]
    async fn a_bad_uri_is_refused_without_showing_it() {
        let Err(err) = connect("postgres://user:s3cret@localhost:notaport/db").await else {
            panic!("an invalid port is refused");
        };
        let message = format!("{err:#}");
        assert!(message.contains("not valid"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }
}
