//! PostgreSQL storage, for `--db-uri postgres://…`: one database that several
//! servers and all their accounts share.
//!
//! [`connect`] opens a connection pool and brings the schema up to date with the
//! migrations of `migrations/postgres` (refinery, history in
//! `refinery_schema_history`). Every table is named `wa_…` and keyed first by the
//! account, so that one account's rows never meet another's:
//! [`whatsapp_store::WhatsAppStore`] is one account's WhatsApp session.

pub mod outbox;
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
    // repair those), never corrupts; incoming messages are not kept here.
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

/// Held by the one server using a database: several servers sharing one need
/// leases per account (not built yet), so a second one stops at startup.
const SERVER_LOCK: i64 = 0x7761_5f73_6572_7665; // "wa_serve"

/// The database's server lock, held by a connection of its own for as long as
/// this value lives (the lock goes with the connection, even on a crash). When
/// the connection is lost (Postgres restarted), the lock is taken again; if
/// another server took it meanwhile, this one exits rather than run the same
/// accounts beside it.
pub struct ServerLock {
    keeper: tokio::task::JoinHandle<()>,
    held: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ServerLock {
    /// Whether the lock is held now (not while its connection is being made again).
    pub fn held(&self) -> bool {
        self.held.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for ServerLock {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

/// A connection holding the lock, or why there is none (`Ok(None)`: another
/// server holds it).
async fn take_lock(
    config: &tokio_postgres::Config,
) -> anyhow::Result<Option<(tokio_postgres::Client, impl Future<Output = ()> + use<>)>> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .context("cannot connect to PostgreSQL")?;
    let connection = async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "lost the connection holding the PostgreSQL server lock");
        }
    };
    let connection = tokio::spawn(connection);
    let held: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&SERVER_LOCK])
        .await
        .context("cannot take the PostgreSQL server lock")?
        .get(0);
    let ended = async move {
        let _ = connection.await;
    };
    Ok(held.then_some((client, ended)))
}

/// Takes the database's [`SERVER_LOCK`]; an error when another server holds it.
pub async fn lock_server(uri: &str) -> anyhow::Result<ServerLock> {
    let config = uri
        .parse::<tokio_postgres::Config>()
        .map_err(|e| anyhow::anyhow!("the PostgreSQL URI is not valid: {e}"))?;
    let Some((client, ended)) = take_lock(&config).await? else {
        anyhow::bail!(
            "another server is using this PostgreSQL database (--db-uri); several servers \
             sharing one database are not supported yet: give each its own database"
        );
    };
    let held = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = held.clone();
    let keeper = tokio::spawn(async move {
        let (mut _client, mut ended) = (client, futures_util::future::FutureExt::boxed(ended));
        loop {
            ended.await;
            flag.store(false, std::sync::atomic::Ordering::SeqCst);
            // Lost: take it again as soon as Postgres answers.
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                match take_lock(&config).await {
                    Ok(Some((client, again))) => {
                        tracing::info!("the PostgreSQL server lock is held again");
                        flag.store(true, std::sync::atomic::Ordering::SeqCst);
                        _client = client;
                        ended = futures_util::future::FutureExt::boxed(again);
                        break;
                    }
                    Ok(None) => {
                        tracing::error!(
                            "another server took this PostgreSQL database while the connection \
                             was lost; stopping, so that two servers never run the same accounts"
                        );
                        std::process::exit(1);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "the PostgreSQL server lock is not back yet")
                    }
                }
            }
        }
    });
    Ok(ServerLock { keeper, held })
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
