//! Budget alerts from the engine reach a local webhook receiver once per
//! threshold and period, with retries on server errors.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use gateway_budget::*;
use gateway_store::{AlertError, AlertSender, AlertSenderConfig};
use gateway_types::{NanoUsd, Secret};

/// A webhook receiver on 127.0.0.1:0 that answers with `statuses` in turn
/// (then 200) and forwards every body it receives.
async fn webhook_receiver(
    statuses: Vec<u16>,
) -> (SocketAddr, mpsc::UnboundedReceiver<serde_json::Value>) {
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(listener) => listener,
        Err(error) => panic!("bind: {error}"),
    };
    let address = match listener.local_addr() {
        Ok(address) => address,
        Err(error) => panic!("local_addr: {error}"),
    };
    let (bodies, received) = mpsc::unbounded_channel();
    let statuses = Arc::new(statuses);
    let calls = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (bodies, statuses, calls) =
                (bodies.clone(), Arc::clone(&statuses), Arc::clone(&calls));
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<Incoming>| {
                    let (bodies, statuses, calls) =
                        (bodies.clone(), Arc::clone(&statuses), Arc::clone(&calls));
                    async move {
                        let body = request.into_body().collect().await?.to_bytes();
                        let _ = bodies
                            .send(serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null));
                        let call = calls.fetch_add(1, Ordering::SeqCst);
                        let status = statuses.get(call).copied().unwrap_or(200);
                        let response = hyper::Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::new()));
                        Ok::<_, hyper::Error>(response.unwrap_or_default())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (address, received)
}

fn config(address: SocketAddr) -> AlertSenderConfig {
    AlertSenderConfig {
        webhooks: vec![Secret::new(format!("http://{address}/hooks/budget"))],
        max_attempts: 3,
        initial_backoff: Duration::from_millis(5),
        request_timeout: Duration::from_secs(10),
        queue_capacity: 100,
    }
}

fn drain(received: &mut mpsc::UnboundedReceiver<serde_json::Value>) -> Vec<String> {
    let mut texts = Vec::new();
    while let Ok(body) = received.try_recv() {
        texts.push(
            body["text"]
                .as_str()
                .unwrap_or("<not slack text>")
                .to_owned(),
        );
    }
    texts
}

#[tokio::test]
async fn thresholds_reach_the_webhook_once_per_period_with_retries() {
    let (address, mut received) = webhook_receiver(vec![500]).await;
    let sender = match AlertSender::start(config(address)) {
        Ok(sender) => sender,
        Err(error) => panic!("start: {error}"),
    };
    let now = Timestamp(1_718_323_200_000);
    let mut key = KeyRecord::new(KeyHash::of_key("sk-alerted"), key_name("sk-alerted"), now);
    key.key_alias = Some("billing-bot".to_owned());
    key.policy.max_budget = Some(NanoUsd::from_usd(10.0));
    key.policy.soft_budget = Some(NanoUsd::from_usd(5.0));
    key.policy.budget_duration = Some(BudgetDuration::Days(1));
    let engine = BudgetEngine::new(EngineConfig::default(), vec![key.into()], now);
    let hash = KeyHash::of_key("sk-alerted");
    let handle = sender.handle();
    for dollars in [6.0, 5.0, 1.0, 1.0] {
        let request = ReserveRequest {
            key: &hash,
            model: "m",
            estimate: NanoUsd::ZERO,
            now,
        };
        let Ok(reservation) = engine.reserve(&request) else {
            break;
        };
        let alerts = engine.settle(
            reservation,
            Settlement {
                cost: NanoUsd::from_usd(dollars),
                tokens: 0,
            },
            now,
        );
        handle.send(alerts);
    }
    sender.shutdown().await;

    let texts = drain(&mut received);
    let soft = "Budget alert: key billing-bot has soft budget crossed. Spend: $6.000000, budget: $5.000000.";
    assert_eq!(
        texts,
        vec![
            soft.to_owned(),
            soft.to_owned(), // retried after the 500
            "Budget alert: key billing-bot has 80% of its budget used. Spend: $11.000000, budget: $10.000000."
                .to_owned(),
            "Budget alert: key billing-bot has budget exceeded. Spend: $11.000000, budget: $10.000000.".to_owned(),
        ]
    );
    assert_eq!(
        (handle.stats().delivered(), handle.stats().failed()),
        (3, 0)
    );
}

#[tokio::test]
async fn client_errors_are_not_retried_and_count_as_failures() {
    let (address, mut received) = webhook_receiver(vec![400, 200]).await;
    let sender = match AlertSender::start(config(address)) {
        Ok(sender) => sender,
        Err(error) => panic!("start: {error}"),
    };
    let alert = BudgetAlert {
        level: Level::Team,
        entity_id: "t1".to_owned(),
        display_name: "t1".to_owned(),
        kind: AlertKind::BudgetCrossed,
        spend: NanoUsd(2),
        budget: NanoUsd(1),
        at: Timestamp(0),
    };
    assert_eq!(sender.handle().send(vec![alert]), 1);
    let stats = Arc::clone(sender.handle().stats());
    sender.shutdown().await;
    assert_eq!(drain(&mut received).len(), 1);
    assert_eq!((stats.delivered(), stats.failed()), (0, 1));
}

#[test]
fn invalid_webhook_urls_are_refused_by_position() {
    let runtime = tokio::runtime::Builder::new_current_thread().build();
    let Ok(runtime) = runtime else {
        panic!("runtime")
    };
    let _guard = runtime.enter();
    let config = AlertSenderConfig {
        webhooks: vec![
            Secret::new("https://hooks.example.invalid/x"),
            Secret::new("not a url"),
        ],
        ..AlertSenderConfig::default()
    };
    assert_eq!(
        AlertSender::start(config).err(),
        Some(AlertError::InvalidUrl(1))
    );
}
