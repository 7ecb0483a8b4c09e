//! What went wrong upstream, as facts.

use std::fmt;
use std::time::Duration;

/// The class of an upstream failure. The router's retry, fallback and
/// cooldown policy is a match on this enum, so it is deliberately exhaustive:
/// a new kind must make every policy decide about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The connection to the upstream could not be made or broke before an answer.
    Connect,
    /// The upstream did not answer in time.
    Timeout,
    /// The upstream said 429.
    RateLimited,
    /// The upstream is overloaded (Anthropic 529, HTTP 503).
    Overloaded,
    /// The upstream failed (5xx).
    Upstream,
    /// The upstream rejected the gateway's credential (401, 403).
    Auth,
    /// The upstream rejected the request (400, 422).
    BadRequest,
    /// The input does not fit the model's context window.
    ContextWindowExceeded,
    /// The upstream's content filter blocked the request or the answer.
    ContentFiltered,
    /// The upstream does not know the model or the endpoint (404).
    NotFound,
    /// The upstream answered something the adapter cannot read.
    InvalidResponse,
    /// The provider cannot do this operation (embeddings on a chat-only API).
    Unsupported,
}

impl ErrorKind {
    /// A stable, low-cardinality name, for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Upstream => "upstream",
            ErrorKind::Auth => "auth",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::ContextWindowExceeded => "context_window_exceeded",
            ErrorKind::ContentFiltered => "content_filtered",
            ErrorKind::NotFound => "not_found",
            ErrorKind::InvalidResponse => "invalid_response",
            ErrorKind::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An upstream failure: its kind, the upstream's status and retry-after if it
/// sent them, and a message safe to show a client (never a credential).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ProviderError {
    /// What class of failure this is.
    pub kind: ErrorKind,
    /// The upstream's HTTP status, when there was a response.
    pub status: Option<u16>,
    /// How long the upstream asked us to wait.
    pub retry_after: Option<Duration>,
    /// What happened, in words, including the upstream's own message.
    pub message: String,
}

/// Longest upstream message kept in an error; bodies can be large.
const MAX_MESSAGE_CHARS: usize = 2_000;

impl ProviderError {
    /// A failure with no upstream status.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            status: None,
            retry_after: None,
            message: truncate(message.into()),
        }
    }

    /// Records the upstream status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Records the upstream's retry-after.
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Builds the error for a non-2xx upstream answer: classifies the status
    /// and the message text, and keeps the upstream's own error message.
    pub fn from_upstream(
        provider: &str,
        status: u16,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> Self {
        let upstream_message = upstream_message(body);
        let kind = classify(status, &upstream_message);
        Self::new(
            kind,
            format!("{provider} returned {status}: {upstream_message}"),
        )
        .with_status(status)
        .with_retry_after(retry_after)
    }
}

/// Classifies an upstream status and message into an [`ErrorKind`]. The
/// message matters for 400s: context-window and content-filter failures are
/// 400s that the router treats differently.
pub fn classify(status: u16, message: &str) -> ErrorKind {
    let lower = message.to_ascii_lowercase();
    match status {
        400 | 413 | 422 if is_context_window_message(&lower) => ErrorKind::ContextWindowExceeded,
        400 | 422 if is_content_filter_message(&lower) => ErrorKind::ContentFiltered,
        400 | 413 | 422 => ErrorKind::BadRequest,
        401 | 403 => ErrorKind::Auth,
        404 => ErrorKind::NotFound,
        408 => ErrorKind::Timeout,
        429 => ErrorKind::RateLimited,
        503 | 529 => ErrorKind::Overloaded,
        _ if status >= 500 => ErrorKind::Upstream,
        _ => ErrorKind::BadRequest,
    }
}

/// The phrases providers use when the input is too long (LiteLLM's list).
fn is_context_window_message(lower: &str) -> bool {
    [
        "maximum context length",
        "context length",
        "context_length_exceeded",
        "exceed context limit",
        "prompt is too long",
        "input is too long",
        "too many tokens",
        "exceeds the maximum number of tokens",
        "context window",
    ]
    .iter()
    .any(|phrase| lower.contains(phrase))
}

fn is_content_filter_message(lower: &str) -> bool {
    [
        "content_filter",
        "content management policy",
        "content_policy",
        "safety",
    ]
    .iter()
    .any(|phrase| lower.contains(phrase))
}

/// The `error.message` of an OpenAI-style (or Anthropic-style) error body, or
/// the body's text when it has no such field.
pub fn upstream_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: Inner,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope {
            error: Inner(message),
        }) => message,
        Err(_) => {
            let text = String::from_utf8_lossy(body).trim().to_owned();
            if text.is_empty() {
                "(empty body)".to_owned()
            } else {
                text
            }
        }
    }
}

/// `error` of an error body: `{"message": ...}` (other fields skipped) or a
/// string. Hand-written: `#[serde(untagged)]` buffered the whole object,
/// every field's value copied, before trying each shape; a fallback pays
/// for this on each failed attempt.
struct Inner(String);

impl<'de> serde::Deserialize<'de> for Inner {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Inner;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object with a message, or a string")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Inner, E> {
                Ok(Inner(text.to_owned()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Inner, A::Error> {
                let mut message = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "message" && message.is_none() {
                        message = Some(map.next_value::<String>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                message
                    .map(Inner)
                    .ok_or_else(|| serde::de::Error::missing_field("message"))
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

/// Reads `retry-after` (seconds or an HTTP date is not supported; seconds as
/// an integer or a float) and OpenAI's `retry-after-ms`.
pub fn retry_after(headers: &::http::HeaderMap) -> Option<Duration> {
    let read = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|value| value.is_finite() && *value >= 0.0)
    };
    if let Some(millis) = read("retry-after-ms") {
        return Some(Duration::from_secs_f64(millis / 1000.0));
    }
    read("retry-after").map(Duration::from_secs_f64)
}

fn truncate(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_CHARS {
        let mut cut = MAX_MESSAGE_CHARS;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: u16, body: &str, expected: ErrorKind) {
        let error = ProviderError::from_upstream("test", status, None, body.as_bytes());
        assert_eq!(error.kind, expected, "status {status} body {body}");
        assert_eq!(error.status, Some(status));
    }

    #[test]
    fn upstream_statuses_are_classified() {
        check(400, r#"{"error":{"message":"bad"}}"#, ErrorKind::BadRequest);
        check(
            400,
            r#"{"error":{"message":"This model's maximum context length is 8192 tokens"}}"#,
            ErrorKind::ContextWindowExceeded,
        );
        check(
            400,
            r#"{"error":{"message":"prompt is too long: 300000 tokens"}}"#,
            ErrorKind::ContextWindowExceeded,
        );
        check(
            400,
            r#"{"error":{"code":"content_filter","message":"The response was filtered due to content management policy"}}"#,
            ErrorKind::ContentFiltered,
        );
        check(401, "nope", ErrorKind::Auth);
        check(404, "", ErrorKind::NotFound);
        check(429, "slow down", ErrorKind::RateLimited);
        check(500, "boom", ErrorKind::Upstream);
        check(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ErrorKind::Overloaded,
        );
    }

    #[test]
    fn upstream_message_is_extracted_or_body_text_kept() {
        assert_eq!(
            upstream_message(br#"{"error":{"message":"m","type":"t"}}"#),
            "m"
        );
        assert_eq!(upstream_message(br#"{"error":"plain"}"#), "plain");
        assert_eq!(
            upstream_message(
                br#"{"error":{"type":"x","code":{"n":[1,2]},"message":"esc\"aped"},"extra":1}"#
            ),
            "esc\"aped"
        );
        // Without a message the body's text is kept, as for any other shape.
        let no_message = br#"{"error":{"type":"x"}}"#;
        assert_eq!(upstream_message(no_message), r#"{"error":{"type":"x"}}"#);
        assert_eq!(upstream_message(br#"{"error":7}"#), r#"{"error":7}"#);
        assert_eq!(upstream_message(b"Bad Gateway"), "Bad Gateway");
        assert_eq!(upstream_message(b""), "(empty body)");
    }

    #[test]
    fn retry_after_reads_seconds_and_milliseconds() {
        let mut headers = ::http::HeaderMap::new();
        headers.insert("retry-after", ::http::HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert("retry-after-ms", ::http::HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        headers.clear();
        headers.insert("retry-after", ::http::HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn long_messages_are_truncated_on_a_char_boundary() {
        let error = ProviderError::new(ErrorKind::Upstream, "é".repeat(3_000));
        assert!(error.message.len() <= MAX_MESSAGE_CHARS + '…'.len_utf8());
    }
}
