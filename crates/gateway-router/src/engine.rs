//! The routing engine: sync, no IO, no clock, no randomness of its own.
//!
//! It holds the model groups (deployments sorted into priority tiers at build
//! time) and decides, from the statistics in a [`StatsTable`], the current
//! instant and an injected [`Rng`], which deployment to try next, how long to
//! back off before a retry, and how an outcome changes cooldowns, limits and
//! latencies. The async [`Router`](crate::Router) drives it.

use crate::policy::{self, Cooldown};
use crate::state::{DeploymentStats, Rng, StatsTable};
use crate::strategy;
use crate::types::{Deployment, RouterError, RouterSettings};
use gateway_providers::{ErrorKind, ProviderError};
use gateway_types::ModelName;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most deployments in one group (the engine keeps per-group sets as bits).
pub const MAX_GROUP_SIZE: usize = 128;

/// The tag that catches requests without tags.
pub const DEFAULT_TAG: &str = "default";

/// Backoff before the first retry when the upstream gave no retry-after.
const INITIAL_RETRY_DELAY: f64 = 0.5;
/// Longest exponential backoff.
const MAX_RETRY_DELAY: f64 = 8.0;
/// Longest upstream retry-after the backoff honours as is.
const MAX_HONOURED_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A model group, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupId(pub(crate) usize);

/// One deployment chosen for an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    /// The deployment's index in the engine (configuration order).
    pub deployment: usize,
    /// Its position in the group (sorted by tier), for [`PickRequest::tried`].
    pub position: usize,
    /// Its priority tier (0 is the lowest `order`).
    pub tier: usize,
}

/// What a request asks of a pick.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickRequest<'a> {
    /// The request's tags.
    pub tags: &'a [String],
    /// The input's tokens, when pre-call checks counted them.
    pub input_tokens: Option<u64>,
    /// A stream: latency routing uses time to first token.
    pub stream: bool,
    /// Skip tiers below this one (order fallbacks).
    pub min_tier: usize,
    /// Positions already tried by this request in this group (bit per
    /// position); they are picked again only when nothing else is left.
    pub tried: u128,
}

/// The engine's decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Call this deployment.
    Try(Pick),
    /// Nothing is available now; something will be at `until` (a cooldown
    /// ends or a rate-limit window closes). `error` is what to report when
    /// the request cannot wait that long.
    Wait {
        /// When a deployment becomes available.
        until: Instant,
        /// The failure if the request does not wait.
        error: RouterError,
    },
    /// Nothing can serve this request.
    GiveUp(RouterError),
}

/// How an attempt ended, as the engine records it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The deployment answered (for a stream: sent its first chunk).
    Success {
        /// Time from the call to the answer (to the first chunk for streams).
        latency: Duration,
        /// True for a stream's first chunk.
        stream: bool,
    },
    /// The deployment failed.
    Failure {
        /// The class of failure.
        kind: ErrorKind,
        /// The upstream's retry-after.
        retry_after: Option<Duration>,
        /// Time from the call to the failure.
        latency: Duration,
    },
}

impl Outcome {
    /// The outcome of a provider error.
    pub fn failure(error: &ProviderError, latency: Duration) -> Self {
        Outcome::Failure {
            kind: error.kind,
            retry_after: error.retry_after,
            latency,
        }
    }
}

/// The pure routing engine.
#[derive(Debug)]
pub struct Engine {
    settings: RouterSettings,
    entries: Vec<Entry>,
    groups: Vec<Group>,
    /// Looked up on every request: foldhash, not SipHash (names come from
    /// the config, so nobody can flood it with colliding keys).
    index: HashMap<ModelName, GroupId, foldhash::fast::RandomState>,
    names: Vec<ModelName>,
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) deployment: Arc<Deployment>,
    pub(crate) slot: usize,
    /// Input + output price per token; unknown prices count as expensive.
    pub(crate) cost: f64,
    /// The only deployment of its group.
    pub(crate) alone: bool,
    /// The provider's endpoint, shared into every route report.
    pub(crate) api_base: Option<Arc<str>>,
}

#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) name: ModelName,
    /// Entry indices sorted by `order` (stable).
    pub(crate) members: Vec<usize>,
    /// Ranges of `members`, one per distinct `order`, ascending.
    pub(crate) tiers: Vec<Range<usize>>,
    /// The deployments in configuration order.
    pub(crate) deployments: Vec<Arc<Deployment>>,
    has_default_tag: bool,
}

/// Which deployments a request's tags admit.
#[derive(Debug, Clone, Copy)]
enum TagFilter<'a> {
    All,
    Matching(&'a [String]),
    Default,
}

impl TagFilter<'_> {
    fn admits(self, deployment_tags: &[String]) -> bool {
        match self {
            TagFilter::All => true,
            TagFilter::Matching(tags) => deployment_tags.iter().any(|tag| tags.contains(tag)),
            TagFilter::Default => deployment_tags.iter().any(|tag| tag == DEFAULT_TAG),
        }
    }
}

/// Why a deployment cannot take a request now.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Admission {
    Yes,
    /// Its tags do not match.
    Tags,
    /// The input is longer than its `max_input_tokens`.
    Context(u64),
    /// Cooling down until then.
    Cooling(Instant),
    /// At its rpm/tpm limit until then.
    Limited(Instant),
}

/// Price per token assumed for deployments without one (LiteLLM's $5 + $5).
const UNKNOWN_COST: f64 = 10.0;

static NO_STATS: DeploymentStats = DeploymentStats {
    in_flight: 0,
    cooldown_until: None,
    failures: crate::state::Window {
        start: None,
        count: 0,
        tokens: 0,
    },
    usage: crate::state::Window {
        start: None,
        count: 0,
        tokens: 0,
    },
    latency: None,
    time_to_first_token: None,
};

impl Engine {
    /// Builds an engine, registering every deployment in `table`.
    ///
    /// Fails when two deployments share an id, a weight is negative or not a
    /// number, or a group has more than [`MAX_GROUP_SIZE`] deployments.
    pub fn new(
        settings: RouterSettings,
        deployments: Vec<Deployment>,
        table: &mut StatsTable,
    ) -> Result<Self, RouterError> {
        let mut entries = Vec::with_capacity(deployments.len());
        let mut groups: Vec<Group> = Vec::new();
        let mut index: HashMap<ModelName, GroupId, foldhash::fast::RandomState> =
            HashMap::default();
        let mut seen = std::collections::HashSet::new();
        for deployment in deployments {
            if !seen.insert(deployment.id.clone()) {
                return Err(RouterError::InvalidConfig(format!(
                    "two deployments have the id `{}`",
                    deployment.id
                )));
            }
            let weight = deployment.settings.weight;
            if !(weight >= 0.0 && weight.is_finite()) {
                return Err(RouterError::InvalidConfig(format!(
                    "deployment `{}` has weight {weight}; weights are finite and not negative",
                    deployment.id
                )));
            }
            let group = *index
                .entry(deployment.model_name.clone())
                .or_insert_with(|| {
                    groups.push(Group {
                        name: deployment.model_name.clone(),
                        members: Vec::new(),
                        tiers: Vec::new(),
                        deployments: Vec::new(),
                        has_default_tag: false,
                    });
                    GroupId(groups.len() - 1)
                });
            let settings = &deployment.settings;
            let cost = match (
                settings.input_cost_per_token,
                settings.output_cost_per_token,
            ) {
                (None, None) => UNKNOWN_COST,
                (input, output) => input.unwrap_or(0.0) + output.unwrap_or(0.0),
            };
            let deployment = Arc::new(deployment);
            let group = &mut groups[group.0];
            group.members.push(entries.len());
            group.deployments.push(Arc::clone(&deployment));
            group.has_default_tag |= deployment
                .settings
                .tags
                .iter()
                .any(|tag| tag == DEFAULT_TAG);
            entries.push(Entry {
                slot: table.slot(&deployment.id),
                api_base: deployment.provider.api_base().map(Arc::from),
                deployment,
                cost,
                alone: false,
            });
        }
        for group in &mut groups {
            if group.members.len() > MAX_GROUP_SIZE {
                return Err(RouterError::InvalidConfig(format!(
                    "group `{}` has {} deployments; at most {MAX_GROUP_SIZE} are supported",
                    group.name,
                    group.members.len()
                )));
            }
            group
                .members
                .sort_by_key(|&entry| entries[entry].deployment.settings.order);
            let mut start = 0;
            for position in 1..=group.members.len() {
                let order =
                    |position: usize| entries[group.members[position]].deployment.settings.order;
                if position == group.members.len() || order(position) != order(start) {
                    group.tiers.push(start..position);
                    start = position;
                }
            }
        }
        for group in &groups {
            if let [only] = group.members[..] {
                entries[only].alone = true;
            }
        }
        let names = groups.iter().map(|group| group.name.clone()).collect();
        Ok(Self {
            settings,
            entries,
            groups,
            index,
            names,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &RouterSettings {
        &self.settings
    }

    /// The group names, in configuration order.
    pub fn names(&self) -> &[ModelName] {
        &self.names
    }

    /// The group called `name`.
    pub fn group(&self, name: &str) -> Option<GroupId> {
        self.index.get(name).copied()
    }

    /// A group's name.
    pub fn group_name(&self, group: GroupId) -> &ModelName {
        &self.groups[group.0].name
    }

    /// A group's deployments in configuration order.
    pub fn group_deployments(&self, group: GroupId) -> &[Arc<Deployment>] {
        &self.groups[group.0].deployments
    }

    /// How many priority tiers a group has.
    pub fn tier_count(&self, group: GroupId) -> usize {
        self.groups[group.0].tiers.len()
    }

    /// A deployment by engine index (see [`Pick::deployment`]).
    pub fn deployment(&self, deployment: usize) -> &Arc<Deployment> {
        &self.entries[deployment].deployment
    }

    pub(crate) fn entry(&self, deployment: usize) -> &Entry {
        &self.entries[deployment]
    }

    /// Chooses a deployment without changing anything: walks the tiers from
    /// `request.min_tier` up and lets the strategy pick among the first tier
    /// with an available deployment.
    pub fn pick(
        &self,
        table: &StatsTable,
        group: GroupId,
        request: &PickRequest<'_>,
        now: Instant,
        rng: &mut dyn Rng,
    ) -> Step {
        let group_ref = &self.groups[group.0];
        let filter = match self.tag_filter(group_ref, request.tags) {
            Ok(filter) => filter,
            Err(error) => return Step::GiveUp(error),
        };
        let mut blocked = Blocked::default();
        for (tier, range) in group_ref.tiers.iter().enumerate().skip(request.min_tier) {
            let mut eligible: u128 = 0;
            for position in range.clone() {
                match self.admit(table, group_ref.members[position], filter, request, now) {
                    Admission::Yes => eligible |= 1 << position,
                    other => blocked.add(other),
                }
            }
            if eligible == 0 {
                continue;
            }
            let untried = eligible & !request.tried;
            if untried != 0 {
                eligible = untried;
            }
            let position = strategy::choose(self, group_ref, table, eligible, request, rng);
            return Step::Try(Pick {
                deployment: group_ref.members[position],
                position,
                tier,
            });
        }
        blocked.into_step(&group_ref.name, request, now)
    }

    /// [`Engine::pick`], and on [`Step::Try`] counts the call as started
    /// ([`Engine::begin`]) in the same step, so that concurrent requests
    /// cannot overshoot a limit.
    pub fn next_step(
        &self,
        table: &mut StatsTable,
        group: GroupId,
        request: &PickRequest<'_>,
        now: Instant,
        rng: &mut dyn Rng,
    ) -> Step {
        let step = self.pick(table, group, request, now, rng);
        if let Step::Try(pick) = &step {
            self.begin(table, pick.deployment, now);
        }
        step
    }

    /// Counts a call to `deployment` as started: one more in flight and one
    /// more request in its rpm window.
    pub fn begin(&self, table: &mut StatsTable, deployment: usize, now: Instant) {
        if let Some(stats) = table.get_mut(self.entries[deployment].slot) {
            stats.in_flight += 1;
            stats.usage.open(now);
            stats.usage.count += 1;
        }
    }

    /// Counts a call as ended (answered, failed or dropped): one fewer in
    /// flight, and its tokens into the tpm window.
    pub fn end(&self, table: &mut StatsTable, deployment: usize, tokens: u64, now: Instant) {
        if let Some(stats) = table.get_mut(self.entries[deployment].slot) {
            stats.in_flight = stats.in_flight.saturating_sub(1);
            if tokens > 0 {
                stats.usage.open(now);
                stats.usage.tokens += tokens;
            }
        }
    }

    /// Records how an attempt went: latencies, failure counts, cooldowns.
    pub fn record(
        &self,
        table: &mut StatsTable,
        deployment: usize,
        outcome: &Outcome,
        now: Instant,
    ) {
        let entry = &self.entries[deployment];
        let Some(stats) = table.get_mut(entry.slot) else {
            return;
        };
        match *outcome {
            Outcome::Success { latency, stream } => {
                if stream {
                    stats.observe_first_token(latency.as_secs_f64());
                } else {
                    stats.observe_latency(latency.as_secs_f64());
                }
            }
            Outcome::Failure {
                kind,
                retry_after,
                latency,
            } => {
                if kind == ErrorKind::Timeout {
                    stats.observe_latency(latency.as_secs_f64());
                    stats.observe_first_token(latency.as_secs_f64());
                }
                if self.settings.disable_cooldowns {
                    return;
                }
                let length = entry
                    .deployment
                    .settings
                    .cooldown_time
                    .or(retry_after)
                    .unwrap_or(self.settings.cooldown_time);
                let policy = match policy::cooldown(kind) {
                    // Cooling the only deployment of a group would turn the
                    // retry of a 429 into "no healthy deployment"; the retry's
                    // backoff honours the retry-after instead (as LiteLLM does).
                    Cooldown::Now if kind == ErrorKind::RateLimited && entry.alone => {
                        Cooldown::Count
                    }
                    other => other,
                };
                match policy {
                    Cooldown::Now => cool(stats, length, now),
                    Cooldown::Count => {
                        stats.failures.open(now);
                        stats.failures.count += 1;
                        if stats.failures.count > u64::from(self.settings.allowed_fails) {
                            stats.failures = Default::default();
                            cool(stats, length, now);
                        }
                    }
                    Cooldown::None => {}
                }
            }
        }
    }

    /// How long to wait before retrying after `failed` answered `error` on
    /// the `retry`-th retry (0 for the first): nothing when another
    /// deployment of the group is available; else the upstream's retry-after
    /// (up to a minute); else exponential backoff from 0.5 s to 8 s with up
    /// to 25% jitter. Never less than the `retry_after` setting.
    #[allow(clippy::too_many_arguments)]
    pub fn backoff(
        &self,
        table: &StatsTable,
        group: GroupId,
        failed: Pick,
        error: &ProviderError,
        retry: u32,
        request: &PickRequest<'_>,
        now: Instant,
        rng: &mut dyn Rng,
    ) -> Duration {
        let floor = self.settings.retry_after;
        let group_ref = &self.groups[group.0];
        if let Ok(filter) = self.tag_filter(group_ref, request.tags) {
            let other_available = group_ref
                .tiers
                .iter()
                .skip(request.min_tier)
                .flat_map(Clone::clone)
                .any(|position| {
                    position != failed.position
                        && self.admit(table, group_ref.members[position], filter, request, now)
                            == Admission::Yes
                });
            if other_available {
                return floor;
            }
        }
        if let Some(retry_after) = error
            .retry_after
            .filter(|wait| *wait <= MAX_HONOURED_RETRY_AFTER)
        {
            return retry_after.max(floor);
        }
        let exponential =
            (INITIAL_RETRY_DELAY * 2f64.powi(retry.min(16) as i32)).min(MAX_RETRY_DELAY);
        let jitter = 1.0 - 0.25 * rng.next_f64();
        Duration::from_secs_f64(exponential * jitter).max(floor)
    }

    fn tag_filter<'a>(
        &self,
        group: &Group,
        tags: &'a [String],
    ) -> Result<TagFilter<'a>, RouterError> {
        if !self.settings.enable_tag_filtering {
            return Ok(TagFilter::All);
        }
        if tags.is_empty() {
            return Ok(if group.has_default_tag {
                TagFilter::Default
            } else {
                TagFilter::All
            });
        }
        let matching = TagFilter::Matching(tags);
        if group
            .members
            .iter()
            .any(|&entry| matching.admits(&self.entries[entry].deployment.settings.tags))
        {
            Ok(matching)
        } else if group.has_default_tag {
            Ok(TagFilter::Default)
        } else {
            Err(RouterError::NoDeployment {
                group: group.name.clone(),
                reason: format!("no deployment has any of the tags {tags:?}"),
            })
        }
    }

    fn admit(
        &self,
        table: &StatsTable,
        entry_index: usize,
        filter: TagFilter<'_>,
        request: &PickRequest<'_>,
        now: Instant,
    ) -> Admission {
        let entry = &self.entries[entry_index];
        let settings = &entry.deployment.settings;
        if !filter.admits(&settings.tags) {
            return Admission::Tags;
        }
        if let (Some(tokens), Some(max)) = (request.input_tokens, settings.max_input_tokens) {
            if tokens > max {
                return Admission::Context(max);
            }
        }
        let stats = table.get(entry.slot).unwrap_or(&NO_STATS);
        if let Some(until) = stats.cooldown_until.filter(|until| now < *until) {
            return Admission::Cooling(until);
        }
        let usage = &stats.usage;
        if let Some(end) = usage.end().filter(|end| now < *end) {
            let over_rpm = settings.rpm.is_some_and(|rpm| usage.count >= rpm);
            let over_tpm = settings.tpm.is_some_and(|tpm| {
                usage.tokens > 0
                    && usage
                        .tokens
                        .saturating_add(request.input_tokens.unwrap_or(0))
                        > tpm
                    || usage.tokens >= tpm
            });
            if over_rpm || over_tpm {
                return Admission::Limited(end);
            }
        }
        Admission::Yes
    }
}

fn cool(stats: &mut DeploymentStats, length: Duration, now: Instant) {
    if length.is_zero() {
        return;
    }
    let until = now + length;
    stats.cooldown_until = Some(match stats.cooldown_until {
        Some(existing) if existing > until => existing,
        _ => until,
    });
}

/// Why no deployment of a group was available, gathered during a pick.
#[derive(Debug, Default)]
struct Blocked {
    cooling: Option<Instant>,
    limited: Option<Instant>,
    context: Option<u64>,
}

impl Blocked {
    fn add(&mut self, admission: Admission) {
        match admission {
            Admission::Yes | Admission::Tags => {}
            Admission::Context(max) => {
                self.context = Some(self.context.map_or(max, |seen| seen.max(max)))
            }
            Admission::Cooling(until) => {
                self.cooling = Some(self.cooling.map_or(until, |seen| seen.min(until)))
            }
            Admission::Limited(until) => {
                self.limited = Some(self.limited.map_or(until, |seen| seen.min(until)))
            }
        }
    }

    fn into_step(self, group: &ModelName, request: &PickRequest<'_>, now: Instant) -> Step {
        let group = group.clone();
        let cooling_first = match (self.cooling, self.limited) {
            (Some(cooling), Some(limited)) => cooling <= limited,
            (cooling, _) => cooling.is_some(),
        };
        match (self.cooling, self.limited) {
            (Some(cooling), _) if cooling_first => Step::Wait {
                until: cooling,
                error: RouterError::NoHealthyDeployment {
                    group,
                    retry_after: cooling - now,
                },
            },
            (_, Some(limited)) => Step::Wait {
                until: limited,
                error: RouterError::RateLimited {
                    group,
                    retry_after: limited - now,
                },
            },
            (_, None) => match self.context {
                Some(max_input_tokens) => Step::GiveUp(RouterError::ContextWindowExceeded {
                    group,
                    input_tokens: request.input_tokens.unwrap_or(0),
                    max_input_tokens,
                }),
                None => Step::GiveUp(RouterError::NoDeployment {
                    group,
                    reason: if request.min_tier > 0 {
                        "no higher priority tier is left".to_owned()
                    } else {
                        "no deployment matches the request".to_owned()
                    },
                }),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is the failure report.
#[path = "engine_tests.rs"]
mod tests;
