//! Cases for Azure and Gemini.

use super::{Case, OpenAiFormat};
use crate::support::{Recorded, Scripted};
use crate::{assert_header, spec, sse, TOOL_ARGUMENTS};
use gateway_providers::ProviderSpec;
use serde_json::{json, Value};

/// The remaining cases.
pub fn cases() -> Vec<Box<dyn Case>> {
    vec![Box::new(Azure), Box::new(Gemini)]
}

struct Azure;

impl Case for Azure {
    fn name(&self) -> &'static str {
        "azure"
    }
    fn spec(&self, base_url: &str) -> ProviderSpec {
        let mut spec = spec("azure", "my-gpt4o", base_url.to_owned());
        spec.api_version = Some("2024-06-01".to_owned());
        spec
    }
    fn text(&self) -> Scripted {
        OpenAiFormat::text()
    }
    fn text_stream(&self) -> Scripted {
        let mut scripted = OpenAiFormat::text_stream();
        // Azure opens streams with a prompt-filter chunk without choices.
        scripted.pieces.insert(
            0,
            "data: {\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\",\"prompt_filter_results\":[]}\n\n"
                .to_owned(),
        );
        scripted
    }
    fn tool_stream(&self) -> Scripted {
        OpenAiFormat::tool_stream()
    }
    fn error(&self, status: u16) -> Scripted {
        OpenAiFormat::error(status)
    }
    fn malformed_stream(&self) -> Scripted {
        OpenAiFormat::malformed_stream()
    }
    fn cut_stream(&self) -> Scripted {
        OpenAiFormat::cut_stream()
    }
    fn check_request(&self, request: &Recorded, stream: bool) {
        let name = self.name();
        assert_eq!(
            request.uri, "/openai/deployments/my-gpt4o/chat/completions?api-version=2024-06-01",
            "{name}"
        );
        assert_header(request, "api-key", "test-key", name);
        assert_eq!(request.header("authorization"), None, "{name}");
        assert_eq!(
            request.body["messages"][0]["content"], "Say hello",
            "{name}"
        );
        if stream {
            assert_eq!(
                request.body["stream_options"]["include_usage"], true,
                "{name}"
            );
        }
    }
    fn check_tool_history(&self, request: &Recorded) {
        OpenAiFormat::check_tool_history(request, self.name());
    }
}

struct Gemini;

const SSE: &str = "text/event-stream";

fn gemini_text(text: &str, finish: Option<&str>) -> (Option<&'static str>, String) {
    let mut candidate =
        json!({"content": {"role": "model", "parts": [{"text": text}]}, "index": 0});
    let mut event = json!({"modelVersion": "gemini-2.0-flash", "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}});
    if let Some(finish) = finish {
        candidate["finishReason"] = json!(finish);
        event["usageMetadata"] =
            json!({"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7});
    }
    event["candidates"] = json!([candidate]);
    (None, event.to_string())
}

impl Case for Gemini {
    fn name(&self) -> &'static str {
        "gemini"
    }
    fn spec(&self, base_url: &str) -> ProviderSpec {
        spec("gemini", "gemini-2.0-flash", base_url.to_owned())
    }
    fn text(&self) -> Scripted {
        Scripted::json(
            200,
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello world"}]}, "finishReason": "STOP", "index": 0}],
                   "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7},
                   "modelVersion": "gemini-2.0-flash", "responseId": "r1"})
            .to_string(),
        )
    }
    fn text_stream(&self) -> Scripted {
        Scripted::stream(
            SSE,
            sse(&[
                gemini_text("Hello", None),
                gemini_text(" world", Some("STOP")),
            ]),
        )
    }
    fn tool_stream(&self) -> Scripted {
        let arguments: Value = serde_json::from_str(TOOL_ARGUMENTS).unwrap_or_default();
        let event = json!({"candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": arguments}}]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7}});
        Scripted::stream(SSE, sse(&[(None, event.to_string())]))
    }
    fn error(&self, status: u16) -> Scripted {
        let google_status = match status {
            429 => "RESOURCE_EXHAUSTED",
            400 => "INVALID_ARGUMENT",
            _ => "INTERNAL",
        };
        Scripted::json(
            status,
            json!({"error": {"code": status, "message": format!("failure {status}"), "status": google_status}}).to_string(),
        )
    }
    fn malformed_stream(&self) -> Scripted {
        let mut pieces = sse(&[gemini_text("Hel", None)]);
        pieces.push("data: {\"candidates\": [{\n\n".to_owned());
        Scripted::stream(SSE, pieces)
    }
    fn cut_stream(&self) -> Scripted {
        Scripted::stream(SSE, sse(&[gemini_text("Hel", None)])).then_abort()
    }
    fn check_request(&self, request: &Recorded, stream: bool) {
        let name = self.name();
        let expected = if stream {
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
        } else {
            "/v1beta/models/gemini-2.0-flash:generateContent"
        };
        assert_eq!(request.uri, expected, "{name}");
        assert_header(request, "x-goog-api-key", "test-key", name);
        assert_eq!(
            request.body["contents"],
            json!([{"role": "user", "parts": [{"text": "Say hello"}]}]),
            "{name}"
        );
        assert_eq!(
            request.body["generationConfig"]["maxOutputTokens"], 50,
            "{name}"
        );
    }
    fn check_tool_history(&self, request: &Recorded) {
        let contents = &request.body["contents"];
        assert_eq!(
            contents[1],
            json!({"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]})
        );
        assert_eq!(
            contents[2]["parts"][0],
            json!({"functionResponse": {"name": "get_weather", "response": {"content": "18C"}}})
        );
        assert_eq!(
            request.body["tools"][0]["functionDeclarations"][0]["name"],
            "get_weather"
        );
    }
}
