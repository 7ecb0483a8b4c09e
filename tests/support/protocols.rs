//! What each upstream protocol answers, for the fake upstreams: the same
//! text and the same `get_weather` tool call, in OpenAI's, Anthropic's,
//! Ollama's and Gemini's own formats.

use super::Reply;
use serde_json::{json, Value};

/// The tool call's arguments, as every fake sends them (in pieces where the
/// protocol streams them), and as the client must receive them, byte for byte.
pub const TOOL_ARGUMENTS: &str = r#"{"city":"Paris","unit":"c"}"#;

/// The pieces the arguments are streamed in.
pub const TOOL_ARGUMENT_PIECES: [&str; 4] = ["", "{\"city\":", "\"Paris\",", "\"unit\":\"c\"}"];

fn tool_arguments() -> Value {
    serde_json::from_str(TOOL_ARGUMENTS).unwrap()
}

/// OpenAI chat completions (also Azure's format).
pub mod openai {
    use super::*;

    fn chunk(delta: Value, finish: Value) -> String {
        json!({"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "upstream-model",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string()
    }

    fn usage() -> String {
        json!({"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "upstream-model",
               "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}})
        .to_string()
    }

    /// A text stream in `pieces`, then a usage chunk and `[DONE]`.
    pub fn text_stream(pieces: &[&str]) -> Reply {
        let mut events = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        events.extend(
            pieces
                .iter()
                .map(|piece| chunk(json!({"content": piece}), Value::Null)),
        );
        events.push(chunk(json!({}), json!("stop")));
        events.push(usage());
        events.push("[DONE]".to_owned());
        Reply::Sse { events }
    }

    /// A streamed `get_weather` call, its arguments in pieces.
    pub fn tool_stream() -> Reply {
        let mut events = vec![chunk(
            json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                         "function": {"name": "get_weather", "arguments": ""}}]}),
            Value::Null,
        )];
        events.extend(TOOL_ARGUMENT_PIECES.iter().skip(1).map(|piece| {
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                Value::Null,
            )
        }));
        events.push(chunk(json!({}), json!("tool_calls")));
        events.push(usage());
        events.push("[DONE]".to_owned());
        Reply::Sse { events }
    }

    /// A non-stream `get_weather` call.
    pub fn tool_message() -> Reply {
        Reply::json(
            200,
            json!({"id": "chatcmpl-up", "object": "chat.completion", "created": 1_700_000_000, "model": "upstream-model",
                   "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                       "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": TOOL_ARGUMENTS}}]}}],
                   "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}}),
        )
    }
}

/// Anthropic Messages.
pub mod anthropic {
    use super::*;

    /// The model the fake says it is.
    pub const MODEL: &str = "claude-3-5-haiku-20241022";

    /// A whole message with one text block.
    pub fn message_body(text: &str) -> Value {
        json!({"id": "msg_up1", "type": "message", "role": "assistant", "model": MODEL,
               "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": null,
               "usage": {"input_tokens": 5, "output_tokens": 2}})
    }

    /// A whole message with one text block.
    pub fn message(text: &str) -> Reply {
        Reply::json(200, message_body(text))
    }

    /// Named events as Anthropic frames them.
    pub fn events(events: &[(&str, Value)]) -> Reply {
        let mut body = String::new();
        for (name, data) in events {
            body.push_str(&format!("event: {name}\ndata: {data}\n\n"));
        }
        Reply::Raw {
            status: 200,
            content_type: "text/event-stream",
            body,
        }
    }

    fn start() -> (&'static str, Value) {
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_up2", "type": "message", "role": "assistant",
                   "model": MODEL, "content": [], "stop_reason": null, "stop_sequence": null,
                   "usage": {"input_tokens": 5, "output_tokens": 1}}}),
        )
    }

    fn end(stop_reason: &str) -> [(&'static str, Value); 2] {
        [
            (
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": 2}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
        ]
    }

    /// The event list of a text stream in `pieces`.
    pub fn text_stream_events(pieces: &[&str]) -> Vec<(&'static str, Value)> {
        let mut list = vec![
            start(),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            ("ping", json!({"type": "ping"})),
        ];
        list.extend(pieces.iter().map(|piece| {
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
            )
        }));
        list.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ));
        list.extend(end("end_turn"));
        list
    }

    /// A text stream in `pieces`.
    pub fn text_stream(pieces: &[&str]) -> Reply {
        events(&text_stream_events(pieces))
    }

    /// A streamed `get_weather` call, its arguments in pieces.
    pub fn tool_stream() -> Reply {
        let mut list = vec![
            start(),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0,
                       "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
            ),
        ];
        list.extend(TOOL_ARGUMENT_PIECES.iter().map(|piece| {
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": piece}}),
            )
        }));
        list.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ));
        list.extend(end("tool_use"));
        events(&list)
    }

    /// An error answer.
    pub fn error(status: u16, kind: &str) -> Reply {
        Reply::json(
            status,
            json!({"type": "error", "error": {"type": kind, "message": format!("upstream says {kind}")}}),
        )
    }
}

/// Ollama's `/api/chat`.
pub mod ollama {
    use super::*;

    fn line(message: Value, done: bool) -> String {
        let mut value = json!({"model": "llama3.2", "created_at": "2024-01-01T00:00:00Z", "message": message, "done": done});
        if done {
            value["done_reason"] = json!("stop");
            value["prompt_eval_count"] = json!(5);
            value["eval_count"] = json!(2);
        }
        format!("{value}\n")
    }

    fn ndjson(lines: Vec<String>) -> Reply {
        Reply::Raw {
            status: 200,
            content_type: "application/x-ndjson",
            body: lines.concat(),
        }
    }

    /// A whole answer.
    pub fn message(text: &str) -> Reply {
        Reply::json(
            200,
            json!({"model": "llama3.2", "created_at": "2024-01-01T00:00:00Z",
                   "message": {"role": "assistant", "content": text}, "done": true, "done_reason": "stop",
                   "prompt_eval_count": 5, "eval_count": 2}),
        )
    }

    /// A text stream in `pieces`.
    pub fn text_stream(pieces: &[&str]) -> Reply {
        let mut lines: Vec<String> = pieces
            .iter()
            .map(|piece| line(json!({"role": "assistant", "content": piece}), false))
            .collect();
        lines.push(line(json!({"role": "assistant", "content": ""}), true));
        ndjson(lines)
    }

    /// A streamed `get_weather` call (Ollama sends the arguments whole, as an object).
    pub fn tool_stream() -> Reply {
        ndjson(vec![
            line(
                json!({"role": "assistant", "content": "",
                       "tool_calls": [{"function": {"name": "get_weather", "arguments": tool_arguments()}}]}),
                false,
            ),
            line(json!({"role": "assistant", "content": ""}), true),
        ])
    }
}

/// Gemini's `generateContent`.
pub mod gemini {
    use super::*;

    fn event(parts: Value, finish: Option<&str>) -> String {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        let mut event = json!({"modelVersion": "gemini-2.0-flash", "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}});
        if let Some(finish) = finish {
            candidate["finishReason"] = json!(finish);
            event["usageMetadata"] =
                json!({"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7});
        }
        event["candidates"] = json!([candidate]);
        event.to_string()
    }

    /// A whole answer.
    pub fn message(text: &str) -> Reply {
        Reply::json(
            200,
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}],
                   "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7},
                   "modelVersion": "gemini-2.0-flash", "responseId": "r1"}),
        )
    }

    /// A text stream in `pieces`.
    pub fn text_stream(pieces: &[&str]) -> Reply {
        let last = pieces.len().saturating_sub(1);
        Reply::Sse {
            events: pieces
                .iter()
                .enumerate()
                .map(|(index, piece)| {
                    event(
                        json!([{ "text": piece }]),
                        (index == last).then_some("STOP"),
                    )
                })
                .collect(),
        }
    }

    /// A streamed `get_weather` call (Gemini sends the arguments whole).
    pub fn tool_stream() -> Reply {
        Reply::Sse {
            events: vec![event(
                json!([{"functionCall": {"name": "get_weather", "args": tool_arguments()}}]),
                Some("STOP"),
            )],
        }
    }
}
