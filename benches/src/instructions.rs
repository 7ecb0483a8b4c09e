//! `--instructions`: the gateway's user-space instructions per request,
//! counted by callgrind.
//!
//! On a shared VM the CPU time of the same binary moves by 10–40% from one
//! run to the next; the instructions it executes do not. The gateway runs
//! twice under `valgrind --tool=callgrind`, once answering N requests and
//! once 3N, at one concurrency. Everything else in a run (start-up, config,
//! migrations, the admin key, the first request, shutdown) is the same in
//! both, so `(I(3N) − I(N)) / 2N` is what one request costs, start-up
//! cancelled. What the spend writer does per batch falls unevenly into the
//! two runs; expect about ±1k instructions of noise in the `keys` scenario.

use anyhow::{bail, Context};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The result of an `--instructions` run, as printed and written to JSON.
#[derive(Debug, Clone, Serialize)]
pub struct InstructionReport {
    /// The scenario measured.
    pub scenario: String,
    /// The gateway binary.
    pub gateway: String,
    /// Concurrent workers sending the requests.
    pub concurrency: usize,
    /// Requests answered in the smaller and the larger run.
    pub requests: [u64; 2],
    /// Instructions the gateway executed in each run (callgrind's summary).
    pub instructions: [u64; 2],
    /// The difference per request: what one request costs.
    pub instructions_per_request: f64,
    /// The two callgrind profiles, for `callgrind_annotate`.
    pub profiles: [PathBuf; 2],
}

impl InstructionReport {
    /// The report as text.
    pub fn text(&self) -> String {
        let extra = self.requests[1] - self.requests[0];
        format!(
            "scenario `{}` against {}, c={}, under callgrind\n\
             {:>8} requests: {:>14} instructions ({})\n\
             {:>8} requests: {:>14} instructions ({})\n\
             per request: {:.1}k instructions (the difference over {} requests)\n\
             per function: callgrind_annotate on both profiles, subtract, divide by {}",
            self.scenario,
            self.gateway,
            self.concurrency,
            self.requests[0],
            self.instructions[0],
            self.profiles[0].display(),
            self.requests[1],
            self.instructions[1],
            self.profiles[1].display(),
            self.instructions_per_request / 1000.0,
            extra,
            extra,
        )
    }
}

/// The total instructions of a callgrind profile: its `summary:` line (the
/// `totals:` line when there is none), first event only.
pub fn callgrind_total(profile: &str) -> Option<u64> {
    let line_value = |prefix: &str| {
        profile.lines().find_map(|line| {
            line.strip_prefix(prefix)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|value| value.parse().ok())
        })
    };
    line_value("summary:").or_else(|| line_value("totals:"))
}

/// Reads the total of the profile callgrind wrote at `path`.
pub fn read_total(path: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "callgrind wrote no profile at {} (did the gateway exit on SIGTERM?)",
            path.display()
        )
    })?;
    callgrind_total(&text).with_context(|| format!("no summary line in {}", path.display()))
}

/// Instructions per request from two runs `(requests, instructions)`; the
/// second must have answered more requests and executed more instructions.
pub fn per_request(small: (u64, u64), large: (u64, u64)) -> anyhow::Result<f64> {
    let requests = large.0.checked_sub(small.0).filter(|&n| n > 0);
    let instructions = large.1.checked_sub(small.1);
    match (requests, instructions) {
        (Some(requests), Some(instructions)) => Ok(instructions as f64 / requests as f64),
        _ => bail!(
            "the larger run ({} requests, {} instructions) must exceed the smaller ({} requests, {} instructions)",
            large.0,
            large.1,
            small.0,
            small.1
        ),
    }
}

/// The command that runs the gateway under callgrind, writing `profile`.
pub fn callgrind_wrapper(profile: &Path) -> Vec<String> {
    vec![
        "valgrind".to_owned(),
        "--tool=callgrind".to_owned(),
        format!("--callgrind-out-file={}", profile.display()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_is_the_summary_line_or_else_the_totals_line() {
        let profile = "version: 1\ncreator: callgrind-3.19.0\npid: 8349\nevents: Ir\n\
                       summary: 191742182\n\nfn=(1) main\n1 5\ntotals: 191742339\n";
        assert_eq!(callgrind_total(profile), Some(191_742_182));
        assert_eq!(callgrind_total("events: Ir\ntotals: 42\n"), Some(42));
        // Several events: the first is instructions (`Ir`).
        assert_eq!(callgrind_total("events: Ir Dr\nsummary: 10 20\n"), Some(10));
        assert_eq!(callgrind_total("events: Ir\n"), None);
        assert_eq!(callgrind_total("summary: many\n"), None);
    }

    #[test]
    fn per_request_is_the_difference_over_the_extra_requests() {
        let value = per_request((2_000, 191_742_182), (6_000, 541_144_742));
        assert!((value.unwrap_or(0.0) - 87_350.64).abs() < 0.01);
        assert!(per_request((2_000, 10), (2_000, 20)).is_err());
        assert!(per_request((6_000, 10), (2_000, 20)).is_err());
        assert!(per_request((2_000, 20), (6_000, 10)).is_err());
    }
}
