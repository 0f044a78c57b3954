//! What the services send, in the domain's words: the WhatsApp adapter alone turns it
//! into the library's protobuf messages.

/// Where an upload landed and the keys a message needs to point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub url: String,
    pub direct_path: String,
    pub media_key: Vec<u8>,
    pub file_enc_sha256: Vec<u8>,
    pub file_sha256: Vec<u8>,
    pub file_length: u64,
    pub media_key_timestamp: i64,
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Text(String),
    /// A contact card.
    Contact {
        name: String,
        vcard: String,
    },
    Document {
        file: Uploaded,
        mime_type: String,
        file_name: String,
        caption: Option<String>,
    },
    Image {
        file: Uploaded,
        mime_type: String,
        width: u32,
        height: u32,
        /// A small JPEG shown before the download.
        thumbnail: Vec<u8>,
        caption: Option<String>,
        view_once: bool,
    },
    Video {
        file: Uploaded,
        mime_type: String,
        thumbnail: Vec<u8>,
        caption: Option<String>,
        view_once: bool,
    },
}

impl Outgoing {
    /// The text or caption, if any.
    pub fn text(&self) -> Option<&str> {
        match self {
            Outgoing::Text(text) => Some(text),
            Outgoing::Contact { .. } => None,
            Outgoing::Document { caption, .. }
            | Outgoing::Image { caption, .. }
            | Outgoing::Video { caption, .. } => caption.as_deref(),
        }
    }
}
