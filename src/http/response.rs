//! The v2.3.0 envelope `{"code", "message", "results"}` for every response, errors
//! included, and the one place where service errors become HTTP statuses.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::warn;

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
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Envelope::<()> {
            code: self.status.as_u16(),
            message: self.message,
            results: None,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        let status = match &err {
            ServiceError::Validation(_) | ServiceError::BadRequest(_) => StatusCode::BAD_REQUEST,
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
            ServiceError::WhatsApp(_) | ServiceError::NoAvatar => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = err.to_string();
        match &err {
            // The detail after the cause (a library's error, an OS error with a temp
            // path, ffmpeg's output) went to the log above; the client gets the cause.
            ServiceError::WhatsApp(WhatsAppError::Failed(_)) | ServiceError::Internal(_) => {
                ApiError::new(status, short_cause(&message))
            }
            _ => ApiError::new(status, message),
        }
    }
}

/// `"cause: detail"` → `"cause"`.
fn short_cause(message: &str) -> &str {
    message.split_once(": ").map_or(message, |(cause, _)| cause)
}

impl From<crate::domain::validation::ValidationErrors> for ApiError {
    fn from(err: crate::domain::validation::ValidationErrors) -> Self {
        ApiError::bad_request(err.to_string())
    }
}
