//! What the session does with a client's events. The handler runs inline on the
//! client's dispatch path, in order, so it only does quick work: complete a send's
//! waiter, step the state machine, log, and spawn the auto-reply.

use std::io::IsTerminal;
use std::sync::{Arc, Weak};
use std::time::Instant;

use tracing::{Instrument, error, info, warn};
use whatsapp_rust::Client;
use whatsapp_rust::prelude::Event;
use whatsapp_rust::wacore::types::call::CallAction;
use whatsapp_rust::wacore::types::events::{EventHandler, EventInterest, EventKind};

use super::PairingCode;
use super::acks::AckOutcome;
use super::session::Inner;
use super::state::ClientEvent;

/// The kinds the session handles; the client skips building every other event.
const HANDLED: &[EventKind] = &[
    EventKind::ServerAck,
    EventKind::PairingQrCode,
    EventKind::PairingQrCodesExhausted,
    EventKind::PairSuccess,
    EventKind::PairError,
    EventKind::Connected,
    EventKind::Disconnected,
    EventKind::StreamReplaced,
    EventKind::LoggedOut,
    EventKind::ConnectFailure,
    EventKind::TemporaryBan,
    EventKind::ClientOutdated,
];

/// The events of the client of one generation.
pub(super) struct SessionEvents {
    session: Weak<Inner>,
    generation: u64,
    /// Weak: the client owns this handler.
    client: Weak<Client>,
}

impl SessionEvents {
    pub fn handler(
        session: Weak<Inner>,
        generation: u64,
        client: &Arc<Client>,
    ) -> (EventInterest, Arc<dyn EventHandler>) {
        let mut interest = EventInterest::of(HANDLED);
        if let Some(session) = session.upgrade() {
            if session.autoreply.is_some() || session.settings.auto_mark_read {
                interest = interest.with(EventKind::Messages);
            }
            if session.messages().is_some() {
                interest = interest
                    .with(EventKind::Receipt)
                    .with(EventKind::ContactUpdate)
                    .with(EventKind::PushNameUpdate)
                    .with(EventKind::PinUpdate)
                    .with(EventKind::ArchiveUpdate)
                    .with(EventKind::MarkChatAsReadUpdate)
                    .with(EventKind::LabelEditUpdate)
                    .with(EventKind::LabelAssociationUpdate)
                    .with(EventKind::HistorySync);
            }
            if let Some(webhooks) = session.webhooks() {
                if webhooks.wants("message.ack") {
                    interest = interest.with(EventKind::Receipt);
                }
                if webhooks.wants("group.participants") || webhooks.wants("group.joined") {
                    interest = interest.with(EventKind::GroupUpdate);
                }
                if webhooks.wants("label.edit") {
                    interest = interest.with(EventKind::LabelEditUpdate);
                }
                if webhooks.wants("label.association") {
                    interest = interest.with(EventKind::LabelAssociationUpdate);
                }
                if webhooks.wants("call.offer") {
                    interest = interest.with(EventKind::IncomingCall);
                }
            }
            if session.settings.auto_reject_call {
                interest = interest.with(EventKind::IncomingCall);
            }
        }
        let handler = SessionEvents {
            session,
            generation,
            client: Arc::downgrade(client),
        };
        (interest, Arc::new(handler))
    }
}

impl EventHandler for SessionEvents {
    fn handle_event(&self, event: Arc<Event>) {
        let Some(session) = self.session.upgrade() else {
            return;
        };
        let _account = session.settings.span.clone().entered();
        let step = |event| session.client_event(self.generation, event);
        match &*event {
            // Only acks of messages complete sends (receipts, IQs… have other
            // classes); a refusal may come without a class.
            Event::ServerAck(ack)
                if ack.class.as_deref() == Some("message")
                    || (ack.class.is_none() && ack.error.is_some()) =>
            {
                let outcome = match &ack.error {
                    Some(code) => AckOutcome::Refused(code.clone()),
                    None => AckOutcome::Accepted {
                        timestamp: ack.timestamp.map(|t| t.timestamp()),
                    },
                };
                session.acks.complete(&ack.id, outcome);
            }
            Event::PairingQrCode(qr) => {
                info!(
                    valid_for_secs = qr.timeout.as_secs(),
                    "new pairing QR code; open /app/login or the dashboard to scan it"
                );
                show_in_terminal(&qr.code);
                step(ClientEvent::Qr(PairingCode {
                    code: qr.code.clone(),
                    expires_at: Instant::now() + qr.timeout,
                }));
            }
            Event::PairingQrCodesExhausted(_) => {
                info!("pairing attempt ended without a scan; call /app/login for new QR codes");
                step(ClientEvent::QrExhausted);
            }
            Event::PairSuccess(pair) => {
                info!(device = %pair.id, platform = %pair.platform, "phone paired");
                step(ClientEvent::PairSuccess);
                session
                    .settings
                    .notices
                    .publish(crate::notices::Event::Paired {
                        device: pair.id.to_string(),
                    });
            }
            Event::PairError(pair) => warn!(error = %pair.error, "pairing failed"),
            Event::Connected(_) => {
                let device = self
                    .client
                    .upgrade()
                    .and_then(|c| c.pn())
                    .map(|j| j.to_string())
                    .unwrap_or_default();
                info!(%device, "connected to WhatsApp");
                step(ClientEvent::Connected);
                if let (Some(available), Some(client)) =
                    (session.settings.presence_on_connect, self.client.upgrade())
                {
                    announce_presence(client, available);
                }
            }
            Event::Disconnected(d) => {
                warn!(reason = ?d.reason, "disconnected from WhatsApp; reconnecting");
                step(ClientEvent::Disconnected);
            }
            Event::StreamReplaced(_) => {
                warn!(
                    "another client took over this WhatsApp session; not reconnecting \
                     (call /app/reconnect to take it back)"
                );
                step(ClientEvent::Replaced);
            }
            Event::LoggedOut(out) => {
                warn!(
                    reason = ?out.reason,
                    "WhatsApp logged this device out (removed from the phone?); \
                     the stored session is deleted, use /app/login to pair again"
                );
                // Only the current client's logout is news (a stopped one's is not).
                if session.generation() == self.generation {
                    session
                        .settings
                        .notices
                        .publish(crate::notices::Event::LoggedOut {
                            by: crate::notices::Logout::Phone,
                        });
                }
                step(ClientEvent::LoggedOut);
            }
            Event::ConnectFailure(failure) => {
                warn!(reason = ?failure.reason, message = ?failure.message, "WhatsApp refused the connection");
            }
            Event::TemporaryBan(_) => warn!("WhatsApp reports a temporary ban for this account"),
            Event::ClientOutdated(_) => error!("WhatsApp reports this client version as outdated"),
            Event::Receipt(receipt) => {
                if let Some(store) = session.messages()
                    && let Some(change) = crate::messages::from_wa::receipt(receipt)
                {
                    store.apply_in_background(change, "a receipt");
                }
                self.to_webhooks(&session, |device, _| {
                    crate::webhook::event::receipt_event(device, receipt)
                        .into_iter()
                        .collect()
                })
            }
            Event::ContactUpdate(update) => {
                if let Some(store) = session.messages()
                    && let Some(change) = crate::messages::from_wa::contact(update)
                {
                    store.apply_in_background(change, "a contact");
                }
            }
            Event::PinUpdate(update) => {
                if let Some(store) = session.messages() {
                    let pinned = update.action.pinned.unwrap_or(false);
                    let change = crate::messages::Change::Chat {
                        jid: update.jid.to_non_ad_string(),
                        setting: crate::messages::ChatSetting::Pinned(pinned),
                    };
                    store.apply_in_background(change, "a pin");
                }
            }
            Event::ArchiveUpdate(update) => {
                if let Some(store) = session.messages() {
                    let archived = update.action.archived.unwrap_or(false);
                    let change = crate::messages::Change::Chat {
                        jid: update.jid.to_non_ad_string(),
                        setting: crate::messages::ChatSetting::Archived(archived),
                    };
                    store.apply_in_background(change, "an archive")
                }
            }
            Event::MarkChatAsReadUpdate(update) => {
                if let Some(store) = session.messages() {
                    let change = crate::messages::Change::ChatRead {
                        jid: update.jid.to_non_ad_string(),
                        unread: u32::from(update.action.read == Some(false)),
                    };
                    store.apply_in_background(change, "a chat read");
                }
            }
            Event::LabelEditUpdate(update) => {
                if let Some(store) = session.messages() {
                    let change = crate::messages::Change::Label {
                        id: update.label_id.clone(),
                        name: update.action.name.clone(),
                        color: update.action.color,
                        deleted: update.action.deleted == Some(true),
                    };
                    store.apply_in_background(change, "a label");
                }
                self.to_webhooks(&session, |device, _| {
                    vec![crate::webhook::event::label_edit_event(device, update)]
                });
            }
            Event::LabelAssociationUpdate(update) => {
                if let Some(store) = session.messages() {
                    let change = crate::messages::Change::ChatLabel {
                        jid: update.chat_jid.to_non_ad_string(),
                        label_id: update.label_id.clone(),
                        labeled: update.action.labeled == Some(true),
                    };
                    store.apply_in_background(change, "a chat label");
                }
                if !update.from_full_sync {
                    self.to_webhooks(&session, |device, _| {
                        vec![crate::webhook::event::label_association_event(
                            device, update,
                        )]
                    });
                }
            }
            Event::PushNameUpdate(update) => {
                if let Some(store) = session.messages()
                    && let Some(change) = crate::messages::from_wa::push_name(update)
                {
                    store.apply_in_background(change, "a push name");
                }
            }
            Event::HistorySync(history) => {
                if let Some(store) = session.messages() {
                    let own = self.client.upgrade().and_then(|c| c.pn());
                    crate::messages::history::import_in_background(
                        store.clone(),
                        (**history).clone(),
                        own,
                        session.settings.span.clone(),
                    );
                }
            }
            Event::GroupUpdate(update) => self.to_webhooks(&session, |device, own| {
                crate::webhook::event::group_events(device, own, update)
            }),
            Event::IncomingCall(call) => {
                let offer = matches!(call.action, CallAction::Offer { .. });
                match self.client.upgrade() {
                    Some(client) if offer && session.settings.auto_reject_call => {
                        reject_call(session.clone(), client, event.clone());
                    }
                    _ => self.to_webhooks(&session, |device, _| {
                        crate::webhook::event::call_event(device, call, false)
                            .into_iter()
                            .collect()
                    }),
                }
            }
            Event::Messages(batch) if session.generation() == self.generation => {
                if session.settings.auto_mark_read
                    && let Some(client) = self.client.upgrade()
                {
                    let store = session.messages().cloned();
                    mark_read(client, store, batch.messages.iter().map(|m| &*m.info));
                }
                if let (Some(reply), Some(client)) = (&session.autoreply, self.client.upgrade()) {
                    for inbound in batch.messages.iter() {
                        let store = session.messages().cloned();
                        reply.handle(client.clone(), store, &inbound.info, &inbound.message);
                    }
                }
            }
            _ => {}
        }
    }
}

/// `--presence-on-connect`: the presence announced after a connect, sent in the
/// background. The library announces `available` by itself once it knows the
/// account's name, just before `Connected`; `unavailable` follows it.
fn announce_presence(client: Arc<Client>, available: bool) {
    tokio::spawn(async move {
        let presence = client.presence();
        let done = match available {
            true => presence.set_available().await,
            false => presence.set_unavailable().await,
        };
        if let Err(e) = done {
            warn!(error = %e, "presence on connect failed");
        }
    });
}

/// `--auto-mark-read`: read receipts for the incoming messages of `batch`, one per
/// chat and sender, sent in the background.
fn mark_read<'a>(
    client: Arc<Client>,
    store: Option<Arc<crate::messages::MessageStore>>,
    batch: impl Iterator<Item = &'a whatsapp_rust::prelude::MessageInfo>,
) {
    use whatsapp_rust::Jid;
    /// A chat's receipt: the chat, the sender (in groups), the chat as the
    /// message store keys it, and the message ids.
    type ChatReceipt = (Jid, Option<Jid>, String, Vec<String>);
    let mut receipts: Vec<ChatReceipt> = Vec::new();
    for info in batch.filter(|i| !i.source.is_from_me) {
        let chat = info.source.chat.clone();
        let sender = info.source.is_group.then(|| info.source.sender.clone());
        match receipts
            .iter_mut()
            .find(|(c, s, _, _)| *c == chat && *s == sender)
        {
            Some((_, _, _, ids)) => ids.push(info.id.to_string()),
            None => {
                let (stored, _) =
                    super::content::pn_and_lid(&chat, info.source.recipient_alt.as_ref());
                receipts.push((chat, sender, stored, vec![info.id.to_string()]));
            }
        }
    }
    if receipts.is_empty() {
        return;
    }
    tokio::spawn(async move {
        for (chat, sender, stored, ids) in receipts {
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            if let Err(e) = client.mark_as_read(&chat, sender.as_ref(), &refs).await {
                warn!(error = %e, "auto mark-read failed");
                continue;
            }
            // Read here: the chat's unread count leaves them out.
            if let Some(store) = &store {
                let read = crate::messages::Change::Receipt {
                    sender: stored.clone(),
                    chat: stored,
                    message_ids: ids,
                    kind: "read-self".to_owned(),
                    timestamp: jiff::Timestamp::now().as_second(),
                };
                store.apply_in_background(read, "an automatic read");
            }
        }
    });
}

/// `--auto-reject-call`: rejects the ringing call of `event`, then queues its
/// `call.offer` webhook saying whether that worked (as Go does, in that order).
fn reject_call(session: Arc<Inner>, client: Arc<Client>, event: Arc<Event>) {
    let span = session.settings.span.clone();
    tokio::spawn(
        async move {
            let Event::IncomingCall(call) = &*event else {
                return;
            };
            let rejected = match client.voip().reject(call).await {
                Ok(()) => {
                    info!("incoming call rejected (--auto-reject-call)");
                    true
                }
                Err(e) => {
                    warn!(error = %e, "could not reject an incoming call");
                    false
                }
            };
            queue_webhooks(&session, &client, |device, _| {
                crate::webhook::event::call_event(device, call, rejected)
                    .into_iter()
                    .collect()
            });
        }
        .instrument(span),
    );
}

impl SessionEvents {
    /// [`queue_webhooks`] with this handler's client.
    fn to_webhooks(
        &self,
        session: &Inner,
        build: impl FnOnce(&str, &[String]) -> Vec<crate::webhook::event::Built>,
    ) {
        if let Some(client) = self.client.upgrade() {
            queue_webhooks(session, &client, build);
        }
    }
}

/// Queues the webhook events `build` makes from this account's phone-number JID
/// and all its JIDs (non-AD), those the configuration sends.
pub(super) fn queue_webhooks(
    session: &Inner,
    client: &Client,
    build: impl FnOnce(&str, &[String]) -> Vec<crate::webhook::event::Built>,
) {
    let Some(webhooks) = session.webhooks() else {
        return;
    };
    let pn = client.pn().map(|j| j.to_non_ad_string());
    let own: Vec<String> = pn
        .iter()
        .cloned()
        .chain(client.lid().map(|j| j.to_non_ad_string()))
        .collect();
    for built in build(pn.as_deref().unwrap_or_default(), &own) {
        if webhooks.wants(built.name) {
            webhooks.record_in_background(built);
        }
    }
}

/// Draws the QR code for someone watching the server's terminal. Never into a log:
/// the code carries the pairing secret.
fn show_in_terminal(code: &str) {
    if std::io::stdout().is_terminal()
        && let Some(drawing) = crate::qr::render_terminal(code)
    {
        println!("Scan this QR code from WhatsApp > Linked devices:\n{drawing}");
    }
}
