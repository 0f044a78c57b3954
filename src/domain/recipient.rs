//! Who a send goes to: the `phone` and `type` fields turned into a WhatsApp JID,
//! with the v2.3.0 rules (leading `+` dropped, `@` means "already a JID").

use std::fmt;
use std::str::FromStr;

use whatsapp_rust::{Jid, Server};

/// The `type` field of the send endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChatType {
    #[default]
    User,
    Group,
}

impl ChatType {
    /// `group` (any case) is a group; anything else, including nothing, is a user,
    /// as in the Go server.
    pub fn from_field(value: Option<&str>) -> Self {
        match value {
            Some(v) if v.trim().eq_ignore_ascii_case("group") => ChatType::Group,
            _ => ChatType::User,
        }
    }
}

/// A validated destination chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient(Jid);

impl Recipient {
    /// Builds the JID for `phone`. Errors are the reason text for the `phone` field.
    pub fn parse(phone: &str, chat_type: ChatType) -> Result<Self, String> {
        let phone = phone.trim();
        let phone = phone.strip_prefix('+').unwrap_or(phone);
        if phone.contains('@') {
            let jid =
                Jid::from_str(phone).map_err(|_| "must be a valid WhatsApp JID".to_owned())?;
            if jid.user.is_empty() {
                return Err("must be a valid WhatsApp JID".to_owned());
            }
            return Ok(Recipient(jid));
        }
        match chat_type {
            ChatType::User => {
                if phone.is_empty() || !phone.bytes().all(|b| b.is_ascii_digit()) {
                    return Err("must contain only digits".to_owned());
                }
                Ok(Recipient(Jid::new(phone, Server::Pn)))
            }
            ChatType::Group => {
                // Group ids are digits, older ones `creator-timestamp`.
                if phone.is_empty() || !phone.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                    return Err("must be a valid group id".to_owned());
                }
                Ok(Recipient(Jid::new(phone, Server::Group)))
            }
        }
    }

    pub fn jid(&self) -> &Jid {
        &self.0
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The digits of a phone number written for humans (`+62 812-3456-7890`): a
/// leading `+`, spaces and dashes dropped; `None` when anything else is left.
pub fn phone_digits(written: &str) -> Option<String> {
    let digits: String = written
        .trim()
        .trim_start_matches('+')
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .collect();
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_phone_gets_the_user_server_and_loses_its_plus() {
        let r = Recipient::parse("+6289685024091", ChatType::User).unwrap();
        assert_eq!(r.to_string(), "6289685024091@s.whatsapp.net");
    }

    #[test]
    fn a_group_id_gets_the_group_server() {
        let r = Recipient::parse("120363025246125888", ChatType::Group).unwrap();
        assert_eq!(r.to_string(), "120363025246125888@g.us");
        let old = Recipient::parse("6281234567-1612345678", ChatType::Group).unwrap();
        assert_eq!(old.to_string(), "6281234567-1612345678@g.us");
    }

    #[test]
    fn a_full_jid_is_used_as_it_is_whatever_the_type() {
        let r = Recipient::parse("120363025246125888@g.us", ChatType::User).unwrap();
        assert_eq!(r.to_string(), "120363025246125888@g.us");
        assert_eq!(r.jid().server, Server::Group);
    }

    #[test]
    fn letters_in_a_user_phone_are_refused() {
        assert_eq!(
            Recipient::parse("62812abc9999", ChatType::User),
            Err("must contain only digits".to_owned())
        );
    }

    #[test]
    fn chat_type_defaults_to_user() {
        assert_eq!(ChatType::from_field(None), ChatType::User);
        assert_eq!(ChatType::from_field(Some("personal")), ChatType::User);
        assert_eq!(ChatType::from_field(Some("GROUP")), ChatType::Group);
    }
}
