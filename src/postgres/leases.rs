//! Which server serves which account when several share one database: a lease
//! per account, held as a session-level advisory lock on one connection of the
//! server's own (its lease connection).
//!
//! - **The locks go with the connection.** A server that dies, whose connection
//!   is cut, or that stops answering (frozen: Postgres ends a lease connection
//!   idle for [`LEASE_TTL`], and a live server pings it every second) loses every
//!   lease at once; there is nothing to clean up.
//! - **Fencing.** A lost connection is seen within [`PING_TIMEOUT`] plus a ping
//!   interval, well before Postgres gives the locks away, and reported through
//!   [`Leases::lost`]: the server stops its accounts' clients before taking any
//!   lease again.
//! - **Presence.** Each server also holds a lock of its own on that connection;
//!   the servers alive are those whose presence lock is held.
//! - **Where an account is.** `wa_servers` maps a lease connection's backend pid
//!   to its server's address; `pg_locks` says which backend holds which lease.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::Pool;
use sha2::Digest;
use tokio_postgres::NoTls;
use tracing::{info, warn};

/// How long Postgres keeps the lease connection of a server that stopped
/// pinging (frozen, or cut off) before it ends it and its leases go.
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often a server pings its lease connection.
const PING_EVERY: Duration = Duration::from_secs(1);
/// A ping that takes longer means the connection is lost.
const PING_TIMEOUT: Duration = Duration::from_secs(3);
/// The tables of the servers' registration (shared, not of one account).
pub const SERVER_TABLES: &[&str] = &["wa_servers", "wa_released"];

/// How long a server whose lease connection was lost keeps its accounts running
/// while it tries to take their leases back (Postgres restarted: nobody else
/// may take them meanwhile). Those not back by then are stopped. It ends well
/// before another server may take a lease that lapsed: see [`CLAIM_AFTER`].
pub const RETAKE_WINDOW: Duration = Duration::from_secs(3);

/// A lease another server held is taken only once it has been free this long:
/// its holder, if alive, has seen its connection go (within a ping and its
/// timeout) and stopped the account after [`RETAKE_WINDOW`] by then.
pub const CLAIM_AFTER: Duration = Duration::from_secs(8);

/// After its lease connection came back, a server waits this long before it
/// takes a free lease: any other server that lost its connection at the same
/// moment (Postgres restarted) has taken its own back by then.
const FENCE_GRACE: Duration = Duration::from_secs(5);

/// The lock an earlier version held alone, as the only server on a database.
const OLD_SERVER_LOCK: i64 = 0x7761_5f73_6572_7665; // "wa_serve"

/// The first key of presence locks (two-key advisory locks; "wasv").
const PRESENCE: i32 = 0x7761_7376;

/// The lease key of an account: 64 bits of a digest of its id, so that two ids
/// never share one in practice.
pub fn lease_key(account: &str) -> i64 {
    let digest = sha2::Sha256::digest(format!("wa-account-lease:{account}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// The second key of a server's presence lock.
fn presence_key(server: &str) -> i32 {
    let digest = sha2::Sha256::digest(format!("wa-server:{server}").as_bytes());
    i32::from_be_bytes(digest[..4].try_into().expect("4 bytes"))
}

/// This server's leases.
pub struct Leases {
    config: tokio_postgres::Config,
    pool: Pool,
    server: String,
    address: String,
    inner: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
    /// The accounts held now.
    held: Mutex<HashSet<String>>,
    /// The accounts held when the connection was lost, until they are taken
    /// back ([`Leases::retake`]) or given up ([`Leases::abandon`]).
    lapsed: Mutex<HashSet<String>>,
    /// Bumped each time the lease connection is lost.
    lost: tokio::sync::watch::Sender<u64>,
    /// Whether the lease connection is up.
    up: std::sync::atomic::AtomicBool,
    /// When it came back after being lost (`None`: never lost).
    back_at: Mutex<Option<std::time::Instant>>,
    /// It was up once (a later connect is a return).
    ever_up: std::sync::atomic::AtomicBool,
}

impl Leases {
    /// Opens this server's lease connection to the database of `uri`, takes its
    /// presence lock and registers `address` (how other servers reach this one)
    /// under the id `server`.
    pub async fn start(
        uri: &str,
        pool: Pool,
        server: &str,
        address: &str,
    ) -> anyhow::Result<Arc<Self>> {
        let mut config = uri
            .parse::<tokio_postgres::Config>()
            .map_err(|e| anyhow::anyhow!("the PostgreSQL URI is not valid: {e}"))?;
        let options = format!(
            "-c idle_session_timeout={}ms -c statement_timeout={}ms",
            LEASE_TTL.as_millis(),
            PING_TIMEOUT.as_millis()
        );
        let options = match config.get_options() {
            Some(given) => format!("{given} {options}"),
            None => options,
        };
        config.options(&options);
        config.connect_timeout(PING_TIMEOUT);
        config.keepalives(true);
        config.application_name("whatsapp-api lease");
        let leases = Arc::new(Leases {
            config,
            pool,
            server: server.to_owned(),
            address: address.to_owned(),
            inner: tokio::sync::Mutex::new(None),
            held: Mutex::default(),
            lapsed: Mutex::default(),
            lost: tokio::sync::watch::channel(0).0,
            up: std::sync::atomic::AtomicBool::new(false),
            back_at: Mutex::default(),
            ever_up: std::sync::atomic::AtomicBool::new(false),
        });
        leases.connect().await?;
        tokio::spawn(keep(Arc::downgrade(&leases)));
        Ok(leases)
    }

    /// This server's id.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// How the other servers reach this one.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// (Re)opens the lease connection, takes the presence lock and records which
    /// backend holds this server's leases.
    async fn connect(&self) -> anyhow::Result<()> {
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .context("cannot open the PostgreSQL lease connection")?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                warn!(error = %e, "the PostgreSQL lease connection ended");
            }
        });
        client
            .execute(
                "SELECT pg_advisory_lock($1, $2)",
                &[&PRESENCE, &presence_key(&self.server)],
            )
            .await
            .context("cannot take this server's presence lock")?;
        // The earlier versions' one-server lock, shared: a server of such a
        // version (which holds it alone) keeps the others out, and they it.
        let shared: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock_shared($1)",
                &[&OLD_SERVER_LOCK],
            )
            .await?
            .get(0);
        if !shared {
            anyhow::bail!(
                "a server of an earlier version (one server per database) is using this \
                 PostgreSQL database: stop it first"
            );
        }
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await?
            .get(0);
        // A stopped server's row may name the same pid (Postgres restarted).
        client
            .execute(
                "UPDATE wa_servers SET lease_pid = NULL WHERE lease_pid = $1 AND id <> $2",
                &[&pid, &self.server],
            )
            .await
            .context("cannot register this server")?;
        client
            .execute(
                "INSERT INTO wa_servers (id, address, lease_pid, started_at) \
                 VALUES ($1, $2, $3, extract(epoch FROM now())::bigint) \
                 ON CONFLICT (id) DO UPDATE SET address = EXCLUDED.address, \
                   lease_pid = EXCLUDED.lease_pid",
                &[&self.server, &self.address, &pid],
            )
            .await
            .context("cannot register this server")?;
        *self.inner.lock().await = Some(client);
        if self.ever_up.swap(true, std::sync::atomic::Ordering::SeqCst) {
            *self.back_at.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(std::time::Instant::now());
        }
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Whether the lease connection is up (leases can be held).
    pub fn is_up(&self) -> bool {
        self.up.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether leases may be taken now: the connection is up, and if it was lost,
    /// it has been back for [`FENCE_GRACE`].
    pub fn may_claim(&self) -> bool {
        self.is_up()
            && self
                .back_at
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_none_or(|at| at.elapsed() >= FENCE_GRACE)
    }

    /// Changes each time the lease connection is lost (every lease with it).
    pub fn lost(&self) -> tokio::sync::watch::Receiver<u64> {
        self.lost.subscribe()
    }

    /// The connection is gone: every lease with it.
    async fn mark_lost(&self) {
        let was_up = self.up.swap(false, std::sync::atomic::Ordering::SeqCst);
        *self.inner.lock().await = None;
        let held: Vec<String> = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        self.lapsed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(held);
        if was_up {
            warn!("the PostgreSQL lease connection is lost; taking the leases back");
            self.lost.send_modify(|n| *n += 1);
        }
    }

    /// After the connection came back: takes back the leases held when it was
    /// lost; the accounts whose lease could not be taken back (another server
    /// has it, or the connection went again).
    pub async fn retake(&self) -> Vec<String> {
        let lapsed: Vec<String> = self
            .lapsed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        let mut gone = Vec::new();
        for account in lapsed {
            if !self.take(&account).await {
                gone.push(account);
            }
        }
        gone
    }

    /// Gives up the leases held when the connection was lost (it did not come
    /// back in time): those accounts.
    pub fn abandon(&self) -> Vec<String> {
        self.lapsed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect()
    }

    /// Runs `sql` with `key` on the lease connection; `None` when it is down.
    async fn on_lease(&self, sql: &str, key: i64) -> Option<bool> {
        let guard = self.inner.lock().await;
        let client = guard.as_ref()?;
        let answer = tokio::time::timeout(PING_TIMEOUT, client.query_one(sql, &[&key])).await;
        drop(guard);
        match answer {
            Ok(Ok(row)) => Some(row.get(0)),
            _ => {
                self.mark_lost().await;
                None
            }
        }
    }

    /// Takes the lease of `account`; whether it is held now (`false`: another
    /// server holds it, or the lease connection is down).
    pub async fn try_take(&self, account: &str) -> bool {
        if self.holds(account) {
            return true;
        }
        if !self.may_claim() {
            return false;
        }
        self.take(account).await
    }

    /// Takes the lease of `account` whatever the grace (its own, taken back).
    async fn take(&self, account: &str) -> bool {
        let taken = self
            .on_lease("SELECT pg_try_advisory_lock($1)", lease_key(account))
            .await
            == Some(true);
        if taken {
            self.held
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(account.to_owned());
            // Its hand-over, if any, is done.
            if let Ok(client) = self.pool.get().await {
                let _ = client
                    .execute("DELETE FROM wa_released WHERE account = $1", &[&account])
                    .await;
            }
        }
        taken
    }

    /// Gives the lease of `account` up (its client is stopped).
    pub async fn release(&self, account: &str) {
        let was = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(account);
        if was {
            // Said first, so that no other server sees it free and unmarked.
            if let Ok(client) = self.pool.get().await {
                let _ = client
                    .execute(
                        "INSERT INTO wa_released (account, released_at) \
                         VALUES ($1, extract(epoch FROM now())::bigint) \
                         ON CONFLICT (account) DO UPDATE SET released_at = EXCLUDED.released_at",
                        &[&account],
                    )
                    .await;
            }
            self.on_lease("SELECT pg_advisory_unlock($1)", lease_key(account))
                .await;
        }
    }

    /// Which of `accounts` were given up cleanly in the last minute (see
    /// `wa_released`): they may be taken at once.
    pub async fn released(&self, accounts: &[String]) -> anyhow::Result<HashSet<String>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT account FROM wa_released WHERE account = ANY($1) \
                 AND released_at > extract(epoch FROM now())::bigint - 60",
                &[&accounts],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Whether this server holds the lease of `account`, or is taking it back
    /// after a lost connection.
    pub fn owns(&self, account: &str) -> bool {
        self.holds(account)
            || self
                .lapsed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(account)
    }

    /// Whether this server holds the lease of `account`.
    pub fn holds(&self, account: &str) -> bool {
        self.is_up()
            && self
                .held
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(account)
    }

    /// How many servers are alive (their presence lock is held), this one
    /// included.
    pub async fn live_servers(&self) -> anyhow::Result<usize> {
        let client = self.pool.get().await?;
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND objsubid = 2 AND classid = $1::int4::oid \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[&PRESENCE],
            )
            .await?
            .get(0);
        Ok(usize::try_from(n).unwrap_or(0).max(1))
    }

    /// Who holds each of `accounts`: the holder's address, or `None` when no
    /// server does (the account is free, or moving).
    pub async fn holders(
        &self,
        accounts: &[String],
    ) -> anyhow::Result<HashMap<String, Option<String>>> {
        let keys: Vec<i64> = accounts.iter().map(|a| lease_key(a)).collect();
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT (l.classid::bigint << 32) | l.objid::bigint, s.address \
                 FROM pg_locks l LEFT JOIN wa_servers s ON s.lease_pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
                   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                   AND ((l.classid::bigint << 32) | l.objid::bigint) = ANY($1)",
                &[&keys],
            )
            .await?;
        let held: HashMap<i64, Option<String>> =
            rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        Ok(accounts
            .iter()
            .map(|a| {
                let holder = held.get(&lease_key(a)).cloned();
                // Held by a backend no server registered: held all the same.
                let address = holder.map(|h| h.unwrap_or_default());
                (a.clone(), address)
            })
            .collect())
    }
}

/// Pings the lease connection; when it is lost, reports it and opens it again.
async fn keep(leases: std::sync::Weak<Leases>) {
    let mut pause = PING_EVERY;
    loop {
        tokio::time::sleep(pause).await;
        let Some(leases) = leases.upgrade() else {
            return;
        };
        // Pings every second; while the connection is down, tries it again at
        // once and then every 200 ms, to take the leases back in time.
        pause = match leases.is_up() {
            true => PING_EVERY,
            false => Duration::from_millis(200),
        };
        if leases.is_up() {
            let guard = leases.inner.lock().await;
            let ping = match guard.as_ref() {
                Some(client) => tokio::time::timeout(PING_TIMEOUT, client.simple_query(""))
                    .await
                    .is_ok_and(|r| r.is_ok()),
                None => false,
            };
            drop(guard);
            if !ping {
                leases.mark_lost().await;
                pause = Duration::ZERO;
            }
            continue;
        }
        match leases.connect().await {
            Ok(()) => info!("the PostgreSQL lease connection is back"),
            Err(e) => {
                tracing::debug!(error = %e, "the PostgreSQL lease connection is not back yet")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::testing::database;

    async fn server(uri: &str, pool: &Pool, id: &str) -> Arc<Leases> {
        Leases::start(uri, pool.clone(), id, &format!("http://{id}:3000"))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn one_server_holds_a_lease_until_it_gives_it_up_or_its_connection_goes() {
        let (db, pool) = database().await;
        let uri = db.uri("wa");
        let a = server(&uri, &pool, "a").await;
        let b = server(&uri, &pool, "b").await;
        assert_eq!(a.live_servers().await.unwrap(), 2);
        let accounts = vec!["x".to_owned(), "y".to_owned()];
        assert!(a.try_take("x").await);
        assert!(!b.try_take("x").await, "held by a");
        assert!(b.try_take("y").await);
        let holders = b.holders(&accounts).await.unwrap();
        assert_eq!(holders["x"].as_deref(), Some("http://a:3000"));
        assert_eq!(holders["y"].as_deref(), Some("http://b:3000"));
        assert!(a.holds("x") && !a.holds("y"));

        // Given up: free, and the other server may take it.
        a.release("x").await;
        assert_eq!(b.holders(&accounts).await.unwrap()["x"], None);
        assert!(b.try_take("x").await);
        assert!(!a.try_take("x").await);

        // b's lease connection is cut: b is told, holds nothing, and a may take
        // both; b's connection comes back holding none of them.
        let mut lost = b.lost();
        let client = pool.get().await.unwrap();
        client
            .execute(
                "SELECT pg_terminate_backend(lease_pid) FROM wa_servers WHERE id = 'b'",
                &[],
            )
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), lost.changed())
            .await
            .expect("b is told")
            .unwrap();
        assert!(!b.holds("x") && !b.holds("y"));
        assert!(a.try_take("x").await && a.try_take("y").await);
        tokio::time::timeout(Duration::from_secs(10), async {
            while !b.is_up() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("b's lease connection is back");
        assert!(!b.try_take("x").await);
        assert_eq!(b.live_servers().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn another_database_on_the_same_postgres_is_not_counted() {
        let (db, pool) = database().await;
        db.create_database("other");
        let other_uri = db.uri("other");
        let other_pool = crate::postgres::connect(&other_uri).await.unwrap();
        let elsewhere = server(&other_uri, &other_pool, "z").await;
        assert!(elsewhere.try_take("x").await);
        let a = server(&db.uri("wa"), &pool, "a").await;
        assert_eq!(a.live_servers().await.unwrap(), 1);
        assert_eq!(a.holders(&["x".to_owned()]).await.unwrap()["x"], None);
        assert!(a.try_take("x").await, "its own database's lease");
    }

    #[test]
    fn lease_keys_differ_per_account() {
        assert_ne!(lease_key("a"), lease_key("b"));
        assert_eq!(lease_key("a"), lease_key("a"));
    }
}
