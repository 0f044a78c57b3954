//! `/group/*`: create, join and leave groups, manage members, requests and settings.
//! Every call needs a logged-in session; WhatsApp's refusals keep their meaning
//! (not in the group: 404; not an admin: 403; a bad link: 400).

use std::sync::Arc;

use whatsapp_rust::Jid;

use super::{ServiceError, ensure_connected};
use crate::media::{MediaConfig, Upload};
use crate::whatsapp::{
    Group, GroupSetting, JoinRequest, ParticipantAction, ParticipantOutcome, WhatsApp,
};

pub struct GroupService {
    wa: Arc<dyn WhatsApp>,
    media: MediaConfig,
}

impl GroupService {
    pub fn new(wa: Arc<dyn WhatsApp>, media: MediaConfig) -> Self {
        Self { wa, media }
    }

    pub async fn create(&self, name: &str, participants: &[Jid]) -> Result<Group, ServiceError> {
        ensure_connected(&*self.wa)?;
        Ok(self.wa.create_group(name, participants).await?)
    }

    /// Joins by link; the group and whether an admin must approve first.
    pub async fn join(&self, link: &str) -> Result<(Jid, bool), ServiceError> {
        ensure_connected(&*self.wa)?;
        Ok(self.wa.join_group(link).await?)
    }

    pub async fn from_link(&self, link: &str) -> Result<Group, ServiceError> {
        ensure_connected(&*self.wa)?;
        Ok(self.wa.group_from_link(link).await?)
    }

    pub async fn info(&self, group: &Jid) -> Result<Group, ServiceError> {
        ensure_connected(&*self.wa)?;
        Ok(self.wa.group_info(group).await?)
    }

    pub async fn leave(&self, group: &Jid) -> Result<(), ServiceError> {
        ensure_connected(&*self.wa)?;
        Ok(self.wa.leave_group(group).await?)
    }

    pub async fn change(
        &self,
        group: &Jid,
        action: ParticipantAction,
        participants: &[Jid],
    ) -> Result<Vec<ParticipantOutcome>, ServiceError> {
        ensure_connected(&*self.wa)?;
        Ok(self
            .wa
            .change_participants(group, action, participants)
            .await?)
    }

    pub async fn requests(&self, group: &Jid) -> Result<Vec<JoinRequest>, ServiceError> {
        ensure_connected(&*self.wa)?;
        Ok(self.wa.join_requests(group).await?)
    }

    pub async fn update(&self, group: &Jid, setting: GroupSetting) -> Result<(), ServiceError> {
        ensure_connected(&*self.wa)?;
        Ok(self.wa.update_group(group, setting).await?)
    }

    /// Sets the group's picture from an upload (a JPEG or PNG, sent as 640×640), or
    /// removes it; the picture's id.
    pub async fn photo(&self, group: &Jid, upload: Option<Upload>) -> Result<String, ServiceError> {
        ensure_connected(&*self.wa)?;
        let jpeg = match upload {
            Some(upload) => crate::media::image::avatar(&upload, &self.media).await?,
            None => Vec::new(),
        };
        Ok(self.wa.set_group_photo(group, jpeg).await?)
    }

    pub async fn invite_link(&self, group: &Jid, reset: bool) -> Result<String, ServiceError> {
        ensure_connected(&*self.wa)?;
        Ok(self.wa.group_invite_link(group, reset).await?)
    }
}
