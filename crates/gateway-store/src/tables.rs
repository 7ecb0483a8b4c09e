//! Table and column names shared by the SQL stores. These are constants, never
//! client input, so formatting them into statements is safe.

use gateway_budget::{EntityColumns, Level, ListFilter, ReportDimension};

/// One entity table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EntityTable {
    /// Table name.
    pub name: &'static str,
    /// Primary key column.
    pub id: &'static str,
    /// Alias column.
    pub alias: &'static str,
    /// Ownership columns this table has, among `user_id`, `team_id`,
    /// `organization_id`.
    pub owners: &'static [Owner],
}

/// An ownership column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    User,
    Team,
    Organization,
}

/// The table holding records of a level.
pub(crate) fn entity_table(level: Level) -> EntityTable {
    match level {
        Level::Key => EntityTable {
            name: "gateway_keys",
            id: "token",
            alias: "key_alias",
            owners: &[Owner::User, Owner::Team, Owner::Organization],
        },
        Level::Team => EntityTable {
            name: "gateway_teams",
            id: "team_id",
            alias: "team_alias",
            owners: &[Owner::Organization],
        },
        Level::User => EntityTable {
            name: "gateway_users",
            id: "user_id",
            alias: "user_alias",
            owners: &[],
        },
        Level::Organization => EntityTable {
            name: "gateway_organizations",
            id: "organization_id",
            alias: "organization_alias",
            owners: &[],
        },
    }
}

impl Owner {
    /// The column name.
    pub(crate) fn column(self) -> &'static str {
        match self {
            Owner::User => "user_id",
            Owner::Team => "team_id",
            Owner::Organization => "organization_id",
        }
    }

    /// The record's value for this column.
    pub(crate) fn value<'a>(self, columns: &EntityColumns<'a>) -> Option<&'a str> {
        match self {
            Owner::User => columns.user_id,
            Owner::Team => columns.team_id,
            Owner::Organization => columns.organization_id,
        }
    }

    /// The filter's value for this column.
    pub(crate) fn filter(self, filter: &ListFilter) -> Option<&str> {
        match self {
            Owner::User => filter.user_id.as_deref(),
            Owner::Team => filter.team_id.as_deref(),
            Owner::Organization => filter.organization_id.as_deref(),
        }
    }
}

impl EntityTable {
    /// True when the filter names an owner this table does not have, so no
    /// record can match.
    pub(crate) fn filter_cannot_match(&self, filter: &ListFilter) -> bool {
        [Owner::User, Owner::Team, Owner::Organization]
            .into_iter()
            .any(|owner| owner.filter(filter).is_some() && !self.owners.contains(&owner))
    }

    /// `id, alias, owners..., blocked, spend_nanos, budget_reset_at, record,
    /// created_at, updated_at`: the insert column list.
    pub(crate) fn insert_columns(&self) -> Vec<&'static str> {
        let mut columns = vec![self.id, self.alias];
        columns.extend(self.owners.iter().map(|owner| owner.column()));
        columns.extend([
            "blocked",
            "spend_nanos",
            "budget_reset_at",
            "record",
            "created_at",
            "updated_at",
        ]);
        columns
    }
}

/// Columns of `gateway_spend_logs` in the order the stores read and write them.
pub(crate) const SPEND_LOG_COLUMNS: [&str; 24] = [
    "request_id",
    "call_type",
    "api_key",
    "key_alias",
    "user_id",
    "team_id",
    "organization_id",
    "model_group",
    "model_id",
    "custom_llm_provider",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "spend_nanos",
    "start_time",
    "end_time",
    "time_to_first_token_ms",
    "status",
    "error_kind",
    "cache_hit",
    "request_tags",
    "end_user",
    "request_duration_ms",
];

/// The aggregate column for a report dimension.
pub(crate) fn report_column(dimension: ReportDimension) -> &'static str {
    match dimension {
        ReportDimension::Day => "day",
        ReportDimension::Key => "api_key",
        ReportDimension::Team => "team_id",
        ReportDimension::Model => "model_group",
    }
}

/// Converts a count stored as a signed integer.
pub(crate) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Converts a count for a signed integer column.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
