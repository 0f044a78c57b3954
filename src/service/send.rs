//! `/send/*`: builds each WhatsApp message, uploads media, sends, and reports the
//! server's acknowledgement time.

use std::sync::Arc;

use serde::Serialize;
use tracing::info;

use super::{ServiceError, ensure_connected};
use crate::domain::outgoing::mentions_in;
use crate::domain::recipient::Recipient;
use crate::domain::timestamp::server_time;
use crate::domain::vcard::contact_vcard;
use crate::media::{self, MediaConfig, Upload};
use crate::whatsapp::{Ack, Context, MediaKind, Outgoing, WhatsApp};

/// The `results` of every send route: `status` as v2.3.0 words it, and the id of
/// the message (additive; the later Go versions have it).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct SendResult {
    pub message_id: String,
    pub status: String,
}

/// An image send: the upload and its options.
pub struct ImageSend {
    pub upload: Upload,
    pub caption: Option<String>,
    pub view_once: bool,
    pub compress: bool,
}

/// A video send: the upload and its options.
pub struct VideoSend {
    pub upload: Upload,
    pub caption: Option<String>,
    pub view_once: bool,
    pub compress: bool,
}

pub struct SendService {
    wa: Arc<dyn WhatsApp>,
    media: MediaConfig,
    /// Fetches link previews; `None`: links go without one.
    previews: Option<crate::fetch::Fetcher>,
    /// `--account-validation`: numbers are checked before a send; `None`: not.
    validated: Option<Validated>,
}

/// Numbers found on WhatsApp lately, so that a conversation is not checked before
/// every message.
#[derive(Default)]
struct Validated {
    /// User part → when it was found.
    found: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

impl Validated {
    /// How long a number found stays trusted.
    const KEEP: std::time::Duration = std::time::Duration::from_secs(3600);
    /// Most numbers remembered (then the memory starts over).
    const MOST: usize = 4096;

    fn knows(&self, user: &str) -> bool {
        let found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        found.get(user).is_some_and(|at| at.elapsed() < Self::KEEP)
    }

    fn remember(&self, user: &str) {
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        if found.len() >= Self::MOST {
            found.clear();
        }
        found.insert(user.to_owned(), std::time::Instant::now());
    }
}

impl SendService {
    pub fn new(wa: Arc<dyn WhatsApp>, media: MediaConfig) -> Self {
        Self {
            wa,
            media,
            previews: None,
            validated: None,
        }
    }

    /// `--account-validation`: a phone number is checked to be on WhatsApp before
    /// anything is sent to it (groups, newsletters and LIDs are not checked).
    pub fn with_account_validation(mut self, on: bool) -> Self {
        self.validated = on.then(Validated::default);
        self
    }

    /// Connected, and with validation on, `to` is on WhatsApp.
    async fn reachable(&self, to: &Recipient) -> Result<(), ServiceError> {
        ensure_connected(&*self.wa)?;
        let Some(validated) = &self.validated else {
            return Ok(());
        };
        let jid = to.jid();
        if jid.server != whatsapp_rust::Server::Pn || validated.knows(&jid.user) {
            return Ok(());
        }
        match self.wa.on_whatsapp(jid).await? {
            true => {
                validated.remember(&jid.user);
                Ok(())
            }
            false => Err(ServiceError::NotOnWhatsApp(jid.user.to_string())),
        }
    }

    /// Link previews fetched with `fetcher`.
    pub fn with_previews(mut self, fetcher: crate::fetch::Fetcher) -> Self {
        self.previews = Some(fetcher);
        self
    }

    /// A caption and a link, with the page's preview when it can be read.
    pub async fn link(
        &self,
        to: &Recipient,
        link: String,
        caption: String,
        context: Context,
    ) -> Result<SendResult, ServiceError> {
        self.reachable(to).await?;
        let preview = match self.previews.clone() {
            Some(fetcher) => {
                let (url, dir) = (link.clone(), self.media.temp_dir.clone());
                tokio::task::spawn_blocking(move || {
                    crate::link_preview::preview(&fetcher, &url, &dir)
                })
                .await
                .unwrap_or_default()
            }
            None => Default::default(),
        };
        let message = Outgoing::Link {
            text: format!("{caption}\n{link}"),
            url: link,
            title: preview.title,
            description: preview.description,
            thumbnail: preview.thumbnail,
        };
        self.deliver(to, message, context, "Link sent to").await
    }

    pub async fn message(
        &self,
        to: &Recipient,
        text: String,
        mut context: Context,
    ) -> Result<SendResult, ServiceError> {
        self.reachable(to).await?;
        for mention in mentions_in(&text) {
            if !context.mentions.contains(&mention) {
                context.mentions.push(mention);
            }
        }
        self.deliver(to, Outgoing::Text(text), context, "Message sent to")
            .await
    }

    pub async fn audio(
        &self,
        to: &Recipient,
        upload: Upload,
        ptt: bool,
        context: Context,
    ) -> Result<SendResult, ServiceError> {
        self.reachable(to).await?;
        let audio = media::audio::prepare(&upload, ptt, &self.media).await?;
        drop(upload);
        let file = self.wa.upload(audio.bytes, MediaKind::Audio).await?;
        let message = Outgoing::Audio {
            file,
            mime_type: audio.mime_type,
            ptt,
        };
        self.deliver(to, message, context, "Send audio success")
            .await
    }

    pub async fn sticker(
        &self,
        to: &Recipient,
        upload: Upload,
        context: Context,
    ) -> Result<SendResult, ServiceError> {
        self.reachable(to).await?;
        let sticker = media::sticker::prepare(&upload, &self.media).await?;
        drop(upload);
        let file = self.wa.upload(sticker.bytes, MediaKind::Sticker).await?;
        self.deliver(to, Outgoing::Sticker { file }, context, "Sticker sent to")
            .await
    }

    pub async fn poll(
        &self,
        to: &Recipient,
        poll: Outgoing,
        context: Context,
    ) -> Result<SendResult, ServiceError> {
        self.reachable(to).await?;
        self.deliver(to, poll, context, "Send poll success").await
    }

    pub async fn location(
        &self,
        to: &Recipient,
        location: Outgoing,
        context: Context,
    ) -> Result<SendResult, ServiceError> {
        self.reachable(to).await?;
        self.deliver(to, location, context, "Send location success")
            .await
    }

    pub async fn contact(
        &self,
        to: &Recipient,
        name: &str,
        phone: &str,
        context: Context,
    ) -> Result<SendResult, ServiceError> {
        self.reachable(to).await?;
        let message = Outgoing::Contact {
            name: name.trim().to_owned(),
            vcard: contact_vcard(name, phone),
        };
        self.deliver(to, message, context, "Contact sent to").await
    }

    pub async fn file(
        &self,
        to: &Recipient,
        upload: Upload,
        caption: Option<String>,
        context: Context,
    ) -> Result<SendResult, ServiceError> {
        self.reachable(to).await?;
        let doc = media::document::prepare(&upload).await?;
        let file = self
            .wa
            .upload_file(&upload.path, MediaKind::Document)
            .await?;
        drop(upload);
        let message = Outgoing::Document {
            file,
            mime_type: doc.mime_type,
            file_name: doc.file_name,
            caption,
        };
        self.deliver(to, message, context, "Document sent to").await
    }

    pub async fn image(
        &self,
        to: &Recipient,
        req: ImageSend,
        context: Context,
    ) -> Result<SendResult, ServiceError> {
        self.reachable(to).await?;
        let image = media::image::prepare(&req.upload, req.compress, &self.media).await?;
        drop(req.upload);
        let file = self.wa.upload(image.bytes, MediaKind::Image).await?;
        let message = Outgoing::Image {
            file,
            mime_type: image.mime_type.to_owned(),
            width: image.width,
            height: image.height,
            thumbnail: image.thumbnail,
            caption: req.caption,
            view_once: req.view_once,
        };
        self.deliver(to, message, context, "Image message sent to")
            .await
    }

    pub async fn video(
        &self,
        to: &Recipient,
        req: VideoSend,
        context: Context,
    ) -> Result<SendResult, ServiceError> {
        self.reachable(to).await?;
        let video = media::video::prepare(&req.upload, req.compress, &self.media).await?;
        let path = video.encoded.as_deref().unwrap_or(&req.upload.path);
        let file = self.wa.upload_file(path, MediaKind::Video).await?;
        drop(req.upload);
        let message = Outgoing::Video {
            file,
            mime_type: video.mime_type.to_owned(),
            thumbnail: video.thumbnail,
            caption: req.caption,
            view_once: req.view_once,
        };
        self.deliver(to, message, context, "Video sent to").await
    }

    /// `/send/presence`: online or offline.
    pub async fn presence(&self, available: bool) -> Result<SendResult, ServiceError> {
        ensure_connected(&*self.wa)?;
        self.wa.set_presence(available).await?;
        let kind = if available {
            "available"
        } else {
            "unavailable"
        };
        Ok(SendResult {
            message_id: "presence".to_owned(),
            status: format!("Send presence success {kind}"),
        })
    }

    /// `/send/chat-presence`: typing in a chat, or stopped.
    pub async fn chat_presence(
        &self,
        to: &Recipient,
        typing: bool,
    ) -> Result<SendResult, ServiceError> {
        self.reachable(to).await?;
        self.wa.chat_presence(to.jid(), typing).await?;
        let action = if typing { "start" } else { "stop" };
        Ok(SendResult {
            message_id: format!("chat-presence-{action}"),
            status: format!("Send chat presence {action} typing success {to}"),
        })
    }

    async fn deliver(
        &self,
        to: &Recipient,
        message: Outgoing,
        context: Context,
        what: &str,
    ) -> Result<SendResult, ServiceError> {
        let Ack {
            message_id,
            timestamp,
        } = self.wa.send(to.jid(), message, context).await?;
        info!(id = %message_id, "sent");
        Ok(SendResult {
            message_id,
            status: format!("{what} {to} (server timestamp: {})", server_time(timestamp)),
        })
    }
}
