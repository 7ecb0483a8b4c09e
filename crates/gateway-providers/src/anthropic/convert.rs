//! Pure translation between the OpenAI shapes and the Anthropic Messages API.

use super::wire::{
    Block, BlockDelta, ErrorBody, ErrorEnvelope, MessagesRequest, MessagesResponse, StreamEvent,
    WireMessage, WireTool, WireUsage,
};
use crate::error::{ErrorKind, ProviderError};
use crate::http::BufferedResponse;
use crate::sse::SseEvent;
use crate::translate::{parse_data_url, ParamPolicy, StreamTranslate, OPENAI_ONLY_PARAMS};
use gateway_types::chat::PromptTokensDetails;
use gateway_types::{
    ChatChoice, ChatChunk, ChatRequest, ChatResponse, ChunkChoice, ContentPart, Delta,
    FunctionCall, FunctionCallDelta, Message, MessageContent, ResponseMessage, Role, ToolCall,
    ToolCallDelta, ToolChoice, Usage,
};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The provider name in messages.
pub(crate) const PROVIDER: &str = "anthropic";

/// OpenAI parameters the Messages API has no equivalent for.
const UNSUPPORTED: &[&str] = &["presence_penalty", "frequency_penalty", "seed", "n"];

/// The tool that carries a `response_format` answer: Anthropic has no JSON
/// mode, so (as LiteLLM does) the schema becomes a tool the model is forced
/// to call, and the call's input becomes the answer's text.
pub(crate) const JSON_TOOL: &str = "json_tool_call";

/// The schema of a JSON-mode request: `Some` when `response_format` asks
/// for JSON and the request has no tools of its own.
pub(crate) fn json_mode_schema(request: &ChatRequest) -> Option<Value> {
    let format = request.response_format.as_ref()?;
    if request
        .tools
        .as_ref()
        .is_some_and(|tools| !tools.is_empty())
    {
        return None;
    }
    match format.get("type").and_then(Value::as_str) {
        Some("json_object") => Some(json!({"type": "object"})),
        Some("json_schema") => Some(
            format
                .get("json_schema")
                .and_then(|schema| schema.get("schema"))
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"})),
        ),
        _ => None,
    }
}

/// How the answer's content arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputMode {
    /// Text and tool calls, as the model wrote them.
    Plain,
    /// JSON mode: the forced [`JSON_TOOL`] call's input is the answer's text.
    JsonTool,
}

/// What the deployment adds to every request.
#[derive(Debug, Clone)]
pub(crate) struct RequestOptions<'a> {
    /// The upstream model id.
    pub model: &'a str,
    /// `max_tokens` when neither the request nor the deployment sets it.
    pub default_max_tokens: u32,
    /// Drop unsupported parameters instead of failing.
    pub drop_params: bool,
    /// Ask for a stream.
    pub stream: bool,
}

/// The default output limit of a model: Anthropic requires `max_tokens`.
pub(crate) fn default_max_tokens(model: &str) -> u32 {
    let is_claude_3_base = model.contains("claude-3-")
        && !model.contains("claude-3-5")
        && !model.contains("claude-3-7");
    if is_claude_3_base {
        4096
    } else {
        8192
    }
}

/// Translates an OpenAI chat request (defaults already applied).
pub(crate) fn request_to_wire(
    request: &ChatRequest,
    options: &RequestOptions<'_>,
) -> Result<MessagesRequest, ProviderError> {
    let mut request = request.clone();
    let policy = ParamPolicy {
        provider: PROVIDER,
        drop_params: options.drop_params,
    };
    let unsupported: Vec<&str> = UNSUPPORTED
        .iter()
        .chain(OPENAI_ONLY_PARAMS)
        .copied()
        .collect();
    policy.strip(&mut request, &unsupported)?;
    let json_schema = json_mode_schema(&request);
    let wants_text = request
        .response_format
        .as_ref()
        .is_some_and(|format| format.get("type").and_then(Value::as_str) == Some("text"));
    if request.response_format.is_some() && json_schema.is_none() && !wants_text {
        // JSON mode next to the client's own tools cannot be forced.
        policy.unsupported("response_format")?;
    }

    let (system, messages) = convert_messages(&request.messages)?;
    let tools: Vec<WireTool> = request
        .tools
        .iter()
        .flatten()
        .map(|tool| WireTool {
            name: tool.function.name.clone(),
            description: tool.function.description.clone(),
            input_schema: tool
                .function
                .parameters
                .clone()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            cache_control: tool.function.extra.get("cache_control").cloned(),
        })
        .collect();
    let mut tool_choice = request.tool_choice.as_ref().map(|choice| match choice {
        ToolChoice::Mode(mode) => match mode.as_str() {
            "required" | "any" => json!({"type": "any"}),
            "none" => json!({"type": "none"}),
            _ => json!({"type": "auto"}),
        },
        ToolChoice::Named(named) => json!({"type": "tool", "name": named.function.name}),
    });
    if request.parallel_tool_calls == Some(false) && !tools.is_empty() {
        let choice = tool_choice.get_or_insert_with(|| json!({"type": "auto"}));
        if let Some(object) = choice.as_object_mut() {
            object.insert("disable_parallel_tool_use".to_owned(), Value::Bool(true));
        }
    }
    if tools.is_empty()
        && tool_choice
            .as_ref()
            .is_some_and(|choice| choice["type"] == "none")
    {
        tool_choice = None;
    }
    let (tools, tool_choice) = match json_schema {
        Some(schema) => (
            vec![WireTool {
                name: JSON_TOOL.to_owned(),
                description: Some("Respond with a JSON object.".to_owned()),
                input_schema: schema,
                cache_control: None,
            }],
            Some(json!({"type": "tool", "name": JSON_TOOL})),
        ),
        None => (tools, tool_choice),
    };
    let mut extra = std::mem::take(&mut request.extra);
    // OpenAI's `metadata` is free-form; Anthropic's takes only `user_id`.
    extra.remove("metadata");
    let metadata = request.user.as_ref().map(|user| json!({"user_id": user}));
    Ok(MessagesRequest {
        model: options.model.to_owned(),
        messages,
        system,
        max_tokens: request.output_limit().unwrap_or(options.default_max_tokens),
        stop_sequences: request
            .stop
            .as_ref()
            .map(|stop| stop.to_vec())
            .unwrap_or_default(),
        temperature: request.temperature,
        top_p: request.top_p,
        metadata,
        tools,
        tool_choice,
        stream: options.stream.then_some(true),
        extra,
    })
}

fn convert_messages(messages: &[Message]) -> Result<(Vec<Block>, Vec<WireMessage>), ProviderError> {
    let mut system = Vec::new();
    let mut turns: Vec<WireMessage> = Vec::new();
    for message in messages {
        let cache_control = message.extra.get("cache_control").cloned();
        let (role, mut blocks) = match message.role {
            Role::System | Role::Developer => {
                let mut blocks = content_blocks(message.content.as_ref())?;
                if let (Some(cache_control), Some(last)) = (cache_control, blocks.last_mut()) {
                    last.set_cache_control(cache_control);
                }
                system.extend(blocks);
                continue;
            }
            Role::User => ("user", content_blocks(message.content.as_ref())?),
            Role::Assistant => ("assistant", assistant_blocks(message)?),
            Role::Tool | Role::Function => ("user", vec![tool_result_block(message)?]),
        };
        if blocks.is_empty() {
            continue;
        }
        if let (Some(cache_control), Some(last)) = (cache_control, blocks.last_mut()) {
            last.set_cache_control(cache_control);
        }
        // Consecutive turns of one role (tool results, then user text) are one turn.
        match turns.last_mut() {
            Some(previous) if previous.role == role => previous.content.extend(blocks),
            _ => turns.push(WireMessage {
                role,
                content: blocks,
            }),
        }
    }
    Ok((system, turns))
}

fn content_blocks(content: Option<&MessageContent>) -> Result<Vec<Block>, ProviderError> {
    match content {
        None => Ok(Vec::new()),
        Some(MessageContent::Text(text)) if text.is_empty() => Ok(Vec::new()),
        Some(MessageContent::Text(text)) => Ok(vec![text_block(text)]),
        Some(MessageContent::Parts(parts)) => parts.iter().map(part_block).collect(),
    }
}

fn text_block(text: &str) -> Block {
    Block::Text {
        text: text.to_owned(),
        cache_control: None,
    }
}

fn part_block(part: &ContentPart) -> Result<Block, ProviderError> {
    match part {
        ContentPart::Text { text } => Ok(text_block(text)),
        ContentPart::ImageUrl { image_url } => {
            let source = match parse_data_url(&image_url.url) {
                Some(data) => {
                    json!({"type": "base64", "media_type": data.media_type, "data": data.data})
                }
                None => json!({"type": "url", "url": image_url.url}),
            };
            Ok(Block::Image {
                source,
                cache_control: None,
            })
        }
        ContentPart::Other(object) => {
            let kind = object.get("type").and_then(Value::as_str).unwrap_or("");
            let file_data = object
                .get("file")
                .and_then(|file| file.get("file_data"))
                .and_then(Value::as_str)
                .and_then(parse_data_url);
            match (kind, file_data) {
                ("file", Some(data)) => Ok(Block::Document {
                    source: json!({"type": "base64", "media_type": data.media_type, "data": data.data}),
                    cache_control: None,
                }),
                _ => Err(ProviderError::new(
                    ErrorKind::BadRequest,
                    format!("{PROVIDER} cannot take content parts of type `{kind}`"),
                )),
            }
        }
    }
}

fn assistant_blocks(message: &Message) -> Result<Vec<Block>, ProviderError> {
    let mut blocks: Vec<Block> = content_blocks(message.content.as_ref())?
        .into_iter()
        .filter(|block| !matches!(block, Block::Text { text, .. } if text.is_empty()))
        .collect();
    for call in message.tool_calls.iter().flatten() {
        let arguments = call.function.arguments.trim();
        let input = if arguments.is_empty() {
            json!({})
        } else {
            serde_json::from_str(arguments).map_err(|_| {
                ProviderError::new(
                    ErrorKind::BadRequest,
                    format!(
                        "the arguments of tool call `{}` are not valid JSON",
                        call.id
                    ),
                )
            })?
        };
        blocks.push(Block::ToolUse {
            id: call.id.clone(),
            name: call.function.name.clone(),
            input,
            cache_control: None,
        });
    }
    Ok(blocks)
}

fn tool_result_block(message: &Message) -> Result<Block, ProviderError> {
    let Some(tool_use_id) = message.tool_call_id.clone() else {
        return Err(ProviderError::new(
            ErrorKind::BadRequest,
            "a `tool` message needs `tool_call_id`",
        ));
    };
    let content = match &message.content {
        None => Value::String(String::new()),
        Some(MessageContent::Text(text)) => Value::String(text.clone()),
        Some(MessageContent::Parts(parts)) => {
            let blocks = parts
                .iter()
                .map(part_block)
                .collect::<Result<Vec<_>, _>>()?;
            serde_json::to_value(blocks).map_err(crate::translate::encode_error)?
        }
    };
    Ok(Block::ToolResult {
        tool_use_id,
        content,
        is_error: None,
        cache_control: None,
    })
}

/// Maps Anthropic's `stop_reason` to OpenAI's `finish_reason`.
pub(crate) fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Usage in OpenAI terms: cached and cache-writing input count as prompt.
pub(crate) fn usage_from_wire(usage: &WireUsage) -> Usage {
    let cache_read = usage.cache_read_input_tokens.unwrap_or(0);
    let cache_creation = usage.cache_creation_input_tokens.unwrap_or(0);
    let prompt = usage.input_tokens.unwrap_or(0) + cache_read + cache_creation;
    let mut result = Usage::new(prompt, usage.output_tokens.unwrap_or(0));
    if let Some(read) = usage.cache_read_input_tokens {
        result.prompt_tokens_details = Some(PromptTokensDetails {
            cached_tokens: Some(read),
            ..PromptTokensDetails::default()
        });
        result
            .extra
            .insert("cache_read_input_tokens".to_owned(), Value::from(read));
    }
    if let Some(creation) = usage.cache_creation_input_tokens {
        result.extra.insert(
            "cache_creation_input_tokens".to_owned(),
            Value::from(creation),
        );
    }
    result
}

/// Translates a non-stream response.
pub(crate) fn response_from_wire(
    response: MessagesResponse,
    created: i64,
    mode: OutputMode,
) -> ChatResponse {
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in response.content {
        match block {
            Block::Text { text: piece, .. } => {
                text.get_or_insert_with(String::new).push_str(&piece)
            }
            Block::Thinking { thinking, .. } => reasoning
                .get_or_insert_with(String::new)
                .push_str(&thinking),
            Block::ToolUse { name, input, .. }
                if mode == OutputMode::JsonTool && name == JSON_TOOL =>
            {
                text.get_or_insert_with(String::new)
                    .push_str(&input.to_string())
            }
            Block::ToolUse {
                id, name, input, ..
            } => tool_calls.push(ToolCall {
                id,
                kind: "function".to_owned(),
                function: FunctionCall {
                    name,
                    arguments: input.to_string(),
                },
            }),
            Block::Image { .. }
            | Block::Document { .. }
            | Block::ToolResult { .. }
            | Block::RedactedThinking { .. }
            | Block::Unknown => {}
        }
    }
    let mut message = ResponseMessage::assistant(String::new());
    message.content = text;
    message.reasoning_content = reasoning;
    message.tool_calls = (!tool_calls.is_empty()).then_some(tool_calls);
    ChatResponse {
        id: response.id,
        object: "chat.completion".to_owned(),
        created,
        model: response.model,
        choices: vec![ChatChoice {
            index: 0,
            message,
            finish_reason: response.stop_reason.as_deref().map(|reason| {
                // The forced JSON tool is the answer, not a call to make.
                if mode == OutputMode::JsonTool && reason == "tool_use" {
                    "stop".to_owned()
                } else {
                    finish_reason(reason).to_owned()
                }
            }),
            logprobs: None,
            extra: Default::default(),
        }],
        usage: Some(usage_from_wire(&response.usage)),
        system_fingerprint: None,
        extra: Default::default(),
    }
}

/// The kind of an Anthropic error type, refined by its message.
fn kind_of(error_type: &str, message: &str, fallback: ErrorKind) -> ErrorKind {
    let lower = message.to_ascii_lowercase();
    match error_type {
        "overloaded_error" => ErrorKind::Overloaded,
        "rate_limit_error" => ErrorKind::RateLimited,
        "authentication_error" | "permission_error" => ErrorKind::Auth,
        "not_found_error" => ErrorKind::NotFound,
        "timeout_error" => ErrorKind::Timeout,
        "api_error" => ErrorKind::Upstream,
        "invalid_request_error" | "request_too_large" => crate::error::classify(400, &lower),
        _ => fallback,
    }
}

/// Translates an error response: the status decides, Anthropic's error
/// `type` refines (`overloaded_error` on a 500 is still an overload).
pub(crate) fn error_from_wire(response: &BufferedResponse) -> ProviderError {
    let retry_after = crate::error::retry_after(&response.headers);
    let mut error =
        ProviderError::from_upstream(PROVIDER, response.status, retry_after, &response.body);
    if let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(&response.body) {
        if error.kind == ErrorKind::Upstream || error.kind == ErrorKind::BadRequest {
            error.kind = kind_of(&envelope.error.kind, &envelope.error.message, error.kind);
        }
    }
    error
}

/// Translates an `error` event sent mid-stream.
pub(crate) fn error_from_event(error: &ErrorBody) -> ProviderError {
    ProviderError::new(
        kind_of(&error.kind, &error.message, ErrorKind::Upstream),
        format!(
            "{PROVIDER} sent an error mid-stream: {} ({})",
            error.message, error.kind
        ),
    )
}

/// Turns the Anthropic event sequence into OpenAI chunks. Tool calls are
/// numbered by their position among the turn's tool calls (OpenAI's
/// `index`), not by Anthropic's block index.
#[derive(Debug)]
pub(crate) struct StreamTranslator {
    id: String,
    model: String,
    created: i64,
    tool_index_by_block: HashMap<u32, u32>,
    mode: OutputMode,
    json_block: Option<u32>,
    next_tool_index: u32,
    usage: WireUsage,
    saw_usage: bool,
    done: bool,
}

const EVENT_TYPES: &[&str] = &[
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
];

impl StreamTranslator {
    /// A translator for one response; `model` is used until `message_start` names one.
    pub(crate) fn new(model: &str, created: i64, mode: OutputMode) -> Self {
        Self {
            id: String::new(),
            model: model.to_owned(),
            created,
            tool_index_by_block: HashMap::new(),
            mode,
            json_block: None,
            next_tool_index: 0,
            usage: WireUsage::default(),
            saw_usage: false,
            done: false,
        }
    }

    fn chunk(&self, delta: Delta, finish_reason: Option<String>) -> ChatChunk {
        let mut chunk = ChatChunk::new(self.id.clone(), self.model.clone(), self.created);
        chunk.choices.push(ChunkChoice {
            delta,
            finish_reason,
            ..ChunkChoice::default()
        });
        chunk
    }

    fn merge_usage(&mut self, usage: &WireUsage) {
        self.saw_usage = true;
        let merge = |target: &mut Option<u64>, source: Option<u64>| {
            if source.is_some() {
                *target = source;
            }
        };
        merge(&mut self.usage.input_tokens, usage.input_tokens);
        merge(&mut self.usage.output_tokens, usage.output_tokens);
        merge(
            &mut self.usage.cache_read_input_tokens,
            usage.cache_read_input_tokens,
        );
        merge(
            &mut self.usage.cache_creation_input_tokens,
            usage.cache_creation_input_tokens,
        );
    }

    /// The chunks one parsed event becomes.
    pub(crate) fn chunks_from_event(
        &mut self,
        event: StreamEvent,
    ) -> Result<Vec<ChatChunk>, ProviderError> {
        let chunk = match event {
            StreamEvent::MessageStart { message } => {
                self.id = message.id;
                if !message.model.is_empty() {
                    self.model = message.model;
                }
                self.merge_usage(&message.usage);
                Some(self.chunk(
                    Delta {
                        role: Some(Role::Assistant),
                        content: Some(String::new()),
                        ..Delta::default()
                    },
                    None,
                ))
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                Block::Text { text, .. } if !text.is_empty() => Some(self.chunk(
                    Delta {
                        content: Some(text),
                        ..Delta::default()
                    },
                    None,
                )),
                Block::ToolUse { name, .. }
                    if self.mode == OutputMode::JsonTool && name == JSON_TOOL =>
                {
                    self.json_block = Some(index);
                    None
                }
                Block::ToolUse { id, name, .. } => {
                    let tool_index = self.next_tool_index;
                    self.next_tool_index += 1;
                    self.tool_index_by_block.insert(index, tool_index);
                    Some(self.tool_chunk(tool_index, Some(id), Some(name), String::new()))
                }
                _ => None,
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } => Some(self.chunk(
                    Delta {
                        content: Some(text),
                        ..Delta::default()
                    },
                    None,
                )),
                BlockDelta::ThinkingDelta { thinking } => Some(self.chunk(
                    Delta {
                        reasoning_content: Some(thinking),
                        ..Delta::default()
                    },
                    None,
                )),
                BlockDelta::InputJsonDelta { partial_json } if self.json_block == Some(index) => {
                    (!partial_json.is_empty()).then(|| {
                        self.chunk(
                            Delta {
                                content: Some(partial_json),
                                ..Delta::default()
                            },
                            None,
                        )
                    })
                }
                BlockDelta::InputJsonDelta { partial_json } => {
                    let Some(&tool_index) = self.tool_index_by_block.get(&index) else {
                        return Err(ProviderError::new(
                            ErrorKind::InvalidResponse,
                            format!("{PROVIDER} sent tool input for block {index}, which is not a tool_use block"),
                        ));
                    };
                    (!partial_json.is_empty())
                        .then(|| self.tool_chunk(tool_index, None, None, partial_json))
                }
                BlockDelta::SignatureDelta {} | BlockDelta::Unknown => None,
            },
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(usage) = usage {
                    self.merge_usage(&usage);
                }
                delta.stop_reason.map(|reason| {
                    let finish = if self.json_block.is_some()
                        && self.next_tool_index == 0
                        && reason == "tool_use"
                    {
                        "stop"
                    } else {
                        finish_reason(&reason)
                    };
                    self.chunk(Delta::default(), Some(finish.to_owned()))
                })
            }
            StreamEvent::MessageStop => {
                self.done = true;
                self.saw_usage.then(|| {
                    let mut chunk =
                        ChatChunk::new(self.id.clone(), self.model.clone(), self.created);
                    chunk.usage = Some(usage_from_wire(&self.usage));
                    chunk
                })
            }
            StreamEvent::ContentBlockStop { .. } | StreamEvent::Ping => None,
            StreamEvent::Error { error } => return Err(error_from_event(&error)),
        };
        Ok(chunk.into_iter().collect())
    }

    fn tool_chunk(
        &self,
        index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    ) -> ChatChunk {
        let kind = id.as_ref().map(|_| "function".to_owned());
        self.chunk(
            Delta {
                tool_calls: Some(vec![ToolCallDelta {
                    index,
                    id,
                    kind,
                    function: Some(FunctionCallDelta {
                        name,
                        arguments: Some(arguments),
                    }),
                }]),
                ..Delta::default()
            },
            None,
        )
    }
}

/// Parses one server-sent event. Unknown event types are skipped (`None`);
/// a known type that does not parse is an invalid response.
pub(crate) fn parse_event(event: &SseEvent) -> Result<Option<StreamEvent>, ProviderError> {
    let invalid = |why: String| {
        ProviderError::new(
            ErrorKind::InvalidResponse,
            format!("{PROVIDER} sent a stream event that cannot be read: {why}"),
        )
    };
    let value: Value =
        serde_json::from_str(&event.data).map_err(|error| invalid(error.to_string()))?;
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !EVENT_TYPES.contains(&kind) {
        return Ok(None);
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|error| invalid(error.to_string()))
}

/// The pure step of the stream: one server-sent event in, chunks out.
pub(crate) fn chunk_from_event(
    translator: &mut StreamTranslator,
    event: &SseEvent,
) -> Result<Vec<ChatChunk>, ProviderError> {
    match parse_event(event)? {
        Some(event) => translator.chunks_from_event(event),
        None => Ok(Vec::new()),
    }
}

impl StreamTranslate for StreamTranslator {
    type Event = SseEvent;

    fn on_event(&mut self, event: SseEvent) -> Result<Vec<ChatChunk>, ProviderError> {
        chunk_from_event(self, &event)
    }

    fn on_end(&mut self) -> Result<Vec<ChatChunk>, ProviderError> {
        if self.done {
            Ok(Vec::new())
        } else {
            Err(crate::translate::truncated_stream(PROVIDER))
        }
    }

    fn is_done(&self) -> bool {
        self.done
    }
}
