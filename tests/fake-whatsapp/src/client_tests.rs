//! Tests of the fake against a real whatsapp-rust client, run in-process: a `Bot`
//! with an in-memory store, the WebSocket transport pointed at the fake, and an
//! HTTP client that fetches media from the fake's loopback host over plain HTTP.
//! Built with history sync on (no `skip_history_sync()`), so that what the fake's
//! phone pushes reaches the client's own history reader.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::buffa::MessageField;
use whatsapp_rust::types::events::Event;
use whatsapp_rust::wacore::net::{HttpClient, HttpRequest, HttpResponse};
use whatsapp_rust::wacore::types::events::LazyHistorySync;
use whatsapp_rust::waproto::whatsapp as wa;

use crate::{
    Device, FakeWhatsApp, HistoryChat, HistoryMessage, HistoryOptions, HistorySyncType,
    generated_history,
};

/// How long the client gets for each step.
const WAIT: Duration = Duration::from_secs(60);

/// Media requests go to the fake's loopback host as plain HTTP (the client always
/// asks for `https://HOST/...`). Downloads only: these tests upload nothing.
struct LoopbackHttp;

#[whatsapp_rust::async_trait]
impl HttpClient for LoopbackHttp {
    async fn execute(&self, request: HttpRequest) -> Result<HttpResponse> {
        ensure!(
            request.method == "GET",
            "only downloads: {}",
            request.method
        );
        let rest = request
            .url
            .strip_prefix("https://")
            .context("a media URL is https")?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        ensure!(
            host.starts_with("127.0.0.1:"),
            "only the fake's loopback host: {}",
            request.url
        );
        let mut stream = tokio::net::TcpStream::connect(host).await?;
        let head = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .context("an HTTP response without a blank line")?;
        let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
        ensure!(!head.contains("transfer-encoding"), "a chunked response");
        let status_code = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("an HTTP response without a status")?;
        Ok(HttpResponse {
            status_code,
            body: response[split + 4..].to_vec(),
        })
    }
}

/// A whatsapp-rust client paired with the fake's default phone, and its events.
struct Client {
    events: Events,
    handle: BotHandle,
    device: Device,
}

impl Client {
    /// Starts a client, has the default phone scan its first QR code and returns
    /// once the companion is linked (not yet logged in).
    async fn link(fake: &FakeWhatsApp) -> Result<Self> {
        // The client's and the fake's logs with `RUST_LOG`, under the test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let (tx, rx) = mpsc::unbounded_channel();
        let bot = Bot::builder()
            .with_backend(whatsapp_rust::wacore::store::InMemoryBackend::new())
            .with_transport_factory(
                whatsapp_rust::transport::TokioWebSocketTransportFactory::new()
                    .with_url(fake.ws_url()),
            )
            .with_http_client(LoopbackHttp)
            .with_version((2, 3000, 1))
            .on_event(move |event, _client| {
                let _ = tx.send(event);
                async {}
            })
            .build()
            .await?;
        let handle = bot.spawn();
        let mut events = Events {
            rx,
            unread: Vec::new(),
        };
        let qr = events
            .next("a QR code", |e| match e {
                Event::PairingQrCode(qr) => Some(qr.code.clone()),
                _ => None,
            })
            .await?;
        let device = fake.scan(&qr).await?;
        Ok(Self {
            events,
            handle,
            device,
        })
    }

    /// A linked client once it is connected and its prekeys are uploaded: notices
    /// pushed to it from then on go out at once.
    async fn logged_in(fake: &FakeWhatsApp) -> Result<Self> {
        let mut client = Self::link(fake).await?;
        client.connected().await?;
        let device = client.device.jid.clone();
        until("the prekey upload", || {
            fake.shared.world().bundles.contains_key(&device)
        })
        .await?;
        Ok(client)
    }

    async fn next<T>(&mut self, what: &str, pick: impl Fn(&Event) -> Option<T>) -> Result<T> {
        self.events.next(what, pick).await
    }

    async fn connected(&mut self) -> Result<()> {
        self.next("Connected", |e| {
            matches!(e, Event::Connected(_)).then_some(())
        })
        .await
    }

    /// The next `count` history syncs, by chunk order.
    async fn history(&mut self, count: usize) -> Result<Vec<LazyHistorySync>> {
        let mut syncs = Vec::new();
        while syncs.len() < count {
            let sync = self
                .next("a history sync", |e| match e {
                    Event::HistorySync(sync) => Some((**sync).clone()),
                    _ => None,
                })
                .await?;
            syncs.push(sync);
        }
        syncs.sort_by_key(LazyHistorySync::chunk_order);
        Ok(syncs)
    }
}

/// A client's events, in the order they were dispatched.
struct Events {
    rx: mpsc::UnboundedReceiver<Arc<Event>>,
    /// Those a test skipped while waiting for another: later waits see them.
    unread: Vec<Arc<Event>>,
}

impl Events {
    /// The first event `pick` takes (taken out of the stream), waiting for it if
    /// none came yet.
    async fn next<T>(&mut self, what: &str, pick: impl Fn(&Event) -> Option<T>) -> Result<T> {
        if let Some((i, found)) = self
            .unread
            .iter()
            .enumerate()
            .find_map(|(i, e)| Some((i, pick(e)?)))
        {
            self.unread.remove(i);
            return Ok(found);
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .map_err(|_| anyhow::anyhow!("no {what} within {WAIT:?}"))?
                .with_context(|| format!("the client stopped before {what}"))?;
            match pick(&event) {
                Some(found) => return Ok(found),
                None => self.unread.push(event),
            }
        }
    }
}

/// What a test compares of a message: id, from_me, participant, timestamp, the
/// message itself.
type Seen = (String, bool, Option<String>, u64, wa::Message);

fn pushed(chats: &[HistoryChat]) -> BTreeMap<String, (Option<String>, Vec<Seen>)> {
    chats
        .iter()
        .map(|c| {
            let messages = c
                .messages
                .iter()
                .map(|m| {
                    let sender = m.sender.clone();
                    (
                        m.id.clone(),
                        m.from_me,
                        sender,
                        m.timestamp,
                        m.message.clone(),
                    )
                })
                .collect();
            (c.jid.clone(), (c.name.clone(), messages))
        })
        .collect()
}

/// Adds the conversation the client decoded to `into` (a chat may come in pieces).
fn take_in(into: &mut BTreeMap<String, (Option<String>, Vec<Seen>)>, c: &wa::Conversation) {
    let entry = into
        .entry(c.id.clone())
        .or_insert_with(|| (c.name.clone(), Vec::new()));
    assert_eq!(
        entry.0, c.name,
        "the name of {} changed between chunks",
        c.id
    );
    for m in &c.messages {
        let info = m.message.as_option().expect("a history message");
        let key = info.key.as_option().expect("a message key");
        assert_eq!(key.remote_jid.as_deref(), Some(c.id.as_str()));
        entry.1.push((
            key.id.clone().unwrap_or_default(),
            key.from_me.unwrap_or_default(),
            key.participant.clone(),
            info.message_timestamp.unwrap_or_default(),
            info.message.as_option().cloned().unwrap_or_default(),
        ));
    }
}

/// Waits until `done` holds, or fails after [`WAIT`].
async fn until(what: &str, done: impl Fn() -> bool) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        if tokio::time::Instant::now() > deadline {
            bail!("{what} did not happen within {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn small_history() -> Vec<HistoryChat> {
    let quote = wa::Message {
        extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
            text: Some("see https://example.com".to_owned()),
            matched_text: Some("https://example.com".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    vec![
        HistoryChat::new(
            "6281234567890@s.whatsapp.net",
            Some("Budi"),
            vec![
                HistoryMessage::text("3EB0AA01", false, 1_700_000_000, "halo")
                    .with_push_name("Budi"),
                HistoryMessage::text("3EB0AA02", true, 1_700_000_060, "halo juga"),
                HistoryMessage::new("3EB0AA03", false, 1_700_000_120, quote),
            ],
        ),
        HistoryChat::new(
            "120363012345678901@g.us",
            Some("Keluarga"),
            vec![
                HistoryMessage::text("3EB0BB01", false, 1_700_000_200, "rapat jam 7")
                    .sent_by("6281111111111@s.whatsapp.net"),
                HistoryMessage::text("3EB0BB02", true, 1_700_000_260, "siap"),
                HistoryMessage::text("3EB0BB03", false, 1_700_000_320, "ok")
                    .sent_by("6282222222222@s.whatsapp.net"),
            ],
        ),
        // A chat the phone lists without messages.
        HistoryChat::new("6289999999999@s.whatsapp.net", None, vec![]),
    ]
}

/// A phone pushes its history right after linking, as WhatsApp does: the client
/// gets it at its first login, downloads the blob once, answers `hist_sync`, and
/// decodes exactly what was pushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_pushed_at_linking_reaches_the_client_as_it_was_pushed() -> Result<()> {
    let fake = FakeWhatsApp::start_local().await?;
    let mut client = Client::link(&fake).await?;
    let chats = small_history();
    let push = fake.push_history(crate::PHONE_USER, &chats).await?;
    assert_eq!(push.chunks.len(), 1);
    let device = client.device.jid.clone();
    // The companion is linked and about to log in: the notice goes out once it can
    // be encrypted for it (after its prekey upload), before or after this returns.
    let reached: Vec<&String> = push.delivered_to.iter().chain(&push.queued_for).collect();
    assert_eq!(reached, [&device]);
    client.connected().await?;
    // The client may take the history in before it reports `Connected`: a wait
    // for one event keeps the others for the next.
    let syncs = client.history(1).await?;
    let sync = &syncs[0];
    assert_eq!(sync.sync_type(), HistorySyncType::INITIAL_BOOTSTRAP as i32);
    assert_eq!((sync.chunk_order(), sync.progress()), (Some(1), Some(100)));
    let decoded = sync.get().context("the client decodes the history")?;
    assert_eq!(decoded.conversations.len(), 3);
    let mut seen = BTreeMap::new();
    for c in &decoded.conversations {
        take_in(&mut seen, c);
    }
    assert_eq!(seen, pushed(&chats));
    let budi = &decoded.conversations[0].messages[0];
    assert_eq!(
        budi.message.as_option().unwrap().push_name.as_deref(),
        Some("Budi")
    );

    // The notice itself also reaches the handlers as a message from the account
    // (as the phone's app-state key share does), its notification taken out.
    let notice = client
        .next("the notice as a message", |e| match e {
            Event::Messages(batch) => batch.messages.iter().find_map(|m| {
                let protocol = m.message.protocol_message.as_option()?;
                let history = wa::message::protocol_message::Type::HISTORY_SYNC_NOTIFICATION;
                (protocol.r#type == Some(history)).then_some(())?;
                Some((
                    protocol.clone(),
                    m.info.source.is_from_me,
                    m.info.id.clone(),
                ))
            }),
            _ => None,
        })
        .await?;
    let (protocol, from_me, notice_id) = notice;
    assert!(protocol.history_sync_notification.as_option().is_none());
    assert!(from_me);

    let chunk = &push.chunks[0];
    assert_eq!(notice_id, chunk.message_ids[&device]);
    assert_eq!(fake.downloads(&chunk.direct_path), 1);
    let id = chunk.message_ids[&device].clone();
    until("the hist_sync receipt", || {
        fake.history_receipts()
            .iter()
            .any(|r| r.device == device && r.message_id == id)
    })
    .await?;
    until("the notice's acknowledgement", || {
        fake.history_unacknowledged() == 0
    })
    .await?;
    assert_eq!(fake.problems(), Vec::<String>::new());
    client.handle.shutdown().await;
    Ok(())
}

/// A bigger history in several chunks, pushed to a logged-in client: one event
/// per chunk, in the announced order, and together exactly the pushed chats, read
/// with the client's incremental reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_in_chunks_reaches_the_client_chunk_by_chunk() -> Result<()> {
    let fake = FakeWhatsApp::start_local().await?;
    let mut client = Client::logged_in(&fake).await?;
    let device = client.device.jid.clone();

    let chats = generated_history(6, 25, 1_700_000_000);
    let options = HistoryOptions {
        messages_per_chunk: 40,
        ..HistoryOptions::default()
    };
    let push = fake
        .push_history_with(crate::PHONE_USER, &chats, options)
        .await?;
    assert_eq!(push.delivered_to, [device.as_str()]);
    assert!(push.queued_for.is_empty());
    // 150 messages, 40 a chunk.
    let sizes: Vec<usize> = push.chunks.iter().map(|c| c.messages).collect();
    assert_eq!(sizes, [40, 40, 40, 30]);

    let syncs = client.history(4).await?;
    let orders: Vec<_> = syncs.iter().map(LazyHistorySync::chunk_order).collect();
    assert_eq!(orders, [Some(1), Some(2), Some(3), Some(4)]);
    let progress: Vec<_> = syncs.iter().map(LazyHistorySync::progress).collect();
    assert_eq!(progress, [Some(25), Some(50), Some(75), Some(100)]);
    let mut seen = BTreeMap::new();
    for sync in &syncs {
        let mut stream = sync.stream();
        let mut messages = 0;
        while let Some(c) = stream.next_conversation()? {
            messages += c.messages.len();
            take_in(&mut seen, &c);
        }
        let order = sync.chunk_order().unwrap_or_default() as usize;
        assert_eq!(messages, push.chunks[order - 1].messages);
    }
    assert_eq!(seen, pushed(&chats));

    for chunk in &push.chunks {
        assert_eq!(
            fake.downloads(&chunk.direct_path),
            1,
            "{}",
            chunk.direct_path
        );
    }
    until("four hist_sync receipts", || {
        fake.history_receipts().len() == 4
    })
    .await?;
    assert_eq!(fake.problems(), Vec::<String>::new());
    client.handle.shutdown().await;
    Ok(())
}

/// History pushed while the companion is offline waits for its next login, as in
/// WhatsApp's offline queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_pushed_while_the_companion_is_offline_comes_at_its_next_login() -> Result<()> {
    let fake = FakeWhatsApp::start_local().await?;
    let mut client = Client::logged_in(&fake).await?;
    let device = client.device.jid.clone();
    let logins_before = logins_of(&fake, &device);
    // Offline for a while: the connection drops and the next attempt is refused.
    fake.set_faults(crate::Faults {
        refuse_connections: 1,
        ..crate::Faults::default()
    });
    assert_eq!(fake.drop_connections(), 1);
    until("the connection's end", || {
        fake.shared.world().sessions.is_empty()
    })
    .await?;

    let chats = generated_history(2, 3, 1_600_000_000);
    let push = fake.push_history(crate::PHONE_USER, &chats).await?;
    assert!(push.delivered_to.is_empty());
    assert_eq!(push.queued_for, [device.as_str()]);
    assert_eq!(fake.history_unacknowledged(), 1);

    let syncs = client.history(1).await?;
    let mut seen = BTreeMap::new();
    for c in &syncs[0]
        .get()
        .context("the client decodes it")?
        .conversations
    {
        take_in(&mut seen, c);
    }
    assert_eq!(seen, pushed(&chats));
    // It logged in again to get it.
    assert!(logins_of(&fake, &device) > logins_before);
    assert_eq!(fake.downloads(&push.chunks[0].direct_path), 1);
    until("the notice's acknowledgement", || {
        fake.history_unacknowledged() == 0
    })
    .await?;
    assert_eq!(fake.problems(), Vec::<String>::new());
    client.handle.shutdown().await;
    Ok(())
}

/// How many times `device` logged in.
fn logins_of(fake: &FakeWhatsApp, device: &str) -> usize {
    let logins = fake.logins();
    let of_device = logins
        .iter()
        .filter(|l| l.device.as_deref() == Some(device));
    of_device.count()
}

/// Nothing is pushed for a phone without a linked companion, or for a number that
/// is not a phone of the fake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pushed_to_a_phone_without_companions_is_refused() -> Result<()> {
    let fake = FakeWhatsApp::start_local().await?;
    let err = fake
        .push_history(crate::PHONE_USER, &small_history())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no linked companion"), "{err:#}");
    let err = fake.push_history("6280000000000", &[]).await.unwrap_err();
    assert!(err.to_string().contains("not a phone"), "{err:#}");
    assert!(fake.history_chunks().is_empty());
    Ok(())
}
