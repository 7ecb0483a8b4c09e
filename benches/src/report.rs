//! What a run found: per-concurrency summaries of the direct and gateway
//! rounds, the differences between them, the gateway's CPU and memory, the
//! targets met or not, as a table for people and JSON for tools.

use crate::load::RoundResult;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write as _;

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `plain`, `stream`, `fallback` or `keys`.
    pub scenario: String,
    /// What was benchmarked (binary path or command).
    pub gateway: String,
    /// The machine and the date.
    pub machine: Machine,
    /// The knobs of the run.
    pub settings: Settings,
    /// Gateway RSS right after it answered its first health check, KiB.
    pub idle_rss_kib: u64,
    /// Gateway peak RSS (VmHWM) at the end of the run, KiB.
    pub peak_rss_kib: u64,
    /// One entry per concurrency.
    pub levels: Vec<Level>,
    /// The targets this scenario is held to.
    pub targets: Vec<TargetCheck>,
    /// Things a reader must know (e.g. a feature not yet available).
    pub notes: Vec<String>,
}

/// The machine the run happened on.
#[derive(Debug, Serialize)]
pub struct Machine {
    /// Online CPUs.
    pub nproc: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// UTC date and time of the run.
    pub date: String,
    /// `/proc/loadavg` when the run started: other work on the machine.
    pub loadavg_start: String,
    /// `/proc/loadavg` when the run ended.
    pub loadavg_end: String,
    /// CPU time stolen by the hypervisor for other guests during the run,
    /// in percent of all CPU time (/proc/stat); above a few percent, the
    /// timings measure the host's load as much as the gateway.
    pub steal_percent: Option<f64>,
}

/// The knobs of the run.
#[derive(Debug, Serialize)]
pub struct Settings {
    /// Measured rounds per target per concurrency.
    pub rounds: usize,
    /// Seconds per round.
    pub round_seconds: f64,
    /// Requests per round instead of a duration, when set.
    pub requests_per_round: Option<u64>,
    /// Open-loop requests per second per target, when set.
    pub rate: Option<f64>,
    /// Seconds of unmeasured warm-up per target per concurrency.
    pub warmup_seconds: f64,
    /// SSE content chunks per streamed answer.
    pub stream_chunks: Option<usize>,
    /// Threads of the fake upstream's runtime.
    pub upstream_threads: usize,
    /// Threads of the load generator's runtime.
    pub client_threads: usize,
}

/// Everything measured at one concurrency.
#[derive(Debug, Serialize)]
pub struct Level {
    /// Concurrent workers.
    pub concurrency: usize,
    /// The fake upstream alone.
    pub direct: Summary,
    /// Through the gateway.
    pub gateway: Summary,
    /// Gateway minus direct at each percentile, µs (`None` when either
    /// side had no successful request).
    pub added_latency_us: Option<Percentiles>,
    /// Gateway minus direct time to first byte at each percentile, µs.
    pub added_ttfb_us: Option<Percentiles>,
    /// Gateway requests/s divided by direct requests/s.
    pub throughput_ratio: f64,
    /// Gateway CPU seconds (user + system) per 1,000 requests.
    pub gateway_cpu_seconds_per_1000: f64,
    /// The same, in µs per request (answered requests, failed ones too).
    pub gateway_cpu_us_per_request: f64,
    /// Fake upstream CPU µs per request in the direct rounds.
    pub upstream_cpu_us_per_request: f64,
    /// Load generator CPU µs per request, direct rounds.
    pub client_cpu_us_per_request_direct: f64,
    /// Load generator CPU µs per request, gateway rounds.
    pub client_cpu_us_per_request_gateway: f64,
    /// A local PostgreSQL server's CPU µs per gateway request over the
    /// level (`keys` scenario with a database on this machine), else `None`.
    pub database_cpu_us_per_request: Option<f64>,
    /// Gateway VmHWM after this concurrency's rounds, KiB.
    pub gateway_peak_rss_kib: u64,
}

/// One target's rounds at one concurrency, merged.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Successful requests.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Measured seconds.
    pub seconds: f64,
    /// Successful requests per second over all rounds.
    pub requests_per_second: f64,
    /// Requests per second of each round, in order (shows the noise).
    pub rounds_requests_per_second: Vec<f64>,
    /// Latency percentiles, µs.
    pub latency_us: Percentiles,
    /// Time to first byte percentiles, µs.
    pub ttfb_us: Percentiles,
    /// The first error seen.
    pub first_error: Option<String>,
}

/// Latency percentiles in µs.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
}

/// A target and whether the run met it.
#[derive(Debug, Serialize)]
pub struct TargetCheck {
    /// What is held to a bound.
    pub name: String,
    /// The bound, in words.
    pub bound: String,
    /// The measured value, in words.
    pub measured: String,
    /// `Some(true)` met, `Some(false)` not met, `None` not measured.
    pub met: Option<bool>,
}

/// Accumulates one target's rounds at one concurrency.
#[derive(Debug)]
pub struct Accumulator {
    requests: u64,
    errors: u64,
    seconds: f64,
    rounds: Vec<f64>,
    latency: Histogram<u64>,
    ttfb: Histogram<u64>,
    first_error: Option<String>,
}

impl Accumulator {
    /// An empty accumulator.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            requests: 0,
            errors: 0,
            seconds: 0.0,
            rounds: Vec::new(),
            latency: crate::load::histogram()?,
            ttfb: crate::load::histogram()?,
            first_error: None,
        })
    }

    /// Adds a round.
    pub fn add(&mut self, round: RoundResult) -> anyhow::Result<()> {
        let seconds = round.elapsed.as_secs_f64();
        self.requests += round.ok;
        self.errors += round.errors;
        self.seconds += seconds;
        self.rounds.push(per_second(round.ok, seconds));
        self.latency.add(&round.latency)?;
        self.ttfb.add(&round.ttfb)?;
        if self.first_error.is_none() {
            self.first_error = round.first_error;
        }
        Ok(())
    }

    /// Answered requests so far, successful or not.
    pub fn answered(&self) -> u64 {
        self.requests + self.errors
    }

    /// The summary.
    pub fn summary(&self) -> Summary {
        Summary {
            requests: self.requests,
            errors: self.errors,
            seconds: self.seconds,
            requests_per_second: per_second(self.requests, self.seconds),
            rounds_requests_per_second: self.rounds.iter().map(|rps| rps.round()).collect(),
            latency_us: percentiles(&self.latency),
            ttfb_us: percentiles(&self.ttfb),
            first_error: self.first_error.clone(),
        }
    }
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

fn percentiles(histogram: &Histogram<u64>) -> Percentiles {
    let at = |quantile: f64| {
        if histogram.is_empty() {
            0.0
        } else {
            histogram.value_at_quantile(quantile) as f64 / 1000.0
        }
    };
    Percentiles {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        p999: at(0.999),
    }
}

impl Summary {
    /// Gateway minus direct (`self - direct`) latency, when both have data.
    pub fn added_latency(&self, direct: &Summary) -> Option<Percentiles> {
        (self.requests > 0 && direct.requests > 0)
            .then(|| self.latency_us.minus(&direct.latency_us))
    }

    /// Gateway minus direct time to first byte, when both have data.
    pub fn added_ttfb(&self, direct: &Summary) -> Option<Percentiles> {
        (self.requests > 0 && direct.requests > 0).then(|| self.ttfb_us.minus(&direct.ttfb_us))
    }
}

impl Percentiles {
    /// `self - other` at each percentile.
    pub fn minus(&self, other: &Percentiles) -> Percentiles {
        Percentiles {
            p50: self.p50 - other.p50,
            p90: self.p90 - other.p90,
            p99: self.p99 - other.p99,
            p999: self.p999 - other.p999,
        }
    }
}

/// Converts CPU ticks over `requests` into µs per request.
pub fn cpu_us_per_request(ticks: u64, ticks_per_second: u64, requests: u64) -> f64 {
    if requests == 0 || ticks_per_second == 0 {
        return 0.0;
    }
    ticks as f64 / ticks_per_second as f64 / requests as f64 * 1e6
}

impl Report {
    /// Total failed requests, direct and gateway.
    pub fn errors(&self) -> u64 {
        self.levels
            .iter()
            .map(|level| level.direct.errors + level.gateway.errors)
            .sum()
    }

    /// The report as a table for a terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nscenario `{}` against {}\n{} CPUs ({}), {}, load average {} -> {}; {} round(s) x {} per target per concurrency, interleaved\n",
            self.scenario,
            self.gateway,
            self.machine.nproc,
            self.machine.cpu_model,
            self.machine.date,
            self.machine.loadavg_start,
            self.machine.loadavg_end,
            self.settings.rounds,
            match (self.settings.requests_per_round, self.settings.rate) {
                (Some(count), _) => format!("{count} requests"),
                (None, Some(rate)) => format!(
                    "{:.1} s, open loop at {rate:.0} req/s",
                    self.settings.round_seconds
                ),
                (None, None) => format!("{:.1} s", self.settings.round_seconds),
            }
        );
        if let Some(steal) = self.machine.steal_percent {
            let warning = if steal > 5.0 {
                ": the hypervisor ran other guests on these CPUs, so latencies and req/s are unreliable; compare CPU per request, or run again"
            } else {
                ""
            };
            let _ = writeln!(out, "CPU steal during the run {steal:.1}%{warning}\n");
        }
        let _ = writeln!(
            out,
            "{:>5}  {:<8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
            "conc",
            "target",
            "req/s",
            "p50 µs",
            "p90 µs",
            "p99 µs",
            "p99.9 µs",
            "ttfb p50",
            "ttfb p99",
            "errors"
        );
        for level in &self.levels {
            for (name, summary) in [("direct", &level.direct), ("gateway", &level.gateway)] {
                let _ = writeln!(
                    out,
                    "{:>5}  {:<8} {:>9.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7}",
                    level.concurrency,
                    name,
                    summary.requests_per_second,
                    summary.latency_us.p50,
                    summary.latency_us.p90,
                    summary.latency_us.p99,
                    summary.latency_us.p999,
                    summary.ttfb_us.p50,
                    summary.ttfb_us.p99,
                    summary.errors
                );
            }
            match (&level.added_latency_us, &level.added_ttfb_us) {
                (Some(added), Some(ttfb)) => {
                    let _ = writeln!(
                        out,
                        "{:>5}  {:<8} {:>8.1}% {:>+9.1} {:>+9.1} {:>+9.1} {:>+9.1} {:>+9.1} {:>+9.1}",
                        level.concurrency,
                        "added",
                        level.throughput_ratio * 100.0,
                        added.p50,
                        added.p90,
                        added.p99,
                        added.p999,
                        ttfb.p50,
                        ttfb.p99,
                    );
                }
                _ => {
                    let _ = writeln!(
                        out,
                        "{:>5}  {:<8} {:>8.1}%  (no added latency: a side had no successful request)",
                        level.concurrency,
                        "added",
                        level.throughput_ratio * 100.0,
                    );
                }
            }
            let _ = writeln!(
                out,
                "{:>5}  gateway CPU {:.1} µs/request ({:.4} s per 1,000), fake upstream {:.1} µs/request, load generator {:.1} / {:.1} µs/request (direct / gateway), gateway peak RSS {:.1} MiB",
                "",
                level.gateway_cpu_us_per_request,
                level.gateway_cpu_seconds_per_1000,
                level.upstream_cpu_us_per_request,
                level.client_cpu_us_per_request_direct,
                level.client_cpu_us_per_request_gateway,
                mib(level.gateway_peak_rss_kib)
            );
            if let Some(database) = level.database_cpu_us_per_request {
                let _ = writeln!(
                    out,
                    "{:>5}  PostgreSQL (local) CPU {database:.1} µs/gateway request, on the same cores",
                    ""
                );
            }
        }
        let _ = writeln!(
            out,
            "\ngateway RSS: idle {:.1} MiB, peak {:.1} MiB",
            mib(self.idle_rss_kib),
            mib(self.peak_rss_kib)
        );
        for level in &self.levels {
            for (name, summary) in [("direct", &level.direct), ("gateway", &level.gateway)] {
                if let Some(error) = &summary.first_error {
                    let _ = writeln!(
                        out,
                        "c={} {name}: {} error(s), first: {error}",
                        level.concurrency, summary.errors
                    );
                }
            }
        }
        if !self.targets.is_empty() {
            let _ = writeln!(out, "\ntargets:");
            for target in &self.targets {
                let verdict = match target.met {
                    Some(true) => "met",
                    Some(false) => "NOT MET",
                    None => "not measured",
                };
                let _ = writeln!(
                    out,
                    "  {:<46} {:<12} measured {:<22} {verdict}",
                    target.name, target.bound, target.measured
                );
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "\nnote: {note}");
        }
        out
    }
}

/// KiB to MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The targets of `docs/benchmarks.md`, checked against this run.
pub fn check_targets(scenario: &str, report: &Report) -> Vec<TargetCheck> {
    let level = |concurrency: usize| {
        report
            .levels
            .iter()
            .find(|level| level.concurrency == concurrency)
    };
    let below = |name: &str, bound: f64, unit: &str, value: Option<f64>| TargetCheck {
        name: name.to_owned(),
        bound: format!("< {bound} {unit}"),
        measured: value.map_or_else(|| "-".to_owned(), |value| format!("{value:.1} {unit}")),
        met: value.map(|value| value < bound),
    };
    let mut checks = Vec::new();
    match scenario {
        "plain" => {
            checks.push(below(
                "added latency c=1 p50",
                100.0,
                "µs",
                level(1).and_then(|l| l.added_latency_us).map(|a| a.p50),
            ));
            checks.push(below(
                "added latency c=1 p99",
                300.0,
                "µs",
                level(1).and_then(|l| l.added_latency_us).map(|a| a.p99),
            ));
            checks.push(below(
                "gateway CPU per request c=64",
                40.0,
                "µs",
                level(64).map(|l| l.gateway_cpu_us_per_request),
            ));
            let ratio = level(64).map(|l| l.throughput_ratio * 100.0);
            checks.push(TargetCheck {
                name: "throughput c=64, % of direct".to_owned(),
                bound: ">= 35 %".to_owned(),
                measured: ratio.map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.1} %")),
                met: ratio.map(|ratio| ratio >= 35.0),
            });
            checks.push(below(
                "added latency c=64 p99",
                2000.0,
                "µs",
                level(64).and_then(|l| l.added_latency_us).map(|a| a.p99),
            ));
        }
        "stream" => {
            checks.push(below(
                "added TTFB c=1 p50",
                200.0,
                "µs",
                level(1).and_then(|l| l.added_ttfb_us).map(|a| a.p50),
            ));
        }
        _ => {}
    }
    if matches!(scenario, "plain" | "stream") {
        checks.push(below(
            "gateway peak RSS",
            50.0,
            "MiB",
            Some(mib(report.peak_rss_kib)),
        ));
        checks.push(below(
            "gateway idle RSS",
            20.0,
            "MiB",
            Some(mib(report.idle_rss_kib)),
        ));
    }
    let errors = report.errors();
    checks.push(TargetCheck {
        name: "errors".to_owned(),
        bound: "= 0".to_owned(),
        measured: errors.to_string(),
        met: Some(errors == 0),
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(requests: u64, errors: u64, p50: f64) -> Summary {
        Summary {
            requests,
            errors,
            seconds: 1.0,
            requests_per_second: requests as f64,
            rounds_requests_per_second: vec![requests as f64],
            latency_us: Percentiles {
                p50,
                p90: p50,
                p99: p50 * 2.0,
                p999: p50 * 3.0,
            },
            ttfb_us: Percentiles::default(),
            first_error: None,
        }
    }

    fn level(concurrency: usize, direct: Summary, gateway: Summary) -> Level {
        Level {
            concurrency,
            added_latency_us: gateway.added_latency(&direct),
            added_ttfb_us: gateway.added_ttfb(&direct),
            throughput_ratio: gateway.requests_per_second / direct.requests_per_second,
            gateway_cpu_seconds_per_1000: 0.03,
            gateway_cpu_us_per_request: 30.0,
            upstream_cpu_us_per_request: 9.0,
            client_cpu_us_per_request_direct: 10.0,
            client_cpu_us_per_request_gateway: 20.0,
            database_cpu_us_per_request: None,
            gateway_peak_rss_kib: 20 * 1024,
            direct,
            gateway,
        }
    }

    fn report(levels: Vec<Level>) -> Report {
        Report {
            scenario: "plain".to_owned(),
            gateway: "test".to_owned(),
            machine: Machine {
                nproc: 2,
                cpu_model: "test".to_owned(),
                date: String::new(),
                loadavg_start: String::new(),
                loadavg_end: String::new(),
                steal_percent: None,
            },
            settings: Settings {
                rounds: 1,
                round_seconds: 1.0,
                requests_per_round: None,
                rate: None,
                warmup_seconds: 0.0,
                stream_chunks: None,
                upstream_threads: 1,
                client_threads: 1,
            },
            idle_rss_kib: 8 * 1024,
            peak_rss_kib: 30 * 1024,
            levels,
            targets: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn verdict(checks: &[TargetCheck], name: &str) -> Option<bool> {
        checks
            .iter()
            .find(|check| check.name == name)
            .and_then(|check| check.met)
    }

    #[test]
    fn added_latency_is_gateway_minus_direct() {
        let added = summary(100, 0, 80.0).added_latency(&summary(100, 0, 20.0));
        assert_eq!(added.map(|added| added.p50), Some(60.0));
    }

    #[test]
    fn no_added_latency_when_a_side_never_succeeded() {
        assert!(summary(0, 50, 0.0)
            .added_latency(&summary(100, 0, 20.0))
            .is_none());
    }

    #[test]
    fn targets_are_checked_at_their_concurrency() {
        let report = report(vec![
            level(1, summary(1000, 0, 20.0), summary(400, 0, 80.0)),
            level(64, summary(1000, 0, 1000.0), summary(300, 0, 1500.0)),
        ]);
        let checks = check_targets("plain", &report);
        assert_eq!(verdict(&checks, "added latency c=1 p50"), Some(true));
        assert_eq!(verdict(&checks, "added latency c=1 p99"), Some(true));
        assert_eq!(verdict(&checks, "gateway CPU per request c=64"), Some(true));
        assert_eq!(
            verdict(&checks, "throughput c=64, % of direct"),
            Some(false)
        );
        assert_eq!(verdict(&checks, "added latency c=64 p99"), Some(true));
        assert_eq!(verdict(&checks, "gateway peak RSS"), Some(true));
        assert_eq!(verdict(&checks, "errors"), Some(true));
    }

    #[test]
    fn targets_at_a_concurrency_not_run_are_not_measured() {
        let report = report(vec![level(
            16,
            summary(1000, 0, 20.0),
            summary(400, 3, 80.0),
        )]);
        let checks = check_targets("plain", &report);
        assert_eq!(verdict(&checks, "added latency c=1 p50"), None);
        assert_eq!(verdict(&checks, "errors"), Some(false));
    }

    #[test]
    fn the_database_line_is_printed_only_when_measured() {
        let mut measured = level(64, summary(1000, 0, 1000.0), summary(300, 0, 1500.0));
        measured.database_cpu_us_per_request = Some(31.5);
        let table = report(vec![measured]).table();
        assert!(
            table.contains("PostgreSQL (local) CPU 31.5 µs/gateway request"),
            "{table}"
        );
        let unmeasured = level(64, summary(1000, 0, 1000.0), summary(300, 0, 1500.0));
        assert!(!report(vec![unmeasured]).table().contains("PostgreSQL"));
    }
}
