//! The durable outbox: SQLite (WAL) through `rusqlite`, schema in `migrations/`.
//! Calls are blocking and short; async callers go through [`OutboxStore`], which
//! runs them on the blocking pool, or uses the PostgreSQL outbox instead
//! ([`crate::postgres::outbox`]).

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};

use crate::postgres::outbox::{PgOutbox, PgOutboxError};

/// The migrations, in order; `user_version` records how many ran.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!(
            "../../migrations/outbox/0001_webhook_outbox.sql"
        )),
        M::up(include_str!(
            "../../migrations/outbox/0002_webhook_done.sql"
        )),
    ])
}

/// An event to store, with the URLs it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub event_id: String,
    pub chat: String,
    pub body: String,
}

/// A delivery that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub seq: i64,
    pub event_id: String,
    pub chat: String,
    pub body: String,
    pub attempts: u32,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub pending: u64,
    pub dead: u64,
}

/// One URL's deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlCounts {
    pub url: String,
    /// Waiting (retrying ones included).
    pub pending: u64,
    /// Waiting after at least one failed attempt.
    pub retrying: u64,
    pub dead: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("the webhook outbox is full ({0} events waiting)")]
    Full(u64),
    #[error("cannot create the webhook outbox's folder: {0}")]
    Folder(std::io::Error),
    #[error("webhook outbox: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("webhook outbox migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[error("webhook outbox (PostgreSQL): {0}")]
    Postgres(String),
}

impl From<PgOutboxError> for OutboxError {
    fn from(e: PgOutboxError) -> Self {
        match e {
            PgOutboxError::Full(waiting) => OutboxError::Full(waiting),
            PgOutboxError::Postgres(why) => OutboxError::Postgres(why),
        }
    }
}

/// Where an account's webhook events wait: its SQLite outbox (blocking calls,
/// run on the blocking pool here), or its rows in PostgreSQL (`--db-uri`), where
/// whichever server holds the account next finds them.
#[derive(Clone)]
pub enum OutboxStore {
    Sqlite(Arc<Outbox>),
    Postgres(PgOutbox),
}

/// Runs `work` on the SQLite outbox on the blocking pool.
async fn blocking<T: Send + 'static>(
    outbox: &Arc<Outbox>,
    work: impl FnOnce(&Outbox) -> Result<T, OutboxError> + Send + 'static,
) -> Result<T, OutboxError> {
    let outbox = outbox.clone();
    tokio::task::spawn_blocking(move || work(&outbox))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

impl OutboxStore {
    /// See [`Outbox::enqueue`].
    pub async fn enqueue(
        &self,
        events: Vec<NewEvent>,
        urls: Vec<String>,
        now: i64,
    ) -> Result<usize, OutboxError> {
        match self {
            OutboxStore::Sqlite(o) => blocking(o, move |o| o.enqueue(&events, &urls, now)).await,
            OutboxStore::Postgres(o) => Ok(o.enqueue(&events, &urls, now).await?),
        }
    }

    /// See [`Outbox::retain_urls`].
    pub async fn retain_urls(&self, urls: Vec<String>) -> Result<usize, OutboxError> {
        match self {
            OutboxStore::Sqlite(o) => blocking(o, move |o| o.retain_urls(&urls)).await,
            OutboxStore::Postgres(o) => Ok(o.retain_urls(&urls).await?),
        }
    }

    /// The due heads for `url` (see [`Outbox::due`]), or else when the next one
    /// falls due (see [`Outbox::next_due_at`]).
    pub async fn due_or_next(
        &self,
        url: String,
        now: i64,
        limit: usize,
    ) -> Result<(Vec<Due>, Option<i64>), OutboxError> {
        match self {
            OutboxStore::Sqlite(o) => {
                blocking(o, move |o| {
                    let due = o.due(&url, now, limit)?;
                    let next = match due.is_empty() {
                        true => o.next_due_at(&url)?,
                        false => None,
                    };
                    Ok((due, next))
                })
                .await
            }
            OutboxStore::Postgres(o) => {
                let due = o.due(&url, now, limit).await?;
                let next = match due.is_empty() {
                    true => o.next_due_at(&url).await?,
                    false => None,
                };
                Ok((due, next))
            }
        }
    }

    /// See [`Outbox::record`].
    pub async fn record(
        &self,
        url: String,
        records: Vec<Record>,
        now: i64,
    ) -> Result<(), OutboxError> {
        match self {
            OutboxStore::Sqlite(o) => blocking(o, move |o| o.record(&url, &records, now)).await,
            OutboxStore::Postgres(o) => Ok(o.record(&url, &records, now).await?),
        }
    }

    /// See [`Outbox::forget_done`].
    pub async fn forget_done(&self, before: i64) -> Result<usize, OutboxError> {
        match self {
            OutboxStore::Sqlite(o) => blocking(o, move |o| o.forget_done(before)).await,
            OutboxStore::Postgres(o) => Ok(o.forget_done(before).await?),
        }
    }

    /// See [`Outbox::url_counts`].
    pub async fn url_counts(&self) -> Result<(Vec<UrlCounts>, u64), OutboxError> {
        match self {
            OutboxStore::Sqlite(o) => blocking(o, |o| o.url_counts()).await,
            OutboxStore::Postgres(o) => Ok(o.url_counts().await?),
        }
    }

    /// See [`Outbox::counts`].
    pub async fn counts(&self) -> Result<Counts, OutboxError> {
        match self {
            OutboxStore::Sqlite(o) => blocking(o, |o| o.counts()).await,
            OutboxStore::Postgres(o) => Ok(o.counts().await?),
        }
    }
}

pub struct Outbox {
    /// Writes (WAL: one writer).
    conn: Mutex<Connection>,
    /// Reads, which WAL lets run beside a write: the delivery workers' scans never
    /// hold up the incoming messages' inserts.
    reader: Mutex<Connection>,
    max_events: u64,
}

/// The outcome of one attempt, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A 2xx: done; the event goes when no URL still needs it, and its id is
    /// remembered so that a redelivered message is not sent again.
    Delivered { seq: i64 },
    /// A failed attempt, retried at `next_at`.
    Retry {
        seq: i64,
        next_at: i64,
        error: String,
    },
    /// A final failure: kept, counted as dead, never retried.
    Dead { seq: i64, error: String },
}

/// Each outbox connection's page cache, as SQLite's `cache_size` (negative: KiB).
const OUTBOX_CACHE_KIB: i64 = -256;

impl Outbox {
    /// Opens (or creates) the outbox at `path` and brings its schema up to date.
    pub fn open(path: &Path, max_events: u64) -> Result<Self, OutboxError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // The outbox is a queue of recent rows: 256 KiB of page cache for each of its
        // two connections (SQLite's default is 2 MiB), per account.
        conn.pragma_update(None, "cache_size", OUTBOX_CACHE_KIB)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrations().to_latest(&mut conn)?;
        let reader = Connection::open(path)?;
        reader.pragma_update(None, "query_only", "ON")?;
        reader.pragma_update(None, "cache_size", OUTBOX_CACHE_KIB)?;
        reader.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Outbox {
            conn: Mutex::new(conn),
            reader: Mutex::new(reader),
            max_events,
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `events`, each with one delivery per URL, in one transaction (all or
    /// none). An event id already stored, or delivered within the retry window, is
    /// skipped: WhatsApp may deliver a message again. Returns how many were new.
    pub fn enqueue(
        &self,
        events: &[NewEvent],
        urls: &[String],
        now: i64,
    ) -> Result<usize, OutboxError> {
        let mut conn = self.conn();
        let waiting: i64 =
            conn.query_row("SELECT COUNT(*) FROM webhook_events", [], |r| r.get(0))?;
        let waiting = waiting as u64;
        if waiting + events.len() as u64 > self.max_events {
            return Err(OutboxError::Full(waiting));
        }
        let tx = conn.transaction()?;
        let mut added = 0;
        {
            let mut insert_event = tx.prepare_cached(
                "INSERT OR IGNORE INTO webhook_events (event_id, chat, body, created_at) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut insert_delivery = tx.prepare_cached(
                "INSERT INTO webhook_deliveries (event_seq, url, next_attempt_at) VALUES (?1, ?2, ?3)",
            )?;
            let mut done = tx.prepare_cached("SELECT 1 FROM webhook_done WHERE event_id = ?1")?;
            for event in events {
                if done.exists(params![event.event_id])? {
                    continue;
                }
                if insert_event.execute(params![event.event_id, event.chat, event.body, now])? == 0
                {
                    continue;
                }
                let seq = tx.last_insert_rowid();
                for url in urls {
                    insert_delivery.execute(params![seq, url, now])?;
                }
                added += 1;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    /// Forgets deliveries to URLs no longer configured, and events left with none.
    pub fn retain_urls(&self, urls: &[String]) -> Result<usize, OutboxError> {
        let conn = self.conn();
        let placeholders = vec!["?"; urls.len()].join(",");
        let removed = if urls.is_empty() {
            conn.execute("DELETE FROM webhook_deliveries", [])?
        } else {
            conn.execute(
                &format!("DELETE FROM webhook_deliveries WHERE url NOT IN ({placeholders})"),
                rusqlite::params_from_iter(urls),
            )?
        };
        conn.execute(
            "DELETE FROM webhook_events WHERE seq NOT IN (SELECT event_seq FROM webhook_deliveries)",
            [],
        )?;
        Ok(removed)
    }

    /// The oldest live delivery of each chat for `url`, if it is due by `now`; at
    /// most `limit`, oldest first. Later events of a chat wait for its head.
    pub fn due(&self, url: &str, now: i64, limit: usize) -> Result<Vec<Due>, OutboxError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT e.seq, e.event_id, e.chat, e.body, d.attempts, e.created_at, d.next_attempt_at \
             FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.event_seq \
             WHERE d.url = ?1 AND d.dead = 0 AND d.event_seq IN ( \
                 SELECT MIN(d2.event_seq) FROM webhook_deliveries d2 \
                 JOIN webhook_events e2 ON e2.seq = d2.event_seq \
                 WHERE d2.url = ?1 AND d2.dead = 0 GROUP BY e2.chat) \
             AND d.next_attempt_at <= ?2 ORDER BY e.seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![url, now, limit as i64], |r| {
            Ok(Due {
                seq: r.get(0)?,
                event_id: r.get(1)?,
                chat: r.get(2)?,
                body: r.get(3)?,
                attempts: r.get(4)?,
                created_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When the next delivery for `url` falls due (of the heads of its chats).
    pub fn next_due_at(&self, url: &str) -> Result<Option<i64>, OutboxError> {
        let conn = self.reader();
        Ok(conn
            .query_row(
                "SELECT MIN(d.next_attempt_at) FROM webhook_deliveries d \
                 WHERE d.url = ?1 AND d.dead = 0 AND d.event_seq IN ( \
                     SELECT MIN(d2.event_seq) FROM webhook_deliveries d2 \
                     JOIN webhook_events e2 ON e2.seq = d2.event_seq \
                     WHERE d2.url = ?1 AND d2.dead = 0 GROUP BY e2.chat)",
                params![url],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten())
    }

    /// Records the outcomes of attempts for `url` in one transaction.
    pub fn record(&self, url: &str, records: &[Record], now: i64) -> Result<(), OutboxError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for record in records {
            match record {
                Record::Delivered { seq } => {
                    tx.prepare_cached(
                        "DELETE FROM webhook_deliveries WHERE event_seq = ?1 AND url = ?2",
                    )?
                    .execute(params![seq, url])?;
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO webhook_done (event_id, done_at) \
                         SELECT event_id, ?2 FROM webhook_events WHERE seq = ?1 AND NOT EXISTS \
                         (SELECT 1 FROM webhook_deliveries WHERE event_seq = ?1)",
                    )?
                    .execute(params![seq, now])?;
                    tx.prepare_cached(
                        "DELETE FROM webhook_events WHERE seq = ?1 AND NOT EXISTS \
                         (SELECT 1 FROM webhook_deliveries WHERE event_seq = ?1)",
                    )?
                    .execute(params![seq])?;
                }
                Record::Retry {
                    seq,
                    next_at,
                    error,
                } => {
                    tx.prepare_cached(
                        "UPDATE webhook_deliveries SET attempts = attempts + 1, \
                         next_attempt_at = ?3, last_error = ?4 WHERE event_seq = ?1 AND url = ?2",
                    )?
                    .execute(params![seq, url, next_at, error])?;
                }
                Record::Dead { seq, error } => {
                    tx.prepare_cached(
                        "UPDATE webhook_deliveries SET attempts = attempts + 1, dead = 1, \
                         last_error = ?3 WHERE event_seq = ?1 AND url = ?2",
                    )?
                    .execute(params![seq, url, error])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    #[cfg(test)]
    fn delivered(&self, seq: i64, url: &str, now: i64) -> Result<(), OutboxError> {
        self.record(url, &[Record::Delivered { seq }], now)
    }

    /// Forgets delivered event ids older than `before`.
    pub fn forget_done(&self, before: i64) -> Result<usize, OutboxError> {
        Ok(self.conn().execute(
            "DELETE FROM webhook_done WHERE done_at < ?1",
            params![before],
        )?)
    }

    #[cfg(test)]
    fn retry(&self, seq: i64, url: &str, next_at: i64, error: &str) -> Result<(), OutboxError> {
        let error = error.to_owned();
        self.record(
            url,
            &[Record::Retry {
                seq,
                next_at,
                error,
            }],
            0,
        )
    }

    #[cfg(test)]
    fn dead(&self, seq: i64, url: &str, error: &str) -> Result<(), OutboxError> {
        let error = error.to_owned();
        self.record(url, &[Record::Dead { seq, error }], 0)
    }

    /// Deliveries per URL, and how many events the outbox holds.
    pub fn url_counts(&self) -> Result<(Vec<UrlCounts>, u64), OutboxError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT url, COALESCE(SUM(dead = 0), 0), COALESCE(SUM(dead = 0 AND attempts > 0), 0), \
             COALESCE(SUM(dead = 1), 0) FROM webhook_deliveries GROUP BY url ORDER BY url",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(UrlCounts {
                url: r.get(0)?,
                pending: r.get::<_, i64>(1)? as u64,
                retrying: r.get::<_, i64>(2)? as u64,
                dead: r.get::<_, i64>(3)? as u64,
            })
        })?;
        let counts = rows.collect::<Result<_, _>>()?;
        let events: i64 =
            conn.query_row("SELECT COUNT(*) FROM webhook_events", [], |r| r.get(0))?;
        Ok((counts, events as u64))
    }

    pub fn counts(&self) -> Result<Counts, OutboxError> {
        let conn = self.reader();
        let (pending, dead) = conn.query_row(
            "SELECT COALESCE(SUM(dead = 0), 0), COALESCE(SUM(dead = 1), 0) FROM webhook_deliveries",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
        )?;
        Ok(Counts {
            pending: pending as u64,
            dead: dead as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, chat: &str) -> NewEvent {
        NewEvent {
            event_id: id.into(),
            chat: chat.into(),
            body: format!("{{\"id\":\"{id}\"}}"),
        }
    }

    fn urls() -> Vec<String> {
        vec!["http://a".into(), "http://b".into()]
    }

    #[test]
    fn the_migrations_are_valid() {
        migrations().validate().unwrap();
    }

    #[test]
    fn each_chat_is_delivered_in_order_and_chats_do_not_wait_for_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(&dir.path().join("o.db"), 100).unwrap();
        let events = [event("1", "x"), event("2", "x"), event("3", "y")];
        assert_eq!(outbox.enqueue(&events, &urls(), 10).unwrap(), 3);
        let due = outbox.due("http://a", 10, 10).unwrap();
        let ids: Vec<&str> = due.iter().map(|d| d.event_id.as_str()).collect();
        assert_eq!(ids, ["1", "3"], "the head of each chat");
        // The head of x fails: x waits, y does not.
        outbox.retry(due[0].seq, "http://a", 20, "503").unwrap();
        outbox.delivered(due[1].seq, "http://a", 10).unwrap();
        assert!(outbox.due("http://a", 15, 10).unwrap().is_empty());
        // Event 2 is due but waits behind 1, so the next wake-up is 1's retry.
        assert_eq!(outbox.next_due_at("http://a").unwrap(), Some(20));
        let later = outbox.due("http://a", 20, 10).unwrap();
        assert_eq!(later.len(), 1);
        assert_eq!((later[0].event_id.as_str(), later[0].attempts), ("1", 1));
        outbox.delivered(later[0].seq, "http://a", 20).unwrap();
        assert_eq!(outbox.due("http://a", 20, 10).unwrap()[0].event_id, "2");
        // URL b still has all three.
        assert_eq!(
            outbox.counts().unwrap(),
            Counts {
                pending: 4,
                dead: 0
            }
        );
    }

    #[test]
    fn a_redelivered_message_is_stored_once_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        {
            let outbox = Outbox::open(&path, 100).unwrap();
            outbox.enqueue(&[event("1", "x")], &urls(), 1).unwrap();
            assert_eq!(outbox.enqueue(&[event("1", "x")], &urls(), 2).unwrap(), 0);
        }
        let outbox = Outbox::open(&path, 100).unwrap();
        assert_eq!(outbox.counts().unwrap().pending, 2);
        // Dropping URL b on restart forgets its deliveries only.
        assert_eq!(outbox.retain_urls(&["http://a".into()]).unwrap(), 1);
        let due = outbox.due("http://a", 5, 10).unwrap();
        outbox.delivered(due[0].seq, "http://a", 5).unwrap();
        assert_eq!(outbox.counts().unwrap(), Counts::default());
        // Delivered: the same message coming again is not sent again…
        assert_eq!(outbox.enqueue(&[event("1", "x")], &urls(), 6).unwrap(), 0);
        // …until the retry window has passed.
        assert_eq!(outbox.forget_done(5).unwrap(), 0);
        assert_eq!(outbox.forget_done(6).unwrap(), 1);
        assert_eq!(outbox.enqueue(&[event("1", "x")], &urls(), 7).unwrap(), 1);
    }

    #[test]
    fn a_dead_delivery_is_counted_and_no_longer_due_and_a_full_outbox_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(&dir.path().join("o.db"), 2).unwrap();
        outbox
            .enqueue(&[event("1", "x"), event("2", "x")], &urls(), 1)
            .unwrap();
        let due = outbox.due("http://a", 1, 10).unwrap();
        outbox.dead(due[0].seq, "http://a", "HTTP 400").unwrap();
        assert_eq!(outbox.due("http://a", 1, 10).unwrap()[0].event_id, "2");
        assert_eq!(
            outbox.counts().unwrap(),
            Counts {
                pending: 3,
                dead: 1
            }
        );
        assert!(matches!(
            outbox.enqueue(&[event("3", "y")], &urls(), 1),
            Err(OutboxError::Full(2))
        ));
        let next = outbox.due("http://a", 1, 10).unwrap();
        outbox
            .retry(next[0].seq, "http://a", 5, "HTTP 503")
            .unwrap();
        let (per_url, events) = outbox.url_counts().unwrap();
        assert_eq!(events, 2);
        assert_eq!(
            per_url[0],
            UrlCounts {
                url: "http://a".into(),
                pending: 1,
                retrying: 1,
                dead: 1
            }
        );
        assert_eq!((per_url[1].pending, per_url[1].dead), (2, 0));
    }
}
