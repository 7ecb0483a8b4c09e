//! The Anthropic-format endpoints: `POST /v1/messages` and
//! `POST /v1/messages/count_tokens`.
//!
//! A Messages request is routed like a chat completion (same aliases,
//! retries, fallbacks, cooldowns, headers, log line and metrics), with the
//! router's generic [`Router::route`](gateway_router::Router::route) so that
//! each attempt decides for itself how to call its deployment:
//!
//! - a deployment that speaks the Messages API itself (an `anthropic/`
//!   deployment: [`Provider::anthropic_messages`] answers `Some`) gets the
//!   client's body with only `model` replaced, and its answer goes back as
//!   it came (but for `model`, stamped with the client's alias), with the
//!   client's `anthropic-version` and `anthropic-beta` forwarded;
//! - any other is called with the body translated to a chat request, and
//!   its answer is translated back into Anthropic's message or event
//!   sequence (`message_start`, `content_block_*`, `message_delta`,
//!   `message_stop`; no `[DONE]`).
//!
//! A fallback from one kind of deployment to the other therefore just works.
//! Errors are answered in Anthropic's shape (`{"type": "error", "error":
//! {"type", "message"}}`, see [`ApiError::into_anthropic_response`]) with the
//! gateway's usual statuses; a failure after the first byte of a stream is an
//! `event: error` and the stream ends.

use crate::budget::{AdmitRequest, DEFAULT_OUTPUT_ALLOWANCE};
use crate::errors::ApiError;
use crate::gateway::Runtime;
use crate::handlers::{event_stream_head, read_request, route_result, Caller, Outcome};
use crate::http::{json_response, Body};
use crate::metrics::TokenCounts;
use crate::observe::{token_counts, StreamEnd};
use crate::request::{parse_json, take_options};
use crate::stream::{Piece, Pieces};
use bytes::Bytes;
use futures_util::StreamExt;
use gateway_budget::TokenUsage;
use gateway_providers::anthropic::ingress::{
    chat_response_to_messages, error_event, estimate_input_tokens, messages_to_chat_request,
    MessagesEvent, MessagesStreamEncoder,
};
use gateway_providers::sse::SseEvent;
use gateway_providers::{
    CallContext, ChunkStream, ErrorKind, NativeResponse, NativeStream, ProviderError,
};
use gateway_router::{tokens, with_system_prompt, CallGuard, Deployment, RequestOptions};
use gateway_types::{ChatChunk, ChatRequest, ChatResponse, JsonObject};
use http::{HeaderMap, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

/// Client headers a passthrough call forwards upstream.
const FORWARDED_HEADERS: &[&str] = &["anthropic-version", "anthropic-beta"];

/// `POST /v1/messages`.
pub(crate) async fn messages<B>(
    runtime: &Arc<Runtime>,
    request: Request<B>,
    caller: Caller<'_>,
    outcome: &mut Outcome,
) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (headers, bytes) = read_request(runtime, request, outcome).await?;
    let Parsed {
        mut native,
        mut chat,
    } = parse(&bytes)?;
    // Translated calls never reach an Anthropic deployment (those take the
    // native body), and no other upstream takes Anthropic's `thinking`
    // (OpenAI refuses unknown parameters); reasoning could not come back as
    // thinking blocks anyway.
    chat.extra.remove("thinking");
    outcome.requested = runtime.model_labels.get(chat.model.as_str()).cloned();
    let request_id = caller.request_id;
    let mut options = options(runtime, &mut native, &chat, &headers, request_id)?;
    caller.admit(
        runtime,
        AdmitRequest {
            model: &chat.model,
            call_type: "anthropic_messages",
            body_bytes: bytes.len(),
            max_output_tokens: chat
                .max_completion_tokens
                .or(chat.max_tokens)
                .map_or(DEFAULT_OUTPUT_ALLOWANCE, u64::from),
            request_id,
            end_user: chat.user.clone(),
        },
        outcome,
    )?;
    let native = Value::Object(native);
    let requested = chat.model.clone();
    let mut route_to = requested.clone();
    if let Some((group, matched)) = runtime.wildcard_match(&requested) {
        // Routed to the wildcard group; the answer keeps the name asked for.
        route_to = group.to_owned();
        options.call.wildcard = Some(matched);
        outcome.requested = runtime.model_labels.get(group).cloned();
    }
    let upstream_started = Instant::now();
    if chat.is_stream() {
        let result = runtime
            .router
            .route_stream(&route_to, &options, |deployment| {
                open_stream(deployment, &native, &chat, &options.call)
            })
            .await;
        outcome.upstream_time = Some(upstream_started.elapsed());
        let routed = route_result(runtime, result, outcome)?;
        let (opened, guard) = routed.value;
        let model = (routed.report.fallbacks == 0).then_some(requested);
        outcome.report = Some(routed.report);
        outcome.stream = Some(match opened {
            Opened::Native { first, rest } => native_pieces(first, rest, model, guard),
            Opened::Chat { first, rest } => translated_pieces(*first, rest, model, guard),
        });
        Ok(event_stream_head())
    } else {
        let result = runtime
            .router
            .route(&route_to, &options, |deployment| {
                call_once(deployment, &native, &chat, &options.call)
            })
            .await;
        outcome.upstream_time = Some(upstream_started.elapsed());
        let routed = route_result(runtime, result, outcome)?;
        let (answer, guard) = routed.value;
        let model = (routed.report.fallbacks == 0).then_some(requested);
        outcome.report = Some(routed.report);
        let (body, tokens) = match answer {
            Answer::Native(mut body) => {
                if let (Some(model), Some(object)) = (model, body.as_object_mut()) {
                    object.insert("model".to_owned(), Value::String(model));
                }
                let tokens = body.get("usage").map(native_usage);
                (body, tokens)
            }
            Answer::Chat(response) => {
                let model = model.unwrap_or_else(|| response.model.clone());
                let tokens = response.usage.as_ref().map(token_counts);
                (chat_response_to_messages(&response, &model), tokens)
            }
        };
        guard.finish(tokens.map_or(0, total));
        outcome.tokens = tokens;
        outcome.usage = tokens.map(|counts| TokenUsage {
            prompt_tokens: counts.input,
            completion_tokens: counts.output,
            cached_tokens: counts.cached,
        });
        Ok(json_response(StatusCode::OK, &body))
    }
}

/// `POST /v1/messages/count_tokens`: `{"input_tokens": n}`, counted with the
/// router's tokenizer over the request translated to a chat request (an
/// estimate: the upstream's own tokenizer may differ). No upstream is
/// called.
pub(crate) async fn count_tokens<B>(
    runtime: &Arc<Runtime>,
    request: Request<B>,
    outcome: &mut Outcome,
) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (_headers, bytes) = read_request(runtime, request, outcome).await?;
    let body: Value = parse_json(&bytes)?;
    let input_tokens = match messages_to_chat_request(&body) {
        Ok(chat) => tokens::count_chat(runtime.router.settings().tokenizer, &chat),
        // Blocks the translation refuses (server tools, ...) are still counted roughly.
        Err(_) if body.is_object() => estimate_input_tokens(&body),
        Err(error) => return Err(ApiError::invalid_request(error.message)),
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({ "input_tokens": input_tokens }),
    ))
}

/// A parsed Messages request: the client's body, and its translation.
struct Parsed {
    native: JsonObject,
    chat: ChatRequest,
}

fn parse(bytes: &[u8]) -> Result<Parsed, ApiError> {
    let body: Value = parse_json(bytes)?;
    let chat = messages_to_chat_request(&body)
        .map_err(|error| ApiError::invalid_request(error.message))?;
    let Value::Object(native) = body else {
        return Err(ApiError::invalid_request(
            "the request body must be a JSON object",
        ));
    };
    if chat.model.trim().is_empty() {
        return Err(ApiError::invalid_request("`model` must not be empty").with_param("model"));
    }
    let has_messages = native
        .get("messages")
        .and_then(Value::as_array)
        .is_some_and(|messages| !messages.is_empty());
    if !has_messages {
        return Err(
            ApiError::invalid_request("`messages` must contain at least one message")
                .with_param("messages"),
        );
    }
    Ok(Parsed { native, chat })
}

/// The routing options: the gateway's control fields are taken out of the
/// native body (so a passthrough does not forward them), but Anthropic's own
/// `metadata.user_id` stays.
fn options(
    runtime: &Runtime,
    native: &mut JsonObject,
    chat: &ChatRequest,
    headers: &HeaderMap,
    request_id: &str,
) -> Result<RequestOptions, ApiError> {
    let user_id = native
        .get("metadata")
        .and_then(|metadata| metadata.get("user_id"))
        .cloned();
    let mut options = take_options(native, headers, request_id)?;
    if let Some(user_id) = user_id {
        native.insert("metadata".to_owned(), json!({ "user_id": user_id }));
    }
    options.call.forward_headers = FORWARDED_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?;
            Some(((*name).to_owned(), value.to_owned()))
        })
        .collect();
    let settings = runtime.router.settings();
    if settings.enable_pre_call_checks && options.input_tokens.is_none() {
        options.input_tokens = Some(tokens::count_chat(settings.tokenizer, chat));
    }
    Ok(options)
}

/// A non-stream answer.
enum Answer {
    /// The upstream's own Messages body.
    Native(Value),
    /// A chat completion, to translate.
    Chat(Box<ChatResponse>),
}

/// A stream whose first item arrived.
enum Opened {
    /// The upstream's own events.
    Native { first: SseEvent, rest: NativeStream },
    /// Chat chunks, to translate.
    Chat {
        first: Box<ChatChunk>,
        rest: ChunkStream,
    },
}

async fn call_once(
    deployment: &Deployment,
    native: &Value,
    chat: &ChatRequest,
    cx: &CallContext,
) -> Result<Answer, ProviderError> {
    let prompt = deployment.settings.system_prompt.as_deref();
    let body = with_native_system_prompt(native, prompt);
    match deployment.provider.anthropic_messages(&body, cx).await? {
        Some(NativeResponse::Json(body)) => Ok(Answer::Native(body)),
        Some(NativeResponse::Stream(_)) => Err(ProviderError::new(
            ErrorKind::InvalidResponse,
            "the upstream answered a stream to a non-stream request",
        )),
        None => {
            let request = with_system_prompt(chat, prompt);
            let response = deployment.provider.chat(&request, cx).await?;
            Ok(Answer::Chat(Box::new(response)))
        }
    }
}

/// Opens a stream and waits for its first item, so that a failure before
/// it is retried and falls back like any other.
async fn open_stream(
    deployment: &Deployment,
    native: &Value,
    chat: &ChatRequest,
    cx: &CallContext,
) -> Result<Opened, ProviderError> {
    let prompt = deployment.settings.system_prompt.as_deref();
    let body = with_native_system_prompt(native, prompt);
    let before_first = || {
        ProviderError::new(
            ErrorKind::InvalidResponse,
            "the stream ended before its first event",
        )
    };
    match deployment.provider.anthropic_messages(&body, cx).await? {
        Some(NativeResponse::Stream(mut rest)) => match rest.next().await {
            Some(Ok(first)) => Ok(Opened::Native { first, rest }),
            Some(Err(error)) => Err(error),
            None => Err(before_first()),
        },
        Some(NativeResponse::Json(_)) => Err(ProviderError::new(
            ErrorKind::InvalidResponse,
            "the upstream answered JSON to a stream request",
        )),
        None => {
            let request = with_system_prompt(chat, prompt);
            let mut rest = deployment.provider.chat_stream(&request, cx).await?;
            match rest.next().await {
                Some(Ok(first)) => Ok(Opened::Chat {
                    first: Box::new(first),
                    rest,
                }),
                Some(Err(error)) => Err(error),
                None => Err(before_first()),
            }
        }
    }
}

/// The native body with the deployment's system prompt put first in
/// `system`, borrowed unchanged when there is none.
fn with_native_system_prompt<'a>(body: &'a Value, prompt: Option<&str>) -> Cow<'a, Value> {
    let Some(prompt) = prompt else {
        return Cow::Borrowed(body);
    };
    let mut body = body.clone();
    let mut blocks = vec![json!({"type": "text", "text": prompt})];
    match body.get("system") {
        Some(Value::String(text)) => blocks.push(json!({"type": "text", "text": text})),
        Some(Value::Array(existing)) => blocks.extend(existing.iter().cloned()),
        _ => {}
    }
    if let Some(object) = body.as_object_mut() {
        object.insert("system".to_owned(), Value::Array(blocks));
    }
    Cow::Owned(body)
}

/// Tokens in a Messages `usage` object: input includes cache reads and
/// writes, as the chat usage's `prompt_tokens` does.
fn native_usage(usage: &Value) -> TokenCounts {
    let field = |name: &str| usage.get(name).and_then(Value::as_u64).unwrap_or(0);
    let cached = field("cache_read_input_tokens");
    TokenCounts {
        input: field("input_tokens") + cached + field("cache_creation_input_tokens"),
        output: field("output_tokens"),
        cached,
    }
}

fn total(tokens: TokenCounts) -> u64 {
    tokens.input + tokens.output
}

fn encode(events: &[MessagesEvent]) -> Bytes {
    let mut text = String::new();
    for event in events {
        text.push_str(&event.to_sse());
    }
    Bytes::from(text)
}

/// The piece that ends a stream after `error`, reported to the router too.
fn failed(error: ProviderError, guard: CallGuard, tokens: Option<TokenCounts>) -> Piece {
    guard.fail(&error, tokens.map_or(0, total));
    Piece {
        bytes: Bytes::from(error_event(&error).to_sse()),
        tokens: None,
        chars: 0,
        end: Some(StreamEnd::Failed {
            kind: error.kind.as_str(),
            message: error.message,
        }),
    }
}

/// A chat stream translated into Anthropic's event sequence.
fn translated_pieces(
    first: ChatChunk,
    rest: ChunkStream,
    model: Option<String>,
    guard: CallGuard,
) -> Pieces {
    struct State {
        chunks: ChunkStream,
        encoder: MessagesStreamEncoder,
        guard: CallGuard,
        tokens: Option<TokenCounts>,
    }
    let model = model.unwrap_or_else(|| first.model.clone());
    let state = State {
        encoder: MessagesStreamEncoder::new(&model),
        chunks: Box::pin(futures_util::stream::once(async { Ok(first) }).chain(rest)),
        guard,
        tokens: None,
    };
    Box::pin(futures_util::stream::unfold(
        Some(state),
        |state| async move {
            let mut state = state?;
            match state.chunks.next().await {
                Some(Ok(chunk)) => {
                    let tokens = chunk.usage.as_ref().map(token_counts);
                    if tokens.is_some() {
                        state.tokens = tokens;
                    }
                    let chars = chunk
                        .choices
                        .iter()
                        .filter_map(|choice| choice.delta.content.as_ref())
                        .map(String::len)
                        .sum();
                    let piece = Piece {
                        bytes: encode(&state.encoder.push(&chunk)),
                        tokens,
                        chars,
                        end: None,
                    };
                    Some((piece, Some(state)))
                }
                None => {
                    let piece = Piece {
                        bytes: encode(&state.encoder.finish()),
                        tokens: None,
                        chars: 0,
                        end: Some(StreamEnd::Completed),
                    };
                    state.guard.finish(state.tokens.map_or(0, total));
                    Some((piece, None))
                }
                Some(Err(error)) => Some((failed(error, state.guard, state.tokens), None)),
            }
        },
    ))
}

/// The upstream's own events, written as they came; `message_start` gets
/// the client's alias as its model, and the usage is watched for the log.
fn native_pieces(
    first: SseEvent,
    rest: NativeStream,
    model: Option<String>,
    guard: CallGuard,
) -> Pieces {
    struct State {
        events: NativeStream,
        model: Option<String>,
        guard: CallGuard,
        usage: JsonObject,
    }
    let state = State {
        events: Box::pin(futures_util::stream::once(async { Ok(first) }).chain(rest)),
        model,
        guard,
        usage: JsonObject::new(),
    };
    Box::pin(futures_util::stream::unfold(
        Some(state),
        |state| async move {
            let mut state = state?;
            match state.events.next().await {
                Some(Ok(mut event)) => {
                    let tokens = watch_event(&mut event, &mut state.usage, state.model.as_deref());
                    let piece = Piece {
                        bytes: frame(&event),
                        tokens,
                        chars: 0,
                        end: None,
                    };
                    Some((piece, Some(state)))
                }
                None => {
                    let tokens = native_usage(&Value::Object(state.usage));
                    state.guard.finish(total(tokens));
                    let piece = Piece {
                        bytes: Bytes::new(),
                        tokens: None,
                        chars: 0,
                        end: Some(StreamEnd::Completed),
                    };
                    Some((piece, None))
                }
                Some(Err(error)) => {
                    let tokens = native_usage(&Value::Object(state.usage));
                    Some((failed(error, state.guard, Some(tokens)), None))
                }
            }
        },
    ))
}

/// Reads the usage of `message_start` and `message_delta` into `usage`
/// (answering the counts when they changed), and stamps `model` on
/// `message_start`.
fn watch_event(
    event: &mut SseEvent,
    usage: &mut JsonObject,
    model: Option<&str>,
) -> Option<TokenCounts> {
    let name = event.event.as_deref();
    if name != Some("message_start") && name != Some("message_delta") {
        return None;
    }
    let Ok(mut data) = serde_json::from_str::<Value>(&event.data) else {
        return None;
    };
    let reported = if name == Some("message_start") {
        if let (Some(model), Some(message)) = (model, data.get_mut("message")) {
            message["model"] = Value::String(model.to_owned());
            event.data = data.to_string();
        }
        data.get("message").and_then(|message| message.get("usage"))
    } else {
        data.get("usage")
    };
    let Some(Value::Object(reported)) = reported else {
        return None;
    };
    for (key, value) in reported {
        if value.is_u64() {
            usage.insert(key.clone(), value.clone());
        }
    }
    Some(native_usage(&Value::Object(usage.clone())))
}

/// One event in `text/event-stream` framing.
fn frame(event: &SseEvent) -> Bytes {
    let mut text = String::with_capacity(event.data.len() + 32);
    if let Some(name) = &event.event {
        text.push_str("event: ");
        text.push_str(name);
        text.push('\n');
    }
    for line in event.data.split('\n') {
        text.push_str("data: ");
        text.push_str(line);
        text.push('\n');
    }
    text.push('\n');
    Bytes::from(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_usage_counts_cache_reads_and_writes_as_input() {
        let tokens = native_usage(&json!({
            "input_tokens": 5, "output_tokens": 7,
            "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20
        }));
        assert_eq!((tokens.input, tokens.output, tokens.cached), (125, 7, 100));
    }

    #[test]
    fn system_prompt_goes_first_and_keeps_the_clients_blocks() {
        let body = json!({"system": [{"type": "text", "text": "client", "cache_control": {"type": "ephemeral"}}]});
        let with = with_native_system_prompt(&body, Some("deployment"));
        assert_eq!(
            with["system"],
            json!([{"type": "text", "text": "deployment"},
                   {"type": "text", "text": "client", "cache_control": {"type": "ephemeral"}}])
        );
        let plain = json!({"system": "client"});
        assert_eq!(
            with_native_system_prompt(&plain, Some("d"))["system"],
            json!([{"type": "text", "text": "d"}, {"type": "text", "text": "client"}])
        );
        assert!(matches!(
            with_native_system_prompt(&plain, None),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn message_start_gets_the_alias_and_deltas_update_the_usage() {
        let mut usage = JsonObject::new();
        let mut start = SseEvent {
            event: Some("message_start".to_owned()),
            data: json!({"type": "message_start", "message": {"model": "claude-x", "usage": {"input_tokens": 3, "output_tokens": 1}}}).to_string(),
        };
        let tokens = watch_event(&mut start, &mut usage, Some("alias"));
        assert_eq!(tokens.map(|t| (t.input, t.output)), Some((3, 1)));
        assert!(start.data.contains("\"model\":\"alias\""));
        let mut delta = SseEvent {
            event: Some("message_delta".to_owned()),
            data: json!({"type": "message_delta", "usage": {"output_tokens": 9}}).to_string(),
        };
        let tokens = watch_event(&mut delta, &mut usage, Some("alias"));
        assert_eq!(tokens.map(|t| (t.input, t.output)), Some((3, 9)));
        assert_eq!(
            frame(&delta),
            Bytes::from(format!("event: message_delta\ndata: {}\n\n", delta.data))
        );
    }
}
