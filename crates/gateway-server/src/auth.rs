//! The gateway key: which credential a client presented, and whether it is
//! the master key.

use crate::budget::{self, Budgets, Identity};
use crate::errors::ApiError;
use gateway_budget::KeyHash;
use gateway_types::Secret;
use http::{HeaderMap, StatusCode};
use subtle::ConstantTimeEq;

/// The key a client presented: `Authorization: Bearer`, else `x-api-key`,
/// else `api-key`. A malformed `Authorization` header is an error, not a
/// missing key.
pub(crate) fn presented_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let text = value.to_str().map_err(|_| malformed())?.trim();
        let key = match text.split_once(' ') {
            Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") => key.trim(),
            _ => return Err(malformed()),
        };
        if key.is_empty() {
            return Err(malformed());
        }
        return Ok(Some(key));
    }
    for name in ["x-api-key", "api-key"] {
        if let Some(value) = headers.get(name) {
            let key = value.to_str().map_err(|_| malformed())?.trim();
            if !key.is_empty() {
                return Ok(Some(key));
            }
        }
    }
    Ok(None)
}

fn malformed() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "auth_error",
        "Authentication Error, Malformed API Key passed in. Ensure Key has `Bearer ` prefix.",
    )
}

/// Checks the client's key against the master key, in constant time. With no
/// master key configured, every request is allowed. (The server uses
/// [`identify`]; this is the master-key-only check its tests pin down.)
#[cfg(test)]
pub(crate) fn authorize(headers: &HeaderMap, master_key: Option<&Secret>) -> Result<(), ApiError> {
    let Some(master_key) = master_key else {
        return Ok(());
    };
    let Some(key) = presented_key(headers)? else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "auth_error",
            "Authentication Error, No api key passed in. Send `Authorization: Bearer <key>`.",
        ));
    };
    if bool::from(key.as_bytes().ct_eq(master_key.expose().as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "token_not_found_in_db",
            format!(
                "Authentication Error, Invalid proxy server token passed. Received API Key = {}",
                redact(key)
            ),
        ))
    }
}

/// Who is calling: the master key (compared in constant time), a virtual
/// key (looked up in memory by its hash), or nobody in particular when no
/// master key and no keys are configured (auth is off).
pub(crate) fn identify(
    headers: &HeaderMap,
    master_key: Option<&Secret>,
    budgets: &Budgets,
) -> Result<Identity, ApiError> {
    if master_key.is_none() && !budgets.has_keys() {
        return Ok(Identity::Open);
    }
    let Some(key) = presented_key(headers)? else {
        return Err(no_key());
    };
    if let Some(master_key) = master_key {
        if bool::from(key.as_bytes().ct_eq(master_key.expose().as_bytes())) {
            return Ok(Identity::Master);
        }
    }
    let hash = KeyHash::of_key(key);
    budgets
        .engine
        .authenticate(&hash, budget::now())
        .map(Identity::Key)
        .map_err(|denied| ApiError::from_denied(&denied, &redact(key)))
}

/// Like [`identify`], but only admins pass: the master key, a key whose
/// role is `proxy_admin`, or anyone when auth is off.
pub(crate) fn identify_admin(
    headers: &HeaderMap,
    master_key: Option<&Secret>,
    budgets: &Budgets,
) -> Result<Identity, ApiError> {
    let identity = identify(headers, master_key, budgets)?;
    match &identity {
        Identity::Master | Identity::Open => Ok(identity),
        Identity::Key(key) if budget::is_admin_key(budgets, key) => Ok(identity),
        Identity::Key(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "auth_error",
            "Only the master key or a proxy_admin key can call this route.",
        )),
    }
}

fn no_key() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "auth_error",
        "Authentication Error, No api key passed in. Send `Authorization: Bearer <key>`.",
    )
}

/// `sk-...abcd`: enough to recognise a key, never enough to use it.
pub(crate) fn redact(key: &str) -> String {
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if key.chars().count() <= 8 {
        "***".to_owned()
    } else {
        format!("sk-...{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn keys_are_read_from_every_supported_header() {
        assert_eq!(
            presented_key(&headers(&[("authorization", "Bearer sk-1")])),
            Ok(Some("sk-1"))
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "bearer  sk-1 ")])),
            Ok(Some("sk-1"))
        );
        assert_eq!(
            presented_key(&headers(&[("x-api-key", "sk-2")])),
            Ok(Some("sk-2"))
        );
        assert_eq!(
            presented_key(&headers(&[("api-key", "sk-3")])),
            Ok(Some("sk-3"))
        );
        assert_eq!(presented_key(&headers(&[])), Ok(None));
        assert!(presented_key(&headers(&[("authorization", "Basic abc")])).is_err());
        assert!(presented_key(&headers(&[("authorization", "sk-no-scheme")])).is_err());
    }

    #[test]
    fn master_key_is_required_only_when_configured() {
        let master = Secret::new("sk-master-key-123");
        assert!(authorize(&headers(&[]), None).is_ok());
        assert_eq!(
            authorize(&headers(&[]), Some(&master)).map_err(|e| e.kind),
            Err("auth_error")
        );
        assert_eq!(
            authorize(
                &headers(&[("authorization", "Bearer sk-wrong-key-999")]),
                Some(&master)
            )
            .map_err(|e| e.kind),
            Err("token_not_found_in_db")
        );
        assert!(authorize(
            &headers(&[("x-api-key", "sk-master-key-123")]),
            Some(&master)
        )
        .is_ok());
    }

    #[test]
    fn redacted_keys_show_only_the_last_four() {
        assert_eq!(redact("sk-abcdefghijklmnop"), "sk-...mnop");
        assert_eq!(redact("short"), "***");
    }
}
