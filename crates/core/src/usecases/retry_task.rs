//! `POST /tasks/{task_type}/{task_id}/retry`: a new task holding a finished task's failed
//! items that may succeed on a second try, linked both ways (`retry_of`, `retried_by`).
//!
//! Which items: by default those that failed for a reason on the way, not a verdict on the
//! item itself: upstream trouble (`upstream_unavailable`, `upstream_timeout`,
//! `upstream_error`) and `processing_failed`. `?include=all_failed` takes every failed item,
//! rejections too (say, after BOS started supporting a currency), and the items a task never
//! sent because it passed its tolerated failures (`not_attempted`).
//!
//! No beneficiary is created twice across the two tasks, because of the key each item sends:
//! - an item that failed on the way may have been created at BOS all the same (an answer lost
//!   after the work was done), so it sends the idempotency key of its first attempt, and BOS
//!   answers with what it did then instead of creating it again;
//! - a rejected item was certainly not created, and its old key would only replay the
//!   rejection, so it gets a key of the new task's.
//!
//! Items keep their original `index` and `external_id`, so the new task's results line up
//! with the original's. A task is retried at most once (`409 task_already_retried`, with the
//! retry named in the original's `retried_by`); a retry can itself be retried.

use crate::chunk::ChunkItem;
use crate::config::Settings;
use crate::error::{AppError, Chain};
use crate::identity::Owner;
use crate::outcome::{ItemOutcome, OutcomeResult};
use crate::ports::{OutcomeFilter, TaskStore};
use crate::task::{Task, TaskId, TaskType};
use crate::usecases::read_task::get_task;
use crate::usecases::schedule::Scheduler;
use crate::usecases::submit_task::create_and_queue;
use time::OffsetDateTime;

/// Failure codes that say nothing about the item itself: a second try may succeed.
pub const RETRYABLE_CODES: [&str; 4] = [
    "upstream_unavailable",
    "upstream_timeout",
    "upstream_error",
    "processing_failed",
];

/// Which failed items a retry takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryScope {
    /// Failures on the way ([`RETRYABLE_CODES`]).
    Retryable,
    /// Every failed item (`?include=all_failed`).
    AllFailed,
}

impl RetryScope {
    /// Reads `include`: absent is [`RetryScope::Retryable`]; anything but `all_failed` is 400.
    pub fn parse(include: Option<&str>) -> Result<Self, AppError> {
        match include {
            None => Ok(Self::Retryable),
            Some("all_failed") => Ok(Self::AllFailed),
            Some(_) => Err(AppError::InvalidQuery("include")),
        }
    }
}

/// The task to retry, as the caller named it.
pub struct RetryRequest<'a> {
    pub owner: &'a Owner,
    pub task_type: TaskType,
    pub id: TaskId,
    pub scope: RetryScope,
}

/// How many failed outcomes one store read returns while the retry gathers them.
const READ_PAGE: usize = 1_000;

#[tracing::instrument(skip_all, fields(task_id = %request.id, scope = ?request.scope))]
pub async fn retry(
    store: &dyn TaskStore,
    scheduler: Scheduler<'_>,
    settings: &Settings,
    request: &RetryRequest<'_>,
    now: OffsetDateTime,
) -> Result<Task, AppError> {
    let original = get_task(store, request.owner, request.task_type, request.id, now).await?;
    if !original.status.is_final() {
        return Err(AppError::TaskNotFinal);
    }
    if original.retried_by.is_some() {
        return Err(AppError::TaskAlreadyRetried);
    }
    let failed = failed_outcomes(store, original.id).await?;
    let mut task = Task::new(original.task_type, original.owner.clone(), 0, now);
    let items: Vec<ChunkItem> = failed
        .into_iter()
        .filter_map(|o| second_try(&o, request.scope, original.id, task.id))
        .collect();
    if items.is_empty() {
        return Err(AppError::NothingToRetry);
    }
    task.total = items.len() as u32;
    task.retry_of = Some(original.id);
    // The same policy as the first try: a retry of a file BOS refuses stops as early.
    task.tolerance = original.tolerance;
    // Claim the original first: of two retries racing, one creates a task and the other
    // creates nothing.
    if !store.mark_retried(original.id, task.id).await? {
        return Err(AppError::TaskAlreadyRetried);
    }
    let retry_id = task.id;
    let created = create_and_queue(store, scheduler, settings, task, items, now).await;
    if let Err(error) = &created {
        tracing::warn!(cause = %Chain(error), "retry not created; releasing the original");
        store.unmark_retried(original.id, retry_id).await?;
    }
    created
}

/// Every failed or not-attempted outcome of the task, with the input and the BOS key each
/// one kept.
async fn failed_outcomes(store: &dyn TaskStore, id: TaskId) -> Result<Vec<ItemOutcome>, AppError> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let (page, more) = store
            .list_outcomes(id, OutcomeFilter::FailedOrNotAttempted, after, READ_PAGE)
            .await?;
        after = page.last().map(|o| o.index);
        all.extend(page);
        if !more || after.is_none() {
            return Ok(all);
        }
    }
}

/// The item a failed outcome becomes in the retry, if the scope takes it.
fn second_try(
    outcome: &ItemOutcome,
    scope: RetryScope,
    original: TaskId,
    retry: TaskId,
) -> Option<ChunkItem> {
    let on_the_way = match &outcome.result {
        OutcomeResult::Failed { error } => RETRYABLE_CODES.contains(&error.code.as_str()),
        // Never sent, unless by a delivery that crashed: its key asks BOS what it did then.
        OutcomeResult::NotAttempted if scope == RetryScope::AllFailed => true,
        _ => return None,
    };
    if scope == RetryScope::Retryable && !on_the_way {
        return None;
    }
    // An outcome without its input (recorded before inputs were kept) cannot be sent again.
    let beneficiary = outcome.input.clone()?;
    let bos_key = if on_the_way {
        // BOS may have created it: ask with the key it saw, to get that answer back.
        outcome
            .bos_key
            .clone()
            .unwrap_or_else(|| format!("{original}:{}", outcome.index))
    } else {
        // Certainly not created, and the old key would replay the rejection.
        format!("{retry}:{}", outcome.index)
    };
    Some(ChunkItem {
        index: outcome.index,
        beneficiary,
        bos_key: Some(bos_key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_body::ErrorDetail;
    use crate::fixtures::beneficiary;

    fn failed(index: u32, code: &str, bos_key: Option<&str>) -> ItemOutcome {
        ItemOutcome {
            index,
            external_id: None,
            result: OutcomeResult::Failed {
                error: ErrorDetail::field("iban", code, "m").at(index, None),
            },
            input: Some(beneficiary("DE89370400440532013000")),
            bos_key: bos_key.map(str::to_owned),
        }
    }

    #[test]
    fn failures_on_the_way_keep_their_first_key_and_rejections_get_a_new_one() {
        let (original, retry) = (TaskId::new_random(), TaskId::new_random());
        let take = |o: &ItemOutcome, scope| {
            second_try(o, scope, original, retry).map(|i| (i.index, i.bos_key.unwrap()))
        };
        let lost = failed(3, "upstream_timeout", Some("first-key"));
        let dead = failed(4, "processing_failed", None);
        let rejected = failed(5, "duplicate_beneficiary", Some("old"));

        assert_eq!(
            take(&lost, RetryScope::Retryable),
            Some((3, "first-key".into()))
        );
        assert_eq!(
            take(&dead, RetryScope::Retryable),
            Some((4, format!("{original}:4")))
        );
        assert_eq!(take(&rejected, RetryScope::Retryable), None);
        assert_eq!(
            take(&rejected, RetryScope::AllFailed),
            Some((5, format!("{retry}:5")))
        );

        let mut unsent = failed(7, "x", Some("first-key"));
        unsent.result = OutcomeResult::NotAttempted;
        assert_eq!(take(&unsent, RetryScope::Retryable), None);
        assert_eq!(
            take(&unsent, RetryScope::AllFailed),
            Some((7, "first-key".into()))
        );

        let mut no_input = failed(6, "upstream_unavailable", None);
        no_input.input = None;
        assert_eq!(take(&no_input, RetryScope::AllFailed), None);
    }

    #[test]
    fn include_is_all_failed_or_nothing() {
        assert_eq!(RetryScope::parse(None).unwrap(), RetryScope::Retryable);
        assert_eq!(
            RetryScope::parse(Some("all_failed")).unwrap(),
            RetryScope::AllFailed
        );
        assert_eq!(
            RetryScope::parse(Some("everything")).unwrap_err().code(),
            "invalid_query_parameter"
        );
    }
}
