//! Spend reports over the daily aggregate table, shared by the SQL stores.

use gateway_budget::{Day, SpendReportQuery, SpendReportRow, StoreError};
use gateway_types::NanoUsd;

use crate::tables::{report_column, to_u64};

/// SQL flavour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// SQLite: days are text already.
    Sqlite,
    /// PostgreSQL: days are DATE, cast to text.
    Postgres,
}

/// The select list (day, key, team, model; NULL where not grouped) and the
/// GROUP BY clause of a report over `gateway_daily_spend`.
pub(crate) fn report_grouping(query: &SpendReportQuery, dialect: Dialect) -> (String, String) {
    let null = match dialect {
        Dialect::Sqlite => "NULL",
        Dialect::Postgres => "NULL::text",
    };
    use gateway_budget::ReportDimension::{Day as DayDim, Key, Model, Team};
    let mut select = Vec::new();
    let mut group = Vec::new();
    for dimension in [DayDim, Key, Team, Model] {
        if query.group_by.contains(&dimension) {
            let column = report_column(dimension);
            select.push(match dialect {
                Dialect::Sqlite => column.to_owned(),
                Dialect::Postgres => format!("{column}::text"),
            });
            group.push(column);
        } else {
            select.push(null.to_owned());
        }
    }
    let group = if group.is_empty() {
        String::new()
    } else {
        format!("GROUP BY {}", group.join(", "))
    };
    (select.join(", "), group)
}

/// Builds a report row from its grouped fields and sums.
pub(crate) fn report_row(
    day: Option<String>,
    key_hash: Option<String>,
    team_id: Option<String>,
    model_group: Option<String>,
    sums: [i64; 4],
) -> Result<SpendReportRow, StoreError> {
    let day = match day {
        Some(text) => Some(
            text.parse::<Day>()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        ),
        None => None,
    };
    Ok(SpendReportRow {
        day,
        key_hash,
        team_id,
        model_group,
        spend: NanoUsd(sums[0]),
        prompt_tokens: to_u64(sums[1]),
        completion_tokens: to_u64(sums[2]),
        requests: to_u64(sums[3]),
    })
}

/// Orders report rows like the in-memory store: by day, key, team, model.
pub(crate) fn sort_report(report: &mut [SpendReportRow]) {
    report.sort_by(|a, b| {
        (a.day, &a.key_hash, &a.team_id, &a.model_group).cmp(&(
            b.day,
            &b.key_hash,
            &b.team_id,
            &b.model_group,
        ))
    });
}
