//! Groups: create, join, leave, members, settings, invite links, picture. WhatsApp's
//! refusals become the errors a client can act on: a group this account is not in is
//! not found, an admin-only change by a member is forbidden, a bad link is rejected.

use whatsapp_rust::features::{
    GroupCreateOptions, GroupDescription, GroupError, GroupParticipantOptions, GroupSubject,
    JoinGroupResult, PreviousDescription,
};
use whatsapp_rust::request::IqError;
use whatsapp_rust::{Client, Jid};

use super::queries::to_group;
use super::{
    Group, GroupSetting, JoinRequest, ParticipantAction, ParticipantOutcome, WhatsAppError,
};

/// What a refusal means for the client.
fn refused(what: &str, e: GroupError) -> WhatsAppError {
    match &e {
        GroupError::Iq(IqError::ServerError { code, text, .. }) => match code {
            401 | 403 if what == "join" => WhatsAppError::Forbidden(format!(
                "cannot join the group: WhatsApp refused ({code} {text})"
            )),
            401 => WhatsAppError::Forbidden(format!(
                "{what}: only group admins may do that ({code} {text})"
            )),
            403 | 404 => WhatsAppError::NotFound(format!(
                "{what}: the group does not exist or this account is not in it ({code} {text})"
            )),
            304 => WhatsAppError::Rejected(format!("{what}: already a member of the group")),
            406 | 410 => WhatsAppError::Rejected(format!(
                "{what}: the invite link is invalid or was reset ({code} {text})"
            )),
            400 | 409 | 419 => {
                WhatsAppError::Rejected(format!("{what}: WhatsApp refused ({code} {text})"))
            }
            _ => WhatsAppError::failed(&format!("{what} failed"), e),
        },
        GroupError::InvalidRequest(reason) => WhatsAppError::Rejected(format!("{what}: {reason}")),
        GroupError::DescriptionConflict => WhatsAppError::Rejected(format!(
            "{what}: the description was changed meanwhile; try again"
        )),
        _ => WhatsAppError::failed(&format!("{what} failed"), e),
    }
}

pub async fn info(client: &Client, group: &Jid) -> Result<Group, WhatsAppError> {
    let meta = client
        .groups()
        .get_metadata(group)
        .await
        .map_err(|e| refused("group info", e))?;
    Ok(to_group(meta))
}

pub async fn create(
    client: &Client,
    name: &str,
    participants: &[Jid],
) -> Result<Group, WhatsAppError> {
    let options = GroupCreateOptions::new(name).with_participants(
        participants
            .iter()
            .cloned()
            .map(GroupParticipantOptions::new)
            .collect(),
    );
    let created = client
        .groups()
        .create_group(options)
        .await
        .map_err(|e| refused("create group", e))?;
    Ok(to_group(created.metadata))
}

pub async fn leave(client: &Client, group: &Jid) -> Result<(), WhatsAppError> {
    client
        .groups()
        .leave(group.clone())
        .await
        .map_err(|e| refused("leave group", e))
}

pub async fn join(client: &Client, link: &str) -> Result<(Jid, bool), WhatsAppError> {
    match client.groups().join_with_invite_code(link).await {
        Ok(JoinGroupResult::Joined(jid)) => Ok((jid, false)),
        Ok(JoinGroupResult::PendingApproval(jid)) => Ok((jid, true)),
        Err(e) => Err(refused("join", e)),
    }
}

pub async fn from_link(client: &Client, link: &str) -> Result<Group, WhatsAppError> {
    let meta = client
        .groups()
        .get_invite_info(link)
        .await
        .map_err(|e| refused("group info from link", e))?;
    Ok(to_group(meta))
}

pub async fn invite_link(
    client: &Client,
    group: &Jid,
    reset: bool,
) -> Result<String, WhatsAppError> {
    client
        .groups()
        .get_invite_link(group.clone(), reset)
        .await
        .map_err(|e| refused("invite link", e))
}

pub async fn change_participants(
    client: &Client,
    group: &Jid,
    action: ParticipantAction,
    participants: &[Jid],
) -> Result<Vec<ParticipantOutcome>, WhatsAppError> {
    let groups = client.groups();
    let jid = group.clone();
    let changed = match action {
        ParticipantAction::Add => groups.add_participants(jid, participants).await,
        ParticipantAction::Remove => groups.remove_participants(jid, participants).await,
        ParticipantAction::Promote => groups.promote_participants(jid, participants).await,
        ParticipantAction::Demote => groups.demote_participants(jid, participants).await,
        ParticipantAction::Approve => groups.approve_membership_requests(jid, participants).await,
        ParticipantAction::Reject => groups.reject_membership_requests(jid, participants).await,
    }
    .map_err(|e| refused("participants", e))?;
    Ok(changed
        .into_iter()
        .map(|p| ParticipantOutcome {
            jid: p.phone_number.as_ref().unwrap_or(&p.jid).to_string(),
            error: p.error,
        })
        .collect())
}

pub async fn join_requests(
    client: &Client,
    group: &Jid,
) -> Result<Vec<JoinRequest>, WhatsAppError> {
    let requests = client
        .groups()
        .get_membership_requests(group.clone())
        .await
        .map_err(|e| refused("join requests", e))?;
    Ok(requests
        .into_iter()
        .map(|r| JoinRequest {
            jid: r.jid.to_string(),
            requested_at: r.request_time,
        })
        .collect())
}

pub async fn update(
    client: &Client,
    group: &Jid,
    setting: GroupSetting,
) -> Result<(), WhatsAppError> {
    let groups = client.groups();
    let jid = group.clone();
    match setting {
        GroupSetting::Name(name) => {
            let subject = GroupSubject::new(name)
                .map_err(|e| WhatsAppError::Rejected(format!("name: {e}")))?;
            groups.set_subject(jid, subject).await
        }
        GroupSetting::Topic(topic) => {
            let description = topic
                .map(GroupDescription::new)
                .transpose()
                .map_err(|e| WhatsAppError::Rejected(format!("topic: {e}")))?;
            groups
                .set_description(jid, description, PreviousDescription::Resolve)
                .await
        }
        GroupSetting::Locked(locked) => groups.set_locked(jid, locked).await,
        GroupSetting::Announce(announce) => groups.set_announce(jid, announce).await,
    }
    .map_err(|e| refused("group settings", e))
}

pub async fn set_photo(
    client: &Client,
    group: &Jid,
    jpeg: Vec<u8>,
) -> Result<String, WhatsAppError> {
    let groups = client.groups();
    let set = if jpeg.is_empty() {
        groups.remove_profile_picture(group.clone()).await
    } else {
        groups.set_profile_picture(group.clone(), jpeg).await
    };
    set.map(|r| r.id).map_err(|e| refused("group photo", e))
}
