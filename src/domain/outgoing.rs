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
#[derive(Debug, Clone, PartialEq)]
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
    /// Audio; a voice note (`ptt`) plays in the chat like a recorded message.
    Audio {
        file: Uploaded,
        mime_type: String,
        ptt: bool,
    },
    /// A text with a link and the link's preview.
    Link {
        text: String,
        url: String,
        title: Option<String>,
        description: Option<String>,
        thumbnail: Option<Vec<u8>>,
    },
    /// A 512×512 WebP sticker.
    Sticker {
        file: Uploaded,
    },
    /// A poll: people may pick up to `max_answer` of the options.
    Poll {
        question: String,
        options: Vec<String>,
        max_answer: u32,
    },
    /// A pin on the map, in degrees.
    Location {
        latitude: f64,
        longitude: f64,
        name: Option<String>,
        address: Option<String>,
    },
    /// A reaction to a message of the chat; an empty emoji takes it back.
    Reaction {
        target: MessageRef,
        emoji: String,
    },
    /// Deletes a message of the chat for everyone.
    Revoke {
        target: MessageRef,
    },
    /// New text for one of this account's messages in the chat.
    Edit {
        id: String,
        text: String,
    },
    /// A stored message (WhatsApp's encoding, as received or sent) sent again,
    /// marked forwarded; its media is relayed, not uploaded again. An edited text
    /// goes as it reads now (`edited_text`).
    Forward {
        raw: Vec<u8>,
        edited_text: Option<String>,
    },
}

/// A message of a chat as WhatsApp names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    pub id: String,
    /// Sent by this account.
    pub from_me: bool,
    /// Who sent it, in a group (for others' messages).
    pub sender: Option<String>,
}

/// What surrounds a message: the later Go versions' common send fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// The id of a stored message of the same chat to quote (ignored when not
    /// stored, as Go does).
    pub reply_to: Option<String>,
    /// Accounts mentioned (phone numbers or JIDs).
    pub mentions: Vec<String>,
    pub forwarded: bool,
    /// Disappearing-message timer, in seconds.
    pub expiration: Option<u32>,
}

impl Context {
    pub fn is_empty(&self) -> bool {
        *self == Context::default()
    }
}

impl Outgoing {
    /// The text or caption, if any.
    pub fn text(&self) -> Option<&str> {
        match self {
            Outgoing::Text(text) => Some(text),
            Outgoing::Contact { .. }
            | Outgoing::Location { .. }
            | Outgoing::Audio { .. }
            | Outgoing::Sticker { .. }
            | Outgoing::Reaction { .. }
            | Outgoing::Revoke { .. }
            | Outgoing::Forward { .. } => None,
            Outgoing::Edit { text, .. } => Some(text),
            Outgoing::Poll { question, .. } => Some(question),
            Outgoing::Link { text, .. } => Some(text),
            Outgoing::Document { caption, .. }
            | Outgoing::Image { caption, .. }
            | Outgoing::Video { caption, .. } => caption.as_deref(),
        }
    }
}

/// The phone numbers mentioned as `@628123456789` in a text (5 to 16 digits after
/// an `@` that starts a word).
pub fn mentions_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut previous = ' ';
    for (i, c) in text.char_indices() {
        if c == '@' && !previous.is_alphanumeric() {
            let digits: String = text[i + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let after = text[i + 1 + digits.len()..].chars().next();
            if (5..=16).contains(&digits.len())
                && !after.is_some_and(|a| a.is_alphanumeric())
                && !found.contains(&digits)
            {
                found.push(digits);
            }
        }
        previous = c;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_at_signs_followed_by_a_phone_number() {
        assert_eq!(
            mentions_in("hi @6281234567 and @6289999999, not mail@62811111111 or @123"),
            ["6281234567", "6289999999"]
        );
        assert_eq!(mentions_in("@6281234567 @6281234567x"), ["6281234567"]);
        assert!(mentions_in("no mentions").is_empty());
    }
}
