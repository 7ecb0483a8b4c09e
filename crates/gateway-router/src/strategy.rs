//! The strategies: which of a tier's available deployments to pick. Every
//! function walks the bits of the eligible set; nothing is allocated.

use crate::engine::{Engine, Group, PickRequest};
use crate::state::{DeploymentStats, Rng, StatsTable};
use crate::types::RoutingStrategy;

/// Picks a position among the set bits of `eligible` (never empty).
pub(crate) fn choose(
    engine: &Engine,
    group: &Group,
    table: &StatsTable,
    eligible: u128,
    request: &PickRequest<'_>,
    rng: &mut dyn Rng,
) -> usize {
    let settings = engine.settings();
    let stats = |position: usize| table.get(engine.entry(group.members[position]).slot);
    match settings.strategy {
        RoutingStrategy::SimpleShuffle => weighted(
            eligible,
            |position| {
                engine
                    .entry(group.members[position])
                    .deployment
                    .settings
                    .weight
            },
            rng,
        ),
        RoutingStrategy::LeastBusy => lowest(
            eligible,
            |position| stats(position).map_or(0.0, |stats| f64::from(stats.in_flight)),
            0.0,
            rng,
        ),
        RoutingStrategy::LatencyBased => lowest(
            eligible,
            |position| stats(position).map_or(0.0, |stats| latency(stats, request.stream)),
            settings.lowest_latency_buffer.max(0.0),
            rng,
        ),
        RoutingStrategy::UsageBased => lowest(
            eligible,
            |position| {
                let deployment = &engine.entry(group.members[position]).deployment.settings;
                stats(position).map_or(0.0, |stats| {
                    utilization(stats, deployment.rpm, deployment.tpm)
                })
            },
            0.0,
            rng,
        ),
        RoutingStrategy::CostBased => lowest(
            eligible,
            |position| engine.entry(group.members[position]).cost,
            0.0,
            rng,
        ),
    }
}

/// The moving-average latency a strategy compares; unknown counts as zero so
/// that new deployments get tried.
fn latency(stats: &DeploymentStats, stream: bool) -> f64 {
    let (first, second) = if stream {
        (stats.time_to_first_token, stats.latency)
    } else {
        (stats.latency, stats.time_to_first_token)
    };
    first.or(second).unwrap_or(0.0)
}

/// How close a deployment is to its limits in the current window (the larger
/// of the rpm and tpm fractions); tokens alone for deployments without limits.
fn utilization(stats: &DeploymentStats, rpm: Option<u64>, tpm: Option<u64>) -> f64 {
    let usage = &stats.usage;
    let fraction = |used: u64, limit: u64| used as f64 / limit.max(1) as f64;
    match (rpm, tpm) {
        (None, None) => usage.tokens as f64,
        (rpm, tpm) => {
            let requests = rpm.map_or(0.0, |rpm| fraction(usage.count, rpm));
            let tokens = tpm.map_or(0.0, |tpm| fraction(usage.tokens, tpm));
            requests.max(tokens)
        }
    }
}

fn positions(set: u128) -> impl Iterator<Item = usize> {
    let mut bits = set;
    std::iter::from_fn(move || {
        if bits == 0 {
            return None;
        }
        let position = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        Some(position)
    })
}

/// Weighted random: one draw, walked over the cumulative weights. All-zero
/// weights fall back to a uniform pick.
fn weighted(eligible: u128, weight: impl Fn(usize) -> f64, rng: &mut dyn Rng) -> usize {
    let draw = rng.next_f64();
    let total: f64 = positions(eligible).map(&weight).sum();
    if total <= 0.0 {
        return nth(eligible, draw);
    }
    let mut point = draw * total;
    let mut last = 0;
    for position in positions(eligible) {
        let weight = weight(position);
        if weight <= 0.0 {
            continue;
        }
        last = position;
        point -= weight;
        if point < 0.0 {
            return position;
        }
    }
    last
}

/// The lowest score, random among those within `band` (a fraction) of it.
fn lowest(eligible: u128, score: impl Fn(usize) -> f64, band: f64, rng: &mut dyn Rng) -> usize {
    let draw = rng.next_f64();
    let min = positions(eligible)
        .map(&score)
        .fold(f64::INFINITY, f64::min);
    let threshold = min + min.abs() * band;
    let mut near: u128 = 0;
    for position in positions(eligible) {
        if score(position) <= threshold {
            near |= 1 << position;
        }
    }
    nth(near, draw)
}

/// The position at `draw` (in `[0, 1)`) along the set bits.
fn nth(set: u128, draw: f64) -> usize {
    let count = set.count_ones() as usize;
    let index = ((draw * count as f64) as usize).min(count.saturating_sub(1));
    positions(set).nth(index).unwrap_or(0)
}
