//! PostgreSQL's binary `COPY` format for spend-log rows, encoded by hand.
//!
//! tokio-postgres's `BinaryCopyInWriter` takes each row as 24 `&dyn ToSql`
//! values, checks every value's type against its column, and hands the
//! connection a message every 4 KiB: ~2.2k instructions a row in callgrind,
//! on the spend writer's thread. The columns and their types are fixed
//! here ([`SPEND_LOG_COLUMNS`](crate::tables::SPEND_LOG_COLUMNS)), so
//! encoding them directly costs a length and a copy per value. The store
//! contract tests round-trip every column through this path.

use bytes::{BufMut, BytesMut};
use gateway_budget::{SpendLogRow, Timestamp};

use crate::tables::{to_i64, SPEND_LOG_COLUMNS};

/// The binary COPY header: signature, flags, header-extension length.
pub(crate) const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The binary COPY trailer: a field count of -1.
pub(crate) const TRAILER: &[u8] = &(-1i16).to_be_bytes();

/// Milliseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const POSTGRES_EPOCH_MS: i64 = 946_684_800_000;

/// Appends one row, its values in `SPEND_LOG_COLUMNS` order.
pub(crate) fn encode_spend_row(out: &mut BytesMut, row: &SpendLogRow) {
    out.put_i16(SPEND_LOG_COLUMNS.len() as i16);
    text(out, Some(&row.request_id));
    text(out, Some(&row.call_type));
    text(out, Some(&row.key_hash));
    text(out, row.key_alias.as_deref());
    text(out, row.user_id.as_deref());
    text(out, row.team_id.as_deref());
    text(out, row.organization_id.as_deref());
    text(out, Some(&row.model_group));
    text(out, row.deployment_id.as_deref());
    text(out, row.provider.as_deref());
    text(out, Some(&row.model));
    int8(out, Some(to_i64(row.prompt_tokens)));
    int8(out, Some(to_i64(row.completion_tokens)));
    int8(out, Some(to_i64(row.cached_tokens)));
    int8(out, Some(row.spend.0));
    timestamptz(out, row.start_time);
    timestamptz(out, row.end_time);
    int8(out, row.time_to_first_token_ms.map(to_i64));
    text(out, Some(row.status.as_str()));
    text(out, row.error_kind.as_deref());
    out.put_i32(1);
    out.put_u8(u8::from(row.cache_hit));
    jsonb_tags(out, &row.tags);
    text(out, row.end_user.as_deref());
    int8(out, Some(to_i64(row.latency_ms())));
}

/// A value's length, then the value; `None` is SQL NULL (length -1).
fn text(out: &mut BytesMut, value: Option<&str>) {
    match value {
        Some(value) => {
            out.put_i32(length(value.len()));
            out.put_slice(value.as_bytes());
        }
        None => out.put_i32(-1),
    }
}

fn int8(out: &mut BytesMut, value: Option<i64>) {
    match value {
        Some(value) => {
            out.put_i32(8);
            out.put_i64(value);
        }
        None => out.put_i32(-1),
    }
}

/// Microseconds since 2000-01-01 UTC.
fn timestamptz(out: &mut BytesMut, at: Timestamp) {
    int8(
        out,
        Some(at.0.saturating_sub(POSTGRES_EPOCH_MS).saturating_mul(1_000)),
    );
}

/// `jsonb` in binary form: version 1, then the JSON text of the tag list.
fn jsonb_tags(out: &mut BytesMut, tags: &[String]) {
    let start = out.len();
    out.put_i32(0);
    out.put_u8(1);
    if serde_json::to_writer(out.writer(), tags).is_err() {
        // Strings always serialize and memory does not fail to take them;
        // should that change, the row keeps an empty list, not a bad frame.
        out.truncate(start + 5);
        out.put_slice(b"[]");
    }
    let written = length(out.len() - start - 4);
    out[start..start + 4].copy_from_slice(&written.to_be_bytes());
}

/// A field length. No value comes near 2 GiB (request bodies are capped far
/// below), so the cap only keeps the arithmetic total.
fn length(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_budget::{SpendStatus, Timestamp};
    use gateway_types::NanoUsd;

    fn row() -> SpendLogRow {
        SpendLogRow {
            request_id: "r1".to_owned(),
            call_type: "acompletion".into(),
            key_hash: "h".into(),
            key_alias: None,
            user_id: Some("u".into()),
            team_id: None,
            organization_id: None,
            model_group: "m".to_owned(),
            deployment_id: None,
            provider: None,
            model: "gpt".into(),
            prompt_tokens: 3,
            completion_tokens: 4,
            cached_tokens: 0,
            spend: NanoUsd(7),
            start_time: Timestamp(POSTGRES_EPOCH_MS + 1),
            end_time: Timestamp(POSTGRES_EPOCH_MS + 3),
            time_to_first_token_ms: None,
            status: SpendStatus::Success,
            error_kind: None,
            cache_hit: true,
            tags: vec!["a\"b".to_owned()].into(),
            end_user: None,
        }
    }

    /// Splits a row back into its fields: `None` for NULL.
    fn fields(mut bytes: &[u8]) -> Vec<Option<Vec<u8>>> {
        let count = i16::from_be_bytes([bytes[0], bytes[1]]);
        bytes = &bytes[2..];
        let mut fields = Vec::new();
        for _ in 0..count {
            let len = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            bytes = &bytes[4..];
            if len < 0 {
                fields.push(None);
            } else {
                let (value, rest) = bytes.split_at(len as usize);
                fields.push(Some(value.to_vec()));
                bytes = rest;
            }
        }
        assert!(bytes.is_empty(), "{} bytes left over", bytes.len());
        fields
    }

    #[test]
    fn a_row_has_every_column_in_order_with_nulls_and_binary_values() {
        let mut out = BytesMut::new();
        encode_spend_row(&mut out, &row());
        let fields = fields(&out);
        assert_eq!(fields.len(), SPEND_LOG_COLUMNS.len());
        let column = |name: &str| {
            let index = SPEND_LOG_COLUMNS.iter().position(|c| *c == name);
            fields[index.unwrap_or_else(|| panic!("no column {name}"))].clone()
        };
        assert_eq!(column("request_id"), Some(b"r1".to_vec()));
        assert_eq!(column("key_alias"), None);
        assert_eq!(column("user_id"), Some(b"u".to_vec()));
        assert_eq!(
            column("completion_tokens"),
            Some(4i64.to_be_bytes().to_vec())
        );
        assert_eq!(column("spend_nanos"), Some(7i64.to_be_bytes().to_vec()));
        assert_eq!(column("start_time"), Some(1_000i64.to_be_bytes().to_vec()));
        assert_eq!(column("time_to_first_token_ms"), None);
        assert_eq!(column("status"), Some(b"success".to_vec()));
        assert_eq!(column("cache_hit"), Some(vec![1]));
        assert_eq!(column("request_tags"), Some(b"\x01[\"a\\\"b\"]".to_vec()));
        assert_eq!(
            column("request_duration_ms"),
            Some(2i64.to_be_bytes().to_vec())
        );
    }

    #[test]
    fn header_and_trailer_are_postgres_binary_copy() {
        assert_eq!(HEADER.len(), 19);
        assert_eq!(&HEADER[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(TRAILER, [0xff, 0xff]);
    }
}
