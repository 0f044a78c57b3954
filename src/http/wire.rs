//! The wire dialects, at the edge only: handlers answer in the v2.3.0 envelope and
//! tag errors with an [`ErrorCode`]; in the later Go dialect (`--api-compat v9`) the
//! edge ([`super::edge`]) passes every answer through [`to_v9`], which rewrites the
//! envelope: string `code`s with the later status mapping,
//! `results` left out when empty, and a send's `message` equal to its status text.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::response::ApiError;

/// Which Go version's wire format the API speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ApiCompat {
    /// go-whatsapp-web-multidevice v2.3.0: integer codes, `type=user|group`.
    #[default]
    #[value(name = "v2.3.0")]
    V2_3_0,
    /// The later versions (v4 to v9): string codes, no `type` needed.
    #[value(name = "v9")]
    V9,
}

impl ApiCompat {
    /// The QR images' folder under `statics/`.
    pub fn qr_path(self) -> &'static str {
        match self {
            ApiCompat::V2_3_0 => "images/qrcode",
            ApiCompat::V9 => "qrcode",
        }
    }
}

/// What went wrong, as the later Go versions name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Validation,
    BadRequest,
    AlreadyLoggedIn,
    Authentication,
    InvalidJid,
    NotFound,
    DeviceNotFound,
    DeviceIdRequired,
    MethodNotAllowed,
    Forbidden,
    RequestTimeout,
    PayloadTooLarge,
    UnsupportedMediaType,
    Timelock,
    Unavailable,
    GatewayTimeout,
    /// A plain request to `/ws`.
    UpgradeRequired,
    Internal,
}

impl ErrorCode {
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Validation => "VALIDATION_ERROR",
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::AlreadyLoggedIn => "ALREADY_LOGGED_IN",
            ErrorCode::Authentication => "AUTHENTICATION_ERROR",
            ErrorCode::InvalidJid => "INVALID_JID",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::DeviceNotFound => "DEVICE_NOT_FOUND",
            ErrorCode::DeviceIdRequired => "DEVICE_ID_REQUIRED",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::RequestTimeout => "CONTEXT_ERROR",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::Timelock => "WA_REACHOUT_TIMELOCK",
            ErrorCode::Unavailable => "SERVICE_UNAVAILABLE",
            ErrorCode::GatewayTimeout => "GATEWAY_TIMEOUT",
            ErrorCode::UpgradeRequired => "UPGRADE_REQUIRED",
            ErrorCode::Internal => "INTERNAL_SERVER_ERROR",
        }
    }

    /// The HTTP status the later versions answer with.
    pub fn v9_status(self) -> StatusCode {
        match self {
            ErrorCode::Validation
            | ErrorCode::BadRequest
            | ErrorCode::AlreadyLoggedIn
            | ErrorCode::InvalidJid
            | ErrorCode::DeviceIdRequired => StatusCode::BAD_REQUEST,
            ErrorCode::Authentication => StatusCode::UNAUTHORIZED,
            ErrorCode::NotFound | ErrorCode::DeviceNotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::Timelock => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code of an error that only has a status.
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::BAD_REQUEST => ErrorCode::BadRequest,
            StatusCode::UNAUTHORIZED => ErrorCode::Authentication,
            StatusCode::FORBIDDEN => ErrorCode::Forbidden,
            StatusCode::NOT_FOUND => ErrorCode::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::REQUEST_TIMEOUT => ErrorCode::RequestTimeout,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            StatusCode::TOO_MANY_REQUESTS => ErrorCode::Timelock,
            StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
            StatusCode::GATEWAY_TIMEOUT => ErrorCode::GatewayTimeout,
            StatusCode::UPGRADE_REQUIRED => ErrorCode::UpgradeRequired,
            _ => ErrorCode::Internal,
        }
    }
}

/// Largest envelope the v9 rewrite reads (the biggest answers are group lists).
const MAX_ENVELOPE: usize = 16 * 1024 * 1024;

/// The v9 rewrite of a JSON envelope (`is_send`: the answer of a `/send/` route).
pub async fn to_v9(res: Response, is_send: bool) -> Response {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !is_json {
        return res;
    }
    let code = res.extensions().get::<ErrorCode>().copied();
    let (mut parts, body) = res.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ENVELOPE).await else {
        return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "response too large")
            .into_response();
    };
    let Ok(Value::Object(mut envelope)) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let status = parts.status;
    if status.is_success() {
        envelope.insert("code".into(), Value::from("SUCCESS"));
        if is_send && let Some(text) = envelope["results"].get("status").cloned() {
            envelope.insert("message".into(), text);
        }
    } else {
        let code = code.unwrap_or_else(|| ErrorCode::from_status(status));
        envelope.insert("code".into(), Value::from(code.name()));
        parts.status = code.v9_status();
    }
    if envelope.get("results").is_some_and(Value::is_null) {
        envelope.remove("results");
    }
    let body = Value::Object(envelope).to_string();
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_a_code_that_maps_back_to_it() {
        for status in [
            400, 401, 403, 404, 405, 408, 413, 415, 426, 429, 500, 503, 504,
        ] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(ErrorCode::from_status(status).v9_status(), status);
        }
    }
}
