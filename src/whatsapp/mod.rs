//! One account's WhatsApp session, behind a trait: the services talk to
//! `dyn WhatsApp`, the real implementation wraps `whatsapp-rust` ([`session`]), and HTTP
//! tests use an in-memory double.
//!
//! | file | responsibility |
//! |---|---|
//! | [`state`] | the lifecycle as a state machine (no I/O) |
//! | [`session`] | the machine behind one lock, the store worker, login/logout/reconnect |
//! | [`events`] | what each client event does |
//! | [`acks`] | one waiter per sent message |
//! | [`send`] | uploads, and sends bounded by one deadline |
//! | [`outgoing`] | the domain's outgoing messages as protobuf messages |
//! | [`queries`] | user info, avatars, privacy, groups |
//! | [`autoreply`] | `--autoreply` and what it answers |
//! | [`bot`] | building, stopping and deleting a client and its store |
//! | [`content`] | what a message holds (media, JIDs), for webhooks and the message store |
//! | [`inbound`] | incoming messages into the message store and the webhook outbox, before their ack |

pub mod acks;
mod actions;
pub mod autoreply;
mod bot;
pub mod content;
mod events;
pub mod go_session;
mod groups;
pub mod inbound;
mod outgoing;
pub mod proxy;
mod queries;
mod send;
pub mod session;
pub mod session_store;
pub mod state;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jiff::Timestamp;
use whatsapp_rust::Jid;

use state::Interruption;

/// Where the session stands, as the API's errors distinguish it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// No device is stored: `/app/login` is needed.
    LoggedOut,
    /// A device is stored but the socket is down (connecting, replaced elsewhere, …).
    Disconnected,
    /// Logged in and connected: the API is usable.
    Connected,
}

/// The session's lifecycle phase, as `/app/status` reports it in `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionPhase {
    LoggedOut,
    /// A pairing attempt shows QR codes.
    Pairing,
    Connecting,
    Connected,
    /// The connection dropped; reconnecting by itself.
    Reconnecting,
    /// Another client took the session over; only `/app/reconnect` takes it back.
    Replaced,
    Stopping,
}

impl SessionPhase {
    /// The coarse status this phase reports.
    pub fn status(self) -> SessionStatus {
        match self {
            SessionPhase::Connected => SessionStatus::Connected,
            SessionPhase::LoggedOut | SessionPhase::Pairing => SessionStatus::LoggedOut,
            _ => SessionStatus::Disconnected,
        }
    }
}

/// A pairing code to show as a QR, valid until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingCode {
    pub code: String,
    pub expires_at: Instant,
}

impl PairingCode {
    pub fn remaining(&self) -> Duration {
        self.expires_at.saturating_duration_since(Instant::now())
    }

    /// Whole seconds left, rounded up: a code that is still valid never says 0.
    pub fn remaining_secs(&self) -> u64 {
        let left = self.remaining();
        left.as_secs() + u64::from(left.subsec_nanos() > 0)
    }
}

/// What `/user/info` reports about one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserDetails {
    pub verified_name: Option<String>,
    pub status: Option<String>,
    pub picture_id: Option<String>,
    /// Device indexes (0 is the phone).
    pub devices: Vec<u16>,
}

/// A business account's public profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BusinessProfile {
    pub jid: String,
    pub description: String,
    pub email: Option<String>,
    pub website: Vec<String>,
    /// (id, name)
    pub categories: Vec<(String, String)>,
    pub address: Option<String>,
    pub timezone: Option<String>,
    pub hours: Vec<BusinessHours>,
}

/// A person this account knows: `name` is the name saved on the phone, else their
/// push name, else empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub jid: String,
    pub name: String,
}

/// A channel (newsletter) this account follows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Newsletter {
    pub jid: String,
    pub name: String,
    pub description: Option<String>,
    pub subscribers: u64,
    pub verified: bool,
    /// `active`, `suspended` or `geosuspended`.
    pub state: &'static str,
    pub picture_path: Option<String>,
    pub preview_path: Option<String>,
    pub invite_code: Option<String>,
    /// `owner`, `admin`, `subscriber` or `guest`.
    pub role: Option<&'static str>,
    /// Unix seconds.
    pub created_at: Option<u64>,
}

/// A channel's post.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewsletterPost {
    /// The channel's own sequence number (for paging with `before`).
    pub server_id: u64,
    pub message_id: String,
    /// `text`, `media`, `reaction`, `revoke`, `poll_creation`…
    pub kind: String,
    /// Unix seconds.
    pub timestamp: u64,
    pub text: Option<String>,
    /// (emoji, count)
    pub reactions: Vec<(String, u64)>,
}

/// Opening hours of one day: `mode` is `open_24h`, `specific_hours` or
/// `appointment_only`; times in minutes after midnight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessHours {
    pub day: String,
    pub mode: String,
    pub open: Option<u32>,
    pub close: Option<u32>,
}

/// A profile picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Avatar {
    pub url: String,
    pub id: String,
}

/// The privacy settings of the logged-in account, as WhatsApp names the values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Privacy {
    pub group_add: Option<String>,
    pub last_seen: Option<String>,
    pub status: Option<String>,
    pub profile: Option<String>,
    pub read_receipts: Option<String>,
}

/// A group the account takes part in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    pub jid: String,
    pub owner: Option<String>,
    pub name: String,
    pub name_set_at: Option<Timestamp>,
    pub name_set_by: Option<String>,
    pub topic: String,
    pub topic_id: String,
    pub topic_set_at: Option<Timestamp>,
    pub topic_set_by: Option<String>,
    pub is_locked: bool,
    pub is_announce: bool,
    pub disappearing_timer: u32,
    pub created_at: Option<Timestamp>,
    pub participant_version_id: String,
    pub participants: Vec<GroupMember>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupMember {
    /// The phone-number JID when known, else the LID.
    pub jid: String,
    pub phone_number: Option<String>,
    pub lid: Option<String>,
    pub is_admin: bool,
    pub is_super_admin: bool,
}

/// A change to a group's members (or to those asking to join).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipantAction {
    Add,
    Remove,
    Promote,
    Demote,
    /// Let in someone who asked to join.
    Approve,
    /// Turn down someone who asked to join.
    Reject,
}

/// What became of one participant of a change: `error` is WhatsApp's code
/// (`403` an add refused by their privacy, who got an invitation instead; `404`
/// not on WhatsApp or not a member; `409` already a member…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantOutcome {
    pub jid: String,
    pub error: Option<String>,
}

/// Someone asking to join a group; `requested_at` in unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub jid: String,
    pub requested_at: Option<u64>,
}

/// A group setting to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupSetting {
    Name(String),
    /// The description; `None` removes it.
    Topic(Option<String>),
    /// Only admins may edit the group's info.
    Locked(bool),
    /// Only admins may send messages.
    Announce(bool),
}

/// Kind of media being uploaded; decides the encryption keys and the upload path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Video,
    Document,
    Audio,
    Sticker,
}

pub use crate::domain::outgoing::{Context, MessageRef, Outgoing, Uploaded};

/// WhatsApp's acknowledgement of a sent message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub message_id: String,
    pub timestamp: Timestamp,
}

#[derive(Debug, thiserror::Error)]
pub enum WhatsAppError {
    #[error("you already logged in :)")]
    AlreadyLoggedIn,
    #[error("you are not loggin")]
    NotLoggedIn,
    #[error("you are not connect to whatsapp server, please reconnect")]
    NotConnected,
    #[error("the store doesn't contain a device JID")]
    NoDevice,
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, &'static str),
    #[error(
        "timed out after {after:?} waiting for WhatsApp's acknowledgement of message {id}; \
         delivery unknown"
    )]
    AckTimeout { id: String, after: Duration },
    #[error("message {id}: {}; delivery unknown", interruption_text(*.why))]
    DeliveryUnknown { id: String, why: Interruption },
    #[error("WhatsApp refused message {id} (error {code})")]
    Refused { id: String, code: String },
    /// WhatsApp refused the request as asked (a bad number, too many attempts).
    #[error("{0}")]
    Rejected(String),
    /// What the request names does not exist, or this account is not in it.
    #[error("{0}")]
    NotFound(String),
    /// This account may not do that (not an admin).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Failed(String),
}

/// Why a send was cut off, as its error says it.
fn interruption_text(why: Interruption) -> &'static str {
    match why {
        Interruption::ConnectionLost => {
            "the connection to WhatsApp was lost before it was acknowledged"
        }
        Interruption::Replaced => "another client took over the session before it was acknowledged",
        Interruption::Reconnecting => {
            "the connection was reset by a reconnect before it was acknowledged"
        }
        Interruption::LoggedOut => "the device was logged out before it was acknowledged",
        Interruption::ShuttingDown => "the server shut down before it was acknowledged",
    }
}

impl WhatsAppError {
    /// A failure with a short cause, for anything the client reports.
    pub fn failed(context: &str, err: impl std::fmt::Display) -> Self {
        WhatsAppError::Failed(format!("{context}: {err}"))
    }
}

/// One account's WhatsApp session, as the API drives it.
#[async_trait]
pub trait WhatsApp: Send + Sync + 'static {
    fn status(&self) -> SessionStatus;

    /// The finer phase behind [`status`](Self::status).
    fn phase(&self) -> SessionPhase {
        match self.status() {
            SessionStatus::LoggedOut => SessionPhase::LoggedOut,
            SessionStatus::Disconnected => SessionPhase::Connecting,
            SessionStatus::Connected => SessionPhase::Connected,
        }
    }

    /// The JID of this linked device (`phone:device@s.whatsapp.net`) once paired.
    fn device_id(&self) -> Option<Jid>;

    /// The current QR code of a pairing attempt, starting an attempt when none runs.
    async fn pairing_code(&self) -> Result<PairingCode, WhatsAppError>;

    /// An 8-character code that pairs this server with the account of `phone` (digits
    /// with the country code) when typed on that phone; starts a pairing attempt when
    /// none runs.
    async fn link_code(&self, phone: &str) -> Result<String, WhatsAppError>;

    /// Logs the device out at WhatsApp and removes the stored session.
    async fn logout(&self) -> Result<(), WhatsAppError>;

    /// Drops the connection and opens a new one with the stored session.
    async fn reconnect(&self) -> Result<(), WhatsAppError>;

    /// `None` when the account is not on WhatsApp.
    async fn user_info(&self, jid: &Jid) -> Result<Option<UserDetails>, WhatsAppError>;

    /// Whether the phone number of `jid` has a WhatsApp account.
    async fn on_whatsapp(&self, jid: &Jid) -> Result<bool, WhatsAppError> {
        Ok(self.user_info(jid).await?.is_some())
    }

    /// `None` when there is no picture (or it is hidden).
    async fn avatar(&self, jid: &Jid) -> Result<Option<Avatar>, WhatsAppError>;

    async fn privacy(&self) -> Result<Privacy, WhatsAppError>;

    async fn groups(&self) -> Result<Vec<Group>, WhatsAppError>;

    /// The business profile of `jid`; `None` when it is not a business account.
    async fn business_profile(&self, jid: &Jid) -> Result<Option<BusinessProfile>, WhatsAppError>;

    /// The people this account knows (saved on the phone, or who wrote to it), by JID.
    async fn contacts(&self) -> Result<Vec<Contact>, WhatsAppError>;

    /// The channels this account follows.
    async fn newsletters(&self) -> Result<Vec<Newsletter>, WhatsAppError>;

    /// Sends a read receipt for `target`, a message of `chat`.
    async fn mark_read(&self, chat: &Jid, target: &MessageRef) -> Result<(), WhatsAppError>;

    /// Stars or unstars `target` on every device of the account.
    async fn star(
        &self,
        chat: &Jid,
        target: &MessageRef,
        starred: bool,
    ) -> Result<(), WhatsAppError>;

    /// Deletes `target` (sent at `timestamp`, unix seconds) on this account's devices.
    async fn delete_for_me(
        &self,
        chat: &Jid,
        target: &MessageRef,
        timestamp: i64,
    ) -> Result<(), WhatsAppError>;

    /// Pins or unpins `chat` on every device of the account.
    async fn pin_chat(&self, chat: &Jid, pinned: bool) -> Result<(), WhatsAppError>;

    /// Archives or unarchives `chat` on every device of the account.
    async fn archive_chat(&self, chat: &Jid, archived: bool) -> Result<(), WhatsAppError>;

    /// Creates the label `id`, or renames and recolours it, on every device.
    async fn edit_label(&self, id: &str, name: &str, color: i32) -> Result<(), WhatsAppError>;

    /// Puts the label `id` on `chat`, or takes it off, on every device.
    async fn label_chat(&self, chat: &Jid, id: &str, labeled: bool) -> Result<(), WhatsAppError>;

    /// Sets the disappearing-message timer of `chat` (0 turns it off).
    async fn set_disappearing(&self, chat: &Jid, seconds: u32) -> Result<(), WhatsAppError>;

    /// Downloads and decrypts the media of a stored message (`raw`, as stored) into
    /// `dir`, refusing more than `max_bytes`; the new file.
    async fn download_media(
        &self,
        raw: &[u8],
        dir: &Path,
        max_bytes: u64,
    ) -> Result<PathBuf, WhatsAppError>;

    /// A group this account is in.
    async fn group_info(&self, group: &Jid) -> Result<Group, WhatsAppError>;

    /// Creates a group with `participants`; the new group.
    async fn create_group(&self, name: &str, participants: &[Jid]) -> Result<Group, WhatsAppError>;

    async fn leave_group(&self, group: &Jid) -> Result<(), WhatsAppError>;

    /// Joins by invite link (or code); the group, and whether an admin must
    /// approve first.
    async fn join_group(&self, link: &str) -> Result<(Jid, bool), WhatsAppError>;

    /// The group an invite link (or code) leads to, without joining.
    async fn group_from_link(&self, link: &str) -> Result<Group, WhatsAppError>;

    /// The group's invite link; `reset` revokes the old one first.
    async fn group_invite_link(&self, group: &Jid, reset: bool) -> Result<String, WhatsAppError>;

    async fn change_participants(
        &self,
        group: &Jid,
        action: ParticipantAction,
        participants: &[Jid],
    ) -> Result<Vec<ParticipantOutcome>, WhatsAppError>;

    /// Who asked to join the group.
    async fn join_requests(&self, group: &Jid) -> Result<Vec<JoinRequest>, WhatsAppError>;

    async fn update_group(&self, group: &Jid, setting: GroupSetting) -> Result<(), WhatsAppError>;

    /// Sets the group's picture (a JPEG; empty removes it); its id.
    async fn set_group_photo(&self, group: &Jid, jpeg: Vec<u8>) -> Result<String, WhatsAppError>;

    /// Stops following the channel.
    async fn unfollow_newsletter(&self, newsletter: &Jid) -> Result<(), WhatsAppError>;

    /// The channel's posts before `before` (a server id), at most `count`.
    async fn newsletter_posts(
        &self,
        newsletter: &Jid,
        count: u32,
        before: Option<u64>,
    ) -> Result<Vec<NewsletterPost>, WhatsAppError>;

    /// Sets this account's profile picture (a JPEG); returns its id.
    async fn set_avatar(&self, jpeg: Vec<u8>) -> Result<String, WhatsAppError>;

    /// Sets the name this account shows to others.
    async fn set_push_name(&self, name: &str) -> Result<(), WhatsAppError>;

    /// Shows this account as online (`true`) or offline to its contacts.
    async fn set_presence(&self, available: bool) -> Result<(), WhatsAppError>;

    /// Shows `to` that this account is typing (`true`) or stopped.
    async fn chat_presence(&self, to: &Jid, typing: bool) -> Result<(), WhatsAppError>;

    /// Encrypts and uploads media; the returned keys go into the message.
    async fn upload(&self, data: Vec<u8>, kind: MediaKind) -> Result<Uploaded, WhatsAppError>;

    /// Encrypts and uploads the file at `path` in chunks, never holding it whole in
    /// memory (big documents and videos).
    async fn upload_file(&self, path: &Path, kind: MediaKind) -> Result<Uploaded, WhatsAppError>;

    /// Sends `message` and waits for WhatsApp's acknowledgement.
    async fn send(
        &self,
        to: &Jid,
        message: Outgoing,
        context: Context,
    ) -> Result<Ack, WhatsAppError>;

    /// Stops the session cleanly (flushes the store); used on server shutdown.
    async fn shutdown(&self);
}

#[async_trait]
impl WhatsApp for session::WhatsAppClient {
    fn status(&self) -> SessionStatus {
        self.inner.status()
    }

    fn phase(&self) -> SessionPhase {
        self.inner.phase()
    }

    fn device_id(&self) -> Option<Jid> {
        self.inner.device_id()
    }

    async fn pairing_code(&self) -> Result<PairingCode, WhatsAppError> {
        self.inner.pairing_code().await
    }

    async fn link_code(&self, phone: &str) -> Result<String, WhatsAppError> {
        self.inner.link_code(phone).await
    }

    async fn logout(&self) -> Result<(), WhatsAppError> {
        self.inner.logout().await
    }

    async fn reconnect(&self) -> Result<(), WhatsAppError> {
        self.inner.reconnect().await
    }

    async fn user_info(&self, jid: &Jid) -> Result<Option<UserDetails>, WhatsAppError> {
        queries::user_info(&*self.inner.ready_client()?, jid).await
    }

    async fn on_whatsapp(&self, jid: &Jid) -> Result<bool, WhatsAppError> {
        queries::on_whatsapp(&*self.inner.ready_client()?, jid).await
    }

    async fn avatar(&self, jid: &Jid) -> Result<Option<Avatar>, WhatsAppError> {
        queries::avatar(&*self.inner.ready_client()?, jid).await
    }

    async fn privacy(&self) -> Result<Privacy, WhatsAppError> {
        queries::privacy(&*self.inner.ready_client()?).await
    }

    async fn groups(&self) -> Result<Vec<Group>, WhatsAppError> {
        queries::groups(&*self.inner.ready_client()?).await
    }

    async fn business_profile(&self, jid: &Jid) -> Result<Option<BusinessProfile>, WhatsAppError> {
        queries::business_profile(&*self.inner.ready_client()?, jid).await
    }

    async fn contacts(&self) -> Result<Vec<Contact>, WhatsAppError> {
        let Some(store) = self.inner.messages().cloned() else {
            return Ok(Vec::new());
        };
        let stored = store
            .call(|s| s.contacts())
            .await
            .map_err(|e| WhatsAppError::failed("contact list", e))?;
        Ok(stored
            .into_iter()
            .map(|c| Contact {
                jid: c.jid,
                name: c.full_name.or(c.push_name).unwrap_or_default(),
            })
            .collect())
    }

    async fn newsletters(&self) -> Result<Vec<Newsletter>, WhatsAppError> {
        queries::newsletters(&*self.inner.ready_client()?).await
    }

    async fn mark_read(&self, chat: &Jid, target: &MessageRef) -> Result<(), WhatsAppError> {
        actions::mark_read(&*self.inner.ready_client()?, chat, target).await
    }

    async fn star(
        &self,
        chat: &Jid,
        target: &MessageRef,
        starred: bool,
    ) -> Result<(), WhatsAppError> {
        actions::star(&*self.inner.ready_client()?, chat, target, starred).await
    }

    async fn delete_for_me(
        &self,
        chat: &Jid,
        target: &MessageRef,
        timestamp: i64,
    ) -> Result<(), WhatsAppError> {
        actions::delete_for_me(&*self.inner.ready_client()?, chat, target, timestamp).await
    }

    async fn pin_chat(&self, chat: &Jid, pinned: bool) -> Result<(), WhatsAppError> {
        actions::pin_chat(&*self.inner.ready_client()?, chat, pinned).await
    }

    async fn archive_chat(&self, chat: &Jid, archived: bool) -> Result<(), WhatsAppError> {
        actions::archive_chat(&*self.inner.ready_client()?, chat, archived).await
    }

    async fn edit_label(&self, id: &str, name: &str, color: i32) -> Result<(), WhatsAppError> {
        actions::edit_label(&*self.inner.ready_client()?, id, name, color).await
    }

    async fn label_chat(&self, chat: &Jid, id: &str, labeled: bool) -> Result<(), WhatsAppError> {
        actions::label_chat(&*self.inner.ready_client()?, chat, id, labeled).await
    }

    async fn set_disappearing(&self, chat: &Jid, seconds: u32) -> Result<(), WhatsAppError> {
        actions::set_disappearing(&*self.inner.ready_client()?, chat, seconds).await
    }

    async fn download_media(
        &self,
        raw: &[u8],
        dir: &Path,
        max_bytes: u64,
    ) -> Result<PathBuf, WhatsAppError> {
        actions::download_media(&*self.inner.ready_client()?, raw, dir, max_bytes).await
    }

    async fn group_info(&self, group: &Jid) -> Result<Group, WhatsAppError> {
        groups::info(&*self.inner.ready_client()?, group).await
    }

    async fn create_group(&self, name: &str, participants: &[Jid]) -> Result<Group, WhatsAppError> {
        groups::create(&*self.inner.ready_client()?, name, participants).await
    }

    async fn leave_group(&self, group: &Jid) -> Result<(), WhatsAppError> {
        groups::leave(&*self.inner.ready_client()?, group).await
    }

    async fn join_group(&self, link: &str) -> Result<(Jid, bool), WhatsAppError> {
        groups::join(&*self.inner.ready_client()?, link).await
    }

    async fn group_from_link(&self, link: &str) -> Result<Group, WhatsAppError> {
        groups::from_link(&*self.inner.ready_client()?, link).await
    }

    async fn group_invite_link(&self, group: &Jid, reset: bool) -> Result<String, WhatsAppError> {
        groups::invite_link(&*self.inner.ready_client()?, group, reset).await
    }

    async fn change_participants(
        &self,
        group: &Jid,
        action: ParticipantAction,
        participants: &[Jid],
    ) -> Result<Vec<ParticipantOutcome>, WhatsAppError> {
        groups::change_participants(&*self.inner.ready_client()?, group, action, participants).await
    }

    async fn join_requests(&self, group: &Jid) -> Result<Vec<JoinRequest>, WhatsAppError> {
        groups::join_requests(&*self.inner.ready_client()?, group).await
    }

    async fn update_group(&self, group: &Jid, setting: GroupSetting) -> Result<(), WhatsAppError> {
        groups::update(&*self.inner.ready_client()?, group, setting).await
    }

    async fn set_group_photo(&self, group: &Jid, jpeg: Vec<u8>) -> Result<String, WhatsAppError> {
        groups::set_photo(&*self.inner.ready_client()?, group, jpeg).await
    }

    async fn unfollow_newsletter(&self, newsletter: &Jid) -> Result<(), WhatsAppError> {
        queries::unfollow_newsletter(&*self.inner.ready_client()?, newsletter).await
    }

    async fn newsletter_posts(
        &self,
        newsletter: &Jid,
        count: u32,
        before: Option<u64>,
    ) -> Result<Vec<NewsletterPost>, WhatsAppError> {
        queries::newsletter_posts(&*self.inner.ready_client()?, newsletter, count, before).await
    }

    async fn set_avatar(&self, jpeg: Vec<u8>) -> Result<String, WhatsAppError> {
        let client = self.inner.ready_client()?;
        let set = client
            .profile()
            .set_profile_picture(jpeg)
            .await
            .map_err(|e| WhatsAppError::failed("profile picture update failed", e))?;
        Ok(set.id)
    }

    async fn set_push_name(&self, name: &str) -> Result<(), WhatsAppError> {
        let client = self.inner.ready_client()?;
        client
            .profile()
            .set_push_name(name)
            .await
            .map_err(|e| WhatsAppError::failed("push name update failed", e))
    }

    async fn set_presence(&self, available: bool) -> Result<(), WhatsAppError> {
        let client = self.inner.ready_client()?;
        let presence = client.presence();
        let done = match available {
            true => presence.set_available().await,
            false => presence.set_unavailable().await,
        };
        done.map_err(|e| WhatsAppError::failed("presence update failed", e))
    }

    async fn chat_presence(&self, to: &Jid, typing: bool) -> Result<(), WhatsAppError> {
        let client = self.inner.ready_client()?;
        let chatstate = client.chatstate();
        let done = match typing {
            true => chatstate.send_composing(to).await,
            false => chatstate.send_paused(to).await,
        };
        done.map_err(|e| WhatsAppError::failed("chat presence update failed", e))
    }

    async fn upload_file(&self, path: &Path, kind: MediaKind) -> Result<Uploaded, WhatsAppError> {
        send::upload_file(&self.inner, path, kind).await
    }

    async fn upload(&self, data: Vec<u8>, kind: MediaKind) -> Result<Uploaded, WhatsAppError> {
        send::upload(&self.inner, data, kind).await
    }

    async fn send(
        &self,
        to: &Jid,
        message: Outgoing,
        context: Context,
    ) -> Result<Ack, WhatsAppError> {
        send::send(&self.inner, to, message, context).await
    }

    async fn shutdown(&self) {
        self.inner.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_code_never_reports_zero_seconds_left() {
        let code = |left: Duration| PairingCode {
            code: "c".into(),
            expires_at: Instant::now() + left,
        };
        assert_eq!(code(Duration::from_millis(300)).remaining_secs(), 1);
        let full = code(Duration::from_secs(20)).remaining_secs();
        assert!(full == 20 || full == 19, "{full}");
        assert_eq!(code(Duration::ZERO).remaining_secs(), 0);
    }
}
