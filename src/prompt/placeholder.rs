//! A stand-in for values that exist only at run time (an upstream node's JSON
//! answer), so that `plan` can render prompts strictly without reporting
//! `needs.plan.json.tasks` as undefined. Any attribute of it is another
//! placeholder; iterating it yields nothing; it prints as `<json of NODE>`.

use std::sync::Arc;

use minijinja::value::{Enumerator, Object, Value};

#[derive(Debug)]
pub(crate) struct Placeholder {
    pub label: String,
}

impl Placeholder {
    pub(crate) fn value(label: impl Into<String>) -> Value {
        Value::from_object(Self {
            label: label.into(),
        })
    }
}

impl Object for Placeholder {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(Self::value(
            format!("{}.{key}", self.label.trim_end_matches('>')) + ">",
        ))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Empty
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result
    where
        Self: Sized + 'static,
    {
        f.write_str(&self.label)
    }
}
