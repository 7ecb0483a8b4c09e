//! Chat completions: request, response, stream chunk, usage and tool calls.

use crate::JsonObject;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The OpenAI chat-completions request.
///
/// Known fields are typed so adapters can translate them; everything else is
/// kept in [`ChatRequest::extra`] and passed to OpenAI-compatible upstreams.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model alias (or, upstream, the provider's model id).
    pub model: String,
    /// The conversation: a list of [`Message`]s (`Messages` derefs to
    /// `Vec<Message>`) that, when parsed by [`ChatRequest::from_json`],
    /// also keeps its JSON text to send on unchanged.
    pub messages: Messages,
    /// Stream the answer as server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Streaming options; `include_usage` asks for a final usage chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Number of choices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Output token limit (legacy name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Output token limit (current name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// Presence penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Sampling seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// The end-user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// How the model may use the tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Allow several tool calls in one turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// `{"type": "json_object"}` or a JSON schema; kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    /// Fields this type does not know, passed through.
    #[serde(flatten)]
    pub extra: JsonObject,
}

impl ChatRequest {
    /// Parses a request from JSON text like `serde_json::from_slice`, and
    /// keeps the `messages` array's text beside the parsed list, so that an
    /// OpenAI-format upstream is sent the conversation as it came instead
    /// of encoded again (see [`Messages`]).
    pub fn from_json(bytes: &[u8]) -> Result<ChatRequest, serde_json::Error> {
        let _keeping = KeepMessagesJson::on();
        serde_json::from_slice(bytes)
    }

    /// True when the client asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// True when the client asked for a final usage chunk in a stream.
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|options| options.include_usage)
            .unwrap_or(false)
    }

    /// The output token limit, whichever of the two names the client used.
    pub fn output_limit(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }
}

/// A request's conversation: the parsed messages and, when the request
/// was parsed by [`ChatRequest::from_json`], the JSON text they came from.
///
/// It derefs to `Vec<Message>`. Serializing writes the kept text as it is
/// (the conversation is usually most of a request, and encoding every
/// message again cost more than parsing it), so the text is dropped on any
/// mutable access: after a change the list is encoded instead. Equality
/// compares the lists only. The kept text is written as text by
/// serde_json's serializers (bytes and `Value`); before serializing with
/// another format, call [`Messages::forget_json`].
#[derive(Debug, Clone, Default)]
pub struct Messages {
    list: Vec<Message>,
    json: Option<Box<serde_json::value::RawValue>>,
}

thread_local! {
    /// Set while [`ChatRequest::from_json`] parses, so that `Messages`
    /// keeps its text then, and only then: other deserializers (and the
    /// server's path-reporting second try after an error) parse the list
    /// directly.
    static KEEP_MESSAGES_JSON: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Turns [`KEEP_MESSAGES_JSON`] on until dropped, even on a panic.
struct KeepMessagesJson;

impl KeepMessagesJson {
    fn on() -> Self {
        KEEP_MESSAGES_JSON.with(|keep| keep.set(true));
        KeepMessagesJson
    }
}

impl Drop for KeepMessagesJson {
    fn drop(&mut self) {
        KEEP_MESSAGES_JSON.with(|keep| keep.set(false));
    }
}

impl Messages {
    /// The JSON text the messages were parsed from, while they are
    /// unchanged.
    pub fn json(&self) -> Option<&str> {
        self.json.as_deref().map(serde_json::value::RawValue::get)
    }

    /// Drops the kept text, so the list is encoded when serialized.
    pub fn forget_json(&mut self) {
        self.json = None;
    }

    /// The list, without the kept text.
    pub fn into_vec(self) -> Vec<Message> {
        self.list
    }
}

impl std::ops::Deref for Messages {
    type Target = Vec<Message>;

    fn deref(&self) -> &Vec<Message> {
        &self.list
    }
}

impl std::ops::DerefMut for Messages {
    /// Drops the kept text: the list may change.
    fn deref_mut(&mut self) -> &mut Vec<Message> {
        self.json = None;
        &mut self.list
    }
}

impl PartialEq for Messages {
    fn eq(&self, other: &Self) -> bool {
        self.list == other.list
    }
}

impl From<Vec<Message>> for Messages {
    fn from(list: Vec<Message>) -> Self {
        Messages { list, json: None }
    }
}

impl FromIterator<Message> for Messages {
    fn from_iter<I: IntoIterator<Item = Message>>(messages: I) -> Self {
        Messages::from(messages.into_iter().collect::<Vec<_>>())
    }
}

impl<'a> IntoIterator for &'a Messages {
    type Item = &'a Message;
    type IntoIter = std::slice::Iter<'a, Message>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

impl IntoIterator for Messages {
    type Item = Message;
    type IntoIter = std::vec::IntoIter<Message>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.into_iter()
    }
}

impl Serialize for Messages {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.json {
            Some(json) => json.serialize(serializer),
            None => self.list.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Messages {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if !KEEP_MESSAGES_JSON.with(std::cell::Cell::get) {
            return Vec::deserialize(deserializer).map(Messages::from);
        }
        // The array's text first (a scan and one copy), then the list
        // parsed from it.
        let json = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        let list = serde_json::from_str(json.get()).map_err(D::Error::custom)?;
        Ok(Messages {
            list,
            json: Some(json),
        })
    }
}

/// `stream_options`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Send a final chunk with `usage` and no choices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    /// Fields this type does not know, passed through.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// `stop`: one sequence or several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// A single stop sequence.
    One(String),
    /// Several stop sequences.
    Many(Vec<String>),
}

impl Stop {
    /// The sequences as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Stop::One(one) => vec![one.clone()],
            Stop::Many(many) => many.clone(),
        }
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// Instructions for the model (newer OpenAI name for `system`).
    Developer,
    /// The human side.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
    /// A legacy function result.
    Function,
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Text, or a list of content parts. Absent for assistant tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<MessageContent>,
    /// An optional participant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tool calls made by the assistant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// For `role: tool`, the call this message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Fields this type does not know, passed through.
    #[serde(flatten)]
    pub extra: JsonObject,
}

impl Message {
    /// A message with plain text content.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(MessageContent::Text(text.into())),
            name: None,
            tool_calls: None,
            tool_call_id: None,
            extra: JsonObject::new(),
        }
    }
}

/// Message content: a string, or a list of typed parts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Multimodal parts.
    Parts(Vec<ContentPart>),
}

/// By hand rather than `untagged`: serde's untagged enums buffer every
/// value into an intermediate tree before trying each variant, which made
/// message content the costliest part of parsing a request. The JSON type
/// decides the variant directly, and a wrong type names what was expected.
impl<'de> Deserialize<'de> for MessageContent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContentVisitor;

        impl<'de> serde::de::Visitor<'de> for ContentVisitor {
            type Value = MessageContent;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a string or a list of content parts")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(MessageContent::Text(text.to_owned()))
            }

            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(MessageContent::Text(text))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                Vec::<ContentPart>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(MessageContent::Parts)
            }
        }

        deserializer.deserialize_any(ContentVisitor)
    }
}

impl MessageContent {
    /// The text of the content: the string, or the text parts joined with
    /// newlines. Non-text parts are skipped.
    pub fn joined_text(&self) -> String {
        match self {
            MessageContent::Text(text) => text.clone(),
            MessageContent::Parts(parts) => {
                let texts: Vec<&str> = parts
                    .iter()
                    .filter_map(|part| match part {
                        ContentPart::Text { text } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect();
                texts.join("\n")
            }
        }
    }
}

/// One part of multimodal message content.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentPart {
    /// `{"type": "text", "text": ...}`
    Text {
        /// The text.
        text: String,
    },
    /// `{"type": "image_url", "image_url": {"url", "detail"}}`
    ImageUrl {
        /// The image, as an http(s) URL or a `data:` URL.
        image_url: ImageUrl,
    },
    /// Any other part type (`input_audio`, `file`, ...), kept as JSON.
    Other(JsonObject),
}

/// An image reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    /// An http(s) URL or a `data:<media type>;base64,<data>` URL.
    pub url: String,
    /// `low`, `high` or `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Serialize for ContentPart {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        enum Known<'a> {
            Text { text: &'a str },
            ImageUrl { image_url: &'a ImageUrl },
        }
        match self {
            ContentPart::Text { text } => Known::Text { text }.serialize(serializer),
            ContentPart::ImageUrl { image_url } => {
                Known::ImageUrl { image_url }.serialize(serializer)
            }
            ContentPart::Other(object) => object.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for ContentPart {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut object = JsonObject::deserialize(deserializer)?;
        let kind = object
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| D::Error::custom("content part needs a string `type`"))?;
        match kind {
            "text" => match object.remove("text") {
                Some(Value::String(text)) => Ok(ContentPart::Text { text }),
                _ => Err(D::Error::custom("text content part needs a string `text`")),
            },
            "image_url" => {
                let image_url = match object.remove("image_url") {
                    // Some clients send the URL as a bare string.
                    Some(Value::String(url)) => ImageUrl { url, detail: None },
                    Some(value) => serde_json::from_value(value).map_err(D::Error::custom)?,
                    None => return Err(D::Error::custom("image_url part needs `image_url`")),
                };
                Ok(ContentPart::ImageUrl { image_url })
            }
            _ => Ok(ContentPart::Other(object)),
        }
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Always `"function"` today.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// The function's name, description and JSON-schema parameters.
    pub function: FunctionDefinition,
}

fn function_type() -> String {
    "function".to_owned()
}

/// A function declaration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDefinition {
    /// The name the model calls it by.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON schema of the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Fields this type does not know (`strict`, ...), passed through.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// `tool_choice`: `"auto"`, `"none"`, `"required"` or a named function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `"auto"`, `"none"` or `"required"`.
    Mode(String),
    /// `{"type": "function", "function": {"name": ...}}`
    Named(NamedToolChoice),
}

/// A named tool choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedToolChoice {
    /// Always `"function"`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// The function to call.
    pub function: NamedFunction,
}

/// The name of a function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedFunction {
    /// The function's name.
    pub name: String,
}

/// A complete tool call made by the assistant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call id, echoed by the tool result message.
    pub id: String,
    /// Always `"function"`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// Which function, with which arguments.
    pub function: FunctionCall,
}

/// The function and its JSON-encoded arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The function's name.
    pub name: String,
    /// The arguments as a JSON string, exactly as the model wrote them.
    #[serde(default)]
    pub arguments: String,
}

/// Token usage.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens, including cached ones.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub completion_tokens: u64,
    /// The sum of the two.
    #[serde(default)]
    pub total_tokens: u64,
    /// Breakdown of the input tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// Breakdown of the output tokens; kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<Value>,
    /// Fields this type does not know, passed through.
    #[serde(flatten)]
    pub extra: JsonObject,
}

impl Usage {
    /// Usage with the total filled in.
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            ..Self::default()
        }
    }

    /// Cached input tokens, when the upstream reported them.
    pub fn cached_tokens(&self) -> u64 {
        self.prompt_tokens_details
            .as_ref()
            .and_then(|details| details.cached_tokens)
            .unwrap_or(0)
    }
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Input tokens served from the provider's prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    /// Fields this type does not know, passed through.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// The non-stream chat-completions response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The upstream's id, or one the gateway made.
    pub id: String,
    /// Always `"chat.completion"`.
    #[serde(default = "completion_object")]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: i64,
    /// The model name; the gateway re-stamps it to the alias the client sent.
    #[serde(default)]
    pub model: String,
    /// The answers.
    pub choices: Vec<ChatChoice>,
    /// Token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The upstream's fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// Fields this type does not know, passed through.
    #[serde(flatten)]
    pub extra: JsonObject,
}

fn completion_object() -> String {
    "chat.completion".to_owned()
}

fn chunk_object() -> String {
    "chat.completion.chunk".to_owned()
}

/// One answer of a non-stream response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    /// Position among the choices.
    #[serde(default)]
    pub index: u32,
    /// The assistant's message.
    pub message: ResponseMessage,
    /// `stop`, `length`, `tool_calls`, `content_filter`.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Log probabilities; always written (null when not asked for), as OpenAI does.
    #[serde(default)]
    pub logprobs: Option<Value>,
    /// Fields this type does not know, passed through.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// The assistant's message in a response. `tool_calls` and `function_call`
/// are always written (null when empty), as LiteLLM does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseMessage {
    /// Always `assistant`.
    pub role: Role,
    /// The text of the answer.
    #[serde(default)]
    pub content: Option<String>,
    /// Tool calls the model made.
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Legacy function call.
    #[serde(default)]
    pub function_call: Option<Value>,
    /// Reasoning text, from providers that expose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Fields this type does not know, passed through.
    #[serde(flatten)]
    pub extra: JsonObject,
}

impl ResponseMessage {
    /// An assistant message with text.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: Some(content.into()),
            tool_calls: None,
            function_call: None,
            reasoning_content: None,
            extra: JsonObject::new(),
        }
    }
}

/// One server-sent event of a streamed response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    /// Same for every chunk of one response.
    #[serde(default)]
    pub id: String,
    /// Always `"chat.completion.chunk"`.
    #[serde(default = "chunk_object")]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: i64,
    /// The model name; re-stamped to the alias the client sent.
    #[serde(default)]
    pub model: String,
    /// Deltas; empty on the final usage chunk.
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    /// Set on the final usage chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The upstream's fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// Fields this type does not know, passed through.
    #[serde(flatten)]
    pub extra: JsonObject,
}

impl ChatChunk {
    /// An empty chunk of response `id`.
    pub fn new(id: impl Into<String>, model: impl Into<String>, created: i64) -> Self {
        Self {
            id: id.into(),
            object: chunk_object(),
            created,
            model: model.into(),
            choices: Vec::new(),
            usage: None,
            system_fingerprint: None,
            extra: JsonObject::new(),
        }
    }
}

/// One choice's delta in a chunk.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Position among the choices.
    #[serde(default)]
    pub index: u32,
    /// What this chunk adds.
    #[serde(default)]
    pub delta: Delta,
    /// Set on the choice's last chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Log probabilities, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
    /// Fields this type does not know, passed through.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// The increment a chunk adds to the assistant's message.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Delta {
    /// Set on the first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// More text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Reasoning text, from providers that expose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Tool-call increments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    /// Fields this type does not know, passed through.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// A tool-call increment: the first one for a call carries `id` and the
/// function name, later ones carry argument text to append.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Which call of this turn the increment belongs to.
    pub index: u32,
    /// The call id (first increment only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `"function"` (first increment only).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name and argument text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
}

/// A function-call increment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FunctionCallDelta {
    /// The function's name (first increment only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Argument text to append.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn from_json_keeps_the_messages_text_and_writes_it_back_unchanged() {
        let messages = r#"[ {"content":"caf\u00e9","role":"user","x":1.50} ]"#;
        let body = format!(r#"{{"model":"m","messages":{messages},"temperature":0.5}}"#);
        let Ok(request) = ChatRequest::from_json(body.as_bytes()) else {
            panic!("a valid request")
        };
        assert_eq!(request.messages.json(), Some(messages));
        assert_eq!(request.messages[0].role, Role::User);
        assert_eq!(
            request.messages[0].content,
            Some(MessageContent::Text("café".to_owned()))
        );
        let Ok(encoded) = serde_json::to_string(&request) else {
            panic!("encodes")
        };
        assert_eq!(
            encoded,
            format!(r#"{{"model":"m","messages":{messages},"temperature":0.5}}"#)
        );
        // Into a Value too (the text is parsed there).
        let Ok(value) = serde_json::to_value(&request) else {
            panic!("encodes")
        };
        assert_eq!(value["messages"][0]["x"], 1.5);

        // Any change drops the text: the list is encoded.
        let mut changed = request.clone();
        changed.messages.push(Message::text(Role::Assistant, "ok"));
        assert_eq!(changed.messages.json(), None);
        let Ok(encoded) = serde_json::to_string(&changed.messages) else {
            panic!("encodes")
        };
        assert_eq!(
            encoded,
            r#"[{"role":"user","content":"café","x":1.5},{"role":"assistant","content":"ok"}]"#
        );
        // Equality is the list's.
        let mut same = request.clone();
        same.messages.forget_json();
        assert_eq!(same.messages.json(), None);
        assert_eq!(same, request);
    }

    #[test]
    fn other_parses_keep_no_messages_text() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let Ok(plain) = serde_json::from_str::<ChatRequest>(body) else {
            panic!("a valid request")
        };
        assert_eq!(plain.messages.json(), None);
        let Ok(from_value) = serde_json::from_value::<ChatRequest>(json!({
            "model": "m", "messages": [{"role": "user", "content": "hi"}]
        })) else {
            panic!("a valid request")
        };
        assert_eq!(from_value.messages.json(), None);
        assert_eq!(plain, from_value);
        // A parse that failed leaves later parses alone.
        assert!(ChatRequest::from_json(br#"{"model":"m","messages":[{"role":"robot"}]}"#).is_err());
        let Ok(after) = serde_json::from_str::<ChatRequest>(body) else {
            panic!("a valid request")
        };
        assert_eq!(after.messages.json(), None);
    }

    fn round_trip(value: Value) -> Value {
        let request: ChatRequest = match serde_json::from_value(value) {
            Ok(request) => request,
            Err(error) => panic!("parse failed: {error}"),
        };
        serde_json::to_value(&request).unwrap_or(Value::Null)
    }

    #[test]
    fn message_content_is_text_or_parts_by_its_json_type() {
        let parse = |content: Value| serde_json::from_value::<MessageContent>(content);
        assert_eq!(
            parse(json!("plain")).ok(),
            Some(MessageContent::Text("plain".to_owned()))
        );
        let parts = parse(json!([
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}
        ]));
        match parts {
            Ok(MessageContent::Parts(parts)) => {
                assert_eq!(parts.len(), 3);
                assert_eq!(
                    parts[0],
                    ContentPart::Text {
                        text: "look".to_owned()
                    }
                );
                assert!(
                    matches!(&parts[1], ContentPart::ImageUrl { image_url } if image_url.url == "https://example.com/a.png")
                );
                assert!(
                    matches!(&parts[2], ContentPart::Other(object) if object["type"] == "input_audio")
                );
            }
            other => panic!("expected parts, got {other:?}"),
        }
        // From bytes too (borrowed and escaped strings take different paths).
        let escaped: MessageContent = match serde_json::from_slice(br#""a \"quoted\" line""#) {
            Ok(content) => content,
            Err(error) => panic!("{error}"),
        };
        assert_eq!(
            escaped,
            MessageContent::Text("a \"quoted\" line".to_owned())
        );
        for wrong in [json!(5), json!({"text": "x"}), json!(true)] {
            let error = parse(wrong.clone())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                error.contains("expected a string or a list of content parts"),
                "{wrong}: {error}"
            );
        }
        // A list whose part is malformed says what is wrong with the part.
        let error = parse(json!([{"type": "text"}]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("text"), "{error}");
    }

    #[test]
    fn unknown_request_fields_survive_a_round_trip() {
        let input = json!({
            "model": "m",
            "messages": [{"role": "user", "content": "hi", "cache_control": {"type": "ephemeral"}}],
            "logit_bias": {"50256": -100},
            "reasoning_effort": "low"
        });
        assert_eq!(round_trip(input.clone()), input);
    }

    #[test]
    fn multimodal_parts_parse_and_keep_unknown_kinds() {
        let input = json!({
            "model": "m",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                {"type": "input_audio", "input_audio": {"data": "xx", "format": "wav"}}
            ]}]
        });
        let request: ChatRequest = serde_json::from_value(input.clone()).unwrap_or_default();
        let Some(MessageContent::Parts(parts)) = &request.messages[0].content else {
            panic!("expected parts");
        };
        assert!(
            matches!(&parts[1], ContentPart::ImageUrl { image_url } if image_url.detail.as_deref() == Some("low"))
        );
        assert!(
            matches!(&parts[2], ContentPart::Other(object) if object.contains_key("input_audio"))
        );
        assert_eq!(round_trip(input.clone()), input);
    }

    #[test]
    fn response_message_always_writes_tool_calls_and_function_call() {
        let message = serde_json::to_value(ResponseMessage::assistant("Hi")).unwrap_or_default();
        assert_eq!(
            message,
            json!({"role": "assistant", "content": "Hi", "tool_calls": null, "function_call": null})
        );
    }

    #[test]
    fn stream_chunk_with_tool_call_delta_round_trips() {
        let input = json!({
            "id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\""}}
            ]}}]
        });
        let chunk: ChatChunk =
            serde_json::from_value(input.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(serde_json::to_value(&chunk).unwrap_or_default(), input);
    }

    #[test]
    fn stop_accepts_a_string_or_a_list() {
        let one: Stop = serde_json::from_value(json!("x")).unwrap_or(Stop::Many(vec![]));
        let many: Stop = serde_json::from_value(json!(["x", "y"])).unwrap_or(Stop::Many(vec![]));
        assert_eq!(one.to_vec(), vec!["x"]);
        assert_eq!(many.to_vec(), vec!["x", "y"]);
    }
}
