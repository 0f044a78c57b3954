//! The domain's [`Outgoing`] messages as whatsapp-rust's protobuf messages.

use whatsapp_rust::prelude::{MessageField, wa};

use crate::domain::outgoing::{Outgoing, Uploaded};

pub fn to_wa(message: Outgoing) -> wa::Message {
    match message {
        Outgoing::Text(text) => wa::Message {
            conversation: Some(text),
            ..Default::default()
        },
        Outgoing::Contact { name, vcard } => wa::Message {
            contact_message: MessageField::some(wa::message::ContactMessage {
                display_name: Some(name),
                vcard: Some(vcard),
                ..Default::default()
            }),
            ..Default::default()
        },
        Outgoing::Document {
            file,
            mime_type,
            file_name,
            caption,
        } => wa::Message {
            document_message: MessageField::some(wa::message::DocumentMessage {
                url: Some(file.url),
                direct_path: Some(file.direct_path),
                media_key: Some(file.media_key),
                file_enc_sha256: Some(file.file_enc_sha256),
                file_sha256: Some(file.file_sha256),
                file_length: Some(file.file_length),
                media_key_timestamp: Some(file.media_key_timestamp),
                mimetype: Some(mime_type),
                title: Some(file_name.clone()),
                file_name: Some(file_name),
                caption,
                ..Default::default()
            }),
            ..Default::default()
        },
        Outgoing::Image {
            file,
            mime_type,
            width,
            height,
            thumbnail,
            caption,
            view_once,
        } => {
            let Uploaded {
                url,
                direct_path,
                media_key,
                file_enc_sha256,
                file_sha256,
                file_length,
                media_key_timestamp,
            } = file;
            wa::Message {
                image_message: MessageField::some(wa::message::ImageMessage {
                    url: Some(url),
                    direct_path: Some(direct_path),
                    media_key: Some(media_key),
                    file_enc_sha256: Some(file_enc_sha256),
                    file_sha256: Some(file_sha256),
                    file_length: Some(file_length),
                    media_key_timestamp: Some(media_key_timestamp),
                    mimetype: Some(mime_type),
                    width: Some(width),
                    height: Some(height),
                    jpeg_thumbnail: Some(thumbnail),
                    caption,
                    view_once: Some(view_once),
                    ..Default::default()
                }),
                ..Default::default()
            }
        }
        Outgoing::Video {
            file,
            mime_type,
            thumbnail,
            caption,
            view_once,
        } => wa::Message {
            video_message: MessageField::some(wa::message::VideoMessage {
                url: Some(file.url),
                direct_path: Some(file.direct_path),
                media_key: Some(file.media_key),
                file_enc_sha256: Some(file.file_enc_sha256),
                file_sha256: Some(file.file_sha256),
                file_length: Some(file.file_length),
                media_key_timestamp: Some(file.media_key_timestamp),
                mimetype: Some(mime_type),
                jpeg_thumbnail: Some(thumbnail),
                caption,
                view_once: Some(view_once),
                ..Default::default()
            }),
            ..Default::default()
        },
    }
}
