//! Owns the server's routes and its life: binding the address (so that a
//! port in use is the caller's error, said at once), then serving on a
//! thread of its own until stopped, whether it is `conductor serve` itself
//! or the page of a running `apply --ui` / `watch --ui`.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use super::options::{ServeError, ServeOptions};
use super::state::Server;
use super::{act, assets, guard, live, metrics, openapi, read};

fn router(server: Arc<Server>) -> Router {
    let api = Router::new()
        .route("/health", get(read::health))
        .route("/server", get(read::server_info))
        .route("/openapi.json", get(openapi::document))
        .route("/overview", get(read::overview_json))
        .route("/overview/stream", get(live::overview))
        .route("/workflows", get(read::workflows))
        .route("/workflows/start", post(act::start))
        .route(
            "/projects/{p}/messages",
            get(read::messages).post(act::post),
        )
        .route("/projects/{p}/messages/stream", get(live::messages))
        .route("/projects/{p}/applies/{a}", get(read::apply_json))
        .route("/projects/{p}/applies/{a}/stream", get(live::apply))
        .route("/projects/{p}/applies/{a}/stop", post(act::stop_apply))
        .route(
            "/projects/{p}/applies/{a}/instances/{k}",
            get(read::instance_json),
        )
        .route(
            "/projects/{p}/applies/{a}/instances/{k}/rerun",
            post(act::rerun),
        )
        .route(
            "/projects/{p}/applies/{a}/instances/{k}/stop",
            post(act::stop_instance),
        )
        .route("/projects/{p}/tasks/{t}/runs/{r}/{f}", get(read::run_file))
        .route(
            "/projects/{p}/tasks/{t}/runs/{r}/{f}/stream",
            get(live::output),
        );
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/app.js", get(assets::script))
        .route("/assets/app.css", get(assets::style))
        .route("/metrics", get(metrics::metrics))
        .nest("/api/v1", api)
        .fallback(|| async {
            super::error::ApiError::NotFound(
                "no such page or endpoint; the API is under /api/v1 (docs/api.md)".into(),
            )
        })
        .layer(axum::middleware::from_fn(super::error::envelope))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&server),
            guard::guard,
        ))
        .layer(axum::middleware::from_fn(guard::headers))
        .with_state(server)
}

/// A server that is listening.
#[derive(Debug)]
pub(crate) struct Started {
    /// Where a browser opens it.
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Started {
    /// Stops serving (open streams are closed) and waits for it.
    pub(crate) fn stop(self) {
        drop(self);
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds `options.bind` and serves on a thread of its own.
pub(crate) fn start(options: ServeOptions) -> Result<Started, ServeError> {
    options.check()?;
    let addr = options.bind;
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ServeError::Bind { addr, source })?;
    let port = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?
        .port();
    let server = Arc::new(Server::new(options, port));
    let url = format!("http://{}/", server.hosts[0]);
    // Two workers: a stream's small reads (a `stat`, what was appended)
    // run on them, so one slow disk read does not hold every other page.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("conductor-serve")
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("conductor-serve".into())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let stopping = std::sync::Arc::new(tokio::sync::Notify::new());
                let told = std::sync::Arc::clone(&stopping);
                let serving =
                    axum::serve(listener, router(server)).with_graceful_shutdown(async move {
                        let _ = rx.await;
                        told.notify_one();
                    });
                // Live streams never end on their own: once stopping, open
                // connections get a moment to close, then the runtime,
                // dropped, ends them.
                tokio::select! {
                    r = serving => {
                        if let Err(e) = r {
                            tracing::warn!("the server stopped: {e}");
                        }
                    }
                    () = async {
                        stopping.notified().await;
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    } => {}
                }
            });
        })
        .map_err(ServeError::Runtime)?;
    Ok(Started {
        url,
        stop: Some(tx),
        thread: Some(thread),
    })
}
