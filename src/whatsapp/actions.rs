//! Actions on messages and chats that are not messages themselves: read receipts,
//! app-state changes synced to the account's other devices (star, delete for me,
//! pin, archive), the disappearing timer, and downloading stored media.

use std::path::{Path, PathBuf};

use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::prelude::wa;
use whatsapp_rust::{Client, Jid, Server};

use super::WhatsAppError;
use crate::domain::outgoing::MessageRef;

fn sender_jid(target: &MessageRef) -> Option<Jid> {
    target.sender.as_deref().and_then(|s| s.parse().ok())
}

pub async fn mark_read(
    client: &Client,
    chat: &Jid,
    target: &MessageRef,
) -> Result<(), WhatsAppError> {
    let sender = sender_jid(target);
    client
        .mark_as_read(chat, sender.as_ref(), &[target.id.as_str()])
        .await
        .map_err(|e| WhatsAppError::failed("read receipt failed", e))
}

pub async fn star(
    client: &Client,
    chat: &Jid,
    target: &MessageRef,
    starred: bool,
) -> Result<(), WhatsAppError> {
    let sender = sender_jid(target);
    let actions = client.chat_actions();
    let done = if starred {
        actions
            .star_message(chat, sender.as_ref(), &target.id, target.from_me)
            .await
    } else {
        actions
            .unstar_message(chat, sender.as_ref(), &target.id, target.from_me)
            .await
    };
    done.map_err(|e| WhatsAppError::failed("star update failed", e))
}

pub async fn delete_for_me(
    client: &Client,
    chat: &Jid,
    target: &MessageRef,
    timestamp: i64,
) -> Result<(), WhatsAppError> {
    let sender = sender_jid(target);
    client
        .chat_actions()
        .delete_message_for_me(
            chat,
            sender.as_ref(),
            &target.id,
            target.from_me,
            true,
            Some(timestamp),
        )
        .await
        .map_err(|e| WhatsAppError::failed("delete for me failed", e))
}

pub async fn pin_chat(client: &Client, chat: &Jid, pinned: bool) -> Result<(), WhatsAppError> {
    let actions = client.chat_actions();
    let done = if pinned {
        actions.pin_chat(chat).await
    } else {
        actions.unpin_chat(chat).await
    };
    done.map_err(|e| WhatsAppError::failed("pin update failed", e))
}

pub async fn archive_chat(
    client: &Client,
    chat: &Jid,
    archived: bool,
) -> Result<(), WhatsAppError> {
    let actions = client.chat_actions();
    let done = if archived {
        actions.archive_chat(chat, None).await
    } else {
        actions.unarchive_chat(chat, None).await
    };
    done.map_err(|e| WhatsAppError::failed("archive update failed", e))
}

pub async fn edit_label(
    client: &Client,
    id: &str,
    name: &str,
    color: i32,
) -> Result<(), WhatsAppError> {
    client
        .labels()
        .create_label(id, name, color)
        .await
        .map_err(|e| WhatsAppError::failed("label update failed", e))
}

pub async fn label_chat(
    client: &Client,
    chat: &Jid,
    id: &str,
    labeled: bool,
) -> Result<(), WhatsAppError> {
    let labels = client.labels();
    let done = if labeled {
        labels.add_chat_label(id, chat).await
    } else {
        labels.remove_chat_label(id, chat).await
    };
    done.map_err(|e| WhatsAppError::failed("chat label update failed", e))
}

/// A 1:1 chat's timer is a message to the other side; a group's is a group setting.
pub async fn set_disappearing(
    client: &Client,
    chat: &Jid,
    seconds: u32,
) -> Result<(), WhatsAppError> {
    if chat.server == Server::Group {
        client
            .groups()
            .set_ephemeral(chat.clone(), seconds)
            .await
            .map_err(|e| WhatsAppError::failed("disappearing timer update failed", e))
    } else {
        client
            .set_chat_disappearing_timer(chat.clone(), seconds)
            .await
            .map(|_| ())
            .map_err(|e| WhatsAppError::failed("disappearing timer update failed", e))
    }
}

/// Downloads and decrypts the media of `raw` (a stored message) into `dir`.
pub async fn download_media(
    client: &Client,
    raw: &[u8],
    dir: &Path,
    max_bytes: u64,
) -> Result<PathBuf, WhatsAppError> {
    let message = wa::Message::decode_from_slice(raw)
        .map_err(|e| WhatsAppError::failed("the stored message cannot be read", e))?;
    let media = super::content::media_of(&message).ok_or_else(|| {
        WhatsAppError::Rejected("the message does not contain downloadable media".into())
    })?;
    let saver = crate::webhook::media::MediaSaver::new(crate::webhook::media::MediaConfig {
        dir: dir.to_owned(),
        max_bytes,
        retention: None,
    });
    if media.file_length.is_some_and(|len| len > max_bytes) {
        return Err(WhatsAppError::Rejected(format!(
            "the media is larger than --max-download-size-mb ({} MB)",
            max_bytes / 1_000_000
        )));
    }
    saver
        .download(client, &media)
        .await
        .map(PathBuf::from)
        .map_err(|e| WhatsAppError::failed("media download failed", format!("{e:#}")))
}
