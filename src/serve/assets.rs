//! Owns the page: its three files, built into the binary (no network, no
//! build step; docs/architecture.md says why), and the entry that turns
//! `/?token=` into the cookie the page's requests carry.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::guard::{COOKIE, query_token, same};
use super::state::Server;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

/// Assets never change under a running server; pages never cache the API.
const NO_STORE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "no-store");

pub(super) async fn index(State(server): State<Arc<Server>>, req: Request) -> Response {
    if let Some(given) = query_token(&req) {
        let Some(token) = &server.options.token else {
            return (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
        };
        if !same(&given, token) {
            return ApiError::Unauthorized.into_response();
        }
        let cookie = format!("{COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/");
        return (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, "/".to_string()),
                (header::SET_COOKIE, cookie),
            ],
        )
            .into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8"), NO_STORE],
        INDEX,
    )
        .into_response()
}

pub(super) async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            NO_STORE,
        ],
        SCRIPT,
    )
        .into_response()
}

pub(super) async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), NO_STORE],
        STYLE,
    )
        .into_response()
}
