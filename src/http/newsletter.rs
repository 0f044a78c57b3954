//! Routes under `/newsletter`: the later Go versions' channel routes.

use axum::Router;
use axum::extract::{RawQuery, Request};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};
use validator::Validate;

use super::form::{FormSpec, read_body, read_query};
use super::request::{NewsletterId, NewsletterMessagesQuery, newsletter_jid, validated};
use super::response::{ApiError, ok};
use super::{AppState, Server};
use crate::domain::validation::ValidationErrors;

pub fn router() -> Router<Server> {
    Router::new()
        .route("/newsletter/unfollow", post(unfollow))
        .route("/newsletter/messages", get(messages))
}

async fn unfollow(state: AppState, req: Request) -> Result<Response, ApiError> {
    let req: NewsletterId = read_body(req, &FormSpec::text(&state, &["newsletter_id"]))
        .await?
        .parse()?;
    req.validate().map_err(ValidationErrors::from)?;
    let jid = validated(req.newsletter_id.as_deref().and_then(newsletter_jid))?;
    state.user.unfollow_newsletter(&jid).await?;
    Ok(ok::<()>("Success unfollow newsletter", None))
}

/// `?newsletter_id=&count=&before=`: `{data: [{server_id, message_id, type, timestamp,
/// views_count, reaction_counts, text}]}`.
async fn messages(state: AppState, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let fields = ["newsletter_id", "count", "before"];
    let req: NewsletterMessagesQuery =
        read_query(q.as_deref(), &FormSpec::text(&state, &fields))?.parse()?;
    req.validate().map_err(ValidationErrors::from)?;
    let jid = validated(
        req.newsletter
            .newsletter_id
            .as_deref()
            .and_then(newsletter_jid),
    )?;
    let count = req
        .count
        .as_deref()
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(20);
    let before = req.before.as_deref().and_then(|b| b.trim().parse().ok());
    let posts = state.user.newsletter_posts(&jid, count, before).await?;
    let data: Vec<Value> = posts
        .into_iter()
        .map(|p| {
            let time = jiff::Timestamp::from_second(p.timestamp as i64)
                .map(|t| t.to_string())
                .unwrap_or_default();
            let mut entry = json!({
                "server_id": p.server_id,
                "message_id": p.message_id,
                "type": p.kind,
                "timestamp": time,
                "views_count": 0,
            });
            if !p.reactions.is_empty() {
                let counts: serde_json::Map<String, Value> = p
                    .reactions
                    .into_iter()
                    .map(|(emoji, n)| (emoji, Value::from(n)))
                    .collect();
                entry["reaction_counts"] = Value::Object(counts);
            }
            if let Some(text) = p.text {
                entry["text"] = Value::from(text);
            }
            entry
        })
        .collect();
    Ok(ok(
        "Success get newsletter messages",
        Some(json!({ "data": data })),
    ))
}
