//! Owns the apply documents that live pages follow: one build of an apply
//! shared by every stream open on it, made again only when it can have
//! changed. An apply's states are recorded on its project bus, so a bus
//! that did not grow means an unchanged apply; a running apply's iterations
//! and costs are in its instances' run folders, so its document is also
//! made again after [`RUNNING_REBUILD`]. Two pages on one apply then cost
//! one build, and a page on an ended apply costs a `stat` a poll
//! (docs/performance.md, "conductor serve").

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::error::ApiError;

/// A running apply's document is at most this old: its iteration rows,
/// tokens and ages move without a bus record.
const RUNNING_REBUILD: Duration = Duration::from_secs(1);

/// One build of an apply's document.
#[derive(Debug)]
pub(super) struct Document {
    /// Moves on when the document changed in more than its ages.
    pub version: u64,
    pub data: Arc<str>,
    steady: u64,
    bus_len: u64,
    running: bool,
    built: Instant,
}

/// The latest document of one apply, shared by the streams following it.
type Latest = tokio::sync::Mutex<Option<Document>>;
pub(super) type Slot = Arc<Latest>;

/// Every followed apply's slot, held only while a stream holds it.
#[derive(Debug, Default)]
pub(super) struct Documents {
    slots: Mutex<HashMap<(String, String), Weak<Latest>>>,
}

impl Documents {
    /// The slot of `apply` in `project`, shared with any stream already
    /// following it.
    pub(super) fn slot(&self, project: &str, apply: &str) -> Slot {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.retain(|_, w| w.strong_count() > 0);
        let key = (project.to_string(), apply.to_string());
        if let Some(slot) = slots.get(&key).and_then(Weak::upgrade) {
            return slot;
        }
        let slot = Slot::default();
        slots.insert(key, Arc::downgrade(&slot));
        slot
    }
}

/// The current document of the apply in `slot`: the last build when
/// nothing can have changed since (its project `bus` is as long as then),
/// a new one from `build` otherwise. One stream builds while the others
/// wait for it, then take its result.
pub(super) async fn current<B>(
    slot: &Slot,
    bus: &std::path::Path,
    build: B,
) -> Result<(u64, Arc<str>), ApiError>
where
    B: FnOnce() -> Result<serde_json::Value, ApiError> + Send + 'static,
{
    let mut held = slot.lock().await;
    let bus_len = tokio::fs::metadata(bus).await.map_or(0, |m| m.len());
    if let Some(d) = held.as_ref()
        && d.bus_len == bus_len
        && !(d.running && d.built.elapsed() >= RUNNING_REBUILD)
    {
        return Ok((d.version, Arc::clone(&d.data)));
    }
    let (data, running, steady) = tokio::task::spawn_blocking(move || {
        let mut value = build()?;
        let data = value.to_string();
        let running = value["running"] == true;
        steady(&mut value);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        value.to_string().hash(&mut h);
        Ok::<_, ApiError>((data, running, h.finish()))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let version = match held.as_ref() {
        Some(d) if d.steady == steady => d.version,
        Some(d) => d.version + 1,
        None => 0,
    };
    let data: Arc<str> = data.into();
    *held = Some(Document {
        version,
        data: Arc::clone(&data),
        steady,
        bus_len,
        running,
        built: Instant::now(),
    });
    Ok((version, data))
}

/// Ages and durations move on every build; a change is anything else.
pub(super) fn steady(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(o) => {
            for k in ["duration_ms", "running_ms", "silent_ms", "age_ms"] {
                o.remove(k);
            }
            o.values_mut().for_each(steady);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(steady),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_shared_while_held_and_forgotten_after() {
        let docs = Documents::default();
        let a = docs.slot("p", "x");
        let b = docs.slot("p", "x");
        assert!(Arc::ptr_eq(&a, &b), "two streams of one apply share a slot");
        assert!(!Arc::ptr_eq(&a, &docs.slot("p", "y")));
        drop((a, b));
        let _other = docs.slot("p", "z");
        let slots = docs.slots.lock().expect("not poisoned");
        assert!(
            !slots.contains_key(&("p".into(), "x".into())),
            "a slot no stream holds is dropped"
        );
    }

    #[test]
    fn ages_are_not_a_change() {
        let mut a = serde_json::json!({"state": "running", "running_ms": 5, "instances": [{"silent_ms": 1, "k": 1}]});
        let mut b = serde_json::json!({"state": "running", "running_ms": 9, "instances": [{"silent_ms": 7, "k": 1}]});
        steady(&mut a);
        steady(&mut b);
        assert_eq!(a, b);
        let mut c = serde_json::json!({"state": "done", "running_ms": 9});
        steady(&mut c);
        assert_ne!(a, c);
    }
}
