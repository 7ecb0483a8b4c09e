//! Behaviour of the budget engine through its public API.

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use gateway_budget::*;
use gateway_types::NanoUsd;

const T0: i64 = 1_718_405_316_000; // 2024-06-14T22:48:36Z, a Friday

fn now() -> Timestamp {
    Timestamp(T0)
}

fn later(seconds: u64) -> Timestamp {
    now().plus(Duration::from_secs(seconds))
}

fn key(name: &str) -> KeyRecord {
    KeyRecord::new(KeyHash::of_key(name), key_name(name), now())
}

fn usd(amount: f64) -> NanoUsd {
    NanoUsd::from_usd(amount)
}

fn engine(records: Vec<Entity>) -> BudgetEngine {
    BudgetEngine::new(EngineConfig::default(), records, now())
}

fn reserve(
    engine: &BudgetEngine,
    name: &str,
    model: &str,
    estimate: NanoUsd,
    at: Timestamp,
) -> Result<Reservation, Denied> {
    let hash = KeyHash::of_key(name);
    engine.reserve(&ReserveRequest {
        key: &hash,
        model,
        estimate,
        now: at,
    })
}

fn denial(result: Result<Reservation, Denied>) -> Denied {
    match result {
        Ok(reservation) => panic!("expected a denial, got {reservation:?}"),
        Err(denied) => denied,
    }
}

fn settle(
    engine: &BudgetEngine,
    reservation: Reservation,
    cost: NanoUsd,
    at: Timestamp,
) -> Vec<BudgetAlert> {
    engine.settle(reservation, Settlement { cost, tokens: 0 }, at)
}

fn spend(engine: &BudgetEngine, id: &EntityId) -> NanoUsd {
    engine
        .get(id)
        .map(|entity| entity.columns().spend)
        .unwrap_or(NanoUsd(-1))
}

#[test]
fn unknown_blocked_and_expired_keys_are_refused() {
    let mut blocked = key("sk-blocked");
    blocked.policy.blocked = true;
    let mut expired = key("sk-expired");
    expired.expires = Some(later(10));
    let mut team_member = key("sk-member");
    team_member.team_id = Some("t1".into());
    let mut team = TeamRecord::new("t1", now());
    team.policy.blocked = true;
    let engine = engine(vec![
        blocked.into(),
        expired.into(),
        team_member.into(),
        team.into(),
    ]);

    let unknown = denial(reserve(&engine, "sk-nobody", "m", NanoUsd::ZERO, now()));
    assert_eq!(unknown.reason, DenyReason::UnknownKey);
    let blocked = denial(reserve(&engine, "sk-blocked", "m", NanoUsd::ZERO, now()));
    assert_eq!(
        (blocked.level, blocked.reason),
        (Level::Key, DenyReason::Blocked)
    );
    assert!(reserve(&engine, "sk-expired", "m", NanoUsd::ZERO, later(9)).is_ok());
    let expired = denial(reserve(
        &engine,
        "sk-expired",
        "m",
        NanoUsd::ZERO,
        later(10),
    ));
    assert_eq!(expired.reason, DenyReason::Expired { expires: later(10) });
    let team_blocked = denial(reserve(&engine, "sk-member", "m", NanoUsd::ZERO, now()));
    assert_eq!(
        (team_blocked.level, team_blocked.entity_id.as_str()),
        (Level::Team, "t1")
    );
    assert!(engine
        .authenticate(&KeyHash::of_key("sk-member"), now())
        .is_err());
    assert!(engine
        .authenticate(&KeyHash::of_key("sk-expired"), now())
        .is_ok());
}

#[test]
fn model_access_honours_lists_wildcards_groups_and_team_models() {
    let mut restricted = key("sk-restricted");
    restricted.policy.models = vec!["gpt-4o".into(), "openai/*".into(), "beta-models".into()];
    let mut member = key("sk-member");
    member.team_id = Some("t1".into());
    member.policy.models = vec!["all-team-models".into()];
    let mut team = TeamRecord::new("t1", now());
    team.policy.models = vec!["claude".into()];
    let mut open_member = key("sk-open-member");
    open_member.team_id = Some("t1".into());
    let engine = engine(vec![
        restricted.into(),
        member.into(),
        team.into(),
        open_member.into(),
    ]);
    engine.set_access_groups(HashMap::from([(
        "llama-beta".to_owned(),
        vec!["beta-models".to_owned()],
    )]));

    let allowed =
        |name: &str, model: &str| reserve(&engine, name, model, NanoUsd::ZERO, now()).is_ok();
    assert!(allowed("sk-restricted", "gpt-4o"));
    assert!(allowed("sk-restricted", "openai/gpt-4.1"));
    assert!(allowed("sk-restricted", "llama-beta"));
    assert!(!allowed("sk-restricted", "claude"));
    assert!(allowed("sk-member", "claude"));
    assert!(!allowed("sk-member", "gpt-4o"));
    let denied = denial(reserve(
        &engine,
        "sk-open-member",
        "gpt-4o",
        NanoUsd::ZERO,
        now(),
    ));
    assert_eq!(denied.level, Level::Team);
    assert_eq!(
        denied.reason,
        DenyReason::ModelNotAllowed {
            model: "gpt-4o".into(),
            allowed: vec!["claude".into()]
        }
    );
}

#[test]
fn every_level_budget_applies_and_spend_rolls_up() {
    let mut member = key("sk-member");
    member.team_id = Some("t1".into());
    member.user_id = Some("u1".into());
    let mut team = TeamRecord::new("t1", now());
    team.organization_id = Some("o1".into());
    team.policy.max_budget = Some(usd(10.0));
    let mut org = OrgRecord::new("o1", now());
    org.policy.max_budget = Some(usd(3.0));
    let mut user = UserRecord::new("u1", now());
    // A user's personal budget does not apply to team keys (LiteLLM).
    user.policy.max_budget = Some(usd(0.5));
    let engine = engine(vec![member.into(), team.into(), org.into(), user.into()]);

    let first = reserve(&engine, "sk-member", "m", usd(2.0), now());
    let first = first.map_err(|d| d.to_string());
    let Ok(first) = first else {
        panic!("{first:?}")
    };
    assert_eq!(first.levels().len(), 4);
    let second = denial(reserve(&engine, "sk-member", "m", usd(1.5), now()));
    assert_eq!(second.level, Level::Organization);
    assert_eq!(
        second.reason,
        DenyReason::BudgetExceeded {
            spend: NanoUsd::ZERO,
            reserved: usd(2.0),
            estimate: usd(1.5),
            max_budget: usd(3.0)
        }
    );
    let _ = settle(&engine, first, usd(2.5), now());
    for id in [
        EntityId::Key(KeyHash::of_key("sk-member")),
        EntityId::Team("t1".into()),
        EntityId::Organization("o1".into()),
        EntityId::User("u1".into()),
    ] {
        assert_eq!(spend(&engine, &id), usd(2.5), "{id:?}");
        assert_eq!(engine.reserved(&id), Some(NanoUsd::ZERO));
    }
    assert!(reserve(&engine, "sk-member", "m", usd(0.5), now()).is_ok());
    assert!(reserve(&engine, "sk-member", "m", usd(0.6), now()).is_err());
}

#[test]
fn personal_user_budget_applies_to_keys_without_team() {
    let mut solo = key("sk-solo");
    solo.user_id = Some("u1".into());
    let mut user = UserRecord::new("u1", now());
    user.policy.max_budget = Some(usd(1.0));
    let engine = engine(vec![solo.into(), user.into()]);
    let denied = denial(reserve(&engine, "sk-solo", "m", usd(1.5), now()));
    assert_eq!(denied.level, Level::User);
}

#[test]
fn spend_at_budget_blocks_even_free_requests() {
    let mut capped = key("sk-capped");
    capped.policy.max_budget = Some(usd(1.0));
    let engine = engine(vec![capped.into()]);
    let reservation = reserve(&engine, "sk-capped", "m", NanoUsd::ZERO, now());
    let Ok(reservation) = reservation else {
        panic!("first request refused")
    };
    let alerts = settle(&engine, reservation, usd(1.0), now());
    assert_eq!(alerts.len(), 2);
    assert!(reserve(&engine, "sk-capped", "m", NanoUsd::ZERO, now()).is_err());
}

#[test]
fn concurrent_reservations_never_overshoot_by_more_than_one_request() {
    let cost = usd(0.01);
    let max_budget = usd(0.095); // room for 9 requests and a half
    let mut capped = key("sk-concurrent");
    capped.team_id = Some("t1".into());
    capped.policy.max_budget = Some(max_budget);
    let mut team = TeamRecord::new("t1", now());
    team.policy.max_budget = Some(max_budget);
    let engine = engine(vec![capped.into(), team.into()]);
    let barrier = Arc::new(Barrier::new(200));
    let threads: Vec<_> = (0..200)
        .map(|_| {
            let engine = engine.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                match reserve(&engine, "sk-concurrent", "m", cost, now()) {
                    Ok(reservation) => {
                        std::thread::yield_now();
                        let _ = settle(&engine, reservation, cost, now());
                        1
                    }
                    Err(_) => 0,
                }
            })
        })
        .collect();
    let accepted: u32 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    let key_spend = spend(&engine, &EntityId::Key(KeyHash::of_key("sk-concurrent")));
    let team_spend = spend(&engine, &EntityId::Team("t1".into()));
    assert_eq!(accepted, 9);
    assert!(key_spend <= max_budget + cost, "{key_spend:?}");
    assert_eq!(key_spend, team_spend);
    assert_eq!(key_spend, NanoUsd(cost.0 * 9));
}

#[test]
fn dropping_a_reservation_releases_it() {
    let mut capped = key("sk-drop");
    capped.policy.max_budget = Some(usd(1.0));
    capped.policy.max_parallel_requests = Some(1);
    let engine = engine(vec![capped.into()]);
    let id = EntityId::Key(KeyHash::of_key("sk-drop"));
    let held = reserve(&engine, "sk-drop", "m", usd(0.8), now());
    assert_eq!(engine.reserved(&id), Some(usd(0.8)));
    let parallel = denial(reserve(&engine, "sk-drop", "m", usd(0.1), now()));
    assert!(matches!(
        parallel.reason,
        DenyReason::RateLimited {
            kind: RateLimitKind::ParallelRequests,
            limit: 1,
            ..
        }
    ));
    drop(held);
    assert_eq!(engine.reserved(&id), Some(NanoUsd::ZERO));
    let again = reserve(&engine, "sk-drop", "m", usd(0.8), now());
    let Ok(again) = again else {
        panic!("not released")
    };
    engine.release(again);
    assert_eq!(spend(&engine, &id), NanoUsd::ZERO);
}

#[test]
fn rpm_limits_apply_per_key_and_team_with_retry_after() {
    let mut limited = key("sk-rpm");
    limited.policy.rpm_limit = Some(2);
    let mut member_a = key("sk-a");
    member_a.team_id = Some("t1".into());
    let mut member_b = key("sk-b");
    member_b.team_id = Some("t1".into());
    let mut team = TeamRecord::new("t1", now());
    team.policy.rpm_limit = Some(3);
    let engine = engine(vec![
        limited.into(),
        member_a.into(),
        member_b.into(),
        team.into(),
    ]);

    for _ in 0..2 {
        assert!(reserve(&engine, "sk-rpm", "m", NanoUsd::ZERO, now()).is_ok());
    }
    let denied = denial(reserve(&engine, "sk-rpm", "m", NanoUsd::ZERO, later(15)));
    assert_eq!(
        denied.reason,
        DenyReason::RateLimited {
            kind: RateLimitKind::Requests,
            limit: 2,
            current: 2,
            retry_after: Some(Duration::from_secs(45)),
            reset_at: Some(later(60)),
        }
    );
    assert!(reserve(&engine, "sk-rpm", "m", NanoUsd::ZERO, later(60)).is_ok());

    assert!(reserve(&engine, "sk-a", "m", NanoUsd::ZERO, now()).is_ok());
    assert!(reserve(&engine, "sk-b", "m", NanoUsd::ZERO, now()).is_ok());
    assert!(reserve(&engine, "sk-a", "m", NanoUsd::ZERO, now()).is_ok());
    let team_denied = denial(reserve(&engine, "sk-b", "m", NanoUsd::ZERO, now()));
    assert_eq!(team_denied.level, Level::Team);
}

#[test]
fn tpm_limits_count_settled_tokens() {
    let mut limited = key("sk-tpm");
    limited.policy.tpm_limit = Some(1_000);
    let engine = engine(vec![limited.into()]);
    let first = reserve(&engine, "sk-tpm", "m", NanoUsd::ZERO, now());
    let Ok(first) = first else { panic!("refused") };
    let _ = engine.settle(
        first,
        Settlement {
            cost: NanoUsd::ZERO,
            tokens: 1_200,
        },
        now(),
    );
    let denied = denial(reserve(&engine, "sk-tpm", "m", NanoUsd::ZERO, later(1)));
    assert!(matches!(
        denied.reason,
        DenyReason::RateLimited {
            kind: RateLimitKind::Tokens,
            current: 1_200,
            ..
        }
    ));
    assert!(reserve(&engine, "sk-tpm", "m", NanoUsd::ZERO, later(61)).is_ok());
}

#[test]
fn budgets_reset_on_schedule_and_the_reset_is_persisted() {
    let mut daily = key("sk-daily");
    daily.policy.max_budget = Some(usd(1.0));
    daily.policy.budget_duration = Some(BudgetDuration::Days(1));
    let engine = engine(vec![daily.into()]);
    let id = EntityId::Key(KeyHash::of_key("sk-daily"));
    let midnight = Timestamp(T0).day().next().start();
    let first_counters = engine.take_dirty();
    assert_eq!(first_counters.len(), 1);
    assert_eq!(first_counters[0].budget_reset_at, Some(midnight));

    let reservation = reserve(&engine, "sk-daily", "m", usd(1.0), now());
    let Ok(reservation) = reservation else {
        panic!("refused")
    };
    let _ = settle(&engine, reservation, usd(1.0), now());
    assert!(reserve(&engine, "sk-daily", "m", NanoUsd::ZERO, now()).is_err());
    assert!(reserve(
        &engine,
        "sk-daily",
        "m",
        NanoUsd::ZERO,
        Timestamp(midnight.0 - 1)
    )
    .is_err());
    assert_eq!(engine.reset_due(Timestamp(midnight.0 - 1)), 0);
    assert_eq!(engine.reset_due(midnight), 1);
    assert_eq!(spend(&engine, &id), NanoUsd::ZERO);
    let counters = engine.take_dirty();
    assert_eq!(
        counters,
        vec![SpendCounter {
            id: id.clone(),
            spend_delta: NanoUsd::ZERO,
            budget_reset_at: Some(midnight.day().next().start())
        }]
    );
    assert!(engine.take_dirty().is_empty());
    assert!(reserve(&engine, "sk-daily", "m", usd(1.0), midnight).is_ok());
}

#[test]
fn a_restart_after_the_period_ended_resets_on_first_use() {
    let mut stored = key("sk-stale");
    stored.policy.max_budget = Some(usd(1.0));
    stored.policy.budget_duration = Some(BudgetDuration::Hours(1));
    stored.spend = usd(1.0);
    stored.budget_reset_at = Some(Timestamp(T0 - 1_000));
    let engine = engine(vec![stored.into()]);
    assert!(reserve(&engine, "sk-stale", "m", usd(0.5), now()).is_ok());
}

#[test]
fn alerts_fire_once_per_threshold_and_period() {
    let mut watched = key("sk-watched");
    watched.key_alias = Some("watched".into());
    watched.team_id = Some("t1".into());
    watched.policy.max_budget = Some(usd(10.0));
    watched.policy.soft_budget = Some(usd(5.0));
    watched.policy.budget_duration = Some(BudgetDuration::Days(1));
    let team = TeamRecord::new("t1", now());
    let engine = BudgetEngine::new(
        EngineConfig {
            alert_thresholds_percent: vec![80, 90],
            ..EngineConfig::default()
        },
        vec![watched.into(), team.into()],
        now(),
    );
    let spend_at = |amount: f64, at: Timestamp| {
        let reservation = reserve(&engine, "sk-watched", "m", NanoUsd::ZERO, at);
        let Ok(reservation) = reservation else {
            panic!("refused")
        };
        let alerts = settle(&engine, reservation, usd(amount), at);
        alerts
            .into_iter()
            .map(|alert| alert.kind)
            .collect::<Vec<_>>()
    };
    assert_eq!(spend_at(4.0, now()), vec![]);
    assert_eq!(spend_at(1.0, now()), vec![AlertKind::SoftBudgetCrossed]);
    assert_eq!(
        spend_at(3.5, now()),
        vec![AlertKind::ThresholdCrossed { percent: 80 }]
    );
    assert_eq!(spend_at(0.1, now()), vec![]);
    assert_eq!(
        spend_at(1.5, now()),
        vec![
            AlertKind::ThresholdCrossed { percent: 90 },
            AlertKind::BudgetCrossed
        ]
    );
    let next_day = Timestamp(T0).day().next().start();
    assert_eq!(
        spend_at(8.0, next_day),
        vec![
            AlertKind::ThresholdCrossed { percent: 80 },
            AlertKind::SoftBudgetCrossed
        ]
    );
}

#[test]
fn alerts_name_the_entity_without_the_key() {
    let mut watched = key("sk-secret-value");
    watched.policy.max_budget = Some(usd(1.0));
    let engine = engine(vec![watched.into()]);
    let reservation = reserve(&engine, "sk-secret-value", "m", NanoUsd::ZERO, now());
    let Ok(reservation) = reservation else {
        panic!("refused")
    };
    let alerts = settle(&engine, reservation, usd(2.0), now());
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[1].display_name, "sk-...alue");
    assert!(!alerts[1].text().contains("sk-secret-value"));
}

#[test]
fn a_loaded_record_past_a_threshold_does_not_alert_again() {
    let mut loaded = key("sk-loaded");
    loaded.policy.max_budget = Some(usd(10.0));
    loaded.spend = usd(8.5);
    let engine = engine(vec![loaded.into()]);
    let reservation = reserve(&engine, "sk-loaded", "m", NanoUsd::ZERO, now());
    let Ok(reservation) = reservation else {
        panic!("refused")
    };
    assert!(settle(&engine, reservation, usd(0.1), now()).is_empty());
}

#[test]
fn admin_updates_keep_live_spend() {
    let mut record = key("sk-update");
    record.policy.max_budget = Some(usd(1.0));
    let engine = engine(vec![record.clone().into()]);
    let reservation = reserve(&engine, "sk-update", "m", NanoUsd::ZERO, now());
    let Ok(reservation) = reservation else {
        panic!("refused")
    };
    let _ = settle(&engine, reservation, usd(0.9), now());
    record.policy.max_budget = Some(usd(0.5));
    engine.upsert(record.into(), now());
    let id = EntityId::Key(KeyHash::of_key("sk-update"));
    assert_eq!(spend(&engine, &id), usd(0.9));
    assert!(reserve(&engine, "sk-update", "m", NanoUsd::ZERO, now()).is_err());
    assert!(engine.remove(&id));
    assert!(matches!(
        denial(reserve(&engine, "sk-update", "m", NanoUsd::ZERO, now())).reason,
        DenyReason::UnknownKey
    ));
}

#[test]
fn counters_carry_deltas_that_survive_a_failed_write() {
    let mut record = key("sk-delta");
    record.policy.budget_duration = Some(BudgetDuration::Days(1));
    record.spend = usd(1.0);
    record.budget_reset_at = Some(Timestamp(T0).day().next().start());
    let engine = engine(vec![record.into()]);
    let id = EntityId::Key(KeyHash::of_key("sk-delta"));
    let spend_now = |amount: f64| {
        let reservation = reserve(&engine, "sk-delta", "m", NanoUsd::ZERO, now());
        let Ok(reservation) = reservation else {
            panic!("refused")
        };
        let _ = settle(&engine, reservation, usd(amount), now());
    };
    spend_now(0.25);
    spend_now(0.5);
    let taken = engine.take_dirty();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].spend_delta, usd(0.75));
    spend_now(0.125);
    engine.return_unsaved(taken);
    let again = engine.take_dirty();
    assert_eq!(
        again[0].spend_delta,
        usd(0.875),
        "the failed delta and the new spend"
    );
    assert_eq!(spend(&engine, &id), usd(1.875));

    // Another replica wrote 2.0 more in the same period.
    let Some(mut stored) = engine.get(&id) else {
        panic!("missing")
    };
    let reset_at = stored.columns().budget_reset_at;
    stored.set_counter(usd(3.875), reset_at);
    spend_now(0.125);
    engine.refresh_counters(&[stored]);
    assert_eq!(spend(&engine, &id), usd(4.0));
}

#[test]
fn engine_and_reservations_cross_threads_and_awaits() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}
    assert_send_sync::<BudgetEngine>();
    assert_send::<Reservation>();
}

#[test]
fn spend_and_budget_reads_the_live_counters_of_each_level() {
    let mut member = key("sk-spender");
    member.team_id = Some("t-spend".into());
    member.policy.max_budget = Some(usd(10.0));
    let team = TeamRecord::new("t-spend", now());
    let engine = engine(vec![Entity::Key(member), Entity::Team(team)]);
    let key_id = EntityId::Key(KeyHash::of_key("sk-spender"));
    let team_id = EntityId::Team("t-spend".into());
    assert_eq!(
        engine.spend_and_budget(&key_id),
        Some((NanoUsd::ZERO, Some(usd(10.0))))
    );

    let reservation = reserve(&engine, "sk-spender", "gpt-4o", usd(1.0), now()).expect("admitted");
    settle(&engine, reservation, usd(2.5), later(1));

    assert_eq!(
        engine.spend_and_budget(&key_id),
        Some((usd(2.5), Some(usd(10.0))))
    );
    // The team has no budget of its own but counts the spend.
    assert_eq!(engine.spend_and_budget(&team_id), Some((usd(2.5), None)));
    assert_eq!(spend(&engine, &key_id), usd(2.5));
    assert_eq!(
        engine.spend_and_budget(&EntityId::Team("t-unknown".into())),
        None
    );
}

#[test]
fn read_sees_the_live_record_without_copying_it_out() {
    let mut team = TeamRecord::new("t-read", now());
    team.team_alias = Some("Readers".into());
    let mut member = key("sk-reader");
    member.team_id = Some("t-read".into());
    let engine = engine(vec![Entity::Key(member), Entity::Team(team)]);
    let team_id = EntityId::Team("t-read".into());
    let alias = |engine: &BudgetEngine| {
        engine.read(&team_id, |record| match record {
            Entity::Team(team) => team.team_alias.clone(),
            _ => None,
        })
    };
    assert_eq!(alias(&engine), Some(Some("Readers".to_owned())));

    // Spend settled after start-up is in the record `read` sees.
    let reservation = reserve(&engine, "sk-reader", "gpt-4o", usd(1.0), now()).expect("admitted");
    settle(&engine, reservation, usd(0.75), later(1));
    let key_id = EntityId::Key(KeyHash::of_key("sk-reader"));
    assert_eq!(
        engine.read(&key_id, |record| record.columns().spend),
        Some(usd(0.75))
    );

    // An admin rename is seen at once.
    let mut renamed = TeamRecord::new("t-read", now());
    renamed.team_alias = Some("Writers".into());
    engine.upsert(Entity::Team(renamed), later(2));
    assert_eq!(alias(&engine), Some(Some("Writers".to_owned())));
    assert_eq!(engine.read(&EntityId::Team("t-none".into()), |_| ()), None);
}

#[test]
fn authenticating_shares_the_key_record_until_an_admin_change() {
    let mut member = key("sk-shared");
    member.policy.tags = vec!["team-a".into()];
    member.policy.max_budget = Some(usd(10.0));
    let engine = engine(vec![member.clone().into()]);
    let hash = KeyHash::of_key("sk-shared");
    let (Ok(first), Ok(second)) = (
        engine.authenticate(&hash, now()),
        engine.authenticate(&hash, now()),
    ) else {
        panic!("the key authenticates")
    };
    assert!(
        Arc::ptr_eq(&first, &second),
        "one shared record, not a copy per request"
    );
    assert_eq!(first.policy.tags, ["team-a"]);

    // Spend moves the live counter, not the shared record.
    let Ok(reservation) = reserve(&engine, "sk-shared", "m", NanoUsd::ZERO, now()) else {
        panic!("the key may spend")
    };
    settle(&engine, reservation, usd(2.0), now());
    let id = EntityId::Key(hash.clone());
    assert_eq!(
        engine.spend_and_budget(&id),
        Some((usd(2.0), Some(usd(10.0))))
    );
    let Ok(after_spend) = engine.authenticate(&hash, now()) else {
        panic!("the key still authenticates")
    };
    assert!(Arc::ptr_eq(&first, &after_spend));

    // An admin change is seen by the next request; the live spend stays.
    member.policy.tags = vec!["team-b".into()];
    engine.upsert(member.into(), now());
    let Ok(updated) = engine.authenticate(&hash, now()) else {
        panic!("the updated key authenticates")
    };
    assert!(!Arc::ptr_eq(&first, &updated));
    assert_eq!(updated.policy.tags, ["team-b"]);
    assert_eq!(updated.spend, usd(2.0));
    assert_eq!(
        engine.spend_and_budget(&id),
        Some((usd(2.0), Some(usd(10.0))))
    );
}

#[test]
fn a_keys_levels_are_built_once_and_follow_admin_changes() {
    let mut member = key("sk-levels");
    member.team_id = Some("t1".into());
    member.user_id = Some("u1".into());
    let mut team = TeamRecord::new("t1", now());
    team.organization_id = Some("o1".into());
    let engine = engine(vec![
        member.into(),
        team.clone().into(),
        OrgRecord::new("o1", now()).into(),
        UserRecord::new("u1", now()).into(),
    ]);
    let levels = |engine: &BudgetEngine| {
        let Ok(reservation) = reserve(engine, "sk-levels", "m", NanoUsd::ZERO, now()) else {
            panic!("the key may spend")
        };
        reservation
    };
    let (first, second) = (levels(&engine), levels(&engine));
    assert_eq!(
        first.levels(),
        [
            EntityId::Key(KeyHash::of_key("sk-levels")),
            EntityId::Team("t1".into()),
            EntityId::Organization("o1".into()),
            EntityId::User("u1".into()),
        ]
    );
    assert!(
        std::ptr::eq(first.levels(), second.levels()),
        "two requests share one list of levels"
    );

    // Any admin change rebuilds them: the user is gone, the team moves
    // to no organization.
    assert!(engine.remove(&EntityId::User("u1".into())));
    let without_user = levels(&engine);
    assert_eq!(without_user.levels().len(), 3);
    team.organization_id = None;
    team.team_alias = Some("platform".into());
    engine.upsert(team.into(), now());
    let moved = levels(&engine);
    assert_eq!(
        moved.levels(),
        [
            EntityId::Key(KeyHash::of_key("sk-levels")),
            EntityId::Team("t1".into()),
        ]
    );
    // The labels follow the team's record too.
    let labels = moved.scope().labels();
    assert_eq!(labels.team_alias.as_deref(), Some("platform"));
    assert_eq!(labels.organization_id, None);
}

#[test]
fn a_keys_labels_come_from_its_record_and_its_teams_and_are_shared() {
    let mut member = key("sk-labels");
    member.key_alias = Some("billing".into());
    member.team_id = Some("t1".into());
    member.user_id = Some("u1".into());
    member.policy.tags = vec!["prod".into()];
    let mut team = TeamRecord::new("t1", now());
    team.organization_id = Some("o1".into());
    let engine = engine(vec![member.clone().into(), team.into()]);
    let scope = |engine: &BudgetEngine| {
        let Ok(reservation) = reserve(engine, "sk-labels", "m", NanoUsd::ZERO, now()) else {
            panic!("the key may spend")
        };
        Arc::clone(reservation.scope())
    };
    let first = scope(&engine);
    let labels = first.labels();
    assert_eq!(labels.key_alias.as_deref(), Some("billing"));
    assert_eq!(labels.user_id.as_deref(), Some("u1"));
    assert_eq!(labels.team_id.as_deref(), Some("t1"));
    // A team without an alias is labelled by its id; the key has no
    // organization of its own, so it has the team's.
    assert_eq!(labels.team_alias.as_deref(), Some("t1"));
    assert_eq!(labels.organization_id.as_deref(), Some("o1"));
    assert_eq!(&*labels.tags, ["prod".to_owned()]);
    assert!(
        Arc::ptr_eq(&first, &scope(&engine)),
        "two requests share one scope"
    );

    // The key's own organization wins over its team's.
    member.organization_id = Some("o2".into());
    engine.upsert(member.into(), now());
    let changed = scope(&engine);
    assert!(!Arc::ptr_eq(&first, &changed));
    assert_eq!(changed.labels().organization_id.as_deref(), Some("o2"));
}
