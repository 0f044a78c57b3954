//! Request input in every encoding the Go server took (multipart, urlencoded, JSON,
//! query strings) read into one [`Form`]: text fields plus at most one file, which is
//! streamed to a temporary file with a size limit. Every malformed input becomes a
//! 4xx [`ApiError`], never axum's plain-text rejection.

use std::collections::HashMap;
use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};
use tokio::io::AsyncWriteExt;

use super::response::ApiError;
use crate::domain::validation::ValidationErrors;
use crate::media::Upload;

/// Fields that take several values: a JSON array, repeated form fields, or a
/// comma-separated text.
const LIST_FIELDS: &[&str] = &["mentions", "options", "participants"];

/// Largest text field or non-multipart body.
const MAX_TEXT_BYTES: usize = 1024 * 1024;

/// What a route accepts.
pub struct FormSpec<'a> {
    pub fields: &'a [&'a str],
    pub file: Option<FileSpec<'a>>,
    pub temp_dir: &'a PathBuf,
    /// Unknown fields are a 400 (`--strict-fields`); else they are ignored, as Go
    /// ignored them.
    pub strict: bool,
}

impl<'a> FormSpec<'a> {
    /// A form of text fields only (no file part), under the server's settings.
    pub fn text(state: &'a super::AppState, fields: &'a [&'a str]) -> Self {
        Self::text_under(&state.limits, fields)
    }

    /// [`Self::text`] under `limits`, before an account is chosen.
    pub fn text_under(limits: &'a super::Limits, fields: &'a [&'a str]) -> Self {
        FormSpec {
            fields,
            file: None,
            temp_dir: &limits.temp_dir,
            strict: limits.strict_fields,
        }
    }

    /// The declared name `name` stands for, matched without regard to case as Go's
    /// binders did (`Phone`, `MESSAGE`).
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.eq_ignore_ascii_case(name))
            .copied()
    }

    /// Whether `name` is the file part.
    fn is_file(&self, name: &str) -> bool {
        self.file
            .as_ref()
            .is_some_and(|f| f.field.eq_ignore_ascii_case(name))
    }
}

/// The one file part a media route takes.
pub struct FileSpec<'a> {
    pub field: &'a str,
    pub max_bytes: u64,
    /// The 400 message when the file is larger.
    pub too_large: String,
}

/// Text fields and the file of a request.
#[derive(Debug, Default)]
pub struct Form {
    fields: HashMap<String, String>,
    pub file: Option<Upload>,
}

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// A field as an optional text: absent and empty are both `None`.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).map(str::to_owned)
    }

    /// A list field's values (see [`LIST_FIELDS`]), trimmed, empty ones dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The fields as the typed request `T`: blank fields are absent, list fields
    /// (see [`LIST_FIELDS`]) are arrays, every other field is text.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        let map: serde_json::Map<String, serde_json::Value> = self
            .fields
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| {
                let value = if LIST_FIELDS.contains(&name.as_str()) {
                    serde_json::Value::from(self.list(name))
                } else {
                    serde_json::Value::from(value.as_str())
                };
                (name.clone(), value)
            })
            .collect();
        serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| {
            // Every field is text or a list of texts, so this is a mistake in a request
            // type, not in the client's input.
            tracing::error!(error = %e, "a form does not fit its request type");
            ApiError::bad_request("invalid request")
        })
    }

    /// Rewrites a phone number written for humans (`+62 812-3456-7890`) as digits.
    /// Anything else (a JID, a typo) is left as it is, for validation to report.
    pub fn normalize_phone(&mut self, name: &str) {
        if let Some(value) = self.fields.get_mut(name)
            && let Some(digits) = crate::domain::recipient::phone_digits(value)
        {
            *value = digits;
        }
    }

    fn insert(&mut self, spec: &FormSpec<'_>, name: String, value: String) -> Result<(), ApiError> {
        match spec.field(&name) {
            Some(field) => {
                match self.fields.get_mut(field) {
                    Some(earlier) if LIST_FIELDS.contains(&field) => {
                        earlier.push(',');
                        earlier.push_str(&value);
                    }
                    _ => {
                        self.fields.insert(field.to_owned(), value);
                    }
                }
                Ok(())
            }
            None => ignore_unknown(spec, &name),
        }
    }
}

fn unknown_field(name: &str) -> ApiError {
    ApiError::bad_request(ValidationErrors::single(name, "is not a known field").to_string())
}

/// An unknown field: a 400 when strict, else skipped (cache busters like `_=`,
/// fields of later Go versions).
fn ignore_unknown(spec: &FormSpec<'_>, name: &str) -> Result<(), ApiError> {
    if spec.strict {
        return Err(unknown_field(name));
    }
    tracing::debug!(field = %name, "unknown field ignored");
    Ok(())
}

/// Reads a query string (the user routes). `device_id` is the account selector,
/// taken before the route (see `super::scope`), never a field of the form.
pub fn read_query(query: Option<&str>, spec: &FormSpec<'_>) -> Result<Form, ApiError> {
    let mut form = Form::default();
    for (name, value) in parse_urlencoded(query.unwrap_or("").as_bytes())? {
        if name == "device_id" {
            continue;
        }
        form.insert(spec, name, value)?;
    }
    Ok(form)
}

/// Reads a request body as `spec` describes.
pub async fn read_body(req: Request, spec: &FormSpec<'_>) -> Result<Form, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mime = content_type.split(';').next().unwrap_or("").trim();
    match mime {
        "multipart/form-data" => read_multipart(req, spec).await,
        // Media routes too: their file may come by URL (`image_url`…).
        "application/x-www-form-urlencoded" => {
            let body = read_small_body(req.into_body()).await?;
            let mut form = Form::default();
            for (name, value) in parse_urlencoded(&body)? {
                form.insert(spec, name, value)?;
            }
            Ok(form)
        }
        "application/json" => {
            let body = read_small_body(req.into_body()).await?;
            read_json(&body, spec)
        }
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported content type: send multipart/form-data, \
             application/x-www-form-urlencoded or application/json",
        )),
    }
}

async fn read_small_body(body: Body) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_TEXT_BYTES)
        .await
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large"))
}

fn parse_urlencoded(input: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let decode = |raw: &[u8]| -> Result<String, ApiError> {
        let spaced: Vec<u8> = raw
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        percent_encoding::percent_decode(&spaced)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| ApiError::bad_request("the form is not valid UTF-8"))
    };
    input
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut parts = pair.splitn(2, |&b| b == b'=');
            let name = decode(parts.next().unwrap_or_default())?;
            let value = decode(parts.next().unwrap_or_default())?;
            Ok((name, value))
        })
        .collect()
}

fn read_json(body: &[u8], spec: &FormSpec<'_>) -> Result<Form, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(ApiError::bad_request(
            "invalid JSON body: expected an object",
        ));
    };
    let mut form = Form::default();
    for (name, value) in map {
        let text = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Array(items)
                if spec.field(&name).is_some_and(|f| LIST_FIELDS.contains(&f))
                    && items.iter().all(|i| i.is_string() || i.is_number()) =>
            {
                items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(",")
            }
            _ => {
                if spec.field(&name).is_none() {
                    ignore_unknown(spec, &name)?;
                    continue;
                }
                return Err(ApiError::bad_request(
                    ValidationErrors::single(&name, "must be a string, number or boolean")
                        .to_string(),
                ));
            }
        };
        form.insert(spec, name, text)?;
    }
    Ok(form)
}

fn multipart_error(err: axum::extract::multipart::MultipartError) -> ApiError {
    let status = err.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(status, "request body is too large")
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("malformed multipart body: {}", err.body_text()),
        )
    }
}

async fn read_multipart(req: Request, spec: &FormSpec<'_>) -> Result<Form, ApiError> {
    let mut multipart = Multipart::from_request(req, &()).await.map_err(|e| {
        ApiError::bad_request(format!("malformed multipart body: {}", e.body_text()))
    })?;
    let mut form = Form::default();
    let mut seen_part = false;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            // A form without parts is only a closing boundary, which the parser calls
            // incomplete; it is an empty form, left for validation to report.
            Err(e) if !seen_part && e.body_text().contains("incomplete") => break,
            Err(e) => return Err(multipart_error(e)),
        };
        seen_part = true;
        let mut field = field;
        let name = field.name().unwrap_or("").to_owned();
        match &spec.file {
            Some(file) if spec.is_file(&name) => {
                let upload = save_upload(&mut field, file, spec.temp_dir).await?;
                form.file = Some(upload);
            }
            _ => {
                if spec.field(&name).is_none() {
                    ignore_unknown(spec, &name)?;
                    continue;
                }
                let mut value = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    if value.len() + chunk.len() > MAX_TEXT_BYTES {
                        return Err(ApiError::bad_request(
                            ValidationErrors::single(&name, "is too long").to_string(),
                        ));
                    }
                    value.extend_from_slice(&chunk);
                }
                let value = String::from_utf8(value).map_err(|_| {
                    ApiError::bad_request(
                        ValidationErrors::single(&name, "must be valid UTF-8 text").to_string(),
                    )
                })?;
                form.insert(spec, name, value)?;
            }
        }
    }
    Ok(form)
}

/// Streams a file part to a fresh temporary file, stopping at the size limit.
async fn save_upload(
    field: &mut axum::extract::multipart::Field<'_>,
    spec: &FileSpec<'_>,
    temp_dir: &PathBuf,
) -> Result<Upload, ApiError> {
    let internal = |e: std::io::Error| {
        tracing::error!(error = %e, "cannot store an upload");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot store the uploaded file",
        )
    };
    let file_name = field.file_name().map(str::to_owned);
    let content_type = field.content_type().map(str::to_owned);
    let tmp = tempfile::Builder::new()
        .prefix("upload-")
        .tempfile_in(temp_dir)
        .map_err(internal)?;
    let (std_file, path) = tmp.into_parts();
    let mut out = tokio::fs::File::from_std(std_file);
    let mut len: u64 = 0;
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        len += chunk.len() as u64;
        if len > spec.max_bytes {
            return Err(ApiError::bad_request(spec.too_large.clone()));
        }
        out.write_all(&chunk).await.map_err(internal)?;
    }
    out.flush().await.map_err(internal)?;
    Ok(Upload {
        path,
        file_name,
        content_type,
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencoded_decodes_plus_and_percent() {
        let pairs = parse_urlencoded(b"phone=%2B62812&message=hi+there%21").unwrap();
        assert_eq!(
            pairs,
            vec![
                ("phone".to_owned(), "+62812".to_owned()),
                ("message".to_owned(), "hi there!".to_owned())
            ]
        );
    }

    #[test]
    fn urlencoded_rejects_invalid_utf8() {
        assert!(parse_urlencoded(b"message=%ff%fe").is_err());
    }
}
