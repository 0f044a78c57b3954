//! whatsapp-rust's inbound durability hook: incoming messages become outbox events
//! before the client acknowledges them to WhatsApp. If the outbox cannot take them,
//! the hook fails and WhatsApp delivers the messages again later.

use std::sync::Arc;

use tracing::warn;
use whatsapp_rust::Client;
use whatsapp_rust::InboundDurabilityHook;
use whatsapp_rust::types::durability_hook::InboundMessage;

use super::Webhooks;
use super::event::message_event;

#[derive(Clone)]
pub struct InboundHook {
    webhooks: Arc<Webhooks>,
}

impl InboundHook {
    pub fn new(webhooks: Arc<Webhooks>) -> Self {
        Self { webhooks }
    }

    pub fn webhooks(&self) -> &Arc<Webhooks> {
        &self.webhooks
    }
}

impl std::fmt::Debug for InboundHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundHook").finish_non_exhaustive()
    }
}

#[whatsapp_rust::async_trait]
impl InboundDurabilityHook for InboundHook {
    async fn on_messages(
        &self,
        client: Arc<Client>,
        batch: &[InboundMessage],
    ) -> anyhow::Result<()> {
        if !self.webhooks.wants("message") {
            return Ok(());
        }
        let device = client
            .pn()
            .map(|j| j.to_non_ad_string())
            .unwrap_or_default();
        let events: Vec<_> = batch
            .iter()
            .filter_map(|m| message_event(&device, &m.info, &m.message))
            .filter(|built| !self.webhooks.ignores(&built.jids))
            .map(|built| built.event)
            .collect();
        if events.is_empty() {
            return Ok(());
        }
        self.webhooks.record(events).await.map(drop).map_err(|e| {
            warn!(error = %e, "incoming messages not acknowledged: WhatsApp will deliver them again");
            anyhow::Error::new(e)
        })
    }
}
