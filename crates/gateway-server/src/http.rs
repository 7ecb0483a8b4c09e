//! HTTP plumbing: the response body type, JSON responses, bounded body reads.

use crate::errors::ApiError;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, LengthLimitError, Limited};
use std::convert::Infallible;

/// The body of every gateway response: whole bytes, or a stream of SSE frames.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A body of whole bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// A JSON response. Serializing our own types cannot fail; if it ever did,
/// the client gets a 500 with a JSON body rather than a panic.
pub fn json_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_bytes_response(status, Bytes::from(bytes)),
        Err(_) => json_bytes_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            Bytes::from_static(br#"{"error":{"message":"the gateway could not encode its response","type":"internal_server_error","param":null,"code":"500"}}"#),
        ),
    }
}

/// A response whose body is already-encoded JSON.
pub fn json_bytes_response(status: StatusCode, bytes: Bytes) -> Response<Body> {
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    // Room for the gateway's own headers, so adding them never regrows.
    let mut headers = http::HeaderMap::with_capacity(16);
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    *response.headers_mut() = headers;
    response
}

/// Reads a request body of at most `limit` bytes: 413 past it, 400 when the
/// client's body breaks off.
pub async fn read_body<B>(
    body: B,
    content_length: Option<u64>,
    limit: usize,
) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("request body is larger than the gateway's limit of {limit} bytes (general_settings.max_request_size_mb)"),
        )
    };
    if content_length.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(too_large()),
        Err(error) => Err(ApiError::invalid_request(format!(
            "could not read the request body: {error}"
        ))),
    }
}
