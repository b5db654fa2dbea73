//! The final outcome of one item of a task, as stored and as the `result` and `errors` pages
//! show it, and the tallies the task's counters move by.

use crate::beneficiary::Beneficiary;
use crate::error_body::ErrorDetail;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemOutcome {
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(flatten)]
    pub result: OutcomeResult,
    /// What the client sent for a failed item, kept (never logged, never in the JSON answers)
    /// so that the CSV error report can give it back to be fixed, and a retry can send it
    /// again. Stored beside the outcome and expiring with it.
    #[serde(skip)]
    pub input: Option<Beneficiary>,
    /// The idempotency key BOS saw for a failed item, so that a retry of an item BOS may have
    /// created after all sends the same key (`usecases::retry_task`).
    #[serde(skip)]
    pub bos_key: Option<String>,
}

/// `succeeded` carries the task type's result fields (`beneficiary`, `verdict`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum OutcomeResult {
    Succeeded {
        #[serde(flatten)]
        output: serde_json::Map<String, serde_json::Value>,
    },
    Failed {
        error: ErrorDetail,
    },
    /// The task was cancelled before this item started.
    Cancelled,
    /// The task passed its tolerated failures before this item started: BOS was not asked.
    NotAttempted,
}

impl OutcomeResult {
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Succeeded { .. })
    }

    pub fn status(&self) -> &'static str {
        match self {
            Self::Succeeded { .. } => "succeeded",
            Self::Failed { .. } => "failed",
            Self::Cancelled => "cancelled",
            Self::NotAttempted => "not_attempted",
        }
    }
}

/// Tallies of outcomes by kind, as the task's counters move.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub succeeded: u32,
    pub failed: u32,
    pub cancelled: u32,
    pub not_attempted: u32,
}

impl Tally {
    pub fn total(&self) -> usize {
        (self.succeeded + self.failed + self.cancelled + self.not_attempted) as usize
    }

    pub fn of(outcomes: &[ItemOutcome]) -> Self {
        let mut t = Self::default();
        for o in outcomes {
            match o.result {
                OutcomeResult::Succeeded { .. } => t.succeeded += 1,
                OutcomeResult::Failed { .. } => t.failed += 1,
                OutcomeResult::Cancelled => t.cancelled += 1,
                OutcomeResult::NotAttempted => t.not_attempted += 1,
            }
        }
        t
    }
}
