//! Routes under `/send`: text, contact, image, file and video. Each reads its form,
//! validates it in the v2.3.0 order (fields first, then file type) and calls the
//! send service.

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::post;

use super::AppState;
use super::form::{FileSpec, Form, FormSpec, read_body};
use super::response::{ApiError, ok};
use super::wire::ApiCompat;
use crate::domain::recipient::{ChatType, Recipient};
use crate::domain::validation::{Rule, ValidationErrors};
use crate::fetch::FetchError;
use crate::media::{self, Upload};
use crate::service::send::{ImageSend, VideoSend};
use crate::whatsapp::{Context, Outgoing};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/message", post(message))
        .route("/image", post(image))
        .route("/file", post(file))
        .route("/video", post(video))
        .route("/contact", post(contact))
        .route("/location", post(location))
        .route("/poll", post(poll))
        .route("/audio", post(audio))
        .route("/sticker", post(sticker))
        .route("/link", post(link))
        .route("/presence", post(presence))
        .route("/chat-presence", post(chat_presence))
}

async fn audio(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let fields = with_common(&["phone", "ptt", "type"]);
    let max_mb = state.limits.max_file_mb;
    let mut form = media_form(&state, req, &fields, "audio", max_mb).await?;
    let mut errors = ValidationErrors::new();
    let to = recipient(&state, &mut form, &mut errors);
    let ptt = form.flag("ptt", false, &mut errors);
    let upload = required_file(&mut form, "audio", &mut errors);
    let context = context(&form, &mut errors);
    errors.into_result()?;
    let (to, upload) = (validated(to)?, validated(upload)?);
    let result = state.send.audio(&to, upload, ptt, context).await?;
    Ok(ok("Success", Some(result)))
}

async fn sticker(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let fields = with_common(&["phone", "type"]);
    let max_mb = state.limits.max_file_mb;
    let mut form = media_form(&state, req, &fields, "sticker", max_mb).await?;
    let mut errors = ValidationErrors::new();
    let to = recipient(&state, &mut form, &mut errors);
    let upload = required_file(&mut form, "sticker", &mut errors);
    let context = context(&form, &mut errors);
    errors.into_result()?;
    let (to, upload) = (validated(to)?, validated(upload)?);
    let result = state.send.sticker(&to, upload, context).await?;
    Ok(ok("Success", Some(result)))
}

async fn link(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let fields = with_common(&["phone", "link", "caption", "type"]);
    let mut form = text_form(&state, req, &fields).await?;
    let mut errors = ValidationErrors::new();
    let to = recipient(&state, &mut form, &mut errors);
    errors.check("caption", form.get("caption"), &[Rule::Required]);
    errors.check("link", form.get("link"), &[Rule::Required]);
    let link = form.text("link").map(|l| l.trim().to_owned());
    if let Some(l) = &link
        && !(l.starts_with("http://") || l.starts_with("https://"))
    {
        errors.add("link", "must be a valid URL");
    }
    let context = context(&form, &mut errors);
    errors.into_result()?;
    let result = state
        .send
        .link(
            &validated(to)?,
            validated(link)?,
            validated(form.text("caption"))?,
            context,
        )
        .await?;
    Ok(ok("Success", Some(result)))
}

async fn poll(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let fields = with_common(&["phone", "question", "options", "max_answer", "type"]);
    let mut form = text_form(&state, req, &fields).await?;
    let mut errors = ValidationErrors::new();
    let to = recipient(&state, &mut form, &mut errors);
    errors.check("question", form.get("question"), &[Rule::Required]);
    let options = form.list("options");
    let unique: std::collections::HashSet<&String> = options.iter().collect();
    if options.len() < 2 {
        errors.add("options", "must have at least 2 options");
    } else if options.len() > 12 {
        errors.add("options", "must have at most 12 options");
    } else if unique.len() != options.len() {
        errors.add("options", "must be unique");
    }
    let max_answer = match form.get("max_answer").map(str::trim) {
        None | Some("") => Some(1),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if n >= 1 && (n as usize) <= options.len().max(1) => Some(n),
            _ => {
                errors.add(
                    "max_answer",
                    format!("must be between 1 and {}", options.len().max(1)),
                );
                None
            }
        },
    };
    let context = context(&form, &mut errors);
    errors.into_result()?;
    let poll = Outgoing::Poll {
        question: validated(form.text("question"))?,
        options,
        max_answer: validated(max_answer)?,
    };
    let result = state.send.poll(&validated(to)?, poll, context).await?;
    Ok(ok("Success", Some(result)))
}

async fn presence(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let form = text_form(&state, req, &["type"]).await?;
    let mut errors = ValidationErrors::new();
    errors.check("type", form.get("type"), &[Rule::Required]);
    let available = match form.get("type").map(str::trim) {
        Some(t) if t.eq_ignore_ascii_case("available") => Some(true),
        Some(t) if t.eq_ignore_ascii_case("unavailable") => Some(false),
        Some("") | None => None,
        Some(_) => {
            errors.add("type", "must be available or unavailable");
            None
        }
    };
    errors.into_result()?;
    let result = state.send.presence(validated(available)?).await?;
    Ok(ok("Success", Some(result)))
}

async fn chat_presence(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let mut form = text_form(&state, req, &["phone", "action", "type"]).await?;
    let mut errors = ValidationErrors::new();
    let to = recipient(&state, &mut form, &mut errors);
    errors.check("action", form.get("action"), &[Rule::Required]);
    let typing = match form.get("action").map(str::trim) {
        Some(a) if a.eq_ignore_ascii_case("start") => Some(true),
        Some(a) if a.eq_ignore_ascii_case("stop") => Some(false),
        Some("") | None => None,
        Some(_) => {
            errors.add("action", "must be start or stop");
            None
        }
    };
    errors.into_result()?;
    let result = state
        .send
        .chat_presence(&validated(to)?, validated(typing)?)
        .await?;
    Ok(ok("Success", Some(result)))
}

/// The later versions' fields every send route takes.
const COMMON: [&str; 4] = ["reply_message_id", "mentions", "is_forwarded", "duration"];

/// A route's own fields and the common ones.
fn with_common<'a>(own: &[&'a str]) -> Vec<&'a str> {
    own.iter().copied().chain(COMMON).collect()
}

/// The disappearing timers WhatsApp offers (24 hours, 7 days, 90 days).
const TIMERS: [u32; 3] = [86_400, 604_800, 7_776_000];

/// The common fields: quote, mentions, forwarded flag, disappearing timer. A timer
/// WhatsApp does not offer is ignored, as Go ignores it.
fn context(form: &Form, errors: &mut ValidationErrors) -> Context {
    let expiration = match form.get("duration").map(str::trim) {
        None | Some("") => None,
        Some(value) => match value.parse::<u32>() {
            Ok(secs) if TIMERS.contains(&secs) => Some(secs),
            Ok(_) => None,
            Err(_) => {
                errors.add("duration", "must be a number of seconds");
                None
            }
        },
    };
    Context {
        reply_to: form.text("reply_message_id"),
        mentions: form.list("mentions"),
        forwarded: form.flag("is_forwarded", false, errors),
        expiration,
    }
}

/// A coordinate in degrees within `-limit..=limit`.
fn degrees(form: &Form, name: &str, limit: f64, errors: &mut ValidationErrors) -> Option<f64> {
    let value = form.get(name).map(str::trim).unwrap_or_default();
    if value.is_empty() {
        errors.add(name, "cannot be blank");
        return None;
    }
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && (-limit..=limit).contains(&v) => Some(v),
        _ => {
            errors.add(
                name,
                format!("must be a number between -{limit} and {limit}"),
            );
            None
        }
    }
}

async fn location(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let fields = with_common(&["phone", "latitude", "longitude", "name", "address", "type"]);
    let mut form = text_form(&state, req, &fields).await?;
    let mut errors = ValidationErrors::new();
    let to = recipient(&state, &mut form, &mut errors);
    let latitude = degrees(&form, "latitude", 90.0, &mut errors);
    let longitude = degrees(&form, "longitude", 180.0, &mut errors);
    let context = context(&form, &mut errors);
    errors.into_result()?;
    let location = Outgoing::Location {
        latitude: validated(latitude)?,
        longitude: validated(longitude)?,
        name: form.text("name"),
        address: form.text("address"),
    };
    let result = state
        .send
        .location(&validated(to)?, location, context)
        .await?;
    Ok(ok("Success", Some(result)))
}

/// Sizes are in SI megabytes, as the Go server counted them.
const MEGABYTE: u64 = 1_000_000;
const PHONE_RULES: &[Rule] = &[Rule::Required, Rule::Length(10, 25)];
const CAPTION_RULES: &[Rule] = &[Rule::Length(0, 200)];

/// A value the validation above has vouched for; never `None` in practice.
fn validated<T>(value: Option<T>) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::bad_request("invalid request"))
}

/// Reads the form of a route without a file.
async fn text_form(state: &AppState, req: Request, fields: &[&str]) -> Result<Form, ApiError> {
    let spec = FormSpec {
        fields,
        file: None,
        temp_dir: &state.limits.temp_dir,
        strict: state.limits.strict_fields,
    };
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

/// Checks `phone` and turns it, with `type`, into the recipient. The later
/// versions have no `type`: a longer number than 15 digits is a group there.
fn recipient(
    state: &AppState,
    form: &mut Form,
    errors: &mut ValidationErrors,
) -> Option<Recipient> {
    let chat_type = match (state.limits.api_compat, form.get("type")) {
        (ApiCompat::V9, None | Some("")) => {
            let phone = form.get("phone").unwrap_or_default();
            let digits = phone.trim().trim_start_matches('+');
            if digits.len() > 15 && digits.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                ChatType::Group
            } else {
                ChatType::User
            }
        }
        (_, given) => ChatType::from_field(given),
    };
    if chat_type == ChatType::User {
        form.normalize_phone("phone");
    }
    let before = errors.clone();
    errors.check("phone", form.get("phone"), PHONE_RULES);
    if *errors != before {
        return None;
    }
    match Recipient::parse(form.get("phone").unwrap_or_default(), chat_type) {
        Ok(r) => Some(r),
        Err(reason) => {
            errors.add("phone", reason);
            None
        }
    }
}

/// The file part, recorded as blank when missing.
fn required_file(form: &mut Form, field: &str, errors: &mut ValidationErrors) -> Option<Upload> {
    let file = form.file.take();
    if file.is_none() {
        errors.add(field, "cannot be blank");
    }
    file
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

async fn message(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let fields = with_common(&["phone", "message", "type"]);
    let mut form = text_form(&state, req, &fields).await?;
    let mut errors = ValidationErrors::new();
    let to = recipient(&state, &mut form, &mut errors);
    errors.check("message", form.get("message"), &[Rule::Required]);
    let context = context(&form, &mut errors);
    errors.into_result()?;
    let (to, text) = (validated(to)?, validated(form.text("message"))?);
    let result = state.send.message(&to, text, context).await?;
    Ok(ok("Success", Some(result)))
}

async fn contact(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let fields = with_common(&["phone", "contact_name", "contact_phone", "type"]);
    let mut form = text_form(&state, req, &fields).await?;
    form.normalize_phone("contact_phone");
    let mut errors = ValidationErrors::new();
    let to = recipient(&state, &mut form, &mut errors);
    errors.check("contact_name", form.get("contact_name"), &[Rule::Required]);
    errors.check(
        "contact_phone",
        form.get("contact_phone"),
        &[Rule::Required, Rule::PhoneDigits],
    );
    let context = context(&form, &mut errors);
    errors.into_result()?;
    let to = validated(to)?;
    let name = form.get("contact_name").unwrap_or_default();
    let phone = form.get("contact_phone").unwrap_or_default();
    let result = state.send.contact(&to, name, phone, context).await?;
    Ok(ok("Success", Some(result)))
}

async fn image(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let fields = with_common(&["phone", "caption", "view_once", "type", "compress"]);
    let max_mb = state.limits.max_file_mb;
    let mut form = media_form(&state, req, &fields, "image", max_mb).await?;
    let mut errors = ValidationErrors::new();
    let to = recipient(&state, &mut form, &mut errors);
    errors.check("caption", form.get("caption"), CAPTION_RULES);
    let view_once = form.flag("view_once", false, &mut errors);
    let compress = form.flag("compress", true, &mut errors);
    let upload = required_file(&mut form, "image", &mut errors);
    let context = context(&form, &mut errors);
    errors.into_result()?;
    let (to, upload) = (validated(to)?, validated(upload)?);
    if !declared_type_is(&upload, &["image/jpeg", "image/jpg", "image/png"]) {
        return Err(ApiError::bad_request(media::image::NOT_ALLOWED));
    }
    let req = ImageSend {
        upload,
        caption: form.text("caption"),
        view_once,
        compress,
    };
    let result = state.send.image(&to, req, context).await?;
    Ok(ok("Success", Some(result)))
}

async fn file(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let fields = with_common(&["phone", "caption", "type"]);
    let max_mb = state.limits.max_file_mb;
    let mut form = media_form(&state, req, &fields, "file", max_mb).await?;
    let mut errors = ValidationErrors::new();
    let to = recipient(&state, &mut form, &mut errors);
    let upload = required_file(&mut form, "file", &mut errors);
    let context = context(&form, &mut errors);
    errors.into_result()?;
    let (to, upload) = (validated(to)?, validated(upload)?);
    let result = state
        .send
        .file(&to, upload, form.text("caption"), context)
        .await?;
    Ok(ok("Success", Some(result)))
}

async fn video(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let fields = with_common(&["phone", "caption", "view_once", "type", "compress"]);
    let max_mb = state.limits.max_video_mb;
    let mut form = media_form(&state, req, &fields, "video", max_mb).await?;
    let mut errors = ValidationErrors::new();
    let to = recipient(&state, &mut form, &mut errors);
    errors.check("caption", form.get("caption"), CAPTION_RULES);
    let view_once = form.flag("view_once", false, &mut errors);
    let compress = form.flag("compress", false, &mut errors);
    let upload = required_file(&mut form, "video", &mut errors);
    let context = context(&form, &mut errors);
    errors.into_result()?;
    let (to, upload) = (validated(to)?, validated(upload)?);
    if !declared_type_is(&upload, &media::video::ALLOWED_TYPES) {
        return Err(ApiError::bad_request(media::video::NOT_ALLOWED));
    }
    let req = VideoSend {
        upload,
        caption: form.text("caption"),
        view_once,
        compress,
    };
    let result = state.send.video(&to, req, context).await?;
    Ok(ok("Success", Some(result)))
}
