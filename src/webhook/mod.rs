//! Webhooks: incoming messages become events in the Go server's format, stored in a
//! durable outbox before WhatsApp gets its acknowledgement, and delivered to every
//! URL independently, at least once, in order per chat.
//!
//! | file | responsibility |
//! |---|---|
//! | [`event`] | the Go-shaped events and their stable ids |
//! | [`outbox`] | the SQLite outbox |
//! | [`delivery`] | one worker per URL: signing, retries, backoff |
//! | [`hook`] | whatsapp-rust's inbound durability hook, which fills the outbox |
//! | [`media`] | incoming media downloaded into `statics/media/` for the payloads |

pub mod delivery;
pub mod event;
pub mod hook;
pub mod media;
pub mod outbox;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tracing::{info, warn};

use outbox::{Counts, NewEvent, Outbox, OutboxError, OutboxStore};

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub urls: Vec<String>,
    pub secret: String,
    /// Event names to send (case-insensitive); empty sends all.
    pub events: Vec<String>,
    pub outbox_path: PathBuf,
    /// The account's outbox in PostgreSQL (`--db-uri`), used instead of the file.
    pub outbox_postgres: Option<crate::postgres::outbox::PgOutbox>,
    pub max_events: u64,
    /// How long an event is retried before it is marked dead.
    pub max_age: Duration,
    /// Chats and senders whose events are not sent: exact JIDs, or `@server`
    /// suffixes such as `@g.us`.
    pub ignore_jids: Vec<String>,
    /// Accept any certificate from webhook receivers (self-signed test setups).
    pub insecure_skip_verify: bool,
    /// The account's slot id, added to every event as `session_id` (Go v8.8+).
    pub session_id: Option<String>,
    /// Where incoming media is downloaded; `None` sends media URLs only.
    pub media: Option<media::MediaConfig>,
}

pub struct Webhooks {
    config: WebhookConfig,
    outbox: OutboxStore,
    /// One per URL: wakes its worker when events arrive.
    wake: HashMap<String, Arc<Notify>>,
    media: Option<Arc<media::MediaSaver>>,
    /// The latest outcomes per URL, for `/webhook/status`.
    health: Mutex<HashMap<String, UrlHealth>>,
    /// Events stored by [`record_in_background`](Self::record_in_background).
    background: mpsc::UnboundedSender<NewEvent>,
    /// Set once by [`stop`](Self::stop): the workers end.
    stopped: tokio::sync::watch::Sender<bool>,
}

/// The latest outcomes of one URL (since this process started).
#[derive(Debug, Clone, Default)]
struct UrlHealth {
    last_error: Option<(String, i64)>,
    last_delivered_at: Option<i64>,
}

/// What `/webhook/status` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WebhookStatus {
    /// Events in the outbox, and how many it holds at most.
    pub events: u64,
    pub max_events: u64,
    /// The outbox is full: incoming messages are not acknowledged until it drains.
    pub full: bool,
    pub pending: u64,
    pub retrying: u64,
    pub dead: u64,
    pub urls: Vec<UrlStatus>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct UrlStatus {
    /// Without credentials or query string, which may hold secrets.
    pub url: String,
    pub pending: u64,
    pub retrying: u64,
    pub dead: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub last_delivered_at: Option<String>,
}

impl Webhooks {
    /// Opens the outbox and starts one delivery worker per URL; events left by an
    /// earlier run are delivered.
    pub async fn start(config: WebhookConfig) -> Result<Arc<Self>, OutboxError> {
        let outbox = match &config.outbox_postgres {
            Some(outbox) => OutboxStore::Postgres(outbox.clone()),
            None => {
                if let Some(dir) = config
                    .outbox_path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(dir).map_err(OutboxError::Folder)?;
                }
                OutboxStore::Sqlite(Arc::new(Outbox::open(
                    &config.outbox_path,
                    config.max_events,
                )?))
            }
        };
        let dropped = outbox.retain_urls(config.urls.clone()).await?;
        if dropped > 0 {
            warn!(
                deliveries = dropped,
                "dropped pending deliveries to URLs no longer configured"
            );
        }
        if config.insecure_skip_verify {
            warn!(
                "webhook receivers' TLS certificates are NOT verified \
                 (--webhook-insecure-skip-verify)"
            );
        }
        let window = config.max_age.as_secs() as i64;
        outbox.forget_done(unix_now() - window).await?;
        let counts = outbox.counts().await?;
        if counts.pending > 0 {
            info!(
                pending = counts.pending,
                "delivering webhook events left by an earlier run"
            );
        }
        let wake = config
            .urls
            .iter()
            .map(|url| (url.clone(), Arc::new(Notify::new())))
            .collect();
        let media = config
            .media
            .clone()
            .map(|c| Arc::new(media::MediaSaver::new(c)));
        if let Some(saver) = &media {
            saver.spawn_sweeper();
        }
        let (background, queued) = mpsc::unbounded_channel();
        let webhooks = Arc::new(Webhooks {
            config,
            outbox,
            wake,
            media,
            health: Mutex::default(),
            background,
            stopped: tokio::sync::watch::channel(false).0,
        });
        tokio::spawn(record_queued(Arc::downgrade(&webhooks), queued));
        for url in &webhooks.config.urls {
            tokio::spawn(delivery::worker(webhooks.clone(), url.clone()));
        }
        tokio::spawn(forget_done_hourly(
            webhooks.outbox.clone(),
            window,
            webhooks.stopped.subscribe(),
        ));
        Ok(webhooks)
    }

    /// Ends the delivery workers (the account is removed or reconfigured); what the
    /// outbox holds stays for the next start.
    pub fn stop(&self) {
        self.stopped.send_replace(true);
    }

    /// Resolves once [`stop`](Self::stop) was called.
    pub(crate) fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stopped = self.stopped.subscribe();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    }

    /// Where incoming media goes, when it is downloaded.
    pub fn media(&self) -> Option<&media::MediaSaver> {
        self.media.as_deref()
    }

    /// Whether `event` is one the configuration sends.
    pub fn wants(&self, event: &str) -> bool {
        self.config.events.is_empty()
            || self
                .config
                .events
                .iter()
                .any(|e| e.trim().eq_ignore_ascii_case(event))
    }

    /// Stores `events` durably; only then may the messages be acknowledged.
    pub async fn record(&self, mut events: Vec<NewEvent>) -> Result<usize, OutboxError> {
        if let Some(session) = &self.config.session_id {
            for event in &mut events {
                event.body = with_session_id(&event.body, session);
            }
        }
        let added = self
            .outbox
            .enqueue(events, self.config.urls.clone(), unix_now())
            .await?;
        if added > 0 {
            for notify in self.wake.values() {
                notify.notify_one();
            }
        }
        Ok(added)
    }

    /// Queues an event that no acknowledgement waits for (a receipt, a group
    /// change, a call): stored in the background, in the order queued.
    pub fn record_in_background(&self, built: event::Built) {
        if self.ignores(&built.jids) {
            return;
        }
        if self.background.send(built.event).is_err() {
            warn!("a webhook event was dropped: the server is stopping");
        }
    }

    /// Whether an event concerning `jids` is filtered out by `--webhook-ignore-jids`.
    pub fn ignores<S: AsRef<str>>(&self, jids: &[S]) -> bool {
        jids.iter().any(|jid| {
            let jid = jid.as_ref();
            self.config
                .ignore_jids
                .iter()
                .map(|p| p.trim())
                .any(|pattern| {
                    if pattern.starts_with('@') {
                        jid.ends_with(pattern)
                    } else {
                        !pattern.is_empty() && jid == pattern
                    }
                })
        })
    }

    pub async fn counts(&self) -> Result<Counts, OutboxError> {
        self.outbox.counts().await
    }

    /// Records an attempt's outcome for `/webhook/status`.
    fn note(&self, url: &str, error: Option<&str>) {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let entry = health.entry(url.to_owned()).or_default();
        match error {
            Some(e) => entry.last_error = Some((e.to_owned(), unix_now())),
            None => entry.last_delivered_at = Some(unix_now()),
        }
    }

    /// Counts per URL with each one's latest error.
    pub async fn status(&self) -> Result<WebhookStatus, OutboxError> {
        let (counts, events) = self.outbox.url_counts().await?;
        let health = self
            .health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let time = |t: i64| {
            jiff::Timestamp::from_second(t)
                .map(|t| t.to_string())
                .unwrap_or_default()
        };
        let urls: Vec<UrlStatus> = self
            .config
            .urls
            .iter()
            .map(|url| {
                let c = counts
                    .iter()
                    .find(|c| &c.url == url)
                    .cloned()
                    .unwrap_or_default();
                let h = health.get(url).cloned().unwrap_or_default();
                UrlStatus {
                    url: redact_url(url),
                    pending: c.pending,
                    retrying: c.retrying,
                    dead: c.dead,
                    last_error: h.last_error.as_ref().map(|(e, _)| e.clone()),
                    last_error_at: h.last_error.map(|(_, t)| time(t)),
                    last_delivered_at: h.last_delivered_at.map(time),
                }
            })
            .collect();
        Ok(WebhookStatus {
            events,
            max_events: self.config.max_events,
            full: events >= self.config.max_events,
            pending: urls.iter().map(|u| u.pending).sum(),
            retrying: urls.iter().map(|u| u.retrying).sum(),
            dead: urls.iter().map(|u| u.dead).sum(),
            urls,
        })
    }
}

/// `url` without user info, query or fragment (they may hold tokens): fit for logs
/// and status pages.
pub fn redact_url(url: &str) -> String {
    match url.parse::<axum::http::Uri>() {
        Ok(uri) => {
            let host = uri.host().unwrap_or("");
            let port = uri.port().map(|p| format!(":{p}")).unwrap_or_default();
            let scheme = uri.scheme_str().unwrap_or("http");
            let query = if uri.query().is_some() { "?…" } else { "" };
            format!("{scheme}://{host}{port}{}{query}", uri.path())
        }
        Err(_) => "(invalid URL)".to_owned(),
    }
}

/// Stores queued events in order, in batches of what has piled up.
async fn record_queued(
    webhooks: std::sync::Weak<Webhooks>,
    mut queued: mpsc::UnboundedReceiver<NewEvent>,
) {
    let mut batch = Vec::new();
    while queued.recv_many(&mut batch, 256).await > 0 {
        let Some(webhooks) = webhooks.upgrade() else {
            return;
        };
        let count = batch.len();
        if let Err(e) = webhooks.record(std::mem::take(&mut batch)).await {
            warn!(error = %e, events = count, "webhook events dropped");
        }
    }
}

/// Delivered event ids are remembered for the retry window, then forgotten.
async fn forget_done_hourly(
    outbox: OutboxStore,
    window: i64,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    every.tick().await;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        if let Err(e) = outbox.forget_done(unix_now() - window).await {
            warn!(error = %e, "cannot prune delivered webhook ids");
        }
    }
}

/// `body` (an event's JSON object) with `session_id` set.
fn with_session_id(body: &str, session: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.insert("session_id".into(), session.into());
            serde_json::Value::Object(map).to_string()
        }
        _ => body.to_owned(),
    }
}

pub(crate) fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn webhooks(ignore: &[&str]) -> (Arc<Webhooks>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let config = WebhookConfig {
            urls: vec![],
            secret: "secret".into(),
            events: vec!["Message".into()],
            outbox_path: dir.path().join("outbox.db"),
            outbox_postgres: None,
            max_events: 10,
            max_age: Duration::from_secs(60),
            ignore_jids: ignore.iter().map(|s| s.to_string()).collect(),
            insecure_skip_verify: false,
            session_id: None,
            media: None,
        };
        (Webhooks::start(config).await.unwrap(), dir)
    }

    #[test]
    fn the_session_id_joins_the_event_in_key_order() {
        let body =
            r#"{"device_id":"1@s.whatsapp.net","event":"message","id":"evt_1","payload":{"a":1}}"#;
        assert_eq!(
            with_session_id(body, "org_2"),
            r#"{"device_id":"1@s.whatsapp.net","event":"message","id":"evt_1","payload":{"a":1},"session_id":"org_2"}"#
        );
        assert_eq!(with_session_id("not json", "x"), "not json");
    }

    #[tokio::test]
    async fn ignored_jids_match_exactly_or_by_server_suffix() {
        let (w, _dir) = webhooks(&["@g.us", "6281@s.whatsapp.net"]).await;
        assert!(w.ignores(&["120363@g.us", "6289@s.whatsapp.net"]));
        assert!(w.ignores(&["6281@s.whatsapp.net"]));
        assert!(!w.ignores(&["62811@s.whatsapp.net", "205@lid"]));
        let (none, _dir) = webhooks(&[]).await;
        assert!(!none.ignores(&["120363@g.us"]));
    }

    #[test]
    fn urls_lose_credentials_and_query_strings() {
        assert_eq!(
            redact_url("https://user:pw@hooks.example.com:8443/in?token=abc#x"),
            "https://hooks.example.com:8443/in?…"
        );
        assert_eq!(redact_url("http://10.0.0.2/hook"), "http://10.0.0.2/hook");
    }

    #[tokio::test]
    async fn the_event_whitelist_ignores_case() {
        let (w, _dir) = webhooks(&[]).await;
        assert!(w.wants("message"));
        assert!(!w.wants("message.ack"));
    }
}
