//! Owns the digests fingerprints are made of: SHA-256 in lowercase hex,
//! whole or cut to 16 digits for the parts of a fingerprint.

use std::fmt::Write as _;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// `bytes` in lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            // Writing to a String cannot fail.
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// 16 hex digits of the SHA-256 of `text`.
pub(crate) fn short(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes())[..8])
}

/// [`short`] of a value's JSON.
pub(crate) fn short_json(v: &impl Serialize) -> String {
    short(&serde_json::to_string(v).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_lowercase_hex() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(short("").len(), 16);
        assert_eq!(short(""), "e3b0c44298fc1c14");
    }
}
