//! Pure translation between the OpenAI shapes and the Gemini API.

use super::wire::{
    Blob, Candidate, Content, ErrorEnvelope, FileData, FunctionCallPart, FunctionDeclaration,
    FunctionResponsePart, GeminiTool, GenerateContentRequest, GenerateContentResponse,
    GenerationConfig, Part, UsageMetadata,
};
use crate::error::{ErrorKind, ProviderError};
use crate::http::BufferedResponse;
use crate::sse::SseEvent;
use crate::translate::{
    parse_data_url, CallIds, ParamPolicy, ResponseMeta, StreamTranslate, OPENAI_ONLY_PARAMS,
};
use gateway_types::chat::PromptTokensDetails;
use gateway_types::{
    ChatChoice, ChatChunk, ChatRequest, ChatResponse, ChunkChoice, ContentPart, Delta,
    FunctionCall, FunctionCallDelta, JsonObject, Message, MessageContent, ResponseMessage, Role,
    ToolCall, ToolCallDelta, ToolChoice, Usage,
};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The provider name in messages.
pub(crate) const PROVIDER: &str = "gemini";

/// Request fields Gemini takes at the top level, by their OpenAI-side names.
const TOP_LEVEL: &[(&str, &str)] = &[
    ("safety_settings", "safetySettings"),
    ("safetySettings", "safetySettings"),
    ("cached_content", "cachedContent"),
    ("cachedContent", "cachedContent"),
];

/// Request fields that go into `generationConfig`.
const GENERATION_CONFIG: &[(&str, &str)] = &[
    ("thinking_config", "thinkingConfig"),
    ("thinkingConfig", "thinkingConfig"),
    ("response_modalities", "responseModalities"),
];

/// Translates an OpenAI chat request (defaults already applied).
pub(crate) fn request_to_wire(
    request: &ChatRequest,
    drop_params: bool,
) -> Result<GenerateContentRequest, ProviderError> {
    let mut request = request.clone();
    let policy = ParamPolicy {
        provider: PROVIDER,
        drop_params,
    };
    policy.strip(&mut request, OPENAI_ONLY_PARAMS)?;

    let mut extra = JsonObject::new();
    let mut config_extra = JsonObject::new();
    let mut top_k = None;
    for (name, value) in std::mem::take(&mut request.extra) {
        if name == "top_k" {
            top_k = Some(value);
        } else if let Some((_, wire)) = TOP_LEVEL.iter().find(|(openai, _)| *openai == name) {
            extra.insert((*wire).to_owned(), value);
        } else if let Some((_, wire)) = GENERATION_CONFIG.iter().find(|(openai, _)| *openai == name)
        {
            config_extra.insert((*wire).to_owned(), value);
        } else {
            // Gemini rejects unknown fields; say which one instead of a 400 from upstream.
            policy.unsupported(&name)?;
        }
    }

    let (response_mime_type, response_schema) = match &request.response_format {
        None => (None, None),
        Some(format) => match format.get("type").and_then(Value::as_str) {
            Some("json_object") => (Some("application/json".to_owned()), None),
            Some("json_schema") => (
                Some("application/json".to_owned()),
                format
                    .get("json_schema")
                    .and_then(|schema| schema.get("schema"))
                    .map(clean_schema),
            ),
            _ => (None, None),
        },
    };
    let generation_config = GenerationConfig {
        temperature: request.temperature,
        top_p: request.top_p,
        top_k,
        max_output_tokens: request.output_limit(),
        stop_sequences: request
            .stop
            .as_ref()
            .map(|stop| stop.to_vec())
            .unwrap_or_default(),
        candidate_count: request.n,
        presence_penalty: request.presence_penalty,
        frequency_penalty: request.frequency_penalty,
        seed: request.seed,
        response_mime_type,
        response_schema,
        extra: config_extra,
    };

    let declarations: Vec<FunctionDeclaration> = request
        .tools
        .iter()
        .flatten()
        .map(|tool| FunctionDeclaration {
            name: tool.function.name.clone(),
            description: tool.function.description.clone(),
            parameters: tool.function.parameters.as_ref().map(clean_schema),
        })
        .collect();
    let tool_config = request.tool_choice.as_ref().map(|choice| {
        let config = match choice {
            ToolChoice::Mode(mode) => match mode.as_str() {
                "none" => json!({"mode": "NONE"}),
                "required" | "any" => json!({"mode": "ANY"}),
                _ => json!({"mode": "AUTO"}),
            },
            ToolChoice::Named(named) => {
                json!({"mode": "ANY", "allowedFunctionNames": [named.function.name]})
            }
        };
        json!({ "functionCallingConfig": config })
    });

    let (system_instruction, contents) = convert_messages(&request.messages)?;
    Ok(GenerateContentRequest {
        contents,
        system_instruction,
        generation_config: (generation_config != GenerationConfig::default())
            .then_some(generation_config),
        tools: if declarations.is_empty() {
            Vec::new()
        } else {
            vec![GeminiTool {
                function_declarations: declarations,
            }]
        },
        tool_config,
        extra,
    })
}

/// Removes the JSON-schema keywords Gemini's schema subset rejects.
fn clean_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .filter(|(key, _)| {
                    !matches!(key.as_str(), "additionalProperties" | "$schema" | "strict")
                })
                .map(|(key, value)| (key.clone(), clean_schema(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(clean_schema).collect()),
        other => other.clone(),
    }
}

fn convert_messages(
    messages: &[Message],
) -> Result<(Option<Content>, Vec<Content>), ProviderError> {
    let mut system_parts = Vec::new();
    let mut contents: Vec<Content> = Vec::new();
    let mut names_by_call_id: HashMap<&str, &str> = HashMap::new();
    for message in messages {
        let (role, parts) = match message.role {
            Role::System | Role::Developer => {
                system_parts.extend(content_parts(message.content.as_ref())?);
                continue;
            }
            Role::User => ("user", content_parts(message.content.as_ref())?),
            Role::Assistant => {
                let mut parts: Vec<Part> = content_parts(message.content.as_ref())?
                    .into_iter()
                    .filter(|part| part.text.as_deref() != Some(""))
                    .collect();
                for call in message.tool_calls.iter().flatten() {
                    names_by_call_id.insert(&call.id, &call.function.name);
                    let arguments = call.function.arguments.trim();
                    let args = if arguments.is_empty() {
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
                    parts.push(Part {
                        function_call: Some(FunctionCallPart {
                            name: call.function.name.clone(),
                            args,
                            id: None,
                        }),
                        ..Part::default()
                    });
                }
                ("model", parts)
            }
            Role::Tool | Role::Function => {
                let name = message
                    .tool_call_id
                    .as_deref()
                    .and_then(|id| names_by_call_id.get(id).copied())
                    .or(message.name.as_deref())
                    .ok_or_else(|| {
                        ProviderError::new(
                            ErrorKind::BadRequest,
                            "a `tool` message must answer a tool call of an earlier assistant message",
                        )
                    })?;
                let text = message
                    .content
                    .as_ref()
                    .map(MessageContent::joined_text)
                    .unwrap_or_default();
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(object)) => Value::Object(object),
                    _ => json!({ "content": text }),
                };
                let part = Part {
                    function_response: Some(FunctionResponsePart {
                        name: name.to_owned(),
                        response,
                    }),
                    ..Part::default()
                };
                ("user", vec![part])
            }
        };
        if parts.is_empty() {
            continue;
        }
        // Gemini wants all answers to one turn's calls in one turn.
        match contents.last_mut() {
            Some(previous) if previous.role.as_deref() == Some(role) => {
                previous.parts.extend(parts)
            }
            _ => contents.push(Content {
                role: Some(role.to_owned()),
                parts,
            }),
        }
    }
    let system = (!system_parts.is_empty()).then_some(Content {
        role: None,
        parts: system_parts,
    });
    Ok((system, contents))
}

fn content_parts(content: Option<&MessageContent>) -> Result<Vec<Part>, ProviderError> {
    let text_part = |text: &str| Part {
        text: Some(text.to_owned()),
        ..Part::default()
    };
    match content {
        None => Ok(Vec::new()),
        Some(MessageContent::Text(text)) => Ok(vec![text_part(text)]),
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .map(|part| match part {
                ContentPart::Text { text } => Ok(text_part(text)),
                ContentPart::ImageUrl { image_url } => Ok(match parse_data_url(&image_url.url) {
                    Some(data) => Part {
                        inline_data: Some(Blob {
                            mime_type: data.media_type.to_owned(),
                            data: data.data.to_owned(),
                        }),
                        ..Part::default()
                    },
                    None => Part {
                        file_data: Some(FileData {
                            mime_type: mime_from_extension(&image_url.url).to_owned(),
                            file_uri: image_url.url.clone(),
                        }),
                        ..Part::default()
                    },
                }),
                ContentPart::Other(object) => {
                    let kind = object.get("type").and_then(Value::as_str).unwrap_or("");
                    Err(ProviderError::new(
                        ErrorKind::BadRequest,
                        format!("{PROVIDER} cannot take content parts of type `{kind}`"),
                    ))
                }
            })
            .collect(),
    }
}

fn mime_from_extension(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    match path.rsplit('.').next() {
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("pdf") => "application/pdf",
        _ => "image/jpeg",
    }
}

/// Maps Gemini's `finishReason` to OpenAI's `finish_reason`.
pub(crate) fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ => "stop",
    }
}

fn blocked(reason: &str) -> ProviderError {
    ProviderError::new(
        ErrorKind::ContentFiltered,
        format!("{PROVIDER} blocked the request ({reason})"),
    )
}

/// Usage in OpenAI terms: thinking tokens count as completion tokens.
pub(crate) fn usage_from_wire(usage: &UsageMetadata) -> Usage {
    let thoughts = usage.thoughts_token_count.unwrap_or(0);
    let mut result = Usage::new(
        usage.prompt_token_count.unwrap_or(0),
        usage.candidates_token_count.unwrap_or(0) + thoughts,
    );
    if let Some(cached) = usage.cached_content_token_count {
        result.prompt_tokens_details = Some(PromptTokensDetails {
            cached_tokens: Some(cached),
            ..PromptTokensDetails::default()
        });
    }
    if thoughts > 0 {
        result.completion_tokens_details = Some(json!({ "reasoning_tokens": thoughts }));
    }
    result
}

/// The text, reasoning and calls of a candidate's parts.
fn split_parts(
    candidate: Candidate,
    ids: &mut CallIds,
) -> (Option<String>, Option<String>, Vec<ToolCall>) {
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut calls = Vec::new();
    for part in candidate
        .content
        .map(|content| content.parts)
        .unwrap_or_default()
    {
        if let Some(piece) = part.text {
            let target = if part.thought == Some(true) {
                &mut reasoning
            } else {
                &mut text
            };
            target.get_or_insert_with(String::new).push_str(&piece);
        }
        if let Some(call) = part.function_call {
            calls.push(ToolCall {
                id: call.id.unwrap_or_else(|| ids.next_id()),
                kind: "function".to_owned(),
                function: FunctionCall {
                    name: call.name,
                    arguments: if call.args.is_null() {
                        "{}".to_owned()
                    } else {
                        call.args.to_string()
                    },
                },
            });
        }
    }
    (text, reasoning, calls)
}

/// Translates a non-stream response. A blocked prompt, or an answer stopped
/// by a safety filter before any content, is [`ErrorKind::ContentFiltered`].
pub(crate) fn response_from_wire(
    response: GenerateContentResponse,
    ids: &mut CallIds,
    meta: ResponseMeta,
) -> Result<ChatResponse, ProviderError> {
    if response.candidates.is_empty() {
        if let Some(reason) = response
            .prompt_feedback
            .as_ref()
            .and_then(|feedback| feedback.block_reason.as_ref())
        {
            return Err(blocked(reason));
        }
    }
    let usage = response.usage_metadata.as_ref().map(usage_from_wire);
    let mut choices = Vec::new();
    let mut filtered_reason = None;
    for (position, candidate) in response.candidates.into_iter().enumerate() {
        let index = candidate.index.unwrap_or(position as u32);
        let reason = candidate.finish_reason.clone();
        let (text, reasoning, calls) = split_parts(candidate, ids);
        let mut finish = reason.as_deref().map(finish_reason);
        if finish == Some("content_filter") && text.is_none() && calls.is_empty() {
            filtered_reason = reason.clone();
        }
        if !calls.is_empty() && finish == Some("stop") {
            finish = Some("tool_calls");
        }
        let mut message = ResponseMessage::assistant(String::new());
        message.content = text;
        message.reasoning_content = reasoning;
        message.tool_calls = (!calls.is_empty()).then_some(calls);
        choices.push(ChatChoice {
            index,
            message,
            finish_reason: finish.map(str::to_owned),
            logprobs: None,
            extra: JsonObject::new(),
        });
    }
    if let (Some(reason), true) = (&filtered_reason, choices.len() == 1) {
        return Err(blocked(reason));
    }
    if choices.is_empty() {
        return Err(ProviderError::new(
            ErrorKind::InvalidResponse,
            format!("{PROVIDER} answered no candidates"),
        ));
    }
    Ok(ChatResponse {
        id: response
            .response_id
            .map(|id| format!("chatcmpl-{id}"))
            .unwrap_or(meta.id),
        object: "chat.completion".to_owned(),
        created: meta.created,
        model: response.model_version.unwrap_or(meta.model),
        choices,
        usage,
        system_fingerprint: None,
        extra: JsonObject::new(),
    })
}

fn kind_of(status: Option<u16>, google_status: Option<&str>, message: &str) -> ErrorKind {
    if message.contains("API key not valid") || google_status == Some("UNAUTHENTICATED") {
        return ErrorKind::Auth;
    }
    match google_status {
        Some("RESOURCE_EXHAUSTED") => ErrorKind::RateLimited,
        Some("UNAVAILABLE") => ErrorKind::Overloaded,
        Some("DEADLINE_EXCEEDED") => ErrorKind::Timeout,
        Some("PERMISSION_DENIED") => ErrorKind::Auth,
        Some("NOT_FOUND") => ErrorKind::NotFound,
        _ => crate::error::classify(status.unwrap_or(500), message),
    }
}

/// Translates an error response.
pub(crate) fn error_from_wire(response: &BufferedResponse) -> ProviderError {
    let retry_after = crate::error::retry_after(&response.headers);
    let mut error =
        ProviderError::from_upstream(PROVIDER, response.status, retry_after, &response.body);
    if let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(&response.body) {
        let kind = kind_of(
            Some(response.status),
            envelope.error.status.as_deref(),
            &envelope.error.message,
        );
        // Only refine: a 5xx stays a server failure unless Google says more.
        if error.kind == ErrorKind::BadRequest || envelope.error.status.is_some() {
            error.kind = kind;
        }
    }
    error
}

/// Turns Gemini's stream of partial responses into OpenAI chunks. Gemini
/// has no final event: the stream is complete when a candidate finished,
/// and the usage chunk is sent when the body ends.
#[derive(Debug)]
pub(crate) struct StreamTranslator {
    id: String,
    model: String,
    created: i64,
    ids: CallIds,
    tool_counts: HashMap<u32, u32>,
    sent_role: HashMap<u32, bool>,
    sent_content: bool,
    usage: Option<UsageMetadata>,
    finished: bool,
}

impl StreamTranslator {
    /// A translator for one response.
    pub(crate) fn new(meta: ResponseMeta, ids: CallIds) -> Self {
        Self {
            id: meta.id,
            model: meta.model,
            created: meta.created,
            ids,
            tool_counts: HashMap::new(),
            sent_role: HashMap::new(),
            sent_content: false,
            usage: None,
            finished: false,
        }
    }

    fn chunk(&mut self, index: u32, mut delta: Delta, finish_reason: Option<String>) -> ChatChunk {
        let sent = self.sent_role.entry(index).or_insert(false);
        if !*sent {
            delta.role = Some(Role::Assistant);
            *sent = true;
        }
        let mut chunk = ChatChunk::new(self.id.clone(), self.model.clone(), self.created);
        chunk.choices.push(ChunkChoice {
            index,
            delta,
            finish_reason,
            ..ChunkChoice::default()
        });
        chunk
    }

    fn on_response(
        &mut self,
        response: GenerateContentResponse,
    ) -> Result<Vec<ChatChunk>, ProviderError> {
        if response.candidates.is_empty() {
            if let Some(reason) = response
                .prompt_feedback
                .as_ref()
                .and_then(|feedback| feedback.block_reason.as_ref())
            {
                return Err(blocked(reason));
            }
        }
        if let Some(usage) = response.usage_metadata {
            self.usage = Some(usage);
        }
        if let Some(version) = response.model_version {
            self.model = version;
        }
        let mut chunks = Vec::new();
        for (position, candidate) in response.candidates.into_iter().enumerate() {
            let index = candidate.index.unwrap_or(position as u32);
            let reason = candidate.finish_reason.clone();
            let (text, reasoning, calls) = split_parts(candidate, &mut self.ids);
            if let Some(reasoning) = reasoning {
                let delta = Delta {
                    reasoning_content: Some(reasoning),
                    ..Delta::default()
                };
                chunks.push(self.chunk(index, delta, None));
            }
            if let Some(text) = text.filter(|text| !text.is_empty()) {
                self.sent_content = true;
                let delta = Delta {
                    content: Some(text),
                    ..Delta::default()
                };
                chunks.push(self.chunk(index, delta, None));
            }
            for call in calls {
                self.sent_content = true;
                let count = self.tool_counts.entry(index).or_insert(0);
                let tool_index = *count;
                *count += 1;
                let delta = Delta {
                    tool_calls: Some(vec![ToolCallDelta {
                        index: tool_index,
                        id: Some(call.id),
                        kind: Some("function".to_owned()),
                        function: Some(FunctionCallDelta {
                            name: Some(call.function.name),
                            arguments: Some(call.function.arguments),
                        }),
                    }]),
                    ..Delta::default()
                };
                chunks.push(self.chunk(index, delta, None));
            }
            if let Some(reason) = reason {
                let mut finish = finish_reason(&reason);
                if finish == "content_filter" && !self.sent_content {
                    return Err(blocked(&reason));
                }
                if finish == "stop" && self.tool_counts.get(&index).is_some_and(|count| *count > 0)
                {
                    finish = "tool_calls";
                }
                self.finished = true;
                chunks.push(self.chunk(index, Delta::default(), Some(finish.to_owned())));
            }
        }
        Ok(chunks)
    }
}

/// The pure step of the stream: one server-sent event in, chunks out.
pub(crate) fn chunk_from_event(
    translator: &mut StreamTranslator,
    event: &SseEvent,
) -> Result<Vec<ChatChunk>, ProviderError> {
    let value: Value = serde_json::from_str(&event.data).map_err(|error| {
        ProviderError::new(
            ErrorKind::InvalidResponse,
            format!("{PROVIDER} sent a stream event that is not JSON: {error}"),
        )
    })?;
    if let Some(error) = value.get("error") {
        let envelope: Option<ErrorEnvelope> =
            serde_json::from_value(json!({ "error": error })).ok();
        let (code, status, message) = envelope
            .map(|envelope| {
                (
                    envelope.error.code,
                    envelope.error.status,
                    envelope.error.message,
                )
            })
            .unwrap_or((None, None, error.to_string()));
        return Err(ProviderError::new(
            kind_of(code, status.as_deref(), &message),
            format!("{PROVIDER} sent an error mid-stream: {message}"),
        ));
    }
    let response: GenerateContentResponse = serde_json::from_value(value).map_err(|error| {
        ProviderError::new(
            ErrorKind::InvalidResponse,
            format!("{PROVIDER} sent a stream event that cannot be read: {error}"),
        )
    })?;
    translator.on_response(response)
}

impl StreamTranslate for StreamTranslator {
    type Event = SseEvent;

    fn on_event(&mut self, event: SseEvent) -> Result<Vec<ChatChunk>, ProviderError> {
        chunk_from_event(self, &event)
    }

    fn on_end(&mut self) -> Result<Vec<ChatChunk>, ProviderError> {
        if !self.finished {
            return Err(crate::translate::truncated_stream(PROVIDER));
        }
        Ok(self
            .usage
            .as_ref()
            .map(|usage| {
                let mut chunk = ChatChunk::new(self.id.clone(), self.model.clone(), self.created);
                chunk.usage = Some(usage_from_wire(usage));
                chunk
            })
            .into_iter()
            .collect())
    }

    fn is_done(&self) -> bool {
        false
    }
}
