//! Owns the digests fingerprints are made of: SHA-256 in lowercase hex,
//! whole or cut to 16 digits for the parts of a fingerprint.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// `bytes` in lowercase hex. Digit by digit: `write!` per byte was a
/// twentieth of planning 100,000 instances (docs/performance.md, issue 18).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// 16 hex digits of the SHA-256 of `text`.
pub(crate) fn short(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes())[..8])
}

/// [`short`] of a value's JSON, hashed as it is written.
pub(crate) fn short_json(v: &impl Serialize) -> String {
    let mut hasher = Sha256::new();
    match serde_json::to_writer(&mut hasher, v) {
        Ok(()) => hex(&hasher.finalize()[..8]),
        // What has no JSON is hashed as nothing, as it always was.
        Err(_) => short(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_lowercase_hex() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(short("").len(), 16);
        assert_eq!(short(""), "e3b0c44298fc1c14");
        let value = serde_json::json!({"b": [1, "two"], "a": null});
        assert_eq!(short_json(&value), short(&value.to_string()));
    }
}
