//! Organizations, teams, users and keys: the records the store keeps and the
//! engine enforces.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

use gateway_types::NanoUsd;

use crate::key::KeyHash;
use crate::time::{BudgetDuration, Timestamp};

/// A level of the hierarchy a request is checked against and spend rolls up to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// A gateway key.
    Key,
    /// A team.
    Team,
    /// An internal user.
    User,
    /// An organization.
    Organization,
}

/// The limits and access settings every level may carry. Field names follow
/// LiteLLM's management API.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// Allowed model aliases or access groups; empty means all.
    pub models: Vec<String>,
    /// Hard budget per period.
    pub max_budget: Option<NanoUsd>,
    /// Alert-only budget.
    pub soft_budget: Option<NanoUsd>,
    /// The budget period; `None` means spend never resets.
    pub budget_duration: Option<BudgetDuration>,
    /// Requests per minute.
    pub rpm_limit: Option<u64>,
    /// Tokens per minute.
    pub tpm_limit: Option<u64>,
    /// Requests in flight at once.
    pub max_parallel_requests: Option<u32>,
    /// Blocked entities are refused.
    pub blocked: bool,
    /// Free-form metadata.
    pub metadata: Map<String, Value>,
    /// Tags recorded on spend logs.
    pub tags: Vec<String>,
}

/// A gateway key (`LiteLLM_VerificationToken`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// SHA-256 hex of the key.
    pub token: KeyHash,
    /// `sk-...XXXX`.
    pub key_name: String,
    /// A unique label.
    #[serde(default)]
    pub key_alias: Option<String>,
    /// The owning user.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The owning team.
    #[serde(default)]
    pub team_id: Option<String>,
    /// The organization, when not given by the team.
    #[serde(default)]
    pub organization_id: Option<String>,
    /// When the key stops working; `None` means never.
    #[serde(default)]
    pub expires: Option<Timestamp>,
    /// Limits and access.
    #[serde(flatten)]
    pub policy: Policy,
    /// Spend in the current period.
    #[serde(default)]
    pub spend: NanoUsd,
    /// When the current period ends.
    #[serde(default)]
    pub budget_reset_at: Option<Timestamp>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Timestamp,
    /// Last update time.
    #[serde(default)]
    pub updated_at: Timestamp,
}

/// A team (`LiteLLM_TeamTable`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TeamRecord {
    /// The team id.
    pub team_id: String,
    /// A label.
    #[serde(default)]
    pub team_alias: Option<String>,
    /// The organization.
    #[serde(default)]
    pub organization_id: Option<String>,
    /// Limits and access.
    #[serde(flatten)]
    pub policy: Policy,
    /// Spend in the current period.
    #[serde(default)]
    pub spend: NanoUsd,
    /// When the current period ends.
    #[serde(default)]
    pub budget_reset_at: Option<Timestamp>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Timestamp,
    /// Last update time.
    #[serde(default)]
    pub updated_at: Timestamp,
}

/// An internal user (`LiteLLM_UserTable`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The user id.
    pub user_id: String,
    /// Email address.
    #[serde(default)]
    pub user_email: Option<String>,
    /// A label.
    #[serde(default)]
    pub user_alias: Option<String>,
    /// `proxy_admin`, `internal_user`, ...
    #[serde(default)]
    pub user_role: Option<String>,
    /// Limits and access.
    #[serde(flatten)]
    pub policy: Policy,
    /// Spend in the current period.
    #[serde(default)]
    pub spend: NanoUsd,
    /// When the current period ends.
    #[serde(default)]
    pub budget_reset_at: Option<Timestamp>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Timestamp,
    /// Last update time.
    #[serde(default)]
    pub updated_at: Timestamp,
}

/// An organization (`LiteLLM_OrganizationTable`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrgRecord {
    /// The organization id.
    pub organization_id: String,
    /// A label (required by LiteLLM's API).
    #[serde(default)]
    pub organization_alias: Option<String>,
    /// Limits and access.
    #[serde(flatten)]
    pub policy: Policy,
    /// Spend in the current period.
    #[serde(default)]
    pub spend: NanoUsd,
    /// When the current period ends.
    #[serde(default)]
    pub budget_reset_at: Option<Timestamp>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Timestamp,
    /// Last update time.
    #[serde(default)]
    pub updated_at: Timestamp,
}

/// Any record, for the store's generic CRUD.
#[derive(Clone, Debug, PartialEq)]
pub enum Entity {
    /// A key.
    Key(KeyRecord),
    /// A team.
    Team(TeamRecord),
    /// A user.
    User(UserRecord),
    /// An organization.
    Organization(OrgRecord),
}

/// The identity of a record.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityId {
    /// A key by hash.
    Key(KeyHash),
    /// A team by id.
    Team(String),
    /// A user by id.
    User(String),
    /// An organization by id.
    Organization(String),
}

/// Filters for listing records; `None` fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Owning user (keys).
    pub user_id: Option<String>,
    /// Owning team (keys).
    pub team_id: Option<String>,
    /// Organization (keys, teams).
    pub organization_id: Option<String>,
    /// Exact alias.
    pub alias: Option<String>,
    /// Page size; `None` means all.
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: u32,
}

/// Spend to persist for one level: the spend added since the last write and
/// the period it belongs to. Deltas, not absolute values, so that several
/// gateway replicas writing to one database add up instead of overwriting
/// each other. See [`SpendCounter::apply`] for how a store merges it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpendCounter {
    /// Which record.
    pub id: EntityId,
    /// Spend added since the last write, in the period ending at
    /// `budget_reset_at`.
    pub spend_delta: NanoUsd,
    /// When the period of `spend_delta` ends; `None` for no budget period.
    pub budget_reset_at: Option<Timestamp>,
}

impl SpendCounter {
    /// Merges this counter into a stored `(spend, budget_reset_at)`:
    /// - same period: the delta is added;
    /// - the counter's period is newer (the stored one ended): the stored
    ///   spend is replaced by the delta and the new reset time is stored;
    /// - the counter has no period: the delta is added and the period cleared;
    /// - the counter's period is older (another replica already reset): the
    ///   delta belongs to an ended period and is ignored.
    pub fn apply(
        &self,
        spend: NanoUsd,
        budget_reset_at: Option<Timestamp>,
    ) -> (NanoUsd, Option<Timestamp>) {
        match (self.budget_reset_at, budget_reset_at) {
            (ours, stored) if ours == stored => (spend + self.spend_delta, stored),
            (None, Some(_)) => (spend + self.spend_delta, None),
            (Some(ours), None) => (self.spend_delta, Some(ours)),
            (Some(ours), Some(stored)) if ours > stored => (self.spend_delta, Some(ours)),
            (_, stored) => (spend, stored),
        }
    }
}

/// The fields of a record the store indexes, whatever its kind.
#[derive(Clone, Debug, PartialEq)]
pub struct EntityColumns<'a> {
    /// The id as text (hash for keys).
    pub id: &'a str,
    /// Alias, if any.
    pub alias: Option<&'a str>,
    /// Owning user.
    pub user_id: Option<&'a str>,
    /// Owning team.
    pub team_id: Option<&'a str>,
    /// Organization.
    pub organization_id: Option<&'a str>,
    /// Blocked flag.
    pub blocked: bool,
    /// Spend in the current period.
    pub spend: NanoUsd,
    /// When the current period ends.
    pub budget_reset_at: Option<Timestamp>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update time.
    pub updated_at: Timestamp,
}

impl Level {
    /// Lowercase name used in alerts, logs and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Key => "key",
            Level::Team => "team",
            Level::User => "user",
            Level::Organization => "organization",
        }
    }

    /// All levels.
    pub const ALL: [Level; 4] = [Level::Key, Level::Team, Level::User, Level::Organization];
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl EntityId {
    /// The level of the record.
    pub fn level(&self) -> Level {
        match self {
            EntityId::Key(_) => Level::Key,
            EntityId::Team(_) => Level::Team,
            EntityId::User(_) => Level::User,
            EntityId::Organization(_) => Level::Organization,
        }
    }

    /// The id as text (hash for keys).
    pub fn as_str(&self) -> &str {
        match self {
            EntityId::Key(hash) => hash.as_str(),
            EntityId::Team(id) | EntityId::User(id) | EntityId::Organization(id) => id,
        }
    }

    /// Rebuilds an id from its level and text; `None` for a malformed key hash.
    pub fn from_parts(level: Level, id: &str) -> Option<EntityId> {
        Some(match level {
            Level::Key => EntityId::Key(KeyHash::from_hex(id).ok()?),
            Level::Team => EntityId::Team(id.to_owned()),
            Level::User => EntityId::User(id.to_owned()),
            Level::Organization => EntityId::Organization(id.to_owned()),
        })
    }
}

impl Entity {
    /// The record's identity.
    pub fn id(&self) -> EntityId {
        match self {
            Entity::Key(key) => EntityId::Key(key.token.clone()),
            Entity::Team(team) => EntityId::Team(team.team_id.clone()),
            Entity::User(user) => EntityId::User(user.user_id.clone()),
            Entity::Organization(org) => EntityId::Organization(org.organization_id.clone()),
        }
    }

    /// The record's level.
    pub fn level(&self) -> Level {
        match self {
            Entity::Key(_) => Level::Key,
            Entity::Team(_) => Level::Team,
            Entity::User(_) => Level::User,
            Entity::Organization(_) => Level::Organization,
        }
    }

    /// Limits and access.
    pub fn policy(&self) -> &Policy {
        match self {
            Entity::Key(key) => &key.policy,
            Entity::Team(team) => &team.policy,
            Entity::User(user) => &user.policy,
            Entity::Organization(org) => &org.policy,
        }
    }

    /// Limits and access, mutably.
    pub fn policy_mut(&mut self) -> &mut Policy {
        match self {
            Entity::Key(key) => &mut key.policy,
            Entity::Team(team) => &mut team.policy,
            Entity::User(user) => &mut user.policy,
            Entity::Organization(org) => &mut org.policy,
        }
    }

    /// Overwrites spend and reset time (from persisted counters).
    pub fn set_counter(&mut self, spend: NanoUsd, budget_reset_at: Option<Timestamp>) {
        let (s, r) = match self {
            Entity::Key(key) => (&mut key.spend, &mut key.budget_reset_at),
            Entity::Team(team) => (&mut team.spend, &mut team.budget_reset_at),
            Entity::User(user) => (&mut user.spend, &mut user.budget_reset_at),
            Entity::Organization(org) => (&mut org.spend, &mut org.budget_reset_at),
        };
        *s = spend;
        *r = budget_reset_at;
    }

    /// The indexed fields.
    pub fn columns(&self) -> EntityColumns<'_> {
        match self {
            Entity::Key(key) => EntityColumns {
                id: key.token.as_str(),
                alias: key.key_alias.as_deref(),
                user_id: key.user_id.as_deref(),
                team_id: key.team_id.as_deref(),
                organization_id: key.organization_id.as_deref(),
                blocked: key.policy.blocked,
                spend: key.spend,
                budget_reset_at: key.budget_reset_at,
                created_at: key.created_at,
                updated_at: key.updated_at,
            },
            Entity::Team(team) => EntityColumns {
                id: &team.team_id,
                alias: team.team_alias.as_deref(),
                user_id: None,
                team_id: None,
                organization_id: team.organization_id.as_deref(),
                blocked: team.policy.blocked,
                spend: team.spend,
                budget_reset_at: team.budget_reset_at,
                created_at: team.created_at,
                updated_at: team.updated_at,
            },
            Entity::User(user) => EntityColumns {
                id: &user.user_id,
                alias: user.user_alias.as_deref(),
                user_id: None,
                team_id: None,
                organization_id: None,
                blocked: user.policy.blocked,
                spend: user.spend,
                budget_reset_at: user.budget_reset_at,
                created_at: user.created_at,
                updated_at: user.updated_at,
            },
            Entity::Organization(org) => EntityColumns {
                id: &org.organization_id,
                alias: org.organization_alias.as_deref(),
                user_id: None,
                team_id: None,
                organization_id: None,
                blocked: org.policy.blocked,
                spend: org.spend,
                budget_reset_at: org.budget_reset_at,
                created_at: org.created_at,
                updated_at: org.updated_at,
            },
        }
    }

    /// Serializes the record for storage as JSON.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        match self {
            Entity::Key(key) => serde_json::to_string(key),
            Entity::Team(team) => serde_json::to_string(team),
            Entity::User(user) => serde_json::to_string(user),
            Entity::Organization(org) => serde_json::to_string(org),
        }
    }

    /// Reads a record stored by [`Entity::to_json`].
    pub fn from_json(level: Level, json: &str) -> Result<Entity, serde_json::Error> {
        Ok(match level {
            Level::Key => Entity::Key(serde_json::from_str(json)?),
            Level::Team => Entity::Team(serde_json::from_str(json)?),
            Level::User => Entity::User(serde_json::from_str(json)?),
            Level::Organization => Entity::Organization(serde_json::from_str(json)?),
        })
    }

    /// True when the record passes the filter (ignoring paging).
    pub fn matches(&self, filter: &ListFilter) -> bool {
        let columns = self.columns();
        let check = |wanted: &Option<String>, actual: Option<&str>| {
            wanted.as_deref().is_none_or(|w| actual == Some(w))
        };
        check(&filter.user_id, columns.user_id)
            && check(&filter.team_id, columns.team_id)
            && check(&filter.organization_id, columns.organization_id)
            && check(&filter.alias, columns.alias)
    }
}

impl KeyRecord {
    /// A key record with no limits, owned by nobody.
    pub fn new(token: KeyHash, key_name: impl Into<String>, now: Timestamp) -> Self {
        KeyRecord {
            token,
            key_name: key_name.into(),
            key_alias: None,
            user_id: None,
            team_id: None,
            organization_id: None,
            expires: None,
            policy: Policy::default(),
            spend: NanoUsd::ZERO,
            budget_reset_at: None,
            created_at: now,
            updated_at: now,
        }
    }
}

impl TeamRecord {
    /// The name metrics and logs show: the alias, else the id.
    pub fn label(&self) -> &str {
        self.team_alias.as_deref().unwrap_or(&self.team_id)
    }

    /// A team with no limits.
    pub fn new(team_id: impl Into<String>, now: Timestamp) -> Self {
        TeamRecord {
            team_id: team_id.into(),
            team_alias: None,
            organization_id: None,
            policy: Policy::default(),
            spend: NanoUsd::ZERO,
            budget_reset_at: None,
            created_at: now,
            updated_at: now,
        }
    }
}

impl UserRecord {
    /// A user with no limits.
    pub fn new(user_id: impl Into<String>, now: Timestamp) -> Self {
        UserRecord {
            user_id: user_id.into(),
            user_email: None,
            user_alias: None,
            user_role: None,
            policy: Policy::default(),
            spend: NanoUsd::ZERO,
            budget_reset_at: None,
            created_at: now,
            updated_at: now,
        }
    }
}

impl OrgRecord {
    /// An organization with no limits.
    pub fn new(organization_id: impl Into<String>, now: Timestamp) -> Self {
        OrgRecord {
            organization_id: organization_id.into(),
            organization_alias: None,
            policy: Policy::default(),
            spend: NanoUsd::ZERO,
            budget_reset_at: None,
            created_at: now,
            updated_at: now,
        }
    }
}

impl From<KeyRecord> for Entity {
    fn from(value: KeyRecord) -> Self {
        Entity::Key(value)
    }
}

impl From<TeamRecord> for Entity {
    fn from(value: TeamRecord) -> Self {
        Entity::Team(value)
    }
}

impl From<UserRecord> for Entity {
    fn from(value: UserRecord) -> Self {
        Entity::User(value)
    }
}

impl From<OrgRecord> for Entity {
    fn from(value: OrgRecord) -> Self {
        Entity::Organization(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_merge_by_period() {
        let id = EntityId::Team("t".to_owned());
        let check = |ours: Option<i64>, stored: Option<i64>, expected: (i64, Option<i64>)| {
            let counter = SpendCounter {
                id: id.clone(),
                spend_delta: NanoUsd(5),
                budget_reset_at: ours.map(Timestamp),
            };
            let (spend, reset_at) = counter.apply(NanoUsd(100), stored.map(Timestamp));
            assert_eq!(
                (spend.0, reset_at.map(|t| t.0)),
                expected,
                "ours {ours:?} stored {stored:?}"
            );
        };
        check(None, None, (105, None));
        check(Some(10), Some(10), (105, Some(10)));
        check(Some(20), Some(10), (5, Some(20)));
        check(Some(20), None, (5, Some(20)));
        check(Some(10), Some(20), (100, Some(20)));
        check(None, Some(20), (105, None));
    }
}
