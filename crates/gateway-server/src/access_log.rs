//! The per-request log line, written by hand.
//!
//! By default the line is a `tracing` event (target
//! `gateway_server::observe`, message `request`), so an embedding program's
//! subscriber sees it like any other event. Formatting ~20 fields through
//! `tracing-subscriber`'s generic visitor was 14% of the gateway's CPU under
//! load, so a program that owns its log output can install an [`AccessLog`]
//! with [`Gateway::set_access_log`](crate::Gateway::set_access_log): the line
//! is then formatted directly into a reused buffer, in the same layout as
//! `tracing-subscriber`'s default text or JSON format, and handed to the
//! sink in one call. The `tracing` filter still decides whether the line is
//! written (it is checked per request, as `tracing` does).

use gateway_budget::time::civil_from_days;
use std::cell::RefCell;
use std::fmt;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The layout of a hand-written access log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// `tracing-subscriber`'s default (`Full`) text format without colours:
    /// `2026-11-21T19:34:03.893928Z  INFO gateway_server::observe: request request_id=…`.
    Text,
    /// `tracing-subscriber`'s JSON format: one object per line with
    /// `timestamp`, `level`, `fields` (`message` first) and `target`.
    Json,
}

/// A fast sink for the per-request log line (see the module docs).
///
/// ```
/// use gateway_server::access_log::{AccessLog, AccessLogFormat};
/// use std::io::Write;
///
/// let log = AccessLog::new(AccessLogFormat::Text, |line: &[u8]| {
///     let _ = std::io::stderr().write_all(line);
/// });
/// # drop(log);
/// ```
#[derive(Clone)]
pub struct AccessLog {
    format: AccessLogFormat,
    sink: Arc<Sink>,
}

/// Takes one whole line.
type Sink = dyn Fn(&[u8]) + Send + Sync;

impl fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessLog")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl AccessLog {
    /// Lines in `format`, each passed whole (ending in `\n`) to `sink`.
    /// The sink is called on the request's thread: it should hand the bytes
    /// off (to a channel, a buffered writer thread) rather than block.
    pub fn new(format: AccessLogFormat, sink: impl Fn(&[u8]) + Send + Sync + 'static) -> Self {
        Self {
            format,
            sink: Arc::new(sink),
        }
    }

    /// The layout this log writes.
    pub fn format(&self) -> AccessLogFormat {
        self.format
    }

    /// Formats `line` into a per-thread buffer and passes it to the sink.
    pub(crate) fn write(&self, line: &Line<'_>) {
        thread_local! {
            static BUFFER: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
        }
        BUFFER.with(|buffer| {
            // A sink that logs through this thread re-enters: give it a
            // fresh buffer rather than panic on the borrow.
            let mut fresh = Vec::new();
            let mut borrowed = buffer.try_borrow_mut();
            let out = match borrowed.as_deref_mut() {
                Ok(out) => out,
                Err(_) => &mut fresh,
            };
            out.clear();
            match self.format {
                AccessLogFormat::Text => line.write_text(out, SystemTime::now()),
                AccessLogFormat::Json => line.write_json(out, SystemTime::now()),
            }
            (self.sink)(out);
            if out.capacity() > 64 * 1024 {
                // One huge body logged with --log-bodies: do not keep it.
                *out = Vec::with_capacity(512);
            }
        });
    }
}

/// A field's value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    /// Written bare in text, as a JSON string in JSON (tracing's `%`).
    Display(&'a str),
    /// Written quoted and escaped (tracing's `&str` fields).
    Str(&'a str),
    Uint(u64),
    /// `units` × 10^-`scale` (milliseconds as microseconds, dollars as
    /// nano-dollars), written as `{:?}` writes that number as an `f64`,
    /// without formatting a float on the usual path. `scale` ≤ 18.
    Fixed {
        units: i64,
        scale: u32,
    },
}

/// One request's log line: a level and its fields in order. A `None`
/// value leaves the field out, as `tracing` does with `Option` fields.
#[derive(Debug)]
pub(crate) struct Line<'a> {
    pub(crate) level: tracing::Level,
    pub(crate) target: &'static str,
    pub(crate) message: &'static str,
    pub(crate) fields: &'a [(&'static str, Option<Value<'a>>)],
}

impl Line<'_> {
    fn write_text(&self, out: &mut Vec<u8>, now: SystemTime) {
        write_timestamp(out, now);
        out.extend_from_slice(match self.level {
            tracing::Level::ERROR => b" ERROR ",
            tracing::Level::WARN => b"  WARN ",
            tracing::Level::INFO => b"  INFO ",
            tracing::Level::DEBUG => b" DEBUG ",
            tracing::Level::TRACE => b" TRACE ",
        });
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(self.message.as_bytes());
        for (name, value) in self.fields {
            let Some(value) = value else { continue };
            out.push(b' ');
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
            match *value {
                Value::Display(text) => out.extend_from_slice(text.as_bytes()),
                Value::Str(text) => debug_str(out, text),
                Value::Uint(number) => {
                    out.extend_from_slice(itoa::Buffer::new().format(number).as_bytes())
                }
                Value::Fixed { units, scale } => write_fixed(out, units, scale),
            }
        }
        out.push(b'\n');
    }

    fn write_json(&self, out: &mut Vec<u8>, now: SystemTime) {
        out.extend_from_slice(b"{\"timestamp\":\"");
        write_timestamp(out, now);
        out.extend_from_slice(b"\",\"level\":\"");
        out.extend_from_slice(self.level.as_str().as_bytes());
        out.extend_from_slice(b"\",\"fields\":{\"message\":");
        json_string(out, self.message);
        for (name, value) in self.fields {
            let Some(value) = value else { continue };
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            match *value {
                Value::Display(text) | Value::Str(text) => json_string(out, text),
                Value::Uint(number) => {
                    out.extend_from_slice(itoa::Buffer::new().format(number).as_bytes())
                }
                Value::Fixed { units, scale } => write_fixed(out, units, scale),
            }
        }
        out.extend_from_slice(b"},\"target\":");
        json_string(out, self.target);
        out.extend_from_slice(b"}\n");
    }
}

/// `units` × 10^-`scale` exactly as `{:?}` writes the `f64`
/// `units as f64 / 10^scale`.
///
/// Where `{:?}` writes plain decimals (10^-4 ≤ |x| < 10^16) and
/// |`units`| < 2^52, the `f64` is the one nearest the exact quotient and
/// its spacing is below 10^-`scale`, so the quotient is the only decimal of
/// at most `scale` fractional digits that reads back as that `f64`: the
/// shortest one, which `{:?}` writes. It is written digit by digit: the
/// integer part, then the fraction without trailing zeros, at least `.0`.
/// Anything else goes through the float formatter.
fn write_fixed(out: &mut Vec<u8>, units: i64, scale: u32) {
    const EXACT: u64 = 1 << 52;
    debug_assert!(scale <= 18, "10^scale must fit a u64");
    let magnitude = units.unsigned_abs();
    let unit = 10u64.pow(scale);
    // Below 2^52 units the quotient is also below 10^16.
    let small = scale >= 4 && magnitude < 10u64.pow(scale - 4);
    if magnitude != 0 && (small || magnitude >= EXACT) {
        let _ = write!(out, "{:?}", units as f64 / unit as f64);
        return;
    }
    if units < 0 {
        out.push(b'-');
    }
    let mut digits = itoa::Buffer::new();
    out.extend_from_slice(digits.format(magnitude / unit).as_bytes());
    out.push(b'.');
    let mut fraction = magnitude % unit;
    if fraction == 0 {
        out.push(b'0');
        return;
    }
    let mut width = scale as usize;
    while fraction % 10 == 0 {
        fraction /= 10;
        width -= 1;
    }
    let text = digits.format(fraction);
    out.extend(std::iter::repeat_n(b'0', width - text.len()));
    out.extend_from_slice(text.as_bytes());
}

/// `text` as `{:?}` writes it, copying plain text (the usual case: ids,
/// aliases) without going through the formatter.
fn debug_str(out: &mut Vec<u8>, text: &str) {
    let plain = text
        .bytes()
        .all(|byte| (b' '..=b'~').contains(&byte) && byte != b'"' && byte != b'\\');
    if plain {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        let _ = write!(out, "{text:?}");
    }
}

fn json_string(out: &mut Vec<u8>, text: &str) {
    // Writing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// `2026-11-21T19:34:03.893928Z`: RFC 3339, UTC, microseconds, as
/// `tracing-subscriber`'s `SystemTime` timer writes it. The date part is
/// cached per thread for the current second.
fn write_timestamp(out: &mut Vec<u8>, now: SystemTime) {
    thread_local! {
        static SECOND: RefCell<(u64, [u8; 20])> = const { RefCell::new((u64::MAX, [0; 20])) };
    }
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != seconds {
            *cached = (seconds, format_second(seconds));
        }
        out.extend_from_slice(&cached.1);
    });
    let micros = since_epoch.subsec_micros();
    let mut digits = [b'0'; 6];
    let mut rest = micros;
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&digits);
    out.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS.` for a Unix time in seconds.
fn format_second(seconds: u64) -> [u8; 20] {
    let days = (seconds / 86_400) as i64;
    let in_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut text = [0u8; 20];
    let mut cursor = &mut text[..];
    // The buffer is exactly the length of the text for years 0..=9999.
    let _ = write!(
        cursor,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
        year.clamp(0, 9999),
        month,
        day,
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    fn at(seconds: u64, micros: u32) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_micros(u64::from(micros))
    }

    fn line<'a>(fields: &'a [(&'static str, Option<Value<'a>>)]) -> Line<'a> {
        Line {
            level: tracing::Level::INFO,
            target: "gateway_server::observe",
            message: "request",
            fields,
        }
    }

    #[test]
    fn timestamps_match_rfc3339_with_microseconds() {
        let cases = [
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, 5, "2000-02-29T00:00:00.000005Z"),
            (1_795_289_643, 893_928, "2026-11-21T19:34:03.893928Z"),
            (4_102_444_799, 999_999, "2099-12-31T23:59:59.999999Z"),
        ];
        for (seconds, micros, expected) in cases {
            let mut out = Vec::new();
            write_timestamp(&mut out, at(seconds, micros));
            assert_eq!(String::from_utf8(out).expect("UTF-8"), expected);
        }
    }

    #[test]
    fn text_lines_quote_strings_skip_missing_fields_and_end_in_newline() {
        let fields = [
            ("request_id", Some(Value::Display("abc-1"))),
            ("path", Some(Value::Display("/v1/chat/completions"))),
            ("status", Some(Value::Uint(200))),
            ("key_alias", Some(Value::Str("ops \"team\""))),
            ("prompt_tokens", None),
            (
                "latency_ms",
                Some(Value::Fixed {
                    units: 3_035,
                    scale: 3,
                }),
            ),
        ];
        let mut out = Vec::new();
        line(&fields).write_text(&mut out, at(1_795_289_643, 893_928));
        assert_eq!(
            String::from_utf8(out).expect("UTF-8"),
            "2026-11-21T19:34:03.893928Z  INFO gateway_server::observe: request \
             request_id=abc-1 path=/v1/chat/completions status=200 \
             key_alias=\"ops \\\"team\\\"\" latency_ms=3.035\n"
        );
    }

    #[test]
    fn fixed_point_numbers_read_exactly_as_the_floats_they_replace() {
        let mut units: Vec<i64> = vec![
            0,
            1,
            9,
            10,
            99,
            100,
            999,
            1_000,
            1_001,
            1_010,
            3_035,
            12_345,
            99_999,
            100_000,
            100_001,
            250_000_000,
            1_000_000_000,
            1_234_567_891,
            -1,
            -3_035,
            -100_000,
            (1 << 52) - 1,
            1 << 52,
            1 << 53,
            (1 << 53) + 1,
            i64::MAX,
            i64::MIN,
        ];
        // A spread of magnitudes with varied digits (an LCG: no extra dependency).
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for shift in 0..63 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            units.push(((seed >> 1) >> shift) as i64);
        }
        for scale in [0, 3, 6, 9, 18] {
            for &units in &units {
                let mut out = Vec::new();
                write_fixed(&mut out, units, scale);
                let expected = format!("{:?}", units as f64 / 10f64.powi(scale as i32));
                assert_eq!(
                    String::from_utf8(out).expect("UTF-8"),
                    expected,
                    "{units}e-{scale}"
                );
            }
        }
    }

    #[test]
    fn strings_are_quoted_exactly_as_debug_formatting_quotes_them() {
        for text in [
            "",
            "plain-id_1.2",
            "quote\"d",
            "back\\slash",
            "tab\there",
            "é ünïcode",
            "\u{7f}del",
            "new\nline",
        ] {
            let mut out = Vec::new();
            debug_str(&mut out, text);
            assert_eq!(String::from_utf8(out).expect("UTF-8"), format!("{text:?}"));
        }
    }

    #[test]
    fn json_lines_parse_and_keep_field_types() {
        let fields = [
            ("request_id", Some(Value::Display("abc-1"))),
            ("status", Some(Value::Uint(429))),
            ("error", Some(Value::Str("line\nbreak \"quoted\""))),
            (
                "cost_usd",
                Some(Value::Fixed {
                    units: 250_000_000,
                    scale: 9,
                }),
            ),
            ("ttft_ms", None),
            (
                "tiny",
                Some(Value::Fixed {
                    units: 21,
                    scale: 9,
                }),
            ),
        ];
        let mut out = Vec::new();
        line(&fields).write_json(&mut out, at(1_795_289_643, 7));
        assert_eq!(out.last(), Some(&b'\n'));
        let parsed: serde_json::Value = serde_json::from_slice(&out).expect("a JSON line");
        assert_eq!(
            parsed,
            serde_json::json!({
                "timestamp": "2026-11-21T19:34:03.000007Z",
                "level": "INFO",
                "fields": {
                    "message": "request",
                    "request_id": "abc-1",
                    "status": 429,
                    "error": "line\nbreak \"quoted\"",
                    "cost_usd": 0.25,
                    "tiny": 2.1e-8
                },
                "target": "gateway_server::observe"
            })
        );
    }

    #[test]
    fn the_sink_gets_whole_lines_and_may_log_again() {
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = Arc::clone(&lines);
        let log = Arc::new(Mutex::new(None::<AccessLog>));
        let inner = Arc::clone(&log);
        let access = AccessLog::new(AccessLogFormat::Text, move |bytes: &[u8]| {
            let text = String::from_utf8(bytes.to_vec()).expect("UTF-8");
            let first = seen.lock().expect("lock").is_empty();
            seen.lock().expect("lock").push(text);
            if first {
                // Re-entering from the sink must not panic.
                let again = inner.lock().expect("lock").clone().expect("installed");
                again.write(&line(&[("status", Some(Value::Uint(2)))]));
            }
        });
        *log.lock().expect("lock") = Some(access.clone());
        access.write(&line(&[("status", Some(Value::Uint(1)))]));
        let lines = lines.lock().expect("lock");
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with("request status=1\n"), "{}", lines[0]);
        assert!(lines[1].ends_with("request status=2\n"), "{}", lines[1]);
    }
}
