//! Server-sent events: an incremental decoder, and a stream of events read
//! from an upstream response body.

use crate::error::{ErrorKind, ProviderError};
use bytes::Bytes;
use futures_core::Stream;
use hyper::body::Incoming;

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, when set.
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// Longest event the decoder buffers before failing: a protection against an
/// upstream that never ends an event.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Decodes the `text/event-stream` format incrementally: feed it bytes as they
/// arrive, in pieces of any size, and take whole events out.
///
/// Follows the WHATWG rules that matter for LLM APIs: lines end in `\n`,
/// `\r\n` or `\r`; `data:` lines accumulate; a blank line dispatches; comment
/// lines (`:`) are skipped; one space after the colon is removed.
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    event: Option<String>,
    data: String,
    has_data: bool,
    last_was_cr: bool,
}

impl SseDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes, appending every event they complete to `out`.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        if self.last_was_cr && !bytes.is_empty() {
            // The `\n` of a `\r\n` split across pieces: the line already
            // ended at `\r`.
            if bytes[0] == b'\n' {
                bytes = &bytes[1..];
            }
            self.last_was_cr = false;
        }
        // Whole runs of line text at a time, found with memchr, rather
        // than byte by byte.
        while !bytes.is_empty() {
            let Some(end) = memchr::memchr2(b'\n', b'\r', bytes) else {
                self.line.extend_from_slice(bytes);
                return self.check_size();
            };
            self.line.extend_from_slice(&bytes[..end]);
            self.check_size()?;
            let was_cr = bytes[end] == b'\r';
            self.end_line(out)?;
            bytes = &bytes[end + 1..];
            if was_cr {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    Some(_) => {}
                    None => self.last_was_cr = true,
                }
            }
        }
        Ok(())
    }

    fn check_size(&self) -> Result<(), ProviderError> {
        if self.line.len() + self.data.len() > MAX_EVENT_BYTES {
            return Err(ProviderError::new(
                ErrorKind::InvalidResponse,
                "upstream sent a server-sent event larger than 16 MiB",
            ));
        }
        Ok(())
    }

    /// Ends the stream: an event with data but no closing blank line is
    /// dispatched, as most upstreams forget the last blank line.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        if !self.line.is_empty() {
            self.end_line(out)?;
        }
        self.dispatch(out);
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        if self.line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let line = std::mem::take(&mut self.line);
        let text = std::str::from_utf8(&line).map_err(|_| {
            ProviderError::new(ErrorKind::InvalidResponse, "upstream event is not UTF-8")
        })?;
        let (field, value) = match text.find(':') {
            Some(0) => return Ok(()),
            Some(colon) => {
                let value = &text[colon + 1..];
                (&text[..colon], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (text, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            _ => {}
        }
        // Keep the line's allocation for the next line.
        self.line = line;
        self.line.clear();
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            out.push(SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
            });
        }
        self.event = None;
        self.has_data = false;
    }
}

/// Reads a response body as a stream of events. Transport errors become
/// [`ErrorKind::Connect`] errors; the stream ends when the body ends.
pub fn events(body: Incoming) -> impl Stream<Item = Result<SseEvent, ProviderError>> + Send {
    crate::framing::decode_body(body, SseDecoder::new())
}

/// Encodes one `data:` event as the gateway writes it to clients.
pub fn encode_data(json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

impl crate::framing::FrameDecoder for SseDecoder {
    type Item = SseEvent;

    fn push(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        SseDecoder::push(self, bytes, out)
    }

    fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        SseDecoder::finish(self, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(input: &str, piece: usize) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::new();
        let mut out = Vec::new();
        for chunk in input.as_bytes().chunks(piece) {
            assert!(decoder.push(chunk, &mut out).is_ok());
        }
        assert!(decoder.finish(&mut out).is_ok());
        out
    }

    fn data(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    #[test]
    fn events_decode_the_same_whatever_the_piece_size() {
        let input =
            "event: message_start\ndata: {\"a\":1}\n\n: ping comment\r\ndata: x\r\ndata:y\r\n\r\ndata: [DONE]\n\n";
        let expected = vec![
            data(Some("message_start"), "{\"a\":1}"),
            data(None, "x\ny"),
            data(None, "[DONE]"),
        ];
        for piece in [1, 2, 3, 7, 1000] {
            assert_eq!(
                decode_in_pieces(input, piece),
                expected,
                "piece size {piece}"
            );
        }
    }

    #[test]
    fn every_line_ending_splits_the_same_at_every_boundary() {
        // CR, LF and CRLF endings, long lines, and a CR right before a piece
        // boundary: every split point of the input gives the same events.
        let long = "x".repeat(300);
        let input = format!(
            "data: {long}\r\rdata: a\r\ndata: b\n\r\nevent: e\rdata: c\r\n\r\n:c\r\ndata:\n\n"
        );
        let expected = vec![
            data(None, &long),
            data(None, "a\nb"),
            data(Some("e"), "c"),
            data(None, ""),
        ];
        for split in 0..=input.len() {
            let mut decoder = SseDecoder::new();
            let mut out = Vec::new();
            let (head, tail) = input.as_bytes().split_at(split);
            assert!(decoder.push(head, &mut out).is_ok());
            assert!(decoder.push(&[], &mut out).is_ok());
            assert!(decoder.push(tail, &mut out).is_ok());
            assert!(decoder.finish(&mut out).is_ok());
            assert_eq!(out, expected, "split at {split}");
        }
    }

    #[test]
    fn an_event_past_the_limit_fails_instead_of_growing() {
        let mut decoder = SseDecoder::new();
        let mut out = Vec::new();
        let piece = vec![b'x'; 1024 * 1024];
        assert!(decoder.push(b"data: ", &mut out).is_ok());
        let mut failed = None;
        for _ in 0..17 {
            if let Err(error) = decoder.push(&piece, &mut out) {
                failed = Some(error);
                break;
            }
        }
        let error = failed.expect("an event over 16 MiB is refused");
        assert_eq!(error.kind, ErrorKind::InvalidResponse);
        assert!(out.is_empty());
    }

    #[test]
    fn last_event_without_blank_line_is_dispatched() {
        assert_eq!(decode_in_pieces("data: tail", 4), vec![data(None, "tail")]);
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        assert_eq!(decode_in_pieces("event: ping\n\n", 3), vec![]);
    }

    #[test]
    fn invalid_utf8_is_an_invalid_response() {
        let mut decoder = SseDecoder::new();
        let mut out = Vec::new();
        let result = decoder.push(b"data: \xff\xfe\n\n", &mut out);
        assert_eq!(result.map_err(|e| e.kind), Err(ErrorKind::InvalidResponse));
    }

    #[test]
    fn encode_data_frames_json() {
        assert_eq!(&encode_data(b"{}")[..], b"data: {}\n\n");
    }
}
