//! Routes under `/message/:message_id`: actions on a stored message. The body's
//! `phone` names the chat the message is in (for a forward: where it goes).

use axum::Router;
use axum::extract::{Path, RawQuery, Request};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};

use super::form::{Form, FormSpec, read_body, read_query};
use super::request::{
    Addressed, ForwardMessage, MessageAction, ReactToMessage, UpdateMessage, check,
};
use super::response::{ApiError, ok};
use super::{AppState, Server};
use crate::domain::validation::ValidationErrors;
use crate::service::send::SendResult;

pub fn router() -> Router<Server> {
    Router::new()
        .route("/message/{message_id}/reaction", post(reaction))
        .route("/message/{message_id}/revoke", post(revoke))
        .route("/message/{message_id}/delete", post(delete))
        .route("/message/{message_id}/update", post(update))
        .route("/message/{message_id}/read", post(read))
        .route("/message/{message_id}/star", post(star))
        .route("/message/{message_id}/unstar", post(unstar))
        .route("/message/{message_id}/forward", post(forward))
        .route("/message/{message_id}/download", get(download))
}

/// WhatsApp message ids are short runs of letters and digits.
fn message_id(id: String) -> Result<String, ApiError> {
    let valid = (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(id)
    } else {
        Err(ValidationErrors::single("message_id", "must be a valid message id").into())
    }
}

async fn body(state: &AppState, req: Request, fields: &[&str]) -> Result<Form, ApiError> {
    let spec = FormSpec::text(state, fields);
    read_body(req, &spec).await
}

/// The message's id and chat from a request that names nothing else.
async fn target<T: Addressed>(
    state: &AppState,
    id: String,
    req: Request,
    fields: &[&str],
) -> Result<(String, T, crate::domain::recipient::Recipient), ApiError> {
    let id = message_id(id)?;
    let mut form = body(state, req, fields).await?;
    let (req, chat, _) = check::<T>(state, &mut form)?.finish()?;
    Ok((id, req, chat))
}

/// A result whose status text is also the envelope's message, as the Go server
/// answers these routes.
fn answered(result: SendResult) -> Response {
    let status = result.status.clone();
    ok(&status, Some(result))
}

async fn reaction(
    state: AppState,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let (id, req, chat) =
        target::<ReactToMessage>(&state, id, req, &["phone", "type", "emoji"]).await?;
    let emoji = req.emoji.unwrap_or_default();
    let result = state.messages.react(&chat, &id, emoji.trim()).await?;
    Ok(answered(result))
}

async fn revoke(
    state: AppState,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let (id, _, chat) = target::<MessageAction>(&state, id, req, &["phone", "type"]).await?;
    let result = state.messages.revoke(&chat, &id).await?;
    Ok(answered(result))
}

async fn update(
    state: AppState,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let (id, req, chat) =
        target::<UpdateMessage>(&state, id, req, &["phone", "type", "message"]).await?;
    let text = req.message.unwrap_or_default();
    let result = state.messages.edit(&chat, &id, &text).await?;
    Ok(answered(result))
}

async fn read(state: AppState, Path(id): Path<String>, req: Request) -> Result<Response, ApiError> {
    let (id, _, chat) = target::<MessageAction>(&state, id, req, &["phone", "type"]).await?;
    let result = state.messages.read(&chat, &id).await?;
    Ok(answered(result))
}

async fn delete(
    state: AppState,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let (id, _, chat) = target::<MessageAction>(&state, id, req, &["phone", "type"]).await?;
    state.messages.delete_for_me(&chat, &id).await?;
    Ok(ok::<()>("Message deleted successfully", None))
}

async fn star(state: AppState, Path(id): Path<String>, req: Request) -> Result<Response, ApiError> {
    let (id, _, chat) = target::<MessageAction>(&state, id, req, &["phone", "type"]).await?;
    state.messages.star(&chat, &id, true).await?;
    Ok(ok::<()>("Starred message successfully", None))
}

async fn unstar(
    state: AppState,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let (id, _, chat) = target::<MessageAction>(&state, id, req, &["phone", "type"]).await?;
    state.messages.star(&chat, &id, false).await?;
    Ok(ok::<()>("Unstarred message successfully", None))
}

async fn forward(
    state: AppState,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let fields = ["phone", "type", "duration", "force_reupload"];
    let (id, req, to) = target::<ForwardMessage>(&state, id, req, &fields).await?;
    let result = state.messages.forward(&id, &to, req.expiration()).await?;
    Ok(answered(result))
}

/// `GET /message/:id/download?phone=`: the media decrypted into `statics/media/`.
async fn download(
    state: AppState,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let id = message_id(id)?;
    let spec = FormSpec::text(&state, &["phone", "type"]);
    let mut form = read_query(query.as_deref(), &spec)?;
    let (_, chat, _) = check::<MessageAction>(&state, &mut form)?.finish()?;
    let result = state.messages.download(&chat, &id).await?;
    let file_url = format!("{}/{}", super::app::base_url(&headers), result.file_path);
    let status = result.status.clone();
    let mut body = serde_json::to_value(&result).unwrap_or_default();
    body["file_url"] = serde_json::Value::from(file_url);
    Ok(ok(&status, Some(body)))
}
