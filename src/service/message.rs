//! `/message/:id/*`: actions on a message this server has stored (react, revoke,
//! edit, delete for me, read, star, forward, download). The message must be in the
//! store and, except for a forward, in the chat named; anything else is a 404.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use tracing::info;

use super::send::SendResult;
use super::{ServiceError, ensure_connected};
use crate::domain::outgoing::{MessageRef, Outgoing};
use crate::domain::recipient::Recipient;
use crate::domain::timestamp::server_time;
use crate::messages::{MessageStore, StoredMessage};
use crate::whatsapp::{Ack, Context, WhatsApp};

/// Where `/message/:id/download` wrote a stored message's media.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Downloaded {
    pub message_id: String,
    pub status: String,
    pub media_type: String,
    pub filename: String,
    pub file_path: String,
    pub file_size: u64,
}

pub struct MessageService {
    wa: Arc<dyn WhatsApp>,
    store: Arc<MessageStore>,
    /// Where downloads go (`statics/media`), and their size limit.
    media_dir: PathBuf,
    max_download_bytes: u64,
    /// `media_dir` as answers name it: `statics/media` (or a subfolder of it).
    media_link: String,
}

impl MessageService {
    pub fn new(
        wa: Arc<dyn WhatsApp>,
        store: Arc<MessageStore>,
        media_dir: PathBuf,
        max_download_bytes: u64,
    ) -> Self {
        Self {
            wa,
            store,
            media_dir,
            max_download_bytes,
            media_link: "statics/media".to_owned(),
        }
    }

    /// Answers name downloads as `<link>/<file>`.
    pub fn with_media_link(mut self, link: String) -> Self {
        self.media_link = link;
        self
    }

    /// The stored message `id` of `chat`.
    async fn stored(&self, chat: &Recipient, id: &str) -> Result<StoredMessage, ServiceError> {
        let (key, lookup) = (chat.jid().to_non_ad_string(), id.to_owned());
        let found = self.store.call(move |s| s.get(&key, &lookup)).await?;
        found
            .ok_or_else(|| ServiceError::NotFound(format!("message {id} not found in chat {chat}")))
    }

    /// Reacts to the message with `emoji`; an empty one takes the reaction back.
    pub async fn react(
        &self,
        chat: &Recipient,
        id: &str,
        emoji: &str,
    ) -> Result<SendResult, ServiceError> {
        ensure_connected(&*self.wa)?;
        let target = target(&self.stored(chat, id).await?);
        let message = Outgoing::Reaction {
            target,
            emoji: emoji.to_owned(),
        };
        self.deliver(chat, message, "Reaction sent to").await
    }

    /// Deletes the message for everyone: this account's own, or anyone's in a group
    /// this account administers (WhatsApp refuses otherwise).
    pub async fn revoke(&self, chat: &Recipient, id: &str) -> Result<SendResult, ServiceError> {
        ensure_connected(&*self.wa)?;
        let stored = self.stored(chat, id).await?;
        if stored.revoked_at.is_some() {
            return Err(ServiceError::BadRequest(format!(
                "message {id} is already deleted"
            )));
        }
        let message = Outgoing::Revoke {
            target: target(&stored),
        };
        self.deliver(chat, message, "Revoke success").await
    }

    /// Replaces the text of one of this account's own messages.
    pub async fn edit(
        &self,
        chat: &Recipient,
        id: &str,
        text: &str,
    ) -> Result<SendResult, ServiceError> {
        ensure_connected(&*self.wa)?;
        let stored = self.stored(chat, id).await?;
        if !stored.is_from_me {
            return Err(ServiceError::BadRequest(format!(
                "message {id} was not sent by this account; only your own messages can be edited"
            )));
        }
        if stored.revoked_at.is_some() {
            return Err(ServiceError::BadRequest(format!("message {id} is deleted")));
        }
        let message = Outgoing::Edit {
            id: id.to_owned(),
            text: text.to_owned(),
        };
        self.deliver(chat, message, "Update message success").await
    }

    /// Marks the message as read.
    pub async fn read(&self, chat: &Recipient, id: &str) -> Result<SendResult, ServiceError> {
        ensure_connected(&*self.wa)?;
        let stored = self.stored(chat, id).await?;
        if !stored.is_from_me {
            self.wa.mark_read(chat.jid(), &target(&stored)).await?;
            // The chat is read up to this message (its unread count).
            let read = crate::messages::Change::Receipt {
                chat: stored.chat.clone(),
                message_ids: vec![stored.id.clone()],
                kind: "read-self".to_owned(),
                sender: stored.chat.clone(),
                timestamp: jiff::Timestamp::now().as_second(),
            };
            let now = jiff::Timestamp::now().as_second();
            self.store.call(move |s| s.apply(&[read], now)).await?;
        }
        Ok(SendResult {
            message_id: id.to_owned(),
            status: format!("Mark as read success {id}"),
        })
    }

    /// Stars (or unstars) the message on every device of the account.
    pub async fn star(
        &self,
        chat: &Recipient,
        id: &str,
        starred: bool,
    ) -> Result<(), ServiceError> {
        ensure_connected(&*self.wa)?;
        let stored = self.stored(chat, id).await?;
        self.wa.star(chat.jid(), &target(&stored), starred).await?;
        Ok(())
    }

    /// Deletes the message on this account's devices only, and from the store.
    pub async fn delete_for_me(&self, chat: &Recipient, id: &str) -> Result<(), ServiceError> {
        ensure_connected(&*self.wa)?;
        let stored = self.stored(chat, id).await?;
        self.wa
            .delete_for_me(chat.jid(), &target(&stored), stored.timestamp)
            .await?;
        let (key, lookup) = (stored.chat.clone(), id.to_owned());
        self.store.call(move |s| s.forget(&key, &lookup)).await?;
        Ok(())
    }

    /// Sends the stored message `id` (from any chat) again to `to`, marked forwarded.
    pub async fn forward(
        &self,
        id: &str,
        to: &Recipient,
        expiration: Option<u32>,
    ) -> Result<SendResult, ServiceError> {
        ensure_connected(&*self.wa)?;
        let lookup = id.to_owned();
        let found = self.store.call(move |s| s.find(&lookup)).await?;
        let stored =
            found.ok_or_else(|| ServiceError::NotFound(format!("message {id} not found")))?;
        if stored.revoked_at.is_some() || stored.raw.is_empty() {
            return Err(ServiceError::BadRequest(format!(
                "message {id} is deleted and cannot be forwarded"
            )));
        }
        let context = Context {
            expiration,
            ..Context::default()
        };
        let edited_text = match (&stored.body, stored.edited_at, stored.kind.as_str()) {
            (Some(body), Some(_), "text") => Some(body.clone()),
            _ => None,
        };
        let message = Outgoing::Forward {
            raw: stored.raw,
            edited_text,
        };
        let Ack {
            message_id,
            timestamp,
        } = self.wa.send(to.jid(), message, context).await?;
        info!(id = %message_id, forwarded = %id, "sent");
        Ok(SendResult {
            message_id,
            status: format!(
                "Message forwarded to {to} (server timestamp: {})",
                server_time(timestamp)
            ),
        })
    }

    async fn deliver(
        &self,
        chat: &Recipient,
        message: Outgoing,
        what: &str,
    ) -> Result<SendResult, ServiceError> {
        let Ack {
            message_id,
            timestamp,
        } = self
            .wa
            .send(chat.jid(), message, Context::default())
            .await?;
        info!(id = %message_id, "sent");
        Ok(SendResult {
            message_id,
            status: format!(
                "{what} {chat} (server timestamp: {})",
                server_time(timestamp)
            ),
        })
    }

    /// Downloads and decrypts the message's media into the media folder.
    pub async fn download(&self, chat: &Recipient, id: &str) -> Result<Downloaded, ServiceError> {
        ensure_connected(&*self.wa)?;
        let stored = self.stored(chat, id).await?;
        let downloadable = stored
            .media
            .as_ref()
            .is_some_and(|m| m.direct_path.is_some() && m.media_key.is_some());
        if !downloadable || stored.raw.is_empty() {
            return Err(ServiceError::BadRequest(format!(
                "message {id} does not contain downloadable media"
            )));
        }
        let saved = self
            .wa
            .download_media(&stored.raw, &self.media_dir, self.max_download_bytes)
            .await?;
        let filename = saved
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file_size = std::fs::metadata(&saved).map(|m| m.len()).unwrap_or(0);
        let file_path = format!("{}/{filename}", self.media_link);
        Ok(Downloaded {
            message_id: id.to_owned(),
            status: format!("Media downloaded successfully to {file_path}"),
            media_type: stored.kind,
            filename,
            file_path,
            file_size,
        })
    }
}

/// How WhatsApp names the message: its id, whether this account sent it, and in a
/// group who did.
fn target(m: &StoredMessage) -> MessageRef {
    MessageRef {
        id: m.id.clone(),
        from_me: m.is_from_me,
        sender: (!m.is_from_me && m.chat.ends_with("@g.us")).then(|| m.sender.clone()),
    }
}
