//! One server's send throughput with its WhatsApp sessions in PostgreSQL
//! (`--db-uri postgres://`) against the default SQLite files, in the same run: two
//! servers paired with the same fake phone (two linked devices), the same texts
//! through `POST /send/message` at concurrency 1 and 16, levels alternating between
//! the two. The Postgres server is a real one from Debian's binaries, with fsync
//! and synchronous commits on, on the same machine.
//!
//! `cargo bench --features e2e --bench store_throughput` (`MESSAGES=n` per level,
//! `ROUNDS=n` alternations).

#[path = "../tests/common/mod.rs"]
#[allow(dead_code)]
mod common;
#[path = "../tests/e2e/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::sync::Arc;
use std::time::Instant;

use fake_whatsapp::{ContactInfo, FakeWhatsApp};
use harness::Server;
use tokio::sync::Semaphore;
use whatsapp_api::postgres::testing::TestServer;

const FRIEND: &str = "6289685028129";
const LEVELS: [usize; 2] = [1, 16];

/// Messages per second for `total` sends at `concurrency`.
async fn rate(server: &Server, total: usize, concurrency: usize, tag: &str) -> f64 {
    let slots = Arc::new(Semaphore::new(concurrency));
    let url = format!("{}/send/message", server.base);
    let started = Instant::now();
    let tasks: Vec<_> = (0..total)
        .map(|i| {
            let (slots, client, url) = (slots.clone(), server.http.clone(), url.clone());
            let text = format!("{tag} {concurrency} {i}");
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await.unwrap();
                let res = client
                    .post(&url)
                    .json(&serde_json::json!({ "phone": FRIEND, "message": text }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (total, rounds) = (env("MESSAGES", 500), env("ROUNDS", 3));
    let postgres = tokio::task::spawn_blocking(|| {
        let server = TestServer::start_durable();
        server.create_database("wa");
        server
    })
    .await
    .unwrap();
    let fake = FakeWhatsApp::start_local().await.unwrap();
    fake.add_contact(FRIEND, ContactInfo::default()).unwrap();
    let (sqlite_dir, pg_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sqlite = Server::start(&fake, sqlite_dir.path()).await;
    sqlite.pair(&fake).await;
    let url = postgres.url("wa");
    let pg = Server::start_with(&fake, pg_dir.path(), &["--db-uri", &url]).await;
    pg.pair(&fake).await;

    println!("store_throughput: {total} texts per level, median of {rounds} alternating rounds");
    for concurrency in LEVELS {
        let (mut on_sqlite, mut on_pg) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            on_sqlite.push(rate(&sqlite, total, concurrency, &format!("s{round}")).await);
            on_pg.push(rate(&pg, total, concurrency, &format!("p{round}")).await);
        }
        let (s, p) = (median(on_sqlite), median(on_pg));
        println!(
            "  concurrency {concurrency:>2}: SQLite {s:>7.0} msg/s, Postgres {p:>7.0} msg/s ({:.2}x)",
            p / s
        );
    }
    assert_eq!(fake.problems(), Vec::<String>::new());
}
