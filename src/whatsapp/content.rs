//! What a WhatsApp message holds, read the same way by webhooks and the message
//! store: its media and the phone-number form of its JIDs.

use whatsapp_rust::prelude::*;
use whatsapp_rust::wacore::download::Downloadable;
use whatsapp_rust::{Jid, Server};

/// The media an incoming message carries, as the hook needs it to download.
pub struct IncomingMedia<'a> {
    /// The payload key Go uses: `image`, `video`, `video_note`, `audio`, `document`,
    /// `sticker`.
    pub kind: &'static str,
    pub downloadable: &'a dyn Downloadable,
    pub mimetype: Option<&'a str>,
    /// As the sender declares it.
    pub file_length: Option<u64>,
    pub url: Option<&'a str>,
    pub caption: Option<&'a str>,
    pub file_name: Option<&'a str>,
    pub context: Option<&'a wa::ContextInfo>,
}

/// The media of `message` (wrappers such as view-once or ephemeral unwrapped).
pub fn media_of(message: &wa::Message) -> Option<IncomingMedia<'_>> {
    let m = message.get_base_message();
    let doc = m
        .document_with_caption_message
        .as_option()
        .and_then(|w| w.message.as_option())
        .and_then(|inner| inner.document_message.as_option())
        .or(m.document_message.as_option());
    if let Some(i) = m.image_message.as_option() {
        return Some(IncomingMedia {
            kind: "image",
            downloadable: i,
            mimetype: i.mimetype.as_deref(),
            file_length: i.file_length,
            url: i.url.as_deref(),
            caption: i.caption.as_deref(),
            file_name: None,
            context: i.context_info.as_option(),
        });
    }
    for (kind, video) in [("video", &m.video_message), ("video_note", &m.ptv_message)] {
        if let Some(v) = video.as_option() {
            return Some(IncomingMedia {
                kind,
                downloadable: v,
                mimetype: v.mimetype.as_deref(),
                file_length: v.file_length,
                url: v.url.as_deref(),
                caption: v.caption.as_deref(),
                file_name: None,
                context: v.context_info.as_option(),
            });
        }
    }
    if let Some(a) = m.audio_message.as_option() {
        return Some(IncomingMedia {
            kind: "audio",
            downloadable: a,
            mimetype: a.mimetype.as_deref(),
            file_length: a.file_length,
            url: a.url.as_deref(),
            caption: None,
            file_name: None,
            context: a.context_info.as_option(),
        });
    }
    if let Some(d) = doc {
        return Some(IncomingMedia {
            kind: "document",
            downloadable: d,
            mimetype: d.mimetype.as_deref(),
            file_length: d.file_length,
            url: d.url.as_deref(),
            caption: d.caption.as_deref(),
            file_name: d.file_name.as_deref(),
            context: d.context_info.as_option(),
        });
    }
    if let Some(s) = m.sticker_message.as_option() {
        return Some(IncomingMedia {
            kind: "sticker",
            downloadable: s,
            mimetype: s.mimetype.as_deref(),
            file_length: s.file_length,
            url: s.url.as_deref(),
            caption: None,
            file_name: None,
            context: s.context_info.as_option(),
        });
    }
    None
}

/// The phone-number JID of `jid` (non-AD), and its LID when it was one and the
/// phone number is known.
pub fn pn_and_lid(jid: &Jid, alt: Option<&Jid>) -> (String, Option<String>) {
    match (jid.server, alt) {
        (Server::Lid, Some(pn)) if pn.server == Server::Pn => {
            (pn.to_non_ad_string(), Some(jid.to_non_ad_string()))
        }
        _ => (jid.to_non_ad_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lid_with_a_known_phone_number_is_reported_as_both() {
        let lid: Jid = "205550001234001@lid".parse().unwrap();
        let pn: Jid = "15550001234:3@s.whatsapp.net".parse().unwrap();
        assert_eq!(
            pn_and_lid(&lid, Some(&pn)),
            (
                "15550001234@s.whatsapp.net".to_owned(),
                Some("205550001234001@lid".to_owned())
            )
        );
        assert_eq!(
            pn_and_lid(&pn, None),
            ("15550001234@s.whatsapp.net".to_owned(), None)
        );
    }
}
