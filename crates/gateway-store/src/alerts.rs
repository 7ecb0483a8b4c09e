//! Budget-alert delivery to Slack-compatible webhooks, off the request path.
//!
//! The engine's `settle` returns [`BudgetAlert`]s; the server passes them to
//! [`AlertHandle::send`], which never blocks. One background task posts each
//! alert's `{"text": ...}` body to every configured webhook, retrying
//! connection errors, 429 and 5xx answers with exponential backoff.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use gateway_budget::BudgetAlert;
use gateway_types::Secret;

/// Alert delivery settings.
#[derive(Clone, Debug)]
pub struct AlertSenderConfig {
    /// Webhook URLs (`http` or `https`); secrets, never logged.
    pub webhooks: Vec<Secret>,
    /// Attempts per alert and webhook. Default 3.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles after each. Default 1 s.
    pub initial_backoff: Duration,
    /// Time allowed for one request. Default 10 s.
    pub request_timeout: Duration,
    /// Alerts waiting for delivery before new ones are dropped. Default 1,000.
    pub queue_capacity: usize,
}

/// A webhook configuration the sender refuses.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlertError {
    /// The URL at this position of `webhooks` does not parse as an http(s) URL.
    #[error("webhook {0} is not a valid http or https URL")]
    InvalidUrl(usize),
}

/// Delivery counters for metrics.
#[derive(Debug, Default)]
pub struct AlertStats {
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

/// The cheap, cloneable side the request path uses.
#[derive(Clone, Debug)]
pub struct AlertHandle {
    alerts: mpsc::Sender<BudgetAlert>,
    stats: Arc<AlertStats>,
}

/// The running delivery task.
#[derive(Debug)]
pub struct AlertSender {
    handle: AlertHandle,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

struct Delivery {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    webhooks: Vec<http::Uri>,
    config: AlertSenderConfig,
    stats: Arc<AlertStats>,
}

impl Default for AlertSenderConfig {
    fn default() -> Self {
        AlertSenderConfig {
            webhooks: Vec::new(),
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            request_timeout: Duration::from_secs(10),
            queue_capacity: 1_000,
        }
    }
}

impl AlertStats {
    /// Successful webhook posts.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Webhook posts abandoned after every attempt failed.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Alerts dropped because the queue was full or the sender stopped.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl AlertHandle {
    /// Queues alerts without waiting; returns how many were queued.
    pub fn send(&self, alerts: Vec<BudgetAlert>) -> usize {
        let mut queued = 0;
        for alert in alerts {
            if self.alerts.try_send(alert).is_ok() {
                queued += 1;
            } else {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("budget alert queue full; dropping an alert");
            }
        }
        queued
    }

    /// Delivery counters.
    pub fn stats(&self) -> &Arc<AlertStats> {
        &self.stats
    }
}

impl AlertSender {
    /// Validates the webhooks and starts the delivery task on the current
    /// tokio runtime.
    pub fn start(config: AlertSenderConfig) -> Result<AlertSender, AlertError> {
        let webhooks = config
            .webhooks
            .iter()
            .enumerate()
            .map(|(index, url)| {
                let uri: http::Uri = url
                    .expose()
                    .parse()
                    .map_err(|_| AlertError::InvalidUrl(index))?;
                match uri.scheme_str() {
                    Some("http" | "https") if uri.host().is_some() => Ok(uri),
                    _ => Err(AlertError::InvalidUrl(index)),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.request_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(https);
        let (alerts, receiver) = mpsc::channel(config.queue_capacity.max(1));
        let (stop, stop_receiver) = oneshot::channel();
        let stats = Arc::new(AlertStats::default());
        let delivery = Delivery {
            client,
            webhooks,
            config,
            stats: Arc::clone(&stats),
        };
        let task = tokio::spawn(delivery.run(receiver, stop_receiver));
        Ok(AlertSender {
            handle: AlertHandle { alerts, stats },
            stop: Some(stop),
            task,
        })
    }

    /// A handle for the request path.
    pub fn handle(&self) -> AlertHandle {
        self.handle.clone()
    }

    /// Stops accepting alerts and delivers the ones queued (with their retries).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(error) = (&mut self.task).await {
            tracing::error!(%error, "alert sender task failed");
        }
    }
}

impl Delivery {
    async fn run(self, mut alerts: mpsc::Receiver<BudgetAlert>, mut stop: oneshot::Receiver<()>) {
        loop {
            tokio::select! {
                biased;
                _ = &mut stop => break,
                alert = alerts.recv() => match alert {
                    Some(alert) => self.deliver(&alert).await,
                    None => return,
                },
            }
        }
        alerts.close();
        while let Some(alert) = alerts.recv().await {
            self.deliver(&alert).await;
        }
    }

    async fn deliver(&self, alert: &BudgetAlert) {
        let body = Bytes::from(alert.webhook_body().to_string());
        for (index, webhook) in self.webhooks.iter().enumerate() {
            let mut backoff = self.config.initial_backoff;
            let mut attempt = 1;
            loop {
                match self.post(webhook, body.clone()).await {
                    Ok(()) => {
                        self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Err(retryable) if retryable && attempt < self.config.max_attempts => {
                        tokio::time::sleep(backoff).await;
                        backoff *= 2;
                        attempt += 1;
                    }
                    Err(_) => {
                        self.stats.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            webhook = index,
                            attempts = attempt,
                            "budget alert delivery failed"
                        );
                        break;
                    }
                }
            }
        }
    }

    /// Posts once. `Err(true)` when a retry may succeed.
    async fn post(&self, webhook: &http::Uri, body: Bytes) -> Result<(), bool> {
        let request = http::Request::post(webhook.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|_| false)?;
        let response =
            tokio::time::timeout(self.config.request_timeout, self.client.request(request))
                .await
                .map_err(|_| true)?
                .map_err(|_| true)?;
        let status = response.status();
        // Read the (small) body so the connection can be reused.
        let _ = response.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(status == http::StatusCode::TOO_MANY_REQUESTS || status.is_server_error())
        }
    }
}
