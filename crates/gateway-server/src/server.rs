//! The HTTP server: accept loop, HTTP/1.1 and HTTP/2, header-read timeout,
//! and graceful shutdown that drains requests in flight.

use crate::gateway::Gateway;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// How long shutdown waits for requests in flight before closing anyway.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Task polls between two looks for I/O events on a serving thread
/// (Tokio's `event_interval`; its default is 61). A request's tasks poll
/// for microseconds, so under load the scheduler looked for events far more
/// often than it found many: interleaved pairs at `plain` c=64 gave less
/// CPU per request, more throughput and a shorter p99 in six of seven pairs
/// with 200, and 200 beat 1,000 (docs/benchmarks.md, eighth pass). An idle
/// thread still looks at once: the count only applies while tasks are ready.
pub const SERVING_EVENT_INTERVAL: u32 = 200;

/// How often histogram samples are folded into their buckets when nobody
/// scrapes `/metrics` (which folds them too), so memory stays bounded.
pub const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Serves the gateway on `listener` until `shutdown` resolves, then stops
/// accepting, lets requests in flight finish (up to [`DRAIN_TIMEOUT`]), and
/// returns. Every connection is served on the calling runtime; see
/// [`serve_on_threads`] to spread them over threads of their own.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_on_threads(listener, gateway, NonZeroUsize::MIN, shutdown).await
}

/// [`serve`] over `threads` serving threads of its own, each with a
/// single-threaded Tokio runtime. With one thread it is [`serve`]: the
/// calling runtime serves every connection itself.
///
/// The accept loop runs on the calling task and deals connections out in
/// turn; a connection then stays on its thread, together with every task
/// its requests spawn. The calling runtime serves none of them, so its
/// bursts of background work (a spend-log batch takes milliseconds to
/// encode) never hold up a request: the kernel's scheduler shares the cores
/// between them instead. Nothing is stolen between threads, so a request
/// never wakes another thread. For that to hold on the upstream side too,
/// the gateway's [`HttpClient`](gateway_providers::HttpClient) should keep
/// a pool per thread
/// ([`pool_per_thread`](gateway_providers::HttpClientOptions::pool_per_thread)),
/// and the calling runtime should be single-threaded as well (the `gateway`
/// binary does both). The gateway's background work (spend writes, reloads,
/// health checks) stays on the calling runtime.
///
/// On shutdown every thread drains its own connections (each up to
/// [`DRAIN_TIMEOUT`], in parallel) before this returns.
pub async fn serve_on_threads(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    threads: NonZeroUsize,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // One thread: this runtime serves. More: every connection goes to a lane.
    let lane_count = if threads.get() == 1 { 0 } else { threads.get() };
    serve_connections(listener, gateway, lane_count, shutdown).await
}

/// [`serve_on_threads`], but even one serving thread is a thread of its
/// own: the calling runtime only accepts and runs the background work.
/// What the `gateway` binary does by default, with one serving thread per
/// core but one: on a small host the spare core takes the accept loop, the
/// spend writer and the kernel's network work, and fewer serving threads
/// than busy processes preempt each other less (docs/benchmarks.md, ninth
/// pass).
pub async fn serve_on_own_threads(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    threads: NonZeroUsize,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_connections(listener, gateway, threads.get(), shutdown).await
}

/// The accept loop over `lane_count` serving threads; with none, the
/// calling runtime serves.
async fn serve_connections(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    lane_count: usize,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let builder = connection_builder(&gateway);
    let mut lanes = Vec::with_capacity(lane_count);
    for index in 1..=lane_count {
        lanes.push(Lane::start(index, Arc::clone(&gateway), builder.clone())?);
    }
    let graceful = GracefulShutdown::new();
    let upkeep = gateway.metrics.clone().map(|handle| {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
            loop {
                ticker.tick().await;
                handle.run_upkeep();
            }
        })
    });
    tokio::pin!(shutdown);
    // Connection n goes to lane n mod `lane_count`.
    let mut next = 0usize;
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let stream = match lanes.get(next) {
            None => Some(stream),
            Some(lane) => {
                next = (next + 1) % lane_count;
                lane.hand_over(stream)
            }
        };
        if let Some(stream) = stream {
            serve_connection(&builder, &graceful, &gateway, stream);
        }
    }
    drop(listener);
    if let Some(upkeep) = upkeep {
        upkeep.abort();
    }
    // Closing a lane's queue tells its thread to drain and stop.
    let stopped: Vec<_> = lanes.into_iter().map(Lane::stop).collect();
    drain(graceful).await;
    for lane in stopped {
        // An error only means the thread has gone already.
        let _ = lane.await;
    }
    Ok(())
}

/// The HTTP/1.1 and HTTP/2 connection settings every thread uses.
fn connection_builder(gateway: &Gateway) -> auto::Builder<TokioExecutor> {
    let header_read_timeout = gateway.runtime().config.general.header_read_timeout;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// Serves one connection on the current runtime, watched by `graceful`.
fn serve_connection(
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    gateway: &Arc<Gateway>,
    stream: TcpStream,
) {
    let gateway = Arc::clone(gateway);
    let service = service_fn(move |request| {
        let gateway = Arc::clone(&gateway);
        async move { Ok::<_, Infallible>(gateway.handle(request).await) }
    });
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .into_owned();
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(error = %error, "connection ended with an error");
        }
    });
}

/// Lets the connections `graceful` watches finish, up to [`DRAIN_TIMEOUT`].
async fn drain(graceful: GracefulShutdown) {
    tracing::info!(
        in_flight = graceful.count(),
        "shutting down: draining connections"
    );
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
}

/// A thread with its own single-threaded runtime, serving the connections
/// handed to it.
struct Lane {
    queue: mpsc::UnboundedSender<std::net::TcpStream>,
    stopped: oneshot::Receiver<()>,
}

impl Lane {
    fn start(
        index: usize,
        gateway: Arc<Gateway>,
        builder: auto::Builder<TokioExecutor>,
    ) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .event_interval(SERVING_EVENT_INTERVAL)
            .enable_all()
            .build()?;
        let (queue, mut incoming) = mpsc::unbounded_channel::<std::net::TcpStream>();
        let (done, stopped) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("gateway-worker-{index}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let graceful = GracefulShutdown::new();
                    while let Some(stream) = incoming.recv().await {
                        match TcpStream::from_std(stream) {
                            Ok(stream) => serve_connection(&builder, &graceful, &gateway, stream),
                            Err(error) => tracing::warn!(%error, "cannot take over a connection"),
                        }
                    }
                    drain(graceful).await;
                });
                // The runtime (and its upstream connections) go before we say so.
                drop(runtime);
                let _ = done.send(());
            })?;
        Ok(Self { queue, stopped })
    }

    /// Moves `stream` to this lane's thread. Gives it back if that thread
    /// has gone (it panicked), so the caller serves it instead.
    fn hand_over(&self, stream: TcpStream) -> Option<TcpStream> {
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "cannot hand over a connection");
                return None;
            }
        };
        let mpsc::error::SendError(stream) = self.queue.send(stream).err()?;
        tracing::warn!("a serving thread has stopped; serving its connection here");
        TcpStream::from_std(stream).ok()
    }

    /// Closes the queue; the returned receiver resolves when the thread has
    /// drained its connections and stopped.
    fn stop(self) -> oneshot::Receiver<()> {
        let Self { queue, stopped } = self;
        drop(queue);
        stopped
    }
}
