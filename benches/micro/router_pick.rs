//! How long the engine takes to pick a deployment from a group of ten.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use gateway_providers::mock::MockProvider;
use gateway_router::{
    Deployment, DeploymentSettings, Engine, FastRng, PickRequest, RouterSettings, RoutingStrategy,
    StatsTable, Step,
};
use gateway_types::{DeploymentId, ModelName};
use std::sync::Arc;
use std::time::Instant;

const GROUP_SIZE: usize = 10;

fn engine(strategy: RoutingStrategy) -> (Engine, StatsTable) {
    let deployments = (0..GROUP_SIZE)
        .map(|index| Deployment {
            id: DeploymentId::from(format!("deployment-{index}")),
            model_name: ModelName::from("group"),
            provider: Arc::new(MockProvider::new("model")),
            settings: DeploymentSettings {
                weight: 1.0 + index as f64,
                rpm: Some(1_000_000),
                ..DeploymentSettings::default()
            },
        })
        .collect();
    let settings = RouterSettings {
        strategy,
        ..RouterSettings::default()
    };
    let mut table = StatsTable::default();
    let Ok(engine) = Engine::new(settings, deployments, &mut table) else {
        panic!("the benchmark's configuration is valid");
    };
    (engine, table)
}

fn pick(c: &mut Criterion) {
    let strategies = [
        ("simple_shuffle", RoutingStrategy::SimpleShuffle),
        ("least_busy", RoutingStrategy::LeastBusy),
        ("latency_based", RoutingStrategy::LatencyBased),
        ("usage_based", RoutingStrategy::UsageBased),
        ("cost_based", RoutingStrategy::CostBased),
    ];
    for (name, strategy) in strategies {
        let (engine, mut table) = engine(strategy);
        let Some(group) = engine.group("group") else {
            panic!("the group exists");
        };
        let mut rng = FastRng::with_seed(7);
        let now = Instant::now();
        c.bench_function(&format!("pick/{name}/10"), |b| {
            b.iter(|| {
                engine.pick(
                    black_box(&table),
                    group,
                    &PickRequest::default(),
                    now,
                    &mut rng,
                )
            })
        });
        // A whole step as the driver takes it: pick, begin, end.
        c.bench_function(&format!("next_step_and_end/{name}/10"), |b| {
            b.iter(|| {
                if let Step::Try(pick) =
                    engine.next_step(&mut table, group, &PickRequest::default(), now, &mut rng)
                {
                    engine.end(&mut table, pick.deployment, 0, now);
                }
            })
        });
    }
}

criterion_group!(benches, pick);
criterion_main!(benches);
