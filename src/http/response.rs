//! The v2.3.0 envelope `{"code", "message", "results"}` for every response, errors
//! included, and the one place where service errors become HTTP statuses.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::warn;

use super::wire::ErrorCode;
use crate::service::ServiceError;
use crate::whatsapp::WhatsAppError;

#[derive(Debug, Serialize)]
pub struct Envelope<T: Serialize> {
    pub code: u16,
    pub message: String,
    pub results: Option<T>,
}

/// A 200 response in the envelope.
pub fn ok<T: Serialize>(message: &str, results: Option<T>) -> Response {
    Json(Envelope {
        code: 200,
        message: message.to_owned(),
        results,
    })
    .into_response()
}

/// An error response in the envelope.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// What the later Go versions call it; by default, what the status says.
    pub code: Option<ErrorCode>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            code: None,
        }
    }

    pub fn with_code(mut self, code: ErrorCode) -> Self {
        self.code = Some(code);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<ApiError> for Response {
    fn from(error: ApiError) -> Response {
        error.into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Envelope::<()> {
            code: self.status.as_u16(),
            message: self.message,
            results: None,
        };
        let code = self
            .code
            .unwrap_or_else(|| ErrorCode::from_status(self.status));
        let mut res = (self.status, Json(body)).into_response();
        res.extensions_mut().insert(code);
        res
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        let status = match &err {
            ServiceError::Validation(_)
            | ServiceError::BadRequest(_)
            | ServiceError::NotOnWhatsApp(_)
            | ServiceError::WhatsApp(WhatsAppError::Rejected(_)) => StatusCode::BAD_REQUEST,
            ServiceError::Busy(_) => {
                warn!(error = %err, "request refused: media work is saturated");
                StatusCode::SERVICE_UNAVAILABLE
            }
            ServiceError::WhatsApp(
                WhatsAppError::Failed(_)
                | WhatsAppError::Timeout(..)
                | WhatsAppError::AckTimeout { .. }
                | WhatsAppError::DeliveryUnknown { .. }
                | WhatsAppError::Refused { .. },
            )
            | ServiceError::Internal(_) => {
                warn!(error = %err, "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ServiceError::NotFound(_) | ServiceError::WhatsApp(WhatsAppError::NotFound(_)) => {
                StatusCode::NOT_FOUND
            }
            ServiceError::WhatsApp(WhatsAppError::Forbidden(_)) => StatusCode::FORBIDDEN,
            ServiceError::WhatsApp(_) | ServiceError::NoAvatar => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let code = match &err {
            ServiceError::Validation(_) | ServiceError::BadRequest(_) => ErrorCode::Validation,
            ServiceError::NotOnWhatsApp(_) => ErrorCode::InvalidJid,
            ServiceError::Busy(_) => ErrorCode::Unavailable,
            ServiceError::NoAvatar | ServiceError::NotFound(_) => ErrorCode::NotFound,
            ServiceError::WhatsApp(e) => match e {
                WhatsAppError::AlreadyLoggedIn => ErrorCode::AlreadyLoggedIn,
                WhatsAppError::Rejected(_) => ErrorCode::Validation,
                WhatsAppError::NotFound(_) => ErrorCode::NotFound,
                WhatsAppError::Forbidden(_) => ErrorCode::Forbidden,
                WhatsAppError::NotLoggedIn
                | WhatsAppError::NotConnected
                | WhatsAppError::NoDevice => ErrorCode::Authentication,
                WhatsAppError::Timeout(..) | WhatsAppError::AckTimeout { .. } => {
                    ErrorCode::GatewayTimeout
                }
                WhatsAppError::Refused { code, .. } if code == "463" => ErrorCode::Timelock,
                _ => ErrorCode::Internal,
            },
            ServiceError::Internal(_) => ErrorCode::Internal,
        };
        let message = err.to_string();
        let error = match &err {
            // The detail after the cause (a library's error, an OS error with a temp
            // path, ffmpeg's output) went to the log above; the client gets the cause.
            ServiceError::WhatsApp(WhatsAppError::Failed(_)) | ServiceError::Internal(_) => {
                ApiError::new(status, short_cause(&message))
            }
            _ => ApiError::new(status, message),
        };
        error.with_code(code)
    }
}

/// `"cause: detail"` → `"cause"`.
fn short_cause(message: &str) -> &str {
    message.split_once(": ").map_or(message, |(cause, _)| cause)
}

impl From<crate::domain::validation::ValidationErrors> for ApiError {
    fn from(err: crate::domain::validation::ValidationErrors) -> Self {
        ApiError::bad_request(err.to_string()).with_code(ErrorCode::Validation)
    }
}
