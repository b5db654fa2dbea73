//! The GET endpoints: one task, and its outcomes page by page. Every read is scoped to the
//! caller: another owner's task, another type's, an expired one and an unknown id all answer
//! the same `task_not_found`, so ids cannot be probed.

use crate::error::{AppError, ErrorDetail};
use crate::identity::Owner;
use crate::paging::PageTokens;
use crate::ports::{ItemOutcome, OutcomeFilter, OutcomeResult, TaskStore};
use crate::task::{Task, TaskId, TaskType};
use serde::Serialize;
use time::OffsetDateTime;

pub const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 1_000;

pub async fn get_task(
    store: &dyn TaskStore,
    owner: &Owner,
    task_type: TaskType,
    id: TaskId,
    now: OffsetDateTime,
) -> Result<Task, AppError> {
    let task = store
        .get_task(id)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .ok_or(AppError::TaskNotFound)?;
    if &task.owner != owner || task.task_type != task_type || task.is_expired(now) {
        return Err(AppError::TaskNotFound);
    }
    Ok(task)
}

/// Parses `limit`: absent is the default; zero, negative, non-numeric or too large is 400.
pub fn parse_limit(raw: Option<&str>) -> Result<usize, AppError> {
    match raw {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
            _ => Err(AppError::InvalidQuery("limit")),
        },
    }
}

#[derive(Debug, Serialize)]
pub struct ErrorsPage {
    pub errors: Vec<ErrorDetail>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ResultPage {
    pub results: Vec<ItemOutcome>,
    pub next_page_token: Option<String>,
}

/// A listing request after its task was found and its token checked.
pub struct OutcomeQuery<'a> {
    pub owner: &'a Owner,
    pub task_type: TaskType,
    pub id: TaskId,
    pub page_token: Option<&'a str>,
    pub limit: usize,
}

async fn page(
    store: &dyn TaskStore,
    tokens: &PageTokens,
    q: &OutcomeQuery<'_>,
    filter: OutcomeFilter,
    now: OffsetDateTime,
) -> Result<(Vec<ItemOutcome>, Option<String>), AppError> {
    get_task(store, q.owner, q.task_type, q.id, now).await?;
    let scope = format!("{filter:?}|{}|{}", q.owner.as_str(), q.id);
    let after = match q.page_token {
        None => None,
        Some(t) => {
            let pos = tokens
                .decode(&scope, t)
                .map_err(|_| AppError::InvalidPageToken)?;
            Some(pos.parse::<u32>().map_err(|_| AppError::InvalidPageToken)?)
        }
    };
    let (items, more) = store
        .list_outcomes(q.id, filter, after, q.limit)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let next = match items.last() {
        Some(last) if more => Some(tokens.encode(&scope, &last.index.to_string())),
        _ => None,
    };
    Ok((items, next))
}

pub async fn errors_page(
    store: &dyn TaskStore,
    tokens: &PageTokens,
    q: &OutcomeQuery<'_>,
    now: OffsetDateTime,
) -> Result<ErrorsPage, AppError> {
    let (items, next_page_token) = page(store, tokens, q, OutcomeFilter::FailedOnly, now).await?;
    let errors = items
        .into_iter()
        .filter_map(|o| match o.result {
            OutcomeResult::Failed { error } => Some(error),
            OutcomeResult::Succeeded { .. } => None,
        })
        .collect();
    Ok(ErrorsPage {
        errors,
        next_page_token,
    })
}

pub async fn result_page(
    store: &dyn TaskStore,
    tokens: &PageTokens,
    q: &OutcomeQuery<'_>,
    now: OffsetDateTime,
) -> Result<ResultPage, AppError> {
    let (results, next_page_token) = page(store, tokens, q, OutcomeFilter::All, now).await?;
    Ok(ResultPage {
        results,
        next_page_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use std::time::Duration;

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(parse_limit(Some("5")).unwrap(), 5);
        for bad in ["0", "-1", "x", "1001", ""] {
            assert_eq!(
                parse_limit(Some(bad)).unwrap_err().code(),
                "invalid_query_parameter",
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn other_owner_other_type_and_expired_are_not_found() {
        let store = MemoryStore::default();
        let alice = Owner::from_subject("alice").unwrap();
        let bob = Owner::from_subject("bob").unwrap();
        let now = OffsetDateTime::now_utc();
        let mut task = Task::new(TaskType::BeneficiariesImport, alice.clone(), 1, now);
        store.insert_task(&task).await.unwrap();
        assert!(
            get_task(&store, &alice, TaskType::BeneficiariesImport, task.id, now)
                .await
                .is_ok()
        );
        let err = get_task(&store, &bob, TaskType::BeneficiariesImport, task.id, now)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "task_not_found");
        let unknown = TaskId::new_random();
        let err = get_task(&store, &alice, TaskType::BeneficiariesImport, unknown, now)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "task_not_found");

        task.expires_at = Some(now - Duration::from_secs(1));
        store.put(task.clone());
        let err = get_task(&store, &alice, TaskType::BeneficiariesImport, task.id, now)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "task_not_found");
    }
}
