//! What the router remembers about deployments, and where it keeps it.
//!
//! The engine reads and writes [`DeploymentStats`] in a [`StatsTable`]; a
//! [`RouterState`] owns the table. [`MemoryState`] keeps it in this process;
//! a shared backend (Redis) can implement the same trait later. Stats are
//! keyed by [`DeploymentId`], so a router rebuilt from a new deployment list
//! on the same state keeps the cooldowns and latencies of unchanged
//! deployments.

use gateway_types::DeploymentId;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Length of the rpm/tpm and failure-counting windows.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Weight of the newest sample in the latency moving averages.
const LATENCY_SMOOTHING: f64 = 0.2;

/// A source of uniform random numbers, injected so that tests are
/// deterministic.
pub trait Rng: Debug + Send {
    /// A number in `[0, 1)`.
    fn next_f64(&mut self) -> f64;
}

/// The default [`Rng`], backed by `fastrand`.
#[derive(Debug, Clone)]
pub struct FastRng(fastrand::Rng);

impl FastRng {
    /// A generator with a fixed seed.
    pub fn with_seed(seed: u64) -> Self {
        Self(fastrand::Rng::with_seed(seed))
    }
}

impl Default for FastRng {
    fn default() -> Self {
        Self(fastrand::Rng::new())
    }
}

impl Rng for FastRng {
    fn next_f64(&mut self) -> f64 {
        self.0.f64()
    }
}

/// Where the router keeps its per-deployment statistics.
///
/// Calls are short and never span an `.await`.
pub trait RouterState: Send + Sync + Debug + 'static {
    /// Runs `f` with exclusive access to the statistics.
    fn update(&self, f: &mut dyn FnMut(&mut StatsTable));
}

/// Runs `f` on the table of `state` and returns its result.
pub(crate) fn with_table<R>(
    state: &dyn RouterState,
    f: impl FnOnce(&mut StatsTable) -> R,
) -> Option<R> {
    let mut f = Some(f);
    let mut out = None;
    state.update(&mut |table| {
        if let Some(f) = f.take() {
            out = Some(f(table));
        }
    });
    out
}

/// The in-process [`RouterState`]: a table behind a mutex held briefly.
#[derive(Debug, Default)]
pub struct MemoryState {
    table: Mutex<StatsTable>,
}

impl MemoryState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }
}

impl RouterState for MemoryState {
    fn update(&self, f: &mut dyn FnMut(&mut StatsTable)) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut table);
    }
}

/// Statistics of every deployment ever registered, in slots.
#[derive(Debug, Default, Clone)]
pub struct StatsTable {
    /// Looked up on every request; foldhash (the ids come from the config).
    slots: HashMap<DeploymentId, usize, foldhash::fast::RandomState>,
    stats: Vec<DeploymentStats>,
}

impl StatsTable {
    /// The slot of a deployment, created on first use.
    pub fn slot(&mut self, id: &DeploymentId) -> usize {
        if let Some(&slot) = self.slots.get(id) {
            return slot;
        }
        let slot = self.stats.len();
        self.stats.push(DeploymentStats::default());
        self.slots.insert(id.clone(), slot);
        slot
    }

    /// The statistics in a slot.
    pub fn get(&self, slot: usize) -> Option<&DeploymentStats> {
        self.stats.get(slot)
    }

    /// The statistics of a deployment, if it was ever registered.
    pub fn by_id(&self, id: &DeploymentId) -> Option<&DeploymentStats> {
        self.slots.get(id).and_then(|&slot| self.stats.get(slot))
    }

    pub(crate) fn get_mut(&mut self, slot: usize) -> Option<&mut DeploymentStats> {
        self.stats.get_mut(slot)
    }
}

/// What the router knows about one deployment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeploymentStats {
    /// Calls started and not yet ended.
    pub in_flight: u32,
    /// Skipped until this instant.
    pub cooldown_until: Option<Instant>,
    /// Failures in the current window.
    pub failures: Window,
    /// Requests and tokens in the current window.
    pub usage: Window,
    /// Moving average of whole-call latency, in seconds.
    pub latency: Option<f64>,
    /// Moving average of time to first token of streams, in seconds.
    pub time_to_first_token: Option<f64>,
}

/// A fixed one-minute window that starts at its first event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// When the window opened.
    pub start: Option<Instant>,
    /// Events (requests, failures) in the window.
    pub count: u64,
    /// Tokens in the window.
    pub tokens: u64,
}

impl Window {
    /// Forgets a window that ended before `now`.
    pub fn roll(&mut self, now: Instant) {
        if self.start.is_some_and(|start| now >= start + WINDOW) {
            *self = Window::default();
        }
    }

    /// Opens the window at `now` if it is not open.
    pub fn open(&mut self, now: Instant) {
        self.roll(now);
        if self.start.is_none() {
            self.start = Some(now);
        }
    }

    /// When the window ends, if it is open.
    pub fn end(&self) -> Option<Instant> {
        self.start.map(|start| start + WINDOW)
    }
}

impl DeploymentStats {
    /// True while the deployment is cooling down.
    pub fn is_cooling(&self, now: Instant) -> bool {
        self.cooldown_until.is_some_and(|until| now < until)
    }

    pub(crate) fn observe_latency(&mut self, seconds: f64) {
        self.latency = Some(smooth(self.latency, seconds));
    }

    pub(crate) fn observe_first_token(&mut self, seconds: f64) {
        self.time_to_first_token = Some(smooth(self.time_to_first_token, seconds));
    }
}

fn smooth(previous: Option<f64>, sample: f64) -> f64 {
    match previous {
        None => sample,
        Some(average) => average + LATENCY_SMOOTHING * (sample - average),
    }
}
