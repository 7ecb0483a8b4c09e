//! Non-stream chat answers that may keep the upstream's own bytes.
//!
//! An OpenAI-compatible upstream already answers in the shape the gateway
//! sends its clients. Parsing that body into a [`ChatResponse`] and encoding
//! it again costs more than everything else the gateway does per request, so
//! [`Provider::chat_reply`](crate::Provider::chat_reply) may answer a
//! [`RawChatResponse`] instead: the body as received, checked by one borrowed
//! pass that reads only what the gateway needs (the `model` to re-stamp and
//! the `usage` to price) and rejects what [`ChatResponse`] would reject for
//! the same reasons (not JSON, an `{"error": ...}` body, no `id`, no
//! `choices`, a choice without a `message`).
//!
//! Streams get the same treatment per event: [`ChunkReply::Raw`] holds an
//! OpenAI-format chunk's JSON text with what the gateway reads of it (the
//! `model` span, `usage`, whether a choice finished, how much text it adds).

use crate::error::{ErrorKind, ProviderError};
use crate::openai::not_a_response;
use bytes::Bytes;
use gateway_types::chat::PromptTokensDetails;
use gateway_types::{ChatChunk, ChatResponse, Role, Usage};
use serde::de::{self, Deserializer, IgnoredAny, Visitor};
use serde::Deserialize;
use std::fmt;
use std::ops::Range;

/// A non-stream chat answer, as a provider produced it.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatReply {
    /// A response the provider built or translated.
    Parsed(ChatResponse),
    /// An OpenAI-format upstream body, checked and passed through.
    Raw(RawChatResponse),
}

impl ChatReply {
    /// The token usage the answer reports.
    pub fn usage(&self) -> Option<&Usage> {
        match self {
            ChatReply::Parsed(response) => response.usage.as_ref(),
            ChatReply::Raw(raw) => raw.usage(),
        }
    }

    /// The answer as a [`ChatResponse`], parsing a raw body in full.
    pub fn into_response(self) -> Result<ChatResponse, ProviderError> {
        match self {
            ChatReply::Parsed(response) => Ok(response),
            ChatReply::Raw(raw) => raw.to_response(),
        }
    }

    /// The JSON body to send the client, with `model` set to `model` when
    /// given (the alias the client asked for) and left as the upstream wrote
    /// it otherwise.
    pub fn to_json(self, model: Option<String>) -> Result<Bytes, serde_json::Error> {
        match self {
            ChatReply::Parsed(mut response) => {
                if let Some(model) = model {
                    response.model = model;
                }
                serde_json::to_vec(&response).map(Bytes::from)
            }
            ChatReply::Raw(raw) => Ok(match model {
                Some(model) => raw.with_model(&model),
                None => raw.body.text,
            }),
        }
    }
}

impl From<ChatResponse> for ChatReply {
    fn from(response: ChatResponse) -> Self {
        ChatReply::Parsed(response)
    }
}

/// An OpenAI-format chat-completion body as the upstream sent it.
///
/// Built only by [`RawChatResponse::parse`], which checks the body; the
/// JSON text itself is never re-encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct RawChatResponse {
    body: Stamped,
    usage: Option<Usage>,
}

/// JSON text as received, and where its top-level `model` string sits in it
/// (quotes included), so the string can be replaced without re-encoding.
#[derive(Debug, Clone, PartialEq)]
struct Stamped {
    text: Bytes,
    model: Range<usize>,
}

impl Stamped {
    /// `model` is the top-level `model` string's text, borrowed from `text`
    /// by the check's parse (so written without escapes).
    fn new(text: Bytes, model: &str) -> Self {
        // The borrowed text lies inside `text`: its offset is the distance
        // between the two addresses, and its quotes sit one byte either side.
        let start = model.as_ptr() as usize - text.as_ptr() as usize;
        Self {
            model: start - 1..start + model.len() + 1,
            text,
        }
    }

    /// The `model` the upstream wrote: the text between the quotes.
    fn model(&self) -> &str {
        let inner = self.model.start + 1..self.model.end - 1;
        std::str::from_utf8(&self.text[inner]).unwrap_or_default()
    }

    /// Appends the text to `out`, with `model` replaced when given.
    fn write(&self, out: &mut Vec<u8>, model: Option<&str>) {
        match model {
            Some(model) if self.model() != model => {
                out.extend_from_slice(&self.text[..self.model.start]);
                // A `&str` always encodes.
                let _ = serde_json::to_writer(&mut *out, model);
                out.extend_from_slice(&self.text[self.model.end..]);
            }
            _ => out.extend_from_slice(&self.text),
        }
    }
}

impl RawChatResponse {
    /// Checks a 2xx body from `provider` (a name for error messages).
    ///
    /// `Ok(None)`: a valid response this type cannot patch in place (no
    /// `model` string, or one written with escapes); parse it in full
    /// instead. Errors are those [`crate::openai::parse_success`] gives for
    /// the same body: `Upstream` for an `{"error": ...}` body and
    /// `InvalidResponse` for anything else that is not a chat completion.
    pub fn parse(provider: &str, body: Bytes) -> Result<Option<Self>, ProviderError> {
        let checked = std::str::from_utf8(&body)
            .map_err(|error| not_a_response(provider, &body, &error))
            .and_then(|text| {
                serde_json::from_str::<Shape<'_>>(text)
                    .map_err(|error| not_a_response(provider, &body, &error))
            })?;
        let Some(ModelText(Some(model))) = checked.model else {
            return Ok(None);
        };
        let body = Stamped::new(body.clone(), model);
        Ok(Some(Self {
            body,
            usage: checked.usage.map(Usage::from),
        }))
    }

    /// The body as received.
    pub fn body(&self) -> &Bytes {
        &self.body.text
    }

    /// The `model` the upstream wrote.
    pub fn model(&self) -> &str {
        self.body.model()
    }

    /// The reported token counts: the totals and `cached_tokens`, which is
    /// what the gateway prices and limits by. Other usage fields (reasoning
    /// or audio breakdowns) stay in the body only.
    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    /// The body with `model` replaced by `model`; the rest byte for byte.
    pub fn with_model(&self, model: &str) -> Bytes {
        if self.model() == model {
            return self.body.text.clone();
        }
        let mut out = Vec::with_capacity(self.body.text.len() + model.len() + 8);
        self.body.write(&mut out, Some(model));
        Bytes::from(out)
    }

    /// The body parsed in full.
    pub fn to_response(&self) -> Result<ChatResponse, ProviderError> {
        serde_json::from_slice(&self.body.text).map_err(|error| {
            ProviderError::new(
                ErrorKind::InvalidResponse,
                format!("the upstream body is not a valid response: {error}"),
            )
        })
    }
}

/// One chunk of a chat stream, as a provider produced it.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkReply {
    /// A chunk the provider built or translated.
    Parsed(ChatChunk),
    /// An OpenAI-format upstream event's JSON, checked and passed through.
    Raw(RawChatChunk),
}

impl ChunkReply {
    /// The usage the chunk reports (the last chunk of a stream, usually).
    pub fn usage(&self) -> Option<&Usage> {
        match self {
            ChunkReply::Parsed(chunk) => chunk.usage.as_ref(),
            ChunkReply::Raw(raw) => raw.usage.as_ref(),
        }
    }

    /// Whether the chunk has any choices (a usage-only chunk has none).
    pub fn has_choices(&self) -> bool {
        match self {
            ChunkReply::Parsed(chunk) => !chunk.choices.is_empty(),
            ChunkReply::Raw(raw) => raw.choices > 0,
        }
    }

    /// Whether a choice finished in this chunk or it carries usage: after
    /// such a chunk, the end of the body is a complete answer.
    pub fn is_final(&self) -> bool {
        match self {
            ChunkReply::Parsed(chunk) => chunk_is_final(chunk),
            ChunkReply::Raw(raw) => raw.finished || raw.usage.is_some(),
        }
    }

    /// Bytes of answer text (`delta.content`) the chunk adds.
    pub fn content_len(&self) -> usize {
        match self {
            ChunkReply::Parsed(chunk) => chunk
                .choices
                .iter()
                .filter_map(|choice| choice.delta.content.as_ref())
                .map(String::len)
                .sum(),
            ChunkReply::Raw(raw) => raw.content_len,
        }
    }

    /// The chunk as a [`ChatChunk`], parsing a raw one in full.
    pub fn into_chunk(self) -> Result<ChatChunk, ProviderError> {
        match self {
            ChunkReply::Parsed(chunk) => Ok(chunk),
            ChunkReply::Raw(raw) => serde_json::from_slice(raw.data()).map_err(|error| {
                ProviderError::new(
                    ErrorKind::InvalidResponse,
                    format!("the upstream chunk is not a valid chunk: {error}"),
                )
            }),
        }
    }

    /// The chunk as one SSE event for the client (`data: <json>\n\n`), with
    /// `model` set to `model` when given and, unless `keep_usage`, without
    /// `usage`. A raw chunk is copied once, with only `model` replaced; one
    /// whose usage must go is parsed and encoded instead, and if that parse
    /// fails it is sent with its usage rather than not at all.
    pub fn to_sse(self, model: Option<&str>, keep_usage: bool) -> Bytes {
        let raw = match self {
            ChunkReply::Raw(raw) if keep_usage || raw.usage.is_none() => raw,
            ChunkReply::Raw(raw) => match serde_json::from_slice::<ChatChunk>(raw.data()) {
                Ok(chunk) => return parsed_sse(chunk, model, keep_usage),
                Err(_) => raw,
            },
            ChunkReply::Parsed(chunk) => return parsed_sse(chunk, model, keep_usage),
        };
        let mut out = Vec::with_capacity(raw.data().len() + 8 + model.map_or(0, str::len));
        out.extend_from_slice(b"data: ");
        raw.data.write(&mut out, model);
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }
}

/// A parsed chunk as one SSE event, re-stamped and without usage unless
/// `keep_usage`.
fn parsed_sse(mut chunk: ChatChunk, model: Option<&str>, keep_usage: bool) -> Bytes {
    if !keep_usage {
        chunk.usage = None;
    }
    if let Some(model) = model {
        chunk.model = model.to_owned();
    }
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    // A ChatChunk always encodes: its maps have string keys and its
    // numbers come from JSON.
    let _ = serde_json::to_writer(&mut out, &chunk);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

impl From<ChatChunk> for ChunkReply {
    fn from(chunk: ChatChunk) -> Self {
        ChunkReply::Parsed(chunk)
    }
}

/// An OpenAI-format chat-completion chunk (one SSE event's data) as the
/// upstream sent it, with what the gateway reads of it.
///
/// Built only by [`RawChatChunk::parse`].
#[derive(Debug, Clone, PartialEq)]
pub struct RawChatChunk {
    data: Stamped,
    usage: Option<Usage>,
    choices: usize,
    finished: bool,
    content_len: usize,
}

impl RawChatChunk {
    /// Checks one event's data from `provider` (a name for error messages).
    ///
    /// `Ok(None)`: a valid chunk this type cannot patch in place (no `model`
    /// string, or one written with escapes); parse it in full instead.
    /// Errors: `Upstream` for an `{"error": ...}` event, `InvalidResponse`
    /// for data that is not a chunk.
    pub fn parse(provider: &str, data: Bytes) -> Result<Option<Self>, ProviderError> {
        let text = std::str::from_utf8(&data).map_err(|error| {
            ProviderError::new(
                ErrorKind::InvalidResponse,
                format!("{provider} sent a stream event that is not UTF-8: {error}"),
            )
        })?;
        let shape: ChunkShape<'_> = serde_json::from_str(text).map_err(|error| {
            ProviderError::new(
                ErrorKind::InvalidResponse,
                format!("{provider} sent a stream event that is not a chunk: {error}"),
            )
        })?;
        if shape.error.is_some() {
            return Err(stream_error_event(provider, text));
        }
        let Some(ModelText(Some(model))) = shape.model else {
            return Ok(None);
        };
        Ok(Some(Self {
            data: Stamped::new(data.clone(), model),
            usage: shape.usage.map(Usage::from),
            choices: shape.choices.count,
            finished: shape.choices.finished,
            content_len: shape.choices.content_len,
        }))
    }

    /// The event's JSON as received.
    pub fn data(&self) -> &Bytes {
        &self.data.text
    }

    /// The reported token counts, as [`RawChatResponse::usage`].
    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }
}

/// Whether a choice of `chunk` finished or it carries usage (see
/// [`ChunkReply::is_final`]).
pub(crate) fn chunk_is_final(chunk: &ChatChunk) -> bool {
    chunk.usage.is_some()
        || chunk
            .choices
            .iter()
            .any(|choice| choice.finish_reason.is_some())
}

/// The error for an OpenAI-format `{"error": ...}` stream event.
pub(crate) fn stream_error_event(provider: &str, data: &str) -> ProviderError {
    ProviderError::new(
        ErrorKind::Upstream,
        format!(
            "{provider} sent an error mid-stream: {}",
            crate::error::upstream_message(data.as_bytes())
        ),
    )
}

/// What the check reads of a chunk. The types mirror [`ChatChunk`]'s, so a
/// value it would refuse is refused here too; other fields are skipped.
#[derive(Deserialize)]
struct ChunkShape<'a> {
    #[serde(default, rename = "id")]
    _id: StrText,
    #[serde(default, rename = "object")]
    _object: StrText,
    #[serde(default, rename = "created")]
    _created: i64,
    #[serde(default, borrow)]
    model: Option<ModelText<'a>>,
    #[serde(default)]
    choices: ChoicesSummary,
    #[serde(default)]
    usage: Option<UsageShape>,
    #[serde(default, rename = "system_fingerprint")]
    _system_fingerprint: Option<StrText>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

/// The chunk's choices, summed up without keeping them.
#[derive(Default)]
struct ChoicesSummary {
    count: usize,
    finished: bool,
    content_len: usize,
}

impl<'de> Deserialize<'de> for ChoicesSummary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SeqVisitor;
        impl<'de> Visitor<'de> for SeqVisitor {
            type Value = ChoicesSummary;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of choices")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut summary = ChoicesSummary::default();
                while let Some(choice) = seq.next_element::<ChunkChoiceShape>()? {
                    summary.count += 1;
                    summary.finished |= choice.finish_reason.is_some();
                    summary.content_len += choice.delta.content.map_or(0, |text| text.0);
                }
                Ok(summary)
            }
        }
        deserializer.deserialize_seq(SeqVisitor)
    }
}

#[derive(Deserialize)]
struct ChunkChoiceShape {
    #[serde(default, rename = "index")]
    _index: u32,
    #[serde(default)]
    delta: DeltaShape,
    #[serde(default)]
    finish_reason: Option<StrText>,
}

#[derive(Deserialize, Default)]
struct DeltaShape {
    #[serde(default, rename = "role")]
    _role: Option<Role>,
    #[serde(default)]
    content: Option<StrLen>,
    #[serde(default, rename = "reasoning_content")]
    _reasoning_content: Option<StrText>,
}

/// A JSON string's length in bytes; the text is not kept.
#[derive(Default)]
struct StrLen(usize);

impl<'de> Deserialize<'de> for StrLen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LenVisitor;
        impl Visitor<'_> for LenVisitor {
            type Value = StrLen;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<StrLen, E> {
                Ok(StrLen(text.len()))
            }
        }
        deserializer.deserialize_str(LenVisitor)
    }
}

/// A JSON string whose text is not kept (the check only needs it to be one).
type StrText = StrLen;

/// What the check reads of a chat completion; every other field is skipped
/// without being kept.
#[derive(Deserialize)]
struct Shape<'a> {
    #[serde(rename = "id")]
    _id: StrText,
    #[serde(default, borrow)]
    model: Option<ModelText<'a>>,
    #[serde(rename = "choices")]
    _choices: Vec<ChoiceShape>,
    #[serde(default)]
    usage: Option<UsageShape>,
}

/// The counts of `usage`; read without `Usage`'s catch-all map of unknown
/// fields, which would buffer the object first. The body keeps them all.
#[derive(Deserialize)]
struct UsageShape {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    total_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<DetailsShape>,
}

#[derive(Deserialize)]
struct DetailsShape {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl From<UsageShape> for Usage {
    fn from(shape: UsageShape) -> Self {
        Usage {
            prompt_tokens: shape.prompt_tokens,
            completion_tokens: shape.completion_tokens,
            total_tokens: shape.total_tokens,
            prompt_tokens_details: shape
                .prompt_tokens_details
                .map(|details| PromptTokensDetails {
                    cached_tokens: details.cached_tokens,
                    ..PromptTokensDetails::default()
                }),
            ..Usage::default()
        }
    }
}

#[derive(Deserialize)]
struct ChoiceShape {
    #[serde(rename = "message")]
    _message: MessageShape,
}

#[derive(Deserialize)]
struct MessageShape {
    #[serde(rename = "role")]
    _role: Role,
    #[serde(default, rename = "content")]
    _content: Option<StrText>,
}

/// `model`: `Some` when it is a string borrowed from the body (written
/// without escapes), `None` for a string with escapes or `null`.
struct ModelText<'a>(Option<&'a str>);

impl<'de: 'a, 'a> Deserialize<'de> for ModelText<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ModelVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for ModelVisitor<'a> {
            type Value = ModelText<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(ModelText(Some(text)))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(ModelText(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ModelText(None))
            }
        }
        deserializer.deserialize_any(ModelVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is the failure report.
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn raw(body: &str) -> RawChatResponse {
        RawChatResponse::parse("test upstream", Bytes::from(body.to_owned()))
            .expect("valid")
            .expect("patchable")
    }

    const BODY: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"hi \"there\"","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":4}},"system_fingerprint":"fp_x"}"#;

    #[test]
    fn model_is_replaced_and_every_other_byte_kept() {
        let reply = raw(BODY);
        assert_eq!(reply.model(), "gpt-4o-2024-08-06");
        let usage = reply.usage().expect("usage");
        assert_eq!((usage.prompt_tokens, usage.total_tokens), (9, 12));
        assert_eq!(usage.cached_tokens(), 4);
        let patched = reply.with_model("my \"alias\"");
        let expected = BODY.replace(r#""gpt-4o-2024-08-06""#, r#""my \"alias\"""#);
        assert_eq!(std::str::from_utf8(&patched).unwrap(), expected);
        let value: Value = serde_json::from_slice(&patched).unwrap();
        assert_eq!(value["model"], "my \"alias\"");
        // The same model: the very same bytes.
        assert_eq!(reply.with_model("gpt-4o-2024-08-06"), BODY.as_bytes());
    }

    #[test]
    fn the_full_parse_agrees_with_the_parsed_reply() {
        let reply = raw(BODY);
        let full: ChatResponse = serde_json::from_str(BODY).unwrap();
        assert_eq!(reply.to_response().unwrap(), full);
        let (ours, theirs) = (reply.usage().unwrap(), full.usage.as_ref().unwrap());
        assert_eq!(
            (
                ours.prompt_tokens,
                ours.completion_tokens,
                ours.total_tokens
            ),
            (
                theirs.prompt_tokens,
                theirs.completion_tokens,
                theirs.total_tokens
            )
        );
        assert_eq!(ours.cached_tokens(), theirs.cached_tokens());
        let via_parsed = ChatReply::Parsed(full).to_json(Some("a".into())).unwrap();
        let via_raw = ChatReply::Raw(reply).to_json(Some("a".into())).unwrap();
        let parsed: Value = serde_json::from_slice(&via_parsed).unwrap();
        let raw: Value = serde_json::from_slice(&via_raw).unwrap();
        assert_eq!(parsed["model"], "a");
        assert_eq!(raw["model"], "a");
        assert_eq!(
            parsed["choices"][0]["message"]["content"],
            raw["choices"][0]["message"]["content"]
        );
        assert_eq!(parsed["usage"], raw["usage"]);
    }

    #[test]
    fn model_with_escapes_or_missing_asks_for_a_full_parse() {
        for body in [
            json!({"id": "x", "model": "a\\u0041", "choices": []}),
            json!({"id": "x", "model": "tab\there", "choices": []}),
            json!({"id": "x", "model": null, "choices": []}),
            json!({"id": "x", "choices": []}),
        ] {
            let bytes = Bytes::from(serde_json::to_vec(&body).unwrap());
            let checked = RawChatResponse::parse("u", bytes).expect("valid");
            assert!(checked.is_none(), "{body}");
        }
    }

    #[test]
    fn bodies_a_chat_response_rejects_are_rejected() {
        let cases = [
            (
                r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
                ErrorKind::Upstream,
            ),
            (r#"{"error":"plain text"}"#, ErrorKind::Upstream),
            ("<html>502</html>", ErrorKind::InvalidResponse),
            ("", ErrorKind::InvalidResponse),
            (
                r#"{"id":"x","model":"m","choices":[{"message":{"role":"assistant","content":"cut"#,
                ErrorKind::InvalidResponse,
            ),
            (r#"{"model":"m","choices":[]}"#, ErrorKind::InvalidResponse),
            (r#"{"id":"x","model":"m"}"#, ErrorKind::InvalidResponse),
            (
                r#"{"id":"x","model":"m","choices":[{"index":0}]}"#,
                ErrorKind::InvalidResponse,
            ),
            (
                r#"{"id":"x","model":"m","choices":[{"message":{"role":"wizard"}}]}"#,
                ErrorKind::InvalidResponse,
            ),
            (
                r#"{"id":"x","model":"m","choices":[{"message":{"role":"assistant","content":7}}]}"#,
                ErrorKind::InvalidResponse,
            ),
            (
                r#"{"id":7,"model":"m","choices":[]}"#,
                ErrorKind::InvalidResponse,
            ),
            (
                r#"{"id":"x","model":7,"choices":[]}"#,
                ErrorKind::InvalidResponse,
            ),
            (
                r#"{"id":"x","model":"m","choices":[],"usage":{"prompt_tokens":"nine"}}"#,
                ErrorKind::InvalidResponse,
            ),
            (
                r#"{"id":"x","model":"m","choices":[]} trailing"#,
                ErrorKind::InvalidResponse,
            ),
        ];
        for (body, kind) in cases {
            let error = RawChatResponse::parse("test upstream", Bytes::from(body)).expect_err(body);
            assert_eq!(error.kind, kind, "{body}: {error:?}");
            assert!(error.message.contains("test upstream"), "{body}: {error:?}");
            // The full parse rejects each of them too.
            assert!(
                serde_json::from_str::<ChatResponse>(body).is_err(),
                "{body}"
            );
        }
        let invalid_utf8 = Bytes::from_static(b"{\"id\":\"\xff\",\"model\":\"m\",\"choices\":[]}");
        let error = RawChatResponse::parse("u", invalid_utf8).expect_err("utf-8");
        assert_eq!(error.kind, ErrorKind::InvalidResponse);
    }

    fn chunk(data: &str) -> RawChatChunk {
        RawChatChunk::parse("test upstream", Bytes::from(data.to_owned()))
            .expect("valid")
            .expect("patchable")
    }

    const CHUNK: &str = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"up-1","service_tier":"default","choices":[{"index":0,"delta":{"content":"caf\u00e9!"},"logprobs":null,"finish_reason":null}],"usage":null}"#;

    #[test]
    fn raw_chunks_keep_their_bytes_and_report_what_the_gateway_reads() {
        let raw = chunk(CHUNK);
        assert_eq!(raw.data(), CHUNK.as_bytes());
        assert!(raw.usage().is_none());
        let reply = ChunkReply::Raw(raw);
        assert!(reply.has_choices());
        assert!(!reply.is_final());
        // "café!" is 6 bytes once unescaped.
        assert_eq!(reply.content_len(), 6);
        let parsed = reply.clone().into_chunk().unwrap();
        assert_eq!(ChunkReply::Parsed(parsed).content_len(), 6);
        let sse = reply.to_sse(Some("alias"), false);
        assert_eq!(
            std::str::from_utf8(&sse).unwrap(),
            format!("data: {}\n\n", CHUNK.replace(r#""up-1""#, r#""alias""#))
        );
    }

    #[test]
    fn raw_usage_chunks_are_final_and_lose_usage_only_when_asked() {
        let data = r#"{"id":"c1","model":"up-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
        let reply = ChunkReply::Raw(chunk(data));
        assert!(reply.is_final());
        assert_eq!(reply.usage().map(|usage| usage.total_tokens), Some(7));
        let kept = reply.clone().to_sse(None, true);
        assert_eq!(kept, format!("data: {data}\n\n").as_bytes());
        let dropped = reply.to_sse(Some("alias"), false);
        let text = std::str::from_utf8(&dropped).unwrap();
        let json: Value = serde_json::from_str(text.trim_start_matches("data: ").trim()).unwrap();
        assert_eq!(json["model"], "alias");
        assert!(json.get("usage").is_none(), "{json}");
        assert_eq!(json["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn a_chunk_whose_usage_cannot_be_removed_is_sent_with_it_not_dropped() {
        // The check does not read tool calls; ChatChunk does, and refuses
        // an index that is not a number.
        let data = r#"{"model":"up","choices":[{"delta":{"tool_calls":[{"index":"x"}]}}],"usage":{"total_tokens":3}}"#;
        assert!(serde_json::from_str::<ChatChunk>(data).is_err());
        let sse = ChunkReply::Raw(chunk(data)).to_sse(Some("alias"), false);
        assert_eq!(
            std::str::from_utf8(&sse).unwrap(),
            format!("data: {}\n\n", data.replace(r#""up""#, r#""alias""#))
        );
    }

    #[test]
    fn chunks_a_chat_chunk_rejects_are_rejected_and_error_events_are_errors() {
        for (data, kind) in [
            (r#"{"error":{"message":"overloaded"}}"#, ErrorKind::Upstream),
            (r#"{"model":"m","error":"boom"}"#, ErrorKind::Upstream),
            ("not json", ErrorKind::InvalidResponse),
            (r#"{"model":"m","choices":{}}"#, ErrorKind::InvalidResponse),
            (
                r#"{"model":"m","choices":null}"#,
                ErrorKind::InvalidResponse,
            ),
            (
                r#"{"id":7,"model":"m","choices":[]}"#,
                ErrorKind::InvalidResponse,
            ),
            (
                r#"{"model":"m","choices":[{"delta":{"content":7}}]}"#,
                ErrorKind::InvalidResponse,
            ),
            (
                r#"{"model":"m","choices":[{"delta":{"role":"wizard"}}]}"#,
                ErrorKind::InvalidResponse,
            ),
            (
                r#"{"model":"m","choices":[],"usage":{"total_tokens":-1}}"#,
                ErrorKind::InvalidResponse,
            ),
        ] {
            let error = RawChatChunk::parse("u", Bytes::from(data)).expect_err(data);
            assert_eq!(error.kind, kind, "{data}: {error:?}");
            if kind == ErrorKind::InvalidResponse {
                assert!(serde_json::from_str::<ChatChunk>(data).is_err(), "{data}");
            }
        }
        // No model, or one with escapes: valid, parsed in full instead.
        for data in [r#"{"choices":[]}"#, r#"{"model":"a\/b","choices":[]}"#] {
            assert!(RawChatChunk::parse("u", Bytes::from(data))
                .unwrap()
                .is_none());
        }
    }
}
