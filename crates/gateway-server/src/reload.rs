//! What triggers a hot reload: `SIGHUP`, and changes to the config files
//! (`--watch`). Both run as background tasks owned by the binary and call
//! [`Gateway::reload_from_file`], the same path as `POST /config/reload`.

use crate::config::ConfigError;
use crate::gateway::{Gateway, ReloadReport};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Reloads the config file and logs the result; an invalid file keeps the
/// config in force. `trigger` names what asked (`sighup`, `watch`, `api`).
pub fn reload_and_log(
    gateway: &Gateway,
    trigger: &'static str,
) -> Result<ReloadReport, ConfigError> {
    let result = gateway.reload_from_file();
    match &result {
        Ok(report) => {
            tracing::info!(
                trigger,
                models = report.models.len(),
                added = report.added.len(),
                removed = report.removed.len(),
                changed = report.changed.len(),
                unchanged = report.unchanged,
                "config reloaded"
            );
            for warning in &report.warnings {
                tracing::warn!(key = %warning.path, "config: {}", warning.message);
            }
        }
        Err(error) => {
            tracing::error!(trigger, %error, "config reload failed; keeping the config in force");
        }
    }
    result
}

/// Reloads on every `SIGHUP` until the signal stream ends.
#[cfg(unix)]
pub async fn reload_on_sighup(gateway: Arc<Gateway>) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup())?;
    while hangups.recv().await.is_some() {
        let _ = reload_and_log(&gateway, "sighup");
    }
    Ok(())
}

/// Polls the modification time and size of the config file and its
/// `include:` files every `interval`, and reloads when one changes. A
/// change that fails to load is reported once; the next change is tried
/// again. The files are compared with their state when this is called
/// (not when the future first runs); the future runs until dropped.
pub fn watch_config(
    gateway: Arc<Gateway>,
    interval: Duration,
) -> impl std::future::Future<Output = ()> + Send {
    let files = watched_files(&gateway);
    let last = stamps(&files);
    watch_loop(gateway, interval, files, last)
}

async fn watch_loop(
    gateway: Arc<Gateway>,
    interval: Duration,
    mut files: Vec<PathBuf>,
    mut last: Vec<Option<(SystemTime, u64)>>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        let now = stamps(&files);
        if now == last {
            continue;
        }
        if reload_and_log(&gateway, "watch").is_ok() {
            // The new config may include other files.
            files = watched_files(&gateway);
        }
        last = stamps(&files);
    }
}

fn watched_files(gateway: &Gateway) -> Vec<PathBuf> {
    gateway
        .config()
        .source
        .map(|source| source.files)
        .unwrap_or_default()
}

/// Per file: its modification time and length, `None` when unreadable.
fn stamps(files: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    files
        .iter()
        .map(|file| {
            let metadata = std::fs::metadata(file).ok()?;
            Some((metadata.modified().ok()?, metadata.len()))
        })
        .collect()
}
