//! Routes under `/user`: account info, avatar, own privacy settings and groups.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::get;

use super::AppState;
use super::form::{FormSpec, read_query};
use super::response::{ApiError, ok};
use super::wire::ApiCompat;
use crate::domain::validation::{Rule, ValidationErrors};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/info", get(info))
        .route("/avatar", get(avatar))
        .route("/my/privacy", get(privacy))
        .route("/my/groups", get(groups))
        .route("/check", get(check))
}

/// The later versions' `/user/check`: `{is_on_whatsapp}`.
async fn check(State(state): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let phone = phone_query(&state, q.as_deref())?;
    let on = state.user.check(&phone).await?;
    Ok(ok(
        "Success",
        Some(serde_json::json!({ "is_on_whatsapp": on })),
    ))
}

/// The `phone` query parameter: required, E.164, 10–15 bytes.
fn phone_query(state: &AppState, query: Option<&str>) -> Result<String, ApiError> {
    let spec = FormSpec {
        fields: &["phone"],
        file: None,
        temp_dir: &state.limits.temp_dir,
        strict: state.limits.strict_fields,
    };
    let mut form = read_query(query, &spec)?;
    form.normalize_phone("phone");
    let mut errors = ValidationErrors::new();
    errors.check(
        "phone",
        form.get("phone"),
        &[Rule::Required, Rule::E164, Rule::Length(10, 15)],
    );
    errors.into_result()?;
    Ok(form.get("phone").unwrap_or_default().to_owned())
}

async fn info(State(state): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
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

async fn avatar(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let phone = phone_query(&state, q.as_deref())?;
    let avatar = state.user.avatar(&phone).await?;
    Ok(ok("Success", Some(avatar)))
}

async fn privacy(State(state): State<AppState>) -> Result<Response, ApiError> {
    let privacy = state.user.privacy().await?;
    Ok(ok("Success get privacy", Some(privacy)))
}

async fn groups(State(state): State<AppState>) -> Result<Response, ApiError> {
    let groups = state.user.groups().await?;
    Ok(ok("Success get list groups", Some(groups)))
}
