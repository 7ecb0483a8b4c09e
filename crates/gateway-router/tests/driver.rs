//! Driver tests: scripted providers under paused tokio time. Times in the
//! call log are exact because paused time only moves when every task waits.

#![allow(clippy::unwrap_used)] // A test crate: a panic is the failure report.

mod scripted;

use futures_util::StreamExt;
use gateway_providers::ErrorKind;
use gateway_router::{
    DeploymentSettings, FallbackMap, RequestOptions, RetryPolicy, Router, RouterError,
    RouterSettings,
};
use gateway_types::{ChatRequest, DeploymentId, Message, ModelName, Role};
use scripted::{error, scripted, Fixed, Item, Log, Script};
use std::time::Duration;

fn chat(model: &str) -> ChatRequest {
    ChatRequest {
        model: model.to_owned(),
        messages: vec![Message::text(Role::User, "hello there, how are you today?")].into(),
        ..ChatRequest::default()
    }
}

fn router(settings: RouterSettings, deployments: Vec<gateway_router::Deployment>) -> Router {
    Router::builder(settings, deployments)
        .rng(Fixed(0.0))
        .build()
        .unwrap()
}

fn names(names: &[&str]) -> Vec<ModelName> {
    names.iter().map(|name| ModelName::from(*name)).collect()
}

fn map(entries: &[(&str, &[&str])]) -> FallbackMap {
    entries
        .iter()
        .map(|(group, list)| (ModelName::from(*group), names(list)))
        .collect()
}

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

fn plain() -> DeploymentSettings {
    DeploymentSettings::default()
}

fn options() -> RequestOptions {
    RequestOptions::default()
}

#[tokio::test(start_paused = true)]
async fn retries_back_off_exponentially_then_surface_the_last_error() {
    let log = Log::new();
    let script = vec![Script::Fail(error(ErrorKind::Upstream)); 3];
    let router = router(
        RouterSettings::default(),
        vec![scripted(&log, "a", "g", plain(), script)],
    );
    let failure = router.chat(&chat("g"), &options()).await.unwrap_err();
    assert_eq!(log.calls(), [("a", 0.0), ("a", 0.5), ("a", 1.5)]);
    assert!(matches!(failure.error, RouterError::Provider(ref e) if e.kind == ErrorKind::Upstream));
    assert_eq!(
        (
            failure.report.attempts,
            failure.report.retries,
            failure.report.errors.len()
        ),
        (3, 2, 3)
    );
    assert_eq!(failure.report.fallbacks, 0);
}

#[tokio::test(start_paused = true)]
async fn upstream_retry_after_is_honoured_before_retrying() {
    let log = Log::new();
    let limited = error(ErrorKind::RateLimited).with_retry_after(Some(secs(3)));
    let router = router(
        RouterSettings::default(),
        vec![scripted(
            &log,
            "a",
            "g",
            plain(),
            vec![Script::Fail(limited)],
        )],
    );
    let routed = router.chat(&chat("g"), &options()).await.unwrap();
    assert_eq!(log.calls(), [("a", 0.0), ("a", 3.0)]);
    assert_eq!((routed.report.attempts, routed.report.retries), (2, 1));
    assert_eq!(routed.value.id, "a");
}

#[tokio::test(start_paused = true)]
async fn a_lone_deployment_answering_429_is_retried_after_backoff_not_cooled() {
    let log = Log::new();
    let script = vec![Script::Fail(error(ErrorKind::RateLimited)); 2];
    let router = router(
        RouterSettings::default(),
        vec![scripted(&log, "a", "g", plain(), script)],
    );
    let routed = router.chat(&chat("g"), &options()).await.unwrap();
    assert_eq!(log.calls(), [("a", 0.0), ("a", 0.5), ("a", 1.5)]);
    assert_eq!(routed.report.retries, 2);
}

#[tokio::test(start_paused = true)]
async fn retry_after_setting_is_the_minimum_wait() {
    let log = Log::new();
    let settings = RouterSettings {
        retry_after: secs(4),
        ..RouterSettings::default()
    };
    let router = router(
        settings,
        vec![scripted(
            &log,
            "a",
            "g",
            plain(),
            vec![Script::Fail(error(ErrorKind::Timeout))],
        )],
    );
    router.chat(&chat("g"), &options()).await.unwrap();
    assert_eq!(log.calls(), [("a", 0.0), ("a", 4.0)]);
}

#[tokio::test(start_paused = true)]
async fn bad_requests_and_not_found_are_never_retried() {
    for kind in [
        ErrorKind::BadRequest,
        ErrorKind::NotFound,
        ErrorKind::ContextWindowExceeded,
    ] {
        let log = Log::new();
        let settings = RouterSettings {
            retry_policy: RetryPolicy {
                bad_request: Some(5),
                ..RetryPolicy::default()
            },
            ..RouterSettings::default()
        };
        let router = router(
            settings,
            vec![scripted(
                &log,
                "a",
                "g",
                plain(),
                vec![Script::Fail(error(kind))],
            )],
        );
        let failure = router.chat(&chat("g"), &options()).await.unwrap_err();
        assert_eq!(log.names(), ["a"], "{kind}");
        assert_eq!(failure.report.retries, 0);
    }
}

#[tokio::test(start_paused = true)]
async fn retry_counts_follow_deployment_then_policy_then_request_then_router() {
    // (deployment num_retries, policy for 5xx, request num_retries, expected calls)
    let cases = [
        (Some(0), Some(3), Some(3), 1),
        (None, Some(1), Some(3), 2),
        (None, None, Some(3), 4),
        (None, None, None, 3),
    ];
    for (deployment, policy, request, expected) in cases {
        let log = Log::new();
        let settings = RouterSettings {
            retry_policy: RetryPolicy {
                internal_server_error: policy,
                ..RetryPolicy::default()
            },
            disable_cooldowns: true,
            ..RouterSettings::default()
        };
        let deployment_settings = DeploymentSettings {
            num_retries: deployment,
            ..DeploymentSettings::default()
        };
        let script = vec![Script::Fail(error(ErrorKind::Overloaded)); 10];
        let router = router(
            settings,
            vec![scripted(&log, "a", "g", deployment_settings, script)],
        );
        let options = RequestOptions {
            num_retries: request,
            ..RequestOptions::default()
        };
        router.chat(&chat("g"), &options).await.unwrap_err();
        assert_eq!(
            log.calls().len(),
            expected,
            "{deployment:?} {policy:?} {request:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_goes_to_another_healthy_deployment_without_waiting() {
    let log = Log::new();
    let deployments = vec![
        scripted(
            &log,
            "a",
            "g",
            plain(),
            vec![Script::Fail(error(ErrorKind::Upstream))],
        ),
        scripted(&log, "b", "g", plain(), vec![]),
    ];
    let router = router(RouterSettings::default(), deployments);
    let routed = router.chat(&chat("g"), &options()).await.unwrap();
    assert_eq!(log.calls(), [("a", 0.0), ("b", 0.0)]);
    assert_eq!(routed.report.deployment, Some(DeploymentId::from("b")));
    assert_eq!(routed.report.retries, 1);
}

#[tokio::test(start_paused = true)]
async fn auth_errors_retry_only_on_another_deployment() {
    let log = Log::new();
    let router1 = router(
        RouterSettings::default(),
        vec![scripted(
            &log,
            "a",
            "g",
            plain(),
            vec![Script::Fail(error(ErrorKind::Auth))],
        )],
    );
    router1.chat(&chat("g"), &options()).await.unwrap_err();
    assert_eq!(log.names(), ["a"]);

    let log = Log::new();
    let deployments = vec![
        scripted(
            &log,
            "a",
            "g",
            plain(),
            vec![Script::Fail(error(ErrorKind::Auth))],
        ),
        scripted(&log, "b", "g", plain(), vec![]),
    ];
    router(RouterSettings::default(), deployments)
        .chat(&chat("g"), &options())
        .await
        .unwrap();
    assert_eq!(log.names(), ["a", "b"]);
}

fn failing_group(
    log: &Log,
    name: &'static str,
    group: &str,
    kind: ErrorKind,
) -> gateway_router::Deployment {
    scripted(
        log,
        name,
        group,
        plain(),
        vec![Script::Fail(error(kind)); 10],
    )
}

fn no_retries() -> RouterSettings {
    RouterSettings {
        num_retries: 0,
        ..RouterSettings::default()
    }
}

#[tokio::test(start_paused = true)]
async fn fallbacks_are_tried_in_order_each_with_its_own_retries() {
    let log = Log::new();
    let settings = RouterSettings {
        num_retries: 1,
        fallbacks: map(&[("g", &["f1", "f2"])]),
        retry_after: Duration::ZERO,
        ..RouterSettings::default()
    };
    let deployments = vec![
        failing_group(&log, "a", "g", ErrorKind::Upstream),
        failing_group(&log, "b", "f1", ErrorKind::Connect),
        scripted(&log, "c", "f2", plain(), vec![]),
    ];
    let routed = router(settings, deployments)
        .chat(&chat("g"), &options())
        .await
        .unwrap();
    assert_eq!(log.names(), ["a", "a", "b", "b", "c"]);
    let report = routed.report;
    assert_eq!(
        (report.attempts, report.retries, report.fallbacks),
        (5, 2, 2)
    );
    assert_eq!(report.requested_group, Some(ModelName::from("g")));
    assert_eq!(report.model_group, Some(ModelName::from("f2")));
    assert_eq!(report.errors.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn fallback_chains_follow_each_groups_own_fallbacks_without_loops() {
    let log = Log::new();
    let settings = RouterSettings {
        fallbacks: map(&[("g", &["f1", "f3"]), ("f1", &["f2", "g"]), ("f2", &["f1"])]),
        ..no_retries()
    };
    let deployments = vec![
        failing_group(&log, "a", "g", ErrorKind::Upstream),
        failing_group(&log, "b", "f1", ErrorKind::Upstream),
        failing_group(&log, "c", "f2", ErrorKind::Upstream),
        failing_group(&log, "d", "f3", ErrorKind::Timeout),
    ];
    let failure = router(settings, deployments)
        .chat(&chat("g"), &options())
        .await
        .unwrap_err();
    // Depth first: g, then f1 and its own fallback f2, then g's next, f3.
    assert_eq!(log.names(), ["a", "b", "c", "d"]);
    assert_eq!(failure.report.fallbacks, 3);
    assert!(matches!(failure.error, RouterError::Provider(ref e) if e.kind == ErrorKind::Timeout));
}

#[tokio::test(start_paused = true)]
async fn max_fallbacks_bounds_a_long_chain() {
    let log = Log::new();
    let settings = RouterSettings {
        fallbacks: map(&[
            ("g0", &["g1"]),
            ("g1", &["g2"]),
            ("g2", &["g3"]),
            ("g3", &["g4"]),
        ]),
        max_fallbacks: 2,
        ..no_retries()
    };
    let groups = ["g0", "g1", "g2", "g3", "g4"];
    let labels = ["a", "b", "c", "d", "e"];
    let deployments = groups
        .iter()
        .zip(labels)
        .map(|(group, name)| failing_group(&log, name, group, ErrorKind::Upstream))
        .collect();
    let failure = router(settings, deployments)
        .chat(&chat("g0"), &options())
        .await
        .unwrap_err();
    assert_eq!(log.names(), ["a", "b", "c"]);
    assert_eq!(failure.report.fallbacks, 2);
}

#[tokio::test(start_paused = true)]
async fn context_window_and_content_policy_failures_use_their_own_fallbacks() {
    for (kind, expected) in [
        (ErrorKind::ContextWindowExceeded, "big"),
        (ErrorKind::ContentFiltered, "safe"),
        (ErrorKind::Upstream, "general"),
    ] {
        let log = Log::new();
        let settings = RouterSettings {
            fallbacks: map(&[("g", &["general"])]),
            context_window_fallbacks: map(&[("g", &["big"])]),
            content_policy_fallbacks: map(&[("*", &["safe"])]),
            ..no_retries()
        };
        let deployments = vec![
            failing_group(&log, "a", "g", kind),
            scripted(&log, "general", "general", plain(), vec![]),
            scripted(&log, "big", "big", plain(), vec![]),
            scripted(&log, "safe", "safe", plain(), vec![]),
        ];
        let routed = router(settings, deployments)
            .chat(&chat("g"), &options())
            .await
            .unwrap();
        assert_eq!(log.names(), ["a", expected], "{kind}");
        assert_eq!(routed.report.fallbacks, 1);
    }
}

#[tokio::test(start_paused = true)]
async fn default_fallbacks_serve_groups_without_entries_and_unknown_models() {
    let log = Log::new();
    let settings = RouterSettings {
        default_fallbacks: names(&["spare"]),
        ..no_retries()
    };
    let deployments = vec![
        failing_group(&log, "a", "g", ErrorKind::Upstream),
        scripted(&log, "spare", "spare", plain(), vec![]),
    ];
    let router = router(settings, deployments);
    router.chat(&chat("g"), &options()).await.unwrap();
    let routed = router.chat(&chat("nonexistent"), &options()).await.unwrap();
    assert_eq!(log.names(), ["a", "spare", "spare"]);
    assert_eq!(routed.report.model_group, Some(ModelName::from("spare")));
    assert_eq!(routed.report.requested_group, None);

    let disabled = RequestOptions {
        disable_fallbacks: true,
        ..RequestOptions::default()
    };
    let failure = router
        .chat(&chat("nonexistent"), &disabled)
        .await
        .unwrap_err();
    assert_eq!(
        failure.error,
        RouterError::UnknownModel("nonexistent".to_owned())
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_can_bring_its_own_fallbacks_or_turn_them_off() {
    let log = Log::new();
    let settings = RouterSettings {
        fallbacks: map(&[("g", &["configured"])]),
        ..no_retries()
    };
    let deployments = vec![
        failing_group(&log, "a", "g", ErrorKind::Upstream),
        scripted(&log, "configured", "configured", plain(), vec![]),
        scripted(&log, "own", "own", plain(), vec![]),
    ];
    let router = router(settings, deployments);
    let own = RequestOptions {
        fallbacks: Some(names(&["own"])),
        ..RequestOptions::default()
    };
    router.chat(&chat("g"), &own).await.unwrap();
    assert_eq!(log.names(), ["a", "own"]);
    let off = RequestOptions {
        disable_fallbacks: true,
        ..RequestOptions::default()
    };
    let failure = router.chat(&chat("g"), &off).await.unwrap_err();
    assert_eq!(log.names(), ["a", "own", "a"]);
    assert_eq!(failure.report.fallbacks, 0);
}

#[tokio::test(start_paused = true)]
async fn a_higher_order_tier_is_tried_after_the_lowest_fails() {
    let log = Log::new();
    let settings = RouterSettings {
        fallbacks: map(&[("g", &["other"])]),
        ..no_retries()
    };
    let tier = |order| DeploymentSettings {
        order,
        ..DeploymentSettings::default()
    };
    let deployments = vec![
        scripted(
            &log,
            "primary",
            "g",
            tier(0),
            vec![Script::Fail(error(ErrorKind::Upstream))],
        ),
        scripted(&log, "secondary", "g", tier(1), vec![]),
        scripted(&log, "other", "other", plain(), vec![]),
    ];
    let routed = router(settings, deployments)
        .chat(&chat("g"), &options())
        .await
        .unwrap();
    assert_eq!(log.names(), ["primary", "secondary"]);
    assert_eq!(routed.report.model_group, Some(ModelName::from("g")));
    assert_eq!(routed.report.fallbacks, 1);
}

#[tokio::test(start_paused = true)]
async fn pre_call_checks_skip_small_deployments_and_go_to_the_context_fallback() {
    let log = Log::new();
    let small = DeploymentSettings {
        max_input_tokens: Some(8),
        ..DeploymentSettings::default()
    };
    let settings = RouterSettings {
        enable_pre_call_checks: true,
        context_window_fallbacks: map(&[("g", &["big"])]),
        ..RouterSettings::default()
    };
    let deployments = vec![
        scripted(&log, "small", "g", small.clone(), vec![]),
        scripted(&log, "big", "big", plain(), vec![]),
    ];
    let routed = router(settings, deployments)
        .chat(&chat("g"), &options())
        .await
        .unwrap();
    assert_eq!(log.names(), ["big"]);
    // "hello there, how are you today?" is 8 tokens in cl100k, plus 3 + 3 of chat format.
    assert_eq!(routed.report.input_tokens, Some(14));

    let log = Log::new();
    let settings = RouterSettings {
        enable_pre_call_checks: true,
        ..RouterSettings::default()
    };
    let router = router(settings, vec![scripted(&log, "small", "g", small, vec![])]);
    let failure = router.chat(&chat("g"), &options()).await.unwrap_err();
    assert!(log.names().is_empty());
    assert_eq!(
        failure.error,
        RouterError::ContextWindowExceeded {
            group: ModelName::from("g"),
            input_tokens: 14,
            max_input_tokens: 8,
        }
    );
}

async fn collect(stream: gateway_providers::ChunkStream) -> (usize, Option<ErrorKind>) {
    let items: Vec<_> = stream.collect().await;
    let chunks = items.iter().filter(|item| item.is_ok()).count();
    let error = items
        .iter()
        .find_map(|item| item.as_ref().err().map(|error| error.kind));
    (chunks, error)
}

#[tokio::test(start_paused = true)]
async fn stream_failures_before_the_first_chunk_retry() {
    let log = Log::new();
    let settings = RouterSettings {
        stream_timeout: Some(secs(2)),
        disable_cooldowns: true,
        num_retries: 3,
        retry_after: secs(1),
        ..RouterSettings::default()
    };
    let script = vec![
        Script::Fail(error(ErrorKind::Overloaded)),
        Script::Stream(vec![(
            Duration::ZERO,
            Item::Error(error(ErrorKind::Connect)),
        )]),
        Script::Stream(vec![(secs(5), Item::Chunk)]),
        Script::Stream(vec![
            (Duration::ZERO, Item::Chunk),
            (Duration::ZERO, Item::Chunk),
        ]),
    ];
    let router = router(settings, vec![scripted(&log, "a", "g", plain(), script)]);
    let routed = router.chat_stream(&chat("g"), &options()).await.unwrap();
    // Open error at 0; backoff max(0.5 s, 1 s floor): first-item error at 1; backoff
    // max(1 s, 1 s): first-chunk timeout from 2 to 4; backoff 2 s: answer at 6.
    assert_eq!(
        log.calls(),
        [("a", 0.0), ("a", 1.0), ("a", 2.0), ("a", 6.0)]
    );
    let kinds: Vec<ErrorKind> = routed
        .report
        .errors
        .iter()
        .map(|attempt| attempt.error.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::Overloaded,
            ErrorKind::Connect,
            ErrorKind::Timeout
        ]
    );
    assert_eq!(collect(routed.value).await, (2, None));
}

#[tokio::test(start_paused = true)]
async fn stream_failure_after_the_first_chunk_is_the_streams_last_item() {
    let log = Log::new();
    let settings = RouterSettings {
        stream_timeout: Some(secs(1)),
        ..RouterSettings::default()
    };
    let script = vec![Script::Stream(vec![
        (Duration::from_millis(500), Item::Chunk),
        (secs(10), Item::Chunk),
        (Duration::ZERO, Item::Error(error(ErrorKind::Connect))),
    ])];
    let router = router(settings, vec![scripted(&log, "a", "g", plain(), script)]);
    let routed = router.chat_stream(&chat("g"), &options()).await.unwrap();
    assert_eq!(routed.report.attempts, 1);
    // The stream timeout bounds only the first chunk: the slow second one still arrives.
    assert_eq!(collect(routed.value).await, (2, Some(ErrorKind::Connect)));
    assert_eq!(log.names(), ["a"]);
}

#[tokio::test(start_paused = true)]
async fn a_committed_stream_stays_in_flight_until_it_ends_and_counts_its_tokens() {
    let log = Log::new();
    let limited = DeploymentSettings {
        tpm: Some(1_000_000),
        ..DeploymentSettings::default()
    };
    let script = vec![Script::Stream(vec![
        (Duration::ZERO, Item::Chunk),
        (Duration::ZERO, Item::Usage(42)),
    ])];
    let router = router(
        RouterSettings::default(),
        vec![scripted(&log, "a", "g", limited, script)],
    );
    let stats = |router: &Router| {
        let mut found = None;
        router
            .state()
            .update(&mut |table| found = table.by_id(&DeploymentId::from("a")).cloned());
        found.unwrap()
    };
    let routed = router.chat_stream(&chat("g"), &options()).await.unwrap();
    assert_eq!(stats(&router).in_flight, 1);
    assert!(stats(&router).time_to_first_token.is_some());
    collect(routed.value).await;
    let after = stats(&router);
    assert_eq!(
        (after.in_flight, after.usage.tokens, after.usage.count),
        (0, 42, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_waits_for_rate_limit_capacity_within_its_timeout() {
    let log = Log::new();
    let one_per_minute = DeploymentSettings {
        rpm: Some(1),
        ..DeploymentSettings::default()
    };
    let settings = RouterSettings {
        timeout: Some(secs(120)),
        ..RouterSettings::default()
    };
    let router = router(
        settings,
        vec![scripted(&log, "a", "g", one_per_minute.clone(), vec![])],
    );
    router.chat(&chat("g"), &options()).await.unwrap();
    let routed = router.chat(&chat("g"), &options()).await.unwrap();
    assert_eq!(log.calls(), [("a", 0.0), ("a", 60.0)]);
    assert_eq!(routed.report.queued, secs(60));

    // A request whose timeout ends sooner fails at once, saying when to retry.
    let short = RequestOptions {
        timeout: Some(secs(10)),
        ..RequestOptions::default()
    };
    let failure = router.chat(&chat("g"), &short).await.unwrap_err();
    assert_eq!(
        failure.error,
        RouterError::RateLimited {
            group: ModelName::from("g"),
            retry_after: secs(60),
        }
    );
    assert_eq!(log.elapsed(), 60.0);
}

#[tokio::test(start_paused = true)]
async fn all_cooling_waits_when_it_fits_the_timeout_and_fails_fast_otherwise() {
    let log = Log::new();
    let settings = RouterSettings {
        timeout: Some(secs(30)),
        ..RouterSettings::default()
    };
    let script = vec![Script::Fail(error(ErrorKind::NotFound))];
    let router = router(settings, vec![scripted(&log, "a", "g", plain(), script)]);
    router.chat(&chat("g"), &options()).await.unwrap_err();
    // Cooling for the default 5 s: a 2 s request fails at once.
    let short = RequestOptions {
        timeout: Some(secs(2)),
        ..RequestOptions::default()
    };
    let failure = router.chat(&chat("g"), &short).await.unwrap_err();
    assert_eq!(
        failure.error,
        RouterError::NoHealthyDeployment {
            group: ModelName::from("g"),
            retry_after: secs(5),
        }
    );
    assert_eq!(log.elapsed(), 0.0);
    // The router's 30 s timeout leaves room to wait for the recovery.
    let routed = router.chat(&chat("g"), &options()).await.unwrap();
    assert_eq!(log.calls(), [("a", 0.0), ("a", 5.0)]);
    assert_eq!(routed.report.queued, secs(5));
}

#[tokio::test(start_paused = true)]
async fn all_cooling_falls_back_at_once_when_a_fallback_exists() {
    let log = Log::new();
    let settings = RouterSettings {
        timeout: Some(secs(30)),
        fallbacks: map(&[("g", &["spare"])]),
        ..RouterSettings::default()
    };
    let deployments = vec![
        scripted(
            &log,
            "a",
            "g",
            plain(),
            vec![Script::Fail(error(ErrorKind::Auth)); 2],
        ),
        scripted(&log, "spare", "spare", plain(), vec![]),
    ];
    let router = router(settings, deployments);
    router.chat(&chat("g"), &options()).await.unwrap();
    router.chat(&chat("g"), &options()).await.unwrap();
    assert_eq!(log.calls(), [("a", 0.0), ("spare", 0.0), ("spare", 0.0)]);
}

#[tokio::test(start_paused = true)]
async fn a_deployment_timeout_fails_the_attempt_and_retries() {
    let log = Log::new();
    let slow = DeploymentSettings {
        timeout: Some(secs(1)),
        ..DeploymentSettings::default()
    };
    let router = router(
        RouterSettings::default(),
        vec![scripted(&log, "a", "g", slow, vec![Script::Hang])],
    );
    let routed = router.chat(&chat("g"), &options()).await.unwrap();
    assert_eq!(log.calls(), [("a", 0.0), ("a", 1.5)]);
    assert_eq!(routed.report.errors[0].error.kind, ErrorKind::Timeout);
}

#[tokio::test(start_paused = true)]
async fn the_overall_timeout_ends_the_request_whatever_is_left() {
    let log = Log::new();
    let settings = RouterSettings {
        timeout: Some(secs(2)),
        fallbacks: map(&[("g", &["spare"])]),
        ..RouterSettings::default()
    };
    let deployments = vec![
        scripted(&log, "a", "g", plain(), vec![Script::Hang]),
        scripted(&log, "spare", "spare", plain(), vec![]),
    ];
    let router = router(settings, deployments);
    let failure = router.chat(&chat("g"), &options()).await.unwrap_err();
    assert_eq!(failure.error, RouterError::Timeout(secs(2)));
    assert_eq!(log.elapsed(), 2.0);
    assert_eq!(log.names(), ["a"]);
    // The client's timeout is not the deployment's fault: no failure counted.
    let mut in_flight = None;
    router.state().update(&mut |table| {
        in_flight = table
            .by_id(&DeploymentId::from("a"))
            .map(|stats| stats.in_flight)
    });
    assert_eq!(in_flight, Some(0));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_call_ends_it_in_flight() {
    let log = Log::new();
    let router = router(
        RouterSettings::default(),
        vec![scripted(&log, "a", "g", plain(), vec![Script::Hang])],
    );
    let request = chat("g");
    let options = options();
    let call = router.chat(&request, &options);
    let outcome = tokio::time::timeout(secs(1), call).await;
    assert!(outcome.is_err());
    let mut stats = None;
    router
        .state()
        .update(&mut |table| stats = table.by_id(&DeploymentId::from("a")).cloned());
    let stats = stats.unwrap();
    assert_eq!((stats.in_flight, stats.cooldown_until), (0, None));
}

#[tokio::test(start_paused = true)]
async fn a_rebuilt_router_keeps_cooldowns_of_unchanged_deployments() {
    let log = Log::new();
    let first = router(
        RouterSettings::default(),
        vec![
            scripted(
                &log,
                "a",
                "g",
                plain(),
                vec![Script::Fail(error(ErrorKind::Auth))],
            ),
            scripted(&log, "b", "g", plain(), vec![]),
        ],
    );
    first.chat(&chat("g"), &options()).await.unwrap();
    let rebuilt = Router::new_with_state(
        RouterSettings::default(),
        vec![
            scripted(&log, "a", "g", plain(), vec![]),
            scripted(&log, "c", "g", plain(), vec![]),
        ],
        &first,
    )
    .unwrap();
    for _ in 0..3 {
        let routed = rebuilt.chat(&chat("g"), &options()).await.unwrap();
        assert_eq!(routed.report.deployment, Some(DeploymentId::from("c")));
    }
}

#[tokio::test(start_paused = true)]
async fn embeddings_are_routed_with_fallbacks_too() {
    let log = Log::new();
    let settings = RouterSettings {
        fallbacks: map(&[("e", &["e2"])]),
        ..no_retries()
    };
    let deployments = vec![
        scripted(
            &log,
            "a",
            "e",
            plain(),
            vec![Script::Fail(error(ErrorKind::Unsupported))],
        ),
        scripted(&log, "b", "e2", plain(), vec![]),
    ];
    let request = gateway_types::EmbeddingsRequest {
        model: "e".to_owned(),
        input: serde_json::json!("hello"),
        encoding_format: None,
        dimensions: None,
        user: None,
        extra: Default::default(),
    };
    let routed = router(settings, deployments)
        .embeddings(&request, &options())
        .await
        .unwrap();
    assert_eq!(log.names(), ["a", "b"]);
    assert_eq!(routed.report.fallbacks, 1);
}

#[tokio::test(start_paused = true)]
async fn a_chat_records_latency_and_usage_tokens() {
    let log = Log::new();
    let script = vec![Script::Answer(Duration::from_millis(1_500))];
    let router = router(
        RouterSettings::default(),
        vec![scripted(&log, "a", "g", plain(), script)],
    );
    router.chat(&chat("g"), &options()).await.unwrap();
    let mut stats = None;
    router
        .state()
        .update(&mut |table| stats = table.by_id(&DeploymentId::from("a")).cloned());
    let stats = stats.unwrap();
    assert_eq!(stats.latency, Some(1.5));
    assert_eq!(
        (stats.in_flight, stats.usage.count, stats.usage.tokens),
        (0, 1, 15)
    );
}

#[tokio::test(start_paused = true)]
async fn a_token_count_from_the_caller_skips_counting() {
    let log = Log::new();
    let settings = RouterSettings {
        enable_pre_call_checks: true,
        ..RouterSettings::default()
    };
    let small = DeploymentSettings {
        max_input_tokens: Some(100),
        ..DeploymentSettings::default()
    };
    let router = router(settings, vec![scripted(&log, "a", "g", small, vec![])]);
    let counted = RequestOptions {
        input_tokens: Some(101),
        ..RequestOptions::default()
    };
    let failure = router.chat(&chat("g"), &counted).await.unwrap_err();
    assert!(matches!(
        failure.error,
        RouterError::ContextWindowExceeded {
            input_tokens: 101,
            ..
        }
    ));
    assert!(log.names().is_empty());
}

fn stats_of(router: &Router, id: &str) -> gateway_router::DeploymentStats {
    let mut found = None;
    router
        .state()
        .update(&mut |table| found = table.by_id(&DeploymentId::from(id)).cloned());
    found.unwrap()
}

#[tokio::test(start_paused = true)]
async fn route_retries_and_falls_back_with_a_custom_call() {
    let log = Log::new();
    let settings = RouterSettings {
        fallbacks: map(&[("g", &["f"])]),
        num_retries: 1,
        ..RouterSettings::default()
    };
    let router = router(
        settings,
        vec![
            scripted(&log, "a", "g", plain(), Vec::new()),
            scripted(&log, "b", "f", plain(), Vec::new()),
        ],
    );
    let options = options();
    // The custom call fails on `a` (twice: first try and retry) and answers on `b`.
    let routed = router
        .route("g", &options, |deployment| async move {
            if deployment.id.as_str() == "a" {
                Err(error(ErrorKind::Upstream))
            } else {
                Ok(deployment.id.as_str().to_owned())
            }
        })
        .await
        .unwrap();
    let (value, guard) = routed.value;
    assert_eq!(value, "b");
    assert_eq!(
        (
            routed.report.attempts,
            routed.report.retries,
            routed.report.fallbacks
        ),
        (3, 1, 1)
    );
    assert_eq!(
        routed.report.deployment.as_ref().map(|d| d.as_str()),
        Some("b")
    );
    assert_eq!(stats_of(&router, "b").in_flight, 1, "held by the guard");
    guard.finish(7);
    let after = stats_of(&router, "b");
    assert_eq!((after.in_flight, after.usage.tokens), (0, 7));
}

#[tokio::test(start_paused = true)]
async fn route_stream_records_first_token_and_a_failed_guard_counts_as_a_failure() {
    let log = Log::new();
    let settings = RouterSettings {
        allowed_fails: 0,
        ..RouterSettings::default()
    };
    let router = router(
        settings,
        vec![scripted(&log, "a", "g", plain(), Vec::new())],
    );
    let options = options();
    let routed = router
        .route_stream("g", &options, |_deployment| async { Ok(()) })
        .await
        .unwrap();
    assert!(stats_of(&router, "a").time_to_first_token.is_some());
    let ((), guard) = routed.value;
    guard.fail(&error(ErrorKind::Upstream), 3);
    let after = stats_of(&router, "a");
    assert_eq!(after.in_flight, 0);
    assert!(
        after.cooldown_until.is_some(),
        "a broken stream cools the deployment"
    );
}

#[tokio::test(start_paused = true)]
async fn route_surfaces_an_unknown_model_without_calling() {
    let log = Log::new();
    let router = router(
        RouterSettings::default(),
        vec![scripted(&log, "a", "g", plain(), Vec::new())],
    );
    let options = options();
    let failure = router
        .route("nope", &options, |_deployment| async { Ok(()) })
        .await
        .unwrap_err();
    assert!(matches!(failure.error, RouterError::UnknownModel(_)));
    assert_eq!(failure.report.attempts, 0);
}
