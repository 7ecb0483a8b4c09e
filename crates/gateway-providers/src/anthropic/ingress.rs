//! The gateway's Anthropic-format ingress (`POST /v1/messages`): pure
//! conversions between the Anthropic Messages API and the OpenAI shapes the
//! router and providers speak. The HTTP endpoint lives in the server; it
//! calls, in order:
//!
//! 1. [`Provider::anthropic_messages`](crate::Provider::anthropic_messages)
//!    on the chosen deployment; when it answers `Some`, the upstream speaks
//!    Anthropic and its answer is returned as is (no round trip);
//! 2. otherwise [`messages_to_chat_request`] and the ordinary chat call;
//! 3. [`chat_response_to_messages`] for a non-stream answer, or a
//!    [`MessagesStreamEncoder`] fed every chunk ([`MessagesStreamEncoder::push`])
//!    then [`MessagesStreamEncoder::finish`] at the clean end, or
//!    [`error_event`] after an `Err` item;
//! 4. [`estimate_input_tokens`] for `/v1/messages/count_tokens`.
//!
//! What is not translated: thinking blocks in requests and reasoning in
//! answers are dropped (their signatures cannot be made up), server tools
//! (`web_search`, ...) are refused, `thinking` is passed through as an extra
//! field (the Anthropic adapter forwards it; others reject or drop it).

use crate::error::{ErrorKind, ProviderError};
use gateway_types::chat::{FunctionDefinition, NamedFunction, NamedToolChoice};
use gateway_types::{
    ChatChunk, ChatRequest, ChatResponse, ContentPart, FunctionCall, ImageUrl, JsonObject, Message,
    MessageContent, Role, Stop, StreamOptions, Tool, ToolCall, ToolChoice, Usage,
};
use serde_json::{json, Value};

/// Why an Anthropic Messages request cannot be translated; the server
/// answers it as a 400 `invalid_request_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IngressError {
    /// What is wrong, naming the field.
    pub message: String,
}

fn invalid(message: impl Into<String>) -> IngressError {
    IngressError {
        message: message.into(),
    }
}

/// Converts an Anthropic Messages request body into a chat request.
pub fn messages_to_chat_request(body: &Value) -> Result<ChatRequest, IngressError> {
    let Some(object) = body.as_object() else {
        return Err(invalid("the request body must be a JSON object"));
    };
    let model = object
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("`model` is required and must be a string"))?;
    let mut messages = Vec::new();
    match object.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => messages.push(Message::text(Role::System, text.clone())),
        Some(Value::Array(blocks)) => {
            for block in blocks {
                let text = block
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("`system` blocks must be text blocks"))?;
                let mut message = Message::text(Role::System, text);
                if let Some(cache_control) = block.get("cache_control") {
                    message
                        .extra
                        .insert("cache_control".to_owned(), cache_control.clone());
                }
                messages.push(message);
            }
        }
        Some(_) => {
            return Err(invalid(
                "`system` must be a string or a list of text blocks",
            ))
        }
    }
    let Some(turns) = object.get("messages").and_then(Value::as_array) else {
        return Err(invalid("`messages` is required and must be a list"));
    };
    for (position, turn) in turns.iter().enumerate() {
        convert_turn(turn, position, &mut messages)?;
    }

    let mut request = ChatRequest {
        model: model.to_owned(),
        messages: messages.into(),
        ..ChatRequest::default()
    };
    request.max_tokens = match object.get("max_tokens") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .and_then(|tokens| u32::try_from(tokens).ok())
                .ok_or_else(|| invalid("`max_tokens` must be a positive integer"))?,
        ),
    };
    request.temperature = object.get("temperature").and_then(Value::as_f64);
    request.top_p = object.get("top_p").and_then(Value::as_f64);
    if let Some(top_k) = object.get("top_k").filter(|value| !value.is_null()) {
        request.extra.insert("top_k".to_owned(), top_k.clone());
    }
    if let Some(thinking) = object.get("thinking").filter(|value| !value.is_null()) {
        request
            .extra
            .insert("thinking".to_owned(), thinking.clone());
    }
    if let Some(Value::Array(sequences)) = object.get("stop_sequences") {
        let sequences: Vec<String> = sequences
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        if !sequences.is_empty() {
            request.stop = Some(Stop::Many(sequences));
        }
    }
    request.user = object
        .get("metadata")
        .and_then(|metadata| metadata.get("user_id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    if object.get("stream").and_then(Value::as_bool) == Some(true) {
        request.stream = Some(true);
        request.stream_options = Some(StreamOptions {
            include_usage: Some(true),
            extra: JsonObject::new(),
        });
    }
    if let Some(Value::Array(tools)) = object.get("tools") {
        request.tools = Some(tools.iter().map(convert_tool).collect::<Result<_, _>>()?);
    }
    if let Some(choice) = object.get("tool_choice").filter(|value| !value.is_null()) {
        let kind = choice.get("type").and_then(Value::as_str).unwrap_or("auto");
        request.tool_choice = Some(match kind {
            "any" => ToolChoice::Mode("required".to_owned()),
            "none" => ToolChoice::Mode("none".to_owned()),
            "tool" => {
                let name = choice
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("`tool_choice.name` is required for type `tool`"))?;
                ToolChoice::Named(NamedToolChoice {
                    kind: "function".to_owned(),
                    function: NamedFunction {
                        name: name.to_owned(),
                    },
                })
            }
            _ => ToolChoice::Mode("auto".to_owned()),
        });
        if choice
            .get("disable_parallel_tool_use")
            .and_then(Value::as_bool)
            == Some(true)
        {
            request.parallel_tool_calls = Some(false);
        }
    }
    Ok(request)
}

fn convert_tool(tool: &Value) -> Result<Tool, IngressError> {
    let kind = tool.get("type").and_then(Value::as_str).unwrap_or("custom");
    if kind != "custom" {
        return Err(invalid(format!(
            "tools of type `{kind}` are not supported by this gateway"
        )));
    }
    let name = tool
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("every tool needs a `name`"))?;
    let mut extra = JsonObject::new();
    if let Some(cache_control) = tool.get("cache_control") {
        extra.insert("cache_control".to_owned(), cache_control.clone());
    }
    Ok(Tool {
        kind: "function".to_owned(),
        function: FunctionDefinition {
            name: name.to_owned(),
            description: tool
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            parameters: tool.get("input_schema").cloned(),
            extra,
        },
    })
}

fn convert_turn(turn: &Value, position: usize, out: &mut Vec<Message>) -> Result<(), IngressError> {
    let role = match turn.get("role").and_then(Value::as_str) {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        _ => {
            return Err(invalid(format!(
                "messages[{position}].role must be `user` or `assistant`"
            )))
        }
    };
    let blocks = match turn.get("content") {
        Some(Value::String(text)) => {
            out.push(Message::text(role, text.clone()));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return Err(invalid(format!(
                "messages[{position}].content must be a string or a list"
            )))
        }
    };
    let mut parts = Vec::new();
    let mut tool_calls = Vec::new();
    let mut cache_control = None;
    for block in blocks {
        if let Some(value) = block.get("cache_control") {
            cache_control = Some(value.clone());
        }
        match block.get("type").and_then(Value::as_str).unwrap_or("") {
            "text" => {
                let text = block
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                parts.push(ContentPart::Text {
                    text: text.to_owned(),
                });
            }
            "image" => parts.push(image_part(block.get("source"), position)?),
            "document" => {
                let source = block.get("source");
                let data = source
                    .and_then(|source| source.get("data"))
                    .and_then(Value::as_str);
                let media_type = source
                    .and_then(|source| source.get("media_type"))
                    .and_then(Value::as_str);
                let (Some(data), Some(media_type)) = (data, media_type) else {
                    return Err(invalid(format!(
                        "messages[{position}]: only base64 documents are supported"
                    )));
                };
                let mut file = JsonObject::new();
                file.insert("type".to_owned(), json!("file"));
                file.insert(
                    "file".to_owned(),
                    json!({ "file_data": format!("data:{media_type};base64,{data}") }),
                );
                parts.push(ContentPart::Other(file));
            }
            "tool_use" => {
                let id = block.get("id").and_then(Value::as_str).unwrap_or_default();
                let name = block
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                tool_calls.push(ToolCall {
                    id: id.to_owned(),
                    kind: "function".to_owned(),
                    function: FunctionCall {
                        name: name.to_owned(),
                        arguments: input.to_string(),
                    },
                });
            }
            "tool_result" => {
                let id = block
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let text = match block.get("content") {
                    Some(Value::String(text)) => text.clone(),
                    Some(Value::Array(items)) => items
                        .iter()
                        .filter_map(|item| item.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    _ => String::new(),
                };
                let mut message = Message::text(Role::Tool, text);
                message.tool_call_id = Some(id.to_owned());
                // Tool results answer the previous turn: they come first.
                out.push(message);
            }
            // Thinking blocks need their signatures; other upstreams cannot take them.
            "thinking" | "redacted_thinking" => {}
            other => {
                return Err(invalid(format!(
                    "messages[{position}]: content blocks of type `{other}` are not supported"
                )))
            }
        }
    }
    if parts.is_empty() && tool_calls.is_empty() {
        return Ok(());
    }
    let content = match parts.as_slice() {
        [] => None,
        [ContentPart::Text { text }] => Some(MessageContent::Text(text.clone())),
        _ if role == Role::Assistant => Some(MessageContent::Text(
            MessageContent::Parts(parts).joined_text(),
        )),
        _ => Some(MessageContent::Parts(parts)),
    };
    let mut message = Message {
        role,
        content,
        name: None,
        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
        tool_call_id: None,
        extra: JsonObject::new(),
    };
    if let Some(cache_control) = cache_control {
        message
            .extra
            .insert("cache_control".to_owned(), cache_control);
    }
    out.push(message);
    Ok(())
}

fn image_part(source: Option<&Value>, position: usize) -> Result<ContentPart, IngressError> {
    let source = source.ok_or_else(|| {
        invalid(format!(
            "messages[{position}]: image blocks need a `source`"
        ))
    })?;
    let text = |key: &str| source.get(key).and_then(Value::as_str);
    let url = match (text("type"), text("media_type"), text("data"), text("url")) {
        (Some("base64"), Some(media_type), Some(data), _) => {
            format!("data:{media_type};base64,{data}")
        }
        (Some("url"), _, _, Some(url)) => url.to_owned(),
        _ => {
            return Err(invalid(format!(
                "messages[{position}]: unsupported image source"
            )))
        }
    };
    Ok(ContentPart::ImageUrl {
        image_url: ImageUrl { url, detail: None },
    })
}

/// Anthropic's `stop_reason` for an OpenAI `finish_reason`.
pub fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic's usage object: `input_tokens` excludes cache reads and writes.
pub fn usage_to_messages(usage: &Usage) -> Value {
    let cache_read = usage.cached_tokens();
    let cache_creation = usage
        .extra
        .get("cache_creation_input_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut value = json!({
        "input_tokens": usage.prompt_tokens.saturating_sub(cache_read + cache_creation),
        "output_tokens": usage.completion_tokens,
    });
    if cache_read > 0 {
        value["cache_read_input_tokens"] = json!(cache_read);
    }
    if cache_creation > 0 {
        value["cache_creation_input_tokens"] = json!(cache_creation);
    }
    value
}

fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_owned()
    } else {
        format!("msg_{}", id.strip_prefix("chatcmpl-").unwrap_or(id))
    }
}

fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(arguments).unwrap_or_else(|_| json!({}))
}

/// Converts a chat response into an Anthropic Messages response; `model` is
/// the name the client asked for.
pub fn chat_response_to_messages(response: &ChatResponse, model: &str) -> Value {
    let choice = response.choices.first();
    let mut content = Vec::new();
    if let Some(text) = choice
        .and_then(|choice| choice.message.content.as_deref())
        .filter(|text| !text.is_empty())
    {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in choice
        .and_then(|choice| choice.message.tool_calls.as_ref())
        .into_iter()
        .flatten()
    {
        content.push(json!({
            "type": "tool_use",
            "id": call.id,
            "name": call.function.name,
            "input": tool_input(&call.function.arguments),
        }));
    }
    json!({
        "id": message_id(&response.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.and_then(|choice| choice.finish_reason.as_deref())),
        "stop_sequence": null,
        "usage": response.usage.as_ref().map(usage_to_messages).unwrap_or_else(|| json!({"input_tokens": 0, "output_tokens": 0})),
    })
}

/// One Anthropic server-sent event: write it as `event: {event}\ndata: {data}\n\n`.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagesEvent {
    /// The event name, equal to `data.type`.
    pub event: &'static str,
    /// The event's JSON.
    pub data: Value,
}

impl MessagesEvent {
    fn new(event: &'static str, mut data: Value) -> Self {
        data["type"] = json!(event);
        Self { event, data }
    }

    /// The event in `text/event-stream` framing.
    pub fn to_sse(&self) -> String {
        format!("event: {}\ndata: {}\n\n", self.event, self.data)
    }
}

/// The `error` event to send after a stream's `Err` item; the stream ends
/// after it.
pub fn error_event(error: &ProviderError) -> MessagesEvent {
    let kind = match error.kind {
        ErrorKind::Overloaded => "overloaded_error",
        ErrorKind::RateLimited => "rate_limit_error",
        ErrorKind::Auth => "authentication_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::BadRequest
        | ErrorKind::ContextWindowExceeded
        | ErrorKind::ContentFiltered
        | ErrorKind::Unsupported => "invalid_request_error",
        ErrorKind::Timeout => "timeout_error",
        ErrorKind::Connect | ErrorKind::Upstream | ErrorKind::InvalidResponse => "api_error",
    };
    MessagesEvent::new(
        "error",
        json!({"error": {"type": kind, "message": error.message}}),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenBlock {
    None,
    Text,
    Tool { openai_index: u32 },
}

/// Turns a sequence of OpenAI chunks into the Anthropic event sequence:
/// `message_start`, a `content_block_start` / `content_block_delta` /
/// `content_block_stop` triple per text run and per tool call (arguments as
/// `input_json_delta`), then `message_delta` (stop reason and usage) and
/// `message_stop` from [`MessagesStreamEncoder::finish`].
#[derive(Debug)]
pub struct MessagesStreamEncoder {
    model: String,
    started: bool,
    open: OpenBlock,
    next_block: u32,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    finished: bool,
}

impl MessagesStreamEncoder {
    /// An encoder for one response; `model` is the name the client asked for.
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            started: false,
            open: OpenBlock::None,
            next_block: 0,
            finish_reason: None,
            usage: None,
            finished: false,
        }
    }

    fn start(&mut self, id: &str, out: &mut Vec<MessagesEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(MessagesEvent::new(
            "message_start",
            json!({"message": {
                "id": message_id(if id.is_empty() { "gateway" } else { id }),
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }}),
        ));
    }

    fn close_block(&mut self, out: &mut Vec<MessagesEvent>) {
        if self.open != OpenBlock::None {
            out.push(MessagesEvent::new(
                "content_block_stop",
                json!({"index": self.next_block - 1}),
            ));
            self.open = OpenBlock::None;
        }
    }

    fn open_block(&mut self, block: OpenBlock, content_block: Value, out: &mut Vec<MessagesEvent>) {
        self.close_block(out);
        out.push(MessagesEvent::new(
            "content_block_start",
            json!({"index": self.next_block, "content_block": content_block}),
        ));
        self.next_block += 1;
        self.open = block;
    }

    /// The events one chunk becomes.
    pub fn push(&mut self, chunk: &ChatChunk) -> Vec<MessagesEvent> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.start(&chunk.id, &mut out);
        if let Some(usage) = &chunk.usage {
            self.usage = Some(usage.clone());
        }
        // Anthropic has one answer per message: only the first choice is sent.
        for choice in chunk.choices.iter().filter(|choice| choice.index == 0) {
            if let Some(text) = choice
                .delta
                .content
                .as_deref()
                .filter(|text| !text.is_empty())
            {
                if self.open != OpenBlock::Text {
                    self.open_block(
                        OpenBlock::Text,
                        json!({"type": "text", "text": ""}),
                        &mut out,
                    );
                }
                out.push(MessagesEvent::new(
                    "content_block_delta",
                    json!({"index": self.next_block - 1, "delta": {"type": "text_delta", "text": text}}),
                ));
            }
            for call in choice.delta.tool_calls.iter().flatten() {
                let function = call.function.as_ref();
                let is_new = call.id.is_some()
                    || self.open
                        != (OpenBlock::Tool {
                            openai_index: call.index,
                        });
                if is_new {
                    let block = json!({
                        "type": "tool_use",
                        "id": call.id.clone().unwrap_or_else(|| format!("toolu_{}", call.index)),
                        "name": function.and_then(|function| function.name.clone()).unwrap_or_default(),
                        "input": {},
                    });
                    self.open_block(
                        OpenBlock::Tool {
                            openai_index: call.index,
                        },
                        block,
                        &mut out,
                    );
                }
                if let Some(arguments) = function
                    .and_then(|function| function.arguments.as_deref())
                    .filter(|a| !a.is_empty())
                {
                    out.push(MessagesEvent::new(
                        "content_block_delta",
                        json!({"index": self.next_block - 1, "delta": {"type": "input_json_delta", "partial_json": arguments}}),
                    ));
                }
            }
            if let Some(reason) = &choice.finish_reason {
                self.finish_reason = Some(reason.clone());
            }
        }
        out
    }

    /// The closing events, after the last chunk of a stream that ended cleanly.
    pub fn finish(&mut self) -> Vec<MessagesEvent> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.start("", &mut out);
        self.close_block(&mut out);
        self.finished = true;
        let usage = self
            .usage
            .as_ref()
            .map(usage_to_messages)
            .unwrap_or_else(|| json!({"output_tokens": 0}));
        out.push(MessagesEvent::new(
            "message_delta",
            json!({"delta": {"stop_reason": stop_reason(self.finish_reason.as_deref()), "stop_sequence": null}, "usage": usage}),
        ));
        out.push(MessagesEvent::new("message_stop", json!({})));
        out
    }
}

/// A rough input-token count for `/v1/messages/count_tokens`: about four
/// characters per token over the text of the system prompt, the messages
/// (text, tool inputs and results) and the tool definitions, plus a few
/// tokens per message. An estimate, not the upstream's tokenizer.
pub fn estimate_input_tokens(body: &Value) -> u64 {
    fn characters(value: &Value) -> usize {
        match value {
            Value::String(text) => text.chars().count(),
            Value::Array(items) => items.iter().map(characters).sum(),
            Value::Object(object) => object
                .iter()
                .filter(|(key, _)| {
                    !matches!(
                        key.as_str(),
                        "type" | "cache_control" | "id" | "tool_use_id" | "source"
                    )
                })
                .map(|(_, value)| characters(value))
                .sum(),
            Value::Number(number) => number.to_string().len(),
            Value::Bool(_) | Value::Null => 1,
        }
    }
    let mut chars = 0;
    for key in ["system", "tools"] {
        chars += body.get(key).map(characters).unwrap_or(0);
    }
    let messages = body.get("messages").and_then(Value::as_array);
    let message_count = messages.map(Vec::len).unwrap_or(0);
    chars += messages
        .map(|messages| {
            messages
                .iter()
                .map(|m| characters(m.get("content").unwrap_or(&Value::Null)))
                .sum()
        })
        .unwrap_or(0);
    (chars as u64).div_ceil(4) + 3 * message_count as u64 + 1
}

#[cfg(test)]
#[path = "ingress_tests.rs"]
mod tests;
