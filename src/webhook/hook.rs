//! whatsapp-rust's inbound durability hook: incoming messages become outbox events
//! before the client acknowledges them to WhatsApp. If the outbox cannot take them,
//! the hook fails and WhatsApp delivers the messages again later.

use std::sync::Arc;

use tracing::warn;
use whatsapp_rust::Client;
use whatsapp_rust::InboundDurabilityHook;
use whatsapp_rust::types::durability_hook::InboundMessage;

use super::Webhooks;
use super::event::{forwarded_chat, jids_of, media_of, message_event};

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
        let device = client
            .pn()
            .map(|j| j.to_non_ad_string())
            .unwrap_or_default();
        let mut events = Vec::new();
        for inbound in batch {
            let (info, message) = (&inbound.info, &inbound.message);
            if !forwarded_chat(info) || self.webhooks.ignores(&jids_of(info)) {
                continue;
            }
            let saved = match (self.webhooks.media(), media_of(message)) {
                (Some(saver), Some(media)) if self.webhooks.wants("message") => {
                    saver.save(&client, &media).await
                }
                _ => None,
            };
            if let Some(built) = message_event(&device, info, message, saved.as_deref())
                && self.webhooks.wants(built.name)
            {
                events.push(built.event);
            }
        }
        if events.is_empty() {
            return Ok(());
        }
        self.webhooks.record(events).await.map(drop).map_err(|e| {
            warn!(error = %e, "incoming messages not acknowledged: WhatsApp will deliver them again");
            anyhow::Error::new(e)
        })
    }
}
