//! The load generator: N workers, each looping requests over keep-alive
//! connections for a fixed time (or until a shared count runs out),
//! recording latency and time to first byte in HDR histograms.

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The name of the load generator's runtime threads.
pub const THREAD_NAME: &str = "bench-client";

/// Largest latency a histogram holds (longer ones are clamped), in ns.
const HISTOGRAM_MAX_NS: u64 = 120_000_000_000;

/// What the load is sent to: the fake upstream directly, or the gateway.
#[derive(Debug, Clone)]
pub struct Target {
    /// `direct` or `gateway`.
    pub name: &'static str,
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    authorization: HeaderValue,
    body: Bytes,
    stream: bool,
}

/// What a target needs besides its client.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    /// `direct` or `gateway`.
    pub name: &'static str,
    /// The chat completions URL.
    pub url: String,
    /// The bearer token to send.
    pub bearer: String,
    /// The request body (JSON).
    pub body: Bytes,
    /// The body asks for a stream: a response must end with `[DONE]`.
    pub stream: bool,
}

/// How one round drives its target.
#[derive(Debug, Clone, Copy)]
pub struct RoundSpec {
    /// Concurrent workers (each keeps one request in flight).
    pub concurrency: usize,
    /// How long workers keep starting requests.
    pub duration: Duration,
    /// When set, the round ends after this many requests instead.
    pub requests: Option<u64>,
    /// The longest one request may take before it counts as an error.
    pub request_timeout: Duration,
    /// Open loop: requests per second over all workers, on a fixed schedule.
    /// `None` is closed loop (each worker sends as soon as its last request
    /// ended), which saturates the machine at higher concurrencies.
    pub rate: Option<f64>,
}

/// What one round measured.
#[derive(Debug)]
pub struct RoundResult {
    /// Requests that completed with a 2xx and a whole body.
    pub ok: u64,
    /// Non-2xx answers, transport errors, timeouts and truncated streams.
    pub errors: u64,
    /// Wall time of the round.
    pub elapsed: Duration,
    /// Latency of successful requests, in nanoseconds.
    pub latency: Histogram<u64>,
    /// Time to the first body byte of successful requests, in nanoseconds.
    pub ttfb: Histogram<u64>,
    /// The first error's description.
    pub first_error: Option<String>,
}

impl Target {
    /// A target with its own keep-alive connection pool.
    pub fn new(spec: TargetSpec) -> anyhow::Result<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(usize::MAX)
            .build(connector);
        Ok(Self {
            name: spec.name,
            client,
            uri: spec
                .url
                .parse()
                .with_context(|| format!("invalid URL {}", spec.url))?,
            authorization: HeaderValue::try_from(format!("Bearer {}", spec.bearer))
                .context("the bearer token is not valid in a header")?,
            body: spec.body,
            stream: spec.stream,
        })
    }

    /// Sends one request and reads the whole answer; times count from
    /// `started`.
    async fn request(&self, started: Instant) -> Result<Timing, String> {
        let request = Request::post(self.uri.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::AUTHORIZATION, self.authorization.clone())
            .body(Full::new(self.body.clone()))
            .map_err(|error| format!("cannot build the request: {error}"))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|error| transport_error(&error))?;
        let status = response.status();
        let mut body = response.into_body();
        let mut first_byte = None;
        let mut tail = Vec::with_capacity(64);
        let mut error_body = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| format!("reading the body failed: {error}"))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            first_byte.get_or_insert_with(|| started.elapsed());
            if !status.is_success() && error_body.len() < 300 {
                error_body.extend_from_slice(&data[..data.len().min(300 - error_body.len())]);
            }
            keep_tail(&mut tail, &data);
        }
        let total = started.elapsed();
        if !status.is_success() {
            return Err(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&error_body)
            ));
        }
        if self.stream && !tail.ends_with(b"data: [DONE]\n\n") {
            return Err(format!(
                "the stream did not end with `data: [DONE]` (it ended with {:?})",
                String::from_utf8_lossy(&tail)
            ));
        }
        Ok(Timing {
            first_byte: first_byte.unwrap_or(total),
            total,
        })
    }

    /// POSTs `body` to `url` with `bearer`, returning status and body; for
    /// setup calls such as creating a virtual key.
    pub async fn post_json(
        &self,
        url: &str,
        bearer: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<(u16, Bytes)> {
        let request = Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::AUTHORIZATION, format!("Bearer {bearer}"))
            .body(Full::new(Bytes::from(body.to_string())))?;
        let response = tokio::time::timeout(Duration::from_secs(10), async {
            let response = self.client.request(request).await?;
            let status = response.status().as_u16();
            let bytes = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, bytes))
        })
        .await
        .with_context(|| format!("POST {url} took longer than 10 s"))??;
        Ok(response)
    }
}

#[derive(Debug, Clone, Copy)]
struct Timing {
    first_byte: Duration,
    total: Duration,
}

/// A new latency histogram (nanoseconds, 3 significant digits).
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, 3).context("cannot create a histogram")
}

/// Runs one round against `target` on the current runtime. Never waits
/// longer than the round's duration plus one request timeout plus a margin:
/// workers still running then are aborted and the round is an error.
pub async fn run_round(target: &Target, spec: RoundSpec) -> anyhow::Result<RoundResult> {
    let remaining = spec.requests.map(|count| Arc::new(AtomicU64::new(count)));
    let started = Instant::now();
    let deadline = started + spec.duration;
    let mut workers = tokio::task::JoinSet::new();
    for index in 0..spec.concurrency.max(1) {
        let target = target.clone();
        let remaining = remaining.clone();
        let schedule = spec.rate.filter(|rate| *rate > 0.0).map(|rate| {
            // Worker i sends at started + (i + k * N) / rate, k = 0, 1, ...
            let workers = spec.concurrency.max(1) as f64;
            Schedule {
                next: started + Duration::from_secs_f64(index as f64 / rate),
                interval: Duration::from_secs_f64(workers / rate),
            }
        });
        workers.spawn(worker(target, spec, deadline, remaining, schedule));
    }
    let limit = match spec.requests {
        // A counted round has no duration; bound it by the request timeout
        // times the requests per worker, capped at ten minutes.
        Some(count) => spec
            .request_timeout
            .saturating_mul(u32::try_from(count).unwrap_or(u32::MAX))
            .min(Duration::from_secs(600)),
        None => spec.duration + spec.request_timeout + Duration::from_secs(5),
    };
    let mut result = RoundResult {
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency: histogram()?,
        ttfb: histogram()?,
        first_error: None,
    };
    let collected = tokio::time::timeout(limit, async {
        while let Some(joined) = workers.join_next().await {
            let worker = joined.context("a load worker panicked")??;
            result.ok += worker.ok;
            result.errors += worker.errors;
            result.latency.add(&worker.latency)?;
            result.ttfb.add(&worker.ttfb)?;
            if result.first_error.is_none() {
                result.first_error = worker.first_error;
            }
        }
        anyhow::Ok(())
    })
    .await;
    match collected {
        Ok(outcome) => outcome?,
        Err(_) => {
            workers.abort_all();
            anyhow::bail!(
                "a {} round at concurrency {} did not finish within {limit:?}",
                target.name,
                spec.concurrency
            );
        }
    }
    result.elapsed = started.elapsed();
    Ok(result)
}

struct WorkerResult {
    ok: u64,
    errors: u64,
    latency: Histogram<u64>,
    ttfb: Histogram<u64>,
    first_error: Option<String>,
}

/// When an open-loop worker sends its next request.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    next: Instant,
    interval: Duration,
}

impl Schedule {
    /// Waits for the next slot and returns when it woke. Latency counts from
    /// then, not from the slot: tokio's timer has a 1 ms resolution, and its
    /// lateness is not the target's. A worker that fell behind (a slow
    /// answer, a late timer) sends at once and its schedule restarts from
    /// now rather than bursting to catch up.
    async fn wait(&mut self) -> Instant {
        let now = Instant::now();
        if now < self.next {
            tokio::time::sleep_until(self.next.into()).await;
            self.next += self.interval;
        } else {
            self.next = now + self.interval;
        }
        Instant::now()
    }
}

async fn worker(
    target: Target,
    spec: RoundSpec,
    deadline: Instant,
    remaining: Option<Arc<AtomicU64>>,
    mut schedule: Option<Schedule>,
) -> anyhow::Result<WorkerResult> {
    let mut result = WorkerResult {
        ok: 0,
        errors: 0,
        latency: histogram()?,
        ttfb: histogram()?,
        first_error: None,
    };
    loop {
        match &remaining {
            Some(remaining) => {
                let taken = remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                    left.checked_sub(1)
                });
                if taken.is_err() {
                    break;
                }
            }
            None => {
                let next = schedule.map_or_else(Instant::now, |schedule| schedule.next);
                if next >= deadline {
                    break;
                }
            }
        }
        let started = match &mut schedule {
            Some(schedule) => schedule.wait().await,
            None => Instant::now(),
        };
        match tokio::time::timeout(spec.request_timeout, target.request(started)).await {
            Ok(Ok(timing)) => {
                result.ok += 1;
                result.latency.saturating_record(nanos(timing.total));
                result.ttfb.saturating_record(nanos(timing.first_byte));
            }
            Ok(Err(error)) => {
                result.errors += 1;
                result.first_error.get_or_insert(error);
            }
            Err(_) => {
                result.errors += 1;
                result.first_error.get_or_insert_with(|| {
                    format!("no complete answer within {:?}", spec.request_timeout)
                });
            }
        }
    }
    Ok(result)
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Keeps the last 32 bytes seen, to check how a stream ended.
fn keep_tail(tail: &mut Vec<u8>, data: &[u8]) {
    const KEEP: usize = 32;
    if data.len() >= KEEP {
        tail.clear();
        tail.extend_from_slice(&data[data.len() - KEEP..]);
    } else {
        tail.extend_from_slice(data);
        if tail.len() > KEEP {
            tail.drain(..tail.len() - KEEP);
        }
    }
}

fn transport_error(error: &hyper_util::client::legacy::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_bytes_across_frames() {
        let mut tail = Vec::new();
        keep_tail(&mut tail, &[b'x'; 100]);
        keep_tail(&mut tail, b"data: [DO");
        keep_tail(&mut tail, b"NE]\n\n");
        assert!(tail.ends_with(b"data: [DONE]\n\n"));
        assert_eq!(tail.len(), 32);
    }
}
