//! Gateway keys: generation, hashing and display names.
//!
//! A key is `sk-` followed by URL-safe random characters. Only its SHA-256
//! (lowercase hex, as LiteLLM's `hash_token`) is stored, plus a display name
//! `sk-...` + the last four characters.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use gateway_types::Secret;

use crate::error::BudgetError;

/// Random bytes in a generated key: 32 bytes give 43 base64url characters.
const KEY_RANDOM_BYTES: usize = 32;

/// The lowercase hex SHA-256 of a whole key (`sk-...`): the key's identity in
/// storage and the `token` column.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyHash(Arc<str>);

/// Hashes the first 16 hex digits only. They are digits of a SHA-256, as
/// evenly spread as all 64, and a keyed request looks its key up in the
/// budget engine's maps several times: hashing 64 bytes each time was
/// ~500 instructions a request. Equal values still hash equally. (So
/// `KeyHash` must not implement `Borrow<str>`: a map lookup by `&str` would
/// hash all 64 digits and miss.)
impl Hash for KeyHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let bytes = self.0.as_bytes();
        state.write(&bytes[..bytes.len().min(16)]);
    }
}

/// A newly generated key: the only moment the plaintext exists.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The plaintext key, returned once to the caller.
    pub key: Secret,
    /// Its hash, the stored identity.
    pub hash: KeyHash,
    /// The display name `sk-...XXXX`.
    pub key_name: String,
}

impl KeyHash {
    /// Hashes a plaintext key.
    pub fn of_key(key: &str) -> KeyHash {
        KeyHash(hex(&Sha256::digest(key.as_bytes())))
    }

    /// Parses a stored hash: 64 hex characters, normalised to lowercase.
    pub fn from_hex(text: &str) -> Result<KeyHash, BudgetError> {
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(KeyHash(text.to_ascii_lowercase().into()))
        } else {
            Err(BudgetError::InvalidKeyReference)
        }
    }

    /// What management APIs accept: a plaintext `sk-` key (hashed here) or a
    /// 64-hex hash.
    pub fn from_key_or_hash(text: &str) -> Result<KeyHash, BudgetError> {
        if text.starts_with("sk-") {
            validate_key_format(text)?;
            Ok(KeyHash::of_key(text))
        } else {
            KeyHash::from_hex(text)
        }
    }

    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex string, shared: a reference count, no copy.
    pub fn shared(&self) -> Arc<str> {
        Arc::clone(&self.0)
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({})", &self.0)
    }
}

impl fmt::Display for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for KeyHash {
    type Error = BudgetError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        KeyHash::from_hex(&value)
    }
}

impl From<KeyHash> for String {
    fn from(value: KeyHash) -> Self {
        value.0.to_string()
    }
}

/// Generates a new key from the operating system CSPRNG.
pub fn generate_key() -> Result<GeneratedKey, BudgetError> {
    let mut bytes = [0u8; KEY_RANDOM_BYTES];
    getrandom::getrandom(&mut bytes).map_err(|_| BudgetError::Random)?;
    let key = format!("sk-{}", base64url(&bytes));
    Ok(key_from_plaintext(key))
}

/// Accepts a custom key given by an admin (`key` in `/key/generate`).
pub fn custom_key(key: &str) -> Result<GeneratedKey, BudgetError> {
    validate_key_format(key)?;
    Ok(key_from_plaintext(key.to_owned()))
}

/// The display name LiteLLM stores in `key_name`: `sk-...` + the last four
/// characters.
pub fn key_name(key: &str) -> String {
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("sk-...{tail}")
}

/// Checks `^sk-[A-Za-z0-9_-]+$`, at most 100 characters.
pub fn validate_key_format(key: &str) -> Result<(), BudgetError> {
    let rest = key
        .strip_prefix("sk-")
        .ok_or(BudgetError::InvalidKeyFormat)?;
    let valid = !rest.is_empty()
        && key.len() <= 100
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(BudgetError::InvalidKeyFormat)
    }
}

fn key_from_plaintext(key: String) -> GeneratedKey {
    GeneratedKey {
        hash: KeyHash::of_key(&key),
        key_name: key_name(&key),
        key: Secret::new(key),
    }
}

/// Lowercase hex of a digest, written on the stack and allocated once.
fn hex(digest: &[u8]) -> Arc<str> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (pair, byte) in out.chunks_exact_mut(2).zip(digest) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
    let used = digest.len().min(32) * 2;
    // Hex digits are ASCII, so the check passes (on its ASCII fast path).
    std::str::from_utf8(&out[..used]).map_or_else(|_| Arc::from(""), Arc::from)
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 3);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_litellm_hash_token() {
        // hashlib.sha256(b"sk-1234").hexdigest(), checked with sha256sum.
        assert_eq!(
            KeyHash::of_key("sk-1234").as_str(),
            "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b"
        );
    }

    #[test]
    fn generated_keys_are_long_url_safe_and_distinct() {
        let first = generate_key().map_err(|e| e.to_string());
        let second = generate_key().map_err(|e| e.to_string());
        let (Ok(first), Ok(second)) = (first, second) else {
            panic!("key generation failed");
        };
        let text = first.key.expose();
        assert!(text.starts_with("sk-"));
        assert!(text.len() >= 3 + 32);
        assert!(validate_key_format(text).is_ok());
        assert_ne!(first.hash, second.hash);
        assert_eq!(first.hash, KeyHash::of_key(text));
        assert_eq!(first.key_name, format!("sk-...{}", &text[text.len() - 4..]));
    }

    #[test]
    fn management_references_accept_key_or_hash() {
        let hash = KeyHash::of_key("sk-abc");
        assert_eq!(KeyHash::from_key_or_hash("sk-abc").ok(), Some(hash.clone()));
        let upper = hash.as_str().to_ascii_uppercase();
        assert_eq!(KeyHash::from_key_or_hash(&upper).ok(), Some(hash));
        assert!(KeyHash::from_key_or_hash("abc").is_err());
        assert!(custom_key("pk-abc").is_err());
        assert!(custom_key("sk-a b").is_err());
    }

    #[test]
    fn base64url_has_no_padding() {
        assert_eq!(base64url(b"\xff\xff\xff"), "____");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
    }
}
