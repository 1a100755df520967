//! A workspace's monthly enrichment budget: the alerts raised as spending
//! crosses its thresholds, each at most once per month. One aggregate per
//! workspace and month (`<workspace id>:<YYYY-MM>`), so the "once" holds
//! under concurrency like any other aggregate rule.

use crate::identity::WorkspaceId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The aggregate type name in the event store. Never rename it.
pub const AGGREGATE_TYPE: &str = "budget";

/// The percentages of the budget that raise an alert.
pub const THRESHOLDS: [u8; 2] = [80, 100];

/// The aggregate id of a workspace's budget for a month (`YYYY-MM`).
pub fn budget_id(workspace: WorkspaceId, month: &str) -> String {
    format!("{workspace}:{month}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetCommand {
    /// Spending is now `spent_micro_usd` of `budget_micro_usd`: raise the
    /// alerts for every threshold crossed and not raised yet.
    RecordSpending {
        workspace_id: WorkspaceId,
        month: String,
        spent_micro_usd: u64,
        budget_micro_usd: u64,
    },
}

crate::event_family::event_family! {
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    pub enum BudgetEvent of AGGREGATE_TYPE {
        ThresholdReached(BudgetThresholdReached) = "budget.threshold_reached" v "1",
    }
}

/// Downstream alerting subscribes to these (`…events.<workspace>.budget.threshold_reached`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct BudgetThresholdReached {
    pub workspace_id: WorkspaceId,
    pub month: String,
    /// 80 or 100.
    pub percent: u8,
    pub spent_micro_usd: u64,
    pub budget_micro_usd: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("a budget of zero has no thresholds")]
    NoBudget,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Budget {
    raised: BTreeSet<u8>,
}

impl Budget {
    pub fn decide(&self, command: BudgetCommand) -> Result<Vec<BudgetEvent>, BudgetError> {
        let BudgetCommand::RecordSpending {
            workspace_id,
            month,
            spent_micro_usd,
            budget_micro_usd,
        } = command;
        if budget_micro_usd == 0 {
            return Err(BudgetError::NoBudget);
        }
        Ok(THRESHOLDS
            .iter()
            .filter(|percent| !self.raised.contains(percent))
            .filter(|percent| {
                u128::from(spent_micro_usd) * 100
                    >= u128::from(budget_micro_usd) * u128::from(**percent)
            })
            .map(|percent| {
                BudgetEvent::ThresholdReached(BudgetThresholdReached {
                    workspace_id,
                    month: month.clone(),
                    percent: *percent,
                    spent_micro_usd,
                    budget_micro_usd,
                })
            })
            .collect())
    }

    pub fn apply(&mut self, event: BudgetEvent) {
        let BudgetEvent::ThresholdReached(e) = event;
        self.raised.insert(e.percent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn spending(spent: u64) -> BudgetCommand {
        BudgetCommand::RecordSpending {
            workspace_id: WorkspaceId(Uuid::from_u128(1)),
            month: "2026-11".to_owned(),
            spent_micro_usd: spent,
            budget_micro_usd: 1_000,
        }
    }

    #[test]
    fn each_threshold_is_raised_once_per_month() {
        let mut budget = Budget::default();
        assert!(budget.decide(spending(799)).unwrap().is_empty());
        let at_80 = budget.decide(spending(800)).unwrap();
        assert_eq!(at_80.len(), 1);
        for event in at_80 {
            budget.apply(event);
        }
        assert!(
            budget.decide(spending(900)).unwrap().is_empty(),
            "80 % only once"
        );
        let at_100 = budget.decide(spending(1_200)).unwrap();
        assert!(matches!(&at_100[..], [BudgetEvent::ThresholdReached(e)] if e.percent == 100));
        for event in at_100 {
            budget.apply(event);
        }
        assert!(budget.decide(spending(5_000)).unwrap().is_empty());
    }

    #[test]
    fn a_jump_past_both_thresholds_raises_both_and_no_budget_is_refused() {
        assert_eq!(Budget::default().decide(spending(2_000)).unwrap().len(), 2);
        let none = BudgetCommand::RecordSpending {
            workspace_id: WorkspaceId(Uuid::from_u128(1)),
            month: "2026-11".to_owned(),
            spent_micro_usd: 1,
            budget_micro_usd: 0,
        };
        assert_eq!(Budget::default().decide(none), Err(BudgetError::NoBudget));
    }
}
