//! Cases for Azure and Gemini.

use super::{Case, OpenAiFormat};
use crate::support::{Recorded, Scripted};
use crate::{assert_header, spec};
use gateway_providers::ProviderSpec;

/// The remaining cases.
pub fn cases() -> Vec<Box<dyn Case>> {
    vec![Box::new(Azure)]
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
