//! `general_settings` keys for virtual keys, budgets and spend logs: where
//! the store lives, how often spend is written, retention, alerts, and keys
//! declared in the config file.

use super::{invalid, take, take_seconds, ConfigError};
use gateway_budget::BudgetDuration;
use gateway_providers::Env;
use gateway_types::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Default SQLite file, relative to the working directory.
pub const DEFAULT_DATABASE_PATH: &str = "gateway.db";

/// Settings for keys, budgets, the store and spend logs.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetSettings {
    /// `database_path`: the embedded SQLite file used when no
    /// `database_url` is set. Default `./gateway.db`.
    pub database_path: PathBuf,
    /// `proxy_batch_write_at`: how often spend is written. Default 10 s.
    pub batch_write_interval: Duration,
    /// `spend_logs_batch_size` (ours, not LiteLLM's): at most this many spend
    /// log rows per write; a full batch is written before the interval ends.
    /// Default 5,000. Smaller batches spread the database's work more evenly
    /// under heavy traffic, at a higher cost per row.
    pub spend_logs_batch_size: usize,
    /// `spend_logs_retention` (or `maximum_spend_logs_retention_period`):
    /// spend log rows older than this are pruned. `None` keeps them.
    pub spend_logs_retention: Option<BudgetDuration>,
    /// `disable_spend_logs`: no spend log rows (counters still update).
    pub disable_spend_logs: bool,
    /// `proxy_budget_rescheduler_min_time`: how often ended budget periods
    /// are reset. Default 597 s, like LiteLLM; requests reset lazily anyway.
    pub budget_reset_interval: Duration,
    /// Slack-compatible webhooks for budget alerts: `alert_to_webhook_url`
    /// values, plus `SLACK_WEBHOOK_URL` when `alerting` lists `slack`.
    pub alert_webhooks: Vec<Secret>,
    /// `budget_alert_thresholds`: percents of `max_budget` that alert once
    /// per period. Default `[80]` (100% and the soft budget always alert).
    pub alert_thresholds_percent: Vec<u32>,
    /// `keys`: keys declared in the config file.
    pub keys: Vec<ConfigKey>,
}

/// One `general_settings.keys` entry: a key usable without the admin API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigKey {
    /// The key itself (`sk-...`), usually `os.environ/NAME`. Hashed at load.
    pub key: Secret,
    /// A unique label.
    #[serde(default)]
    pub key_alias: Option<String>,
    /// The owning team.
    #[serde(default)]
    pub team_id: Option<String>,
    /// The owning user.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Allowed models or access groups; empty means all.
    #[serde(default)]
    pub models: Vec<String>,
    /// Budget in USD per period.
    #[serde(default)]
    pub max_budget: Option<f64>,
    /// Alert-only budget in USD.
    #[serde(default)]
    pub soft_budget: Option<f64>,
    /// Budget period (`30d`, `1h`, ...).
    #[serde(default)]
    pub budget_duration: Option<String>,
    /// Requests per minute.
    #[serde(default)]
    pub rpm_limit: Option<u64>,
    /// Tokens per minute.
    #[serde(default)]
    pub tpm_limit: Option<u64>,
    /// Requests in flight at once.
    #[serde(default)]
    pub max_parallel_requests: Option<u32>,
    /// `proxy_admin` lets the key call the admin API.
    #[serde(default)]
    pub user_role: Option<String>,
    /// Free-form metadata.
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        Self {
            database_path: PathBuf::from(DEFAULT_DATABASE_PATH),
            batch_write_interval: Duration::from_secs(10),
            spend_logs_batch_size: 5_000,
            spend_logs_retention: None,
            disable_spend_logs: false,
            budget_reset_interval: Duration::from_secs(597),
            alert_webhooks: Vec::new(),
            alert_thresholds_percent: vec![80],
            keys: Vec::new(),
        }
    }
}

/// Takes the budget keys out of `general_settings`.
pub(super) fn budget_settings(
    map: &mut BTreeMap<String, serde_json::Value>,
    env: &Env,
) -> Result<BudgetSettings, ConfigError> {
    let section = "general_settings";
    let defaults = BudgetSettings::default();
    let database_path = take::<String>(map, section, "database_path")?
        .filter(|path| !path.trim().is_empty())
        .map_or(defaults.database_path, PathBuf::from);
    let batch_write_interval = take_seconds(map, section, "proxy_batch_write_at")?
        .filter(|interval| !interval.is_zero())
        .unwrap_or(defaults.batch_write_interval);
    let spend_logs_batch_size = match take::<u64>(map, section, "spend_logs_batch_size")? {
        None => defaults.spend_logs_batch_size,
        Some(0) => {
            return Err(invalid(
                format!("{section}.spend_logs_batch_size"),
                "must be at least 1",
            ))
        }
        Some(rows) => usize::try_from(rows).unwrap_or(usize::MAX),
    };
    let budget_reset_interval = take_seconds(map, section, "proxy_budget_rescheduler_min_time")?
        .filter(|interval| !interval.is_zero())
        .unwrap_or(defaults.budget_reset_interval);
    // LiteLLM's max_time is the upper end of a jitter window; ours is fixed.
    map.remove("proxy_budget_rescheduler_max_time");
    let mut retention = None;
    for key in [
        "spend_logs_retention",
        "maximum_spend_logs_retention_period",
    ] {
        if let Some(text) = take::<String>(map, section, key)? {
            let parsed = text
                .parse::<BudgetDuration>()
                .map_err(|error| invalid(format!("{section}.{key}"), error.to_string()))?;
            retention = retention.or(Some(parsed));
        }
    }
    let disable_spend_logs = take::<bool>(map, section, "disable_spend_logs")?.unwrap_or(false);
    let alerting: Vec<String> = take(map, section, "alerting")?.unwrap_or_default();
    let mut webhooks: Vec<String> = Vec::new();
    if alerting.iter().any(|channel| channel == "slack") {
        if let Some(url) = env.get("SLACK_WEBHOOK_URL").filter(|url| !url.is_empty()) {
            webhooks.push(url);
        }
    }
    let targets: BTreeMap<String, serde_json::Value> =
        take(map, section, "alert_to_webhook_url")?.unwrap_or_default();
    for (alert_type, target) in targets {
        let path = format!("{section}.alert_to_webhook_url.{alert_type}");
        let urls: Vec<String> = match target {
            serde_json::Value::String(url) => vec![url],
            serde_json::Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    serde_json::Value::String(url) => Ok(url),
                    _ => Err(invalid(path.clone(), "must be a URL or a list of URLs")),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(invalid(path, "must be a URL or a list of URLs")),
        };
        webhooks.extend(urls);
    }
    webhooks.sort();
    webhooks.dedup();
    let alert_thresholds_percent = take::<Vec<u32>>(map, section, "budget_alert_thresholds")?
        .unwrap_or(defaults.alert_thresholds_percent);
    // Read by the alert sender's defaults; accepted so they do not warn.
    for key in ["alerting_threshold", "alert_types", "alerting_args"] {
        map.remove(key);
    }
    let keys = match map.remove("keys") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| config_key(item, &format!("{section}.keys[{index}]")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid(format!("{section}.keys"), "must be a list of keys")),
    };
    Ok(BudgetSettings {
        database_path,
        batch_write_interval,
        spend_logs_batch_size,
        spend_logs_retention: retention,
        disable_spend_logs,
        budget_reset_interval,
        alert_webhooks: webhooks.into_iter().map(Secret::new).collect(),
        alert_thresholds_percent,
        keys,
    })
}

fn config_key(value: serde_json::Value, path: &str) -> Result<ConfigKey, ConfigError> {
    let key: ConfigKey = serde_json::from_value(value)
        .map_err(|error| invalid(path.to_owned(), error.to_string()))?;
    gateway_budget::validate_key_format(key.key.expose())
        .map_err(|error| invalid(format!("{path}.key"), error.to_string()))?;
    if let Some(duration) = &key.budget_duration {
        duration
            .parse::<BudgetDuration>()
            .map_err(|error| invalid(format!("{path}.budget_duration"), error.to_string()))?;
    }
    for (name, amount) in [
        ("max_budget", key.max_budget),
        ("soft_budget", key.soft_budget),
    ] {
        if amount.is_some_and(|usd| !(usd.is_finite() && usd >= 0.0)) {
            return Err(invalid(
                format!("{path}.{name}"),
                "must be a non-negative number of USD",
            ));
        }
    }
    Ok(key)
}
