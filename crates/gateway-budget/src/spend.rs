//! Spend log rows, queries over them, and the daily aggregates reports use.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use gateway_types::NanoUsd;

use crate::time::{Day, Timestamp};

/// One request's record (`LiteLLM_SpendLogs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendLogRow {
    /// Upstream response id or the gateway's call id; unique.
    pub request_id: String,
    /// `acompletion`, `aembedding`, ... (static on the request path).
    pub call_type: Cow<'static, str>,
    /// Hash of the caller's key (`api_key` column); empty for the master key.
    /// Shared with the key's record, as are the key's names and tags and the
    /// deployment's names below: a row costs no copies of configuration.
    pub key_hash: Arc<str>,
    /// The key's alias.
    pub key_alias: Option<Arc<str>>,
    /// The key's user.
    pub user_id: Option<Arc<str>>,
    /// The key's team.
    pub team_id: Option<Arc<str>>,
    /// The key's organization.
    pub organization_id: Option<Arc<str>>,
    /// The public model alias (`model_group`).
    pub model_group: String,
    /// The deployment that served the request (`model_id`).
    pub deployment_id: Option<Arc<str>>,
    /// The provider (`custom_llm_provider`).
    pub provider: Option<Arc<str>>,
    /// The model as called upstream (`model`).
    pub model: Arc<str>,
    /// Input tokens, cached ones included.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub completion_tokens: u64,
    /// Input tokens served from the provider's cache.
    pub cached_tokens: u64,
    /// Cost.
    pub spend: NanoUsd,
    /// When the request arrived.
    pub start_time: Timestamp,
    /// When the response finished.
    pub end_time: Timestamp,
    /// Time to first token in milliseconds, for streams.
    pub time_to_first_token_ms: Option<u64>,
    /// Success or failure.
    pub status: SpendStatus,
    /// The error kind of a failed request.
    pub error_kind: Option<String>,
    /// Served from the gateway's cache.
    pub cache_hit: bool,
    /// The key's tags.
    pub tags: Arc<[String]>,
    /// The end user (`user` field or header).
    pub end_user: Option<String>,
}

/// Outcome of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpendStatus {
    /// `success`.
    Success,
    /// `failure`.
    Failure,
}

/// Filters for reading spend logs; `None` fields do not filter. Newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpendLogQuery {
    /// Key hash.
    pub key_hash: Option<String>,
    /// Team.
    pub team_id: Option<String>,
    /// User.
    pub user_id: Option<String>,
    /// Model alias.
    pub model_group: Option<String>,
    /// Requests started at or after.
    pub start: Option<Timestamp>,
    /// Requests started before.
    pub end: Option<Timestamp>,
    /// At most this many rows; `None` means all.
    pub limit: Option<u32>,
}

/// What a spend report groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReportDimension {
    /// UTC day.
    Day,
    /// Key hash.
    Key,
    /// Team.
    Team,
    /// Model alias.
    Model,
}

/// A spend report over whole UTC days, from the daily aggregates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpendReportQuery {
    /// First day, inclusive.
    pub start_day: Day,
    /// Last day, inclusive.
    pub end_day: Day,
    /// Grouping; empty gives one total row.
    pub group_by: Vec<ReportDimension>,
    /// Only this key.
    pub key_hash: Option<String>,
    /// Only this team.
    pub team_id: Option<String>,
}

/// One group of a spend report. Fields not grouped by are `None`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendReportRow {
    /// The day, when grouped by day.
    pub day: Option<Day>,
    /// The key hash, when grouped by key.
    pub key_hash: Option<String>,
    /// The team (empty for no team), when grouped by team.
    pub team_id: Option<String>,
    /// The model alias, when grouped by model.
    pub model_group: Option<String>,
    /// Total cost.
    pub spend: NanoUsd,
    /// Input tokens.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub completion_tokens: u64,
    /// Requests.
    pub requests: u64,
}

/// The identity of a daily aggregate row.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DailyKey {
    /// UTC day of `start_time`.
    pub day: Day,
    /// Key hash.
    pub key_hash: String,
    /// Team, empty for none.
    pub team_id: String,
    /// Model alias.
    pub model_group: String,
}

/// Totals of a daily aggregate row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DailyTotals {
    /// Cost.
    pub spend: NanoUsd,
    /// Input tokens.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub completion_tokens: u64,
    /// Requests.
    pub requests: u64,
}

impl SpendStatus {
    /// `success` or `failure`.
    pub fn as_str(self) -> &'static str {
        match self {
            SpendStatus::Success => "success",
            SpendStatus::Failure => "failure",
        }
    }

    /// Parses [`SpendStatus::as_str`]; anything else is a failure.
    pub fn parse(text: &str) -> SpendStatus {
        if text == "success" {
            SpendStatus::Success
        } else {
            SpendStatus::Failure
        }
    }
}

impl SpendLogRow {
    /// True when `self` and `stored`, a stored row with its request id, are
    /// one request: the same key, model, times, tokens and cost. A batch
    /// retried after a commit whose answer was lost repeats its rows
    /// exactly; a client that reuses its `x-request-id` sends new requests
    /// under an old id, which differ at least in their start or end. (Two
    /// such requests alike in all of these, to the millisecond, count as
    /// one.)
    pub fn is_same_request(&self, stored: &SpendLogRow) -> bool {
        self.start_time == stored.start_time
            && self.end_time == stored.end_time
            && self.key_hash == stored.key_hash
            && self.model_group == stored.model_group
            && self.spend == stored.spend
            && self.prompt_tokens == stored.prompt_tokens
            && self.completion_tokens == stored.completion_tokens
    }

    /// The row under the id it is stored with when another request holds
    /// its request id: `<id>~<start in ms>`. The same row retried gets the
    /// same id, so it is still stored once; stores call this for a row whose
    /// id is taken by a row that is not the same request
    /// ([`is_same_request`](Self::is_same_request)).
    pub fn reissued(&self) -> SpendLogRow {
        SpendLogRow {
            request_id: format!("{}~{}", self.request_id, self.start_time.0),
            ..self.clone()
        }
    }

    /// End time minus start time, in milliseconds.
    pub fn latency_ms(&self) -> u64 {
        u64::try_from(self.end_time.0.saturating_sub(self.start_time.0)).unwrap_or(0)
    }

    /// The aggregate row this log row counts towards.
    pub fn daily_key(&self) -> DailyKey {
        DailyKey::from_group(self.daily_group())
    }

    /// [`daily_key`](Self::daily_key), borrowed: day, key hash, team (empty
    /// for none), model alias.
    fn daily_group(&self) -> (Day, &str, &str, &str) {
        (
            self.start_time.day(),
            &self.key_hash,
            self.team_id.as_deref().unwrap_or_default(),
            &self.model_group,
        )
    }

    /// True when the row passes the query's filters.
    pub fn matches(&self, query: &SpendLogQuery) -> bool {
        let check = |wanted: &Option<String>, actual: Option<&str>| {
            wanted.as_deref().is_none_or(|w| actual == Some(w))
        };
        check(&query.key_hash, Some(&self.key_hash))
            && check(&query.team_id, self.team_id.as_deref())
            && check(&query.user_id, self.user_id.as_deref())
            && check(&query.model_group, Some(&self.model_group))
            && query.start.is_none_or(|start| self.start_time >= start)
            && query.end.is_none_or(|end| self.start_time < end)
    }
}

impl DailyTotals {
    /// Adds one row.
    pub fn add_row(&mut self, row: &SpendLogRow) {
        self.spend += row.spend;
        self.prompt_tokens = self.prompt_tokens.saturating_add(row.prompt_tokens);
        self.completion_tokens = self.completion_tokens.saturating_add(row.completion_tokens);
        self.requests = self.requests.saturating_add(1);
    }

    /// Adds another total.
    pub fn add(&mut self, other: &DailyTotals) {
        self.spend += other.spend;
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(other.completion_tokens);
        self.requests = self.requests.saturating_add(other.requests);
    }
}

/// Day, key, team and model of a report row; `None` where not grouped.
type ReportGroup = (Option<Day>, Option<String>, Option<String>, Option<String>);

/// Sums rows into daily aggregates (what a batch adds to the aggregate table).
pub fn aggregate_rows<'a>(
    rows: impl IntoIterator<Item = &'a SpendLogRow>,
) -> BTreeMap<DailyKey, DailyTotals> {
    // Grouped by borrowed names first: a batch of thousands of rows has a
    // handful of groups, and an owned key per row was three Strings
    // allocated and freed per row on the spend writer's thread.
    let mut borrowed: BTreeMap<(Day, &str, &str, &str), DailyTotals> = BTreeMap::new();
    for row in rows {
        borrowed.entry(row.daily_group()).or_default().add_row(row);
    }
    borrowed
        .into_iter()
        .map(|(group, totals)| (DailyKey::from_group(group), totals))
        .collect()
}

impl DailyKey {
    fn from_group((day, key_hash, team_id, model_group): (Day, &str, &str, &str)) -> Self {
        DailyKey {
            day,
            key_hash: key_hash.to_owned(),
            team_id: team_id.to_owned(),
            model_group: model_group.to_owned(),
        }
    }
}

/// Groups daily aggregates into report rows (used by stores without SQL),
/// ordered by the grouped fields.
pub fn group_report<'a>(
    daily: impl IntoIterator<Item = (&'a DailyKey, &'a DailyTotals)>,
    query: &SpendReportQuery,
) -> Vec<SpendReportRow> {
    let has = |dimension| query.group_by.contains(&dimension);
    let mut groups: BTreeMap<ReportGroup, DailyTotals> = BTreeMap::new();
    for (key, totals) in daily {
        let in_range = key.day >= query.start_day && key.day <= query.end_day;
        let key_ok = query.key_hash.as_deref().is_none_or(|k| k == key.key_hash);
        let team_ok = query.team_id.as_deref().is_none_or(|t| t == key.team_id);
        if !(in_range && key_ok && team_ok) {
            continue;
        }
        let group = (
            has(ReportDimension::Day).then_some(key.day),
            has(ReportDimension::Key).then(|| key.key_hash.clone()),
            has(ReportDimension::Team).then(|| key.team_id.clone()),
            has(ReportDimension::Model).then(|| key.model_group.clone()),
        );
        groups.entry(group).or_default().add(totals);
    }
    groups
        .into_iter()
        .map(
            |((day, key_hash, team_id, model_group), totals)| SpendReportRow {
                day,
                key_hash,
                team_id,
                model_group,
                spend: totals.spend,
                prompt_tokens: totals.prompt_tokens,
                completion_tokens: totals.completion_tokens,
                requests: totals.requests,
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(request_id: &str, key: &str, team: Option<&str>, model: &str, at: i64) -> SpendLogRow {
        SpendLogRow {
            request_id: request_id.into(),
            call_type: "acompletion".into(),
            key_hash: key.into(),
            key_alias: None,
            user_id: None,
            team_id: team.map(Arc::from),
            organization_id: None,
            model_group: model.into(),
            deployment_id: None,
            provider: None,
            model: model.into(),
            prompt_tokens: 10,
            completion_tokens: 5,
            cached_tokens: 0,
            spend: NanoUsd(100),
            start_time: Timestamp(at),
            end_time: Timestamp(at + 20),
            time_to_first_token_ms: None,
            status: SpendStatus::Success,
            error_kind: None,
            cache_hit: false,
            tags: Arc::default(),
            end_user: None,
        }
    }

    #[test]
    fn aggregates_group_rows_by_day_key_team_and_model() {
        const DAY: i64 = 86_400_000;
        let rows = [
            row("1", "k1", Some("t1"), "m", 0),
            row("2", "k1", Some("t1"), "m", 1_000),
            row("3", "k1", None, "m", 2_000),
            row("4", "k2", Some("t1"), "m", 3_000),
            row("5", "k1", Some("t1"), "other", 4_000),
            row("6", "k1", Some("t1"), "m", DAY + 5),
        ];
        let totals = aggregate_rows(&rows);
        let sums: Vec<(DailyKey, u64, NanoUsd)> = totals
            .into_iter()
            .map(|(key, totals)| (key, totals.requests, totals.spend))
            .collect();
        let key = |day: i64, key: &str, team: &str, model: &str| DailyKey {
            day: Timestamp(day).day(),
            key_hash: key.into(),
            team_id: team.into(),
            model_group: model.into(),
        };
        // Ordered by day, key, team ("" for none), model.
        let expected = vec![
            (key(0, "k1", "", "m"), 1, NanoUsd(100)),
            (key(0, "k1", "t1", "m"), 2, NanoUsd(200)),
            (key(0, "k1", "t1", "other"), 1, NanoUsd(100)),
            (key(0, "k2", "t1", "m"), 1, NanoUsd(100)),
            (key(DAY, "k1", "t1", "m"), 1, NanoUsd(100)),
        ];
        assert_eq!(sums, expected);
        assert_eq!(rows[1].daily_key(), expected[1].0);
    }
}
