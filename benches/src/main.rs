//! `gateway-bench`: how much the gateway adds to a request.
//!
//! One run starts a fast fake upstream in-process, starts the gateway binary
//! (or any command, e.g. a LiteLLM proxy) as a child process with a generated
//! config pointing at it, then drives the upstream directly and through the
//! gateway at several concurrencies, interleaving direct and gateway rounds
//! so machine drift cancels. It prints a table and writes JSON.
//!
//! See `docs/benchmarks.md` for how to run it and what each number means.

#![allow(clippy::print_stdout)]

mod config;
mod instructions;
mod load;
mod process;
mod report;
mod upstream;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use load::{RoundSpec, Target, TargetSpec};
use process::{GatewayProcess, Launch};
use report::{Accumulator, Level, Machine, Report, Settings};
use std::path::{Path, PathBuf};
use std::time::Duration;
use upstream::{FakeUpstream, Mode};

/// Measures the latency, throughput, CPU and memory a gateway adds, against a
/// fake OpenAI-compatible upstream on 127.0.0.1.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// What to benchmark.
    #[arg(long, value_enum, default_value_t = Scenario::Plain)]
    scenario: Scenario,
    /// The gateway binary [default: target/release/gateway, beside this
    /// program or under CARGO_TARGET_DIR].
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// Benchmark another gateway instead: a shell command with `{port}` and
    /// `{config}` placeholders, e.g. "litellm --config {config} --port {port}".
    #[arg(long, conflicts_with = "gateway_bin")]
    gateway_cmd: Option<String>,
    /// The gateway binary's --log-level (ignored with --gateway-cmd).
    #[arg(long, default_value = "info")]
    gateway_log_level: String,
    /// Concurrencies, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16, 64, 256])]
    concurrency: Vec<usize>,
    /// Measured rounds per target per concurrency (direct and gateway
    /// alternate: D G, G D, D G, ...).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds per round.
    #[arg(long, default_value_t = 2.0)]
    duration: f64,
    /// Requests per round instead of a duration.
    #[arg(long)]
    requests: Option<u64>,
    /// Open loop: send this many requests per second per target (over all
    /// workers) on a fixed schedule, instead of each worker sending as soon
    /// as its last answer arrived. Use a rate below the gateway's capacity to
    /// measure latency without queueing.
    #[arg(long)]
    rate: Option<f64>,
    /// Unmeasured warm-up seconds per target per concurrency.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// SSE content chunks per streamed answer (`stream` scenario).
    #[arg(long, default_value_t = 20)]
    chunks: usize,
    /// How the primary deployment fails in the `fallback` scenario.
    #[arg(long, value_enum, default_value_t = PrimaryFailure::ServerError)]
    primary_failure: PrimaryFailure,
    /// PostgreSQL URL for spend logs in the `keys` scenario.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Where to write the JSON results [default: bench-results/<scenario>.json].
    #[arg(long)]
    json: Option<PathBuf>,
    /// Worker threads of the fake upstream.
    #[arg(long, default_value_t = 1)]
    upstream_threads: usize,
    /// Worker threads of the load generator.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Seconds to wait for the gateway's /health/liveliness.
    #[arg(long, default_value_t = 30.0)]
    startup_timeout: f64,
    /// Seconds one request may take before it counts as an error.
    #[arg(long, default_value_t = 10.0)]
    request_timeout: f64,
    /// Count the gateway's instructions per request instead of timing it:
    /// two runs under `valgrind --tool=callgrind`, with N and 3N requests
    /// through the gateway at the first --concurrency, and the difference
    /// per request. Needs valgrind; independent of the machine's load.
    #[arg(long, value_name = "N", conflicts_with_all = ["gateway_cmd", "rate"])]
    instructions: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Non-stream chat completions through one openai/ deployment.
    Plain,
    /// SSE chat completions: time to first byte and total.
    Stream,
    /// The requested group's deployment fails; router_settings.fallbacks
    /// sends the request to a healthy group.
    Fallback,
    /// A virtual key with a budget, spend logged to PostgreSQL.
    Keys,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PrimaryFailure {
    /// The primary answers 500.
    ServerError,
    /// The primary's port is closed (connection refused).
    ClosedPort,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Plain => "plain",
            Scenario::Stream => "stream",
            Scenario::Fallback => "fallback",
            Scenario::Keys => "keys",
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Some(requests) = cli.instructions {
        return match count_instructions(&cli, requests) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("gateway-bench: {error:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    match run(&cli) {
        Ok(report) => {
            if report.errors() == 0 {
                std::process::ExitCode::SUCCESS
            } else {
                eprintln!("{} request(s) failed", report.errors());
                std::process::ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("gateway-bench: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Everything a run holds while the rounds go on.
struct Bench<'a> {
    cli: &'a Cli,
    gateway: &'a mut GatewayProcess,
    direct: Target,
    proxied: Target,
    ticks_per_second: u64,
    /// Measure the local PostgreSQL server's CPU (the `keys` scenario with a
    /// database on this machine).
    watch_database: bool,
}

fn run(cli: &Cli) -> anyhow::Result<Report> {
    if cli.rounds == 0 || cli.concurrency.is_empty() || cli.concurrency.contains(&0) {
        bail!("--rounds and every --concurrency must be at least 1");
    }
    if let Some(rate) = cli.rate {
        if !rate.is_finite() || rate <= 0.0 {
            bail!("--rate must be positive");
        }
        let fastest = cli.concurrency.iter().min().copied().unwrap_or(1) as f64 * 500.0;
        if rate > fastest {
            eprintln!(
                "warning: --rate {rate} needs a worker to send more often than every 2 ms at the lowest concurrency; tokio's 1 ms timer makes that rate unreachable there (keep --rate <= 500 x concurrency)"
            );
        }
    }
    if !(cli.duration > 0.0 && cli.warmup >= 0.0 && cli.request_timeout > 0.0) {
        bail!("--duration and --request-timeout must be positive, --warmup not negative");
    }
    let scenario = cli.scenario.name();
    let loadavg_start = loadavg();
    let cpu_start = cpu_times();
    let (json_path, results_dir) = output_paths(cli, &format!("{scenario}.json"))?;

    let (upstream, spec) = start_upstream(cli)?;
    let upstream_addr = spec.upstream;
    let config_path = write_config(&results_dir, scenario, &spec)?;

    let (launch, described) = launch(cli)?;
    let log_path = results_dir.join(format!("{scenario}.gateway.log"));
    let mut gateway = GatewayProcess::spawn(&launch, &config_path, &log_path)?;
    gateway.wait_ready(Duration::from_secs_f64(cli.startup_timeout))?;
    let idle = gateway.memory()?;
    eprintln!(
        "gateway pid {} ready on {} (idle RSS {:.1} MiB); config {}, log {}",
        gateway.pid(),
        gateway.addr,
        report::mib(idle.rss_kib),
        config_path.display(),
        log_path.display()
    );

    let runtime = client_runtime(cli)?;
    let mut notes = Vec::new();
    let levels = runtime.block_on(async {
        let (direct, proxied) = targets(cli, upstream_addr, &gateway, &mut notes).await?;
        let mut bench = Bench {
            cli,
            gateway: &mut gateway,
            direct,
            proxied,
            ticks_per_second: process::clock_ticks_per_second(),
            watch_database: cli.scenario == Scenario::Keys
                && cli
                    .database_url
                    .as_deref()
                    .is_some_and(process::is_local_database),
        };
        bench.smoke_test().await?;
        let mut levels = Vec::new();
        for &concurrency in &cli.concurrency {
            levels.push(bench.level(concurrency).await?);
        }
        anyhow::Ok(levels)
    })?;
    runtime.shutdown_timeout(Duration::from_secs(2));
    let peak = gateway.memory()?;
    drop(gateway);
    drop(upstream);

    let mut report = Report {
        scenario: scenario.to_owned(),
        gateway: described,
        machine: machine(loadavg_start, cpu_start),
        settings: Settings {
            rounds: cli.rounds,
            round_seconds: cli.duration,
            requests_per_round: cli.requests,
            rate: cli.rate,
            warmup_seconds: cli.warmup,
            stream_chunks: (cli.scenario == Scenario::Stream).then_some(cli.chunks),
            upstream_threads: cli.upstream_threads,
            client_threads: cli.client_threads,
        },
        idle_rss_kib: idle.rss_kib,
        peak_rss_kib: peak.peak_kib,
        levels,
        targets: Vec::new(),
        notes,
    };
    report.targets = report::check_targets(scenario, &report);
    println!("{}", report.table());
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(&json_path, json + "\n")
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    println!("results written to {}", json_path.display());
    Ok(report)
}

impl Bench<'_> {
    fn round_spec(&self, concurrency: usize, duration: f64, requests: Option<u64>) -> RoundSpec {
        RoundSpec {
            concurrency,
            duration: Duration::from_secs_f64(duration),
            requests,
            request_timeout: Duration::from_secs_f64(self.cli.request_timeout),
            rate: self.cli.rate,
        }
    }

    /// One request each way, so a broken setup shows its error before the
    /// rounds start.
    async fn smoke_test(&mut self) -> anyhow::Result<()> {
        let spec = self.round_spec(1, 1.0, Some(1));
        let direct = load::run_round(&self.direct, spec).await?;
        if let Some(error) = direct.first_error {
            bail!("the fake upstream failed a request: {error}");
        }
        let proxied = load::run_round(&self.proxied, spec).await?;
        if let Some(error) = proxied.first_error {
            eprintln!("warning: a first request through the gateway failed: {error}");
        }
        Ok(())
    }

    /// Warm-up, then `rounds` interleaved rounds per target at `concurrency`.
    async fn level(&mut self, concurrency: usize) -> anyhow::Result<Level> {
        eprintln!("concurrency {concurrency}: warm-up");
        // The database works for the gateway's requests only, but later:
        // the spend writer batches rows. So its CPU is counted over the
        // whole level, warm-up included, per gateway request of the level.
        let database_before = self
            .watch_database
            .then(|| process::processes_cpu_ticks(DATABASE_PROCESS));
        let mut warmup_answered = 0;
        if self.cli.warmup > 0.0 {
            let warmup = self.round_spec(concurrency, self.cli.warmup, None);
            load::run_round(&self.direct, warmup).await?;
            let result = load::run_round(&self.proxied, warmup).await?;
            warmup_answered = result.ok + result.errors;
        }
        let spec = self.round_spec(concurrency, self.cli.duration, self.cli.requests);
        let mut direct = Accumulator::new()?;
        let mut proxied = Accumulator::new()?;
        let (mut gateway_ticks, mut upstream_ticks) = (0u64, 0u64);
        let (mut client_ticks_direct, mut client_ticks_gateway) = (0u64, 0u64);
        for round in 0..self.cli.rounds {
            // ABBA order: drift that is linear in time cancels in pairs.
            let gateway_first = round % 2 == 1;
            for gateway_turn in [gateway_first, !gateway_first] {
                let client_before = process::threads_cpu_ticks(load::THREAD_NAME);
                if gateway_turn {
                    let before = self.gateway.cpu_ticks()?;
                    let result = load::run_round(&self.proxied, spec).await?;
                    gateway_ticks += self.gateway.cpu_ticks()?.saturating_sub(before);
                    proxied.add(result)?;
                    if !self.gateway.is_running() {
                        bail!(
                            "the gateway exited during the run; its log ({}) ends with:\n{}",
                            self.gateway.log_path.display(),
                            process::log_tail(&self.gateway.log_path, 20)
                        );
                    }
                } else {
                    let before = process::threads_cpu_ticks(upstream::THREAD_NAME);
                    let result = load::run_round(&self.direct, spec).await?;
                    upstream_ticks +=
                        process::threads_cpu_ticks(upstream::THREAD_NAME).saturating_sub(before);
                    direct.add(result)?;
                }
                let client =
                    process::threads_cpu_ticks(load::THREAD_NAME).saturating_sub(client_before);
                if gateway_turn {
                    client_ticks_gateway += client;
                } else {
                    client_ticks_direct += client;
                }
            }
        }
        let database_cpu_us_per_request = database_before.map(|before| {
            let after = process::processes_cpu_ticks(DATABASE_PROCESS);
            report::cpu_us_per_request(
                process::ticks_since(&before, &after),
                self.ticks_per_second,
                warmup_answered + proxied.answered(),
            )
        });
        let memory = self.gateway.memory()?;
        let direct_summary = direct.summary();
        let gateway_summary = proxied.summary();
        let ticks = self.ticks_per_second;
        let gateway_cpu_us = report::cpu_us_per_request(gateway_ticks, ticks, proxied.answered());
        let level = Level {
            concurrency,
            added_latency_us: gateway_summary.added_latency(&direct_summary),
            added_ttfb_us: gateway_summary.added_ttfb(&direct_summary),
            throughput_ratio: if direct_summary.requests_per_second > 0.0 {
                gateway_summary.requests_per_second / direct_summary.requests_per_second
            } else {
                0.0
            },
            gateway_cpu_seconds_per_1000: gateway_cpu_us / 1000.0,
            gateway_cpu_us_per_request: gateway_cpu_us,
            upstream_cpu_us_per_request: report::cpu_us_per_request(
                upstream_ticks,
                ticks,
                direct.answered(),
            ),
            client_cpu_us_per_request_direct: report::cpu_us_per_request(
                client_ticks_direct,
                ticks,
                direct.answered(),
            ),
            client_cpu_us_per_request_gateway: report::cpu_us_per_request(
                client_ticks_gateway,
                ticks,
                proxied.answered(),
            ),
            database_cpu_us_per_request,
            gateway_peak_rss_kib: memory.peak_kib,
            direct: direct_summary,
            gateway: gateway_summary,
        };
        let added = level.added_latency_us.map_or_else(
            || "no added latency (a side had no successes)".to_owned(),
            |added| format!("added p50 {:+.1} µs, p99 {:+.1} µs", added.p50, added.p99),
        );
        eprintln!(
            "concurrency {concurrency}: direct {:.0} req/s, gateway {:.0} req/s ({} errors), {added}, gateway CPU {:.1} µs/request",
            level.direct.requests_per_second,
            level.gateway.requests_per_second,
            level.gateway.errors,
            level.gateway_cpu_us_per_request
        );
        Ok(level)
    }
}

/// The fake upstream called directly, and through the gateway (with a new
/// virtual key in the `keys` scenario).
async fn targets(
    cli: &Cli,
    upstream_addr: std::net::SocketAddr,
    gateway: &GatewayProcess,
    notes: &mut Vec<String>,
) -> anyhow::Result<(Target, Target)> {
    let stream = cli.scenario == Scenario::Stream;
    let alias = match cli.scenario {
        Scenario::Fallback => config::PRIMARY_ALIAS,
        _ => config::MODEL_ALIAS,
    };
    let direct = Target::new(TargetSpec {
        name: "direct",
        url: format!("http://{upstream_addr}/v1/chat/completions"),
        bearer: config::UPSTREAM_KEY.to_owned(),
        body: request_body(alias, stream),
        stream,
    })?;
    let gateway_url = format!("http://{}/v1/chat/completions", gateway.addr);
    let mut bearer = config::MASTER_KEY.to_owned();
    if cli.scenario == Scenario::Keys {
        bearer = virtual_key(&direct, gateway, notes, cli).await?;
    }
    if cli.scenario == Scenario::Fallback {
        notes.push(
            "fallback: every request to `bench-primary` fails on its deployment and is \
             answered by the `bench-model` group via router_settings.fallbacks; the gateway's \
             figures include the failed attempt."
                .to_owned(),
        );
    }
    let proxied = Target::new(TargetSpec {
        name: "gateway",
        url: gateway_url,
        bearer,
        body: request_body(alias, stream),
        stream,
    })?;
    Ok((direct, proxied))
}

/// `--instructions N`: the gateway under callgrind with N and then 3N
/// requests; prints and writes the instructions per request.
fn count_instructions(cli: &Cli, requests: u64) -> anyhow::Result<()> {
    let concurrency = cli.concurrency.first().copied().unwrap_or(0);
    if requests == 0 || concurrency == 0 {
        bail!("--instructions and the first --concurrency must be at least 1");
    }
    let scenario = cli.scenario.name();
    let (json_path, results_dir) = output_paths(cli, &format!("{scenario}.instructions.json"))?;
    let binary = gateway_binary(cli)?;
    let counts = [requests, requests.saturating_mul(3)];
    let mut totals = [0u64; 2];
    let mut profiles = [PathBuf::new(), PathBuf::new()];
    for (run, &count) in counts.iter().enumerate() {
        let profile = results_dir.join(format!("{scenario}.{count}.callgrind"));
        // A profile left by an earlier run must not pass for this one's.
        let _ = std::fs::remove_file(&profile);
        eprintln!(
            "callgrind run {} of 2: {count} requests at c={concurrency}",
            run + 1
        );
        instruction_run(cli, &binary, &profile, &results_dir, count, concurrency)?;
        totals[run] = instructions::read_total(&profile)?;
        profiles[run] = profile;
    }
    let report = instructions::InstructionReport {
        scenario: scenario.to_owned(),
        gateway: binary.display().to_string(),
        concurrency,
        requests: counts,
        instructions: totals,
        instructions_per_request: instructions::per_request(
            (counts[0], totals[0]),
            (counts[1], totals[1]),
        )?,
        profiles,
    };
    println!("{}", report.text());
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(&json_path, json + "\n")
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    println!("results written to {}", json_path.display());
    Ok(())
}

/// One callgrind run: the gateway answers `requests` requests, then stops
/// (SIGTERM) so callgrind writes `profile`.
fn instruction_run(
    cli: &Cli,
    binary: &Path,
    profile: &Path,
    results_dir: &Path,
    requests: u64,
    concurrency: usize,
) -> anyhow::Result<()> {
    let scenario = cli.scenario.name();
    let (upstream, spec) = start_upstream(cli)?;
    let config_path = write_config(results_dir, scenario, &spec)?;
    let launch = Launch::Binary {
        path: binary.to_path_buf(),
        log_level: cli.gateway_log_level.clone(),
        wrapper: instructions::callgrind_wrapper(profile),
    };
    let log_path = results_dir.join(format!("{scenario}.{requests}.callgrind.log"));
    let mut gateway = GatewayProcess::spawn(&launch, &config_path, &log_path)?;
    // valgrind starts a program tens of times slower than it runs natively.
    gateway.wait_ready(Duration::from_secs_f64(cli.startup_timeout.max(120.0)))?;
    let runtime = client_runtime(cli)?;
    runtime.block_on(async {
        let mut notes = Vec::new();
        let (_, proxied) = targets(cli, spec.upstream, &gateway, &mut notes).await?;
        let result = load::run_round(
            &proxied,
            RoundSpec {
                concurrency,
                duration: Duration::from_secs(600),
                requests: Some(requests),
                request_timeout: Duration::from_secs_f64(cli.request_timeout.max(30.0)),
                rate: None,
            },
        )
        .await?;
        if result.errors > 0 || result.ok != requests {
            bail!(
                "{} of {requests} requests failed under callgrind (first: {})",
                requests - result.ok.min(requests),
                result.first_error.as_deref().unwrap_or("none")
            );
        }
        anyhow::Ok(())
    })?;
    runtime.shutdown_timeout(Duration::from_secs(2));
    // Shutting down under valgrind drains the spend writer slowly too.
    if !gateway.stop(Duration::from_secs(120)) {
        bail!(
            "the gateway did not exit within 120 s of SIGTERM, so callgrind wrote no profile; its log: {}",
            log_path.display()
        );
    }
    drop(upstream);
    Ok(())
}

/// Where the JSON goes (`--json`, else `bench-results/<default_name>`) and
/// the folder beside it for the config, logs and profiles, made if missing.
fn output_paths(cli: &Cli, default_name: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let json_path = cli
        .json
        .clone()
        .unwrap_or_else(|| Path::new("bench-results").join(default_name));
    let results_dir = json_path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&results_dir)
        .with_context(|| format!("cannot create {}", results_dir.display()))?;
    let results_dir = std::fs::canonicalize(&results_dir)?;
    Ok((json_path, results_dir))
}

/// Writes the gateway's config for `spec` as `<scenario>.config.yaml` in
/// `dir`, returning its absolute path.
fn write_config(dir: &Path, scenario: &str, spec: &config::ConfigSpec) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("{scenario}.config.yaml"));
    std::fs::write(&path, config::render(spec))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(std::fs::canonicalize(&path)?)
}

/// The load generator's runtime: `--client-threads` threads named
/// `bench-client`, whose CPU the report counts.
fn client_runtime(cli: &Cli) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.client_threads.max(1))
        .thread_name(load::THREAD_NAME)
        .enable_all()
        .build()
        .context("cannot start the load generator's runtime")
}

/// The command name of a PostgreSQL server's processes.
const DATABASE_PROCESS: &str = "postgres";

/// Starts the fake upstream with the listeners the scenario needs and says
/// what the gateway's config must point at.
fn start_upstream(cli: &Cli) -> anyhow::Result<(FakeUpstream, config::ConfigSpec)> {
    let upstream = FakeUpstream::start(cli.upstream_threads)?;
    let mode = match cli.scenario {
        Scenario::Stream => Mode::Sse { chunks: cli.chunks },
        Scenario::Plain | Scenario::Fallback | Scenario::Keys => Mode::Json,
    };
    let healthy = upstream.listen(mode)?;
    let failing_primary = match (cli.scenario, cli.primary_failure) {
        (Scenario::Fallback, PrimaryFailure::ServerError) => {
            Some(upstream.listen(Mode::ServerError)?)
        }
        (Scenario::Fallback, PrimaryFailure::ClosedPort) => Some(closed_port()?),
        _ => None,
    };
    let spec = config::ConfigSpec {
        upstream: healthy,
        failing_primary,
        database_url: cli
            .database_url
            .clone()
            .filter(|_| cli.scenario == Scenario::Keys),
        virtual_keys: cli.scenario == Scenario::Keys,
    };
    Ok((upstream, spec))
}

/// How to start the gateway under test, and how to name it in the report.
fn launch(cli: &Cli) -> anyhow::Result<(Launch, String)> {
    Ok(match &cli.gateway_cmd {
        Some(command) => (Launch::Shell(command.clone()), command.clone()),
        None => {
            let path = gateway_binary(cli)?;
            let described = format!("{} (--log-level {})", path.display(), cli.gateway_log_level);
            let launch = Launch::Binary {
                path,
                log_level: cli.gateway_log_level.clone(),
                wrapper: Vec::new(),
            };
            (launch, described)
        }
    })
}

/// A typical chat request: a system and a user message, a few parameters.
fn request_body(model: &str, stream: bool) -> Bytes {
    let mut body = serde_json::json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. Answer in one sentence."},
            {"role": "user", "content": "Why do benchmarks interleave their measurements?"}
        ],
        "max_tokens": 64,
        "temperature": 0.2,
        "user": "bench-user-0001"
    });
    if stream {
        body["stream"] = serde_json::Value::Bool(true);
        body["stream_options"] = serde_json::json!({"include_usage": true});
    }
    Bytes::from(body.to_string())
}

/// Creates a virtual key with a budget through the gateway's admin API, or
/// explains that the gateway does not have one yet.
async fn virtual_key(
    client: &Target,
    gateway: &GatewayProcess,
    notes: &mut Vec<String>,
    cli: &Cli,
) -> anyhow::Result<String> {
    if cli.database_url.is_none() {
        notes.push(
            "keys: no --database-url (or DATABASE_URL) was given, so spend is not logged to \
             PostgreSQL in this run."
                .to_owned(),
        );
    }
    let url = format!("http://{}/key/generate", gateway.addr);
    let (status, body) = client
        .post_json(
            &url,
            config::MASTER_KEY,
            serde_json::json!({
                "models": [config::MODEL_ALIAS],
                "max_budget": 1_000_000.0,
                // Unique per run: the database may keep earlier runs' keys.
                "key_alias": format!("gateway-bench-{}-{}", std::process::id(), unix_seconds()),
            }),
        )
        .await?;
    if !(200..300).contains(&status) {
        bail!(
            "the `keys` scenario needs a gateway with virtual keys: POST /key/generate \
             answered {status} ({})",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
    }
    let parsed: serde_json::Value =
        serde_json::from_slice(&body).context("POST /key/generate did not answer JSON")?;
    parsed["key"]
        .as_str()
        .map(str::to_owned)
        .context("POST /key/generate answered without a `key`")
}

/// A port on 127.0.0.1 that nothing listens on (it was free a moment ago).
fn closed_port() -> anyhow::Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// The gateway binary: --gateway-bin, else `gateway` beside this program when
/// it is a release build, else under CARGO_TARGET_DIR, else the workspace's
/// target directory.
fn gateway_binary(cli: &Cli) -> anyhow::Result<PathBuf> {
    if let Some(path) = &cli.gateway_bin {
        return Ok(path.clone());
    }
    let beside = std::env::current_exe().ok().and_then(|exe| {
        let dir = exe.parent()?;
        (dir.file_name()? == "release").then(|| dir.join("gateway"))
    });
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let candidates = beside
        .into_iter()
        .chain(std::iter::once(target_dir.join("release/gateway")));
    let mut tried = Vec::new();
    for candidate in candidates {
        if candidate.is_file() {
            return Ok(candidate);
        }
        tried.push(candidate.display().to_string());
    }
    bail!(
        "no gateway binary found (tried {}); build it with `cargo build --release -p gateway` or pass --gateway-bin",
        tried.join(", ")
    )
}

/// The 1, 5 and 15 minute load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// (steal, total) clock ticks of all CPUs from the `cpu` line of
/// /proc/stat: user nice system idle iowait irq softirq steal.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|field| field.parse().ok())
        .collect::<Option<_>>()?;
    (fields.len() == 8).then(|| (fields[7], fields.iter().sum()))
}

/// The share of CPU time the hypervisor gave to other guests between two
/// readings of [`cpu_times`], in percent.
fn steal_percent(start: Option<(u64, u64)>, end: Option<(u64, u64)>) -> Option<f64> {
    let ((steal_start, total_start), (steal_end, total_end)) = (start?, end?);
    let total = total_end
        .checked_sub(total_start)
        .filter(|&total| total > 0)?;
    Some(steal_end.saturating_sub(steal_start) as f64 * 100.0 / total as f64)
}

fn machine(loadavg_start: String, cpu_start: Option<(u64, u64)>) -> Machine {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_owned())
        .unwrap_or_default();
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, usize::from),
        cpu_model,
        date,
        loadavg_start,
        loadavg_end: loadavg(),
        steal_percent: steal_percent(cpu_start, cpu_times()),
    }
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_the_share_of_all_cpu_time_between_two_readings() {
        assert_eq!(
            steal_percent(Some((10, 1000)), Some((60, 1200))),
            Some(25.0)
        );
        assert_eq!(steal_percent(Some((10, 1000)), Some((10, 1000))), None);
        assert_eq!(steal_percent(None, Some((10, 1000))), None);
        // On Linux the reading exists and its steal never exceeds its total.
        if let Some((steal, total)) = cpu_times() {
            assert!(steal <= total);
        }
    }
}
