//! Reading client requests: JSON with field paths in errors, and the
//! gateway's own control fields taken out before anything goes upstream.

use crate::errors::ApiError;
use gateway_router::RequestOptions;
use gateway_types::{ChatRequest, JsonObject, ModelName};
use http::{HeaderMap, HeaderName};
use serde_json::Value;
use std::time::Duration;

/// Parses a JSON body into `T`; errors name the field (`param`) at fault.
///
/// The happy path parses plainly; only a body that fails is parsed again
/// with path tracking to name the field (tracking costs every request
/// ≈ 1.1 µs, measured in `benches/micro/request_parse.rs`).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Ok(value),
        Err(_) => parse_json_with_path(bytes),
    }
}

/// [`parse_json`] for a chat request: parsed by [`ChatRequest::from_json`],
/// which keeps the `messages` text to send upstream unchanged; on an error,
/// parsed again for the field at fault.
pub(crate) fn parse_chat_request(bytes: &[u8]) -> Result<ChatRequest, ApiError> {
    match ChatRequest::from_json(bytes) {
        Ok(chat) => Ok(chat),
        Err(_) => parse_json_with_path(bytes),
    }
}

/// The slow path of [`parse_json`]: the same parse, tracking the path of
/// the field at fault for the error.
fn parse_json_with_path<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut deserializer);
    let value = result.map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::invalid_request(format!(
                "the request body is not valid JSON: {inner}"
            ));
        }
        let message = inner.to_string();
        let param = if path == "." {
            // Missing fields are reported at the parent: take the name from the message.
            message.split('`').nth(1).map(str::to_owned)
        } else {
            Some(path)
        };
        let error = ApiError::invalid_request(match &param {
            Some(param) => format!("invalid request field `{param}`: {message}"),
            None => format!("invalid request body: {message}"),
        });
        match param {
            Some(param) => error.with_param(param),
            None => error,
        }
    })?;
    deserializer.end().map_err(|error| {
        ApiError::invalid_request(format!("the request body is not valid JSON: {error}"))
    })?;
    Ok(value)
}

/// Fields LiteLLM clients send for the gateway itself; never forwarded.
const CONTROL_FIELDS: &[&str] = &[
    "metadata",
    "tags",
    "fallbacks",
    "num_retries",
    "timeout",
    "stream_timeout",
    "disable_fallbacks",
    "mock_response",
    "mock_testing_fallbacks",
    "cache",
    "caching",
    "priority",
    "litellm_call_id",
    "litellm_session_id",
    "proxy_server_request",
];

/// Takes the gateway's control fields out of a request's unknown fields (and
/// the matching `x-litellm-*` headers) into routing options.
pub(crate) fn take_options(
    extra: &mut JsonObject,
    headers: &HeaderMap,
    request_id: &str,
) -> Result<RequestOptions, ApiError> {
    let mut taken = JsonObject::new();
    for field in CONTROL_FIELDS {
        if let Some(value) = extra.remove(*field) {
            taken.insert((*field).to_owned(), value);
        }
    }
    let mut options = RequestOptions::default();
    options.call.request_id = request_id.to_owned();

    let mut tags: Vec<String> = Vec::new();
    if let Some(metadata) = taken.get("metadata") {
        if !metadata.is_object() && !metadata.is_null() {
            return Err(
                ApiError::invalid_request("`metadata` must be an object").with_param("metadata")
            );
        }
        if let Some(metadata_tags) = metadata.get("tags") {
            tags.extend(string_list(metadata_tags, "metadata.tags")?);
        }
    }
    if let Some(body_tags) = taken.get("tags") {
        tags.extend(string_list(body_tags, "tags")?);
    }
    if let Some(header) = header_text(headers, &TAGS_HEADER) {
        tags.extend(
            header
                .split(',')
                .map(str::trim)
                .filter(|tag| !tag.is_empty())
                .map(str::to_owned),
        );
    }
    options.tags = tags;

    if let Some(fallbacks) = taken.get("fallbacks") {
        let names = match fallbacks {
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::String(name) => Ok(ModelName::new(name.as_str())),
                    // {"model": "name", ...} entries, as LiteLLM accepts.
                    Value::Object(object) => object
                        .get("model")
                        .and_then(Value::as_str)
                        .map(ModelName::new)
                        .ok_or_else(|| {
                            ApiError::invalid_request("`fallbacks` entries must be model names")
                                .with_param("fallbacks")
                        }),
                    _ => Err(
                        ApiError::invalid_request("`fallbacks` entries must be model names")
                            .with_param("fallbacks"),
                    ),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => {
                return Err(
                    ApiError::invalid_request("`fallbacks` must be a list of model names")
                        .with_param("fallbacks"),
                )
            }
        };
        options.fallbacks = Some(names);
    }
    options.disable_fallbacks = match taken.get("disable_fallbacks") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(_) => {
            return Err(
                ApiError::invalid_request("`disable_fallbacks` must be a boolean")
                    .with_param("disable_fallbacks"),
            )
        }
    };
    options.num_retries = match taken.get("num_retries") {
        None | Some(Value::Null) => {
            header_text(headers, &NUM_RETRIES_HEADER).and_then(|text| text.trim().parse().ok())
        }
        Some(value) => Some(
            value
                .as_u64()
                .and_then(|retries| u32::try_from(retries).ok())
                .ok_or_else(|| {
                    ApiError::invalid_request("`num_retries` must be a whole number")
                        .with_param("num_retries")
                })?,
        ),
    };
    options.timeout = match taken.get("timeout") {
        None | Some(Value::Null) => header_text(headers, &TIMEOUT_HEADER)
            .and_then(|text| seconds(&Value::String(text.to_owned()))),
        Some(value) => Some(seconds(value).ok_or_else(|| {
            ApiError::invalid_request("`timeout` must be a positive number of seconds")
                .with_param("timeout")
        })?),
    };
    options.call.mock_response = match taken.get("mock_response") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => {
            return Err(
                ApiError::invalid_request("`mock_response` must be a string")
                    .with_param("mock_response"),
            )
        }
    };
    Ok(options)
}

fn string_list(value: &Value, param: &str) -> Result<Vec<String>, ApiError> {
    let error = || {
        ApiError::invalid_request(format!("`{param}` must be a list of strings")).with_param(param)
    };
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(error))
            .collect(),
        _ => Err(error()),
    }
}

fn seconds(value: &Value) -> Option<Duration> {
    let seconds = match value {
        Value::Number(number) => number.as_f64()?,
        Value::String(text) => text.trim().parse().ok()?,
        _ => return None,
    };
    (seconds.is_finite() && seconds > 0.0).then(|| Duration::from_secs_f64(seconds.min(86_400.0)))
}

// Names made once: a `&str` name is parsed and checked again on every lookup.
const TAGS_HEADER: HeaderName = HeaderName::from_static("x-litellm-tags");
const NUM_RETRIES_HEADER: HeaderName = HeaderName::from_static("x-litellm-num-retries");
const TIMEOUT_HEADER: HeaderName = HeaderName::from_static("x-litellm-timeout");

fn header_text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn param_of(body: &str) -> Option<String> {
        match parse_chat_request(body.as_bytes()) {
            Ok(_) => panic!("expected an error for {body}"),
            Err(error) => {
                assert_eq!(error.status, http::StatusCode::BAD_REQUEST);
                error.param
            }
        }
    }

    #[test]
    fn parse_errors_name_the_field() {
        assert_eq!(param_of(r#"{"messages": []}"#).as_deref(), Some("model"));
        assert_eq!(param_of(r#"{"model": "m"}"#).as_deref(), Some("messages"));
        assert_eq!(
            param_of(r#"{"model": 5, "messages": []}"#).as_deref(),
            Some("model")
        );
        assert_eq!(
            param_of(r#"{"model": "m", "messages": [{"role": "robot", "content": "x"}]}"#)
                .as_deref(),
            Some("messages[0].role")
        );
        assert_eq!(
            param_of(r#"{"model": "m", "messages": [], "temperature": "hot"}"#).as_deref(),
            Some("temperature")
        );
        assert_eq!(param_of(r#"{"model": "m", "messages": [] "#), None);
        assert_eq!(param_of("[1]"), None);
        assert_eq!(param_of(r#"{"model": "m", "messages": []} trailing"#), None);
    }

    #[test]
    fn control_fields_are_taken_out_and_read() {
        let mut extra = match json!({
            "metadata": {"tags": ["a"], "trace": "x"},
            "tags": ["b"],
            "fallbacks": ["backup", {"model": "other"}],
            "num_retries": 4,
            "timeout": 2.5,
            "mock_response": "hi",
            "logit_bias": {"1": 2}
        }) {
            Value::Object(object) => object,
            _ => panic!("object"),
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-litellm-tags", http::HeaderValue::from_static("c, d"));
        let options = match take_options(&mut extra, &headers, "req-1") {
            Ok(options) => options,
            Err(error) => panic!("{error:?}"),
        };
        assert_eq!(options.tags, vec!["a", "b", "c", "d"]);
        assert_eq!(
            options.fallbacks,
            Some(vec![ModelName::new("backup"), ModelName::new("other")])
        );
        assert_eq!(options.num_retries, Some(4));
        assert_eq!(options.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(options.call.mock_response.as_deref(), Some("hi"));
        assert_eq!(options.call.request_id, "req-1");
        assert_eq!(extra.keys().collect::<Vec<_>>(), vec!["logit_bias"]);
    }

    #[test]
    fn mistyped_control_fields_are_400s_naming_the_field() {
        for (field, value) in [
            ("fallbacks", json!("x")),
            ("num_retries", json!(-1)),
            ("timeout", json!("soon")),
            ("tags", json!([1])),
            ("disable_fallbacks", json!("yes")),
        ] {
            let mut extra = JsonObject::new();
            extra.insert(field.to_owned(), value);
            let param = take_options(&mut extra, &HeaderMap::new(), "r")
                .err()
                .and_then(|error| error.param);
            assert_eq!(param.as_deref(), Some(field));
        }
    }
}
