//! `/chats` and `/chat/:jid/*`: chat history from the message store, and the chat
//! settings WhatsApp syncs (pin, archive, disappearing timer).

use std::sync::Arc;

use super::{ServiceError, ensure_connected};
use crate::messages::{
    Change, ChatQuery, ChatSetting, MessageQuery, MessageStore, StoredChat, StoredMessage,
    StoredReaction,
};
use crate::whatsapp::WhatsApp;

/// A page of results and how many there are in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// A stored message with the reactions it got, as (sender, emoji, unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageWithReactions {
    pub message: StoredMessage,
    pub reactions: Vec<StoredReaction>,
}

pub struct ChatService {
    wa: Arc<dyn WhatsApp>,
    store: Arc<MessageStore>,
}

impl ChatService {
    pub fn new(wa: Arc<dyn WhatsApp>, store: Arc<MessageStore>) -> Self {
        Self { wa, store }
    }

    pub async fn chats(&self, query: ChatQuery) -> Result<Page<StoredChat>, ServiceError> {
        let (items, total) = self.store.call(move |s| s.chats(&query)).await?;
        Ok(Page { items, total })
    }

    /// Messages of every chat (or of `chat`) whose text has `query.search`, newest
    /// first (without their reactions).
    pub async fn search(
        &self,
        chat: Option<String>,
        query: MessageQuery,
    ) -> Result<Page<MessageWithReactions>, ServiceError> {
        let (found, total) = self
            .store
            .call(move |s| s.search(chat.as_deref(), &query))
            .await?;
        let items = found
            .into_iter()
            .map(|message| MessageWithReactions {
                message,
                reactions: Vec::new(),
            })
            .collect();
        Ok(Page { items, total })
    }

    /// A page of the chat's messages, newest first, with their reactions; 404 when
    /// nothing of the chat is stored.
    pub async fn messages(
        &self,
        jid: &str,
        query: MessageQuery,
    ) -> Result<(StoredChat, Page<MessageWithReactions>), ServiceError> {
        let key = jid.to_owned();
        // One trip to the store for the chat, its page and the page's reactions.
        let found = self
            .store
            .call(move |s| {
                let Some(chat) = s.chat(&key)? else {
                    return Ok(None);
                };
                let (messages, total) = s.messages(&key, &query)?;
                let ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
                let reactions = s.reactions_of(&key, &ids)?;
                Ok(Some((chat, messages, total, reactions)))
            })
            .await?;
        let (chat, messages, total, mut reactions) =
            found.ok_or_else(|| ServiceError::NotFound(format!("chat {jid} not found")))?;
        let items = messages
            .into_iter()
            .map(|message| MessageWithReactions {
                reactions: reactions.remove(&message.id).unwrap_or_default(),
                message,
            })
            .collect();
        Ok((chat, Page { items, total }))
    }

    /// Pins or unpins the chat on every device of the account.
    pub async fn pin(&self, jid: &whatsapp_rust::Jid, pinned: bool) -> Result<(), ServiceError> {
        ensure_connected(&*self.wa)?;
        self.wa.pin_chat(jid, pinned).await?;
        self.remember(jid, ChatSetting::Pinned(pinned)).await
    }

    /// Archives or unarchives the chat on every device of the account.
    pub async fn archive(
        &self,
        jid: &whatsapp_rust::Jid,
        archived: bool,
    ) -> Result<(), ServiceError> {
        ensure_connected(&*self.wa)?;
        self.wa.archive_chat(jid, archived).await?;
        self.remember(jid, ChatSetting::Archived(archived)).await
    }

    /// Puts the label `label_id` on the chat, or takes it off, on every device.
    /// Putting it on names the label `name` when it is not known by that name
    /// (creating it if need be, keeping a known colour).
    pub async fn label(
        &self,
        jid: &whatsapp_rust::Jid,
        label_id: &str,
        name: &str,
        labeled: bool,
    ) -> Result<(), ServiceError> {
        ensure_connected(&*self.wa)?;
        let mut changes = Vec::new();
        if labeled {
            let id = label_id.to_owned();
            let known = self.store.call(move |s| s.label(&id)).await?;
            if known.as_ref().is_none_or(|l| l.name != name) {
                let color = known.map_or(0, |l| l.color);
                self.wa.edit_label(label_id, name, color).await?;
                changes.push(Change::Label {
                    id: label_id.to_owned(),
                    name: Some(name.to_owned()),
                    color: Some(color),
                    deleted: false,
                });
            }
        }
        self.wa.label_chat(jid, label_id, labeled).await?;
        changes.push(Change::ChatLabel {
            jid: jid.to_non_ad_string(),
            label_id: label_id.to_owned(),
            labeled,
        });
        let now = jiff::Timestamp::now().as_second();
        Ok(self.store.call(move |s| s.apply(&changes, now)).await?)
    }

    /// Sets the chat's disappearing-message timer (0 turns it off).
    pub async fn disappearing(
        &self,
        jid: &whatsapp_rust::Jid,
        seconds: u32,
    ) -> Result<(), ServiceError> {
        ensure_connected(&*self.wa)?;
        self.wa.set_disappearing(jid, seconds).await?;
        self.remember(jid, ChatSetting::Expiration(seconds)).await
    }

    async fn remember(
        &self,
        jid: &whatsapp_rust::Jid,
        setting: ChatSetting,
    ) -> Result<(), ServiceError> {
        let key = jid.to_non_ad_string();
        let now = jiff::Timestamp::now().as_second();
        Ok(self
            .store
            .call(move |s| s.set_chat(&key, setting, now))
            .await?)
    }
}
