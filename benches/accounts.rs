//! Many accounts in one server process, end to end: the real server binary and the
//! fake WhatsApp server with one phone per account. Measured, for N accounts
//! (`ACCOUNTS=n`, default 20; the figure is N = 1,000):
//!
//! 1. pairing all of them, up to 100 at once (QR scans by their own phones);
//! 2. memory: resident memory above the empty server per idle, logged-in account,
//!    after one message sent and one received by each; open files per account;
//! 3. idle CPU of all of them together over `IDLE_SECS` (default 30);
//! 4. throughput: 16 concurrent senders spread over up to 100 accounts, against 16
//!    through one account, in the same run (a ratio);
//! 5. history: the phones of up to 100 accounts push their chat history at once
//!    (`HISTORY` messages each, default 2,000, in 20 chats, chunks of 1,000): the
//!    time until every message is in the store, and the resident memory before,
//!    at its highest (sampled every 100 ms) and 25 s after;
//! 6. restart: SIGTERM, start, until every account is connected again, with the
//!    most handshakes the fake saw at once.
//!
//! `ACCOUNTS=1000 cargo bench --features e2e --bench accounts`

#[path = "../tests/common/mod.rs"]
#[allow(dead_code)]
mod common;
#[path = "../tests/e2e/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_whatsapp::{ContactInfo, FakeWhatsApp, HistoryOptions, PHONE_USER, generated_history};
use harness::Server;
use serde_json::json;
use tokio::sync::Semaphore;

const FRIEND: &str = "6289685028129";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The slot id and phone number of account `i` (0 is the server's first account,
/// linked to the fake's own phone).
fn account(i: usize) -> (String, String) {
    match i {
        0 => ("default".into(), PHONE_USER.into()),
        i => (format!("acct{i}"), format!("1666{i:07}")),
    }
}

/// How many accounts `/metrics` counts as logged in.
async fn logged_in(server: &Server) -> usize {
    let Ok(res) = server
        .http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
    else {
        return 0;
    };
    let text = res.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("whatsapp_accounts{state=\"logged_in\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

async fn wait_all_logged_in(server: &Server, n: usize, within: Duration) -> Duration {
    let started = Instant::now();
    while logged_in(server).await < n {
        assert!(
            started.elapsed() < within,
            "only {} of {n} accounts connected within {within:?}",
            logged_in(server).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

/// Adds account `i` (but the first) and links it by QR to its own phone.
async fn pair(fake: &FakeWhatsApp, server: &Server, i: usize) {
    let (id, phone) = account(i);
    if i > 0 {
        let added = server
            .request("POST", "/devices", None, Some(json!({ "device_id": id })))
            .await;
        assert_eq!(added.status, 200, "{}", added.body);
    }
    server.scan_for(fake, "/app/login", &id, &phone).await;
}

/// `total` texts through `POST /send/message`, 16 at a time, spread over `accounts`
/// (round robin); acknowledged messages per second.
async fn send_rate(server: &Server, accounts: usize, total: usize, tag: &str) -> f64 {
    server
        .send_rate(FRIEND, total, 16, tag, |n| Some(account(n % accounts).0))
        .await
}

#[tokio::main]
async fn main() {
    // The fake's own log (what it refused, why it closed a connection): RUST_LOG.
    if let Ok(filter) = std::env::var("RUST_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let n = env("ACCOUNTS", 20).max(1);
    let idle_secs = env("IDLE_SECS", 30) as u64;
    let fake = FakeWhatsApp::start_local().await.unwrap();
    fake.add_contact(FRIEND, ContactInfo::default()).unwrap();
    for i in 1..n {
        let (_, phone) = account(i);
        fake.add_phone(&phone, &format!("2{phone}"), "Bench Phone")
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&fake, dir.path()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let empty_kb = server.rss_kb();
    let (empty_anon_kb, _) = server.rss_split_kb();
    let empty_fds = server.open_fds();

    // 1. Pairing, up to 100 at once.
    let started = Instant::now();
    pair(&fake, &server, 0).await;
    let at_once = Arc::new(Semaphore::new(100));
    let server = Arc::new(server);
    let fake = Arc::new(fake);
    let pairings: Vec<_> = (1..n)
        .map(|i| {
            let (at_once, server, fake) = (at_once.clone(), server.clone(), fake.clone());
            tokio::spawn(async move {
                let _turn = at_once.acquire_owned().await.unwrap();
                pair(&fake, &server, i).await;
            })
        })
        .collect();
    for p in pairings {
        p.await.unwrap();
    }
    wait_all_logged_in(&server, n, Duration::from_secs(600)).await;
    let paired_in = started.elapsed();
    let peak_pairing_kb = server.peak_rss_kb();

    // 2. One message out and one in per account.
    for i in 0..n {
        let (id, phone) = account(i);
        let res = server
            .request(
                "POST",
                "/send/message",
                Some(&id),
                Some(json!({ "phone": FRIEND, "message": format!("hello from {id}") })),
            )
            .await;
        assert_eq!(res.status, 200, "{id}: {}", res.body);
        fake.deliver_to(&phone, FRIEND, &format!("hello {id}"))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (anon_kb, file_kb) = server.rss_split_kb();
    let idle_kb = server.rss_kb();
    let fds = server.open_fds();

    // 3. Idle CPU.
    let cpu_before = server.cpu_time();
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let idle_cpu = server.cpu_time() - cpu_before;

    // 4. Throughput across accounts against one account, same run.
    let total = env("MESSAGES", 1_000);
    // Twice each, alternating, so that warming up favours neither.
    let mut one = 0.0f64;
    let mut spread = 0.0f64;
    for round in 0..2 {
        one = one.max(send_rate(&server, 1, total, &format!("one {round}")).await);
        spread =
            spread.max(send_rate(&server, n.min(100), total, &format!("spread {round}")).await);
    }
    let after_burst_kb = server.rss_kb();

    // 5. History pushed to up to 100 accounts at once.
    let per_account = env("HISTORY", 2_000);
    let (chats, per_chat) = (20, per_account.div_ceil(20));
    let history = Arc::new(generated_history(chats, per_chat, 1_600_000_000));
    let with_history = n.min(100);
    let before_history_kb = server.rss_kb();
    let started = Instant::now();
    let pushes: Vec<_> = (0..with_history)
        .map(|i| {
            let (fake, history) = (fake.clone(), history.clone());
            tokio::spawn(async move {
                let (_, phone) = account(i);
                let options = HistoryOptions {
                    messages_per_chunk: 1_000,
                    ..HistoryOptions::default()
                };
                fake.push_history_with(&phone, &history, options)
                    .await
                    .unwrap();
            })
        })
        .collect();
    for push in pushes {
        push.await.unwrap();
    }
    // The last chat of each account holds all its messages once the import is done.
    let last_chat = history.last().unwrap().jid.clone();
    let mut highest_kb = server.rss_kb();
    for i in 0..with_history {
        let (id, _) = account(i);
        let path = format!("/chat/{last_chat}/messages?limit=1");
        loop {
            highest_kb = highest_kb.max(server.rss_kb());
            let res = server.request("GET", &path, Some(&id), None).await;
            if res.body["results"]["pagination"]["total"].as_u64() == Some(per_chat as u64) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "{id}: history not imported: {}",
                res.body
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let history_took = started.elapsed();
    // Free memory goes back every 10 s: read after two rounds.
    tokio::time::sleep(Duration::from_secs(25)).await;
    let after_history_kb = server.rss_kb();

    // 6. Restart.
    let mut server = Arc::try_unwrap(server).ok().expect("no other holder");
    server.terminate().await;
    fake.max_handshakes();
    let started = Instant::now();
    server.restart().await;
    let answered = started.elapsed();
    let reconnected = wait_all_logged_in(&server, n, Duration::from_secs(600)).await + answered;
    let peak_handshakes = fake.max_handshakes();
    assert!(fake.problems().is_empty(), "{:?}", fake.problems());

    let per = |kb: u64| (kb.saturating_sub(empty_kb)) as f64 / n as f64 / 1024.0;
    println!("accounts: {n}");
    println!(
        "pairing: {n} accounts in {:.1} s (up to 100 at once), peak RSS {:.1} MB",
        paired_in.as_secs_f64(),
        peak_pairing_kb as f64 / 1024.0
    );
    println!(
        "memory: empty server {:.1} MB; {n} idle logged-in accounts {:.1} MB (anonymous {:.1} MB, file-backed {:.1} MB): {:.2} MB per account above the empty server, {:.2} MB of it anonymous",
        empty_kb as f64 / 1024.0,
        idle_kb as f64 / 1024.0,
        anon_kb as f64 / 1024.0,
        file_kb as f64 / 1024.0,
        per(idle_kb),
        (anon_kb.saturating_sub(empty_anon_kb)) as f64 / n as f64 / 1024.0
    );
    println!(
        "open files: {empty_fds} empty, {fds} with {n} accounts: {:.1} per account",
        (fds.saturating_sub(empty_fds)) as f64 / n as f64
    );
    println!(
        "idle CPU: {:.2}% of one core for all {n} accounts over {idle_secs} s",
        idle_cpu.as_secs_f64() / idle_secs as f64 * 100.0
    );
    println!(
        "throughput, 16 senders, {total} texts (best of 2 each): one account {one:.0} msg/s, spread over {} accounts {spread:.0} msg/s ({:.2}x)",
        n.min(100),
        spread / one
    );
    println!(
        "after the bursts: RSS {:.1} MB",
        after_burst_kb as f64 / 1024.0
    );
    println!(
        "history: {with_history} phones pushed {} messages each ({chats} chats, chunks of 1000) at once: all in the store in {:.1} s ({:.0} messages/s); RSS {:.1} MB before, {:.1} MB at most, {:.1} MB 25 s after",
        chats * per_chat,
        history_took.as_secs_f64(),
        (with_history * chats * per_chat) as f64 / history_took.as_secs_f64(),
        before_history_kb as f64 / 1024.0,
        highest_kb as f64 / 1024.0,
        after_history_kb as f64 / 1024.0
    );
    println!(
        "restart: answering in {:.2} s, all {n} connected again in {:.1} s, at most {peak_handshakes} handshakes at once",
        answered.as_secs_f64(),
        reconnected.as_secs_f64()
    );
}
