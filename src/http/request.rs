//! The typed requests of the send and user routes, with their rules declared for
//! `validator`. Fields hold the text the client sent (blank fields are `None`), so a
//! rule can report it in Go's words; handlers turn them into domain values once the
//! request has passed. The ozzo rendering of failures is in `domain::validation`.

use serde::Deserialize;
use validator::{Validate, ValidationError};

use super::AppState;
use super::form::Form;
use super::response::ApiError;
use super::wire::ApiCompat;
use crate::domain::recipient::{ChatType, Recipient};
use crate::domain::validation::{
    self as rules, ValidationErrors, byte_length, invalid, parse_bool,
};
use crate::media::Upload;
use crate::whatsapp::Context;

/// The recipient every send route takes: `phone` (a number, a JID or a group id) and
/// the v2.3.0 `type` (`user` or `group`).
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct To {
    #[validate(required, custom(function = "chat_phone_length"))]
    pub phone: Option<String>,
    #[serde(rename = "type")]
    pub chat_type: Option<String>,
}

fn chat_phone_length(value: &str) -> Result<(), ValidationError> {
    byte_length(value, 10, 25)
}

/// The later versions' fields every send route takes.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct Common {
    pub reply_message_id: Option<String>,
    pub mentions: Vec<String>,
    #[validate(custom(function = "rules::boolean"))]
    pub is_forwarded: Option<String>,
    #[validate(custom(function = "seconds"))]
    pub duration: Option<String>,
}

/// The disappearing timers WhatsApp offers (24 hours, 7 days, 90 days).
const TIMERS: [u32; 3] = [86_400, 604_800, 7_776_000];

fn seconds(value: &str) -> Result<(), ValidationError> {
    value
        .trim()
        .parse::<u32>()
        .map(|_| ())
        .map_err(|_| invalid("must be a number of seconds"))
}

impl Common {
    /// Quote, mentions, forwarded flag and disappearing timer. A timer WhatsApp does
    /// not offer is ignored, as Go ignores it.
    pub fn context(&self) -> Context {
        let expiration = self
            .duration
            .as_deref()
            .and_then(|d| d.trim().parse::<u32>().ok())
            .filter(|secs| TIMERS.contains(secs));
        Context {
            reply_to: self.reply_message_id.clone(),
            mentions: self.mentions.clone(),
            forwarded: flag(&self.is_forwarded, false),
            expiration,
        }
    }
}

/// A boolean field that passed [`rules::boolean`]; `default` when absent.
pub fn flag(value: &Option<String>, default: bool) -> bool {
    value.as_deref().and_then(parse_bool).unwrap_or(default)
}

/// A request naming a chat (`phone`, `type`): a send, or an action on a message.
pub trait Addressed: Validate + serde::de::DeserializeOwned {
    fn to(&self) -> &To;
    /// What surrounds a send; nothing for other requests.
    fn context(&self) -> Context {
        Context::default()
    }
}

macro_rules! send_request {
    ($($name:ident),* $(,)?) => {$(
        impl Addressed for $name {
            fn to(&self) -> &To {
                &self.to
            }
            fn context(&self) -> Context {
                self.common.context()
            }
        }
    )*};
}

macro_rules! addressed {
    ($($name:ident),* $(,)?) => {$(
        impl Addressed for $name {
            fn to(&self) -> &To {
                &self.to
            }
        }
    )*};
}

addressed!(MessageAction, ReactToMessage, UpdateMessage, ForwardMessage);

/// An action on a message: `phone` names its chat.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct MessageAction {
    #[serde(flatten)]
    #[validate(nested)]
    pub to: To,
}

#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct ReactToMessage {
    #[serde(flatten)]
    #[validate(nested)]
    pub to: To,
    /// Empty takes the reaction back.
    #[validate(custom(function = "one_emoji"))]
    pub emoji: Option<String>,
}

/// One emoji (a few code points at most: skin tones, joiners).
fn one_emoji(value: &str) -> Result<(), ValidationError> {
    let value = value.trim();
    if value.chars().count() <= 16 && !value.chars().any(|c| c.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(invalid("must be an emoji"))
    }
}

#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct UpdateMessage {
    #[serde(flatten)]
    #[validate(nested)]
    pub to: To,
    #[validate(required)]
    pub message: Option<String>,
}

/// `phone` is where the message goes.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct ForwardMessage {
    #[serde(flatten)]
    #[validate(nested)]
    pub to: To,
    #[validate(custom(function = "seconds"))]
    pub duration: Option<String>,
    #[validate(custom(function = "rules::boolean"))]
    pub force_reupload: Option<String>,
}

impl ForwardMessage {
    /// The disappearing timer to send with, if one WhatsApp offers.
    pub fn expiration(&self) -> Option<u32> {
        self.duration
            .as_deref()
            .and_then(|d| d.trim().parse::<u32>().ok())
            .filter(|secs| TIMERS.contains(secs))
    }
}

send_request!(
    SendMessage,
    SendContact,
    SendVisual,
    SendFile,
    SendAudio,
    SendSticker,
    SendLink,
    SendPoll,
    SendLocation,
    ChatPresence,
);

#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct SendMessage {
    #[serde(flatten)]
    #[validate(nested)]
    pub to: To,
    #[validate(required)]
    pub message: Option<String>,
    #[serde(flatten)]
    #[validate(nested)]
    pub common: Common,
}

#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct SendContact {
    #[serde(flatten)]
    #[validate(nested)]
    pub to: To,
    #[validate(required)]
    pub contact_name: Option<String>,
    #[validate(required, custom(function = "rules::phone_digits"))]
    pub contact_phone: Option<String>,
    #[serde(flatten)]
    #[validate(nested)]
    pub common: Common,
}

/// An image or a video.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct SendVisual {
    #[serde(flatten)]
    #[validate(nested)]
    pub to: To,
    #[validate(custom(function = "caption_length"))]
    pub caption: Option<String>,
    #[validate(custom(function = "rules::boolean"))]
    pub view_once: Option<String>,
    #[validate(custom(function = "rules::boolean"))]
    pub compress: Option<String>,
    #[serde(flatten)]
    #[validate(nested)]
    pub common: Common,
}

fn caption_length(value: &str) -> Result<(), ValidationError> {
    byte_length(value, 0, 200)
}

#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct SendFile {
    #[serde(flatten)]
    #[validate(nested)]
    pub to: To,
    pub caption: Option<String>,
    #[serde(flatten)]
    #[validate(nested)]
    pub common: Common,
}

#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct SendAudio {
    #[serde(flatten)]
    #[validate(nested)]
    pub to: To,
    #[validate(custom(function = "rules::boolean"))]
    pub ptt: Option<String>,
    #[serde(flatten)]
    #[validate(nested)]
    pub common: Common,
}

#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct SendSticker {
    #[serde(flatten)]
    #[validate(nested)]
    pub to: To,
    #[serde(flatten)]
    #[validate(nested)]
    pub common: Common,
}

#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct SendLink {
    #[serde(flatten)]
    #[validate(nested)]
    pub to: To,
    #[validate(required, custom(function = "rules::http_url"))]
    pub link: Option<String>,
    #[validate(required)]
    pub caption: Option<String>,
    #[serde(flatten)]
    #[validate(nested)]
    pub common: Common,
}

#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct SendPoll {
    #[serde(flatten)]
    #[validate(nested)]
    pub to: To,
    #[validate(required)]
    pub question: Option<String>,
    #[validate(custom(function = "poll_options"))]
    pub options: Vec<String>,
    /// Checked against the number of options by [`SendPoll::max_answer`].
    pub max_answer: Option<String>,
    #[serde(flatten)]
    #[validate(nested)]
    pub common: Common,
}

fn poll_options(options: &[String]) -> Result<(), ValidationError> {
    let unique: std::collections::HashSet<&String> = options.iter().collect();
    if options.len() < 2 {
        Err(invalid("must have at least 2 options"))
    } else if options.len() > 12 {
        Err(invalid("must have at most 12 options"))
    } else if unique.len() != options.len() {
        Err(invalid("must be unique"))
    } else {
        Ok(())
    }
}

impl SendPoll {
    /// How many options a voter may pick: 1 when absent, at most the number of options.
    pub fn max_answer(&self) -> Result<u32, ValidationError> {
        let most = self.options.len().max(1);
        match self.max_answer.as_deref().map(str::trim) {
            None | Some("") => Ok(1),
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n >= 1 && (n as usize) <= most => Ok(n),
                _ => Err(invalid(format!("must be between 1 and {most}"))),
            },
        }
    }
}

#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct SendLocation {
    #[serde(flatten)]
    #[validate(nested)]
    pub to: To,
    #[validate(required, custom(function = "valid_latitude"))]
    pub latitude: Option<String>,
    #[validate(required, custom(function = "valid_longitude"))]
    pub longitude: Option<String>,
    pub name: Option<String>,
    pub address: Option<String>,
    #[serde(flatten)]
    #[validate(nested)]
    pub common: Common,
}

/// A coordinate in degrees within `-limit..=limit`.
pub fn degrees(value: &str, limit: f64) -> Result<f64, ValidationError> {
    match value.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (-limit..=limit).contains(&v) => Ok(v),
        _ => Err(invalid(format!(
            "must be a number between -{limit} and {limit}"
        ))),
    }
}

fn valid_latitude(value: &str) -> Result<(), ValidationError> {
    degrees(value, 90.0).map(|_| ())
}

fn valid_longitude(value: &str) -> Result<(), ValidationError> {
    degrees(value, 180.0).map(|_| ())
}

#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct Presence {
    #[serde(rename = "type")]
    #[validate(required, custom(function = "presence_type"))]
    pub r#type: Option<String>,
}

/// `available` → `true`, `unavailable` → `false`, any case.
pub fn available(value: &str) -> Option<bool> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("available") {
        Some(true)
    } else if value.eq_ignore_ascii_case("unavailable") {
        Some(false)
    } else {
        None
    }
}

fn presence_type(value: &str) -> Result<(), ValidationError> {
    available(value)
        .map(|_| ())
        .ok_or_else(|| invalid("must be available or unavailable"))
}

#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct ChatPresence {
    #[serde(flatten)]
    #[validate(nested)]
    pub to: To,
    #[validate(required, custom(function = "chat_action"))]
    pub action: Option<String>,
    #[serde(flatten)]
    #[validate(nested)]
    pub common: Common,
}

/// `start` → `true` (typing), `stop` → `false`, any case.
pub fn typing(value: &str) -> Option<bool> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("start") {
        Some(true)
    } else if value.eq_ignore_ascii_case("stop") {
        Some(false)
    } else {
        None
    }
}

fn chat_action(value: &str) -> Result<(), ValidationError> {
    typing(value)
        .map(|_| ())
        .ok_or_else(|| invalid("must be start or stop"))
}

/// `?phone=` of the user routes: a full international number.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct PhoneQuery {
    #[validate(
        required,
        custom(function = "rules::e164"),
        custom(function = "e164_length")
    )]
    pub phone: Option<String>,
}

fn e164_length(value: &str) -> Result<(), ValidationError> {
    byte_length(value, 10, 15)
}

#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct PushName {
    #[validate(required, custom(function = "valid_push_name"))]
    pub push_name: Option<String>,
}

/// 1–25 bytes once trimmed; only spaces is blank.
fn valid_push_name(value: &str) -> Result<(), ValidationError> {
    match value.trim() {
        "" => Err(ValidationError::new("required")),
        name => byte_length(name, 1, 25),
    }
}

/// A request naming a chat, read from its form and checked: the failures of its rules, and
/// of the checks that need more than one field, are collected before any is reported,
/// so that the client sees them all at once in Go's format.
pub struct Checked<T> {
    pub req: T,
    chat: ChatType,
    errors: validator::ValidationErrors,
}

/// Reads and checks the send request `T`. The recipient's chat type is known first:
/// the v2.3.0 `type`, or in the later versions the shape of `phone` (more than 15
/// digits is a group); a user's number written for humans is normalised.
pub fn check<T: Addressed>(state: &AppState, form: &mut Form) -> Result<Checked<T>, ApiError> {
    let chat = match (state.limits.api_compat, form.get("type")) {
        (ApiCompat::V9, None | Some("")) => {
            let phone = form.get("phone").unwrap_or_default();
            let digits = phone.trim().trim_start_matches('+');
            if digits.len() > 15 && digits.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                ChatType::Group
            } else {
                ChatType::User
            }
        }
        (_, given) => ChatType::from_field(given),
    };
    if chat == ChatType::User {
        form.normalize_phone("phone");
    }
    form.normalize_phone("contact_phone");
    let req: T = form.parse()?;
    let errors = req.validate().err().unwrap_or_default();
    Ok(Checked { req, chat, errors })
}

impl<T: Addressed> Checked<T> {
    /// The file part, recorded as blank when missing.
    pub fn file(&mut self, form: &mut Form, field: &'static str) -> Option<Upload> {
        let file = form.file.take();
        if file.is_none() {
            self.errors.add(field, ValidationError::new("required"));
        }
        file
    }

    /// The outcome of a check beyond the declared rules, recorded under `field`.
    pub fn also<V>(
        &mut self,
        field: &'static str,
        outcome: Result<V, ValidationError>,
    ) -> Option<V> {
        outcome.map_err(|e| self.errors.add(field, e)).ok()
    }

    /// The request, its recipient and its common fields, or every failure found.
    pub fn finish(mut self) -> Result<(T, Recipient, Context), ApiError> {
        let to = if self.errors.errors().contains_key("to") {
            None
        } else {
            let phone = self.req.to().phone.as_deref().unwrap_or_default();
            let parsed = Recipient::parse(phone, self.chat).map_err(invalid);
            self.also("phone", parsed)
        };
        if !self.errors.is_empty() {
            return Err(ValidationErrors::from(self.errors).into());
        }
        let context = self.req.context();
        Ok((self.req, validated(to)?, context))
    }
}

/// A value the validation above has vouched for; never `None` in practice.
pub fn validated<T>(value: Option<T>) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::bad_request("invalid request"))
}

/// `limit` and `offset` of a listing.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct Paging {
    #[validate(custom(function = "page_limit"))]
    pub limit: Option<String>,
    #[validate(custom(function = "page_offset"))]
    pub offset: Option<String>,
}

fn page_limit(value: &str) -> Result<(), ValidationError> {
    match value.trim().parse::<u32>() {
        Ok(1..=100) => Ok(()),
        _ => Err(invalid("must be between 1 and 100")),
    }
}

fn page_offset(value: &str) -> Result<(), ValidationError> {
    value
        .trim()
        .parse::<u32>()
        .map(|_| ())
        .map_err(|_| invalid("must be a number, 0 or more"))
}

impl Paging {
    pub fn limit(&self, default: u32) -> u32 {
        self.limit
            .as_deref()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(default)
    }

    pub fn offset(&self) -> u32 {
        self.offset
            .as_deref()
            .and_then(|o| o.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// `GET /chats`.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct ChatsQuery {
    #[serde(flatten)]
    #[validate(nested)]
    pub paging: Paging,
    pub search: Option<String>,
    #[validate(custom(function = "rules::boolean"))]
    pub has_media: Option<String>,
    #[validate(custom(function = "rules::boolean"))]
    pub archived: Option<String>,
    /// Not in Go: only chats with unread incoming messages.
    #[validate(custom(function = "rules::boolean"))]
    pub unread: Option<String>,
}

/// `GET /messages/search` (not in Go): text in the messages of every chat.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct SearchQuery {
    #[serde(flatten)]
    #[validate(nested)]
    pub paging: Paging,
    #[validate(
        required,
        length(min = 1, max = 200, message = "must be 1 to 200 characters")
    )]
    pub search: Option<String>,
    pub chat_jid: Option<String>,
    #[validate(custom(function = "rfc3339"))]
    pub start_time: Option<String>,
    #[validate(custom(function = "rfc3339"))]
    pub end_time: Option<String>,
    #[validate(custom(function = "rules::boolean"))]
    pub is_from_me: Option<String>,
}

/// `GET /chat/:chat_jid/messages`.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct ChatMessagesQuery {
    #[serde(flatten)]
    #[validate(nested)]
    pub paging: Paging,
    #[validate(custom(function = "rfc3339"))]
    pub start_time: Option<String>,
    #[validate(custom(function = "rfc3339"))]
    pub end_time: Option<String>,
    #[validate(custom(function = "rules::boolean"))]
    pub media_only: Option<String>,
    #[validate(custom(function = "rules::boolean"))]
    pub is_from_me: Option<String>,
    pub search: Option<String>,
}

fn timestamp(value: &str) -> Option<i64> {
    value
        .trim()
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second())
}

fn rfc3339(value: &str) -> Result<(), ValidationError> {
    timestamp(value)
        .map(|_| ())
        .ok_or_else(|| invalid("must be an RFC 3339 time, e.g. 2024-01-31T08:00:00Z"))
}

impl ChatMessagesQuery {
    pub fn start(&self) -> Option<i64> {
        self.start_time.as_deref().and_then(timestamp)
    }

    pub fn end(&self) -> Option<i64> {
        self.end_time.as_deref().and_then(timestamp)
    }
}

impl SearchQuery {
    pub fn start(&self) -> Option<i64> {
        self.start_time.as_deref().and_then(timestamp)
    }

    pub fn end(&self) -> Option<i64> {
        self.end_time.as_deref().and_then(timestamp)
    }
}

/// `POST /chat/:chat_jid/pin`.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct PinChat {
    #[validate(required, custom(function = "rules::boolean"))]
    pub pinned: Option<String>,
}

/// `POST /chat/:chat_jid/label`: Go's (documented, never served) label body.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct LabelChat {
    #[validate(
        required,
        length(min = 1, max = 64, message = "must be 1 to 64 characters"),
        custom(function = "one_line")
    )]
    pub label_id: Option<String>,
    #[validate(
        required,
        length(min = 1, max = 100, message = "must be 1 to 100 characters"),
        custom(function = "one_line")
    )]
    pub label_name: Option<String>,
    #[validate(required, custom(function = "rules::boolean"))]
    pub labeled: Option<String>,
}

/// Text without control characters (line breaks included).
fn one_line(value: &str) -> Result<(), ValidationError> {
    match value.chars().any(char::is_control) {
        true => Err(invalid("must not contain control characters")),
        false => Ok(()),
    }
}

/// `POST /chat/:chat_jid/archive`.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct ArchiveChat {
    #[validate(required, custom(function = "rules::boolean"))]
    pub archived: Option<String>,
}

/// `POST /chat/:chat_jid/disappearing`.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct DisappearingTimer {
    #[validate(required, custom(function = "timer"))]
    pub timer_seconds: Option<String>,
}

fn timer(value: &str) -> Result<(), ValidationError> {
    match value.trim().parse::<u32>() {
        Ok(secs) if secs == 0 || TIMERS.contains(&secs) => Ok(()),
        _ => Err(invalid("must be 0, 86400, 604800 or 7776000")),
    }
}

impl DisappearingTimer {
    pub fn seconds(&self) -> Option<u32> {
        self.timer_seconds
            .as_deref()
            .and_then(|s| s.trim().parse().ok())
    }
}

/// A group: its JID (`…@g.us`) or id (digits, older ones `creator-time`).
pub fn group_jid(value: &str) -> Option<whatsapp_rust::Jid> {
    let value = value.trim();
    let id = value.strip_suffix("@g.us").unwrap_or(value);
    let valid =
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    valid.then(|| whatsapp_rust::Jid::new(id, whatsapp_rust::Server::Group))
}

fn valid_group_id(value: &str) -> Result<(), ValidationError> {
    group_jid(value)
        .map(|_| ())
        .ok_or_else(|| invalid("must be a valid group id"))
}

/// A person: a phone number written for humans, or a JID.
pub fn person_jid(value: &str) -> Option<whatsapp_rust::Jid> {
    let value = value.trim();
    if value.contains('@') {
        return value
            .parse::<whatsapp_rust::Jid>()
            .ok()
            .filter(|j| !j.user.is_empty());
    }
    crate::domain::recipient::phone_digits(value)
        .filter(|d| (5..=20).contains(&d.len()))
        .map(|d| whatsapp_rust::Jid::new(&d, whatsapp_rust::Server::Pn))
}

fn people(values: &[String]) -> Result<(), ValidationError> {
    if values.is_empty() {
        return Err(ValidationError::new("required"));
    }
    if values.len() > 256 {
        return Err(invalid("must have at most 256 entries"));
    }
    match values.iter().find(|v| person_jid(v).is_none()) {
        Some(bad) => Err(invalid(format!(
            "{bad} is not a phone number or a WhatsApp JID"
        ))),
        None => Ok(()),
    }
}

/// `POST /group`.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct CreateGroup {
    #[validate(required, custom(function = "group_name"))]
    pub title: Option<String>,
    /// May be empty: a group of this account alone.
    #[validate(custom(function = "some_people"))]
    pub participants: Vec<String>,
}

fn some_people(values: &[String]) -> Result<(), ValidationError> {
    if values.is_empty() {
        Ok(())
    } else {
        people(values)
    }
}

fn group_name(value: &str) -> Result<(), ValidationError> {
    match value.trim().chars().count() {
        0 => Err(ValidationError::new("required")),
        1..=100 => Ok(()),
        _ => Err(invalid("must be at most 100 characters")),
    }
}

/// `link` of the invite routes.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct GroupLink {
    #[validate(required, length(max = 512, message = "is too long"))]
    pub link: Option<String>,
}

/// A request naming a group.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct GroupId {
    #[validate(required, custom(function = "valid_group_id"))]
    pub group_id: Option<String>,
}

impl GroupId {
    pub fn jid(&self) -> Option<whatsapp_rust::Jid> {
        self.group_id.as_deref().and_then(group_jid)
    }
}

/// Members to add, remove, promote or demote; requests to approve or reject.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct GroupParticipants {
    #[serde(flatten)]
    #[validate(nested)]
    pub group: GroupId,
    #[validate(custom(function = "people"))]
    pub participants: Vec<String>,
}

impl GroupParticipants {
    pub fn jids(&self) -> Vec<whatsapp_rust::Jid> {
        self.participants
            .iter()
            .filter_map(|p| person_jid(p))
            .collect()
    }
}

/// `POST /group/name`.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct GroupName {
    #[serde(flatten)]
    #[validate(nested)]
    pub group: GroupId,
    #[validate(required, custom(function = "group_name"))]
    pub name: Option<String>,
}

/// `POST /group/topic`: an empty topic removes it.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct GroupTopic {
    #[serde(flatten)]
    #[validate(nested)]
    pub group: GroupId,
    #[validate(length(max = 2048, message = "must be at most 2048 characters"))]
    pub topic: Option<String>,
}

/// `POST /group/locked` and `/group/announce`.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct GroupSwitch {
    #[serde(flatten)]
    #[validate(nested)]
    pub group: GroupId,
    #[validate(custom(function = "rules::boolean"))]
    pub locked: Option<String>,
    #[validate(custom(function = "rules::boolean"))]
    pub announce: Option<String>,
}

/// `GET /group/invite-link`.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct InviteLinkQuery {
    #[serde(flatten)]
    #[validate(nested)]
    pub group: GroupId,
    #[validate(custom(function = "rules::boolean"))]
    pub reset: Option<String>,
}

/// A channel: `…@newsletter`, or its digits.
pub fn newsletter_jid(value: &str) -> Option<whatsapp_rust::Jid> {
    let value = value.trim();
    let id = value.strip_suffix("@newsletter").unwrap_or(value);
    (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_digit()))
        .then(|| whatsapp_rust::Jid::new(id, whatsapp_rust::Server::Newsletter))
}

fn valid_newsletter(value: &str) -> Result<(), ValidationError> {
    newsletter_jid(value)
        .map(|_| ())
        .ok_or_else(|| invalid("must be a channel id (digits@newsletter)"))
}

/// `POST /newsletter/unfollow`.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct NewsletterId {
    #[validate(required, custom(function = "valid_newsletter"))]
    pub newsletter_id: Option<String>,
}

/// `GET /newsletter/messages`.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(default)]
pub struct NewsletterMessagesQuery {
    #[serde(flatten)]
    #[validate(nested)]
    pub newsletter: NewsletterId,
    #[validate(custom(function = "page_limit"))]
    pub count: Option<String>,
    #[validate(custom(function = "page_offset"))]
    pub before: Option<String>,
}
