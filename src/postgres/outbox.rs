//! One account's webhook outbox in PostgreSQL, beside the other accounts' in the
//! same tables (`migrations/postgres/V2__webhook_outbox.sql`): the same queue as
//! the SQLite [`Outbox`](crate::webhook::outbox::Outbox), with the same rules
//! (dedup, the size limit, per-chat order, retries, dead deliveries, delivered ids
//! remembered), every statement naming the account.
//!
//! SQLite lets one writer in at a time; here the writes of one account (enqueue,
//! record, retain_urls, forget_account) take a transaction-scoped advisory lock of
//! that account, so that they see each other whole as SQLite's do. Without it, two
//! URL workers recording the last two deliveries of one event at once would each
//! still see the other's row, and the event would stay for ever, never remembered
//! as delivered.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use deadpool_postgres::{Object, Pool, Transaction};

use crate::webhook::outbox::{Counts, Due, NewEvent, Record, UrlCounts};

/// Every table of the outbox, in an order they can be emptied in (deliveries
/// before their events).
pub const OUTBOX_TABLES: &[&str] = &[
    "wa_webhook_deliveries",
    "wa_webhook_events",
    "wa_webhook_done",
];

/// The first key of the outbox's advisory locks ("waob"); the second is a hash of
/// the account. Two-key advisory locks never meet the one-key ones of
/// `postgres/mod.rs` (migration, server lock); two accounts whose names hash alike
/// only take turns.
const OUTBOX_LOCK: i32 = 0x7761_6f62;

/// How long storing incoming messages' events keeps trying to reach Postgres.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// The head of each chat for the URL `$2` of the account `$1`: its oldest live
/// delivery (later events of a chat wait for it). One sort of the live
/// deliveries; a subquery per row, as SQLite's query is written, took seconds a
/// call with thousands waiting.
const HEADS: &str = "SELECT DISTINCT ON (e.chat) d.event_seq, d.attempts, d.next_attempt_at \
     FROM wa_webhook_deliveries d \
     JOIN wa_webhook_events e ON e.account = d.account AND e.seq = d.event_seq \
     WHERE d.account = $1 AND d.url = $2 AND NOT d.dead \
     ORDER BY e.chat, d.event_seq";

/// Takes the account's outbox lock until the transaction ends.
const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock($1, hashtext($2))";

/// Why an outbox operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PgOutboxError {
    /// The batch would take the account's outbox past `max_events`; the number
    /// is how many events wait. Incoming messages wait until it drains.
    #[error("the webhook outbox is full ({0} events waiting)")]
    Full(u64),
    /// A failed statement or connection; the text never holds the connection URI.
    #[error("webhook outbox (PostgreSQL): {0}")]
    Postgres(String),
}

impl From<tokio_postgres::Error> for PgOutboxError {
    fn from(e: tokio_postgres::Error) -> Self {
        PgOutboxError::Postgres(super::described(&e))
    }
}

impl From<deadpool_postgres::PoolError> for PgOutboxError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        PgOutboxError::Postgres(super::described(&e))
    }
}

/// A row count as the outbox reports it (counts are never negative).
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Rows changed, as the SQLite outbox's `usize` results.
fn changed(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The webhook outbox of the account `account` in the database of `pool`.
#[derive(Clone)]
pub struct PgOutbox {
    pool: Pool,
    account: String,
    /// Events held at most (of this account); more are refused with
    /// [`PgOutboxError::Full`].
    max_events: u64,
}

impl std::fmt::Debug for PgOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgOutbox({})", self.account)
    }
}

impl PgOutbox {
    /// The outbox of `account`, holding at most `max_events` events. The schema is
    /// the pool's (`postgres::connect` migrated it).
    pub fn new(pool: Pool, account: &str, max_events: u64) -> Self {
        Self {
            pool,
            account: account.to_owned(),
            max_events,
        }
    }

    async fn client(&self) -> Result<Object, PgOutboxError> {
        Ok(self.pool.get().await?)
    }

    /// Stores `events`, each with one delivery per URL, in one transaction (all or
    /// none). An event id already stored, or delivered within the retry window, is
    /// skipped: WhatsApp may deliver a message again. Returns how many were new.
    ///
    /// A failure to reach Postgres is retried for up to [`PATIENCE`] (a restart
    /// takes a second or two): the messages stay unacknowledged meanwhile, and a
    /// redelivered copy might no longer decrypt once the session moved on.
    pub async fn enqueue(
        &self,
        events: &[NewEvent],
        urls: &[String],
        now: i64,
    ) -> Result<usize, PgOutboxError> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut pause = std::time::Duration::from_millis(100);
        loop {
            match self.enqueue_once(events, urls, now).await {
                Err(PgOutboxError::Postgres(why))
                    if tokio::time::Instant::now() + pause < deadline =>
                {
                    tracing::debug!(error = %why, "the webhook outbox cannot be written yet; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    async fn enqueue_once(
        &self,
        events: &[NewEvent],
        urls: &[String],
        now: i64,
    ) -> Result<usize, PgOutboxError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Flushed to disk before the commit returns (the pool's default is not):
        // the messages are acknowledged to WhatsApp once this returns.
        tx.batch_execute("SET LOCAL synchronous_commit = on")
            .await?;
        lock(&tx, &self.account).await?;
        let waiting = tx
            .prepare_cached("SELECT count(*) FROM wa_webhook_events WHERE account = $1")
            .await?;
        let waiting = count(tx.query_one(&waiting, &[&self.account]).await?.try_get(0)?);
        // As SQLite: the batch counts whole, repeated and known ids included.
        if waiting.saturating_add(events.len() as u64) > self.max_events {
            return Err(PgOutboxError::Full(waiting));
        }
        // The first of an id repeated within the batch is the one stored.
        let mut seen = HashSet::with_capacity(events.len());
        let events: Vec<&NewEvent> = events
            .iter()
            .filter(|e| seen.insert(e.event_id.as_str()))
            .collect();
        let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        let chats: Vec<&str> = events.iter().map(|e| e.chat.as_str()).collect();
        let bodies: Vec<&str> = events.iter().map(|e| e.body.as_str()).collect();
        // Inserted in the batch's order, so that `seq` follows it.
        let insert_events = tx
            .prepare_cached(
                "INSERT INTO wa_webhook_events (account, event_id, chat, body, created_at) \
                 SELECT $1::text, e.event_id, e.chat, e.body, $5::bigint \
                 FROM UNNEST($2::text[], $3::text[], $4::text[]) \
                     WITH ORDINALITY AS e(event_id, chat, body, n) \
                 WHERE NOT EXISTS (SELECT 1 FROM wa_webhook_done d \
                     WHERE d.account = $1 AND d.event_id = e.event_id) \
                 ORDER BY e.n \
                 ON CONFLICT (account, event_id) DO NOTHING \
                 RETURNING seq",
            )
            .await?;
        let seqs = tx
            .query(
                &insert_events,
                &[&self.account, &ids, &chats, &bodies, &now],
            )
            .await?
            .iter()
            .map(|row| row.try_get::<_, i64>(0))
            .collect::<Result<Vec<i64>, _>>()?;
        if !seqs.is_empty() && !urls.is_empty() {
            let insert_deliveries = tx
                .prepare_cached(
                    "INSERT INTO wa_webhook_deliveries (account, event_seq, url, next_attempt_at) \
                     SELECT $1::text, s.seq, u.url, $4::bigint \
                     FROM UNNEST($2::int8[]) AS s(seq) CROSS JOIN UNNEST($3::text[]) AS u(url)",
                )
                .await?;
            tx.execute(&insert_deliveries, &[&self.account, &seqs, &urls, &now])
                .await?;
        }
        tx.commit().await?;
        Ok(seqs.len())
    }

    /// Forgets deliveries to URLs no longer configured, and events left with none.
    /// Returns how many deliveries were forgotten.
    pub async fn retain_urls(&self, urls: &[String]) -> Result<usize, PgOutboxError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        lock(&tx, &self.account).await?;
        // An empty list keeps no URL: `url = ANY('{}')` is false for every row.
        let deliveries = tx
            .prepare_cached(
                "DELETE FROM wa_webhook_deliveries \
                 WHERE account = $1 AND NOT (url = ANY($2::text[]))",
            )
            .await?;
        let removed = tx.execute(&deliveries, &[&self.account, &urls]).await?;
        let events = tx
            .prepare_cached(
                "DELETE FROM wa_webhook_events e WHERE e.account = $1 AND NOT EXISTS \
                 (SELECT 1 FROM wa_webhook_deliveries d \
                  WHERE d.account = $1 AND d.event_seq = e.seq)",
            )
            .await?;
        tx.execute(&events, &[&self.account]).await?;
        tx.commit().await?;
        Ok(changed(removed))
    }

    /// The oldest live delivery of each chat for `url`, if it is due by `now`; at
    /// most `limit`, oldest first. Later events of a chat wait for its head.
    pub async fn due(&self, url: &str, now: i64, limit: usize) -> Result<Vec<Due>, PgOutboxError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "WITH heads AS ({HEADS}) \
                 SELECT e.seq, e.event_id, e.chat, e.body, h.attempts, e.created_at \
                 FROM heads h JOIN wa_webhook_events e ON e.account = $1 AND e.seq = h.event_seq \
                 WHERE h.next_attempt_at <= $3 ORDER BY e.seq LIMIT $4"
            ))
            .await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&statement, &[&self.account, &url, &now, &limit])
            .await?;
        rows.iter()
            .map(|row| -> Result<Due, PgOutboxError> {
                let attempts: i32 = row.try_get(4)?;
                Ok(Due {
                    seq: row.try_get(0)?,
                    event_id: row.try_get(1)?,
                    chat: row.try_get(2)?,
                    body: row.try_get(3)?,
                    // Counted up from 0, so never negative.
                    attempts: u32::try_from(attempts).unwrap_or(0),
                    created_at: row.try_get(5)?,
                })
            })
            .collect()
    }

    /// When the next delivery for `url` falls due (of the heads of its chats).
    pub async fn next_due_at(&self, url: &str) -> Result<Option<i64>, PgOutboxError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "WITH heads AS ({HEADS}) SELECT MIN(next_attempt_at) FROM heads"
            ))
            .await?;
        let row = client.query_one(&statement, &[&self.account, &url]).await?;
        Ok(row.try_get(0)?)
    }

    /// Records the outcomes of attempts for `url` in one transaction.
    pub async fn record(
        &self,
        url: &str,
        records: &[Record],
        now: i64,
    ) -> Result<(), PgOutboxError> {
        if records.is_empty() {
            return Ok(());
        }
        let (delivered, failed) = settle(records);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        lock(&tx, &self.account).await?;
        if !failed.is_empty() {
            let seqs: Vec<i64> = failed.keys().copied().collect();
            let attempts: Vec<i32> = failed.values().map(|f| f.attempts).collect();
            let next_at: Vec<Option<i64>> = failed.values().map(|f| f.next_at).collect();
            let dead: Vec<bool> = failed.values().map(|f| f.dead).collect();
            let errors: Vec<&str> = failed.values().map(|f| f.error).collect();
            let update = tx
                .prepare_cached(
                    "UPDATE wa_webhook_deliveries d SET attempts = d.attempts + f.attempts, \
                     next_attempt_at = COALESCE(f.next_at, d.next_attempt_at), \
                     dead = d.dead OR f.dead, last_error = f.error \
                     FROM UNNEST($3::int8[], $4::int4[], $5::int8[], $6::bool[], $7::text[]) \
                         AS f(seq, attempts, next_at, dead, error) \
                     WHERE d.account = $1 AND d.url = $2 AND d.event_seq = f.seq",
                )
                .await?;
            tx.execute(
                &update,
                &[
                    &self.account,
                    &url,
                    &seqs,
                    &attempts,
                    &next_at,
                    &dead,
                    &errors,
                ],
            )
            .await?;
        }
        if !delivered.is_empty() {
            let delete = tx
                .prepare_cached(
                    "DELETE FROM wa_webhook_deliveries \
                     WHERE account = $1 AND url = $2 AND event_seq = ANY($3::int8[])",
                )
                .await?;
            tx.execute(&delete, &[&self.account, &url, &delivered])
                .await?;
            // An event no URL still needs goes, and its id is remembered (an id
            // remembered already keeps its first time, as SQLite's INSERT OR IGNORE).
            let retire = tx
                .prepare_cached(
                    "WITH gone AS ( \
                         DELETE FROM wa_webhook_events e \
                         WHERE e.account = $1 AND e.seq = ANY($2::int8[]) AND NOT EXISTS \
                             (SELECT 1 FROM wa_webhook_deliveries d \
                              WHERE d.account = $1 AND d.event_seq = e.seq) \
                         RETURNING e.event_id) \
                     INSERT INTO wa_webhook_done (account, event_id, done_at) \
                     SELECT $1::text, event_id, $3::bigint FROM gone \
                     ON CONFLICT (account, event_id) DO NOTHING",
                )
                .await?;
            tx.execute(&retire, &[&self.account, &delivered, &now])
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Forgets delivered event ids older than `before`.
    pub async fn forget_done(&self, before: i64) -> Result<usize, PgOutboxError> {
        let client = self.client().await?;
        // One statement: a transaction of its own.
        let statement = client
            .prepare_cached("DELETE FROM wa_webhook_done WHERE account = $1 AND done_at < $2")
            .await?;
        let forgotten = client
            .execute(&statement, &[&self.account, &before])
            .await?;
        Ok(changed(forgotten))
    }

    /// Deliveries per URL (in byte order of the URLs, as SQLite sorts them), and
    /// how many events the outbox holds.
    pub async fn url_counts(&self) -> Result<(Vec<UrlCounts>, u64), PgOutboxError> {
        let client = self.client().await?;
        let per_url = client
            .prepare_cached(
                "SELECT url, count(*) FILTER (WHERE NOT dead), \
                 count(*) FILTER (WHERE NOT dead AND attempts > 0), \
                 count(*) FILTER (WHERE dead) \
                 FROM wa_webhook_deliveries WHERE account = $1 \
                 GROUP BY url ORDER BY url COLLATE \"C\"",
            )
            .await?;
        let counts = client
            .query(&per_url, &[&self.account])
            .await?
            .iter()
            .map(|row| -> Result<UrlCounts, PgOutboxError> {
                Ok(UrlCounts {
                    url: row.try_get(0)?,
                    pending: count(row.try_get(1)?),
                    retrying: count(row.try_get(2)?),
                    dead: count(row.try_get(3)?),
                })
            })
            .collect::<Result<Vec<_>, PgOutboxError>>()?;
        let events = client
            .prepare_cached("SELECT count(*) FROM wa_webhook_events WHERE account = $1")
            .await?;
        let events = count(
            client
                .query_one(&events, &[&self.account])
                .await?
                .try_get(0)?,
        );
        Ok((counts, events))
    }

    /// Deliveries waiting (retrying ones included) and dead ones, over all URLs.
    pub async fn counts(&self) -> Result<Counts, PgOutboxError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT count(*) FILTER (WHERE NOT dead), count(*) FILTER (WHERE dead) \
                 FROM wa_webhook_deliveries WHERE account = $1",
            )
            .await?;
        let row = client.query_one(&statement, &[&self.account]).await?;
        Ok(Counts {
            pending: count(row.try_get(0)?),
            dead: count(row.try_get(1)?),
        })
    }
}

/// Deletes every outbox row of `account` (the account is removed), in one
/// transaction; how many rows went, over all [`OUTBOX_TABLES`].
pub async fn forget_account(pool: &Pool, account: &str) -> Result<u64, PgOutboxError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    lock(&tx, account).await?;
    let mut removed = 0;
    // Deliveries first, so that each table's count is its own (not cascaded).
    for table in OUTBOX_TABLES {
        let sql = format!("DELETE FROM {table} WHERE account = $1");
        removed += tx.execute(&sql, &[&account]).await?;
    }
    tx.commit().await?;
    Ok(removed)
}

/// Takes the outbox lock of `account` until `tx` ends: its writers take turns.
async fn lock(tx: &Transaction<'_>, account: &str) -> Result<(), PgOutboxError> {
    let statement = tx.prepare_cached(LOCK_SQL).await?;
    tx.execute(&statement, &[&OUTBOX_LOCK, &account]).await?;
    Ok(())
}

/// What the failed attempts of one round come to for one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failed<'a> {
    /// Attempts to add.
    attempts: i32,
    /// The last retry time recorded; none keeps the row's.
    next_at: Option<i64>,
    /// Whether any was final.
    dead: bool,
    /// The last error recorded.
    error: &'a str,
}

/// `records` as one statement per kind can apply them, ending where SQLite's one
/// by one does: a delivered delivery goes whatever else was recorded for it (an
/// update before its delete is lost, one after finds no row); for the others,
/// every failure counts an attempt, the last error and the last retry time stand,
/// and a dead one stays dead. Returns the delivered seqs, and the failed ones.
fn settle(records: &[Record]) -> (Vec<i64>, BTreeMap<i64, Failed<'_>>) {
    let mut delivered = BTreeSet::new();
    let mut failed: BTreeMap<i64, Failed<'_>> = BTreeMap::new();
    for record in records {
        let (seq, next_at, dead, error) = match record {
            Record::Delivered { seq } => {
                delivered.insert(*seq);
                continue;
            }
            Record::Retry {
                seq,
                next_at,
                error,
            } => (*seq, Some(*next_at), false, error.as_str()),
            Record::Dead { seq, error } => (*seq, None, true, error.as_str()),
        };
        let entry = failed.entry(seq).or_insert(Failed {
            attempts: 0,
            next_at: None,
            dead: false,
            error,
        });
        entry.attempts = entry.attempts.saturating_add(1);
        entry.next_at = next_at.or(entry.next_at);
        entry.dead |= dead;
        entry.error = error;
    }
    failed.retain(|seq, _| !delivered.contains(seq));
    (delivered.into_iter().collect(), failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::testing::database;

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

    fn ids(due: &[Due]) -> Vec<&str> {
        due.iter().map(|d| d.event_id.as_str()).collect()
    }

    async fn delivered(outbox: &PgOutbox, seq: i64, url: &str, now: i64) {
        outbox
            .record(url, &[Record::Delivered { seq }], now)
            .await
            .unwrap();
    }

    async fn retry(outbox: &PgOutbox, seq: i64, url: &str, next_at: i64, error: &str) {
        let error = error.to_owned();
        let record = Record::Retry {
            seq,
            next_at,
            error,
        };
        outbox.record(url, &[record], 0).await.unwrap();
    }

    async fn dead(outbox: &PgOutbox, seq: i64, url: &str, error: &str) {
        let error = error.to_owned();
        outbox
            .record(url, &[Record::Dead { seq, error }], 0)
            .await
            .unwrap();
    }

    /// A delivery's row: attempts, dead, next attempt, last error.
    async fn delivery_row(
        pool: &Pool,
        account: &str,
        seq: i64,
        url: &str,
    ) -> Option<(i32, bool, i64, Option<String>)> {
        let client = pool.get().await.unwrap();
        client
            .query_opt(
                "SELECT attempts, dead, next_attempt_at, last_error FROM wa_webhook_deliveries \
                 WHERE account = $1 AND event_seq = $2 AND url = $3",
                &[&account, &seq, &url],
            )
            .await
            .unwrap()
            .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
    }

    /// How many rows of `account` `table` holds.
    async fn rows(pool: &Pool, table: &str, account: &str) -> i64 {
        let client = pool.get().await.unwrap();
        let sql = format!("SELECT count(*) FROM {table} WHERE account = $1");
        client.query_one(&sql, &[&account]).await.unwrap().get(0)
    }

    #[tokio::test]
    async fn each_chat_is_delivered_in_order_and_chats_do_not_wait_for_each_other() {
        let (_server, pool) = database().await;
        let outbox = PgOutbox::new(pool, "a", 100);
        let events = [event("1", "x"), event("2", "x"), event("3", "y")];
        assert_eq!(outbox.enqueue(&events, &urls(), 10).await.unwrap(), 3);
        let due = outbox.due("http://a", 10, 10).await.unwrap();
        assert_eq!(ids(&due), ["1", "3"], "the head of each chat");
        assert_eq!(
            (
                due[0].chat.as_str(),
                due[0].body.as_str(),
                due[0].created_at
            ),
            ("x", "{\"id\":\"1\"}", 10)
        );
        let first = outbox.due("http://a", 10, 1).await.unwrap();
        assert_eq!(ids(&first), ["1"], "at most `limit`, oldest first");
        // The head of x fails: x waits, y does not.
        retry(&outbox, due[0].seq, "http://a", 20, "503").await;
        delivered(&outbox, due[1].seq, "http://a", 10).await;
        assert!(outbox.due("http://a", 15, 10).await.unwrap().is_empty());
        // Event 2 is due but waits behind 1, so the next wake-up is 1's retry.
        assert_eq!(outbox.next_due_at("http://a").await.unwrap(), Some(20));
        let later = outbox.due("http://a", 20, 10).await.unwrap();
        assert_eq!(later.len(), 1);
        assert_eq!((later[0].event_id.as_str(), later[0].attempts), ("1", 1));
        delivered(&outbox, later[0].seq, "http://a", 20).await;
        assert_eq!(
            outbox.due("http://a", 20, 10).await.unwrap()[0].event_id,
            "2"
        );
        // URL b still has all three.
        assert_eq!(
            outbox.counts().await.unwrap(),
            Counts {
                pending: 4,
                dead: 0
            }
        );
        assert_eq!(outbox.next_due_at("http://c").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_redelivered_message_is_stored_once_and_survives_a_reconnect() {
        let (server, pool) = database().await;
        {
            let outbox = PgOutbox::new(pool, "a", 100);
            assert_eq!(
                outbox
                    .enqueue(&[event("1", "x")], &urls(), 1)
                    .await
                    .unwrap(),
                1
            );
            assert_eq!(
                outbox
                    .enqueue(&[event("1", "x")], &urls(), 2)
                    .await
                    .unwrap(),
                0
            );
        }
        // A new pool, as after a restart.
        let pool = crate::postgres::connect(&server.uri("wa")).await.unwrap();
        let outbox = PgOutbox::new(pool, "a", 100);
        assert_eq!(outbox.counts().await.unwrap().pending, 2);
        // Dropping URL b on restart forgets its deliveries only.
        assert_eq!(outbox.retain_urls(&["http://a".into()]).await.unwrap(), 1);
        let due = outbox.due("http://a", 5, 10).await.unwrap();
        delivered(&outbox, due[0].seq, "http://a", 5).await;
        assert_eq!(outbox.counts().await.unwrap(), Counts::default());
        assert_eq!(outbox.url_counts().await.unwrap(), (vec![], 0));
        // Delivered: the same message coming again is not sent again…
        assert_eq!(
            outbox
                .enqueue(&[event("1", "x")], &urls(), 6)
                .await
                .unwrap(),
            0
        );
        // …until the retry window has passed.
        assert_eq!(outbox.forget_done(5).await.unwrap(), 0);
        assert_eq!(outbox.forget_done(6).await.unwrap(), 1);
        assert_eq!(
            outbox
                .enqueue(&[event("1", "x")], &urls(), 7)
                .await
                .unwrap(),
            1
        );
        // An id twice in one batch is stored once.
        let twice = [event("9", "z"), event("9", "z")];
        assert_eq!(outbox.enqueue(&twice, &urls(), 8).await.unwrap(), 1);
        // No URL left: every delivery goes, and the events with them.
        assert_eq!(outbox.retain_urls(&[]).await.unwrap(), 4);
        assert_eq!(outbox.url_counts().await.unwrap(), (vec![], 0));
    }

    #[tokio::test]
    async fn a_dead_delivery_is_counted_and_no_longer_due_and_a_full_outbox_refuses() {
        let (_server, pool) = database().await;
        let outbox = PgOutbox::new(pool, "a", 2);
        outbox
            .enqueue(&[event("1", "x"), event("2", "x")], &urls(), 1)
            .await
            .unwrap();
        let due = outbox.due("http://a", 1, 10).await.unwrap();
        dead(&outbox, due[0].seq, "http://a", "HTTP 400").await;
        assert_eq!(
            outbox.due("http://a", 1, 10).await.unwrap()[0].event_id,
            "2"
        );
        assert_eq!(
            outbox.counts().await.unwrap(),
            Counts {
                pending: 3,
                dead: 1
            }
        );
        let full = outbox.enqueue(&[event("3", "y")], &urls(), 1).await;
        assert!(matches!(full, Err(PgOutboxError::Full(2))), "{full:?}");
        assert_eq!(
            full.unwrap_err().to_string(),
            "the webhook outbox is full (2 events waiting)"
        );
        let next = outbox.due("http://a", 1, 10).await.unwrap();
        retry(&outbox, next[0].seq, "http://a", 5, "HTTP 503").await;
        let (per_url, events) = outbox.url_counts().await.unwrap();
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

    #[tokio::test]
    async fn a_failed_enqueue_stores_nothing() {
        let (_server, pool) = database().await;
        let outbox = PgOutbox::new(pool, "a", 100);
        // The same URL twice: the second delivery of the first event is refused.
        let twice = vec!["http://a".to_owned(), "http://a".to_owned()];
        let events = [event("1", "x"), event("2", "y")];
        assert!(matches!(
            outbox.enqueue(&events, &twice, 1).await,
            Err(PgOutboxError::Postgres(_))
        ));
        assert_eq!(outbox.url_counts().await.unwrap(), (vec![], 0));
        assert_eq!(outbox.enqueue(&events, &urls(), 2).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn one_round_of_records_ends_as_if_recorded_one_by_one() {
        let (_server, pool) = database().await;
        let outbox = PgOutbox::new(pool.clone(), "a", 100);
        let events = [event("1", "x"), event("2", "y"), event("3", "z")];
        outbox.enqueue(&events, &urls(), 1).await.unwrap();
        let due = outbox.due("http://a", 1, 10).await.unwrap();
        let (one, two, three) = (due[0].seq, due[1].seq, due[2].seq);
        let error = |e: &str| e.to_owned();
        let round = [
            Record::Retry {
                seq: one,
                next_at: 5,
                error: error("e1"),
            },
            Record::Dead {
                seq: one,
                error: error("e2"),
            },
            Record::Retry {
                seq: two,
                next_at: 7,
                error: error("e3"),
            },
            Record::Delivered { seq: two },
            Record::Delivered { seq: three },
            Record::Retry {
                seq: three,
                next_at: 9,
                error: error("e4"),
            },
        ];
        outbox.record("http://a", &round, 2).await.unwrap();
        assert_eq!(
            delivery_row(&pool, "a", one, "http://a").await,
            Some((2, true, 5, Some("e2".into()))),
            "both failures count; the dead one's error is the last"
        );
        assert_eq!(delivery_row(&pool, "a", two, "http://a").await, None);
        assert_eq!(delivery_row(&pool, "a", three, "http://a").await, None);
        // URL b untouched.
        assert_eq!(
            delivery_row(&pool, "a", one, "http://b").await,
            Some((0, false, 1, None))
        );
        // Delivered to b as well: event 2 goes and is remembered; 3 still waits for b.
        delivered(&outbox, two, "http://b", 3).await;
        assert_eq!(outbox.url_counts().await.unwrap().1, 2);
        assert_eq!(
            outbox
                .enqueue(&[event("2", "y")], &urls(), 4)
                .await
                .unwrap(),
            0
        );
        assert_eq!(outbox.forget_done(4).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn an_event_delivered_to_two_urls_at_once_goes_and_is_remembered() {
        let (_server, pool) = database().await;
        let outbox = PgOutbox::new(pool, "a", 100);
        let events: Vec<NewEvent> = (0..32)
            .map(|i| event(&i.to_string(), &format!("chat{i}")))
            .collect();
        outbox.enqueue(&events, &urls(), 1).await.unwrap();
        let due = outbox.due("http://a", 1, 100).await.unwrap();
        assert_eq!(due.len(), 32);
        let round: Vec<Record> = due
            .iter()
            .map(|d| Record::Delivered { seq: d.seq })
            .collect();
        // The two URL workers record their last deliveries at the same time.
        let (a, b) = tokio::join!(
            outbox.record("http://a", &round, 2),
            outbox.record("http://b", &round, 2)
        );
        a.unwrap();
        b.unwrap();
        assert_eq!(outbox.url_counts().await.unwrap(), (vec![], 0));
        assert_eq!(outbox.enqueue(&events, &urls(), 3).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn accounts_never_see_each_others_rows_and_one_is_forgotten_alone() {
        let (_server, pool) = database().await;
        let a = PgOutbox::new(pool.clone(), "a", 2);
        let b = PgOutbox::new(pool.clone(), "b", 2);
        // The same event ids in both: each account stores its own.
        let b_events = [event("1", "x"), event("2", "y")];
        assert_eq!(b.enqueue(&b_events, &urls(), 1).await.unwrap(), 2);
        assert_eq!(a.enqueue(&[event("1", "x")], &urls(), 1).await.unwrap(), 1);
        // b's events do not count towards a's limit.
        let more = [event("2", "y"), event("3", "z")];
        assert!(matches!(
            a.enqueue(&more, &urls(), 1).await,
            Err(PgOutboxError::Full(1))
        ));
        let a_due = a.due("http://a", 1, 10).await.unwrap();
        let b_due = b.due("http://a", 1, 10).await.unwrap();
        assert_eq!(ids(&a_due), ["1"]);
        assert_eq!(ids(&b_due), ["1", "2"]);
        assert_ne!(a_due[0].seq, b_due[0].seq);
        // Outcomes recorded by one account never touch the other's rows, even
        // given their seqs.
        let foreign = [
            Record::Dead {
                seq: b_due[0].seq,
                error: "HTTP 400".into(),
            },
            Record::Delivered { seq: b_due[1].seq },
        ];
        a.record("http://a", &foreign, 2).await.unwrap();
        assert_eq!(
            b.counts().await.unwrap(),
            Counts {
                pending: 4,
                dead: 0
            }
        );
        assert_eq!(b.url_counts().await.unwrap().1, 2);
        // a's event delivered everywhere: a remembers its id, b's own is untouched.
        for url in urls() {
            delivered(&a, a_due[0].seq, &url, 2).await;
        }
        assert_eq!(a.url_counts().await.unwrap(), (vec![], 0));
        assert_eq!(b.url_counts().await.unwrap().1, 2);
        assert_eq!(b.forget_done(100).await.unwrap(), 0, "b remembers none");
        assert_eq!(
            a.enqueue(&[event("1", "x")], &urls(), 3).await.unwrap(),
            0,
            "a still remembers its delivered id"
        );
        // a forgetting a URL leaves b's deliveries to it.
        assert_eq!(a.enqueue(&[event("4", "x")], &urls(), 3).await.unwrap(), 1);
        assert_eq!(a.retain_urls(&["http://a".into()]).await.unwrap(), 1);
        assert_eq!(b.counts().await.unwrap().pending, 4);
        // b delivers its event 2 everywhere, so that it has a delivered id too.
        for url in urls() {
            delivered(&b, b_due[1].seq, &url, 3).await;
        }
        // b: event 1 with its two deliveries, and the delivered id 2.
        assert_eq!(forget_account(&pool, "b").await.unwrap(), 4);
        for table in OUTBOX_TABLES {
            assert_eq!(rows(&pool, table, "b").await, 0, "{table}");
            assert!(rows(&pool, table, "a").await > 0, "{table} keeps a's rows");
        }
        assert_eq!(b.counts().await.unwrap(), Counts::default());
        assert_eq!(a.counts().await.unwrap().pending, 1);
        assert_eq!(a.enqueue(&[event("1", "x")], &urls(), 4).await.unwrap(), 0);
        assert_eq!(b.enqueue(&[event("2", "y")], &urls(), 4).await.unwrap(), 1);
    }

    #[test]
    fn a_round_settles_per_delivery() {
        let records = [
            Record::Dead {
                seq: 1,
                error: "final".into(),
            },
            Record::Retry {
                seq: 1,
                next_at: 9,
                error: "later".into(),
            },
            Record::Delivered { seq: 2 },
            Record::Delivered { seq: 2 },
        ];
        let (delivered, failed) = settle(&records);
        assert_eq!(delivered, [2]);
        assert_eq!(
            failed.get(&1),
            Some(&Failed {
                attempts: 2,
                next_at: Some(9),
                dead: true,
                error: "later",
            })
        );
        assert_eq!(failed.len(), 1);
    }
}
