//! The flood fault: for every message the client sends, the fake first pushes a burst
//! of stanzas at it — delivery and read receipts for that message from its recipient,
//! and profile notifications (about text, picture) from the same account — so that
//! receipts and notifications reach the client while its sends are in flight.
//!
//! The client answers each of them with a transport `<ack>` and nothing else
//! (whatsapp-rust 0.7.0: `receipt.rs` `handle_receipt_inline` only dispatches
//! `Event::Receipt` for these types; `handlers/notification/profile.rs` only dispatches
//! `Event::UserAboutUpdate` / `Event::PictureUpdate`; `client/node_io.rs` `should_ack`
//! acks every `receipt` and `notification` with an `id` and a `from`). The [`Ledger`]
//! checks those acks: each must answer a stanza the fake sent, with the same class,
//! id, type, addressee and participant, and without an error.

use std::collections::HashMap;

use whatsapp_rust::NodeBuilder;
use whatsapp_rust::wacore_binary::node::Node;

use crate::node::attr;

/// Who the flood comes from: the chat the message went to (`from` of the receipts),
/// the member who "received" it in a group (`participant`), and the account whose
/// profile notifications are sent (`notifier`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub from: String,
    pub participant: Option<String>,
    pub notifier: String,
}

/// The `<ack>` the client owes for one stanza the fake sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owed {
    class: &'static str,
    id: String,
    kind: Option<String>,
    to: String,
    participant: Option<String>,
}

/// `count` stanzas for the message `message_id`, each with the ack it calls for.
/// The mix cycles through: delivery receipt (no `type`), read receipt, about-text
/// notification, picture notification.
pub fn stanzas(count: u32, message_id: &str, source: &Source, now: u64) -> Vec<(Node, Owed)> {
    (0..count)
        .map(|i| match i % 4 {
            0 => receipt(message_id, None, source, now),
            1 => receipt(message_id, Some("read"), source, now),
            2 => status_notification(i, source, now),
            _ => picture_notification(i, source, now),
        })
        .collect()
}

fn receipt(message_id: &str, kind: Option<&str>, source: &Source, now: u64) -> (Node, Owed) {
    let mut b = NodeBuilder::new("receipt")
        .attr("from", source.from.clone())
        .attr("id", message_id.to_owned())
        .attr("t", now.to_string());
    if let Some(kind) = kind {
        b = b.attr("type", kind);
    }
    if let Some(p) = &source.participant {
        b = b.attr("participant", p.clone());
    }
    let owed = Owed {
        class: "receipt",
        id: message_id.to_owned(),
        kind: kind.map(str::to_owned),
        to: source.from.clone(),
        // The client leaves out a receipt's participant only when it equals `from`.
        participant: source.participant.clone().filter(|p| *p != source.from),
    };
    (b.build(), owed)
}

fn notification_id(i: u32) -> String {
    format!("{}{i}", rand::random::<u32>())
}

fn notification(kind: &str, id: String, source: &Source, now: u64) -> NodeBuilder {
    NodeBuilder::new("notification")
        .attr("type", kind.to_owned())
        .attr("from", source.notifier.clone())
        .attr("id", id)
        .attr("t", now.to_string())
}

impl Owed {
    /// The ack of a `<notification type=kind id from participant?>`.
    pub fn notification(kind: &str, id: &str, from: &str, participant: Option<&str>) -> Owed {
        Owed {
            class: "notification",
            id: id.to_owned(),
            kind: Some(kind.to_owned()),
            to: from.to_owned(),
            participant: participant.map(str::to_owned),
        }
    }
}

fn owed_notification(kind: &str, id: String, source: &Source) -> Owed {
    Owed {
        class: "notification",
        id,
        kind: Some(kind.to_owned()),
        to: source.notifier.clone(),
        participant: None,
    }
}

/// `<notification type="status"><set>about text</set></notification>`: the account
/// changed its about text.
fn status_notification(i: u32, source: &Source, now: u64) -> (Node, Owed) {
    let id = notification_id(i);
    let node = notification("status", id.clone(), source, now)
        .attr("notify", "Fake Contact")
        .children([NodeBuilder::new("set")
            .string_content(format!("busy ({i})"))
            .build()])
        .build();
    (node, owed_notification("status", id, source))
}

/// `<notification type="picture"><set jid id author/></notification>`: the account
/// changed its profile picture.
fn picture_notification(i: u32, source: &Source, now: u64) -> (Node, Owed) {
    let id = notification_id(i);
    let node = notification("picture", id.clone(), source, now)
        .children([NodeBuilder::new("set")
            .attr("jid", source.notifier.clone())
            .attr("id", (1_700_000_000 + u64::from(i)).to_string())
            .attr("author", source.notifier.clone())
            .build()])
        .build();
    (node, owed_notification("picture", id, source))
}

/// What an `<ack>` from the client meant.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It answers a flood stanza.
    Expected,
    /// Not an ack of a receipt or notification: not the flood's business.
    NotOurs,
    /// Something is wrong with it (the reason).
    Problem(String),
}

/// The acks the client still owes for one connection's flood stanzas.
#[derive(Debug, Default)]
pub struct Ledger {
    owed: HashMap<Owed, u32>,
}

impl Ledger {
    pub fn expect(&mut self, owed: Owed) {
        *self.owed.entry(owed).or_default() += 1;
    }

    /// Checks one `<ack>` from the client.
    pub fn check(&mut self, ack: &Node) -> Verdict {
        let class: &'static str = match attr(ack, "class").as_deref() {
            Some("receipt") => "receipt",
            Some("notification") => "notification",
            _ => return Verdict::NotOurs,
        };
        let key = Owed {
            class,
            id: attr(ack, "id").unwrap_or_default(),
            kind: attr(ack, "type"),
            to: attr(ack, "to").unwrap_or_default(),
            participant: attr(ack, "participant"),
        };
        let shown = crate::show(ack);
        let Some(left) = self.owed.get_mut(&key) else {
            return Verdict::Problem(format!(
                "the client acknowledged a {class} the fake never sent (or not like this): {shown}"
            ));
        };
        *left -= 1;
        if *left == 0 {
            self.owed.remove(&key);
        }
        match attr(ack, "error") {
            Some(code) => Verdict::Problem(format!(
                "the client refused a flood {class} with error {code}: {shown}"
            )),
            None => Verdict::Expected,
        }
    }

    /// How many acks are still owed.
    pub fn owed(&self) -> u32 {
        self.owed.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dm() -> Source {
        Source {
            from: "6281234@s.whatsapp.net".to_owned(),
            participant: None,
            notifier: "6281234@s.whatsapp.net".to_owned(),
        }
    }

    /// The ack whatsapp-rust builds for `node`: class = tag, id, to = from, type
    /// echoed, participant unless it equals `from` on a receipt.
    fn client_ack(node: &Node) -> Node {
        client_ack_with(node, None)
    }

    fn client_ack_with(node: &Node, error: Option<&str>) -> Node {
        let mut b = NodeBuilder::new("ack")
            .attr("class", node.tag.to_string())
            .attr("id", attr(node, "id").unwrap())
            .attr("to", attr(node, "from").unwrap());
        if let Some(p) =
            attr(node, "participant").filter(|p| Some(p) != attr(node, "from").as_ref())
        {
            b = b.attr("participant", p);
        }
        if let Some(t) = attr(node, "type") {
            b = b.attr("type", t);
        }
        if let Some(code) = error {
            b = b.attr("error", code);
        }
        b.build()
    }

    #[test]
    fn a_flood_mixes_receipts_of_the_message_and_notifications() {
        let stanzas = stanzas(8, "3EB0ABC", &dm(), 1_700_000_000);
        assert_eq!(stanzas.len(), 8);
        let tags: Vec<(String, Option<String>)> = stanzas
            .iter()
            .map(|(n, _)| (n.tag.to_string(), attr(n, "type")))
            .collect();
        assert_eq!(
            &tags[..4],
            &[
                ("receipt".to_owned(), None),
                ("receipt".to_owned(), Some("read".to_owned())),
                ("notification".to_owned(), Some("status".to_owned())),
                ("notification".to_owned(), Some("picture".to_owned())),
            ]
        );
        for (node, _) in stanzas.iter().filter(|(n, _)| n.tag == "receipt") {
            assert_eq!(attr(node, "id").as_deref(), Some("3EB0ABC"));
            assert_eq!(
                attr(node, "from").as_deref(),
                Some("6281234@s.whatsapp.net")
            );
        }
        let ids: std::collections::HashSet<_> = stanzas
            .iter()
            .filter(|(n, _)| n.tag == "notification")
            .map(|(n, _)| attr(n, "id").unwrap())
            .collect();
        assert_eq!(ids.len(), 4, "every notification has its own id");
    }

    #[test]
    fn the_ledger_takes_the_clients_acks_and_flags_the_rest() {
        let source = Source {
            from: "120363000000000001@g.us".to_owned(),
            participant: Some("6281234@s.whatsapp.net".to_owned()),
            notifier: "6281234@s.whatsapp.net".to_owned(),
        };
        let mut ledger = Ledger::default();
        let stanzas = stanzas(6, "3EB0ABC", &source, 1);
        for (_, owed) in &stanzas {
            ledger.expect(owed.clone());
        }
        assert_eq!(ledger.owed(), 6);
        for (node, _) in &stanzas {
            assert_eq!(ledger.check(&client_ack(node)), Verdict::Expected);
        }
        assert_eq!(ledger.owed(), 0);

        // Once more: nothing is owed any longer.
        assert!(matches!(
            ledger.check(&client_ack(&stanzas[0].0)),
            Verdict::Problem(_)
        ));
        // A nack is a problem even when it was owed.
        let (node, owed) = &stanzas[2];
        ledger.expect(owed.clone());
        let nack = client_ack_with(node, Some("500"));
        assert!(matches!(ledger.check(&nack), Verdict::Problem(_)));
        assert_eq!(ledger.owed(), 0);
        // A message or IQ ack is none of the ledger's business.
        let other = NodeBuilder::new("ack")
            .attr("class", "message")
            .attr("id", "x")
            .build();
        assert_eq!(ledger.check(&other), Verdict::NotOurs);
    }
}
