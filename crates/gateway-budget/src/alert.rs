//! Budget alerts: the facts `settle` reports and the Slack-compatible body
//! a webhook sender posts. Delivery itself lives in `gateway-store`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use gateway_types::NanoUsd;

use crate::entity::Level;
use crate::time::Timestamp;

/// What was crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum AlertKind {
    /// Spend reached this percentage of `max_budget`.
    ThresholdCrossed {
        /// Percent of the budget, e.g. 80.
        percent: u32,
    },
    /// Spend reached `max_budget`.
    BudgetCrossed,
    /// Spend reached `soft_budget`.
    SoftBudgetCrossed,
}

/// One alert to send: at most one per level, kind and budget period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetAlert {
    /// The level whose budget was crossed.
    pub level: Level,
    /// The entity id (key hash for keys).
    pub entity_id: String,
    /// A human name: the alias, or `sk-...XXXX` for keys without one.
    pub display_name: String,
    /// What was crossed.
    pub kind: AlertKind,
    /// Spend in the current period.
    pub spend: NanoUsd,
    /// The budget compared against (`max_budget` or `soft_budget`).
    pub budget: NanoUsd,
    /// When it was detected.
    pub at: Timestamp,
}

impl BudgetAlert {
    /// One line of text for humans. Never contains a key, only its display name.
    pub fn text(&self) -> String {
        let what = match self.kind {
            AlertKind::ThresholdCrossed { percent } => format!("{percent}% of its budget used"),
            AlertKind::BudgetCrossed => "budget exceeded".to_owned(),
            AlertKind::SoftBudgetCrossed => "soft budget crossed".to_owned(),
        };
        format!(
            "Budget alert: {} {} has {}. Spend: ${:.6}, budget: ${:.6}.",
            self.level,
            self.display_name,
            what,
            self.spend.as_usd(),
            self.budget.as_usd()
        )
    }

    /// The JSON body for a Slack-compatible incoming webhook: `{"text": ...}`.
    pub fn webhook_body(&self) -> Value {
        json!({ "text": self.text() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_body_is_slack_text() {
        let alert = BudgetAlert {
            level: Level::Team,
            entity_id: "t1".to_owned(),
            display_name: "QA Bot".to_owned(),
            kind: AlertKind::ThresholdCrossed { percent: 80 },
            spend: NanoUsd::from_usd(8.0),
            budget: NanoUsd::from_usd(10.0),
            at: Timestamp(0),
        };
        assert_eq!(
            alert.webhook_body(),
            json!({"text": "Budget alert: team QA Bot has 80% of its budget used. Spend: $8.000000, budget: $10.000000."})
        );
    }
}
