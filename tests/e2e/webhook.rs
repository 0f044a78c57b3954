//! Receiving: incoming messages reach webhook receivers in the Go shape, signed, at
//! least once, in order per chat, across receiver outages and server crashes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use fake_whatsapp::{ContactInfo, FakeWhatsApp};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::harness::{Server, wait_for};
use crate::send::FRIEND;

pub(crate) const OTHER: &str = "6289685028777";
pub(crate) const SECRET: &str = "s3cret";

/// One request the receiver got, and what it answered.
#[derive(Clone, Debug)]
pub(crate) struct Hit {
    pub headers: HeaderMap,
    pub raw: Bytes,
    pub body: Value,
    pub answered: u16,
}

impl Hit {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

#[derive(Default)]
pub(crate) struct ReceiverState {
    pub hits: Vec<Hit>,
    /// Answers for the next requests, then `default`.
    pub script: VecDeque<u16>,
    pub default: u16,
    pub delay: Duration,
}

/// A webhook receiver on loopback.
#[derive(Clone)]
pub(crate) struct Receiver {
    pub url: String,
    state: Arc<Mutex<ReceiverState>>,
}

impl Receiver {
    pub(crate) async fn start(default: u16) -> Receiver {
        let state = Arc::new(Mutex::new(ReceiverState {
            default,
            ..ReceiverState::default()
        }));
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, state }
    }

    pub(crate) fn hits(&self) -> Vec<Hit> {
        self.state.lock().unwrap().hits.clone()
    }

    /// The events answered with a 2xx, in arrival order.
    pub(crate) fn accepted(&self) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.answered < 300)
            .collect()
    }

    pub(crate) fn set(&self, change: impl FnOnce(&mut ReceiverState)) {
        change(&mut self.state.lock().unwrap());
    }
}

async fn receive(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    headers: HeaderMap,
    raw: Bytes,
) -> StatusCode {
    let delay = state.lock().unwrap().delay;
    tokio::time::sleep(delay).await;
    let mut state = state.lock().unwrap();
    let answered = state.script.pop_front().unwrap_or(state.default);
    state.hits.push(Hit {
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        headers,
        raw,
        answered,
    });
    StatusCode::from_u16(answered).unwrap()
}

pub(crate) fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fake with two contacts and a server paired with it, sending webhooks to `urls`.
async fn paired_with_webhooks(urls: &[&str]) -> (FakeWhatsApp, Server, tempfile::TempDir) {
    paired_with_webhooks_and(urls, &[]).await
}

pub(crate) async fn paired_with_webhooks_and(
    urls: &[&str],
    extra: &[&str],
) -> (FakeWhatsApp, Server, tempfile::TempDir) {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    fake.add_contact(FRIEND, ContactInfo::default()).unwrap();
    fake.add_contact(OTHER, ContactInfo::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hooks = urls.join(",");
    let mut args = vec!["--webhook", hooks.as_str(), "--webhook-secret", SECRET];
    args.extend_from_slice(extra);
    let server = Server::start_with(&fake, dir.path(), &args).await;
    server.pair(&fake).await;
    (fake, server, dir)
}

async fn an_incoming_text_reaches_the_webhook_signed_in_the_go_shape() {
    let receiver = Receiver::start(200).await;
    let (fake, server, _dir) = paired_with_webhooks(&[&receiver.url]).await;
    let id = fake.deliver(FRIEND, "hello <there> & you").await.unwrap();
    wait_for("the webhook", Duration::from_secs(15), || {
        !receiver.hits().is_empty()
    })
    .await;
    let hit = &receiver.hits()[0];
    assert_eq!(hit.header("content-type"), "application/json");
    assert_eq!(hit.header("content-length"), hit.raw.len().to_string());
    let signature = hit.header("x-hub-signature-256");
    assert_eq!(signature, format!("sha256={}", hmac_hex(SECRET, &hit.raw)));
    assert_ne!(
        signature,
        format!("sha256={}", hmac_hex("secret", &hit.raw))
    );
    assert_eq!(hit.header("x-webhook-attempt"), "1");

    let body = &hit.body;
    assert_eq!(hit.header("x-webhook-id"), body["id"].as_str().unwrap());
    assert_eq!(body["event"], "message");
    assert_eq!(body["device_id"], fake.phone_jid());
    let payload = &body["payload"];
    let friend = format!("{FRIEND}@s.whatsapp.net");
    assert_eq!(payload["id"], id.as_str());
    assert_eq!(payload["chat_id"], friend.as_str());
    assert_eq!(payload["from"], friend.as_str());
    assert_eq!(payload["body"], "hello <there> & you");
    assert_eq!(payload["is_from_me"], false);
    let t = payload["timestamp"].as_str().unwrap();
    assert!(t.parse::<jiff::Timestamp>().is_ok(), "{t}");
    // Compact, keys sorted, as Go writes it.
    let raw = std::str::from_utf8(&hit.raw).unwrap();
    assert!(raw.starts_with(r#"{"device_id":"#), "{raw}");
    assert!(!raw.contains(": ") && !raw.ends_with('\n'), "{raw}");
    assert!(server.log().contains("connected to WhatsApp"));
}

#[tokio::test]
async fn a_503_is_retried_with_the_same_event_id_and_a_400_is_not() {
    let receiver = Receiver::start(200).await;
    receiver.set(|s| s.script = [503, 503].into());
    // A token in the query string stays out of /webhook/status.
    let url = format!("{}?token=hush", receiver.url);
    let (fake, server, _dir) = paired_with_webhooks(&[&url]).await;
    fake.deliver(FRIEND, "retry me").await.unwrap();
    wait_for("the third attempt", Duration::from_secs(20), || {
        !receiver.accepted().is_empty()
    })
    .await;
    let hits = receiver.hits();
    assert_eq!(hits.len(), 3, "{hits:?}");
    let ids: Vec<&str> = hits.iter().map(|h| h.header("x-webhook-id")).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let attempts: Vec<&str> = hits.iter().map(|h| h.header("x-webhook-attempt")).collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    assert_eq!(hits[0].raw, hits[2].raw, "the same bytes every time");

    receiver.set(|s| s.default = 400);
    fake.deliver(FRIEND, "refused").await.unwrap();
    wait_for("the refused event", Duration::from_secs(15), || {
        receiver.hits().len() == 4
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(receiver.hits().len(), 4, "a 400 was retried");

    let status = server.get("/webhook/status").await;
    assert_eq!(status.status, 200, "{}", status.body);
    let results = &status.body["results"];
    assert_eq!(
        (results["pending"].as_u64(), results["dead"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(results["full"], false);
    let one = &results["urls"][0];
    assert_eq!(one["url"], format!("{}?…", receiver.url).as_str());
    assert_eq!(one["dead"], 1);
    assert_eq!(one["last_error"], "HTTP 400");
    assert!(
        one["last_error_at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok()
    );
    assert!(one["last_delivered_at"].is_string());
    assert!(!status.body.to_string().contains("hush"));
    assert!(!server.log().contains("hush"), "the URL's token was logged");
}

#[tokio::test]
async fn events_survive_a_receiver_outage_and_a_kill_9_and_arrive_in_order_per_chat() {
    survive_an_outage_and_a_kill_9(&[], |_| async {}).await;
}

/// Forty events wait while the receiver refuses them (`waiting` looks at the
/// server's storage folder and wherever else they wait then), the server is killed and restarted, and every event arrives, in
/// order per chat, duplicates only with the same id. `extra`: more arguments.
pub(crate) async fn survive_an_outage_and_a_kill_9<F: std::future::Future<Output = ()>>(
    extra: &[&str],
    waiting: impl FnOnce(std::path::PathBuf) -> F,
) {
    let receiver = Receiver::start(503).await;
    let (fake, mut server, _dir) = paired_with_webhooks_and(&[&receiver.url], extra).await;
    let mut sent: HashMap<&str, Vec<String>> = HashMap::new();
    for i in 0..20 {
        for from in [FRIEND, OTHER] {
            let text = format!("{from} #{i}");
            fake.deliver(from, &text).await.unwrap();
            sent.entry(from).or_default().push(text);
        }
    }
    // Every event is in the outbox (the head of each chat keeps being refused).
    server
        .wait_status("40 events in the outbox", |s| {
            s["webhooks"]["pending"] == 40
        })
        .await;
    assert!(!receiver.hits().is_empty(), "the receiver was tried");
    waiting(server.db_path().parent().unwrap().to_owned()).await;
    let texts = |hits: Vec<Hit>| -> Vec<String> {
        hits.iter()
            .map(|h| h.body["payload"]["body"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    server.kill_and_restart().await;
    receiver.set(|s| s.default = 200);
    wait_for(
        "every event to be accepted",
        Duration::from_secs(60),
        || {
            let accepted: std::collections::HashSet<String> =
                texts(receiver.accepted()).into_iter().collect();
            sent.values().flatten().all(|t| accepted.contains(t))
        },
    )
    .await;

    let accepted = receiver.accepted();
    // Duplicates only ever carry the same event id.
    let mut id_of: HashMap<String, String> = HashMap::new();
    for hit in &accepted {
        let text = hit.body["payload"]["body"].as_str().unwrap().to_owned();
        let id = hit.header("x-webhook-id").to_owned();
        assert_eq!(id_of.entry(text).or_insert_with(|| id.clone()), &id);
    }
    // In order per chat.
    for (from, texts_sent) in &sent {
        let chat = format!("{from}@s.whatsapp.net");
        let mut order: Vec<String> = accepted
            .iter()
            .filter(|h| h.body["payload"]["chat_id"] == chat.as_str())
            .map(|h| h.body["payload"]["body"].as_str().unwrap().to_owned())
            .collect();
        order.dedup();
        assert_eq!(&order, texts_sent, "{chat}");
    }
    server
        .wait_status("an empty outbox", |s| s["webhooks"]["pending"] == 0)
        .await;
}

#[tokio::test]
async fn a_slow_receiver_does_not_delay_another() {
    let slow = Receiver::start(200).await;
    slow.set(|s| s.delay = Duration::from_secs(8));
    let fast = Receiver::start(200).await;
    let (fake, _server, _dir) = paired_with_webhooks(&[&slow.url, &fast.url]).await;
    let started = std::time::Instant::now();
    fake.deliver(FRIEND, "to both").await.unwrap();
    wait_for("the fast receiver", Duration::from_secs(5), || {
        !fast.hits().is_empty()
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(slow.hits().is_empty(), "the slow one answered already");
    wait_for("the slow receiver", Duration::from_secs(20), || {
        !slow.hits().is_empty()
    })
    .await;
    assert_eq!(slow.hits()[0].raw, fast.hits()[0].raw);
}

#[tokio::test]
async fn ignored_chats_send_no_webhook() {
    let receiver = Receiver::start(200).await;
    let ignored = format!("{OTHER}@s.whatsapp.net");
    let args = ["--webhook-ignore-jids", ignored.as_str()];
    let (fake, _server, _dir) = paired_with_webhooks_and(&[&receiver.url], &args).await;
    fake.deliver(OTHER, "not for the webhook").await.unwrap();
    fake.deliver(FRIEND, "for the webhook").await.unwrap();
    wait_for("the webhook", Duration::from_secs(15), || {
        !receiver.hits().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let bodies: Vec<Value> = receiver
        .hits()
        .iter()
        .map(|h| h.body["payload"]["body"].clone())
        .collect();
    assert_eq!(bodies, [Value::from("for the webhook")]);
}

#[tokio::test]
async fn delivery_and_read_receipts_reach_the_webhook_as_message_ack() {
    let receiver = Receiver::start(200).await;
    let (fake, server, _dir) = paired_with_webhooks(&[&receiver.url]).await;
    // The contact's phone confirms delivery, then reading, of what it gets.
    fake.set_faults(fake_whatsapp::Faults {
        flood_per_message: 2,
        ..fake_whatsapp::Faults::default()
    });
    let reply = server
        .post_form(
            "/send/message",
            &[("phone", FRIEND), ("message", "read me")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = fake
        .received()
        .into_iter()
        .find(|r| r.recipient == FRIEND)
        .unwrap()
        .id;
    wait_for("two receipts", Duration::from_secs(15), || {
        receiver.hits().len() >= 2
    })
    .await;
    let friend = format!("{FRIEND}@s.whatsapp.net");
    let mut kinds = Vec::new();
    for hit in receiver.hits() {
        let body = &hit.body;
        assert_eq!(body["event"], "message.ack", "{body}");
        assert!(
            body["timestamp"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .is_ok()
        );
        let payload = &body["payload"];
        assert_eq!(payload["ids"], serde_json::json!([id]));
        assert_eq!(payload["chat_id"], friend.as_str());
        assert_eq!(payload["from"], friend.as_str());
        kinds.push(payload["receipt_type"].as_str().unwrap().to_owned());
    }
    kinds.sort();
    assert_eq!(kinds, ["delivered", "read"]);
    let descriptions: Vec<String> = receiver
        .hits()
        .iter()
        .map(|h| {
            h.body["payload"]["receipt_type_description"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(descriptions.contains(&"the user opened the chat and saw the message.".to_owned()));
}

/// Texts of the accepted events, each with the one event id it always carried.
fn accepted_ids(receiver: &Receiver) -> HashMap<String, String> {
    let mut id_of: HashMap<String, String> = HashMap::new();
    for hit in receiver.accepted() {
        let text = hit.body["payload"]["body"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let id = hit.header("x-webhook-id").to_owned();
        let first = id_of.entry(text.clone()).or_insert_with(|| id.clone());
        assert_eq!(first, &id, "{text} came with two event ids");
    }
    id_of
}

/// First arrivals in order per chat (a duplicate, when a crash hit between a 2xx
/// and its record, comes later).
fn assert_ordered_per_chat(receiver: &Receiver, sent: &HashMap<&str, Vec<String>>) {
    for (from, texts) in sent {
        let chat = format!("{from}@s.whatsapp.net");
        let mut seen = std::collections::HashSet::new();
        let order: Vec<String> = receiver
            .accepted()
            .iter()
            .filter(|h| h.body["payload"]["chat_id"] == chat.as_str())
            .map(|h| h.body["payload"]["body"].as_str().unwrap().to_owned())
            .filter(|t| texts.contains(t) && seen.insert(t.clone()))
            .collect();
        assert_eq!(&order, texts, "{chat}");
    }
}

#[tokio::test]
async fn kill_9_right_after_a_burst_and_during_delivery_loses_no_message() {
    let receiver = Receiver::start(200).await;
    receiver.set(|s| s.delay = Duration::from_millis(40));
    let (fake, mut server, _dir) = paired_with_webhooks(&[&receiver.url]).await;

    for round in 0..2 {
        let mut sent: HashMap<&str, Vec<String>> = HashMap::new();
        for i in 0..100 {
            for from in [FRIEND, OTHER] {
                let text = format!("round {round}: {from} #{i}");
                fake.deliver(from, &text).await.unwrap();
                sent.entry(from).or_default().push(text);
            }
        }
        if round == 1 {
            // In the middle of webhook delivery.
            wait_for("some deliveries", Duration::from_secs(30), || {
                receiver.accepted().len() >= 220
            })
            .await;
        }
        let unacked = fake.unacked();
        let delivered = receiver.accepted().len();
        server.kill_and_restart().await;
        eprintln!(
            "round {round}: killed with {unacked} messages unacknowledged to WhatsApp and \
             {delivered} webhooks accepted in all"
        );
        wait_for(
            "every message at the receiver",
            Duration::from_secs(90),
            || {
                let ids = accepted_ids(&receiver);
                sent.values().flatten().all(|t| ids.contains_key(t))
            },
        )
        .await;
        assert_ordered_per_chat(&receiver, &sent);
        let acked = tokio::time::timeout(Duration::from_secs(15), async {
            while fake.unacked() > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        assert!(
            acked.is_ok(),
            "{} messages never acknowledged to WhatsApp; server log:\n{}",
            fake.unacked(),
            server.log()
        );
    }
    let hits = receiver.accepted().len();
    let distinct = accepted_ids(&receiver).len();
    eprintln!("{hits} webhooks accepted for {distinct} messages");
    assert_eq!(distinct, 400);
    assert!(fake.problems().is_empty(), "{:?}", fake.problems());
}

crate::on_both_stores!(an_incoming_text_reaches_the_webhook_signed_in_the_go_shape,);
