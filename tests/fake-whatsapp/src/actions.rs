//! What the companion does to messages that already exist: reactions, edits and
//! revokes (delete for everyone) ride in ordinary `<message>`s and must name a message
//! of the chat they go to; read receipts must name messages the fake delivered. Every
//! reference is checked against what the fake saw, and a dangling one is a problem.

use std::collections::HashSet;

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;
use whatsapp_rust::NodeBuilder;
use whatsapp_rust::wacore_binary::node::Node;
use whatsapp_rust::waproto::whatsapp as wa;

use wa::message::protocol_message::Type as ProtocolType;

use crate::node::{attr, child};
use crate::{FakeWhatsApp, Received, Shared, World};

/// WhatsApp lets a message be edited this long after it was sent.
const EDIT_WINDOW_SECS: u64 = 15 * 60;

/// A message the fake delivered to the companion (see [`FakeWhatsApp::deliver`]).
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The chat it arrived in (`PHONE@s.whatsapp.net` for a contact, `ID@g.us`).
    pub chat: String,
    /// The account that sent it (`PHONE@s.whatsapp.net`).
    pub sender: String,
    pub id: String,
    pub message: wa::Message,
    /// Unix time it went out.
    pub t: u64,
}

/// A `<receipt>` the companion sent for messages it was delivered: that they were
/// read (`read`; `read-self` when the account hides read receipts) or played
/// (`played`, `played-self`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadReceipt {
    /// The `to` of the receipt: the chat the messages are in.
    pub chat: String,
    /// In a group, the member whose messages these are.
    pub participant: Option<String>,
    /// The message ids, in the order the receipt lists them.
    pub ids: Vec<String>,
    /// `read`, `read-self`, `played` or `played-self`.
    pub kind: String,
    /// The receipt's `t`, when it has one.
    pub t: Option<u64>,
    /// The companion device that sent it.
    pub device: String,
}

/// The fake's memory of delivered messages and of what was done to messages.
#[derive(Default)]
pub(crate) struct Actions {
    delivered: Vec<Delivered>,
    receipts: Vec<ReadReceipt>,
    /// (chat, id) of messages revoked for everyone.
    revoked: HashSet<(String, String)>,
}

/// `user[:device]@server` → `user@server`.
pub(crate) fn bare(jid: &str) -> String {
    match jid.split_once('@') {
        Some((user, server)) => {
            let user = user.split(':').next().unwrap_or(user);
            format!("{user}@{server}")
        }
        None => jid.to_owned(),
    }
}

/// Notes a message the fake delivered to the companion, so that later references to
/// it (receipts, reactions, app-state actions) can be checked.
pub(crate) fn note_delivered(
    shared: &Shared,
    chat: &str,
    sender: &str,
    id: &str,
    message: &wa::Message,
) {
    shared.world().actions.delivered.push(Delivered {
        chat: bare(chat),
        sender: bare(sender),
        id: id.to_owned(),
        message: message.clone(),
        t: crate::unix_now(),
    });
}

/// The protocol message a message carries (top level, or in the older
/// `editedMessage` wrapper).
fn protocol_of(m: &wa::Message) -> Option<&wa::message::ProtocolMessage> {
    m.protocol_message.as_option().or_else(|| {
        m.edited_message
            .as_option()
            .and_then(|f| f.message.as_option())
            .and_then(|inner| inner.protocol_message.as_option())
    })
}

/// A reaction, an edit or a revoke: a message about another message.
pub(crate) fn is_action(m: &wa::Message) -> bool {
    m.reaction_message.is_set()
        || protocol_of(m).is_some_and(|p| {
            matches!(
                p.r#type,
                Some(ProtocolType::REVOKE | ProtocolType::MESSAGE_EDIT)
            )
        })
}

/// Whether a message carries text, or media that may carry a caption.
fn is_editable(m: &wa::Message) -> bool {
    m.conversation.is_some()
        || m.extended_text_message.is_set()
        || m.image_message.is_set()
        || m.video_message.is_set()
        || m.document_message.is_set()
}

/// Whether an edit's new content has something to show: text, or a caption.
fn has_new_text(m: &wa::Message) -> bool {
    m.conversation.as_deref().is_some_and(|t| !t.is_empty())
        || m.extended_text_message
            .as_option()
            .is_some_and(|t| t.text.as_deref().is_some_and(|t| !t.is_empty()))
        || m.image_message
            .as_option()
            .is_some_and(|i| i.caption.is_some())
        || m.video_message
            .as_option()
            .is_some_and(|v| v.caption.is_some())
        || m.document_message
            .as_option()
            .is_some_and(|d| d.caption.is_some())
}

/// The message a reference points at.
pub(crate) struct Target {
    pub message: wa::Message,
    /// When the companion sent it: the server time of its ack.
    pub sent_at: Option<u64>,
}

/// The message `id` in `chat` (bare JIDs): one the companion sent there (`from_me`)
/// and a recipient decrypted, or one the fake delivered there, from `participant` in
/// a group. Reactions, edits and revokes are not targets.
pub(crate) fn find_target(
    world: &World,
    chat: &str,
    id: &str,
    from_me: bool,
    participant: Option<&str>,
) -> Result<Target> {
    let chat = bare(chat);
    if from_me {
        let sent = world
            .received
            .iter()
            .find(|r| bare(&r.chat) == chat && r.id == id && !is_action(&r.message))
            .with_context(|| format!("the companion never sent a message {id} to {chat}"))?;
        return Ok(Target {
            message: sent.message.clone(),
            sent_at: sent.ack_t,
        });
    }
    let delivered = world
        .actions
        .delivered
        .iter()
        .find(|d| d.chat == chat && d.id == id && !is_action(&d.message))
        .with_context(|| format!("the fake never delivered a message {id} in {chat}"))?;
    if chat.ends_with("@g.us") {
        let participant = participant
            .map(bare)
            .with_context(|| format!("message {id} in group {chat} is named without its sender"))?;
        ensure!(
            participant == delivered.sender,
            "message {id} in {chat} is from {}, not {participant}",
            delivered.sender
        );
    }
    Ok(Target {
        message: delivered.message.clone(),
        sent_at: Some(delivered.t),
    })
}

/// The message a `MessageKey` in a message to `chat` points at.
fn target_of(world: &World, chat: &str, key: &wa::MessageKey, what: &str) -> Result<Target> {
    let id = key
        .id
        .as_deref()
        .filter(|id| !id.is_empty())
        .with_context(|| format!("{what} names no message id"))?;
    if let Some(remote) = key.remote_jid.as_deref() {
        ensure!(
            bare(remote) == bare(chat),
            "{what} names a message of {remote} but goes to {chat}"
        );
    }
    let target = find_target(
        world,
        chat,
        id,
        key.from_me.unwrap_or(false),
        key.participant.as_deref(),
    )?;
    ensure!(
        !world.actions.revoked.contains(&(bare(chat), id.to_owned())),
        "{what} names message {id}, which was deleted for everyone"
    );
    Ok(target)
}

/// Checks the reactions, edits and revokes among what the recipients of `node`
/// decrypted: each must name a message of its chat, fit the stanza it came in, and an
/// edit or revoke must be of a message it may change. A revoke is remembered.
pub(crate) fn check(shared: &Shared, node: &Node, received: &[Received]) -> Result<()> {
    let edit = attr(node, "edit");
    let stanza_type = attr(node, "type").unwrap_or_default();
    let mut world = shared.world();
    let mut revoked = Vec::new();
    for r in received.iter().filter(|r| is_action(&r.message)) {
        let chat = &r.chat;
        if let Some(reaction) = r.message.reaction_message.as_option() {
            ensure!(
                stanza_type == "reaction",
                "a reaction in a <message type=\"{stanza_type}\">"
            );
            ensure!(reaction.text.is_some(), "a reaction without text");
            let key = reaction
                .key
                .as_option()
                .context("a reaction without a key")?;
            target_of(&world, chat, key, "a reaction")?;
            continue;
        }
        let protocol = protocol_of(&r.message).context("an action without a protocol message")?;
        let key = protocol
            .key
            .as_option()
            .context("a protocol message without a key")?;
        match protocol.r#type {
            Some(ProtocolType::REVOKE) => {
                let from_me = key.from_me.unwrap_or(false);
                match edit.as_deref() {
                    Some("7") => ensure!(from_me, "a sender revoke of a message not from me"),
                    Some("8") => {
                        ensure!(chat.ends_with("@g.us"), "an admin revoke outside a group");
                        ensure!(!from_me, "an admin revoke of my own message");
                    }
                    other => bail!("a revoke in a <message edit={other:?}>, not 7 or 8"),
                }
                target_of(&world, chat, key, "a revoke")?;
                let id = key.id.clone().unwrap_or_default();
                revoked.push((bare(chat), id));
            }
            Some(ProtocolType::MESSAGE_EDIT) => {
                ensure!(
                    edit.as_deref() == Some("1"),
                    "an edit in a <message edit={edit:?}>, not 1"
                );
                ensure!(
                    key.from_me == Some(true),
                    "an edit of a message not from me"
                );
                let target = target_of(&world, chat, key, "an edit")?;
                ensure!(
                    is_editable(&target.message),
                    "an edit of a message that has no text or caption"
                );
                let new = protocol
                    .edited_message
                    .as_option()
                    .context("an edit without the edited message")?;
                ensure!(has_new_text(new), "an edit whose new message has no text");
                if let Some(sent) = target.sent_at {
                    ensure!(
                        crate::unix_now().saturating_sub(sent) <= EDIT_WINDOW_SECS,
                        "an edit more than 15 minutes after the message was sent"
                    );
                }
            }
            _ => bail!("an unexpected protocol message"),
        }
    }
    world.actions.revoked.extend(revoked);
    Ok(())
}

/// A `<receipt>` from the companion that is not a delivery receipt. Read and played
/// receipts are recorded and checked (every id must be a message the fake delivered in
/// that chat, from that participant in a group) and acknowledged as WhatsApp does;
/// a `peer_msg` receipt acknowledges the phone's app-state key share or a history
/// notice, and a `hist_sync` receipt says the companion took a history chunk in (see
/// [`crate::history`]). Returns the
/// `<ack>` to send, if any.
pub(crate) fn receipt(shared: &Shared, node: &Node, device: &str) -> Option<Node> {
    let kind = attr(node, "type").unwrap_or_default();
    let id = attr(node, "id").unwrap_or_default();
    let mut ids = vec![id.clone()];
    if let Some(list) = child(node, "list") {
        ids.extend(
            list.get_children_by_tag("item")
                .filter_map(|i| attr(i, "id")),
        );
    }
    let to = attr(node, "to").unwrap_or_default();
    match kind.as_str() {
        "read" | "read-self" | "played" | "played-self" => {}
        "peer_msg" => {
            crate::app_state::peer_receipt(shared, &ids);
            crate::history::acknowledged(shared, device, &ids, false);
            return Some(receipt_ack(node, &id, &to, &kind));
        }
        "hist_sync" => {
            crate::history::acknowledged(shared, device, &ids, true);
            return Some(receipt_ack(node, &id, &to, &kind));
        }
        "retry" => {
            crate::app_state::retry_receipt(shared, &ids);
            return None;
        }
        _ => return None,
    }
    let participant = attr(node, "participant");
    let record = ReadReceipt {
        chat: to.clone(),
        participant: participant.clone(),
        ids: ids.clone(),
        kind: kind.clone(),
        t: attr(node, "t").and_then(|t| t.parse().ok()),
        device: device.to_owned(),
    };
    let mut world = shared.world();
    let mut problems = Vec::new();
    if to.is_empty() || id.is_empty() {
        problems.push(format!(
            "a {kind} receipt without to or id: {}",
            crate::show(node)
        ));
    } else {
        for id in &ids {
            if let Err(e) = find_target(&world, &to, id, false, participant.as_deref()) {
                problems.push(format!("a {kind} receipt for {id}: {e:#}"));
            }
        }
    }
    if record.t.is_none() {
        problems.push(format!("a {kind} receipt without its time t"));
    }
    if participant.is_some() && !to.ends_with("@g.us") {
        problems.push(format!(
            "a {kind} receipt to {to} names a participant, which only a group has"
        ));
    }
    for problem in problems {
        tracing::warn!("{problem}");
        world.problems.push(problem);
    }
    world.actions.receipts.push(record);
    Some(receipt_ack(node, &id, &to, &kind))
}

/// `<ack class="receipt">` for a receipt, as the server acknowledges one.
fn receipt_ack(node: &Node, id: &str, to: &str, kind: &str) -> Node {
    let mut ack = NodeBuilder::new("ack")
        .attr("class", "receipt")
        .attr("id", id.to_owned())
        .attr("from", to.to_owned())
        .attr("type", kind.to_owned());
    if let Some(participant) = attr(node, "participant") {
        ack = ack.attr("participant", participant);
    }
    ack.build()
}

/// Admin routes for what this module and [`crate::app_state`] record:
/// `GET /admin/read-receipts` (see [`ReadReceipt`]) and `GET /admin/app-state`
/// (collection versions, whether the companion has the key, every mutation).
pub(crate) fn admin_routes() -> axum::Router<std::sync::Arc<Shared>> {
    use axum::extract::State;
    use axum::routing::get;
    async fn read_receipts(
        State(shared): State<std::sync::Arc<Shared>>,
    ) -> axum::Json<Vec<ReadReceipt>> {
        axum::Json(shared.world().actions.receipts.clone())
    }
    async fn app_state(
        State(shared): State<std::sync::Arc<Shared>>,
    ) -> axum::Json<serde_json::Value> {
        axum::Json(crate::app_state::summary(&shared))
    }
    axum::Router::new()
        .route("/admin/read-receipts", get(read_receipts))
        .route("/admin/app-state", get(app_state))
}

impl FakeWhatsApp {
    /// The read (and played) receipts the companion sent for messages the fake
    /// delivered, in order. A receipt naming a message the fake did not deliver in
    /// that chat is also a problem (see [`FakeWhatsApp::problems`]).
    pub fn read_receipts(&self) -> Vec<ReadReceipt> {
        self.shared.world().actions.receipts.clone()
    }

    /// Every message the fake delivered to the companion, in order.
    pub fn delivered(&self) -> Vec<Delivered> {
        self.shared.world().actions.delivered.clone()
    }

    /// Whether the message `id` in `chat` (`PHONE@s.whatsapp.net`, `ID@g.us`) was
    /// deleted for everyone by a revoke the companion sent.
    pub fn is_revoked(&self, chat: &str, id: &str) -> bool {
        self.shared
            .world()
            .actions
            .revoked
            .contains(&(bare(chat), id.to_owned()))
    }
}

impl Received {
    /// A reaction: the key of the message reacted to and the emoji (empty: the
    /// reaction is taken back).
    pub fn reaction(&self) -> Option<(&wa::MessageKey, &str)> {
        let r = self.message.reaction_message.as_option()?;
        Some((r.key.as_option()?, r.text.as_deref().unwrap_or_default()))
    }

    /// A revoke (delete for everyone): the key of the message deleted.
    pub fn revoke(&self) -> Option<&wa::MessageKey> {
        let p = protocol_of(&self.message)?;
        (p.r#type == Some(ProtocolType::REVOKE))
            .then(|| p.key.as_option())
            .flatten()
    }

    /// An edit: the key of the message edited and its new content.
    pub fn edit(&self) -> Option<(&wa::MessageKey, &wa::Message)> {
        let p = protocol_of(&self.message)?;
        if p.r#type != Some(ProtocolType::MESSAGE_EDIT) {
            return None;
        }
        Some((p.key.as_option()?, p.edited_message.as_option()?))
    }

    /// A forwarded message: its forwarding score (how many times it was forwarded
    /// before).
    pub fn forwarded(&self) -> Option<u32> {
        use whatsapp_rust::wacore::proto_helpers::MessageExt;
        if !self.message.is_forwarded() {
            return None;
        }
        let m = &self.message;
        let context = m
            .extended_text_message
            .as_option()
            .and_then(|t| t.context_info.as_option())
            .or_else(|| {
                m.image_message
                    .as_option()
                    .and_then(|i| i.context_info.as_option())
            })
            .or_else(|| {
                m.video_message
                    .as_option()
                    .and_then(|v| v.context_info.as_option())
            })
            .or_else(|| {
                m.document_message
                    .as_option()
                    .and_then(|d| d.context_info.as_option())
            })
            .or_else(|| {
                m.audio_message
                    .as_option()
                    .and_then(|a| a.context_info.as_option())
            });
        Some(context.and_then(|c| c.forwarding_score).unwrap_or_default())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use whatsapp_rust::buffa::MessageField;

    const FRIEND: &str = "6281234567890@s.whatsapp.net";
    const COMPANION: &str = "15550001234:1@s.whatsapp.net";

    /// A device's published keys, as the fake keeps them from a prekey upload.
    pub(crate) fn published(
        keys: &crate::signal::DeviceKeys,
        jid: &str,
    ) -> crate::signal::CompanionBundle {
        let user = keys.bundle(jid);
        let children = user
            .children()
            .unwrap()
            .iter()
            .map(|c| {
                if c.tag == "key" {
                    NodeBuilder::new("list").children([c.clone()]).build()
                } else {
                    c.clone()
                }
            })
            .collect::<Vec<_>>();
        let upload = NodeBuilder::new("iq").children(children).build();
        crate::signal::CompanionBundle::from_upload(&upload).unwrap()
    }

    fn text(t: &str) -> wa::Message {
        wa::Message {
            conversation: Some(t.to_owned()),
            ..Default::default()
        }
    }

    fn key(id: &str, from_me: bool) -> wa::MessageKey {
        wa::MessageKey {
            remote_jid: Some(FRIEND.to_owned()),
            from_me: Some(from_me),
            id: Some(id.to_owned()),
            participant: None,
        }
    }

    fn reaction(target: wa::MessageKey, emoji: &str) -> wa::Message {
        wa::Message {
            reaction_message: MessageField::some(wa::message::ReactionMessage {
                key: MessageField::some(target),
                text: Some(emoji.to_owned()),
                sender_timestamp_ms: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn protocol(
        kind: ProtocolType,
        target: wa::MessageKey,
        edited: Option<wa::Message>,
    ) -> wa::Message {
        wa::Message {
            protocol_message: MessageField::some(wa::message::ProtocolMessage {
                key: MessageField::some(target),
                r#type: Some(kind),
                edited_message: edited.map(MessageField::some).unwrap_or_default(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A message from the companion to FRIEND as the recipients decrypted it: the
    /// contact's copy and the phone's.
    fn sent(id: &str, message: wa::Message) -> Vec<Received> {
        [FRIEND, crate::PHONE_USER]
            .iter()
            .map(|recipient| Received {
                id: id.to_owned(),
                chat: FRIEND.to_owned(),
                recipient: recipient.to_string(),
                sender: COMPANION.to_owned(),
                message: message.clone(),
                media: None,
                ack_t: Some(crate::unix_now()),
            })
            .collect()
    }

    fn stanza(id: &str, kind: &str, edit: Option<&str>) -> Node {
        let mut b = NodeBuilder::new("message")
            .attr("id", id.to_owned())
            .attr("to", FRIEND)
            .attr("type", kind.to_owned());
        if let Some(edit) = edit {
            b = b.attr("edit", edit.to_owned());
        }
        b.build()
    }

    /// The fake with one message the companion sent (`MINE`) and one it was
    /// delivered (`THEIRS`), both with FRIEND.
    async fn chat() -> FakeWhatsApp {
        let fake = FakeWhatsApp::start_local().await.unwrap();
        fake.shared
            .world()
            .received
            .extend(sent("MINE", text("hello")));
        note_delivered(&fake.shared, FRIEND, FRIEND, "THEIRS", &text("hi"));
        fake
    }

    fn check_one(fake: &FakeWhatsApp, node: &Node, message: wa::Message) -> Result<()> {
        let id = attr(node, "id").unwrap();
        let received = sent(&id, message);
        check(&fake.shared, node, &received)?;
        fake.shared.world().received.extend(received);
        Ok(())
    }

    #[tokio::test]
    async fn reactions_must_name_a_message_of_their_chat() {
        let fake = chat().await;
        let react = |id: &str, target: wa::MessageKey, emoji: &str| {
            check_one(
                &fake,
                &stanza(id, "reaction", None),
                reaction(target, emoji),
            )
        };
        react("R1", key("THEIRS", false), "👍").unwrap();
        react("R2", key("MINE", true), "").unwrap();
        let err = react("R3", key("MINE", false), "👍").unwrap_err();
        assert!(err.to_string().contains("never delivered"), "{err:#}");
        let err = react("R4", key("THEIRS", true), "👍").unwrap_err();
        assert!(err.to_string().contains("never sent"), "{err:#}");
        let err = react("R5", key("R1", true), "👍").unwrap_err();
        assert!(
            err.to_string().contains("never sent"),
            "a reaction is no target: {err:#}"
        );
        let mut elsewhere = key("THEIRS", false);
        elsewhere.remote_jid = Some("6200000000000@s.whatsapp.net".into());
        let err = react("R6", elsewhere, "👍").unwrap_err();
        assert!(err.to_string().contains("goes to"), "{err:#}");
        let err = check_one(
            &fake,
            &stanza("R7", "text", None),
            reaction(key("THEIRS", false), "👍"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("type=\"text\""), "{err:#}");

        let r = &fake.received()[2];
        let (target, emoji) = r.reaction().unwrap();
        assert_eq!((target.id.as_deref(), emoji), (Some("THEIRS"), "👍"));
    }

    #[tokio::test]
    async fn edits_and_revokes_are_of_my_own_messages_until_they_are_revoked() {
        let fake = chat().await;
        let edit = |id: &str, target: &str, attr: Option<&str>| {
            let message = protocol(
                ProtocolType::MESSAGE_EDIT,
                key(target, true),
                Some(text("hello, edited")),
            );
            check_one(&fake, &stanza(id, "text", attr), message)
        };
        let revoke = |id: &str, target: wa::MessageKey, attr: Option<&str>| {
            let message = protocol(ProtocolType::REVOKE, target, None);
            check_one(&fake, &stanza(id, "text", attr), message)
        };

        edit("E1", "MINE", Some("1")).unwrap();
        let err = edit("E2", "MINE", None).unwrap_err();
        assert!(err.to_string().contains("not 1"), "{err:#}");
        let err = edit("E3", "THEIRS", Some("1")).unwrap_err();
        assert!(err.to_string().contains("never sent"), "{err:#}");
        let empty = protocol(
            ProtocolType::MESSAGE_EDIT,
            key("MINE", true),
            Some(text("")),
        );
        let err = check_one(&fake, &stanza("E4", "text", Some("1")), empty).unwrap_err();
        assert!(err.to_string().contains("no text"), "{err:#}");

        let err = revoke("V1", key("THEIRS", false), Some("7")).unwrap_err();
        assert!(err.to_string().contains("not from me"), "{err:#}");
        let err = revoke("V2", key("THEIRS", false), Some("8")).unwrap_err();
        assert!(err.to_string().contains("outside a group"), "{err:#}");
        assert!(!fake.is_revoked(FRIEND, "MINE"));
        revoke("V3", key("MINE", true), Some("7")).unwrap();
        assert!(fake.is_revoked(FRIEND, "MINE"));

        let err = revoke("V4", key("MINE", true), Some("7")).unwrap_err();
        assert!(err.to_string().contains("deleted for everyone"), "{err:#}");
        let err = edit("E5", "MINE", Some("1")).unwrap_err();
        assert!(err.to_string().contains("deleted for everyone"), "{err:#}");

        let received = fake.received();
        let (target, new) = received[2].edit().unwrap();
        assert_eq!(target.id.as_deref(), Some("MINE"));
        assert_eq!(new.conversation.as_deref(), Some("hello, edited"));
        assert_eq!(
            received.last().unwrap().revoke().unwrap().id.as_deref(),
            Some("MINE")
        );
    }

    #[tokio::test]
    async fn read_receipts_are_recorded_checked_and_acknowledged() {
        let fake = chat().await;
        note_delivered(&fake.shared, FRIEND, FRIEND, "THEIRS2", &text("there?"));
        let receipt = |kind: &str, ids: &[&str]| {
            let mut b = NodeBuilder::new("receipt")
                .attr("to", FRIEND)
                .attr("type", kind.to_owned())
                .attr("id", ids[0].to_owned())
                .attr("t", "1700000000");
            if ids.len() > 1 {
                b = b.children([NodeBuilder::new("list")
                    .children(
                        ids[1..]
                            .iter()
                            .map(|id| NodeBuilder::new("item").attr("id", id.to_string()).build()),
                    )
                    .build()]);
            }
            receipt(&fake.shared, &b.build(), COMPANION)
        };

        let ack = receipt("read", &["THEIRS", "THEIRS2"]).unwrap();
        assert_eq!(ack.tag, "ack");
        assert_eq!(attr(&ack, "class").as_deref(), Some("receipt"));
        assert_eq!(attr(&ack, "id").as_deref(), Some("THEIRS"));
        assert_eq!(attr(&ack, "from").as_deref(), Some(FRIEND));
        assert_eq!(attr(&ack, "type").as_deref(), Some("read"));
        assert_eq!(fake.problems(), Vec::<String>::new());

        receipt("read-self", &["MINE"]).unwrap();
        let problems = fake.problems();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("never delivered a message MINE"),
            "{}",
            problems[0]
        );

        // Delivery-side receipts of other kinds are not read receipts.
        assert!(receipt("sender", &["THEIRS"]).is_none());

        let receipts = fake.read_receipts();
        assert_eq!(receipts.len(), 2);
        assert_eq!(
            receipts[0],
            ReadReceipt {
                chat: FRIEND.to_owned(),
                participant: None,
                ids: vec!["THEIRS".into(), "THEIRS2".into()],
                kind: "read".into(),
                t: Some(1_700_000_000),
                device: COMPANION.to_owned(),
            }
        );
        assert_eq!(receipts[1].kind, "read-self");
    }

    #[tokio::test]
    async fn in_a_group_a_message_is_named_with_its_sender() {
        let fake = FakeWhatsApp::start_local().await.unwrap();
        let group = "120363000000000001@g.us";
        note_delivered(&fake.shared, group, FRIEND, "G1", &text("hi all"));
        let world = fake.shared.world();
        assert!(find_target(&world, group, "G1", false, Some(FRIEND)).is_ok());
        assert!(
            find_target(
                &world,
                group,
                "G1",
                false,
                Some("15550001234:3@s.whatsapp.net")
            )
            .is_err()
        );
        let err = find_target(&world, group, "G1", false, None).err().unwrap();
        assert!(err.to_string().contains("without its sender"), "{err:#}");
    }

    #[tokio::test]
    async fn an_encrypted_reaction_goes_through_the_inbox_checks() {
        let fake = chat().await;
        fake.add_contact("6281234567890", crate::ContactInfo::default())
            .unwrap();
        let contact_keys = fake.shared.keys_of(FRIEND).unwrap().1;
        let bundle = published(&*contact_keys.lock().await, FRIEND);
        let mut own = crate::signal::DeviceKeys::generate().unwrap();
        let mut send = async |id: &str, target: &str| {
            let padded = whatsapp_rust::wacore::messages::MessageUtils::pad_message_v2(
                whatsapp_rust::buffa::Message::encode_to_vec(&reaction(key(target, false), "🎉")),
            );
            let (kind, data) = own.encrypt_for(FRIEND, &bundle, &padded).await.unwrap();
            let node = NodeBuilder::new("message")
                .attr("to", FRIEND)
                .attr("id", id.to_owned())
                .attr("type", "reaction")
                .children([NodeBuilder::new("participants")
                    .children([NodeBuilder::new("to")
                        .attr("jid", FRIEND)
                        .children([NodeBuilder::new("enc")
                            .attr("v", "2")
                            .attr("type", kind)
                            .bytes(data)
                            .build()])
                        .build()])
                    .build()])
                .build();
            crate::inbox::receive(&fake.shared, &node, COMPANION).await
        };
        let received = send("R1", "THEIRS").await.unwrap();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].reaction().unwrap().1, "🎉");
        let err = send("R2", "GONE").await.unwrap_err();
        assert!(err.to_string().contains("never delivered"), "{err:#}");
    }
}
