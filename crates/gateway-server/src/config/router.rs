//! The routing keys of `router_settings` (and their `litellm_settings`
//! aliases), read into typed values with path-named errors.

use super::{invalid, take, take_seconds, ConfigError};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Retries, fallbacks and cooldowns as configured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoutingConfig {
    /// `fallbacks`: group (or `*`) to the groups tried after it fails.
    pub fallbacks: Vec<(String, Vec<String>)>,
    /// `context_window_fallbacks`.
    pub context_window_fallbacks: Vec<(String, Vec<String>)>,
    /// `content_policy_fallbacks`.
    pub content_policy_fallbacks: Vec<(String, Vec<String>)>,
    /// `default_fallbacks`: tried for any group without its own.
    pub default_fallbacks: Vec<String>,
    /// `max_fallbacks` (LiteLLM's default is 5).
    pub max_fallbacks: Option<u32>,
    /// `allowed_fails` within a minute before a cooldown.
    pub allowed_fails: Option<u32>,
    /// `cooldown_time`.
    pub cooldown_time: Option<Duration>,
    /// `disable_cooldowns`.
    pub disable_cooldowns: bool,
    /// `retry_after`: the minimum wait between retries.
    pub retry_after: Option<Duration>,
    /// `retry_policy`: retries per error class.
    pub retry_policy: RetryPolicyConfig,
    /// `enable_pre_call_checks`.
    pub enable_pre_call_checks: bool,
    /// `enable_tag_filtering`.
    pub enable_tag_filtering: bool,
}

/// `retry_policy`, with LiteLLM's key names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryPolicyConfig {
    /// `BadRequestErrorRetries`.
    pub bad_request: Option<u32>,
    /// `AuthenticationErrorRetries`.
    pub authentication: Option<u32>,
    /// `TimeoutErrorRetries`.
    pub timeout: Option<u32>,
    /// `RateLimitErrorRetries`.
    pub rate_limit: Option<u32>,
    /// `ContentPolicyViolationErrorRetries`.
    pub content_policy_violation: Option<u32>,
    /// `InternalServerErrorRetries`.
    pub internal_server_error: Option<u32>,
}

/// Takes the routing keys out of `map` (the merged router settings).
pub(super) fn routing_config(
    map: &mut BTreeMap<String, Value>,
) -> Result<RoutingConfig, ConfigError> {
    let section = "router_settings";
    let mut routing = RoutingConfig {
        fallbacks: fallback_rules(map, "fallbacks")?,
        context_window_fallbacks: fallback_rules(map, "context_window_fallbacks")?,
        content_policy_fallbacks: fallback_rules(map, "content_policy_fallbacks")?,
        default_fallbacks: take::<Vec<String>>(map, section, "default_fallbacks")?
            .unwrap_or_default(),
        max_fallbacks: take(map, section, "max_fallbacks")?,
        allowed_fails: take(map, section, "allowed_fails")?,
        cooldown_time: take_seconds(map, section, "cooldown_time")?,
        disable_cooldowns: take(map, section, "disable_cooldowns")?.unwrap_or(false),
        retry_after: take_seconds(map, section, "retry_after")?,
        retry_policy: RetryPolicyConfig::default(),
        enable_pre_call_checks: take(map, section, "enable_pre_call_checks")?.unwrap_or(false),
        enable_tag_filtering: take(map, section, "enable_tag_filtering")?.unwrap_or(false),
    };
    if let Some(policy) = map.remove("retry_policy") {
        routing.retry_policy = retry_policy(policy)?;
    }
    Ok(routing)
}

/// `[{"group": ["fb1", "fb2"]}, ...]`, or the same as one mapping.
fn fallback_rules(
    map: &mut BTreeMap<String, Value>,
    key: &str,
) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
    let path = format!("router_settings.{key}");
    let shape = || {
        "must be a list of {group: [fallback groups]} mappings, e.g. [{\"gpt-4o\": [\"local\"]}]"
            .to_owned()
    };
    let entries: Vec<Value> = match map.remove(key) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(object @ Value::Object(_)) => vec![object],
        Some(_) => return Err(invalid(path, shape())),
    };
    let mut rules = Vec::new();
    for (index, entry) in entries.into_iter().enumerate() {
        let Value::Object(object) = entry else {
            return Err(invalid(format!("{path}[{index}]"), shape()));
        };
        for (group, targets) in object {
            let targets = match targets {
                Value::String(one) => vec![one],
                Value::Array(items) => items
                    .into_iter()
                    .map(|item| match item {
                        Value::String(name) => Ok(name),
                        _ => Err(invalid(
                            format!("{path}[{index}].{group}"),
                            "fallback groups must be model names",
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                _ => return Err(invalid(format!("{path}[{index}].{group}"), shape())),
            };
            rules.push((group, targets));
        }
    }
    Ok(rules)
}

fn retry_policy(value: Value) -> Result<RetryPolicyConfig, ConfigError> {
    let path = "router_settings.retry_policy";
    let Value::Object(object) = value else {
        return Err(invalid(
            path,
            "must be a mapping such as {RateLimitErrorRetries: 3}",
        ));
    };
    let mut policy = RetryPolicyConfig::default();
    for (key, value) in object {
        let count = value
            .as_u64()
            .and_then(|count| u32::try_from(count).ok())
            .ok_or_else(|| invalid(format!("{path}.{key}"), "must be a whole number of retries"))?;
        let slot = match key.as_str() {
            "BadRequestErrorRetries" => &mut policy.bad_request,
            "AuthenticationErrorRetries" => &mut policy.authentication,
            "TimeoutErrorRetries" => &mut policy.timeout,
            "RateLimitErrorRetries" => &mut policy.rate_limit,
            "ContentPolicyViolationErrorRetries" => &mut policy.content_policy_violation,
            "InternalServerErrorRetries" => &mut policy.internal_server_error,
            _ => {
                return Err(invalid(
                    format!("{path}.{key}"),
                    "unknown error class; use BadRequestErrorRetries, AuthenticationErrorRetries, TimeoutErrorRetries, RateLimitErrorRetries, ContentPolicyViolationErrorRetries or InternalServerErrorRetries",
                ))
            }
        };
        *slot = Some(count);
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<RoutingConfig, ConfigError> {
        let Value::Object(object) = value else {
            panic!("object")
        };
        let mut map: BTreeMap<String, Value> = object.into_iter().collect();
        routing_config(&mut map)
    }

    #[test]
    fn litellm_fallback_shapes_are_read() {
        let routing = parse(json!({
            "fallbacks": [{"gpt-4o": ["local", "backup"]}, {"*": "last-resort"}],
            "context_window_fallbacks": {"small": ["large"]},
            "default_fallbacks": ["safe"],
            "retry_policy": {"RateLimitErrorRetries": 4, "TimeoutErrorRetries": 0},
            "cooldown_time": 30, "allowed_fails": 2, "retry_after": 0.5,
            "enable_pre_call_checks": true
        }));
        let Ok(routing) = routing else {
            panic!("{routing:?}")
        };
        assert_eq!(
            routing.fallbacks,
            vec![
                (
                    "gpt-4o".to_owned(),
                    vec!["local".to_owned(), "backup".to_owned()]
                ),
                ("*".to_owned(), vec!["last-resort".to_owned()])
            ]
        );
        assert_eq!(
            routing.context_window_fallbacks,
            vec![("small".to_owned(), vec!["large".to_owned()])]
        );
        assert_eq!(routing.default_fallbacks, vec!["safe"]);
        assert_eq!(routing.retry_policy.rate_limit, Some(4));
        assert_eq!(routing.retry_policy.timeout, Some(0));
        assert_eq!(routing.cooldown_time, Some(Duration::from_secs(30)));
        assert_eq!(routing.retry_after, Some(Duration::from_millis(500)));
        assert!(routing.enable_pre_call_checks);
    }

    #[test]
    fn malformed_routing_keys_name_their_path() {
        let cases = [
            (json!({"fallbacks": "local"}), "router_settings.fallbacks"),
            (
                json!({"fallbacks": [{"a": [1]}]}),
                "router_settings.fallbacks[0].a",
            ),
            (
                json!({"retry_policy": {"NopeRetries": 1}}),
                "router_settings.retry_policy.NopeRetries",
            ),
            (
                json!({"retry_policy": {"RateLimitErrorRetries": -1}}),
                "router_settings.retry_policy.RateLimitErrorRetries",
            ),
            (
                json!({"cooldown_time": "long"}),
                "router_settings.cooldown_time",
            ),
        ];
        for (value, path) in cases {
            let message = parse(value)
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default();
            assert!(message.starts_with(path), "expected {path}, got {message}");
        }
    }
}
