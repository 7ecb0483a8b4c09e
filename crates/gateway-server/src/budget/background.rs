//! The budget side's background work, owned by the gateway and drained at
//! shutdown: connecting to the store (and reconnecting when it was down at
//! start), the spend writer, alert delivery, budget resets, retention
//! pruning, store health and the spend metrics.

use super::{now, Budgets, DECLARED_IN_CONFIG};
use crate::metrics;
use gateway_budget::{BudgetStore, Entity, StoreError};
use gateway_store::{
    open_store, prune_spend_logs, AlertHandle, AlertSender, AlertSenderConfig, SpendWriter,
    SpendWriterConfig, SpendWriterHandle,
};
use gateway_types::Secret;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often the store's health is checked.
pub(crate) const HEALTH_INTERVAL: Duration = Duration::from_secs(2);

/// How often spend logs past retention are pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// The running background work.
#[derive(Debug)]
pub(crate) struct Background {
    writer: SpendWriter,
    alerts: Option<AlertSender>,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    /// Connects to the store (or starts retrying in the background) and
    /// starts every task.
    pub(crate) async fn start(budgets: Arc<Budgets>, database_url: Option<Secret>) -> Self {
        let settings = &budgets.settings;
        let store: Arc<dyn BudgetStore> = budgets.store.clone();
        let writer = SpendWriter::start(
            store,
            Some(budgets.engine.clone()),
            SpendWriterConfig {
                batch_interval: settings.batch_write_interval,
                max_batch_rows: settings.spend_logs_batch_size,
                ..SpendWriterConfig::default()
            },
        );
        let alerts = if settings.alert_webhooks.is_empty() {
            None
        } else {
            match AlertSender::start(AlertSenderConfig {
                webhooks: settings.alert_webhooks.clone(),
                ..AlertSenderConfig::default()
            }) {
                Ok(sender) => Some(sender),
                Err(error) => {
                    tracing::error!(%error, "budget alerts are off");
                    None
                }
            }
        };
        let mut tasks = Vec::new();
        if connect(&budgets, database_url.as_ref()).await.is_err() {
            tracing::warn!("the database is unreachable; serving from the config and retrying in the background");
            tasks.push(tokio::spawn(reconnect(Arc::clone(&budgets), database_url)));
        }
        tasks.push(tokio::spawn(watch_health(Arc::clone(&budgets))));
        tasks.push(tokio::spawn(reset_budgets(Arc::clone(&budgets))));
        tasks.push(tokio::spawn(spend_metrics(writer.handle())));
        if let Some(retention) = settings.spend_logs_retention {
            let budgets = Arc::clone(&budgets);
            tasks.push(tokio::spawn(async move {
                let mut ticker = tokio::time::interval(PRUNE_INTERVAL);
                loop {
                    ticker.tick().await;
                    if let Err(error) = prune_spend_logs(&*budgets.store, retention, now()).await {
                        tracing::warn!(%error, "pruning spend logs failed");
                    }
                }
            }));
        }
        Self {
            writer,
            alerts,
            tasks,
        }
    }

    /// The request path's handle to the writer.
    pub(crate) fn writer_handle(&self) -> SpendWriterHandle {
        self.writer.handle()
    }

    /// Changes after every write attempt of the spend writer.
    pub(crate) fn spend_writes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.writer.flush_events()
    }

    /// The request path's handle to the alert sender.
    pub(crate) fn alert_handle(&self) -> Option<AlertHandle> {
        self.alerts.as_ref().map(AlertSender::handle)
    }

    /// Stops the tasks, then writes every queued row and delivers queued alerts.
    pub(crate) async fn shutdown(self) {
        for task in &self.tasks {
            task.abort();
        }
        let unwritten = self.writer.shutdown().await;
        if unwritten > 0 {
            tracing::error!(unwritten, "spend log rows could not be written at shutdown");
        }
        if let Some(alerts) = self.alerts {
            alerts.shutdown().await;
        }
    }
}

/// Opens the store, loads its records into the engine and writes the
/// config's keys to it.
async fn connect(budgets: &Budgets, database_url: Option<&Secret>) -> Result<(), StoreError> {
    let url = database_url.map(Secret::expose);
    let store = open_store(url, &budgets.settings.database_path).await?;
    let records = store.load_all().await?;
    let now = now();
    let declared = budgets.declared_keys();
    let mut known = Vec::new();
    for record in records {
        // A key an earlier config declared and this one does not.
        if let Entity::Key(key) = &record {
            let from_config =
                key.policy.metadata.get(DECLARED_IN_CONFIG) == Some(&serde_json::json!(true));
            if from_config && !declared.iter().any(|current| current.token == key.token) {
                store.delete(&record.id()).await?;
                continue;
            }
        }
        if budgets.engine.get(&record.id()).is_some() {
            known.push(record);
        } else {
            budgets.upsert(record, now);
        }
    }
    budgets.engine.refresh_counters(&known);
    for key in declared {
        let entity = Entity::Key(key);
        match store.create(&entity).await {
            Err(StoreError::Conflict(_)) => store.update(&entity).await?,
            other => other?,
        }
    }
    budgets.store.connect(store);
    tracing::info!("store connected");
    Ok(())
}

async fn reconnect(budgets: Arc<Budgets>, database_url: Option<Secret>) {
    let mut delay = Duration::from_millis(500);
    loop {
        tokio::time::sleep(delay).await;
        match connect(&budgets, database_url.as_ref()).await {
            Ok(()) => return,
            Err(_) => delay = (delay * 2).min(Duration::from_secs(30)),
        }
    }
}

async fn watch_health(budgets: Arc<Budgets>) {
    let mut ticker = tokio::time::interval(HEALTH_INTERVAL);
    loop {
        ticker.tick().await;
        if budgets.store.is_connected() {
            let _ = budgets.store.ping().await;
        }
    }
}

async fn reset_budgets(budgets: Arc<Budgets>) {
    let mut ticker = tokio::time::interval(budgets.settings.budget_reset_interval);
    loop {
        ticker.tick().await;
        let reset = budgets.engine.reset_due(now());
        if reset > 0 {
            tracing::info!(reset, "budget periods reset");
        }
    }
}

async fn spend_metrics(writer: SpendWriterHandle) {
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    let mut failures = 0;
    loop {
        ticker.tick().await;
        let stats = writer.stats();
        metrics::set_spend_queue_depth(usize::try_from(stats.depth()).unwrap_or(usize::MAX));
        let now_failed = stats.flush_failures();
        for _ in failures..now_failed {
            metrics::record_spend_flush_failure();
        }
        failures = now_failed;
    }
}
