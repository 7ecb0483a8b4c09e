//! `gateway`: the LLM gateway binary. Parses the command line, sets up
//! logging, loads the config, and serves until SIGINT or SIGTERM; SIGHUP
//! (and, with `--watch`, a change to the config files) reloads the config.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use gateway_providers::{HttpClient, HttpClientOptions, ProviderRegistry};
use gateway_server::access_log::{AccessLog, AccessLogFormat};
use gateway_server::log_writer::{LogWriter, LogWriterGuard};
use gateway_server::{config::GatewayConfig, reload, server, Gateway};
use std::io::{IsTerminal, Write};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;
use std::time::Duration;

// mimalloc: malloc/free were ~11% of the gateway's CPU under glibc. Built
// with `no_thp`, or its huge-page arenas double the idle RSS; see
// docs/benchmarks.md, "Fifth pass".
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An OpenAI-compatible gateway in front of many model providers. Reads
/// LiteLLM's config.yaml format; takes the LiteLLM CLI's flags.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The config file. Without it (and without CONFIG_FILE_PATH) the gateway
    /// runs the embedded quickstart config: mock models, no keys.
    #[arg(long, short, env = "CONFIG_FILE_PATH", global = true)]
    config: Option<PathBuf>,
    /// Port to listen on.
    #[arg(long, short, default_value_t = 4000, env = "PORT")]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0", env = "HOST")]
    host: String,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    /// Log level or filter (e.g. `info`, `gateway_server=debug`); RUST_LOG wins.
    #[arg(long, default_value = "info", global = true)]
    log_level: String,
    /// Log request bodies (keys redacted) in the request log line. A
    /// debugging aid: bodies hold your users' messages.
    #[arg(long)]
    log_bodies: bool,
    /// Threads serving requests (LiteLLM's flag name); default: one per core
    /// but one (as the CPU quota allows), at least one, each a thread of its
    /// own beside the main thread. Each thread serves its own connections.
    /// With `--num_workers 1` the main thread serves too.
    #[arg(long = "num_workers", alias = "num-workers", env = "NUM_WORKERS")]
    num_workers: Option<usize>,
    /// Reload the config when the file (or an included file) changes,
    /// checked every second. SIGHUP always reloads.
    #[arg(long)]
    watch: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the config and print the model aliases it serves.
    Check,
    /// Exit 0 when a running gateway answers 200 on the URL (for container
    /// health checks in images without curl). Plain HTTP only.
    Healthcheck {
        /// The URL to probe.
        #[arg(long, default_value = "http://127.0.0.1:4000/health/liveliness")]
        url: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run_cli(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One clear line for operators, never a backtrace.
            let _ = writeln!(std::io::stderr(), "error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_cli(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Healthcheck { url }) = &cli.command {
        return healthcheck(url);
    }
    let (_log_guard, access_log) = init_logging(cli.log_format, &cli.log_level)?;
    let config = match &cli.config {
        Some(path) => GatewayConfig::load(path)?,
        None => {
            tracing::warn!(
                "no --config given: running the embedded quickstart config (mock models only)"
            );
            GatewayConfig::embedded_default()?
        }
    };
    for warning in &config.warnings {
        tracing::warn!(key = %warning.path, "config: {}", warning.message);
    }
    if let Some(Command::Check) = cli.command {
        return check(&config);
    }
    let threads = match cli.num_workers {
        Some(workers) => {
            Serving::Given(NonZeroUsize::new(workers).context("--num_workers must be at least 1")?)
        }
        None => Serving::Default(default_serving_threads(
            std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
        )),
    };
    // Single-threaded runtimes (see `server::serve_on_threads`): no work
    // stealing, so a request never wakes another thread. This one accepts
    // and runs background work, and serves too with `--num_workers 1`.
    tokio::runtime::Builder::new_current_thread()
        .event_interval(server::SERVING_EVENT_INTERVAL)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(run(config, &cli, access_log, threads))
}

/// How many threads serve, and whether the operator chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Serving {
    /// `--num_workers N`: N threads; with one, the main thread serves.
    Given(NonZeroUsize),
    /// The default: this many threads of their own beside the main thread.
    Default(NonZeroUsize),
}

impl Serving {
    fn count(self) -> NonZeroUsize {
        match self {
            Serving::Given(threads) | Serving::Default(threads) => threads,
        }
    }
}

/// One serving thread per core but one, at least one. The main thread
/// (accepting, spend writes, reloads) and the kernel's network work get the
/// spare core. On two cores shared with other busy processes one serving
/// thread gave the same throughput within 3-8% and a much shorter tail
/// (`plain` added p99 at c=16 +0.5 against +2.6 ms, at c=64 +1.9-2.2
/// against +2.7-4.1 ms; docs/benchmarks.md, ninth pass).
fn default_serving_threads(cores: NonZeroUsize) -> NonZeroUsize {
    NonZeroUsize::new(cores.get() - 1).unwrap_or(NonZeroUsize::MIN)
}

fn check(config: &GatewayConfig) -> anyhow::Result<()> {
    // Building the gateway validates every deployment's provider settings too.
    let gateway = Gateway::from_config(config.clone())?;
    let config = gateway.config();
    let mut out = std::io::stdout().lock();
    writeln!(out, "config OK: {} deployment(s)", config.deployments.len())?;
    for name in config.model_names() {
        let count = config
            .deployments
            .iter()
            .filter(|d| d.model_name == name)
            .count();
        writeln!(out, "  {name} ({count} deployment(s))")?;
    }
    Ok(())
}

fn healthcheck(url: &str) -> anyhow::Result<()> {
    use std::io::Read;
    let rest = url.strip_prefix("http://").context("only http:// URLs")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let address = std::net::ToSocketAddrs::to_socket_addrs(authority)?
        .next()
        .context("the URL's host does not resolve")?;
    let timeout = Duration::from_secs(3);
    let mut stream = std::net::TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    let path = if path.is_empty() { "/" } else { path };
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    anyhow::ensure!(
        head.ends_with(b" 200"),
        "{url} answered {}",
        String::from_utf8_lossy(&head)
    );
    Ok(())
}

async fn run(
    config: GatewayConfig,
    cli: &Cli,
    access_log: Option<AccessLog>,
    threads: Serving,
) -> anyhow::Result<()> {
    let (host, port) = (cli.host.as_str(), cli.port);
    if config.general.master_key.is_none() {
        tracing::warn!(
            "no general_settings.master_key: the gateway is open to anyone who can reach it"
        );
    }
    // A pool of upstream connections per serving thread, to match.
    let http = HttpClient::new(&HttpClientOptions {
        pool_per_thread: true,
        ..HttpClientOptions::default()
    });
    let mut gateway = Gateway::build(config, &ProviderRegistry::builtin(), http)?;
    if let Some(access_log) = access_log {
        gateway = gateway.with_access_log(access_log);
    }
    let gateway = Arc::new(gateway);
    gateway.set_log_request_bodies(cli.log_bodies);
    gateway.start_store().await;
    #[cfg(unix)]
    tokio::spawn(reload::reload_on_sighup(Arc::clone(&gateway)));
    if cli.watch && cli.config.is_none() {
        tracing::warn!("--watch without --config: there is no file to watch");
    } else if cli.watch {
        tokio::spawn(reload::watch_config(
            Arc::clone(&gateway),
            Duration::from_secs(1),
        ));
    }
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port}"))?;
    tracing::info!(
        address = %listener.local_addr()?,
        threads = threads.count().get(),
        "gateway listening"
    );
    let served = match threads {
        Serving::Given(threads) => {
            server::serve_on_threads(listener, Arc::clone(&gateway), threads, shutdown_signal())
                .await
        }
        Serving::Default(threads) => {
            server::serve_on_own_threads(listener, Arc::clone(&gateway), threads, shutdown_signal())
                .await
        }
    };
    // Write queued spend even when serving failed.
    gateway.shutdown().await;
    served?;
    tracing::info!("gateway stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {},
                    _ = terminate.recv() => {},
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// Logs go to stderr through a background thread, so a request never waits
/// on a write(2) for its log line (it was 6% of the gateway's CPU under
/// load). The thread writes what gathered over a few milliseconds in one
/// call, and only the first line after a write wakes it (a channel woke it
/// and wrote once per line). Lines are never dropped: past 8 MiB unwritten,
/// callers wait. The guard writes what is pending when it is dropped, at
/// exit.
///
/// When stderr is not a terminal (a file, a pipe, a container's log), the
/// per-request line is formatted by hand rather than by `tracing`'s
/// generic formatter (14% of the CPU under load), in the same layout; a
/// terminal keeps `tracing`'s colours.
fn init_logging(
    format: LogFormat,
    level: &str,
) -> anyhow::Result<(LogWriterGuard, Option<AccessLog>)> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = LogWriter::spawn("gateway-log", std::io::stderr())
        .context("cannot start the log thread")?;
    let terminal = std::io::stderr().is_terminal();
    let access_log = (!terminal).then(|| {
        let writer = writer.clone();
        let format = match format {
            LogFormat::Text => AccessLogFormat::Text,
            LogFormat::Json => AccessLogFormat::Json,
        };
        AccessLog::new(format, move |line: &[u8]| writer.append(line))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(terminal)
        .with_writer(move || writer.clone());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok((guard, access_log))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_leaves_one_core_to_the_main_thread() {
        let threads = |cores: usize| {
            NonZeroUsize::new(cores).map(|cores| default_serving_threads(cores).get())
        };
        assert_eq!(threads(1), Some(1));
        assert_eq!(threads(2), Some(1));
        assert_eq!(threads(3), Some(2));
        assert_eq!(threads(16), Some(15));
    }
}
