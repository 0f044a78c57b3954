//! Incoming messages become outbox events before the client acknowledges them to
//! WhatsApp (called from the session's inbound durability hook). If the outbox
//! cannot take them, the hook fails and WhatsApp delivers the messages again later.

use tracing::warn;
use whatsapp_rust::Client;
use whatsapp_rust::types::durability_hook::InboundMessage;

use super::Webhooks;
use super::event::{forwarded_chat, jids_of, media_of, message_event};

impl Webhooks {
    /// Stores the events of `batch` (downloading media first, when configured).
    pub async fn take_inbound(
        &self,
        client: &Client,
        batch: &[InboundMessage],
    ) -> anyhow::Result<()> {
        let device = client
            .pn()
            .map(|j| j.to_non_ad_string())
            .unwrap_or_default();
        let mut events = Vec::new();
        for inbound in batch {
            let (info, message) = (&inbound.info, &inbound.message);
            if !forwarded_chat(info) || self.ignores(&jids_of(info)) {
                continue;
            }
            let saved = match (self.media(), media_of(message)) {
                (Some(saver), Some(media)) if self.wants("message") => {
                    saver.save(client, &media).await
                }
                _ => None,
            };
            if let Some(built) = message_event(&device, info, message, saved.as_deref())
                && self.wants(built.name)
            {
                events.push(built.event);
            }
        }
        if events.is_empty() {
            return Ok(());
        }
        self.record(events).await.map(drop).map_err(|e| {
            warn!(error = %e, "incoming messages not acknowledged: WhatsApp will deliver them again");
            anyhow::Error::new(e)
        })
    }
}
