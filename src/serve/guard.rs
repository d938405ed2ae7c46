//! Owns who may ask what: the token (a Bearer header, or the cookie the
//! page gets from `/?token=`), the Host check that keeps a page on another
//! site from reading a loopback server through DNS rebinding, the Origin
//! check on every request that changes something, `--read-only`, and the
//! check of every path segment before it names a file (docs/api.md).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::Server;

/// The cookie the page keeps its token in.
pub(super) const COOKIE: &str = "conductor_token";

/// Paths any client may read without a token: liveness and metrics.
fn open(path: &str) -> bool {
    matches!(path, "/api/v1/health" | "/metrics")
}

/// Runs before every handler.
pub(super) async fn guard(State(server): State<Arc<Server>>, req: Request, next: Next) -> Response {
    match check(&server, &req) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn check(server: &Server, req: &Request) -> Result<(), ApiError> {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if server.options.token.is_none() && !loopback(host) {
        // Only a name for this machine reaches a loopback server; another
        // name is a page elsewhere that rebound its domain to 127.0.0.1.
        return Err(ApiError::Forbidden(format!(
            "Host `{host}` is not this server's address; open http://{}/",
            server.hosts[0]
        )));
    }
    let path = req.uri().path();
    if let Some(token) = &server.options.token
        && !open(path)
        && !(path == "/" && query_token(req).is_some())
    {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "));
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|h| h.to_str().ok())
            .flat_map(|h| h.split(';'))
            .find_map(|c| {
                c.trim()
                    .strip_prefix(&format!("{COOKIE}="))
                    .map(str::to_string)
            });
        let given = bearer.map(str::to_string).or(cookie);
        if !given.is_some_and(|g| same(&g, token)) {
            return Err(ApiError::Unauthorized);
        }
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or_default();
            let from = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            // With a token, the page must come from the address it was
            // opened at; a loopback server serves pages of this machine
            // only (a forwarded port keeps its loopback name).
            let ours = from.is_some_and(|o| {
                if server.options.token.is_some() {
                    o == host
                } else {
                    loopback(o)
                }
            });
            if !ours {
                return Err(ApiError::Forbidden(format!(
                    "a request from the page at `{origin}` may not act on this server"
                )));
            }
        }
        if server.options.read_only {
            return Err(ApiError::ReadOnly);
        }
    }
    Ok(())
}

/// Whether `host` (`name:port`) names this machine: `localhost`,
/// `127.x.y.z` or `[::1]`, on any port.
fn loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Headers every answer carries: the page runs only its own script, is
/// never framed by another site (a click there would act here), and text
/// is never taken for markup.
pub(super) async fn headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        h.insert(name, axum::http::HeaderValue::from_static(value));
    }
    response
}

/// `?token=` on the page's address.
pub(super) fn query_token(req: &Request) -> Option<String> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(str::to_string)
}

/// Compares in time that does not depend on where they differ.
pub(super) fn same(a: &str, b: &str) -> bool {
    use sha2::Digest;
    let (x, y) = (sha2::Sha256::digest(a), sha2::Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// A path segment that names a project, apply, task, run or instance:
/// never empty, `.`, `..`, nor holding a separator or NUL, so that joined
/// to the root it stays inside it.
pub(super) fn segment(s: &str) -> Result<&str, ApiError> {
    if s.is_empty() || s == "." || s == ".." || s.contains(['/', '\\', '\0']) {
        return Err(ApiError::BadRequest(format!(
            "`{}` is not a name: a path segment may not be empty, `.` or `..`, nor hold `/`, `\\` or NUL",
            s.escape_default()
        )));
    }
    Ok(s)
}
