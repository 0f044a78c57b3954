//! Send throughput through HTTP, end to end: the real server binary, paired with the
//! fake WhatsApp server, sends texts to one contact through `POST /send/message` at
//! concurrency 1, 16 and 64; each answer comes once WhatsApp acknowledged the
//! message. Reported: acknowledged messages per second, latency p50/p99, the
//! server's CPU time per message and its peak RSS. Beside it, in the same run, the
//! same sends made directly with the whatsapp-rust client (message id chosen first,
//! its acknowledgement awaited), so that the HTTP layer's cost is a ratio.
//!
//! Then memory after a burst: `BURST` texts (10,000) at 256 connections, the
//! resident memory at once and 30 s later against the idle figure.
//!
//! `cargo bench --features e2e --bench send_throughput` (`MESSAGES=n` per level).

#[path = "../tests/common/mod.rs"]
#[allow(dead_code)]
mod common;
#[path = "../tests/e2e/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_whatsapp::{ContactInfo, FakeWhatsApp};
use harness::Server;
use tokio::sync::{Semaphore, oneshot};
use whatsapp_rust::prelude::*;
use whatsapp_rust::send::SendOptions;

const FRIEND: &str = "6289685028129";
const LEVELS: [usize; 3] = [1, 16, 64];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

struct Run {
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `total` sends, at most `concurrency` at a time; each returns its latency.
async fn run<F, Fut>(total: usize, concurrency: usize, send: F) -> Run
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let send = Arc::new(send);
    let slots = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let tasks: Vec<_> = (0..total)
        .map(|i| {
            let (send, slots) = (send.clone(), slots.clone());
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await.unwrap();
                let at = Instant::now();
                send(i).await;
                at.elapsed()
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    for task in tasks {
        latencies.push(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Run { elapsed, latencies }
}

/// A whatsapp-rust client of its own, paired with the fake as a second companion;
/// acknowledgements are matched to waiters by message id.
struct Direct {
    client: Arc<Client>,
    waiters: Arc<Mutex<HashMap<String, oneshot::Sender<()>>>>,
    _handle: BotHandle,
}

impl Direct {
    async fn pair(fake: &FakeWhatsApp, store: &std::path::Path) -> Direct {
        let backend = SqliteStore::new(store.to_str().unwrap()).await.unwrap();
        let waiters: Arc<Mutex<HashMap<String, oneshot::Sender<()>>>> = Arc::default();
        let (qr_tx, mut qr_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let (up_tx, mut up_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let acks = waiters.clone();
        let bot = Bot::builder()
            .with_backend(backend)
            .with_transport_factory(
                whatsapp_rust::transport::TokioWebSocketTransportFactory::new()
                    .with_url(fake.ws_url()),
            )
            .with_http_client(whatsapp_rust::http::UreqHttpClient::new())
            .with_version((2, 3000, 1))
            .skip_history_sync()
            .on_event(move |event, _client| {
                match &*event {
                    Event::PairingQrCode(qr) => {
                        let _ = qr_tx.send(qr.code.clone());
                    }
                    Event::Connected(_) => {
                        let _ = up_tx.send(());
                    }
                    Event::ServerAck(ack) if ack.class.as_deref() == Some("message") => {
                        if let Some(waiter) = acks.lock().unwrap().remove(&ack.id.to_string()) {
                            let _ = waiter.send(());
                        }
                    }
                    _ => {}
                }
                async {}
            })
            .build()
            .await
            .unwrap();
        let client = bot.client();
        let handle = bot.spawn();
        let code = qr_rx.recv().await.expect("a QR code");
        fake.scan(&code)
            .await
            .expect("the phone pairs the direct client");
        tokio::time::timeout(Duration::from_secs(60), up_rx.recv())
            .await
            .expect("the direct client connects");
        Direct {
            client,
            waiters,
            _handle: handle,
        }
    }

    async fn send(&self, text: String) {
        let id = self.client.generate_message_id();
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().unwrap().insert(id.clone(), tx);
        let to: Jid = format!("{FRIEND}@s.whatsapp.net").parse().unwrap();
        let message = wa::Message {
            conversation: Some(text),
            ..Default::default()
        };
        self.client
            .send_message_with_options(to, message, SendOptions::default().with_message_id(id))
            .await
            .expect("the direct send");
        tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .expect("acknowledged within 30 s")
            .unwrap();
    }
}

#[tokio::main]
async fn main() {
    let total: usize = std::env::var("MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let fake = FakeWhatsApp::start_local().await.unwrap();
    fake.add_contact(FRIEND, ContactInfo::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Through HTTP: the real server binary.
    let mut server = Server::start(&fake, dir.path()).await;
    server.pair(&fake).await;
    let idle_kb = server.rss_kb();
    let mut http = Vec::new();
    for &c in &LEVELS {
        let (client, url) = (server.http.clone(), format!("{}/send/message", server.base));
        let cpu_before = server.cpu_time();
        let result = run(total, c, move |i| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let res = client
                    .post(&url)
                    .json(
                        &serde_json::json!({ "phone": FRIEND, "message": format!("http {c} {i}") }),
                    )
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
            }
        })
        .await;
        let cpu = server.cpu_time() - cpu_before;
        http.push((c, result, cpu));
    }
    // Memory after a burst: BURST texts (default 10,000) at 256 connections, then
    // the resident memory at once and 30 s later, against the idle figure.
    let burst = std::env::var("BURST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let (client, url) = (server.http.clone(), format!("{}/send/message", server.base));
    run(burst, 256, move |i| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let res = client
                .post(&url)
                .json(&serde_json::json!({ "phone": FRIEND, "message": format!("burst {i}") }))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        }
    })
    .await;
    let after_burst_kb = server.rss_kb();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let settled_kb = server.rss_kb();
    let peak_kb = server.peak_rss_kb();
    server.terminate().await;

    // Directly with the library: the baseline.
    let direct = Arc::new(Direct::pair(&fake, &dir.path().join("direct.db")).await);
    let mut baseline = Vec::new();
    for &c in &LEVELS {
        let direct = direct.clone();
        let result = run(total, c, move |i| {
            let direct = direct.clone();
            async move { direct.send(format!("direct {c} {i}")).await }
        })
        .await;
        baseline.push(result);
    }
    assert_eq!(fake.problems(), Vec::<String>::new());

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "send_throughput: {total} texts per level to one contact, each acknowledged by WhatsApp"
    );
    println!(
        "  server RSS: {:.1} MB idle after login, {:.1} MB peak over the run",
        idle_kb as f64 / 1024.0,
        peak_kb as f64 / 1024.0
    );
    println!(
        "  after {burst} texts at 256 connections: {:.1} MB at once, {:.1} MB 30 s later ({:.2}x idle)",
        after_burst_kb as f64 / 1024.0,
        settled_kb as f64 / 1024.0,
        settled_kb as f64 / idle_kb as f64
    );
    println!(
        "  {:>11} | {:>22} | {:>22} | {:>6} | {:>12}",
        "concurrency", "HTTP msg/s (p50/p99 ms)", "direct msg/s (p50/p99)", "ratio", "CPU ms/msg"
    );
    for ((c, h, cpu), d) in http.iter().zip(&baseline) {
        println!(
            "  {:>11} | {:>7.0} ({:>5.1}/{:>6.1}) | {:>7.0} ({:>5.1}/{:>6.1}) | {:>5.2}x | {:>12.3}",
            c,
            h.rate(),
            ms(percentile(&h.latencies, 0.50)),
            ms(percentile(&h.latencies, 0.99)),
            d.rate(),
            ms(percentile(&d.latencies, 0.50)),
            ms(percentile(&d.latencies, 0.99)),
            h.rate() / d.rate(),
            ms(*cpu) / total as f64,
        );
    }
}
