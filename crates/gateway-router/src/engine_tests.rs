//! Engine tests: injected instants and random draws, no runtime.

use super::*;
use crate::policy::FallbackKind;
use crate::types::{DeploymentSettings, RoutingStrategy};
use gateway_providers::mock::MockProvider;
use gateway_types::DeploymentId;
use std::collections::VecDeque;

/// Returns the given draws in order, then zeros.
#[derive(Debug)]
struct Draws(VecDeque<f64>);

impl Draws {
    fn new(draws: &[f64]) -> Self {
        Self(draws.iter().copied().collect())
    }
}

impl Rng for Draws {
    fn next_f64(&mut self) -> f64 {
        self.0.pop_front().unwrap_or(0.0)
    }
}

fn deployment(id: &str, group: &str, settings: DeploymentSettings) -> Deployment {
    Deployment {
        id: DeploymentId::from(id),
        model_name: ModelName::from(group),
        provider: Arc::new(MockProvider::new(id)),
        settings,
    }
}

/// Deployments `a`, `b`, ... of group `g` with the given settings.
fn group(settings: Vec<DeploymentSettings>) -> Vec<Deployment> {
    settings
        .into_iter()
        .enumerate()
        .map(|(index, settings)| {
            deployment(&((b'a' + index as u8) as char).to_string(), "g", settings)
        })
        .collect()
}

struct Fixture {
    engine: Engine,
    table: StatsTable,
    group: GroupId,
    now: Instant,
}

impl Fixture {
    fn new(settings: RouterSettings, deployments: Vec<Deployment>) -> Self {
        let mut table = StatsTable::default();
        let engine = Engine::new(settings, deployments, &mut table).unwrap();
        let group = engine.group("g").unwrap();
        Self {
            engine,
            table,
            group,
            now: Instant::now(),
        }
    }

    fn with_strategy(strategy: RoutingStrategy, settings: Vec<DeploymentSettings>) -> Self {
        Self::new(
            RouterSettings {
                strategy,
                ..RouterSettings::default()
            },
            group(settings),
        )
    }

    fn at(&self, seconds: f64) -> Instant {
        self.now + Duration::from_secs_f64(seconds)
    }

    fn step(&self, request: &PickRequest<'_>, at: Instant, draw: f64) -> Step {
        self.engine.pick(
            &self.table,
            self.group,
            request,
            at,
            &mut Draws::new(&[draw]),
        )
    }

    /// The id picked for `request` at `at` with one random draw.
    fn pick_with(&self, request: &PickRequest<'_>, at: Instant, draw: f64) -> String {
        match self.step(request, at, draw) {
            Step::Try(pick) => self.engine.deployment(pick.deployment).id.to_string(),
            other => panic!("expected a pick, got {other:?}"),
        }
    }

    fn pick(&self, draw: f64) -> String {
        self.pick_with(&PickRequest::default(), self.now, draw)
    }

    fn index(&self, id: &str) -> usize {
        (0..self.engine.entries.len())
            .find(|&index| self.engine.deployment(index).id.as_str() == id)
            .unwrap()
    }

    fn fail(&mut self, id: &str, kind: ErrorKind, retry_after: Option<Duration>, at: Instant) {
        let index = self.index(id);
        let outcome = Outcome::Failure {
            kind,
            retry_after,
            latency: Duration::from_millis(10),
        };
        self.engine.record(&mut self.table, index, &outcome, at);
    }

    fn succeed(&mut self, id: &str, latency: f64, stream: bool) {
        let index = self.index(id);
        let outcome = Outcome::Success {
            latency: Duration::from_secs_f64(latency),
            stream,
        };
        self.engine
            .record(&mut self.table, index, &outcome, self.now);
    }

    fn begin(&mut self, id: &str, times: u32, at: Instant) {
        let index = self.index(id);
        for _ in 0..times {
            self.engine.begin(&mut self.table, index, at);
        }
    }

    fn cooling(&self, id: &str, at: Instant) -> bool {
        self.table
            .by_id(&DeploymentId::from(id))
            .unwrap()
            .is_cooling(at)
    }
}

fn weighted(weights: &[f64]) -> Vec<DeploymentSettings> {
    weights
        .iter()
        .map(|&weight| DeploymentSettings {
            weight,
            ..DeploymentSettings::default()
        })
        .collect()
}

#[test]
fn weighted_pick_follows_the_random_draw() {
    let fixture = Fixture::with_strategy(RoutingStrategy::SimpleShuffle, weighted(&[1.0, 3.0]));
    // Cumulative weights: a covers [0, 1), b covers [1, 4); the draw is scaled by 4.
    for (draw, expected) in [
        (0.0, "a"),
        (0.2, "a"),
        (0.249, "a"),
        (0.25, "b"),
        (0.6, "b"),
        (0.999, "b"),
    ] {
        assert_eq!(fixture.pick(draw), expected, "draw {draw}");
    }
}

#[test]
fn zero_weight_deployments_are_never_picked_unless_all_are_zero() {
    let fixture =
        Fixture::with_strategy(RoutingStrategy::SimpleShuffle, weighted(&[0.0, 1.0, 0.0]));
    for draw in [0.0, 0.5, 0.99] {
        assert_eq!(fixture.pick(draw), "b");
    }
    let fixture = Fixture::with_strategy(RoutingStrategy::SimpleShuffle, weighted(&[0.0, 0.0]));
    assert_eq!(fixture.pick(0.1), "a");
    assert_eq!(fixture.pick(0.9), "b");
}

#[test]
fn lower_order_tier_is_used_until_it_is_unavailable() {
    let orders = [1, 0, 2];
    let settings = orders
        .iter()
        .map(|&order| DeploymentSettings {
            order,
            ..DeploymentSettings::default()
        })
        .collect();
    let mut fixture = Fixture::with_strategy(RoutingStrategy::SimpleShuffle, settings);
    assert_eq!(fixture.engine.tier_count(fixture.group), 3);
    for draw in [0.0, 0.5, 0.99] {
        assert_eq!(fixture.pick(draw), "b");
    }
    let now = fixture.now;
    fixture.fail("b", ErrorKind::Auth, None, now);
    assert_eq!(fixture.pick(0.5), "a");
    fixture.fail("a", ErrorKind::Auth, None, now);
    assert_eq!(fixture.pick(0.5), "c");
    // An order fallback starts at a higher tier even when the lowest is healthy.
    let later = fixture.at(60.0);
    let request = PickRequest {
        min_tier: 1,
        ..PickRequest::default()
    };
    assert_eq!(fixture.pick_with(&request, later, 0.0), "a");
}

#[test]
fn least_busy_picks_the_fewest_in_flight_and_breaks_ties_at_random() {
    let mut fixture =
        Fixture::with_strategy(RoutingStrategy::LeastBusy, weighted(&[1.0, 1.0, 1.0]));
    let now = fixture.now;
    fixture.begin("a", 2, now);
    fixture.begin("b", 1, now);
    assert_eq!(fixture.pick(0.9), "c");
    fixture.begin("c", 1, now);
    assert_eq!(fixture.pick(0.0), "b");
    assert_eq!(fixture.pick(0.9), "c");
    let index = fixture.index("a");
    fixture.engine.end(&mut fixture.table, index, 0, now);
    fixture.engine.end(&mut fixture.table, index, 0, now);
    assert_eq!(fixture.pick(0.0), "a");
}

#[test]
fn latency_based_picks_within_a_band_of_the_fastest() {
    let mut fixture =
        Fixture::with_strategy(RoutingStrategy::LatencyBased, weighted(&[1.0, 1.0, 1.0]));
    fixture.succeed("a", 1.0, false);
    fixture.succeed("b", 1.05, false);
    fixture.succeed("c", 2.0, false);
    // The band is 10% of the fastest: a and b qualify, c never does.
    assert_eq!(fixture.pick(0.0), "a");
    assert_eq!(fixture.pick(0.99), "b");
    // A deployment without samples counts as fastest, so it gets tried.
    let mut fixture = Fixture::with_strategy(RoutingStrategy::LatencyBased, weighted(&[1.0, 1.0]));
    fixture.succeed("a", 0.1, false);
    assert_eq!(fixture.pick(0.0), "b");
}

#[test]
fn latency_based_uses_time_to_first_token_for_streams() {
    let mut fixture = Fixture::with_strategy(RoutingStrategy::LatencyBased, weighted(&[1.0, 1.0]));
    fixture.succeed("a", 1.0, false);
    fixture.succeed("b", 3.0, false);
    fixture.succeed("a", 2.0, true);
    fixture.succeed("b", 0.2, true);
    assert_eq!(fixture.pick(0.0), "a");
    let stream = PickRequest {
        stream: true,
        ..PickRequest::default()
    };
    assert_eq!(fixture.pick_with(&stream, fixture.now, 0.0), "b");
}

#[test]
fn usage_based_picks_the_deployment_furthest_from_its_limit() {
    let limits = [(Some(10), None), (Some(100), None), (None, Some(1_000))];
    let settings = limits
        .iter()
        .map(|&(rpm, tpm)| DeploymentSettings {
            rpm,
            tpm,
            ..DeploymentSettings::default()
        })
        .collect();
    let mut fixture = Fixture::with_strategy(RoutingStrategy::UsageBased, settings);
    let now = fixture.now;
    fixture.begin("a", 5, now); // 50% of rpm
    fixture.begin("b", 20, now); // 20% of rpm
    let index = fixture.index("c");
    fixture.engine.begin(&mut fixture.table, index, now);
    fixture.engine.end(&mut fixture.table, index, 300, now); // 30% of tpm
    assert_eq!(fixture.pick(0.5), "b");
}

#[test]
fn cost_based_picks_the_cheapest_and_unknown_prices_last() {
    let prices = [
        (Some(1e-6), Some(2e-6)),
        (None, None),
        (Some(0.5e-6), Some(0.5e-6)),
    ];
    let settings = prices
        .iter()
        .map(|&(input, output)| DeploymentSettings {
            input_cost_per_token: input,
            output_cost_per_token: output,
            ..DeploymentSettings::default()
        })
        .collect();
    let mut fixture = Fixture::with_strategy(RoutingStrategy::CostBased, settings);
    assert_eq!(fixture.pick(0.5), "c");
    let now = fixture.now;
    fixture.fail("c", ErrorKind::RateLimited, None, now);
    assert_eq!(fixture.pick(0.5), "a");
}

#[test]
fn cooldown_starts_after_more_than_allowed_fails_within_a_minute() {
    let settings = RouterSettings {
        allowed_fails: 2,
        ..RouterSettings::default()
    };
    let mut fixture = Fixture::new(settings, group(weighted(&[1.0, 1.0])));
    for second in [0.0, 10.0] {
        let at = fixture.at(second);
        fixture.fail("a", ErrorKind::Upstream, None, at);
        assert!(!fixture.cooling("a", at));
    }
    let at = fixture.at(20.0);
    fixture.fail("a", ErrorKind::Timeout, None, at);
    assert!(fixture.cooling("a", at));
    assert_eq!(fixture.pick_with(&PickRequest::default(), at, 0.0), "b");
}

#[test]
fn failures_in_different_windows_do_not_add_up() {
    let settings = RouterSettings {
        allowed_fails: 1,
        ..RouterSettings::default()
    };
    let mut fixture = Fixture::new(settings, group(weighted(&[1.0])));
    let first = fixture.at(0.0);
    fixture.fail("a", ErrorKind::Connect, None, first);
    let second = fixture.at(61.0);
    fixture.fail("a", ErrorKind::Connect, None, second);
    assert!(!fixture.cooling("a", second));
    fixture.fail("a", ErrorKind::Connect, None, second);
    assert!(fixture.cooling("a", second));
}

#[test]
fn cooldown_expires_after_window() {
    let mut fixture = Fixture::new(RouterSettings::default(), group(weighted(&[1.0])));
    let now = fixture.now;
    fixture.fail("a", ErrorKind::Auth, None, now);
    assert!(fixture.cooling("a", fixture.at(4.999)));
    assert!(!fixture.cooling("a", fixture.at(5.0)));
    assert_eq!(
        fixture.pick_with(&PickRequest::default(), fixture.at(5.0), 0.0),
        "a"
    );
}

#[test]
fn immediate_cooldowns_follow_the_error_class() {
    // (kind, retry-after, cooled for)
    let cases = [
        (
            ErrorKind::RateLimited,
            Some(Duration::from_secs(12)),
            Some(12.0),
        ),
        (ErrorKind::RateLimited, None, Some(5.0)),
        (ErrorKind::Auth, None, Some(5.0)),
        (ErrorKind::NotFound, None, Some(5.0)),
        (ErrorKind::BadRequest, None, None),
        (ErrorKind::ContextWindowExceeded, None, None),
        (ErrorKind::ContentFiltered, None, None),
        (ErrorKind::Upstream, None, None),
    ];
    for (kind, retry_after, cooled_for) in cases {
        let mut fixture = Fixture::new(RouterSettings::default(), group(weighted(&[1.0, 1.0])));
        let now = fixture.now;
        fixture.fail("a", kind, retry_after, now);
        let until = fixture
            .table
            .by_id(&DeploymentId::from("a"))
            .unwrap()
            .cooldown_until;
        assert_eq!(
            until,
            cooled_for.map(|seconds| fixture.at(seconds)),
            "{kind}"
        );
    }
}

#[test]
fn a_429_counts_toward_allowed_fails_for_the_only_deployment_of_a_group() {
    let settings = RouterSettings {
        allowed_fails: 1,
        ..RouterSettings::default()
    };
    let mut fixture = Fixture::new(settings, group(weighted(&[1.0])));
    let now = fixture.now;
    fixture.fail(
        "a",
        ErrorKind::RateLimited,
        Some(Duration::from_secs(7)),
        now,
    );
    assert!(!fixture.cooling("a", now));
    fixture.fail(
        "a",
        ErrorKind::RateLimited,
        Some(Duration::from_secs(7)),
        now,
    );
    assert!(fixture.cooling("a", fixture.at(6.9)));
    // Auth and 404 still cool a lone deployment at once.
    fixture.fail("a", ErrorKind::NotFound, None, fixture.at(10.0));
    assert!(fixture.cooling("a", fixture.at(10.0)));
}

#[test]
fn deployment_cooldown_time_wins_and_zero_means_none() {
    let settings = vec![
        DeploymentSettings {
            cooldown_time: Some(Duration::from_secs(2)),
            ..DeploymentSettings::default()
        },
        DeploymentSettings {
            cooldown_time: Some(Duration::ZERO),
            ..DeploymentSettings::default()
        },
    ];
    let mut fixture = Fixture::with_strategy(RoutingStrategy::SimpleShuffle, settings);
    let now = fixture.now;
    fixture.fail(
        "a",
        ErrorKind::RateLimited,
        Some(Duration::from_secs(30)),
        now,
    );
    fixture.fail(
        "b",
        ErrorKind::RateLimited,
        Some(Duration::from_secs(30)),
        now,
    );
    assert!(fixture.cooling("a", fixture.at(1.9)));
    assert!(!fixture.cooling("a", fixture.at(2.0)));
    assert!(!fixture.cooling("b", now));
}

#[test]
fn recooling_keeps_the_later_deadline() {
    let mut fixture = Fixture::new(RouterSettings::default(), group(weighted(&[1.0, 1.0])));
    let now = fixture.now;
    fixture.fail(
        "a",
        ErrorKind::RateLimited,
        Some(Duration::from_secs(30)),
        now,
    );
    fixture.fail(
        "a",
        ErrorKind::RateLimited,
        Some(Duration::from_secs(2)),
        fixture.at(1.0),
    );
    assert!(fixture.cooling("a", fixture.at(29.0)));
    fixture.fail(
        "a",
        ErrorKind::RateLimited,
        Some(Duration::from_secs(40)),
        fixture.at(1.0),
    );
    assert!(fixture.cooling("a", fixture.at(40.5)));
}

#[test]
fn disabled_cooldowns_never_cool() {
    let settings = RouterSettings {
        disable_cooldowns: true,
        ..RouterSettings::default()
    };
    let mut fixture = Fixture::new(settings, group(weighted(&[1.0, 1.0])));
    let now = fixture.now;
    fixture.fail("a", ErrorKind::RateLimited, None, now);
    for _ in 0..10 {
        fixture.fail("a", ErrorKind::Upstream, None, now);
    }
    assert!(!fixture.cooling("a", now));
}

#[test]
fn all_cooling_waits_for_the_first_to_recover() {
    let mut fixture = Fixture::new(RouterSettings::default(), group(weighted(&[1.0, 1.0])));
    let now = fixture.now;
    fixture.fail(
        "a",
        ErrorKind::RateLimited,
        Some(Duration::from_secs(9)),
        now,
    );
    fixture.fail(
        "b",
        ErrorKind::RateLimited,
        Some(Duration::from_secs(3)),
        now,
    );
    let step = fixture.step(&PickRequest::default(), fixture.at(1.0), 0.0);
    assert_eq!(
        step,
        Step::Wait {
            until: fixture.at(3.0),
            error: RouterError::NoHealthyDeployment {
                group: ModelName::from("g"),
                retry_after: Duration::from_secs(2),
            },
        }
    );
    assert_eq!(
        fixture.pick_with(&PickRequest::default(), fixture.at(3.0), 0.0),
        "b"
    );
}

#[test]
fn rpm_limit_skips_a_deployment_until_its_window_closes() {
    let limits = [Some(2), Some(1)];
    let settings = limits
        .iter()
        .map(|&rpm| DeploymentSettings {
            rpm,
            ..DeploymentSettings::default()
        })
        .collect();
    let mut fixture = Fixture::with_strategy(RoutingStrategy::SimpleShuffle, settings);
    let mut table = std::mem::take(&mut fixture.table);
    let mut picks = Vec::new();
    for second in [0.0, 1.0, 2.0] {
        match fixture.engine.next_step(
            &mut table,
            fixture.group,
            &PickRequest::default(),
            fixture.at(second),
            &mut Draws::new(&[0.0]),
        ) {
            Step::Try(pick) => {
                picks.push(fixture.engine.deployment(pick.deployment).id.to_string())
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(picks, ["a", "a", "b"]);
    fixture.table = table;
    let step = fixture.step(&PickRequest::default(), fixture.at(3.0), 0.0);
    assert_eq!(
        step,
        Step::Wait {
            until: fixture.at(60.0),
            error: RouterError::RateLimited {
                group: ModelName::from("g"),
                retry_after: Duration::from_secs(57),
            },
        }
    );
    assert_eq!(
        fixture.pick_with(&PickRequest::default(), fixture.at(60.0), 0.0),
        "a"
    );
}

#[test]
fn tpm_limit_counts_reported_tokens_and_the_next_input() {
    let settings = vec![DeploymentSettings {
        tpm: Some(1_000),
        ..DeploymentSettings::default()
    }];
    let mut fixture = Fixture::with_strategy(RoutingStrategy::SimpleShuffle, settings);
    let now = fixture.now;
    fixture.begin("a", 1, now);
    let index = fixture.index("a");
    fixture.engine.end(&mut fixture.table, index, 900, now);
    let small = PickRequest {
        input_tokens: Some(100),
        ..PickRequest::default()
    };
    assert_eq!(fixture.pick_with(&small, now, 0.0), "a");
    let large = PickRequest {
        input_tokens: Some(101),
        ..PickRequest::default()
    };
    assert!(matches!(fixture.step(&large, now, 0.0), Step::Wait { .. }));
}

#[test]
fn tag_filtering_matches_tags_and_sends_untagged_requests_to_default() {
    let tags: [&[&str]; 3] = [&["paid"], &["default"], &["free", "batch"]];
    let deployments = group(
        tags.iter()
            .map(|tags| DeploymentSettings {
                tags: tags.iter().map(|tag| tag.to_string()).collect(),
                ..DeploymentSettings::default()
            })
            .collect(),
    );
    let settings = RouterSettings {
        enable_tag_filtering: true,
        ..RouterSettings::default()
    };
    let fixture = Fixture::new(settings.clone(), deployments.clone());
    let check = |tags: &[&str], expected: &str| {
        let tags: Vec<String> = tags.iter().map(|tag| tag.to_string()).collect();
        let request = PickRequest {
            tags: &tags,
            ..PickRequest::default()
        };
        for draw in [0.0, 0.99] {
            assert_eq!(
                fixture.pick_with(&request, fixture.now, draw),
                expected,
                "tags {tags:?}"
            );
        }
    };
    check(&["paid"], "a");
    check(&["batch"], "c");
    check(&[], "b");
    check(&["unknown"], "b");

    // Without a default deployment, an unmatched tag is an error.
    let no_default: Vec<Deployment> = deployments
        .into_iter()
        .filter(|deployment| deployment.id.as_str() != "b")
        .collect();
    let fixture = Fixture::new(settings, no_default);
    let tags = vec!["unknown".to_owned()];
    let request = PickRequest {
        tags: &tags,
        ..PickRequest::default()
    };
    assert!(matches!(
        fixture.step(&request, fixture.now, 0.0),
        Step::GiveUp(RouterError::NoDeployment { .. })
    ));
    // Filtering off: tags are ignored.
    let fixture = Fixture::new(RouterSettings::default(), group(weighted(&[1.0, 1.0])));
    assert_eq!(fixture.pick_with(&request, fixture.now, 0.99), "b");
}

#[test]
fn pre_call_checks_skip_deployments_too_small_for_the_input() {
    let sizes = [Some(1_000), Some(8_000), None];
    let settings = sizes
        .iter()
        .map(|&max_input_tokens| DeploymentSettings {
            max_input_tokens,
            order: if max_input_tokens.is_none() { 1 } else { 0 },
            ..DeploymentSettings::default()
        })
        .collect();
    let fixture = Fixture::with_strategy(RoutingStrategy::SimpleShuffle, settings);
    let request = |tokens| PickRequest {
        input_tokens: Some(tokens),
        ..PickRequest::default()
    };
    assert_eq!(fixture.pick_with(&request(500), fixture.now, 0.0), "a");
    assert_eq!(fixture.pick_with(&request(5_000), fixture.now, 0.0), "b");
    // Too big for tier 0: the unlimited tier-1 deployment takes it.
    assert_eq!(fixture.pick_with(&request(50_000), fixture.now, 0.0), "c");

    let sizes = [Some(1_000), Some(8_000)];
    let settings = sizes
        .iter()
        .map(|&max_input_tokens| DeploymentSettings {
            max_input_tokens,
            ..DeploymentSettings::default()
        })
        .collect();
    let fixture = Fixture::with_strategy(RoutingStrategy::SimpleShuffle, settings);
    assert_eq!(
        fixture.step(&request(9_000), fixture.now, 0.0),
        Step::GiveUp(RouterError::ContextWindowExceeded {
            group: ModelName::from("g"),
            input_tokens: 9_000,
            max_input_tokens: 8_000,
        })
    );
}

#[test]
fn tried_deployments_are_picked_again_only_when_nothing_else_is_left() {
    let fixture = Fixture::with_strategy(RoutingStrategy::SimpleShuffle, weighted(&[1.0, 1.0]));
    let tried_a = PickRequest {
        tried: 0b01,
        ..PickRequest::default()
    };
    assert_eq!(fixture.pick_with(&tried_a, fixture.now, 0.0), "b");
    let tried_both = PickRequest {
        tried: 0b11,
        ..PickRequest::default()
    };
    assert_eq!(fixture.pick_with(&tried_both, fixture.now, 0.0), "a");
}

fn backoff_of(fixture: &Fixture, error: &ProviderError, retry: u32, draw: f64) -> Duration {
    let failed = Pick {
        deployment: 0,
        position: 0,
        tier: 0,
    };
    fixture.engine.backoff(
        &fixture.table,
        fixture.group,
        failed,
        error,
        retry,
        &PickRequest::default(),
        fixture.now,
        &mut Draws::new(&[draw]),
    )
}

#[test]
fn backoff_is_exponential_with_jitter_and_capped() {
    let fixture = Fixture::new(RouterSettings::default(), group(weighted(&[1.0])));
    let error = ProviderError::new(ErrorKind::Upstream, "boom");
    let schedule: Vec<f64> = (0..6)
        .map(|retry| backoff_of(&fixture, &error, retry, 0.0).as_secs_f64())
        .collect();
    assert_eq!(schedule, [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]);
    // The largest jitter takes a quarter off.
    assert_eq!(
        backoff_of(&fixture, &error, 1, 1.0),
        Duration::from_millis(750)
    );
}

#[test]
fn backoff_honours_retry_after_and_the_minimum_setting() {
    let fixture = Fixture::new(RouterSettings::default(), group(weighted(&[1.0])));
    let limited = ProviderError::new(ErrorKind::RateLimited, "slow")
        .with_retry_after(Some(Duration::from_secs(7)));
    assert_eq!(
        backoff_of(&fixture, &limited, 0, 0.5),
        Duration::from_secs(7)
    );
    // Retry-after beyond a minute is not trusted: exponential instead.
    let absurd = ProviderError::new(ErrorKind::RateLimited, "slow")
        .with_retry_after(Some(Duration::from_secs(3600)));
    assert_eq!(
        backoff_of(&fixture, &absurd, 0, 0.0),
        Duration::from_millis(500)
    );

    let settings = RouterSettings {
        retry_after: Duration::from_secs(3),
        ..RouterSettings::default()
    };
    let fixture = Fixture::new(settings, group(weighted(&[1.0])));
    let error = ProviderError::new(ErrorKind::Upstream, "boom");
    assert_eq!(backoff_of(&fixture, &error, 0, 0.0), Duration::from_secs(3));
    assert_eq!(
        backoff_of(&fixture, &limited, 0, 0.0),
        Duration::from_secs(7)
    );
}

#[test]
fn no_backoff_when_another_deployment_is_available() {
    let mut fixture = Fixture::new(RouterSettings::default(), group(weighted(&[1.0, 1.0])));
    let error = ProviderError::new(ErrorKind::Upstream, "boom");
    assert_eq!(backoff_of(&fixture, &error, 0, 0.0), Duration::ZERO);
    let now = fixture.now;
    fixture.fail("b", ErrorKind::Auth, None, now);
    assert_eq!(
        backoff_of(&fixture, &error, 0, 0.0),
        Duration::from_millis(500)
    );
}

#[test]
fn invalid_configurations_are_rejected() {
    let mut table = StatsTable::default();
    let duplicate = vec![
        deployment("a", "g", DeploymentSettings::default()),
        deployment("a", "h", DeploymentSettings::default()),
    ];
    assert!(matches!(
        Engine::new(RouterSettings::default(), duplicate, &mut table),
        Err(RouterError::InvalidConfig(_))
    ));
    for weight in [-1.0, f64::NAN, f64::INFINITY] {
        let bad = group(weighted(&[weight]));
        assert!(matches!(
            Engine::new(RouterSettings::default(), bad, &mut table),
            Err(RouterError::InvalidConfig(_))
        ));
    }
    let huge = (0..=MAX_GROUP_SIZE)
        .map(|index| deployment(&index.to_string(), "g", DeploymentSettings::default()))
        .collect();
    assert!(Engine::new(RouterSettings::default(), huge, &mut table).is_err());
}

#[test]
fn fallback_lists_prefer_the_group_entry_then_star_then_defaults() {
    let names = |names: &[&str]| {
        names
            .iter()
            .map(|name| ModelName::from(*name))
            .collect::<Vec<_>>()
    };
    let settings = RouterSettings {
        fallbacks: [
            (ModelName::from("g"), names(&["x"])),
            (ModelName::from("*"), names(&["y"])),
        ]
        .into(),
        context_window_fallbacks: [(ModelName::from("g"), names(&["big"]))].into(),
        default_fallbacks: names(&["z"]),
        ..RouterSettings::default()
    };
    let fixture = Fixture::new(settings.clone(), group(weighted(&[1.0])));
    let engine = &fixture.engine;
    assert_eq!(engine.fallbacks("g", FallbackKind::General), names(&["x"]));
    assert_eq!(
        engine.fallbacks("other", FallbackKind::General),
        names(&["y"])
    );
    assert_eq!(
        engine.fallbacks("g", FallbackKind::ContextWindow),
        names(&["big"])
    );
    assert_eq!(
        engine.fallbacks("other", FallbackKind::ContextWindow),
        names(&["y"])
    );
    assert_eq!(
        engine.fallbacks("g", FallbackKind::ContentPolicy),
        names(&["x"])
    );
    let only_defaults = RouterSettings {
        default_fallbacks: names(&["z"]),
        ..RouterSettings::default()
    };
    let fixture = Fixture::new(only_defaults, group(weighted(&[1.0])));
    assert_eq!(
        fixture.engine.fallbacks("g", FallbackKind::General),
        names(&["z"])
    );
}

#[test]
fn rebuilt_engine_keeps_the_state_of_deployments_with_the_same_id() {
    let mut fixture = Fixture::new(RouterSettings::default(), group(weighted(&[1.0, 1.0])));
    let now = fixture.now;
    fixture.fail("a", ErrorKind::Auth, None, now);
    let rebuilt = vec![
        deployment("new", "g", DeploymentSettings::default()),
        deployment("a", "g", DeploymentSettings::default()),
    ];
    let engine = Engine::new(RouterSettings::default(), rebuilt, &mut fixture.table).unwrap();
    let group = engine.group("g").unwrap();
    for draw in [0.0, 0.99] {
        let Step::Try(pick) = engine.pick(
            &fixture.table,
            group,
            &PickRequest::default(),
            now,
            &mut Draws::new(&[draw]),
        ) else {
            panic!("expected a pick");
        };
        assert_eq!(engine.deployment(pick.deployment).id.as_str(), "new");
    }
}
