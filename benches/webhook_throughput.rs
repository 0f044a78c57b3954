//! Receiving throughput, end to end: the real server binary paired with the fake
//! WhatsApp server, which delivers 5,000 messages from 10 contacts; a local receiver
//! takes the webhooks. Reports events per second and the delay from WhatsApp
//! delivery to webhook (p50, p99), against a baseline measured in the same run: the
//! same messages received with no webhook configured (stored and acknowledged only).
//!
//! `cargo bench --features e2e --bench webhook_throughput` (`MESSAGES=n` to change
//! the count; `STORE=postgres` to keep everything in a Postgres of its own, with
//! fsync and synchronous commits on, through `--db-uri`).

#[path = "../tests/common/mod.rs"]
#[allow(dead_code)]
mod common;
#[path = "../tests/e2e/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use fake_whatsapp::{ContactInfo, FakeWhatsApp};
use harness::Server;

const CONTACTS: usize = 10;

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn receive(State(arrivals): State<Arrivals>, body: Bytes) -> &'static str {
    let now = Instant::now();
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if let Some(id) = value["payload"]["id"].as_str() {
        arrivals.lock().unwrap().entry(id.to_owned()).or_insert(now);
    }
    "ok"
}

async fn receiver() -> (String, Arrivals) {
    let arrivals = Arrivals::default();
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, arrivals)
}

/// Delivers `total` messages, one task per contact, as fast as possible or at
/// `rate` messages per second in all; returns when each went out.
async fn deliver(
    fake: &FakeWhatsApp,
    contacts: &[String],
    total: usize,
    rate: Option<f64>,
) -> HashMap<String, Instant> {
    let per_contact = total / contacts.len();
    let tasks = contacts.iter().map(|contact| {
        let (fake, contact) = (fake.clone(), contact.clone());
        let mut pace = rate.map(|r| {
            let mut every = tokio::time::interval(Duration::from_secs_f64(CONTACTS as f64 / r));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every
        });
        tokio::spawn(async move {
            let mut sent = Vec::with_capacity(per_contact);
            for i in 0..per_contact {
                if let Some(pace) = &mut pace {
                    pace.tick().await;
                }
                let at = Instant::now();
                let id = fake
                    .deliver(&contact, &format!("message {i}"))
                    .await
                    .unwrap();
                sent.push((id, at));
            }
            sent
        })
    });
    let mut sent = HashMap::new();
    for task in futures_util::future::join_all(tasks).await {
        sent.extend(task.unwrap());
    }
    sent
}

async fn wait_until(what: &str, within: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A paired server; with `webhook`, sending to it.
async fn paired(webhook: Option<&str>) -> (FakeWhatsApp, Server, Vec<String>, tempfile::TempDir) {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    let contacts: Vec<String> = (0..CONTACTS).map(|i| format!("62811000{i:04}")).collect();
    for contact in &contacts {
        fake.add_contact(contact, ContactInfo::default()).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<&str> = match webhook {
        Some(url) => vec!["--webhook", url],
        None => vec![],
    };
    let server = Server::start_with(&fake, dir.path(), &args).await;
    server.pair(&fake).await;
    (fake, server, contacts, dir)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    match std::env::var("STORE").as_deref() {
        Ok("postgres") => harness::on_durable_postgres(run()).await,
        _ => run().await,
    }
}

async fn run() {
    let total: usize = std::env::var("MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
        / CONTACTS
        * CONTACTS;

    // Baseline: received, stored and acknowledged, no webhook.
    let (fake, server, contacts, _dir) = paired(None).await;
    let started = Instant::now();
    deliver(&fake, &contacts, total, None).await;
    wait_until("every ack (baseline)", Duration::from_secs(600), || {
        fake.unacked() == 0
    })
    .await;
    let baseline = started.elapsed();
    drop(server);

    // With a webhook.
    let (url, arrivals) = receiver().await;
    let (fake, _server, contacts, _dir) = paired(Some(&url)).await;
    let started = Instant::now();
    let sent = deliver(&fake, &contacts, total, None).await;
    wait_until("every ack", Duration::from_secs(600), || {
        fake.unacked() == 0
    })
    .await;
    let acked = started.elapsed();
    wait_until("every webhook", Duration::from_secs(600), || {
        arrivals.lock().unwrap().len() >= total
    })
    .await;
    let seen = arrivals.lock().unwrap().clone();
    let last = seen.values().max().copied().unwrap();
    let delivered = last - started;
    let delays = |sent: &HashMap<String, Instant>, seen: &HashMap<String, Instant>| {
        let mut delays: Vec<Duration> = sent
            .iter()
            .map(|(id, at)| seen[id].saturating_duration_since(*at))
            .collect();
        delays.sort();
        delays
    };
    let burst = delays(&sent, &seen);

    // Paced below capacity: the delay without a queue in front of it.
    let paced_total = (total / 2).max(CONTACTS);
    let paced_rate = 500.0;
    let sent = deliver(&fake, &contacts, paced_total, Some(paced_rate)).await;
    wait_until("every paced webhook", Duration::from_secs(600), || {
        let seen = arrivals.lock().unwrap();
        sent.keys().all(|id| seen.contains_key(id))
    })
    .await;
    let paced = delays(&sent, &arrivals.lock().unwrap());

    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    let store = match std::env::var("STORE").as_deref() {
        Ok("postgres") => "Postgres",
        _ => "SQLite files",
    };
    println!(
        "webhook_throughput: {total} incoming messages from {CONTACTS} contacts, stores in {store}"
    );
    println!(
        "  baseline (no webhook): all acknowledged in {:.2} s = {:.0} messages/s",
        baseline.as_secs_f64(),
        rate(baseline)
    );
    println!(
        "  with a webhook: all acknowledged in {:.2} s = {:.0} messages/s ({:.2}x the baseline)",
        acked.as_secs_f64(),
        rate(acked),
        rate(acked) / rate(baseline)
    );
    println!(
        "  webhooks: all {total} delivered in {:.2} s = {:.0} events/s ({:.2}x the baseline's messages/s)",
        delivered.as_secs_f64(),
        rate(delivered),
        rate(delivered) / rate(baseline)
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "  delay from WhatsApp delivery to webhook, burst (queueing included): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&burst, 0.50)),
        ms(percentile(&burst, 0.99)),
        ms(*burst.last().unwrap())
    );
    println!(
        "  delay from WhatsApp delivery to webhook, {} messages paced at {paced_rate:.0}/s: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        paced.len(),
        ms(percentile(&paced, 0.50)),
        ms(percentile(&paced, 0.99)),
        ms(*paced.last().unwrap())
    );
}
