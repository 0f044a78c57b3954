//! `--autoreply`: a fixed answer to new text messages in private chats, at most one
//! per chat per interval, so that it can neither loop with another bot nor be used
//! to make this account spam.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, warn};
use whatsapp_rust::prelude::*;
use whatsapp_rust::{Jid, Server};

/// Messages older than this (the backlog delivered after being offline) get no answer.
pub const MAX_AGE: Duration = Duration::from_secs(5 * 60);

/// The facts about an incoming message that decide whether it gets an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub chat: String,
    /// A one-to-one chat with a person (not a group, broadcast, newsletter or bot).
    pub private_chat: bool,
    pub from_me: bool,
    /// Plain text (not media, a reaction, a protocol message, a poll, …).
    pub is_text: bool,
    /// An edit or a revoke of an earlier message.
    pub is_edit: bool,
    pub age: Duration,
}

impl Incoming {
    pub fn from_message(info: &MessageInfo, message: &wa::Message) -> Self {
        let chat = &info.source.chat;
        let sent = info.timestamp.timestamp();
        let now = jiff::Timestamp::now().as_second();
        Incoming {
            chat: chat.to_string(),
            private_chat: is_person(chat) && !info.source.is_group,
            from_me: info.source.is_from_me,
            is_text: message.text_content().is_some(),
            is_edit: !matches!(
                info.edit,
                whatsapp_rust::types::message::EditAttribute::Empty
            ),
            age: Duration::from_secs(u64::try_from(now - sent).unwrap_or(0)),
        }
    }

    fn deserves_reply(&self) -> bool {
        self.private_chat && !self.from_me && self.is_text && !self.is_edit && self.age <= MAX_AGE
    }
}

fn is_person(jid: &Jid) -> bool {
    matches!(jid.server, Server::Pn | Server::Lid) && jid.user != "status"
}

/// Decides which messages get the answer; one per chat per `interval`.
pub struct AutoReply {
    pub text: String,
    interval: Duration,
    last: Mutex<HashMap<String, Instant>>,
}

impl AutoReply {
    pub fn new(text: String, interval: Duration) -> Self {
        Self {
            text,
            interval,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `message` gets the answer now; counts it as answered if so.
    pub fn should_reply(&self, message: &Incoming, now: Instant) -> bool {
        if !message.deserves_reply() {
            return false;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last
            .get(&message.chat)
            .is_some_and(|at| now.saturating_duration_since(*at) < self.interval)
        {
            return false;
        }
        // Forget chats whose interval has passed, so the map stays small.
        last.retain(|_, at| now.saturating_duration_since(*at) < self.interval);
        last.insert(message.chat.clone(), now);
        true
    }

    /// Answers `message` in its chat if it deserves it (runs on its own task); the
    /// answer goes into `store` like every message sent.
    pub fn handle(
        self: &Arc<Self>,
        client: Arc<Client>,
        store: Option<Arc<crate::messages::MessageStore>>,
        info: &MessageInfo,
        message: &wa::Message,
    ) {
        let incoming = Incoming::from_message(info, message);
        if !self.should_reply(&incoming, Instant::now()) {
            return;
        }
        let to = info.source.chat.clone();
        let text = self.text.clone();
        tokio::spawn(async move {
            let answer = wa::Message::text(text);
            match client.send_message(to.clone(), answer.clone()).await {
                Ok(sent) => {
                    debug!(%to, "auto-reply sent");
                    let now = jiff::Timestamp::now().as_second();
                    let change = crate::messages::from_wa::sent(
                        &to,
                        client.pn().as_ref(),
                        &sent.message_id,
                        now,
                        &answer,
                    );
                    if let (Some(store), Some(change)) = (store, change) {
                        store.apply_in_background(change, "an auto-reply");
                    }
                }
                Err(e) => warn!(%to, error = %e, "auto-reply failed"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_from(chat: &str) -> Incoming {
        Incoming {
            chat: chat.to_owned(),
            private_chat: true,
            from_me: false,
            is_text: true,
            is_edit: false,
            age: Duration::from_secs(1),
        }
    }

    fn replier() -> AutoReply {
        AutoReply::new("away".into(), Duration::from_secs(60))
    }

    #[test]
    fn a_new_private_text_gets_one_answer_per_chat_per_interval() {
        let r = replier();
        let t0 = Instant::now();
        assert!(r.should_reply(&text_from("1@s.whatsapp.net"), t0));
        assert!(!r.should_reply(&text_from("1@s.whatsapp.net"), t0 + Duration::from_secs(59)));
        assert!(r.should_reply(&text_from("2@s.whatsapp.net"), t0 + Duration::from_secs(1)));
        assert!(r.should_reply(&text_from("1@s.whatsapp.net"), t0 + Duration::from_secs(60)));
    }

    #[test]
    fn everything_but_a_fresh_private_text_from_someone_else_is_ignored() {
        let r = replier();
        let now = Instant::now();
        let cases = [
            Incoming {
                private_chat: false,
                ..text_from("g@g.us")
            },
            Incoming {
                from_me: true,
                ..text_from("a")
            },
            Incoming {
                is_text: false,
                ..text_from("b")
            },
            Incoming {
                is_edit: true,
                ..text_from("c")
            },
            Incoming {
                age: MAX_AGE + Duration::from_secs(1),
                ..text_from("d")
            },
        ];
        for case in cases {
            assert!(!r.should_reply(&case, now), "{case:?}");
        }
        // None of them used up the chat's turn.
        assert!(r.should_reply(&text_from("a"), now));
    }

    #[test]
    fn only_people_count_as_private_chats() {
        for (jid, person) in [
            ("15550001@s.whatsapp.net", true),
            ("205550001@lid", true),
            ("120363@g.us", false),
            ("status@broadcast", false),
            ("12036@newsletter", false),
            ("1313@bot", false),
        ] {
            let jid: Jid = jid.parse().unwrap();
            assert_eq!(is_person(&jid), person, "{jid}");
        }
    }

    #[test]
    fn the_memory_of_answered_chats_is_bounded_by_the_interval() {
        let r = replier();
        let t0 = Instant::now();
        for i in 0..1_000 {
            assert!(r.should_reply(&text_from(&i.to_string()), t0));
        }
        assert!(r.should_reply(&text_from("late"), t0 + Duration::from_secs(61)));
        assert_eq!(r.last.lock().unwrap().len(), 1);
    }
}
