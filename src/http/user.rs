//! Routes under `/user`: account info, avatar, own privacy settings and groups.

use axum::Router;
use axum::extract::RawQuery;
use axum::response::Response;
use axum::routing::get;

use serde_json::json;

use super::form::{FormSpec, read_query};
use super::request::{PhoneQuery, PushName};
use super::response::{ApiError, ok};
use super::wire::ApiCompat;
use super::{AppState, Server};
use crate::domain::validation::ValidationErrors;
use validator::Validate;

pub fn router() -> Router<Server> {
    Router::new()
        .route("/user/info", get(info))
        .route("/user/avatar", get(avatar))
        .route("/user/my/privacy", get(privacy))
        .route("/user/my/groups", get(groups))
        .route("/user/my/contacts", get(contacts))
        .route("/user/my/newsletters", get(newsletters))
        .route("/user/check", get(check))
        .route("/user/avatar", axum::routing::post(set_avatar))
        .route("/user/pushname", axum::routing::post(set_push_name))
        .route("/user/business-profile", get(business_profile))
}

/// The later versions' `/user/business-profile?phone=`.
async fn business_profile(state: AppState, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let phone = phone_query(&state, q.as_deref())?;
    let profile = state.user.business_profile(&phone).await?;
    Ok(ok("Success get business profile", Some(profile)))
}

/// `POST /user/avatar`: multipart `avatar` (JPEG or PNG), sent as 640×640.
async fn set_avatar(state: AppState, req: axum::extract::Request) -> Result<Response, ApiError> {
    let spec = super::form::FormSpec {
        fields: &[],
        file: Some(super::form::FileSpec {
            field: "avatar",
            max_bytes: state.limits.max_file_mb * 1_000_000,
            too_large: format!("max file upload is {} MB", state.limits.max_file_mb),
        }),
        temp_dir: &state.limits.temp_dir,
        strict: state.limits.strict_fields,
    };
    let mut form = super::form::read_body(req, &spec).await?;
    let Some(upload) = form.file.take() else {
        return Err(ValidationErrors::single("avatar", "cannot be blank").into());
    };
    state.user.set_avatar(upload).await?;
    Ok(ok::<()>("Success change avatar", None))
}

/// `POST /user/pushname`: `push_name`, the name others see.
async fn set_push_name(state: AppState, req: axum::extract::Request) -> Result<Response, ApiError> {
    let spec = FormSpec::text(&state, &["push_name"]);
    let req: PushName = super::form::read_body(req, &spec).await?.parse()?;
    req.validate().map_err(ValidationErrors::from)?;
    let name = req.push_name.as_deref().unwrap_or_default().trim();
    state.user.set_push_name(name).await?;
    Ok(ok::<()>("Success change push name", None))
}

/// The later versions' `/user/check`: `{is_on_whatsapp}`.
async fn check(state: AppState, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let phone = phone_query(&state, q.as_deref())?;
    let on = state.user.check(&phone).await?;
    Ok(ok(
        "Success",
        Some(serde_json::json!({ "is_on_whatsapp": on })),
    ))
}

/// The `phone` query parameter: required, E.164, 10–15 bytes.
fn phone_query(state: &AppState, query: Option<&str>) -> Result<String, ApiError> {
    let spec = FormSpec::text(state, &["phone"]);
    let mut form = read_query(query, &spec)?;
    form.normalize_phone("phone");
    let req: PhoneQuery = form.parse()?;
    req.validate().map_err(ValidationErrors::from)?;
    Ok(req.phone.unwrap_or_default())
}

async fn info(state: AppState, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let phone = phone_query(&state, q.as_deref())?;
    let info = state.user.info(&phone).await?;
    Ok(match state.limits.api_compat {
        ApiCompat::V2_3_0 => ok("Success", Some(info)),
        // The later versions list it under `data`, with a `name`.
        ApiCompat::V9 => {
            let mut entry = serde_json::to_value(&info).unwrap_or_default();
            entry["name"] = serde_json::Value::from("");
            ok("Success", Some(serde_json::json!({ "data": [entry] })))
        }
    })
}

async fn avatar(state: AppState, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let phone = phone_query(&state, q.as_deref())?;
    let avatar = state.user.avatar(&phone).await?;
    Ok(ok("Success", Some(avatar)))
}

async fn privacy(state: AppState) -> Result<Response, ApiError> {
    let privacy = state.user.privacy().await?;
    Ok(ok("Success get privacy", Some(privacy)))
}

async fn groups(state: AppState) -> Result<Response, ApiError> {
    let groups = state.user.groups().await?;
    Ok(ok("Success get list groups", Some(groups)))
}

/// The later versions' `/user/my/contacts`: `{data: [{jid, name}]}`.
async fn contacts(state: AppState) -> Result<Response, ApiError> {
    let data: Vec<_> = state
        .user
        .contacts()
        .await?
        .into_iter()
        .map(|c| json!({ "jid": c.jid, "name": c.name }))
        .collect();
    Ok(ok(
        "Success get list contacts",
        Some(json!({ "data": data })),
    ))
}

/// The later versions' `/user/my/newsletters`: `{data: [...]}` in the shape of the Go
/// server's newsletter metadata (counts and times as strings).
async fn newsletters(state: AppState) -> Result<Response, ApiError> {
    let text =
        |t: Option<String>| json!({ "text": t.unwrap_or_default(), "id": "", "update_time": "0" });
    let picture = |path: Option<String>| {
        path.map(|p| json!({ "url": "", "id": "", "type": "image", "direct_path": p }))
    };
    let data: Vec<_> = state
        .user
        .newsletters()
        .await?
        .into_iter()
        .map(|n| {
            json!({
                "id": n.jid,
                "state": { "type": n.state },
                "thread_metadata": {
                    "creation_time": n.created_at.unwrap_or_default().to_string(),
                    "invite": n.invite_code.unwrap_or_default(),
                    "name": text(Some(n.name)),
                    "description": text(n.description),
                    "subscribers_count": n.subscribers.to_string(),
                    "verification": if n.verified { "verified" } else { "unverified" },
                    "picture": picture(n.picture_path),
                    "preview": picture(n.preview_path).unwrap_or_else(
                        || json!({ "url": "", "id": "", "type": "", "direct_path": "" }),
                    ),
                },
                "viewer_metadata": n.role.map(|role| json!({ "mute": "off", "role": role })),
            })
        })
        .collect();
    Ok(ok(
        "Success get list newsletter",
        Some(json!({ "data": data })),
    ))
}
