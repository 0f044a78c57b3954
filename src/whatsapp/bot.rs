//! Building, stopping and forgetting one `whatsapp-rust` client on the SQLite store.
//! A client cannot be reused once disconnected, logged out or out of QR codes, so
//! every pairing attempt and every (re)connection builds a fresh one from the store.

use std::sync::Arc;
use std::time::Duration;

use tracing::warn;
use whatsapp_rust::prelude::*;
use whatsapp_rust::wacore::types::events::{EventHandler, Subscription};

use super::WhatsAppError;
use super::session::ClientSettings;

/// How long a client may take to stop: the library flushes for up to 5 s (inbound
/// commits) plus 5 s (outbound), then saves the device; this leaves room for both.
pub const STOP_BUDGET: Duration = Duration::from_secs(12);

/// A running client.
pub struct Live {
    pub client: Arc<Client>,
    handle: BotHandle,
    _events: Subscription,
}

impl Live {
    /// The store behind this client holds a paired device.
    pub fn is_paired(&self) -> bool {
        self.client
            .persistence_manager()
            .get_device_snapshot()
            .pn
            .is_some()
    }

    /// Disconnects cleanly (flushing the store). Only if that takes longer than
    /// `budget` is the client task aborted.
    pub async fn stop(self, budget: Duration) {
        let Live {
            client,
            handle,
            _events,
        } = self;
        drop(client);
        if tokio::time::timeout(budget, handle.shutdown())
            .await
            .is_err()
        {
            warn!(
                budget_secs = budget.as_secs(),
                "the WhatsApp client did not stop in time; aborted it"
            );
        }
    }
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

/// Opens the store and starts a client on it; `events` gets the client's events,
/// in order, from the first one on.
pub async fn start(
    settings: &ClientSettings,
    events: impl FnOnce(&Arc<Client>) -> (EventInterest, Arc<dyn EventHandler>),
) -> Result<Live, WhatsAppError> {
    let store = settings.store.open().await?;
    let builder = Bot::builder().with_backend_arc(store);
    let builder = match &settings.proxy {
        Some(proxy) => builder.with_transport_factory(super::proxy::ProxiedTransportFactory::new(
            proxy.clone(),
            test_ws_url(settings),
        )),
        None => builder.with_transport_factory(transport_factory(settings)),
    };
    // The phone's chat history after pairing goes to the message store
    // (`crate::messages::history`).
    let mut builder = builder.with_http_client(http_client(settings)?);
    if settings.ws_url.is_some() {
        // A fake server has no version endpoint to ask.
        builder = builder.with_version((2, 3000, 1));
    }
    if let Some(name) = &settings.device_name {
        // Shown on the phone under "Linked devices"; WhatsApp takes it at pairing.
        builder = builder.with_device_props(
            whatsapp_rust::wacore::store::DevicePropsOverride::new().with_os(name.clone()),
        );
    }
    if settings.inbound.is_used() {
        builder = builder.with_inbound_durability_hook(settings.inbound.clone());
    }
    let bot = builder
        .build()
        .await
        .map_err(|e| WhatsAppError::failed("cannot start the WhatsApp client", e))?;
    let client = bot.client();
    let (interest, handler) = events(&client);
    let subscription = client.subscribe(interest, handler);
    let handle = bot.spawn();
    Ok(Live {
        client,
        handle,
        _events: subscription,
    })
}

fn transport_factory(
    settings: &ClientSettings,
) -> whatsapp_rust::transport::TokioWebSocketTransportFactory {
    let factory = whatsapp_rust::transport::TokioWebSocketTransportFactory::new();
    match &settings.ws_url {
        #[cfg(feature = "e2e")]
        Some(url) => factory.with_url(url.clone()),
        _ => factory,
    }
}

/// The fake WhatsApp server's URL, in test builds only.
fn test_ws_url(settings: &ClientSettings) -> Option<String> {
    cfg!(feature = "e2e")
        .then(|| settings.ws_url.clone())
        .flatten()
}

/// whatsapp-rust's HTTP client (media, version), through `--whatsapp-proxy` when
/// set.
#[cfg(not(feature = "e2e"))]
fn http_client(
    settings: &ClientSettings,
) -> Result<whatsapp_rust::http::UreqHttpClient, WhatsAppError> {
    Ok(match &settings.proxy {
        Some(proxy) => whatsapp_rust::http::UreqHttpClient::with_agent(
            proxy.http_agent().map_err(WhatsAppError::Failed)?,
        ),
        None => whatsapp_rust::http::UreqHttpClient::new(),
    })
}

/// Test builds talk to the fake's media host on loopback.
#[cfg(feature = "e2e")]
fn http_client(
    _settings: &ClientSettings,
) -> Result<crate::testing::LoopbackHttpClient, WhatsAppError> {
    Ok(crate::testing::LoopbackHttpClient::default())
}
