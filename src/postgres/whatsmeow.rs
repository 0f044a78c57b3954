//! A Go server's WhatsApp sessions in the same PostgreSQL database (Go's
//! `DB_URI=postgres://…`, whatsmeow's `whatsmeow_*` tables).
//!
//! They are read in one read-only, repeatable-read transaction into a scratch
//! SQLite copy in the storage folder, where the Go file import's reader
//! ([`crate::whatsapp::go_session::read_from`]) converts them as it converts a Go
//! session file. Nothing in PostgreSQL is written, so going back to the Go server
//! keeps working. The copy is deleted when the [`Snapshot`] is dropped (or, after
//! a crash, at the next start: it is named as the file import's copies are).

use std::path::Path;

use anyhow::Context;
use deadpool_postgres::Pool;
use futures_util::{StreamExt, pin_mut};
use rusqlite::types::Value;
use sha2::Digest;

/// Rows copied per SQLite transaction.
const BATCH: usize = 1_000;

/// whatsmeow's tables as they were at one moment, in SQLite.
pub struct Snapshot {
    pub conn: rusqlite::Connection,
    /// A digest of every row read: it changes when the Go server writes.
    pub fingerprint: String,
    _dir: tempfile::TempDir,
}

/// A quoted SQL identifier (the names come from the catalog; quoted all the same).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// How a column is read: as bytes, an integer or text.
#[derive(Clone, Copy)]
enum Read {
    Bytes,
    Integer,
    Text,
}

impl Read {
    fn of(data_type: &str) -> Self {
        match data_type {
            "bytea" => Read::Bytes,
            "smallint" | "integer" | "bigint" | "boolean" => Read::Integer,
            _ => Read::Text,
        }
    }

    /// The column in the SELECT, cast to what is read.
    fn select(self, column: &str, data_type: &str) -> String {
        let column = ident(column);
        match (self, data_type) {
            (Read::Bytes, _) => column,
            // Postgres casts a boolean to int4 only.
            (Read::Integer, "boolean") => format!("{column}::int4::int8"),
            (Read::Integer, _) => format!("{column}::int8"),
            (Read::Text, _) => format!("{column}::text"),
        }
    }
}

/// Copies whatsmeow's tables of the database behind `pool` into a scratch
/// SQLite file under `scratch`; `None` when the database has no whatsmeow
/// device table (no Go server used it).
pub async fn snapshot(pool: &Pool, scratch: &Path) -> anyhow::Result<Option<Snapshot>> {
    let mut client = pool.get().await.context("cannot connect to PostgreSQL")?;
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .context("cannot read the Go server's tables")?;
    let rows = tx
        .query(
            "SELECT table_name::text, column_name::text, data_type::text \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name LIKE 'whatsmeow\\_%' \
             ORDER BY table_name, ordinal_position",
            &[],
        )
        .await
        .context("cannot list the Go server's tables")?;
    let mut tables: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for row in rows {
        let (table, column, data_type): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        match tables.last_mut() {
            Some((name, columns)) if *name == table => columns.push((column, data_type)),
            _ => tables.push((table, vec![(column, data_type)])),
        }
    }
    if !tables.iter().any(|(name, _)| name == "whatsmeow_device") {
        return Ok(None);
    }
    let dir = tempfile::Builder::new()
        .prefix(crate::storage::SNAPSHOT_PREFIX)
        .tempdir_in(scratch)
        .with_context(|| format!("cannot make a scratch folder in {}", scratch.display()))?;
    let mut conn = rusqlite::Connection::open(dir.path().join("whatsmeow.db"))
        .context("cannot make the scratch copy of the Go server's tables")?;
    conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")?;
    let mut digest = sha2::Sha256::new();
    for (table, columns) in &tables {
        let reads: Vec<Read> = columns.iter().map(|(_, t)| Read::of(t)).collect();
        let names: Vec<String> = columns.iter().map(|(c, _)| ident(c)).collect();
        conn.execute_batch(&format!(
            "CREATE TABLE {} ({})",
            ident(table),
            names.join(", ")
        ))?;
        let select = columns
            .iter()
            .zip(&reads)
            .map(|((column, data_type), read)| read.select(column, data_type))
            .collect::<Vec<_>>()
            .join(", ");
        // In a set order: the copy's row order (whatsmeow's first device) and
        // the digest do not depend on how Postgres happened to scan.
        let order = (1..=columns.len())
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT {select} FROM {} ORDER BY {order}", ident(table));
        let stream = tx
            .query_raw(&sql, std::iter::empty::<&str>())
            .await
            .with_context(|| format!("cannot read {table}"))?;
        pin_mut!(stream);
        let insert = format!(
            "INSERT INTO {} VALUES ({})",
            ident(table),
            vec!["?"; columns.len()].join(", ")
        );
        digest.update(table.as_bytes());
        // In batches, written with no await in between (the SQLite connection is
        // not shared across tasks).
        let mut done = false;
        while !done {
            let mut batch: Vec<Vec<Value>> = Vec::new();
            while batch.len() < BATCH {
                let Some(row) = stream.next().await else {
                    done = true;
                    break;
                };
                let row = row.with_context(|| format!("cannot read {table}"))?;
                let mut values = Vec::with_capacity(reads.len());
                for (i, read) in reads.iter().enumerate() {
                    let value = match read {
                        Read::Bytes => row.get::<_, Option<Vec<u8>>>(i).map(Value::Blob),
                        Read::Integer => row.get::<_, Option<i64>>(i).map(Value::Integer),
                        Read::Text => row.get::<_, Option<String>>(i).map(Value::Text),
                    };
                    hash_value(&mut digest, value.as_ref());
                    values.push(value.unwrap_or(Value::Null));
                }
                batch.push(values);
            }
            let copy = conn.transaction()?;
            {
                let mut statement = copy.prepare_cached(&insert)?;
                for values in batch {
                    statement.execute(rusqlite::params_from_iter(values))?;
                }
            }
            copy.commit()?;
        }
    }
    tx.commit().await.ok();
    Ok(Some(Snapshot {
        conn,
        fingerprint: hex::encode(&digest.finalize()[..16]),
        _dir: dir,
    }))
}

/// Adds one value to the digest, with its kind and length, so that no two rows
/// give the same bytes.
fn hash_value(digest: &mut sha2::Sha256, value: Option<&Value>) {
    match value {
        None => digest.update([0]),
        Some(Value::Integer(n)) => {
            digest.update([1]);
            digest.update(n.to_le_bytes());
        }
        Some(Value::Blob(bytes)) => {
            digest.update([2]);
            digest.update((bytes.len() as u64).to_le_bytes());
            digest.update(bytes);
        }
        Some(Value::Text(text)) => {
            digest.update([3]);
            digest.update((text.len() as u64).to_le_bytes());
            digest.update(text.as_bytes());
        }
        Some(Value::Real(_)) | Some(Value::Null) => digest.update([4]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::testing::database;

    async fn digest_of(pool: &Pool, scratch: &Path) -> String {
        snapshot(pool, scratch).await.unwrap().unwrap().fingerprint
    }

    #[tokio::test]
    async fn whatsmeow_tables_are_copied_value_for_value_and_their_digest_follows_changes() {
        let (_server, pool) = database().await;
        let scratch = tempfile::tempdir().unwrap();
        // No Go server used the database.
        assert!(snapshot(&pool, scratch.path()).await.unwrap().is_none());

        let client = pool.get().await.unwrap();
        client
            .batch_execute(
                "CREATE TABLE whatsmeow_device (jid TEXT PRIMARY KEY, facebook_uuid uuid, \
                   registration_id BIGINT, key bytea, \"odd \"\"name\" INTEGER, ok BOOLEAN);
                 CREATE TABLE whatsmeow_version (version INTEGER, compat INTEGER);
                 CREATE TABLE other_table (secret TEXT);
                 INSERT INTO whatsmeow_device VALUES
                   ('b@s.whatsapp.net', NULL, 4294967295, '\\x0001ff', -3, true),
                   ('a@s.whatsapp.net', '6f1c2a44-1d3e-4f6a-9b8c-0d1e2f3a4b5c', 7, NULL, NULL, false);
                 INSERT INTO whatsmeow_version VALUES (15, 8);
                 INSERT INTO other_table VALUES ('not read');",
            )
            .await
            .unwrap();
        let copy = snapshot(&pool, scratch.path()).await.unwrap().unwrap();
        type Row = (
            String,
            Option<String>,
            i64,
            Option<Vec<u8>>,
            Option<i64>,
            bool,
        );
        let rows: Vec<Row> = copy
            .conn
            .prepare(
                "SELECT jid, facebook_uuid, registration_id, key, \"odd \"\"name\", ok \
                 FROM whatsmeow_device ORDER BY rowid",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (
                    "a@s.whatsapp.net".to_owned(),
                    Some("6f1c2a44-1d3e-4f6a-9b8c-0d1e2f3a4b5c".to_owned()),
                    7,
                    None,
                    None,
                    false
                ),
                (
                    "b@s.whatsapp.net".to_owned(),
                    None,
                    4_294_967_295,
                    Some(vec![0, 1, 0xff]),
                    Some(-3),
                    true
                ),
            ]
        );
        // Only whatsmeow's tables come over.
        let tables: Vec<String> = copy
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tables, ["whatsmeow_device", "whatsmeow_version"]);
        let first = copy.fingerprint.clone();
        let folder = scratch.path().read_dir().unwrap().count();
        assert_eq!(folder, 1, "the scratch copy");
        drop(copy);
        assert_eq!(
            scratch.path().read_dir().unwrap().count(),
            0,
            "the copy is deleted with the snapshot"
        );

        // The same rows give the same digest; a changed value, another one.
        assert_eq!(digest_of(&pool, scratch.path()).await, first);
        client
            .execute(
                "UPDATE whatsmeow_device SET ok = NOT ok WHERE jid LIKE 'a%'",
                &[],
            )
            .await
            .unwrap();
        let changed = digest_of(&pool, scratch.path()).await;
        assert_ne!(changed, first);
        // Nothing was written: the tables are as the test left them.
        let oks: i64 = client
            .query_one("SELECT count(*) FROM whatsmeow_device WHERE ok", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(oks, 2);
    }
}
