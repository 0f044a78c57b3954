//! PostgreSQL storage, for `--db-uri postgres://…`: one database that several
//! servers and all their accounts share.
//!
//! [`connect`] opens a connection pool and brings the schema up to date with the
//! migrations of `migrations/postgres` (refinery, history in
//! `refinery_schema_history`). Every table is named `wa_…` and keyed first by the
//! account, so that one account's rows never meet another's:
//! [`whatsapp_store::WhatsAppStore`] is one account's WhatsApp session.

pub mod leases;
pub mod messages;
pub mod outbox;
pub mod registry;
pub mod whatsapp_store;
pub mod whatsmeow;

#[cfg(any(test, feature = "e2e"))]
pub mod testing;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

/// Longest wait for a connection, new or from the pool.
const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The advisory lock held while migrating: servers that start together take
/// turns, and the later ones find the schema done.
const MIGRATION_LOCK: i64 = 0x7761_5f73_746f_7265; // "wa_store"

/// A pool of connections to the database of `uri` (a `postgres://` URL or
/// `key=value` settings), on a schema brought up to date.
///
/// Errors say what failed, never the URI (it may hold a password).
pub async fn connect(uri: &str) -> anyhow::Result<Pool> {
    let mut config = uri
        .parse::<tokio_postgres::Config>()
        .map_err(|e| anyhow::anyhow!("the PostgreSQL URI is not valid: {e}"))?;
    // The sessions' durability is the SQLite store's (WAL, synchronous=NORMAL): a
    // commit is not flushed to disk before it returns. A crash of Postgres itself
    // may lose its last fraction of a second of session updates (WhatsApp's retries
    // repair those), never corrupts. Incoming messages' webhook events are
    // the exception: their commit waits for the flush (`outbox::PgOutbox::enqueue`).
    // And no wait without end: a statement gives up after 30 s, a connection
    // attempt after 10 s, a dead peer is found by TCP keepalives.
    let ours = "-c synchronous_commit=off -c statement_timeout=30s";
    let options = match config.get_options() {
        Some(given) => format!("{given} {ours}"),
        None => ours.to_owned(),
    };
    config.options(&options);
    config.connect_timeout(WAIT);
    config.keepalives(true);
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(16)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(WAIT))
        .create_timeout(Some(WAIT))
        .recycle_timeout(Some(WAIT))
        .build()
        .context("cannot make the PostgreSQL connection pool")?;
    migrate(&pool).await?;
    Ok(pool)
}

/// `e` with its causes: tokio-postgres's own text names only the kind of failure
/// ("db error"), its cause says which. A cause that the text already ends with
/// (deadpool repeats its backend's error) is not said twice. Neither holds the
/// connection URI.
pub(crate) fn described(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.ends_with(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
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
        let embedded = embedded::migrations::runner().get_migrations().len();
        assert_eq!(applied, embedded as i64);
        assert!(embedded >= 2);
    }

    #[tokio::test]
    async fn session_commits_are_not_flushed_before_they_return() {
        let (_server, pool) = testing::database().await;
        let client = pool.get().await.unwrap();
        let setting: String = client
            .query_one("SHOW synchronous_commit", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(setting, "off");
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
