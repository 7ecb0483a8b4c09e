//! Azure-specific readings of OpenAI-format answers: content-filter errors
//! and filtered answers, and the chunks Azure adds to streams.

use super::wire::ErrorEnvelope;
use crate::error::{ErrorKind, ProviderError};
use crate::http::BufferedResponse;
use gateway_types::{ChatChunk, ChatResponse};

/// The provider name in messages.
pub(crate) const PROVIDER: &str = "azure";

/// Translates an error response; a content-filter rejection is
/// [`ErrorKind::ContentFiltered`] whatever its message says.
pub(crate) fn error_from_wire(response: &BufferedResponse) -> ProviderError {
    let retry_after = crate::error::retry_after(&response.headers);
    let mut error =
        ProviderError::from_upstream(PROVIDER, response.status, retry_after, &response.body);
    if let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(&response.body) {
        let code_is_filter = envelope
            .error
            .code
            .as_ref()
            .and_then(|code| code.as_str())
            .is_some_and(|code| code == "content_filter");
        let inner_is_filter = envelope
            .error
            .innererror
            .as_ref()
            .and_then(|inner| inner.code.as_deref())
            .is_some_and(|code| code == "ResponsibleAIPolicyViolation");
        if (code_is_filter || inner_is_filter) && response.status < 500 {
            error.kind = ErrorKind::ContentFiltered;
        }
    }
    error
}

fn filtered() -> ProviderError {
    ProviderError::new(
        ErrorKind::ContentFiltered,
        format!("{PROVIDER} content filter blocked the answer (finish_reason content_filter)"),
    )
}

/// A response whose only choice was stopped by the content filter before it
/// said anything is an error; a partly written answer is returned as is.
pub(crate) fn check_response(response: ChatResponse) -> Result<ChatResponse, ProviderError> {
    let blocked = !response.choices.is_empty()
        && response.choices.iter().all(|choice| {
            choice.finish_reason.as_deref() == Some("content_filter")
                && choice.message.content.as_deref().unwrap_or("").is_empty()
                && choice.message.tool_calls.as_ref().is_none_or(Vec::is_empty)
        });
    if blocked {
        Err(filtered())
    } else {
        Ok(response)
    }
}

/// Per-stream state: whether any content was sent yet.
#[derive(Debug, Default)]
pub(crate) struct StreamFilter {
    sent_content: bool,
}

impl StreamFilter {
    /// What to do with one chunk: `Ok(None)` skips Azure's prompt-filter
    /// chunks (no choices, no usage); a content-filter finish before any
    /// content is an error.
    pub(crate) fn check(&mut self, chunk: ChatChunk) -> Result<Option<ChatChunk>, ProviderError> {
        if chunk.choices.is_empty() && chunk.usage.is_none() {
            return Ok(None);
        }
        for choice in &chunk.choices {
            let delta = &choice.delta;
            if delta
                .content
                .as_deref()
                .is_some_and(|text| !text.is_empty())
                || delta.tool_calls.is_some()
            {
                self.sent_content = true;
            }
            if choice.finish_reason.as_deref() == Some("content_filter") && !self.sent_content {
                return Err(filtered());
            }
        }
        Ok(Some(chunk))
    }
}
