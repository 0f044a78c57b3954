//! Routes under `/send`: text, contact, image, file and video. Each reads its form,
//! validates it in the v2.3.0 order (fields first, then file type) and calls the
//! send service.

use axum::Router;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::post;

use super::form::{FileSpec, Form, FormSpec, read_body};
use super::request::{
    self, ChatPresence, Presence, SendAudio, SendContact, SendFile, SendLink, SendLocation,
    SendMessage, SendPoll, SendSticker, SendVisual, available, check, flag, typing, validated,
};
use super::response::{ApiError, ok};
use super::{AppState, Server};
use crate::domain::validation::ValidationErrors;
use crate::fetch::FetchError;
use crate::media::{self, Upload};
use crate::service::send::{ImageSend, VideoSend};
use crate::whatsapp::Outgoing;
use validator::Validate;

pub fn router() -> Router<Server> {
    Router::new()
        .route("/send/message", post(message))
        .route("/send/image", post(image))
        .route("/send/file", post(file))
        .route("/send/video", post(video))
        .route("/send/contact", post(contact))
        .route("/send/location", post(location))
        .route("/send/poll", post(poll))
        .route("/send/audio", post(audio))
        .route("/send/sticker", post(sticker))
        .route("/send/link", post(link))
        .route("/send/presence", post(presence))
        .route("/send/chat-presence", post(chat_presence))
}

async fn audio(state: AppState, req: Request) -> Result<Response, ApiError> {
    let fields = with_common(&["phone", "ptt", "type"]);
    let max_mb = state.limits.max_file_mb;
    let mut form = media_form(&state, req, &fields, "audio", max_mb).await?;
    let mut checked = check::<SendAudio>(&state, &mut form)?;
    let upload = checked.file(&mut form, "audio");
    let (req, to, context) = checked.finish()?;
    let result = state
        .send
        .audio(&to, validated(upload)?, flag(&req.ptt, false), context)
        .await?;
    Ok(ok("Success", Some(result)))
}

async fn sticker(state: AppState, req: Request) -> Result<Response, ApiError> {
    let fields = with_common(&["phone", "type"]);
    let max_mb = state.limits.max_file_mb;
    let mut form = media_form(&state, req, &fields, "sticker", max_mb).await?;
    let mut checked = check::<SendSticker>(&state, &mut form)?;
    let upload = checked.file(&mut form, "sticker");
    let (_, to, context) = checked.finish()?;
    let result = state.send.sticker(&to, validated(upload)?, context).await?;
    Ok(ok("Success", Some(result)))
}

async fn link(state: AppState, req: Request) -> Result<Response, ApiError> {
    let fields = with_common(&["phone", "link", "caption", "type"]);
    let mut form = text_form(&state, req, &fields).await?;
    let (req, to, context) = check::<SendLink>(&state, &mut form)?.finish()?;
    let link = validated(req.link)?.trim().to_owned();
    let caption = validated(req.caption)?;
    let result = state.send.link(&to, link, caption, context).await?;
    Ok(ok("Success", Some(result)))
}

async fn poll(state: AppState, req: Request) -> Result<Response, ApiError> {
    let fields = with_common(&["phone", "question", "options", "max_answer", "type"]);
    let mut form = text_form(&state, req, &fields).await?;
    let mut checked = check::<SendPoll>(&state, &mut form)?;
    let max_answer = checked.also("max_answer", checked.req.max_answer());
    let (req, to, context) = checked.finish()?;
    let poll = Outgoing::Poll {
        question: validated(req.question)?,
        options: req.options,
        max_answer: validated(max_answer)?,
    };
    let result = state.send.poll(&to, poll, context).await?;
    Ok(ok("Success", Some(result)))
}

async fn presence(state: AppState, req: Request) -> Result<Response, ApiError> {
    let form = text_form(&state, req, &["type"]).await?;
    let req: Presence = form.parse()?;
    req.validate().map_err(ValidationErrors::from)?;
    let available = req.r#type.as_deref().and_then(available);
    let result = state.send.presence(validated(available)?).await?;
    Ok(ok("Success", Some(result)))
}

async fn chat_presence(state: AppState, req: Request) -> Result<Response, ApiError> {
    let mut form = text_form(&state, req, &["phone", "action", "type"]).await?;
    let (req, to, _) = check::<ChatPresence>(&state, &mut form)?.finish()?;
    let typing = req.action.as_deref().and_then(typing);
    let result = state.send.chat_presence(&to, validated(typing)?).await?;
    Ok(ok("Success", Some(result)))
}

/// The later versions' fields every send route takes.
const COMMON: [&str; 4] = ["reply_message_id", "mentions", "is_forwarded", "duration"];

/// A route's own fields and the common ones.
fn with_common<'a>(own: &[&'a str]) -> Vec<&'a str> {
    own.iter().copied().chain(COMMON).collect()
}

async fn location(state: AppState, req: Request) -> Result<Response, ApiError> {
    let fields = with_common(&["phone", "latitude", "longitude", "name", "address", "type"]);
    let mut form = text_form(&state, req, &fields).await?;
    let (req, to, context) = check::<SendLocation>(&state, &mut form)?.finish()?;
    let coordinate = |value: Option<String>, limit| {
        validated(value.and_then(|v| request::degrees(&v, limit).ok()))
    };
    let location = Outgoing::Location {
        latitude: coordinate(req.latitude, 90.0)?,
        longitude: coordinate(req.longitude, 180.0)?,
        name: req.name,
        address: req.address,
    };
    let result = state.send.location(&to, location, context).await?;
    Ok(ok("Success", Some(result)))
}

/// Sizes are in SI megabytes, as the Go server counted them.
const MEGABYTE: u64 = 1_000_000;

/// Reads the form of a route without a file.
async fn text_form(state: &AppState, req: Request, fields: &[&str]) -> Result<Form, ApiError> {
    let spec = FormSpec::text(state, fields);
    read_body(req, &spec).await
}

/// Reads the form of a media route, with its file part and size limit.
async fn media_form(
    state: &AppState,
    req: Request,
    fields: &[&str],
    file_field: &str,
    max_mb: u64,
) -> Result<Form, ApiError> {
    // The v2.3.0 texts: "max video upload" for videos, "max file upload" otherwise.
    let what = if file_field == "video" {
        "video"
    } else {
        "file"
    };
    let too_large = format!(
        "max {what} upload is {max_mb} MB, please upload in cloud and send via text if your file is higher than {max_mb} MB"
    );
    // The later versions' `image_url`, `file_url`…: the file fetched instead.
    let url_field = format!("{file_field}_url");
    let mut fields = fields.to_vec();
    fields.push(&url_field);
    let spec = FormSpec {
        fields: &fields,
        file: Some(FileSpec {
            field: file_field,
            max_bytes: max_mb * MEGABYTE,
            too_large: too_large.clone(),
        }),
        temp_dir: &state.limits.temp_dir,
        strict: state.limits.strict_fields,
    };
    let mut form = read_body(req, &spec).await?;
    if form.file.is_none()
        && let Some(url) = form.text(&url_field)
    {
        let (fetcher, dir) = (state.fetcher.clone(), state.limits.temp_dir.clone());
        let max_bytes = max_mb * MEGABYTE;
        let fetched = tokio::task::spawn_blocking(move || fetcher.download(&url, &dir, max_bytes))
            .await
            .map_err(|_| ApiError::bad_request(format!("{url_field}: the download stopped")))?;
        let fetched = fetched.map_err(|e| match e {
            FetchError::TooLarge(_) => ApiError::bad_request(too_large),
            e => ApiError::from(ValidationErrors::single(&url_field, e.to_string())),
        })?;
        form.file = Some(Upload {
            path: fetched.path,
            file_name: fetched.file_name,
            content_type: fetched.content_type,
            len: fetched.len,
        });
    }
    Ok(form)
}

/// Whether the part's declared type is one of `allowed` (parameters ignored).
fn declared_type_is(upload: &Upload, allowed: &[&str]) -> bool {
    let declared = upload
        .content_type
        .as_deref()
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase());
    declared.is_some_and(|t| allowed.contains(&t.as_str()))
}

async fn message(state: AppState, req: Request) -> Result<Response, ApiError> {
    let fields = with_common(&["phone", "message", "type"]);
    let mut form = text_form(&state, req, &fields).await?;
    let (req, to, context) = check::<SendMessage>(&state, &mut form)?.finish()?;
    let result = state
        .send
        .message(&to, validated(req.message)?, context)
        .await?;
    Ok(ok("Success", Some(result)))
}

async fn contact(state: AppState, req: Request) -> Result<Response, ApiError> {
    let fields = with_common(&["phone", "contact_name", "contact_phone", "type"]);
    let mut form = text_form(&state, req, &fields).await?;
    let (req, to, context) = check::<SendContact>(&state, &mut form)?.finish()?;
    let name = validated(req.contact_name)?;
    let phone = validated(req.contact_phone)?;
    let result = state.send.contact(&to, &name, &phone, context).await?;
    Ok(ok("Success", Some(result)))
}

async fn image(state: AppState, req: Request) -> Result<Response, ApiError> {
    let fields = with_common(&["phone", "caption", "view_once", "type", "compress"]);
    let max_mb = state.limits.max_file_mb;
    let mut form = media_form(&state, req, &fields, "image", max_mb).await?;
    let mut checked = check::<SendVisual>(&state, &mut form)?;
    let upload = checked.file(&mut form, "image");
    let (req, to, context) = checked.finish()?;
    let upload = validated(upload)?;
    if !declared_type_is(&upload, &["image/jpeg", "image/jpg", "image/png"]) {
        return Err(ApiError::bad_request(media::image::NOT_ALLOWED));
    }
    let send = ImageSend {
        upload,
        caption: req.caption,
        view_once: flag(&req.view_once, false),
        compress: flag(&req.compress, true),
    };
    let result = state.send.image(&to, send, context).await?;
    Ok(ok("Success", Some(result)))
}

async fn file(state: AppState, req: Request) -> Result<Response, ApiError> {
    let fields = with_common(&["phone", "caption", "type"]);
    let max_mb = state.limits.max_file_mb;
    let mut form = media_form(&state, req, &fields, "file", max_mb).await?;
    let mut checked = check::<SendFile>(&state, &mut form)?;
    let upload = checked.file(&mut form, "file");
    let (req, to, context) = checked.finish()?;
    let result = state
        .send
        .file(&to, validated(upload)?, req.caption, context)
        .await?;
    Ok(ok("Success", Some(result)))
}

async fn video(state: AppState, req: Request) -> Result<Response, ApiError> {
    let fields = with_common(&["phone", "caption", "view_once", "type", "compress"]);
    let max_mb = state.limits.max_video_mb;
    let mut form = media_form(&state, req, &fields, "video", max_mb).await?;
    let mut checked = check::<SendVisual>(&state, &mut form)?;
    let upload = checked.file(&mut form, "video");
    let (req, to, context) = checked.finish()?;
    let upload = validated(upload)?;
    if !declared_type_is(&upload, &media::video::ALLOWED_TYPES) {
        return Err(ApiError::bad_request(media::video::NOT_ALLOWED));
    }
    let send = VideoSend {
        upload,
        caption: req.caption,
        view_once: flag(&req.view_once, false),
        compress: flag(&req.compress, false),
    };
    let result = state.send.video(&to, send, context).await?;
    Ok(ok("Success", Some(result)))
}
