//! Reads a `stop` table.

use super::read::{Cx, Fields};
use crate::model::Stop;
use crate::syntax::{Key, Value};

pub(crate) fn decode_stop(cx: &mut Cx<'_>, key: &Key, value: &Value) -> Option<Stop> {
    let table = cx.table(key, value)?;
    let mut f = Fields::new(table, "Stop", format!("`{}`", key.spelled));
    let mut stop = Stop::default();
    if let Some((k, v)) = f.get("done_file") {
        stop.done_file = cx.boolean(k, v);
    }
    if let Some((k, v)) = f.get("promise") {
        stop.promise = cx.string(k, v);
    }
    if let Some((k, v)) = f.get("output_matches") {
        stop.output_matches = cx.regex(k, v);
    }
    if let Some((k, v)) = f.get("command") {
        stop.command = cx.string(k, v);
    }
    if let Some((k, v)) = f.get("expr") {
        stop.expr = cx.string(k, v);
    }
    if let Some((k, v)) = f.get("exit_zero") {
        stop.exit_zero = cx.boolean(k, v);
    }
    if let Some((k, v)) = f.get("all") {
        stop.all = cx.boolean(k, v);
    }
    if let Some((k, v)) = f.get("max_iterations") {
        stop.max_iterations = cx.count(k, v);
    }
    if let Some((k, v)) = f.get("timeout") {
        stop.timeout = cx.duration(k, v);
    }
    if let Some((k, v)) = f.get("idle_timeout") {
        stop.idle_timeout = cx.duration(k, v);
    }
    if let Some((k, v)) = f.get("deadline") {
        stop.deadline = cx.duration(k, v);
    }
    if let Some((k, v)) = f.get("budget_usd") {
        stop.budget_usd = cx.money(k, v);
    }
    if let Some((k, v)) = f.get("budget_tokens") {
        stop.budget_tokens = cx.count(k, v);
    }
    if let Some((k, v)) = f.get("stall") {
        stop.stall = cx.count(k, v);
    }
    f.finish(cx);
    Some(stop)
}
