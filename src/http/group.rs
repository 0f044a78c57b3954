//! Routes under `/group`: the later Go versions' group management, in their shapes.

use axum::Router;
use axum::extract::{RawQuery, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use validator::Validate;
use whatsapp_rust::Jid;

use super::form::{FileSpec, FormSpec, read_body, read_query};
use super::request::{
    CreateGroup, GroupId, GroupLink, GroupName, GroupParticipants, GroupSwitch, GroupTopic,
    InviteLinkQuery, flag, person_jid, validated,
};
use super::response::{ApiError, ok};
use super::{AppState, Server, user_of};
use crate::domain::validation::ValidationErrors;
use crate::service::user::GroupInfo;
use crate::whatsapp::{Group, GroupSetting, ParticipantAction, ParticipantOutcome};

pub fn router() -> Router<Server> {
    Router::new()
        .route("/group", post(create))
        .route("/group/join-with-link", post(join))
        .route("/group/info-from-link", get(info_from_link))
        .route("/group/info", get(info))
        .route("/group/leave", post(leave))
        .route("/group/participants", get(participants))
        .route("/group/participants/export", get(export))
        .route("/group/participants", post(add))
        .route("/group/participants/remove", post(remove))
        .route("/group/participants/promote", post(promote))
        .route("/group/participants/demote", post(demote))
        .route("/group/participant-requests", get(requests))
        .route("/group/participant-requests/approve", post(approve))
        .route("/group/participant-requests/reject", post(reject))
        .route("/group/photo", post(photo))
        .route("/group/name", post(name))
        .route("/group/locked", post(locked))
        .route("/group/announce", post(announce))
        .route("/group/topic", post(topic))
        .route("/group/invite-link", get(invite_link))
}

/// A body read as `T` and checked.
async fn body<T: DeserializeOwned + Validate>(
    state: &AppState,
    req: Request,
    fields: &[&str],
) -> Result<T, ApiError> {
    let parsed: T = read_body(req, &FormSpec::text(state, fields))
        .await?
        .parse()?;
    parsed.validate().map_err(ValidationErrors::from)?;
    Ok(parsed)
}

/// A query string read as `T` and checked.
fn query<T: DeserializeOwned + Validate>(
    state: &AppState,
    raw: Option<&str>,
    fields: &[&str],
) -> Result<T, ApiError> {
    let parsed: T = read_query(raw, &FormSpec::text(state, fields))?.parse()?;
    parsed.validate().map_err(ValidationErrors::from)?;
    Ok(parsed)
}

fn group_of(id: &GroupId) -> Result<Jid, ApiError> {
    validated(id.jid())
}

async fn create(state: AppState, req: Request) -> Result<Response, ApiError> {
    let req: CreateGroup = body(&state, req, &["title", "participants"]).await?;
    let people: Vec<Jid> = req
        .participants
        .iter()
        .filter_map(|p| person_jid(p))
        .collect();
    let title = validated(req.title)?;
    let group = state.groups.create(title.trim(), &people).await?;
    Ok(ok(
        &format!("Success created group with id {}", group.jid),
        Some(json!({ "group_id": group.jid })),
    ))
}

async fn join(state: AppState, req: Request) -> Result<Response, ApiError> {
    let req: GroupLink = body(&state, req, &["link"]).await?;
    let (group, pending) = state.groups.join(validated(req.link)?.trim()).await?;
    let message = if pending {
        "Join request sent; a group admin must approve it"
    } else {
        "Success joined group"
    };
    Ok(ok(
        message,
        Some(json!({ "group_id": group.to_string(), "pending_approval": pending })),
    ))
}

async fn info_from_link(state: AppState, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let req: GroupLink = query(&state, q.as_deref(), &["link"])?;
    let group = state.groups.from_link(validated(req.link)?.trim()).await?;
    let created = group
        .created_at
        .map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), |t| t.to_string());
    Ok(ok(
        "Success get group info from link",
        Some(json!({
            "group_id": group.jid,
            "name": group.name,
            "topic": group.topic,
            "created_at": created,
            "participant_count": group.participants.len(),
            "is_locked": group.is_locked,
            "is_announce": group.is_announce,
            "is_ephemeral": group.disappearing_timer > 0,
            "description": group.topic,
        })),
    ))
}

async fn info(state: AppState, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let req: GroupId = query(&state, q.as_deref(), &["group_id"])?;
    let group = state.groups.info(&group_of(&req)?).await?;
    Ok(ok("Success get group info", Some(GroupInfo::from(group))))
}

async fn leave(state: AppState, req: Request) -> Result<Response, ApiError> {
    let req: GroupId = body(&state, req, &["group_id"]).await?;
    state.groups.leave(&group_of(&req)?).await?;
    Ok(ok::<()>("Success leave group", None))
}

fn participants_json(group: &Group) -> Value {
    let people: Vec<Value> = group
        .participants
        .iter()
        .map(|p| {
            let mut entry = json!({
                "jid": p.jid,
                "phone_number": p.phone_number.as_deref().map(user_of).unwrap_or_default(),
                "is_admin": p.is_admin,
                "is_super_admin": p.is_super_admin,
            });
            if let Some(lid) = &p.lid {
                entry["lid"] = Value::from(lid.as_str());
            }
            entry
        })
        .collect();
    json!({ "group_id": group.jid, "name": group.name, "participants": people })
}

async fn participants(state: AppState, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let req: GroupId = query(&state, q.as_deref(), &["group_id"])?;
    let group = state.groups.info(&group_of(&req)?).await?;
    Ok(ok(
        "Success getting group participants",
        Some(participants_json(&group)),
    ))
}

/// A CSV field, quoted when it must be, and never read as a formula by a
/// spreadsheet.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

async fn export(state: AppState, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let req: GroupId = query(&state, q.as_deref(), &["group_id"])?;
    let group = state.groups.info(&group_of(&req)?).await?;
    let mut csv = String::from("participant_jid,phone_number,lid,display_name,role\r\n");
    for p in &group.participants {
        let role = if p.is_super_admin {
            "superadmin"
        } else if p.is_admin {
            "admin"
        } else {
            "member"
        };
        let phone = p.phone_number.as_deref().map(user_of).unwrap_or_default();
        let fields = [
            p.jid.as_str(),
            phone.as_str(),
            p.lid.as_deref().unwrap_or_default(),
            "",
            role,
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        csv.push_str(&line.join(","));
        csv.push_str("\r\n");
    }
    let file = format!("group-{}-participants.csv", group.jid.replace('@', "_"));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        csv,
    )
        .into_response())
}

/// `{participant, status, message}` per participant, with WhatsApp's reason.
fn outcomes(action: ParticipantAction, changed: Vec<ParticipantOutcome>) -> Vec<Value> {
    changed
        .into_iter()
        .map(|p| {
            let (status, message) = match p.error.as_deref() {
                None => ("success", "Action success".to_owned()),
                Some(code) => ("error", reason(action, code)),
            };
            json!({ "participant": p.jid, "status": status, "message": message })
        })
        .collect()
}

fn reason(action: ParticipantAction, code: &str) -> String {
    let why = match (action, code) {
        (ParticipantAction::Add, "403") => {
            "their privacy settings do not allow it; WhatsApp sent them an invitation"
        }
        (ParticipantAction::Add, "404") => "not on WhatsApp",
        (ParticipantAction::Add, "408") => "they left the group recently",
        (ParticipantAction::Add, "409") => "already a member",
        (_, "404") => "not a member, or no request from them",
        (_, "406") => "the group's creator cannot be changed",
        (_, "419") => "the group is full",
        _ => "refused",
    };
    format!("{why} (code {code})")
}

async fn change(
    state: &AppState,
    req: Request,
    action: ParticipantAction,
    message: &str,
) -> Result<Response, ApiError> {
    let req: GroupParticipants = body(state, req, &["group_id", "participants"]).await?;
    let group = group_of(&req.group)?;
    let changed = state.groups.change(&group, action, &req.jids()).await?;
    Ok(ok(message, Some(outcomes(action, changed))))
}

async fn add(state: AppState, req: Request) -> Result<Response, ApiError> {
    change(
        &state,
        req,
        ParticipantAction::Add,
        "Success add participants",
    )
    .await
}

async fn remove(state: AppState, req: Request) -> Result<Response, ApiError> {
    change(
        &state,
        req,
        ParticipantAction::Remove,
        "Success delete participants",
    )
    .await
}

async fn promote(state: AppState, req: Request) -> Result<Response, ApiError> {
    change(
        &state,
        req,
        ParticipantAction::Promote,
        "Success promote participants",
    )
    .await
}

async fn demote(state: AppState, req: Request) -> Result<Response, ApiError> {
    change(
        &state,
        req,
        ParticipantAction::Demote,
        "Success demote participants",
    )
    .await
}

async fn approve(state: AppState, req: Request) -> Result<Response, ApiError> {
    let message = "Success approve requested participants";
    change(&state, req, ParticipantAction::Approve, message).await
}

async fn reject(state: AppState, req: Request) -> Result<Response, ApiError> {
    let message = "Success reject requested participants";
    change(&state, req, ParticipantAction::Reject, message).await
}

async fn requests(state: AppState, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let req: GroupId = query(&state, q.as_deref(), &["group_id"])?;
    let asked = state.groups.requests(&group_of(&req)?).await?;
    let data: Vec<Value> = asked
        .into_iter()
        .map(|r| {
            let at = r
                .requested_at
                .and_then(|t| jiff::Timestamp::from_second(t as i64).ok())
                .map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), |t| t.to_string());
            json!({ "jid": r.jid, "phone_number": user_of(&r.jid), "requested_at": at })
        })
        .collect();
    Ok(ok(
        "Success getting list requested participants",
        Some(data),
    ))
}

/// Multipart `group_id` and `photo` (JPEG or PNG); without a photo, the picture
/// is removed.
async fn photo(state: AppState, req: Request) -> Result<Response, ApiError> {
    let max_mb = state.limits.max_file_mb;
    let spec = FormSpec {
        fields: &["group_id"],
        file: Some(FileSpec {
            field: "photo",
            max_bytes: max_mb * 1_000_000,
            too_large: format!("max file upload is {max_mb} MB"),
        }),
        temp_dir: &state.limits.temp_dir,
        strict: state.limits.strict_fields,
    };
    let mut form = read_body(req, &spec).await?;
    let upload = form.file.take();
    let req: GroupId = form.parse()?;
    req.validate().map_err(ValidationErrors::from)?;
    let removing = upload.is_none();
    let picture_id = state.groups.photo(&group_of(&req)?, upload).await?;
    let message = if removing {
        "Success remove group photo"
    } else {
        "Success update group photo"
    };
    Ok(ok(
        message,
        Some(json!({ "picture_id": picture_id, "message": message })),
    ))
}

async fn name(state: AppState, req: Request) -> Result<Response, ApiError> {
    let req: GroupName = body(&state, req, &["group_id", "name"]).await?;
    let name = validated(req.name)?.trim().to_owned();
    state
        .groups
        .update(&group_of(&req.group)?, GroupSetting::Name(name.clone()))
        .await?;
    Ok(ok::<()>(
        &format!("Success update group name to '{name}'"),
        None,
    ))
}

async fn topic(state: AppState, req: Request) -> Result<Response, ApiError> {
    let req: GroupTopic = body(&state, req, &["group_id", "topic"]).await?;
    let topic = req
        .topic
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let message = if topic.is_some() {
        "Success update group topic"
    } else {
        "Success remove group topic"
    };
    state
        .groups
        .update(&group_of(&req.group)?, GroupSetting::Topic(topic))
        .await?;
    Ok(ok::<()>(message, None))
}

async fn locked(state: AppState, req: Request) -> Result<Response, ApiError> {
    let req: GroupSwitch = body(&state, req, &["group_id", "locked"]).await?;
    let on = flag(&req.locked, false);
    state
        .groups
        .update(&group_of(&req.group)?, GroupSetting::Locked(on))
        .await?;
    let message = if on {
        "Success set group as locked"
    } else {
        "Success set group as unlocked"
    };
    Ok(ok::<()>(message, None))
}

async fn announce(state: AppState, req: Request) -> Result<Response, ApiError> {
    let req: GroupSwitch = body(&state, req, &["group_id", "announce"]).await?;
    let on = flag(&req.announce, false);
    state
        .groups
        .update(&group_of(&req.group)?, GroupSetting::Announce(on))
        .await?;
    let message = if on {
        "Success enable announce mode"
    } else {
        "Success disable announce mode"
    };
    Ok(ok::<()>(message, None))
}

async fn invite_link(state: AppState, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let req: InviteLinkQuery = query(&state, q.as_deref(), &["group_id", "reset"])?;
    let group = group_of(&req.group)?;
    let link = state
        .groups
        .invite_link(&group, flag(&req.reset, false))
        .await?;
    Ok(ok(
        "Success get group invite link",
        Some(json!({ "invite_link": link, "group_id": group.to_string() })),
    ))
}
