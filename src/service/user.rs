//! `/user/*`: account info, avatars, own privacy settings and groups, in the exact
//! v2.3.0 result shapes.

use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;
use whatsapp_rust::{Jid, Server};

use super::{ServiceError, ensure_connected};
use crate::domain::device::device_name;
use crate::whatsapp::{Contact, Group, Newsletter, NewsletterPost, WhatsApp};

/// Go's zero `time.Time`, which v2.3.0 prints for unknown times.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct UserInfo {
    pub verified_name: String,
    pub status: String,
    pub picture_id: String,
    pub devices: Vec<Device>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Device {
    pub user: String,
    pub agent: u8,
    pub device: &'static str,
    pub server: String,
    #[serde(rename = "AD")]
    pub ad: bool,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Avatar {
    pub url: String,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Privacy {
    pub group_add: String,
    pub last_seen: String,
    pub status: String,
    pub profile: String,
    pub read_receipts: String,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Groups {
    pub data: Option<Vec<GroupInfo>>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct GroupInfo {
    #[serde(rename = "JID")]
    pub jid: String,
    #[serde(rename = "OwnerJID")]
    pub owner_jid: String,
    pub name: String,
    pub name_set_at: String,
    pub name_set_by: String,
    pub topic: String,
    #[serde(rename = "TopicID")]
    pub topic_id: String,
    pub topic_set_at: String,
    pub topic_set_by: String,
    pub is_locked: bool,
    pub is_announce: bool,
    #[serde(rename = "AnnounceVersionID")]
    pub announce_version_id: String,
    pub is_ephemeral: bool,
    pub disappearing_timer: u32,
    pub group_created: String,
    #[serde(rename = "ParticipantVersionID")]
    pub participant_version_id: String,
    pub participants: Vec<Participant>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Participant {
    #[serde(rename = "JID")]
    pub jid: String,
    #[serde(rename = "IsAdmin")]
    pub is_admin: bool,
    #[serde(rename = "IsSuperAdmin")]
    pub is_super_admin: bool,
}

pub struct UserService {
    wa: Arc<dyn WhatsApp>,
    media: Option<crate::media::MediaConfig>,
}

/// The JID of a validated E.164 phone number.
fn user_jid(phone: &str) -> Jid {
    Jid::new(phone.trim_start_matches('+'), Server::Pn)
}

fn time_text(ts: Option<Timestamp>) -> String {
    ts.map_or_else(|| ZERO_TIME.to_owned(), |t| t.to_string())
}

impl From<Group> for GroupInfo {
    fn from(g: Group) -> Self {
        GroupInfo {
            jid: g.jid,
            owner_jid: g.owner.unwrap_or_default(),
            name: g.name,
            name_set_at: time_text(g.name_set_at),
            name_set_by: g.name_set_by.unwrap_or_default(),
            topic: g.topic,
            topic_id: g.topic_id,
            topic_set_at: time_text(g.topic_set_at),
            topic_set_by: g.topic_set_by.unwrap_or_default(),
            is_locked: g.is_locked,
            is_announce: g.is_announce,
            announce_version_id: String::new(),
            is_ephemeral: g.disappearing_timer > 0,
            disappearing_timer: g.disappearing_timer,
            group_created: time_text(g.created_at),
            participant_version_id: g.participant_version_id,
            participants: g
                .participants
                .into_iter()
                .map(|p| Participant {
                    jid: p.jid,
                    is_admin: p.is_admin,
                    is_super_admin: p.is_super_admin,
                })
                .collect(),
        }
    }
}

impl UserService {
    pub fn new(wa: Arc<dyn WhatsApp>) -> Self {
        Self { wa, media: None }
    }

    /// Image work (profile pictures) with `media`'s limits.
    pub fn with_media(mut self, media: crate::media::MediaConfig) -> Self {
        self.media = Some(media);
        self
    }

    /// The business profile of `phone` (a validated E.164 number), in the later Go
    /// versions' shape.
    /// The people this account knows, by JID.
    pub async fn contacts(&self) -> Result<Vec<Contact>, ServiceError> {
        Ok(self.wa.contacts().await?)
    }

    /// The channels this account follows.
    pub async fn newsletters(&self) -> Result<Vec<Newsletter>, ServiceError> {
        ensure_connected(&*self.wa)?;
        Ok(self.wa.newsletters().await?)
    }

    /// Stops following the channel.
    pub async fn unfollow_newsletter(&self, newsletter: &Jid) -> Result<(), ServiceError> {
        ensure_connected(&*self.wa)?;
        Ok(self.wa.unfollow_newsletter(newsletter).await?)
    }

    /// The channel's posts before `before`, at most `count`.
    pub async fn newsletter_posts(
        &self,
        newsletter: &Jid,
        count: u32,
        before: Option<u64>,
    ) -> Result<Vec<NewsletterPost>, ServiceError> {
        ensure_connected(&*self.wa)?;
        Ok(self.wa.newsletter_posts(newsletter, count, before).await?)
    }

    pub async fn business_profile(&self, phone: &str) -> Result<serde_json::Value, ServiceError> {
        ensure_connected(&*self.wa)?;
        let jid = user_jid(phone);
        let profile = self.wa.business_profile(&jid).await?.ok_or_else(|| {
            ServiceError::BadRequest(format!("{} is not a business account", jid.user))
        })?;
        Ok(serde_json::json!({
            "jid": profile.jid,
            "email": profile.email.unwrap_or_default(),
            "address": profile.address.unwrap_or_default(),
            "description": profile.description,
            "website": profile.website,
            "categories": profile.categories.into_iter()
                .map(|(id, name)| serde_json::json!({"id": id, "name": name}))
                .collect::<Vec<_>>(),
            "profile_options": {},
            "business_hours_timezone": profile.timezone.unwrap_or_default(),
            "business_hours": profile.hours.into_iter().map(|h| serde_json::json!({
                "day_of_week": h.day,
                "mode": h.mode,
                "open_time": h.open.map(|t| t.to_string()).unwrap_or_default(),
                "close_time": h.close.map(|t| t.to_string()).unwrap_or_default(),
            })).collect::<Vec<_>>(),
        }))
    }

    /// Sets this account's profile picture from an uploaded JPEG or PNG.
    pub async fn set_avatar(&self, upload: crate::media::Upload) -> Result<String, ServiceError> {
        ensure_connected(&*self.wa)?;
        let media = self
            .media
            .as_ref()
            .ok_or_else(|| ServiceError::Internal("image processing is not set up".to_owned()))?;
        let jpeg = crate::media::image::avatar(&upload, media).await?;
        drop(upload);
        Ok(self.wa.set_avatar(jpeg).await?)
    }

    pub async fn set_push_name(&self, name: &str) -> Result<(), ServiceError> {
        ensure_connected(&*self.wa)?;
        Ok(self.wa.set_push_name(name).await?)
    }

    /// Whether `phone` (a validated E.164 number) has a WhatsApp account.
    pub async fn check(&self, phone: &str) -> Result<bool, ServiceError> {
        ensure_connected(&*self.wa)?;
        Ok(self.wa.on_whatsapp(&user_jid(phone)).await?)
    }

    /// `phone` must already be a validated E.164 number.
    pub async fn info(&self, phone: &str) -> Result<UserInfo, ServiceError> {
        ensure_connected(&*self.wa)?;
        let jid = user_jid(phone);
        let details = self
            .wa
            .user_info(&jid)
            .await?
            .ok_or_else(|| ServiceError::NotOnWhatsApp(jid.user.to_string()))?;
        let devices = details
            .devices
            .iter()
            .map(|&index| Device {
                user: jid.user.to_string(),
                agent: 0,
                device: device_name(index),
                server: jid.server.to_string(),
                ad: true,
            })
            .collect();
        Ok(UserInfo {
            verified_name: details.verified_name.unwrap_or_default(),
            status: details.status.unwrap_or_default(),
            picture_id: details.picture_id.unwrap_or_default(),
            devices,
        })
    }

    pub async fn avatar(&self, phone: &str) -> Result<Avatar, ServiceError> {
        ensure_connected(&*self.wa)?;
        let avatar = self
            .wa
            .avatar(&user_jid(phone))
            .await?
            .ok_or(ServiceError::NoAvatar)?;
        Ok(Avatar {
            url: avatar.url,
            id: avatar.id,
            kind: "image",
        })
    }

    pub async fn privacy(&self) -> Result<Privacy, ServiceError> {
        ensure_connected(&*self.wa)?;
        let p = self.wa.privacy().await?;
        Ok(Privacy {
            group_add: p.group_add.unwrap_or_default(),
            last_seen: p.last_seen.unwrap_or_default(),
            status: p.status.unwrap_or_default(),
            profile: p.profile.unwrap_or_default(),
            read_receipts: p.read_receipts.unwrap_or_default(),
        })
    }

    pub async fn groups(&self) -> Result<Groups, ServiceError> {
        ensure_connected(&*self.wa)?;
        let groups = self.wa.groups().await?;
        let data = (!groups.is_empty()).then(|| groups.into_iter().map(GroupInfo::from).collect());
        Ok(Groups { data })
    }
}
