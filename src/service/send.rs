//! `/send/*`: builds each WhatsApp message, uploads media, sends, and reports the
//! server's acknowledgement time.

use std::sync::Arc;

use serde::Serialize;
use tracing::info;
use whatsapp_rust::prelude::{MessageField, wa};

use super::{ServiceError, ensure_connected};
use crate::domain::recipient::Recipient;
use crate::domain::timestamp::server_time;
use crate::domain::vcard::contact_vcard;
use crate::media::{self, MediaConfig, Upload};
use crate::whatsapp::{Ack, MediaKind, Uploaded, WhatsApp};

/// The `results` of every send route.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct SendResult {
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
}

impl SendService {
    pub fn new(wa: Arc<dyn WhatsApp>, media: MediaConfig) -> Self {
        Self { wa, media }
    }

    pub async fn message(&self, to: &Recipient, text: String) -> Result<SendResult, ServiceError> {
        ensure_connected(&*self.wa)?;
        let message = wa::Message {
            conversation: Some(text),
            ..Default::default()
        };
        self.deliver(to, message, "Message sent to").await
    }

    pub async fn contact(
        &self,
        to: &Recipient,
        name: &str,
        phone: &str,
    ) -> Result<SendResult, ServiceError> {
        ensure_connected(&*self.wa)?;
        let message = wa::Message {
            contact_message: MessageField::some(wa::message::ContactMessage {
                display_name: Some(name.trim().to_owned()),
                vcard: Some(contact_vcard(name, phone)),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.deliver(to, message, "Contact sent to").await
    }

    pub async fn file(
        &self,
        to: &Recipient,
        upload: Upload,
        caption: Option<String>,
    ) -> Result<SendResult, ServiceError> {
        ensure_connected(&*self.wa)?;
        let doc = media::document::prepare(&upload).await?;
        let uploaded = self.wa.upload(doc.bytes, MediaKind::Document).await?;
        drop(upload);
        let message = wa::Message {
            document_message: MessageField::some(wa::message::DocumentMessage {
                mimetype: Some(doc.mime_type),
                title: Some(doc.file_name.clone()),
                file_name: Some(doc.file_name),
                caption,
                ..document_fields(uploaded)
            }),
            ..Default::default()
        };
        self.deliver(to, message, "Document sent to").await
    }

    pub async fn image(&self, to: &Recipient, req: ImageSend) -> Result<SendResult, ServiceError> {
        ensure_connected(&*self.wa)?;
        let image = media::image::prepare(&req.upload, req.compress, &self.media).await?;
        drop(req.upload);
        let uploaded = self.wa.upload(image.bytes, MediaKind::Image).await?;
        let message = wa::Message {
            image_message: MessageField::some(wa::message::ImageMessage {
                url: Some(uploaded.url),
                direct_path: Some(uploaded.direct_path),
                media_key: Some(uploaded.media_key),
                file_enc_sha256: Some(uploaded.file_enc_sha256),
                file_sha256: Some(uploaded.file_sha256),
                file_length: Some(uploaded.file_length),
                media_key_timestamp: Some(uploaded.media_key_timestamp),
                mimetype: Some(image.mime_type.to_owned()),
                width: Some(image.width),
                height: Some(image.height),
                jpeg_thumbnail: Some(image.thumbnail),
                caption: req.caption,
                view_once: Some(req.view_once),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.deliver(to, message, "Image message sent to").await
    }

    pub async fn video(&self, to: &Recipient, req: VideoSend) -> Result<SendResult, ServiceError> {
        ensure_connected(&*self.wa)?;
        let video = media::video::prepare(&req.upload, req.compress, &self.media).await?;
        drop(req.upload);
        let uploaded = self.wa.upload(video.bytes, MediaKind::Video).await?;
        let message = wa::Message {
            video_message: MessageField::some(wa::message::VideoMessage {
                url: Some(uploaded.url),
                direct_path: Some(uploaded.direct_path),
                media_key: Some(uploaded.media_key),
                file_enc_sha256: Some(uploaded.file_enc_sha256),
                file_sha256: Some(uploaded.file_sha256),
                file_length: Some(uploaded.file_length),
                media_key_timestamp: Some(uploaded.media_key_timestamp),
                mimetype: Some(video.mime_type.to_owned()),
                jpeg_thumbnail: Some(video.thumbnail),
                caption: req.caption,
                view_once: Some(req.view_once),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.deliver(to, message, "Video sent to").await
    }

    async fn deliver(
        &self,
        to: &Recipient,
        message: wa::Message,
        what: &str,
    ) -> Result<SendResult, ServiceError> {
        let Ack {
            message_id,
            timestamp,
        } = self.wa.send(to.jid(), message).await?;
        info!(id = %message_id, "sent");
        Ok(SendResult {
            status: format!("{what} {to} (server timestamp: {})", server_time(timestamp)),
        })
    }
}

fn document_fields(up: Uploaded) -> wa::message::DocumentMessage {
    wa::message::DocumentMessage {
        url: Some(up.url),
        direct_path: Some(up.direct_path),
        media_key: Some(up.media_key),
        file_enc_sha256: Some(up.file_enc_sha256),
        file_sha256: Some(up.file_sha256),
        file_length: Some(up.file_length),
        media_key_timestamp: Some(up.media_key_timestamp),
        ..Default::default()
    }
}
