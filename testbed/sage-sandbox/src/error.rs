//! Sage's error envelope and the sandbox's internal error type.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The `$dataCode` values the sandbox emits; the names are Sage's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataCode {
    /// Validation failure (HTTP 422).
    RecordInvalid,
    /// A referenced or requested record does not exist (HTTP 404, or 422 when
    /// the missing record is referenced from a request body).
    RecordNotFound,
    /// Missing, expired or revoked token, or no access to the business.
    AuthorizationFailure,
    /// An `idempotency_id` was reused for another resource type.
    IdempotencyResourceMismatch,
    /// Server-side failure (HTTP 500).
    UnexpectedError,
    /// Throttled (HTTP 429).
    TooManyRequests,
}

/// One entry of Sage's error envelope (the body is a JSON array of these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SageError {
    /// Always `"error"` in what the sandbox produces.
    #[serde(rename = "$severity")]
    pub severity: String,
    /// Machine-readable category.
    #[serde(rename = "$dataCode")]
    pub data_code: DataCode,
    /// Human-readable explanation (English only, as on Sage).
    #[serde(rename = "$message")]
    pub message: String,
    /// Field path such as `sales_invoice.invoice_lines[0].unit_price`, or `""`.
    #[serde(rename = "$source")]
    pub source: String,
}

impl SageError {
    /// Builds an error entry with severity `error`.
    pub fn new(data_code: DataCode, message: impl Into<String>, source: impl Into<String>) -> Self {
        SageError {
            severity: "error".to_owned(),
            data_code,
            message: message.into(),
            source: source.into(),
        }
    }
}

/// An HTTP error answer in Sage's envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status of the answer.
    pub status: StatusCode,
    /// The envelope entries (at least one).
    pub errors: Vec<SageError>,
    /// Seconds for a `Retry-After` header (429 only).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// Builds an error with a single envelope entry.
    pub fn single(
        status: StatusCode,
        data_code: DataCode,
        message: impl Into<String>,
        source: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            errors: vec![SageError::new(data_code, message, source)],
            retry_after: None,
        }
    }

    /// 422 `RecordInvalid` naming the offending field.
    pub fn invalid(source: impl Into<String>, message: impl Into<String>) -> Self {
        Self::single(
            StatusCode::UNPROCESSABLE_ENTITY,
            DataCode::RecordInvalid,
            message,
            source,
        )
    }

    /// 422 `RecordNotFound`: the body references a record that does not exist.
    pub fn missing_reference(source: impl Into<String>, message: impl Into<String>) -> Self {
        Self::single(
            StatusCode::UNPROCESSABLE_ENTITY,
            DataCode::RecordNotFound,
            message,
            source,
        )
    }

    /// 404 `RecordNotFound` for the requested URL.
    pub fn not_found() -> Self {
        Self::single(
            StatusCode::NOT_FOUND,
            DataCode::RecordNotFound,
            "Couldn't find record.",
            "",
        )
    }

    /// 401 `AuthorizationFailure`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::single(
            StatusCode::UNAUTHORIZED,
            DataCode::AuthorizationFailure,
            message,
            "",
        )
    }

    /// 403 `AuthorizationFailure`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::single(
            StatusCode::FORBIDDEN,
            DataCode::AuthorizationFailure,
            message,
            "",
        )
    }

    /// 429 `TooManyRequests`, optionally with `Retry-After`.
    pub fn too_many_requests(retry_after: Option<u64>) -> Self {
        let mut e = Self::single(
            StatusCode::TOO_MANY_REQUESTS,
            DataCode::TooManyRequests,
            "Too many requests. Please wait and try again.",
            "",
        );
        e.retry_after = retry_after;
        e
    }

    /// 500 `UnexpectedError`.
    pub fn unexpected() -> Self {
        Self::single(
            StatusCode::INTERNAL_SERVER_ERROR,
            DataCode::UnexpectedError,
            "An unexpected error occurred.",
            "",
        )
    }

    /// 422 `IdempotencyResourceMismatch`, worded as Sage documents it.
    pub fn idempotency_mismatch() -> Self {
        Self::single(
            StatusCode::UNPROCESSABLE_ENTITY,
            DataCode::IdempotencyResourceMismatch,
            "Entity type mismatch",
            "",
        )
    }

    /// The `$source` of the first entry (handy in tests).
    pub fn source(&self) -> &str {
        self.errors.first().map(|e| e.source.as_str()).unwrap_or("")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.errors).unwrap_or_else(|_| b"[]".to_vec());
        let mut resp = (self.status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
