//! The GET endpoints: one task, and its outcomes page by page. Every read is scoped to the
//! caller: another owner's task, another type's, an expired one and an unknown id all answer
//! the same `task_not_found`, so ids cannot be probed.

use crate::error::AppError;
use crate::error_body::ErrorDetail;
use crate::identity::Owner;
use crate::outcome::{ItemOutcome, OutcomeResult};
use crate::paging::PageTokens;
use crate::ports::{OutcomeFilter, TaskStore};
use crate::task::{Task, TaskId, TaskStatus, TaskType, TaskView};
use serde::Serialize;
use time::OffsetDateTime;

/// Page sizes of `/errors` and `/result`.
pub const ITEM_PAGE: PageSize = PageSize {
    default: 100,
    max: 1_000,
};
/// Page sizes of the task listing.
pub const TASK_PAGE: PageSize = PageSize {
    default: 20,
    max: 100,
};

#[derive(Debug, Clone, Copy)]
pub struct PageSize {
    pub default: usize,
    pub max: usize,
}

pub async fn get_task(
    store: &dyn TaskStore,
    owner: &Owner,
    task_type: TaskType,
    id: TaskId,
    now: OffsetDateTime,
) -> Result<Task, AppError> {
    let task = store.get_task(id).await?.ok_or(AppError::TaskNotFound)?;
    if &task.owner != owner || task.task_type != task_type || task.is_expired(now) {
        return Err(AppError::TaskNotFound);
    }
    Ok(task)
}

/// Parses `limit`: absent is the default; zero, negative, non-numeric or too large is 400.
pub fn parse_limit(raw: Option<&str>, size: PageSize) -> Result<usize, AppError> {
    match raw {
        None => Ok(size.default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=size.max).contains(&n) => Ok(n),
            _ => Err(AppError::InvalidQuery("limit")),
        },
    }
}

#[derive(Debug, Serialize)]
pub struct TaskListPage {
    pub tasks: Vec<TaskView>,
    pub next_page_token: Option<String>,
}

/// A listing request: the caller's tasks of one type, newest first.
pub struct TaskListQuery<'a> {
    pub owner: &'a Owner,
    pub task_type: TaskType,
    pub status: Option<&'a str>,
    pub page_token: Option<&'a str>,
    pub limit: usize,
}

pub async fn list_tasks(
    store: &dyn TaskStore,
    tokens: &PageTokens,
    q: &TaskListQuery<'_>,
    now: OffsetDateTime,
) -> Result<TaskListPage, AppError> {
    let status = q
        .status
        .map(|s| TaskStatus::parse(s).ok_or(AppError::InvalidQuery("status")))
        .transpose()?;
    // The token is bound to caller, type and filter: reused elsewhere it fails its MAC.
    let scope = format!(
        "tasks|{}|{}|{}",
        q.owner.as_str(),
        q.task_type.slug(),
        q.status.unwrap_or("*")
    );
    let read = |after: Option<String>| async move {
        let listed = store.list_tasks(q.owner, q.task_type, status, after.as_deref(), q.limit, now);
        Ok::<_, AppError>(listed.await?)
    };
    let (tasks, next_page_token) = tokens
        .page(&scope, q.page_token, read, Task::list_position)
        .await?;
    Ok(TaskListPage {
        tasks: tasks.iter().map(Task::view).collect(),
        next_page_token,
    })
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

/// A request for one page of a task's outcomes; the task and the page token are checked when
/// the page is read.
pub struct OutcomeQuery<'a> {
    pub owner: &'a Owner,
    pub task_type: TaskType,
    pub id: TaskId,
    pub page_token: Option<&'a str>,
    pub limit: usize,
}

/// One page of a task's outcomes as stored (failed items with their inputs, which the CSV
/// answers use), and the next page's token.
pub async fn outcomes_page(
    store: &dyn TaskStore,
    tokens: &PageTokens,
    q: &OutcomeQuery<'_>,
    filter: OutcomeFilter,
    now: OffsetDateTime,
) -> Result<(Vec<ItemOutcome>, Option<String>), AppError> {
    get_task(store, q.owner, q.task_type, q.id, now).await?;
    let scope = format!("{filter:?}|{}|{}", q.owner.as_str(), q.id);
    let read = |after: Option<String>| async move {
        // Positions are item indexes; a token that names another is not one of ours.
        let after = after
            .map(|p| p.parse::<u32>().map_err(|_| AppError::InvalidPageToken))
            .transpose()?;
        Ok::<_, AppError>(store.list_outcomes(q.id, filter, after, q.limit).await?)
    };
    let (items, next) = tokens
        .page(&scope, q.page_token, read, |o: &ItemOutcome| {
            o.index.to_string()
        })
        .await?;
    Ok((items, next))
}

pub async fn errors_page(
    store: &dyn TaskStore,
    tokens: &PageTokens,
    q: &OutcomeQuery<'_>,
    now: OffsetDateTime,
) -> Result<ErrorsPage, AppError> {
    let (items, next_page_token) =
        outcomes_page(store, tokens, q, OutcomeFilter::FailedOnly, now).await?;
    let errors = items
        .into_iter()
        .filter_map(|o| match o.result {
            OutcomeResult::Failed { error } => Some(error),
            OutcomeResult::Succeeded { .. }
            | OutcomeResult::Cancelled
            | OutcomeResult::NotAttempted => None,
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
    let (results, next_page_token) =
        outcomes_page(store, tokens, q, OutcomeFilter::All, now).await?;
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
        assert_eq!(parse_limit(None, TASK_PAGE).unwrap(), 20);
        assert_eq!(parse_limit(None, ITEM_PAGE).unwrap(), 100);
        assert_eq!(parse_limit(Some("5"), TASK_PAGE).unwrap(), 5);
        assert_eq!(parse_limit(Some("1000"), ITEM_PAGE).unwrap(), 1000);
        for bad in ["0", "-1", "x", "101", "", "1e2"] {
            let err = parse_limit(Some(bad), TASK_PAGE).unwrap_err();
            assert_eq!(err.code(), "invalid_query_parameter", "{bad}");
        }
    }

    #[tokio::test]
    async fn listing_is_newest_first_paged_filtered_and_bound_to_its_scope() {
        let store = MemoryStore::default();
        let tokens = PageTokens::new(b"k");
        let alice = Owner::from_subject("alice").unwrap();
        let base = OffsetDateTime::now_utc();
        let mut ids = vec![];
        for i in 0..5u64 {
            let created = base + Duration::from_secs(i);
            let mut t = Task::new(TaskType::BeneficiariesImport, alice.clone(), 1, created);
            if i == 2 {
                t.status = TaskStatus::Completed;
            }
            ids.push(t.id);
            store.insert_task(&t).await.unwrap();
        }
        let bob = Owner::from_subject("bob").unwrap();
        let other = Task::new(TaskType::BeneficiariesImport, bob, 1, base);
        store.insert_task(&other).await.unwrap();

        let mut q = TaskListQuery {
            owner: &alice,
            task_type: TaskType::BeneficiariesImport,
            status: None,
            page_token: None,
            limit: 2,
        };
        let p1 = list_tasks(&store, &tokens, &q, base).await.unwrap();
        let ids1: Vec<TaskId> = p1.tasks.iter().map(|t| t.task_id).collect();
        assert_eq!(ids1, vec![ids[4], ids[3]]);
        let token = p1.next_page_token.unwrap();
        q.page_token = Some(&token);
        let p2 = list_tasks(&store, &tokens, &q, base).await.unwrap();
        let ids2: Vec<TaskId> = p2.tasks.iter().map(|t| t.task_id).collect();
        assert_eq!(ids2, vec![ids[2], ids[1]]);

        q.status = Some("completed");
        let err = list_tasks(&store, &tokens, &q, base).await.unwrap_err();
        assert_eq!(
            err.code(),
            "invalid_page_token",
            "a token is bound to its filter"
        );
        q.page_token = None;
        let done = list_tasks(&store, &tokens, &q, base).await.unwrap();
        assert_eq!(done.tasks.len(), 1);
        assert!(done.next_page_token.is_none());
        q.status = Some("finished");
        let err = list_tasks(&store, &tokens, &q, base).await.unwrap_err();
        assert_eq!(err.code(), "invalid_query_parameter");
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
