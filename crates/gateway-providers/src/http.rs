//! The shared upstream HTTP client.

use crate::error::{retry_after, ErrorKind, ProviderError};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use thread_local::ThreadLocal;

/// Settings of the upstream client.
#[derive(Debug, Clone)]
pub struct HttpClientOptions {
    /// How long to wait for a TCP connection.
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Most idle connections kept per upstream host.
    pub pool_max_idle_per_host: usize,
    /// Largest non-stream upstream body read into memory.
    pub max_response_bytes: usize,
    /// One connection pool per OS thread instead of one shared pool.
    ///
    /// For a server that runs one single-threaded runtime per core (as
    /// `gateway_server::server::serve_on_threads` does): a pooled
    /// connection is driven by a task on the runtime that opened it, so a
    /// request on another thread would wake that thread for every read and
    /// write. With a pool per thread, a request only ever uses connections
    /// its own thread drives. Off by default: under a work-stealing runtime
    /// it only multiplies the idle connections kept.
    pub pool_per_thread: bool,
}

impl Default for HttpClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 256,
            max_response_bytes: 64 * 1024 * 1024,
            pool_per_thread: false,
        }
    }
}

/// One pooled HTTP client shared by every provider: keep-alive connections,
/// HTTPS through rustls with the Mozilla roots, HTTP/1.1 and HTTP/2 (by ALPN).
/// Cloning it is cheap and shares the pool (or, with
/// [`HttpClientOptions::pool_per_thread`], the pools).
#[derive(Clone)]
pub struct HttpClient {
    pools: Pools,
    max_response_bytes: usize,
}

type UpstreamClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

#[derive(Clone)]
enum Pools {
    // Boxed: the client is ~340 bytes, and clones are made only when
    // providers are built.
    Shared(Box<UpstreamClient>),
    PerThread(Arc<PerThread>),
}

/// What builds a thread's client on its first request, and the clients.
struct PerThread {
    builder: hyper_util::client::legacy::Builder,
    connector: HttpsConnector<HttpConnector>,
    clients: ThreadLocal<UpstreamClient>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field(
                "pools",
                &match self.pools {
                    Pools::Shared(_) => "shared",
                    Pools::PerThread(_) => "per thread",
                },
            )
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

/// An upstream response whose body has been read whole.
#[derive(Debug)]
pub struct BufferedResponse {
    /// The HTTP status.
    pub status: u16,
    /// The response headers.
    pub headers: http::HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl HttpClient {
    /// Builds the client.
    pub fn new(options: &HttpClientOptions) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(options.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(options.pool_idle_timeout)
            .pool_max_idle_per_host(options.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        let pools = if options.pool_per_thread {
            Pools::PerThread(Arc::new(PerThread {
                builder,
                connector: https,
                clients: ThreadLocal::new(),
            }))
        } else {
            Pools::Shared(Box::new(builder.build(https)))
        };
        Self {
            pools,
            max_response_bytes: options.max_response_bytes,
        }
    }

    /// The client whose pool this thread uses.
    fn client(&self) -> &UpstreamClient {
        match &self.pools {
            Pools::Shared(client) => client,
            Pools::PerThread(per_thread) => per_thread
                .clients
                .get_or(|| per_thread.builder.build(per_thread.connector.clone())),
        }
    }

    /// Sends a request and returns the response with its body still streaming.
    pub async fn send(
        &self,
        request: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<Incoming>, ProviderError> {
        self.client().request(request).await.map_err(connect_error)
    }

    /// Sends a request and reads the whole body (bounded).
    pub async fn send_buffered(
        &self,
        request: http::Request<Full<Bytes>>,
    ) -> Result<BufferedResponse, ProviderError> {
        let response = self.send(request).await?;
        let (parts, body) = response.into_parts();
        let body = read_body(body, self.max_response_bytes).await?;
        Ok(BufferedResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }

    /// Reads an error response's body (bounded) for an adapter that reads
    /// its upstream's own error format.
    pub async fn buffer_error(&self, response: http::Response<Incoming>) -> BufferedResponse {
        let (parts, body) = response.into_parts();
        let body = read_body(body, 1024 * 1024).await.unwrap_or_default();
        BufferedResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }

    /// Reads an error response's body and turns it into a [`ProviderError`].
    pub async fn error_from_response(
        &self,
        provider: &str,
        response: http::Response<Incoming>,
    ) -> ProviderError {
        let (parts, body) = response.into_parts();
        // Error bodies are small; cap them lower than success bodies.
        let body = read_body(body, 1024 * 1024).await.unwrap_or_default();
        ProviderError::from_upstream(
            provider,
            parts.status.as_u16(),
            retry_after(&parts.headers),
            &body,
        )
    }
}

async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, ProviderError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => {
            if error.is::<http_body_util::LengthLimitError>() {
                Err(ProviderError::new(
                    ErrorKind::InvalidResponse,
                    format!("upstream response is larger than {limit} bytes"),
                ))
            } else {
                Err(ProviderError::new(
                    ErrorKind::Connect,
                    format!("reading the upstream response failed: {error}"),
                ))
            }
        }
    }
}

fn connect_error(error: hyper_util::client::legacy::Error) -> ProviderError {
    // The error's Display is short ("client error (Connect)"); its source says why.
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    ProviderError::new(ErrorKind::Connect, message)
}

/// A JSON POST target fixed when a provider is built: the URL parsed and
/// the headers (content type, accept, the provider's own) laid out once,
/// so each request only clones them.
#[derive(Debug, Clone)]
pub struct JsonEndpoint {
    uri: http::Uri,
    headers: http::HeaderMap,
}

impl JsonEndpoint {
    /// Parses `url` and lays out the headers; an unusable URL is a build error.
    pub fn new(
        url: &str,
        headers: &[(http::HeaderName, http::HeaderValue)],
    ) -> Result<Self, crate::BuildError> {
        let uri = http::Uri::try_from(url).map_err(|error| {
            crate::BuildError::Invalid(format!("`{url}` is not a usable URL: {error}"))
        })?;
        let mut map = http::HeaderMap::with_capacity(headers.len() + 2);
        map.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        map.insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("application/json"),
        );
        for (name, value) in headers {
            map.append(name, value.clone());
        }
        Ok(Self { uri, headers: map })
    }

    /// A POST of `body` to the endpoint.
    pub fn post(&self, body: Vec<u8>) -> http::Request<Full<Bytes>> {
        self.clone().into_post(body)
    }

    /// [`JsonEndpoint::post`] for an endpoint used once.
    fn into_post(self, body: Vec<u8>) -> http::Request<Full<Bytes>> {
        let mut request = http::Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = self.uri;
        *request.headers_mut() = self.headers;
        request
    }
}

/// Builds a JSON POST request to a URL made for this request (see
/// [`JsonEndpoint`] for a fixed one).
pub fn json_post(
    url: &str,
    headers: &[(http::HeaderName, http::HeaderValue)],
    body: Vec<u8>,
) -> Result<http::Request<Full<Bytes>>, ProviderError> {
    let endpoint = JsonEndpoint::new(url, headers).map_err(|error| {
        ProviderError::new(
            ErrorKind::BadRequest,
            format!("cannot build upstream request: {error}"),
        )
    })?;
    Ok(endpoint.into_post(body))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_posts_json_with_its_headers_in_order() {
        let headers = [
            (
                http::header::AUTHORIZATION,
                http::HeaderValue::from_static("Bearer k"),
            ),
            (
                http::HeaderName::from_static("x-extra"),
                http::HeaderValue::from_static("1"),
            ),
            (
                http::HeaderName::from_static("x-extra"),
                http::HeaderValue::from_static("2"),
            ),
        ];
        let endpoint =
            JsonEndpoint::new("http://127.0.0.1:9/v1/chat/completions?x=1", &headers).unwrap();
        for body in [b"{\"a\":1}".to_vec(), b"{}".to_vec()] {
            let request = endpoint.post(body.clone());
            assert_eq!(request.method(), http::Method::POST);
            assert_eq!(
                request.uri().to_string(),
                "http://127.0.0.1:9/v1/chat/completions?x=1"
            );
            let names: Vec<_> = request
                .headers()
                .iter()
                .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap()))
                .collect();
            assert_eq!(
                names,
                [
                    "content-type: application/json",
                    "accept: application/json",
                    "authorization: Bearer k",
                    "x-extra: 1",
                    "x-extra: 2",
                ]
            );
            let sent = futures_util::FutureExt::now_or_never(request.into_body().collect())
                .unwrap()
                .unwrap()
                .to_bytes();
            assert_eq!(sent, body);
        }
    }

    #[test]
    fn an_unusable_url_is_a_build_error_naming_it() {
        let error = JsonEndpoint::new("http://bad host/v1", &[]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("`http://bad host/v1` is not a usable URL"),
            "{error}"
        );
    }
}
