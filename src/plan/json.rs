//! `plan --json`: the plan as pretty JSON on stdout, `format_version` first.

use super::Plan;

/// The plan as the text `plan --json` prints, ending in a newline.
pub fn to_json(plan: &Plan) -> String {
    let mut text = serde_json::to_string_pretty(plan).unwrap_or_default();
    text.push('\n');
    text
}
