//! One server's send throughput with its WhatsApp sessions in PostgreSQL
//! (`--db-uri postgres://`) against the default SQLite files, in the same run: two
//! servers paired with the same fake phone (two linked devices), the same texts
//! through `POST /send/message` at concurrency 1 and 16, levels alternating between
//! the two. The Postgres server is a real one from Debian's binaries, with fsync
//! and synchronous commits on, on the same machine.
//!
//! `cargo bench --features e2e --bench store_throughput` (`MESSAGES=n` per level,
//! `ROUNDS=n` alternations). The defaults send 6,000 messages through each
//! server: past the 4,096 sent messages an account keeps for retries, whose
//! trimming must not slow or fail sends.

#[path = "../tests/common/mod.rs"]
#[allow(dead_code)]
mod common;
#[path = "../tests/e2e/harness.rs"]
#[allow(dead_code)]
mod harness;

use fake_whatsapp::{ContactInfo, FakeWhatsApp};
use harness::Server;
use whatsapp_api::postgres::testing::TestServer;

const FRIEND: &str = "6289685028129";
const LEVELS: [usize; 2] = [1, 16];

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
    let (total, rounds) = (env("MESSAGES", 1000), env("ROUNDS", 3));
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
            let tag = |store| format!("{store}{round} {concurrency}");
            on_sqlite.push(
                sqlite
                    .send_rate(FRIEND, total, concurrency, &tag("s"), |_| None)
                    .await,
            );
            on_pg.push(
                pg.send_rate(FRIEND, total, concurrency, &tag("p"), |_| None)
                    .await,
            );
        }
        let (s, p) = (median(on_sqlite), median(on_pg));
        println!(
            "  concurrency {concurrency:>2}: SQLite {s:>7.0} msg/s, Postgres {p:>7.0} msg/s ({:.2}x)",
            p / s
        );
    }
    assert_eq!(fake.problems(), Vec::<String>::new());
}
