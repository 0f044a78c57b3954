//! whatsapp-rust's inbound durability hook: incoming messages go into the message
//! store and the webhook outbox *before* the client acknowledges them to WhatsApp.
//! If either cannot take them, the hook fails and WhatsApp delivers them again.

use std::sync::Arc;

use tracing::warn;
use whatsapp_rust::Client;
use whatsapp_rust::InboundDurabilityHook;
use whatsapp_rust::types::durability_hook::InboundMessage;

use crate::messages::{MessageStore, from_wa};
use crate::webhook::Webhooks;

/// Where incoming messages go.
#[derive(Clone, Default)]
pub struct Inbound {
    pub messages: Option<Arc<MessageStore>>,
    pub webhooks: Option<Arc<Webhooks>>,
}

impl Inbound {
    /// Whether anything takes incoming messages (else none is held back).
    pub fn is_used(&self) -> bool {
        self.messages.is_some() || self.webhooks.is_some()
    }
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("messages", &self.messages.is_some())
            .field("webhooks", &self.webhooks.is_some())
            .finish()
    }
}

impl Inbound {
    /// Records `batch` in the message store.
    async fn store(&self, batch: &[InboundMessage]) -> anyhow::Result<()> {
        let Some(store) = &self.messages else {
            return Ok(());
        };
        let changes: Vec<_> = batch
            .iter()
            .filter_map(|m| from_wa::incoming(&m.info, &m.message))
            .collect();
        if changes.is_empty() {
            return Ok(());
        }
        let store = store.clone();
        let now = jiff::Timestamp::now().as_second();
        tokio::task::spawn_blocking(move || store.apply(&changes, now))
            .await?
            .map_err(|e| {
                warn!(error = %e, "incoming messages not stored: WhatsApp will deliver them again");
                anyhow::Error::new(e)
            })
    }
}

#[whatsapp_rust::async_trait]
impl InboundDurabilityHook for Inbound {
    async fn on_messages(
        &self,
        client: Arc<Client>,
        batch: &[InboundMessage],
    ) -> anyhow::Result<()> {
        // Two files, two fsyncs: side by side.
        let (stored, outboxed) = tokio::join!(self.store(batch), async {
            match &self.webhooks {
                Some(webhooks) => webhooks.take_inbound(&client, batch).await,
                None => Ok(()),
            }
        });
        stored?;
        outboxed?;
        Ok(())
    }
}
