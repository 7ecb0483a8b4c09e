//! Watching a request: exactly one log line per request, and the request
//! metrics, emitted when the request is really over (for a stream: when its
//! body ends or the client goes away).
//!
//! Never logged: credentials (headers are not logged; error messages are
//! scrubbed of every configured key) and message contents (request bodies
//! only with `general_settings.log_request_bodies` or `--log-bodies`, and
//! then with key-like fields redacted).

use crate::access_log::{AccessLog, Line};
use crate::budget::{Admission, Finished};
use crate::gateway::Runtime;
use crate::metrics::{DeploymentLabels, InFlight, RequestSample, TokenCounts};
use gateway_budget::TokenUsage;
use gateway_types::{NanoUsd, Usage};
use http::Method;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything known about a request when its response head is ready.
#[derive(Debug)]
pub(crate) struct Observation {
    pub(crate) runtime: Arc<Runtime>,
    /// Set when the line is written by hand rather than through `tracing`.
    pub(crate) access_log: Option<AccessLog>,
    pub(crate) request_id: String,
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) started: Instant,
    /// A model endpoint (chat, embeddings): counted in the request metrics.
    pub(crate) model_route: bool,
    pub(crate) labels: DeploymentLabels,
    pub(crate) status: u16,
    pub(crate) failure: Option<&'static str>,
    /// The failure's message, for server-side failures only (client input
    /// errors may quote the client's content).
    pub(crate) error: Option<String>,
    pub(crate) attempts: u32,
    pub(crate) retries: u32,
    pub(crate) fallbacks: u32,
    pub(crate) upstream: Option<Duration>,
    pub(crate) overhead: Option<Duration>,
    pub(crate) tokens: Option<TokenCounts>,
    /// Virtual key alias and team alias (shared with the key's scope, not
    /// copied); none for the master key.
    pub(crate) key_alias: Option<Arc<str>>,
    pub(crate) team: Option<Arc<str>>,
    /// This request's cost.
    pub(crate) cost: NanoUsd,
    /// A stream's admission, settled when the stream ends.
    pub(crate) admission: Option<Admission>,
    /// The redacted request body, when body logging is on.
    pub(crate) request_body: Option<String>,
    pub(crate) in_flight: Option<InFlight>,
}

/// What a stream did after its response head was sent.
#[derive(Debug, Default)]
pub(crate) struct StreamStats {
    pub(crate) first_chunk: Option<Instant>,
    pub(crate) tokens: Option<TokenCounts>,
    /// Characters of content streamed, priced when no usage arrived.
    pub(crate) streamed_chars: usize,
    pub(crate) end: StreamEnd,
}

/// How a stream ended.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) enum StreamEnd {
    /// The body was dropped before its end: the client went away.
    #[default]
    ClientGone,
    /// `[DONE]` was sent.
    Completed,
    /// The upstream failed mid-stream; an error event was sent.
    Failed { kind: &'static str, message: String },
}

impl StreamEnd {
    fn as_str(&self) -> &'static str {
        match self {
            StreamEnd::ClientGone => "client_disconnected",
            StreamEnd::Completed => "completed",
            StreamEnd::Failed { .. } => "upstream_error",
        }
    }
}

impl Observation {
    /// Emits the log line and records the metrics. `stream` is `None` for
    /// whole responses.
    pub(crate) fn finish(mut self, stream: Option<StreamStats>) {
        let total = self.started.elapsed();
        let mut failure = self.failure;
        let mut error = self.error;
        let mut tokens = self.tokens;
        let mut upstream = self.upstream;
        let mut time_to_first_token = None;
        let mut stream_end = None;
        if let Some(stats) = stream {
            time_to_first_token = stats
                .first_chunk
                .map(|first| first.saturating_duration_since(self.started));
            tokens = stats.tokens.or(tokens);
            // The upstream is busy until the stream ends: everything but
            // the gateway's overhead before the response head.
            upstream = Some(total.saturating_sub(self.overhead.unwrap_or_default()));
            if let StreamEnd::Failed { kind, message } = &stats.end {
                failure = Some(kind);
                error = Some(self.runtime.scrub(message));
            }
            stream_end = Some(stats.end.as_str());
            if let Some(admission) = self.admission.take() {
                // A client that went away is billed for what was generated.
                let settled = admission.settle(Finished {
                    usage: stats.tokens.map(|tokens| TokenUsage {
                        prompt_tokens: tokens.input,
                        completion_tokens: tokens.output,
                        cached_tokens: tokens.cached,
                    }),
                    streamed_chars: stats.streamed_chars,
                    failure: match &stats.end {
                        StreamEnd::Completed => None,
                        other => Some(other.as_str()),
                    },
                    time_to_first_token,
                });
                self.cost = settled.cost;
            }
        }
        if self.model_route {
            RequestSample {
                labels: &self.labels,
                status: self.status,
                failure,
                total,
                upstream,
                time_to_first_token,
                tokens,
                retries: self.retries,
                fallbacks: self.fallbacks,
            }
            .record();
        }
        // Milliseconds rounded to the microsecond: no float noise in logs.
        let fixed_millis = |duration: Duration| crate::access_log::Value::Fixed {
            units: i64::try_from(duration.as_micros()).unwrap_or(i64::MAX),
            scale: 3,
        };
        let overhead = upstream.map(|upstream| total.saturating_sub(upstream));
        let level = if self.model_route || self.status >= 400 {
            tracing::Level::INFO
        } else {
            tracing::Level::DEBUG
        };
        match &self.access_log {
            Some(log) if level_enabled(level) => {
                use crate::access_log::Value::{Display, Fixed, Str, Uint};
                let fields = [
                    ("request_id", Some(Display(&self.request_id))),
                    ("method", Some(Display(self.method.as_str()))),
                    ("path", Some(Display(&self.path))),
                    ("status", Some(Uint(self.status.into()))),
                    (
                        "key_alias",
                        Some(Str(self.key_alias.as_deref().unwrap_or_default())),
                    ),
                    ("team", Some(Str(self.team.as_deref().unwrap_or_default()))),
                    ("model", Some(Str(&self.labels.model))),
                    ("deployment", Some(Str(&self.labels.deployment))),
                    ("provider", Some(Str(&self.labels.provider))),
                    ("attempts", Some(Uint(self.attempts.into()))),
                    ("retries", Some(Uint(self.retries.into()))),
                    ("fallbacks", Some(Uint(self.fallbacks.into()))),
                    ("prompt_tokens", tokens.map(|t| Uint(t.input))),
                    ("completion_tokens", tokens.map(|t| Uint(t.output))),
                    ("cached_tokens", tokens.map(|t| Uint(t.cached))),
                    (
                        "cost_usd",
                        Some(Fixed {
                            units: self.cost.0,
                            scale: 9,
                        }),
                    ),
                    ("latency_ms", Some(fixed_millis(total))),
                    ("upstream_ms", upstream.map(fixed_millis)),
                    ("overhead_ms", overhead.map(fixed_millis)),
                    ("ttft_ms", time_to_first_token.map(fixed_millis)),
                    ("stream", stream_end.map(Str)),
                    ("error_kind", failure.map(Str)),
                    ("error", error.as_deref().map(Str)),
                    ("request_body", self.request_body.as_deref().map(Str)),
                ];
                log.write(&Line {
                    level,
                    target: module_path!(),
                    message: "request",
                    fields: &fields,
                });
            }
            Some(_) => {}
            None => {
                let millis = |duration: Duration| duration.as_micros() as f64 / 1000.0;
                let cost_usd = self.cost.0 as f64 / NanoUsd::PER_USD as f64;
                macro_rules! line {
                    ($level:ident) => {
                        tracing::$level!(
                            request_id = %self.request_id,
                            method = %self.method,
                            path = %self.path,
                            status = self.status,
                            key_alias = self.key_alias.as_deref().unwrap_or_default(),
                            team = self.team.as_deref().unwrap_or_default(),
                            model = &*self.labels.model,
                            deployment = &*self.labels.deployment,
                            provider = &*self.labels.provider,
                            attempts = self.attempts,
                            retries = self.retries,
                            fallbacks = self.fallbacks,
                            prompt_tokens = tokens.map(|t| t.input),
                            completion_tokens = tokens.map(|t| t.output),
                            cached_tokens = tokens.map(|t| t.cached),
                            cost_usd,
                            latency_ms = millis(total),
                            upstream_ms = upstream.map(millis),
                            overhead_ms = overhead.map(millis),
                            ttft_ms = time_to_first_token.map(millis),
                            stream = stream_end,
                            error_kind = failure,
                            error = error.as_deref(),
                            request_body = self.request_body.as_deref(),
                            "request"
                        )
                    };
                }
                if level == tracing::Level::INFO {
                    line!(info);
                } else {
                    line!(debug);
                }
            }
        }
        drop(self.in_flight);
    }
}

/// Whether the `tracing` filter lets this module's line through at `level`.
fn level_enabled(level: tracing::Level) -> bool {
    if level == tracing::Level::INFO {
        tracing::enabled!(tracing::Level::INFO)
    } else {
        tracing::enabled!(tracing::Level::DEBUG)
    }
}

/// Token counts from an upstream's usage.
pub(crate) fn token_counts(usage: &Usage) -> TokenCounts {
    TokenCounts {
        input: usage.prompt_tokens,
        output: usage.completion_tokens,
        cached: usage.cached_tokens(),
    }
}

/// A request body for the log: JSON with key-like fields replaced by `***`
/// and every configured credential scrubbed; other bodies by size only.
pub(crate) fn redacted_body(runtime: &Runtime, bytes: &[u8]) -> String {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(mut value) => {
            redact_keys(&mut value);
            runtime.scrub(&value.to_string())
        }
        Err(_) => format!("<{} bytes, not JSON>", bytes.len()),
    }
}

fn redact_keys(value: &mut Value) {
    match value {
        Value::Object(object) => {
            for (key, child) in object.iter_mut() {
                if is_secret_field(key) {
                    *child = Value::String("***".to_owned());
                } else {
                    redact_keys(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_keys),
        _ => {}
    }
}

fn is_secret_field(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "authorization"
        || name == "token"
        || name.ends_with("key")
        || name.ends_with("_token")
        || name.contains("secret")
        || name.contains("password")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_like_fields_are_redacted_and_token_counts_are_kept() {
        let mut body = json!({
            "model": "m",
            "api_key": "sk-1",
            "max_tokens": 5,
            "metadata": {"Authorization": "Bearer x", "nested": [{"client_secret": "s"}]},
            "messages": [{"role": "user", "content": "hello"}]
        });
        redact_keys(&mut body);
        assert_eq!(
            body,
            json!({
                "model": "m",
                "api_key": "***",
                "max_tokens": 5,
                "metadata": {"Authorization": "***", "nested": [{"client_secret": "***"}]},
                "messages": [{"role": "user", "content": "hello"}]
            })
        );
    }
}
