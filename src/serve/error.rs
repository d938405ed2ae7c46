//! Owns the API's error answer: one typed error per way a request fails,
//! each with its HTTP status and the `{"error": {"code", "message"}}` body
//! clients read (docs/api.md), and the layer that gives the refusals the
//! web framework makes itself (a wrong method, a body that is not the JSON
//! asked for) that same body.

use axum::Json;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Why a request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error(
        "a valid token is required: send `Authorization: Bearer <token>`, or open the page once as /?token=<token>"
    )]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("this server is read-only (--read-only): it takes no action")]
    ReadOnly,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "FORBIDDEN"),
            Self::ReadOnly => (StatusCode::FORBIDDEN, "READ_ONLY"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "CONFLICT"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        }
    }
}

impl From<crate::view::applies::FindError> for ApiError {
    fn from(e: crate::view::applies::FindError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<crate::bus::ReadError> for ApiError {
    fn from(e: crate::bus::ReadError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = serde_json::json!({"error": {"code": code, "message": self.to_string()}});
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED
            && let Ok(v) = "Bearer realm=\"conductor\"".parse()
        {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, v);
        }
        response
    }
}

/// A framework refusal's text is at most this long; past it, the status
/// alone is said.
const REFUSAL_TEXT: usize = 16 * 1024;

/// Gives every error answer that is not already JSON (a method the route
/// does not take, a body or query that does not parse) the API's error
/// body, so a client reads one shape whatever refused it.
pub(super) async fn envelope(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, REFUSAL_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let reason = status.canonical_reason().unwrap_or("refused");
    let message = if text.is_empty() {
        reason.to_string()
    } else {
        text
    };
    let code = reason.to_uppercase().replace([' ', '-'], "_");
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    let mut answer = (status, Json(body)).into_response();
    // What the framework said beside the body (`Allow` on a 405) stays.
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().append(name.clone(), value.clone());
        }
    }
    answer
}
