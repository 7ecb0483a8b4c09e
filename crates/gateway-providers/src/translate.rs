//! Helpers shared by the adapters that translate OpenAI requests into another
//! protocol (Anthropic, Ollama, Gemini): deployment defaults, `extra_body`,
//! unsupported parameters and `drop_params`, `data:` URLs, header building
//! and the end-of-stream check.

use crate::error::{ErrorKind, ProviderError};
use crate::provider::ChunkStream;
use crate::registry::BuildError;
use futures_util::StreamExt;
use gateway_types::{ChatChunk, ChatRequest, JsonObject};
use http::{HeaderName, HeaderValue};
use serde_json::Value;

/// OpenAI parameters that exist only in OpenAI's API. Adapters for other
/// protocols list the ones they cannot translate in their own set; these are
/// the ones every translating adapter rejects (or drops).
pub const OPENAI_ONLY_PARAMS: &[&str] = &[
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "modalities",
    "audio",
    "prediction",
    "store",
    "reasoning_effort",
    "web_search_options",
    "verbosity",
    "service_tier",
    "functions",
    "function_call",
];

/// What to do with a parameter the upstream cannot take.
#[derive(Debug, Clone, Copy)]
pub struct ParamPolicy {
    /// The provider's name, for the error message.
    pub provider: &'static str,
    /// Drop the parameter silently instead of failing.
    pub drop_params: bool,
}

impl ParamPolicy {
    /// For a parameter the caller found set and cannot translate: `Ok` when
    /// it should be dropped, else the error naming it.
    pub fn unsupported(&self, name: &str) -> Result<(), ProviderError> {
        if self.drop_params {
            Ok(())
        } else {
            Err(ProviderError::new(
                ErrorKind::BadRequest,
                format!(
                    "{} does not support parameter `{name}`; set drop_params: true to drop it",
                    self.provider
                ),
            ))
        }
    }

    /// Removes from `request` every parameter in `unsupported` that is set
    /// (typed fields and `extra`), or fails with a [`ErrorKind::BadRequest`]
    /// naming the first one when `drop_params` is off. `n` counts as set only
    /// above 1; `false` and `null` count as unset.
    pub fn strip(
        &self,
        request: &mut ChatRequest,
        unsupported: &[&str],
    ) -> Result<(), ProviderError> {
        for &name in unsupported {
            let present = match name {
                "presence_penalty" => request.presence_penalty.is_some(),
                "frequency_penalty" => request.frequency_penalty.is_some(),
                "seed" => request.seed.is_some(),
                "n" => request.n.is_some_and(|n| n > 1),
                "response_format" => request.response_format.is_some(),
                "parallel_tool_calls" => request.parallel_tool_calls.is_some(),
                "user" => request.user.is_some(),
                _ => request
                    .extra
                    .get(name)
                    .is_some_and(|value| !matches!(value, Value::Null | Value::Bool(false))),
            };
            if !present {
                continue;
            }
            self.unsupported(name)?;
            match name {
                "presence_penalty" => request.presence_penalty = None,
                "frequency_penalty" => request.frequency_penalty = None,
                "seed" => request.seed = None,
                "n" => request.n = None,
                "response_format" => request.response_format = None,
                "parallel_tool_calls" => request.parallel_tool_calls = None,
                "user" => request.user = None,
                _ => {
                    request.extra.remove(name);
                }
            }
        }
        // Falsy OpenAI-only flags (`logprobs: false`) mean nothing; never send them.
        for name in OPENAI_ONLY_PARAMS {
            request.extra.remove(*name);
        }
        Ok(())
    }
}

/// The request with the deployment's defaults filled in where the request
/// leaves a field unset (`max_tokens`, `temperature`, ...).
pub fn apply_defaults(
    request: &ChatRequest,
    defaults: &JsonObject,
) -> Result<ChatRequest, ProviderError> {
    if defaults.is_empty() {
        return Ok(request.clone());
    }
    let mut value = serde_json::to_value(request).map_err(encode_error)?;
    if let Some(object) = value.as_object_mut() {
        for (key, default) in defaults {
            let unset = object.get(key).is_none_or(Value::is_null);
            if unset {
                object.insert(key.clone(), default.clone());
            }
        }
    }
    serde_json::from_value(value).map_err(|error| {
        ProviderError::new(
            ErrorKind::BadRequest,
            format!("the deployment's default parameters do not fit the request: {error}"),
        )
    })
}

/// Merges `extra_body` over an upstream JSON body, overriding its fields.
pub fn merge_extra_body(body: &mut Value, extra_body: &JsonObject) {
    if let Some(object) = body.as_object_mut() {
        for (key, value) in extra_body {
            object.insert(key.clone(), value.clone());
        }
    }
}

/// A `data:<media type>;base64,<data>` URL, split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataUrl<'a> {
    /// `image/png`, ...
    pub media_type: &'a str,
    /// The base64 payload, as written.
    pub data: &'a str,
}

/// Splits a base64 `data:` URL; `None` for any other URL.
pub fn parse_data_url(url: &str) -> Option<DataUrl<'_>> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some(DataUrl { media_type, data })
}

/// An error for a request the adapter cannot encode.
pub fn encode_error(error: serde_json::Error) -> ProviderError {
    ProviderError::new(
        ErrorKind::BadRequest,
        format!("cannot encode the upstream request: {error}"),
    )
}

/// A sensitive header carrying a credential. The error never contains the key.
pub fn secret_header(
    name: &'static str,
    value: &str,
) -> Result<(HeaderName, HeaderValue), BuildError> {
    let mut header_value = HeaderValue::try_from(value).map_err(|_| {
        BuildError::Invalid("api_key contains characters not allowed in a header".to_owned())
    })?;
    header_value.set_sensitive(true);
    Ok((HeaderName::from_static(name), header_value))
}

/// Checks that an endpoint is an http(s) URL and strips its trailing `/`.
pub fn normalize_base(api_base: &str) -> Result<String, BuildError> {
    let api_base = api_base.trim_end_matches('/').to_owned();
    if api_base.starts_with("http://") || api_base.starts_with("https://") {
        Ok(api_base)
    } else {
        Err(BuildError::Invalid(format!(
            "api_base `{api_base}` must start with http:// or https://"
        )))
    }
}

/// The error for an upstream stream that ended before its protocol's last
/// event: the connection was cut, and the answer must not look complete.
pub fn truncated_stream(provider: &str) -> ProviderError {
    ProviderError::new(
        ErrorKind::Connect,
        format!("{provider} stream ended before the upstream finished the answer"),
    )
}

/// A stateful translation of one upstream stream's events into chunks.
pub trait StreamTranslate: Send + 'static {
    /// One upstream event (a server-sent event, an NDJSON line).
    type Event: Send + 'static;

    /// The chunks one event becomes. An `Err` ends the stream.
    fn on_event(&mut self, event: Self::Event) -> Result<Vec<ChatChunk>, ProviderError>;

    /// Called when the upstream body ended cleanly: the last chunks, or an
    /// error when the protocol's final event never came.
    fn on_end(&mut self) -> Result<Vec<ChatChunk>, ProviderError>;

    /// True once the protocol's final event arrived; later events are ignored.
    fn is_done(&self) -> bool;
}

/// Drives a [`StreamTranslate`] over an event stream. Transport errors and
/// translation errors are terminal items; nothing follows them.
pub fn translate_stream<T, S>(events: S, translator: T) -> ChunkStream
where
    T: StreamTranslate,
    S: futures_core::Stream<Item = Result<T::Event, ProviderError>> + Send + 'static,
{
    struct State<T, S> {
        events: std::pin::Pin<Box<S>>,
        translator: T,
        ready: std::collections::VecDeque<ChatChunk>,
        ended: bool,
    }
    let state = State {
        events: Box::pin(events),
        translator,
        ready: std::collections::VecDeque::new(),
        ended: false,
    };
    Box::pin(futures_util::stream::unfold(
        Some(state),
        |state| async move {
            let mut state = state?;
            loop {
                if let Some(chunk) = state.ready.pop_front() {
                    return Some((Ok(chunk), Some(state)));
                }
                if state.ended {
                    return None;
                }
                let step = match state.events.next().await {
                    Some(Ok(event)) => {
                        if state.translator.is_done() {
                            continue;
                        }
                        state.translator.on_event(event)
                    }
                    Some(Err(error)) => Err(error),
                    None => {
                        state.ended = true;
                        state.translator.on_end()
                    }
                };
                match step {
                    Ok(chunks) => state.ready.extend(chunks),
                    Err(error) => return Some((Err(error), None)),
                }
            }
        },
    ))
}

/// Ids for tool calls of upstreams that send none (Ollama, Gemini):
/// `call_<n>`, with `n` counting up from a random start so that ids of one
/// conversation do not collide across turns.
#[derive(Debug, Clone)]
pub struct CallIds {
    next: u64,
}

impl CallIds {
    /// Ids counting from `start` (tests use a fixed start).
    pub fn starting_at(start: u64) -> Self {
        Self { next: start }
    }

    /// Ids counting from a random start.
    pub fn random() -> Self {
        Self::starting_at(fastrand::u64(..u64::MAX / 2))
    }

    /// The next id.
    pub fn next_id(&mut self) -> String {
        let id = format!("call_{}", self.next);
        self.next += 1;
        id
    }
}

/// What the gateway stamps on a response when the upstream does not say
/// it: the response id, the model name and the creation time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseMeta {
    /// `chatcmpl-...`.
    pub id: String,
    /// The upstream model, used when the answer names none.
    pub model: String,
    /// Unix seconds.
    pub created: i64,
}

impl ResponseMeta {
    /// The facts of an answer to one call: the id carries the gateway's
    /// request id (a random one without it), the model is the deployment's
    /// configured model with any wildcard match substituted.
    pub fn for_call(cx: &crate::provider::CallContext, configured_model: &str) -> Self {
        let id = if cx.request_id.is_empty() {
            format!("chatcmpl-{:016x}", fastrand::u64(..))
        } else {
            format!("chatcmpl-{}", cx.request_id)
        };
        Self {
            id,
            model: cx.upstream_model(configured_model).into_owned(),
            created: unix_now(),
        }
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_urls_are_split() {
        assert_eq!(
            parse_data_url("data:image/png;base64,AAAA"),
            Some(DataUrl {
                media_type: "image/png",
                data: "AAAA"
            })
        );
        assert_eq!(parse_data_url("https://x/y.png"), None);
        assert_eq!(parse_data_url("data:text/plain,hello"), None);
    }

    #[test]
    fn unsupported_parameter_fails_with_its_name_or_is_dropped() {
        let mut request: ChatRequest = serde_json::from_value(json!({
            "model": "m", "messages": [], "logit_bias": {"1": 2}, "n": 1, "logprobs": false
        }))
        .unwrap_or_default();
        let strict = ParamPolicy {
            provider: "anthropic",
            drop_params: false,
        };
        let error = strict.strip(&mut request.clone(), &["n", "logprobs", "logit_bias"]);
        assert_eq!(
            error.map_err(|error| error.message),
            Err("anthropic does not support parameter `logit_bias`; set drop_params: true to drop it".to_owned())
        );
        let lenient = ParamPolicy {
            provider: "anthropic",
            drop_params: true,
        };
        assert!(lenient
            .strip(&mut request, &["n", "logprobs", "logit_bias"])
            .is_ok());
        assert!(request.extra.is_empty());
        assert_eq!(request.n, Some(1));
    }

    #[test]
    fn defaults_fill_only_unset_fields() {
        let request: ChatRequest =
            serde_json::from_value(json!({"model": "m", "messages": [], "temperature": 0.5}))
                .unwrap_or_default();
        let defaults: JsonObject =
            serde_json::from_value(json!({"temperature": 1.0, "max_tokens": 100}))
                .unwrap_or_default();
        let Ok(merged) = apply_defaults(&request, &defaults) else {
            panic!("defaults failed")
        };
        assert_eq!(merged.temperature, Some(0.5));
        assert_eq!(merged.max_tokens, Some(100));
    }
}
