//! Pure translation between the OpenAI shapes and Ollama's `/api/chat`.

use super::wire::{
    ChatRequestWire, ChatResponseWire, EmbedRequest, EmbedResponse, WireFunction, WireMessage,
    WireToolCall,
};
use crate::error::{upstream_message, ErrorKind, ProviderError};
use crate::http::BufferedResponse;
use crate::translate::{
    parse_data_url, CallIds, ParamPolicy, ResponseMeta, StreamTranslate, OPENAI_ONLY_PARAMS,
};
use gateway_types::{
    ChatChoice, ChatChunk, ChatRequest, ChatResponse, ChunkChoice, ContentPart, Delta, Embedding,
    EmbeddingsRequest, EmbeddingsResponse, EmbeddingsUsage, FunctionCall, FunctionCallDelta,
    JsonObject, Message, MessageContent, ResponseMessage, Role, ToolCall, ToolCallDelta,
    ToolChoice, Usage,
};
use serde_json::Value;
use std::collections::HashMap;

/// The provider name in messages.
pub(crate) const PROVIDER: &str = "ollama";

/// OpenAI parameters Ollama has no equivalent for.
const UNSUPPORTED: &[&str] = &["n"];

/// Request fields that are Ollama `options` (model parameters).
const OPTION_NAMES: &[&str] = &[
    "top_k",
    "min_p",
    "typical_p",
    "repeat_penalty",
    "repeat_last_n",
    "num_ctx",
    "num_keep",
    "num_batch",
    "num_gpu",
    "num_thread",
    "mirostat",
    "mirostat_eta",
    "mirostat_tau",
    "tfs_z",
    "penalize_newline",
    "num_predict",
];

/// What the deployment adds to every request.
#[derive(Debug, Clone)]
pub(crate) struct RequestOptions<'a> {
    pub model: &'a str,
    pub drop_params: bool,
    pub stream: bool,
}

/// Translates an OpenAI chat request (defaults already applied).
pub(crate) fn request_to_wire(
    request: &ChatRequest,
    options: &RequestOptions<'_>,
) -> Result<ChatRequestWire, ProviderError> {
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

    let mut model_options = JsonObject::new();
    let mut put = |name: &str, value: Option<Value>| {
        if let Some(value) = value {
            model_options.insert(name.to_owned(), value);
        }
    };
    put("temperature", request.temperature.map(Value::from));
    put("top_p", request.top_p.map(Value::from));
    put("seed", request.seed.map(Value::from));
    put(
        "presence_penalty",
        request.presence_penalty.map(Value::from),
    );
    put(
        "frequency_penalty",
        request.frequency_penalty.map(Value::from),
    );
    put("num_predict", request.output_limit().map(Value::from));
    put(
        "stop",
        request.stop.as_ref().map(|stop| Value::from(stop.to_vec())),
    );
    let mut extra = std::mem::take(&mut request.extra);
    for name in OPTION_NAMES {
        if let Some(value) = extra.remove(*name) {
            model_options.insert((*name).to_owned(), value);
        }
    }
    if let Some(Value::Object(more)) = extra.remove("options") {
        model_options.extend(more);
    }

    let format = match &request.response_format {
        None => None,
        Some(format) => match format.get("type").and_then(Value::as_str) {
            Some("json_object") => Some(Value::String("json".to_owned())),
            Some("json_schema") => format
                .get("json_schema")
                .and_then(|schema| schema.get("schema"))
                .cloned(),
            _ => None,
        },
    };

    let mut tools = request.tools.take().unwrap_or_default();
    match &request.tool_choice {
        None => {}
        Some(ToolChoice::Mode(mode)) if mode == "auto" => {}
        Some(ToolChoice::Mode(mode)) if mode == "none" => tools.clear(),
        Some(_) => policy.unsupported("tool_choice")?,
    }

    Ok(ChatRequestWire {
        model: options.model.to_owned(),
        messages: convert_messages(&request.messages)?,
        stream: options.stream,
        format,
        options: model_options,
        tools,
        extra,
    })
}

fn convert_messages(messages: &[Message]) -> Result<Vec<WireMessage>, ProviderError> {
    let mut names_by_call_id: HashMap<&str, &str> = HashMap::new();
    let mut out = Vec::with_capacity(messages.len());
    for message in messages {
        let role = match message.role {
            Role::System | Role::Developer => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool | Role::Function => "tool",
        };
        let (content, images) = text_and_images(message.content.as_ref())?;
        let mut tool_calls = Vec::new();
        for call in message.tool_calls.iter().flatten() {
            names_by_call_id.insert(&call.id, &call.function.name);
            let arguments = call.function.arguments.trim();
            let arguments = if arguments.is_empty() {
                Value::Object(JsonObject::new())
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
            tool_calls.push(WireToolCall {
                function: WireFunction {
                    name: call.function.name.clone(),
                    arguments,
                },
            });
        }
        let tool_name = match message.role {
            Role::Tool => message
                .tool_call_id
                .as_deref()
                .and_then(|id| names_by_call_id.get(id))
                .map(|name| (*name).to_owned())
                .or_else(|| message.name.clone()),
            Role::Function => message.name.clone(),
            _ => None,
        };
        out.push(WireMessage {
            role: role.to_owned(),
            content,
            images,
            tool_calls,
            tool_name,
            thinking: None,
        });
    }
    Ok(out)
}

fn text_and_images(
    content: Option<&MessageContent>,
) -> Result<(String, Vec<String>), ProviderError> {
    match content {
        None => Ok((String::new(), Vec::new())),
        Some(MessageContent::Text(text)) => Ok((text.clone(), Vec::new())),
        Some(MessageContent::Parts(parts)) => {
            let mut texts = Vec::new();
            let mut images = Vec::new();
            for part in parts {
                match part {
                    ContentPart::Text { text } => texts.push(text.as_str()),
                    ContentPart::ImageUrl { image_url } => match parse_data_url(&image_url.url) {
                        Some(data) => images.push(data.data.to_owned()),
                        None => {
                            return Err(ProviderError::new(
                                ErrorKind::BadRequest,
                                "ollama takes images only as base64 `data:` URLs",
                            ))
                        }
                    },
                    ContentPart::Other(object) => {
                        let kind = object.get("type").and_then(Value::as_str).unwrap_or("");
                        return Err(ProviderError::new(
                            ErrorKind::BadRequest,
                            format!("{PROVIDER} cannot take content parts of type `{kind}`"),
                        ));
                    }
                }
            }
            Ok((texts.join("\n"), images))
        }
    }
}

fn tool_call(call: WireToolCall, ids: &mut CallIds) -> ToolCall {
    ToolCall {
        id: ids.next_id(),
        kind: "function".to_owned(),
        function: FunctionCall {
            name: call.function.name,
            arguments: arguments_text(&call.function.arguments),
        },
    }
}

/// Arguments as the JSON string OpenAI clients expect; Ollama sends an object
/// (some models send a string already).
fn arguments_text(arguments: &Value) -> String {
    match arguments {
        Value::String(text) => text.clone(),
        Value::Null => "{}".to_owned(),
        other => other.to_string(),
    }
}

fn finish_reason(done_reason: Option<&str>, has_tool_calls: bool) -> String {
    if has_tool_calls {
        return "tool_calls".to_owned();
    }
    match done_reason {
        Some("length") => "length",
        _ => "stop",
    }
    .to_owned()
}

fn usage(response: &ChatResponseWire) -> Usage {
    Usage::new(
        response.prompt_eval_count.unwrap_or(0),
        response.eval_count.unwrap_or(0),
    )
}

/// Translates a non-stream response.
pub(crate) fn response_from_wire(
    response: ChatResponseWire,
    ids: &mut CallIds,
    meta: ResponseMeta,
) -> ChatResponse {
    let usage = usage(&response);
    let message = response.message.unwrap_or(WireMessage {
        role: "assistant".to_owned(),
        content: String::new(),
        images: Vec::new(),
        tool_calls: Vec::new(),
        tool_name: None,
        thinking: None,
    });
    let tool_calls: Vec<ToolCall> = message
        .tool_calls
        .into_iter()
        .map(|call| tool_call(call, ids))
        .collect();
    let finish = finish_reason(response.done_reason.as_deref(), !tool_calls.is_empty());
    let mut out = ResponseMessage::assistant(message.content);
    out.reasoning_content = message.thinking.filter(|thinking| !thinking.is_empty());
    out.tool_calls = (!tool_calls.is_empty()).then_some(tool_calls);
    ChatResponse {
        id: meta.id,
        object: "chat.completion".to_owned(),
        created: meta.created,
        model: if response.model.is_empty() {
            meta.model
        } else {
            response.model
        },
        choices: vec![ChatChoice {
            index: 0,
            message: out,
            finish_reason: Some(finish),
            logprobs: None,
            extra: JsonObject::new(),
        }],
        usage: Some(usage),
        system_fingerprint: None,
        extra: JsonObject::new(),
    }
}

/// Translates an error response (Ollama writes `{"error": "..."}`).
pub(crate) fn error_from_wire(response: &BufferedResponse) -> ProviderError {
    ProviderError::from_upstream(
        PROVIDER,
        response.status,
        crate::error::retry_after(&response.headers),
        &response.body,
    )
}

/// Turns Ollama's NDJSON lines into OpenAI chunks.
#[derive(Debug)]
pub(crate) struct StreamTranslator {
    id: String,
    model: String,
    created: i64,
    ids: CallIds,
    next_tool_index: u32,
    sent_role: bool,
    done: bool,
}

impl StreamTranslator {
    /// A translator for one response.
    pub(crate) fn new(meta: ResponseMeta, ids: CallIds) -> Self {
        Self {
            id: meta.id,
            model: meta.model,
            created: meta.created,
            ids,
            next_tool_index: 0,
            sent_role: false,
            done: false,
        }
    }

    fn chunk(&mut self, mut delta: Delta, finish_reason: Option<String>) -> ChatChunk {
        if !self.sent_role {
            delta.role = Some(Role::Assistant);
            self.sent_role = true;
        }
        let mut chunk = ChatChunk::new(self.id.clone(), self.model.clone(), self.created);
        chunk.choices.push(ChunkChoice {
            delta,
            finish_reason,
            ..ChunkChoice::default()
        });
        chunk
    }
}

/// The pure step of the stream: one NDJSON line in, chunks out.
pub(crate) fn chunk_from_line(
    translator: &mut StreamTranslator,
    line: &str,
) -> Result<Vec<ChatChunk>, ProviderError> {
    let value: Value = serde_json::from_str(line).map_err(|error| {
        ProviderError::new(
            ErrorKind::InvalidResponse,
            format!("{PROVIDER} sent a stream line that is not JSON: {error}"),
        )
    })?;
    if value.get("error").is_some() {
        let message = upstream_message(line.as_bytes());
        return Err(ProviderError::new(
            crate::error::classify(500, &message),
            format!("{PROVIDER} sent an error mid-stream: {message}"),
        ));
    }
    let response: ChatResponseWire = serde_json::from_value(value).map_err(|error| {
        ProviderError::new(
            ErrorKind::InvalidResponse,
            format!("{PROVIDER} sent a stream line that cannot be read: {error}"),
        )
    })?;
    if !response.model.is_empty() {
        translator.model.clone_from(&response.model);
    }
    let mut chunks = Vec::new();
    if let Some(message) = &response.message {
        if let Some(thinking) = message
            .thinking
            .as_ref()
            .filter(|thinking| !thinking.is_empty())
        {
            let delta = Delta {
                reasoning_content: Some(thinking.clone()),
                ..Delta::default()
            };
            chunks.push(translator.chunk(delta, None));
        }
        if !message.content.is_empty() {
            let delta = Delta {
                content: Some(message.content.clone()),
                ..Delta::default()
            };
            chunks.push(translator.chunk(delta, None));
        }
        for call in &message.tool_calls {
            let index = translator.next_tool_index;
            translator.next_tool_index += 1;
            let delta = Delta {
                tool_calls: Some(vec![ToolCallDelta {
                    index,
                    id: Some(translator.ids.next_id()),
                    kind: Some("function".to_owned()),
                    function: Some(FunctionCallDelta {
                        name: Some(call.function.name.clone()),
                        arguments: Some(arguments_text(&call.function.arguments)),
                    }),
                }]),
                ..Delta::default()
            };
            chunks.push(translator.chunk(delta, None));
        }
    }
    if response.done {
        translator.done = true;
        let finish = finish_reason(
            response.done_reason.as_deref(),
            translator.next_tool_index > 0,
        );
        chunks.push(translator.chunk(Delta::default(), Some(finish)));
        let mut usage_chunk = ChatChunk::new(
            translator.id.clone(),
            translator.model.clone(),
            translator.created,
        );
        usage_chunk.usage = Some(usage(&response));
        chunks.push(usage_chunk);
    }
    Ok(chunks)
}

impl StreamTranslate for StreamTranslator {
    type Event = String;

    fn on_event(&mut self, line: String) -> Result<Vec<ChatChunk>, ProviderError> {
        chunk_from_line(self, &line)
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

/// Translates an embeddings request.
pub(crate) fn embed_request_to_wire(request: &EmbeddingsRequest, model: &str) -> EmbedRequest {
    let mut extra = request.extra.clone();
    extra.remove("encoding_format");
    EmbedRequest {
        model: model.to_owned(),
        input: request.input.clone(),
        dimensions: request.dimensions,
        extra,
    }
}

/// Translates an embeddings response.
pub(crate) fn embed_response_from_wire(response: EmbedResponse) -> EmbeddingsResponse {
    let tokens = response.prompt_eval_count.unwrap_or(0);
    EmbeddingsResponse {
        object: "list".to_owned(),
        data: response
            .embeddings
            .into_iter()
            .enumerate()
            .map(|(index, embedding)| Embedding {
                object: "embedding".to_owned(),
                index: index as u32,
                embedding,
            })
            .collect(),
        model: response.model,
        usage: Some(EmbeddingsUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        }),
        extra: JsonObject::new(),
    }
}
