//! Send throughput through HTTP, end to end: the real server binary, paired with the
//! fake WhatsApp server, sends texts to one contact through `POST /send/message` at
//! concurrency 1, 16 and 64; each answer comes once WhatsApp acknowledged the
//! message. Reported: acknowledged messages per second, latency p50/p99, the
//! server's CPU time per message and its peak RSS. Beside it, in the same run, the
//! same sends made directly with the whatsapp-rust client (message id chosen first,
//! its acknowledgement awaited) in a process of its own (this binary, started again
//! with `DIRECT_CLIENT_WS` set), so that both the HTTP layer's throughput and its
//! CPU per message are ratios against the bare library.
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

/// A whatsapp-rust client of its own, paired with the fake as another companion;
/// acknowledgements are matched to waiters by message id. Runs in the child
/// process: its QR codes go to stdout as `qr CODE` lines for the parent to scan.
struct Direct {
    client: Arc<Client>,
    waiters: Arc<Mutex<HashMap<String, oneshot::Sender<()>>>>,
    _handle: BotHandle,
}

impl Direct {
    async fn pair(ws_url: String, store: &str) -> Direct {
        let backend = SqliteStore::new(store).await.unwrap();
        let waiters: Arc<Mutex<HashMap<String, oneshot::Sender<()>>>> = Arc::default();
        let (up_tx, mut up_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let acks = waiters.clone();
        let bot = Bot::builder()
            .with_backend(backend)
            .with_transport_factory(
                whatsapp_rust::transport::TokioWebSocketTransportFactory::new().with_url(ws_url),
            )
            .with_http_client(whatsapp_rust::http::UreqHttpClient::new())
            .with_version((2, 3000, 1))
            .skip_history_sync()
            .on_event(move |event, _client| {
                match &*event {
                    Event::PairingQrCode(qr) => println!("qr {}", qr.code),
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

/// The child process: pairs, then sends `total` texts at each level and prints one
/// `level C ELAPSED_NS CPU_NS P50_NS P99_NS` line per level.
async fn direct_child(ws_url: String, store: String, total: usize) {
    let direct = Arc::new(Direct::pair(ws_url, &store).await);
    println!("ready");
    for &c in &LEVELS {
        let cpu_before = harness::cpu_time_of(std::process::id());
        let d = direct.clone();
        let result = run(total, c, move |i| {
            let d = d.clone();
            async move { d.send(format!("direct {c} {i}")).await }
        })
        .await;
        let cpu = harness::cpu_time_of(std::process::id()) - cpu_before;
        println!(
            "level {c} {} {} {} {}",
            result.elapsed.as_nanos(),
            cpu.as_nanos(),
            percentile(&result.latencies, 0.50).as_nanos(),
            percentile(&result.latencies, 0.99).as_nanos(),
        );
    }
}

/// One level of the bare client's run, as the child reported it.
struct DirectLevel {
    rate: f64,
    p50: Duration,
    p99: Duration,
    cpu: Duration,
}

/// Starts the child, scans its QR code with the fake's phone, and reads its levels.
async fn direct_levels(
    fake: &FakeWhatsApp,
    store: &std::path::Path,
    total: usize,
) -> Vec<DirectLevel> {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .env("DIRECT_CLIENT_WS", fake.ws_url())
        .env("DIRECT_CLIENT_STORE", store)
        .env("MESSAGES", total.to_string())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the direct client process starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut scanned = false;
    let mut levels = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        let mut words = line.split(' ');
        match words.next() {
            Some("qr") if !scanned => {
                fake.scan(words.next().unwrap())
                    .await
                    .expect("the phone pairs the direct client");
                scanned = true;
            }
            Some("level") => {
                let n: Vec<u128> = words.map(|w| w.parse().unwrap()).collect();
                let ns = |v: u128| Duration::from_nanos(v as u64);
                levels.push(DirectLevel {
                    rate: total as f64 / ns(n[1]).as_secs_f64(),
                    cpu: ns(n[2]),
                    p50: ns(n[3]),
                    p99: ns(n[4]),
                });
            }
            _ => {}
        }
    }
    assert!(
        child.wait().await.unwrap().success(),
        "the direct client process"
    );
    assert_eq!(
        levels.len(),
        LEVELS.len(),
        "a line per level from the direct client"
    );
    levels
}

#[tokio::main]
async fn main() {
    let total: usize = std::env::var("MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    if let Ok(ws_url) = std::env::var("DIRECT_CLIENT_WS") {
        let store = std::env::var("DIRECT_CLIENT_STORE").unwrap();
        return direct_child(ws_url, store, total).await;
    }
    let fake = FakeWhatsApp::start_local().await.unwrap();
    fake.add_contact(FRIEND, ContactInfo::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Through HTTP: the real server binary.
    let mut server = Server::start(&fake, dir.path()).await;
    server.pair(&fake).await;
    let idle_kb = server.rss_kb();
    let idle_split = server.rss_split_kb();
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
    // Its own client, dropped after the burst: 256 callers that came and went.
    let burst_client = reqwest::Client::new();
    let (client, url) = (
        burst_client.clone(),
        format!("{}/send/message", server.base),
    );
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
    drop(burst_client);
    let after_burst_kb = server.rss_kb();
    let after_burst_split = server.rss_split_kb();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let settled_kb = server.rss_kb();
    let settled_split = server.rss_split_kb();
    let peak_kb = server.peak_rss_kb();
    server.terminate().await;

    // Directly with the library, in a process of its own: the baseline.
    let baseline = direct_levels(&fake, &dir.path().join("direct.db"), total).await;
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
    let split = |(anon, file): (u64, u64)| {
        format!(
            "{:.1} MB heap and other anonymous + {:.1} MB file-backed (code)",
            anon as f64 / 1024.0,
            file as f64 / 1024.0
        )
    };
    println!("    idle: {}", split(idle_split));
    println!("    after the burst: {}", split(after_burst_split));
    println!(
        "    30 s later: {} (anonymous {:.2}x idle)",
        split(settled_split),
        settled_split.0 as f64 / idle_split.0 as f64
    );
    println!(
        "  {:>11} | {:>22} | {:>22} | {:>10} | {:>22}",
        "concurrency",
        "HTTP msg/s (p50/p99 ms)",
        "direct msg/s (p50/p99)",
        "throughput",
        "CPU ms/msg HTTP/direct"
    );
    for ((c, h, cpu), d) in http.iter().zip(&baseline) {
        let (http_cpu, direct_cpu) = (ms(*cpu) / total as f64, ms(d.cpu) / total as f64);
        println!(
            "  {:>11} | {:>7.0} ({:>5.1}/{:>6.1}) | {:>7.0} ({:>5.1}/{:>6.1}) | {:>9.2}x | {:>5.3}/{:>5.3} = {:>5.2}x",
            c,
            h.rate(),
            ms(percentile(&h.latencies, 0.50)),
            ms(percentile(&h.latencies, 0.99)),
            d.rate,
            ms(d.p50),
            ms(d.p99),
            h.rate() / d.rate,
            http_cpu,
            direct_cpu,
            http_cpu / direct_cpu,
        );
    }
}
