//! Newline-delimited JSON (Ollama's stream format): an incremental line
//! decoder, and a stream of lines read from an upstream response body.

use crate::error::{ErrorKind, ProviderError};
use futures_core::Stream;
use hyper::body::Incoming;

/// Longest line the decoder buffers before failing.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Splits bytes into lines incrementally: feed pieces of any size, take
/// whole lines out. Lines end in `\n` (a `\r` before it is removed); blank
/// lines are skipped.
#[derive(Debug, Default)]
pub struct NdjsonDecoder {
    line: Vec<u8>,
}

impl NdjsonDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes, appending every line they complete to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<String>) -> Result<(), ProviderError> {
        for &byte in bytes {
            if byte == b'\n' {
                self.end_line(out)?;
            } else {
                self.line.push(byte);
                if self.line.len() > MAX_LINE_BYTES {
                    return Err(ProviderError::new(
                        ErrorKind::InvalidResponse,
                        "upstream sent a JSON line larger than 16 MiB",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Ends the stream: a last line without its newline is kept.
    pub fn finish(&mut self, out: &mut Vec<String>) -> Result<(), ProviderError> {
        self.end_line(out)
    }

    fn end_line(&mut self, out: &mut Vec<String>) -> Result<(), ProviderError> {
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        let text = std::str::from_utf8(&self.line).map_err(|_| {
            ProviderError::new(
                ErrorKind::InvalidResponse,
                "upstream JSON line is not UTF-8",
            )
        })?;
        let trimmed = text.trim();
        if !trimmed.is_empty() {
            out.push(trimmed.to_owned());
        }
        self.line.clear();
        Ok(())
    }
}

/// Reads a response body as a stream of non-blank lines. Transport errors
/// become [`ErrorKind::Connect`] errors; the stream ends when the body ends.
pub fn lines(body: Incoming) -> impl Stream<Item = Result<String, ProviderError>> + Send {
    crate::framing::decode_body(body, NdjsonDecoder::new())
}

impl crate::framing::FrameDecoder for NdjsonDecoder {
    type Item = String;

    fn push(&mut self, bytes: &[u8], out: &mut Vec<String>) -> Result<(), ProviderError> {
        NdjsonDecoder::push(self, bytes, out)
    }

    fn finish(&mut self, out: &mut Vec<String>) -> Result<(), ProviderError> {
        NdjsonDecoder::finish(self, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(input: &str, piece: usize) -> Vec<String> {
        let mut decoder = NdjsonDecoder::new();
        let mut out = Vec::new();
        for chunk in input.as_bytes().chunks(piece) {
            assert!(decoder.push(chunk, &mut out).is_ok());
        }
        assert!(decoder.finish(&mut out).is_ok());
        out
    }

    #[test]
    fn lines_decode_the_same_whatever_the_piece_size() {
        let input = "{\"a\":1}\n\r\n{\"b\":\"é\"}\r\n\n{\"c\":3}";
        let expected = vec!["{\"a\":1}", "{\"b\":\"é\"}", "{\"c\":3}"];
        for piece in [1, 2, 3, 5, 1000] {
            assert_eq!(
                decode_in_pieces(input, piece),
                expected,
                "piece size {piece}"
            );
        }
    }

    #[test]
    fn invalid_utf8_is_an_invalid_response() {
        let mut decoder = NdjsonDecoder::new();
        let mut out = Vec::new();
        let result = decoder.push(b"\xff\xfe\n", &mut out);
        assert_eq!(result.map_err(|e| e.kind), Err(ErrorKind::InvalidResponse));
    }
}
