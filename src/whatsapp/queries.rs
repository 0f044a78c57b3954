//! Queries: user info, avatars, privacy settings, groups and channels, mapped from the
//! library's types to the session's.

use jiff::Timestamp;
use whatsapp_rust::privacy_settings::PrivacyCategory;
use whatsapp_rust::{Client, Jid};

use super::{
    Avatar, BusinessHours, BusinessProfile, Group, GroupMember, Newsletter, NewsletterPost,
    Privacy, UserDetails, WhatsAppError,
};

pub async fn user_info(client: &Client, jid: &Jid) -> Result<Option<UserDetails>, WhatsAppError> {
    let infos = client
        .contacts()
        .get_user_info(std::slice::from_ref(jid))
        .await
        .map_err(|e| WhatsAppError::failed("user info query failed", e))?;
    let Some(info) = infos.into_values().find(|i| i.jid.user == jid.user) else {
        return Ok(None);
    };
    if info.devices.is_empty() {
        return Ok(None);
    }
    Ok(Some(UserDetails {
        verified_name: info.verified_name.as_ref().and_then(|v| v.name.clone()),
        status: info.status.clone(),
        picture_id: info.picture_id.clone(),
        devices: info.devices.clone(),
    }))
}

/// WhatsApp's is-on-WhatsApp check of a phone number (one usync `contact` query).
pub async fn on_whatsapp(client: &Client, jid: &Jid) -> Result<bool, WhatsAppError> {
    let found = client
        .contacts()
        .is_on_whatsapp(std::slice::from_ref(jid))
        .await
        .map_err(|e| WhatsAppError::failed("is-on-WhatsApp query failed", e))?;
    // One number asked: WhatsApp answers it as registered, perhaps spelled
    // otherwise (a country's extra digit, or its LID), as Go's `IsIn` takes it.
    Ok(found.iter().any(|r| r.is_registered))
}

pub async fn avatar(client: &Client, jid: &Jid) -> Result<Option<Avatar>, WhatsAppError> {
    let picture = client
        .contacts()
        .get_profile_picture(jid, false)
        .await
        .map_err(|e| WhatsAppError::failed("profile picture query failed", e))?;
    Ok(picture.map(|p| Avatar {
        url: p.url,
        id: p.id,
    }))
}

pub async fn privacy(client: &Client) -> Result<Privacy, WhatsAppError> {
    let settings = client
        .fetch_privacy_settings()
        .await
        .map_err(|e| WhatsAppError::failed("privacy settings query failed", e))?;
    let value =
        |category: PrivacyCategory| settings.get_value(&category).map(|v| v.as_str().to_owned());
    Ok(Privacy {
        group_add: value(PrivacyCategory::GroupAdd),
        last_seen: value(PrivacyCategory::Last),
        status: value(PrivacyCategory::Status),
        profile: value(PrivacyCategory::Profile),
        read_receipts: value(PrivacyCategory::ReadReceipts),
    })
}

pub async fn groups(client: &Client) -> Result<Vec<Group>, WhatsAppError> {
    let groups = client
        .groups()
        .get_participating()
        .await
        .map_err(|e| WhatsAppError::failed("group list query failed", e))?;
    let mut groups: Vec<Group> = groups.into_values().map(to_group).collect();
    groups.sort_by(|a, b| a.jid.cmp(&b.jid));
    Ok(groups)
}

fn timestamp(secs: Option<u64>) -> Option<Timestamp> {
    secs.and_then(|s| Timestamp::from_second(i64::try_from(s).ok()?).ok())
}

fn jid_string(jid: Option<&Jid>) -> Option<String> {
    jid.map(|j| j.to_string())
}

pub fn to_group(meta: whatsapp_rust::features::GroupMetadata) -> Group {
    Group {
        jid: meta.id.to_string(),
        owner: jid_string(meta.creator_pn.as_ref().or(meta.creator.as_ref())),
        name: meta.subject,
        name_set_at: timestamp(meta.subject_time),
        name_set_by: jid_string(
            meta.subject_owner_pn
                .as_ref()
                .or(meta.subject_owner.as_ref()),
        ),
        topic: meta.description.unwrap_or_default(),
        topic_id: meta.description_id.unwrap_or_default(),
        topic_set_at: timestamp(meta.description_time),
        topic_set_by: jid_string(
            meta.description_owner_pn
                .as_ref()
                .or(meta.description_owner.as_ref()),
        ),
        is_locked: meta.is_locked,
        is_announce: meta.is_announcement,
        disappearing_timer: meta
            .ephemeral
            .as_ref()
            .and_then(|e| e.expiration)
            .unwrap_or(0),
        created_at: timestamp(meta.creation_time),
        participant_version_id: meta.participant_version_id.unwrap_or_default(),
        participants: meta
            .participants
            .iter()
            .map(|p| GroupMember {
                jid: p.phone_number.as_ref().unwrap_or(&p.jid).to_string(),
                phone_number: p
                    .phone_number
                    .as_ref()
                    .or((p.jid.server == whatsapp_rust::Server::Pn).then_some(&p.jid))
                    .map(|j| j.to_string()),
                lid: p
                    .lid
                    .as_ref()
                    .or((p.jid.server == whatsapp_rust::Server::Lid).then_some(&p.jid))
                    .map(|j| j.to_string()),
                is_admin: p.is_admin(),
                is_super_admin: p.is_super_admin(),
            })
            .collect(),
    }
}

pub async fn business_profile(
    client: &Client,
    jid: &Jid,
) -> Result<Option<BusinessProfile>, WhatsAppError> {
    let profile = client
        .get_business_profile(jid)
        .await
        .map_err(|e| WhatsAppError::failed("business profile query failed", e))?;
    Ok(profile.map(|p| BusinessProfile {
        jid: p
            .wid
            .map_or_else(|| jid.to_non_ad_string(), |w| w.to_non_ad_string()),
        description: p.description,
        email: p.email,
        website: p.website,
        categories: p.categories.into_iter().map(|c| (c.id, c.name)).collect(),
        address: p.address,
        timezone: p.business_hours.timezone,
        hours: p
            .business_hours
            .business_config
            .unwrap_or_default()
            .into_iter()
            .map(|h| BusinessHours {
                day: h.day_of_week.to_string(),
                mode: h.mode.to_string(),
                open: h.open_time,
                close: h.close_time,
            })
            .collect(),
    }))
}

pub async fn newsletters(client: &Client) -> Result<Vec<Newsletter>, WhatsAppError> {
    use whatsapp_rust::features::{NewsletterRole, NewsletterState, NewsletterVerification};
    let list = client
        .newsletter()
        .list_subscribed()
        .await
        .map_err(|e| WhatsAppError::failed("newsletter list query failed", e))?;
    let mut list: Vec<Newsletter> = list
        .into_iter()
        .map(|n| Newsletter {
            jid: n.jid.to_string(),
            name: n.name,
            description: n.description,
            subscribers: n.subscriber_count,
            verified: matches!(n.verification, NewsletterVerification::Verified),
            state: match n.state {
                NewsletterState::Suspended => "suspended",
                NewsletterState::Geosuspended => "geosuspended",
                _ => "active",
            },
            picture_path: n.picture_url,
            preview_path: n.preview_url,
            invite_code: n.invite_code,
            role: n.role.map(|r| match r {
                NewsletterRole::Owner => "owner",
                NewsletterRole::Admin => "admin",
                NewsletterRole::Subscriber => "subscriber",
                _ => "guest",
            }),
            created_at: n.creation_time,
        })
        .collect();
    list.sort_by(|a, b| a.jid.cmp(&b.jid));
    Ok(list)
}

/// A channel WhatsApp does not know, or one this account does not follow, is not
/// found; anything else failed.
fn newsletter_refused(what: &str, e: whatsapp_rust::features::NewsletterError) -> WhatsAppError {
    use whatsapp_rust::features::{MexError, NewsletterError};
    use whatsapp_rust::request::IqError;
    // WhatsApp's "not found" sits somewhere in the chain: an IQ error 404, a GraphQL
    // error with code 404 (as an error or as the text of a failed response), or a
    // leave that returned nothing.
    let not_found = |cause: &(dyn std::error::Error + 'static)| {
        matches!(
            cause.downcast_ref::<IqError>(),
            Some(IqError::ServerError { code: 404, .. })
        ) || matches!(
            cause.downcast_ref::<MexError>(),
            Some(MexError::ExtensionError { code: 404, .. })
        ) || cause.to_string().contains("code=404")
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    let mut found =
        matches!(&e, NewsletterError::InvalidRequest(m) if m.starts_with("failed to leave"));
    while let Some(c) = cause {
        found |= not_found(c);
        cause = c.source();
    }
    if found {
        WhatsAppError::NotFound(format!(
            "{what}: no such channel, or this account does not follow it"
        ))
    } else {
        WhatsAppError::failed(&format!("{what} failed"), e)
    }
}

pub async fn unfollow_newsletter(client: &Client, newsletter: &Jid) -> Result<(), WhatsAppError> {
    client
        .newsletter()
        .leave(newsletter)
        .await
        .map_err(|e| newsletter_refused("unfollow", e))
}

pub async fn newsletter_posts(
    client: &Client,
    newsletter: &Jid,
    count: u32,
    before: Option<u64>,
) -> Result<Vec<NewsletterPost>, WhatsAppError> {
    let posts = client
        .newsletter()
        .get_messages(newsletter.clone(), count, before)
        .await
        .map_err(|e| newsletter_refused("newsletter messages", e))?;
    Ok(posts
        .into_iter()
        .map(|p| {
            let text = p.message.as_ref().and_then(|m| {
                m.conversation.clone().or_else(|| {
                    m.extended_text_message
                        .as_option()
                        .and_then(|t| t.text.clone())
                })
            });
            NewsletterPost {
                server_id: p.server_id,
                message_id: p.message_id,
                kind: serde_json::to_value(&p.message_type)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| format!("{:?}", p.message_type).to_lowercase()),
                timestamp: p.timestamp,
                text,
                reactions: p.reactions.into_iter().map(|r| (r.code, r.count)).collect(),
            }
        })
        .collect())
}
