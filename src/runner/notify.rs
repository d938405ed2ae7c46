//! Owns the webhooks of `[notify]` (docs/workflow-format.md): each
//! instance's end and the apply's end posted as JSON to the URL, signed
//! with HMAC-SHA256 of the body when a secret is given
//! (`X-Conductor-Signature: sha256=<hex>`), tried three times (after 1 s,
//! then 2 s), and a final failure recorded on the project bus. Deliveries
//! run beside the apply and never hold it up; its end waits a bounded time
//! for those still going, so a short apply's hooks are not lost.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use hmac::Mac;

/// How long the end of an apply waits for deliveries still going.
const DRAIN: Duration = Duration::from_secs(20);
/// How long one attempt may take: three of them and the waits between fit
/// in [`DRAIN`], so a failure is still recorded before the apply ends.
const ATTEMPT: Duration = Duration::from_secs(5);
/// Deliveries in flight at once.
const AT_ONCE: usize = 8;
/// Waits before the second and third attempt.
const BACKOFF: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];

/// Sends a workflow's webhooks.
#[derive(Debug)]
pub(crate) struct Notifier {
    client: reqwest::Client,
    url: String,
    secret: Option<String>,
    project: String,
    /// Where a delivery that failed for good is recorded.
    bus: PathBuf,
    pending: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Deliveries at once: thousands of instances ending together open a
    /// few connections, not thousands (their agents need the descriptors).
    slots: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Notifier {
    /// The notifier of `spec`; the secret is read from conductor's
    /// environment (preflight checked it is set).
    pub(crate) fn new(spec: &crate::compile::NotifySpec, project: &str, bus: PathBuf) -> Self {
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT)
            .user_agent(concat!("conductor/", env!("CARGO_PKG_VERSION")))
            // A signed body goes where it was asked to, nowhere else.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            client,
            url: spec.webhook.clone(),
            secret: spec.secret_env.as_ref().and_then(|v| std::env::var(v).ok()),
            project: project.to_string(),
            bus,
            pending: Mutex::new(Vec::new()),
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(AT_ONCE)),
        }
    }

    /// Sends `payload` (it gets `"event": event`) without waiting for it.
    /// Must be called within the apply's runtime.
    pub(crate) fn send(&self, event: &'static str, mut payload: serde_json::Value) {
        if let Some(o) = payload.as_object_mut() {
            o.insert("event".into(), event.into());
        }
        let body = payload.to_string();
        let signature = self.secret.as_deref().and_then(|s| sign(s, &body));
        let delivery = Delivery {
            client: self.client.clone(),
            url: self.url.clone(),
            event,
            body,
            signature,
            project: self.project.clone(),
            bus: self.bus.clone(),
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let slots = std::sync::Arc::clone(&self.slots);
        let task = handle.spawn(async move {
            let _slot = slots.acquire_owned().await;
            delivery.run().await;
        });
        if let Ok(mut pending) = self.pending.lock() {
            pending.retain(|t| !t.is_finished());
            pending.push(task);
        }
    }

    /// Waits for the deliveries still going, at most [`DRAIN`].
    pub(crate) async fn drain(&self) {
        let tasks: Vec<_> = self
            .pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default();
        let all = async {
            for t in tasks {
                let _ = t.await;
            }
        };
        let _ = tokio::time::timeout(DRAIN, all).await;
    }
}

/// `sha256=<hex>` of the body, keyed with the secret.
fn sign(secret: &str, body: &str) -> Option<String> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(body.as_bytes());
    let hex = mac
        .finalize()
        .into_bytes()
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = std::fmt::Write::write_fmt(&mut s, format_args!("{b:02x}"));
            s
        });
    Some(format!("sha256={hex}"))
}

/// The URL as it may be shown: its scheme, host and port only (a path,
/// a query or user info may hold a token, as Slack's and Discord's do).
fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match u.port() {
            Some(port) => format!(
                "{}://{}:{port}",
                u.scheme(),
                u.host_str().unwrap_or_default()
            ),
            None => format!("{}://{}", u.scheme(), u.host_str().unwrap_or_default()),
        },
        Err(_) => "the webhook".into(),
    }
}

struct Delivery {
    client: reqwest::Client,
    url: String,
    event: &'static str,
    body: String,
    signature: Option<String>,
    project: String,
    bus: PathBuf,
}

impl Delivery {
    async fn run(self) {
        let mut last = String::new();
        for attempt in 0..=BACKOFF.len() {
            if attempt > 0 {
                tokio::time::sleep(BACKOFF[attempt - 1]).await;
            }
            let mut req = self
                .client
                .post(&self.url)
                .header("Content-Type", "application/json")
                .header("X-Conductor-Event", self.event)
                .body(self.body.clone());
            if let Some(s) = &self.signature {
                req = req.header("X-Conductor-Signature", s);
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => last = format!("it answered {}", r.status()),
                // Without the URL: its query may hold a token.
                Err(e) => last = e.without_url().to_string(),
            }
        }
        self.failed(&last);
    }

    fn failed(&self, why: &str) {
        let msg = crate::bus::NewMessage {
            kind: "WARN".into(),
            project_id: self.project.clone(),
            meta: [
                ("webhook".to_string(), "failed".to_string()),
                ("event".to_string(), self.event.to_string()),
            ]
            .into_iter()
            .collect(),
            body: format!(
                "the {} webhook to {} failed after {} attempts: {why}",
                self.event,
                shown(&self.url),
                BACKOFF.len() + 1
            ),
            ..crate::bus::NewMessage::default()
        };
        match crate::bus::BusWriter::open(&self.bus) {
            Ok(mut bus) => {
                if let Err(e) = bus.append(&msg) {
                    tracing::warn!("cannot record a failed webhook: {e}");
                }
            }
            Err(e) => tracing::warn!("cannot record a failed webhook: {e}"),
        }
    }
}
