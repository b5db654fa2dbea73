//! `POST /tasks/{task_type}`: validate every item synchronously, then create the task and
//! hand its chunks to the scheduler (`usecases::schedule`). Either the client gets a task that
//! will be processed, or an error and no task at all.

use crate::beneficiary::Beneficiary;
use crate::chunk::{self, ChunkItem};
use crate::config::Settings;
use crate::csv_input;
use crate::error::{AppError, Chain};
use crate::error_body::ErrorDetail;
use crate::identity::Owner;
use crate::ports::TaskStore;
use crate::task::{Task, TaskType};
use crate::tolerance::Tolerance;
use crate::usecases::schedule::{self, Scheduler};
use std::collections::HashMap;
use time::OffsetDateTime;

/// A 422 lists at most this many details, so the answer stays far below Lambda's 6 MB
/// response limit even when every item of a 10,000-item batch is wrong.
pub const MAX_DETAILS: usize = 1_000;

/// ... and at most this many bytes of them, so the answer *and* its idempotency record (one
/// DynamoDB item, 400 KB at most) fit whatever the client sent.
pub const MAX_DETAIL_BYTES: usize = 200_000;

/// Keeps the first details that fit both caps.
fn cap_details(details: &mut Vec<ErrorDetail>) {
    details.truncate(MAX_DETAILS);
    let mut bytes = 0;
    let fit = details
        .iter()
        .take_while(|d| {
            bytes += serde_json::to_vec(d).map_or(MAX_DETAIL_BYTES, |v| v.len() + 1);
            bytes <= MAX_DETAIL_BYTES
        })
        .count();
    details.truncate(fit);
}

/// A batch body as the client sent it.
#[derive(Debug, Clone, Copy)]
pub enum Batch<'a> {
    /// A JSON array of single-create bodies.
    Json(&'a [u8]),
    /// A CSV whose header names the same fields (`csv_input`).
    Csv(&'a [u8]),
}

impl Batch<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::Json(b) | Self::Csv(b) => b,
        }
    }
}

/// Parses and validates a batch body, JSON or CSV, into its beneficiaries.
pub fn parse_batch(batch: Batch<'_>, settings: &Settings) -> Result<Vec<Beneficiary>, AppError> {
    if batch.bytes().len() > settings.max_body_bytes {
        return Err(AppError::BodyTooLarge {
            max_bytes: settings.max_body_bytes,
        });
    }
    let (values, lines) = match batch {
        Batch::Json(body) => {
            let value = crate::strict_json::parse(body).map_err(AppError::from)?;
            let serde_json::Value::Array(values) = value else {
                return Err(AppError::InvalidBody("a JSON array of beneficiaries"));
            };
            (values, None)
        }
        Batch::Csv(body) => {
            let rows = csv_input::parse(body, settings.max_items)?;
            (rows.values, Some(rows.lines))
        }
    };
    if values.is_empty() {
        return Err(AppError::EmptyBatch);
    }
    if values.len() > settings.max_items {
        return Err(AppError::TooManyItems {
            max: settings.max_items,
        });
    }
    validate_items(&values, lines.as_deref())
}

/// The JSON path of [`parse_batch`], kept for callers that only ever have JSON.
pub fn parse_items(body: &[u8], settings: &Settings) -> Result<Vec<Beneficiary>, AppError> {
    parse_batch(Batch::Json(body), settings)
}

/// Validates every item; the details name each problem's item (`index`, `external_id`) and,
/// for a CSV, its `line`.
fn validate_items(
    values: &[serde_json::Value],
    lines: Option<&[u64]>,
) -> Result<Vec<Beneficiary>, AppError> {
    let mut items = Vec::with_capacity(values.len());
    let mut details = Vec::new();
    let mut seen_external_ids: HashMap<&str, usize> = HashMap::new();
    for (index, value) in values.iter().enumerate() {
        let external_id = value.get("external_id").and_then(|v| v.as_str());
        let line = lines.and_then(|l| l.get(index).copied());
        match Beneficiary::parse(value) {
            Ok(b) => items.push(b),
            Err(errors) => details.extend(
                errors
                    .into_iter()
                    .map(|e| e.at(index as u32, external_id).on_line(line)),
            ),
        }
        if let Some(ext) = external_id {
            if let Some(first) = seen_external_ids.insert(ext, index) {
                details.push(
                    ErrorDetail::field(
                        "external_id",
                        "duplicate_external_id",
                        format!("This external_id is already used by item {first}."),
                    )
                    .at(index as u32, Some(ext))
                    .on_line(line),
                );
            }
        }
    }
    if details.is_empty() {
        Ok(items)
    } else {
        cap_details(&mut details);
        Err(AppError::ValidationFailed(details))
    }
}

/// What a client asked for in one `POST /tasks/{task_type}`.
pub struct Submission<'a> {
    pub owner: Owner,
    pub task_type: TaskType,
    pub batch: Batch<'a>,
    /// From the query: how many failed items the task tolerates before it stops.
    pub tolerance: Tolerance,
}

#[tracing::instrument(skip_all, fields(task_type = submission.task_type.slug(),
    owner = %submission.owner.log_id()))]
pub async fn submit(
    store: &dyn TaskStore,
    scheduler: Scheduler<'_>,
    settings: &Settings,
    submission: Submission<'_>,
    now: OffsetDateTime,
) -> Result<Task, AppError> {
    let Submission {
        owner,
        task_type,
        batch,
        tolerance,
    } = submission;
    let items = parse_batch(batch, settings)?;
    let mut task = Task::new(task_type, owner, items.len() as u32, now);
    task.tolerance = tolerance;
    create_and_queue(
        store,
        scheduler,
        settings,
        task,
        chunk::numbered(items),
        now,
    )
    .await
}

/// Stores a new task in the current trace and hands its items to the scheduler. Either the
/// task is stored and every chunk of it will be worked on, or nothing of it is left and the
/// caller gets `queue_unavailable`. Shared by a submission and a retry.
pub(crate) async fn create_and_queue(
    store: &dyn TaskStore,
    scheduler: Scheduler<'_>,
    settings: &Settings,
    mut task: Task,
    items: Vec<ChunkItem>,
    now: OffsetDateTime,
) -> Result<Task, AppError> {
    task.trace = crate::trace::current();
    store.insert_task(&task).await?;
    let owner_key = task.owner.storage_key();
    let task_type = task.task_type;
    let mut chunks = chunk::split_items(task.id, task_type, &owner_key, items, settings.chunk_size);
    for chunk in &mut chunks {
        chunk.trace.clone_from(&task.trace);
    }
    // Waiting chunks outlive their task by a day, like item outcomes.
    let expires_at = now + settings.retention + std::time::Duration::from_secs(86_400);
    let admitted = schedule::admit(
        scheduler.lanes,
        scheduler.queue,
        &owner_key,
        task.id,
        &chunks,
        settings.lanes_per_owner,
        expires_at,
    )
    .await;
    if let Err(error) = admitted {
        // No chunk may be missing behind a task a client was told about: the client gets 503
        // and no task. Nothing of it was appended, so no lane will ever take its chunks.
        let id = task.id;
        tracing::error!(task_id = %id, cause = %Chain(&error), "scheduling failed; removing the task");
        if let Err(e) = store.delete_task(id).await {
            tracing::error!(task_id = %id, cause = %Chain(&e), "could not remove the unqueued task");
        }
        return Err(AppError::QueueUnavailable);
    }
    tracing::info!(task_id = %task.id, items = task.total, chunks = chunks.len(),
        retry_of = task.retry_of.map(tracing::field::display),
        trace_id = task.trace.as_ref().map(|t| tracing::field::display(t.trace_id())),
        "task queued");
    crate::metrics::MetricSet::new()
        .dimension("TaskType", task_type.slug())
        .count("TasksCreated", 1)
        .count("ItemsSubmitted", task.total.into())
        .emit();
    Ok(task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::WorkMessage;
    use crate::memory::{MemoryLanes, MemoryQueue, MemoryStore};
    use crate::ports::LaneStore;
    use serde_json::json;

    fn item(ext: Option<&str>) -> serde_json::Value {
        let mut v = json!({"name": "Ada", "country": "DE", "currency": "EUR",
            "iban": "DE89370400440532013000"});
        if let Some(e) = ext {
            v["external_id"] = json!(e);
        }
        v
    }

    fn body(v: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    fn code(r: Result<Vec<Beneficiary>, AppError>) -> &'static str {
        r.err().map(|e| e.code()).unwrap_or("ok")
    }

    #[test]
    fn batch_shape_errors() {
        let s = Settings {
            max_items: 3,
            max_body_bytes: 2_000,
            ..Settings::default()
        };
        assert_eq!(code(parse_items(b"[", &s)), "malformed_json");
        assert_eq!(code(parse_items(b"{}", &s)), "invalid_body");
        assert_eq!(code(parse_items(b"[]", &s)), "empty_batch");
        assert_eq!(
            code(parse_items(&body(json!(vec![item(None); 4])), &s)),
            "too_many_items"
        );
        assert_eq!(code(parse_items(&vec![b' '; 2_001], &s)), "body_too_large");
        assert_eq!(
            code(parse_items(&body(json!(vec![item(None); 3])), &s)),
            "ok"
        );
    }

    #[test]
    fn a_csv_batch_is_validated_as_json_is_and_details_name_the_line() {
        let csv = "name,country,currency,iban,external_id\r\n\
                   Ada,DE,EUR,DE89370400440532013000,a\r\n\
                   \"Lovelace, Ada\",DE,EUR,DE00370400440532013000,b\r\n\
                   Ada,DE,EUR,DE89370400440532013000,a\r\n";
        let err = parse_batch(Batch::Csv(csv.as_bytes()), &Settings::default()).unwrap_err();
        let AppError::ValidationFailed(details) = err else {
            panic!("{err:?}")
        };
        let found: Vec<_> = details
            .iter()
            .map(|d| (d.index, d.line, d.code.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![
                (Some(1), Some(3), "invalid_checksum"),
                (Some(2), Some(4), "duplicate_external_id"),
            ]
        );
        let ok = "name,country,currency,iban\nAda,DE,EUR,DE89370400440532013000\n";
        assert_eq!(
            parse_batch(Batch::Csv(ok.as_bytes()), &Settings::default())
                .unwrap()
                .len(),
            1
        );
        let header_only = "name,country,currency,iban\n";
        assert_eq!(
            code(parse_batch(
                Batch::Csv(header_only.as_bytes()),
                &Settings::default()
            )),
            "empty_batch"
        );
    }

    #[test]
    fn details_carry_index_and_external_id() {
        let mut bad = item(Some("b-1"));
        bad["iban"] = json!("DE00370400440532013000");
        let err = parse_items(
            &body(json!([item(Some("a")), bad, item(Some("a"))])),
            &Settings::default(),
        )
        .unwrap_err();
        let AppError::ValidationFailed(details) = err else {
            panic!("{err:?}")
        };
        assert_eq!(details.len(), 2);
        assert_eq!(
            (details[0].index, details[0].external_id.as_deref()),
            (Some(1), Some("b-1"))
        );
        assert_eq!(details[0].code, "invalid_checksum");
        assert_eq!(
            (details[1].index, details[1].code.as_str()),
            (Some(2), "duplicate_external_id")
        );
    }

    #[test]
    fn duplicate_keys_are_refused_before_validation() {
        let s = Settings::default();
        let body = br#"[{"name": "Ada", "name": "Eve", "country": "DE", "currency": "EUR", "iban": "DE89370400440532013000"}]"#;
        assert_eq!(code(parse_items(body, &s)), "duplicate_json_key");
    }

    #[test]
    fn the_worst_422_stays_within_its_byte_cap() {
        // 10,000 items, each wrong in every field, with long unknown keys and external ids (the
        // body limit is lifted here: this is about the answer, whatever reaches validation)
        let long = "k".repeat(1_000);
        let mut item = json!({"name": "", "country": "??", "currency": "??", "iban": "XX00",
            "bic": "?", "email": "?", "external_id": long.clone()});
        item[long.as_str()] = json!(1);
        let s = Settings {
            max_body_bytes: usize::MAX,
            ..Settings::default()
        };
        let err = parse_items(&body(json!(vec![item; 10_000])), &s).unwrap_err();
        let bytes = serde_json::to_vec(&err.body()).unwrap().len();
        assert!(bytes <= MAX_DETAIL_BYTES + 1_000, "{bytes} bytes");
        let AppError::ValidationFailed(details) = err else {
            panic!("422")
        };
        assert!(!details.is_empty() && details.len() <= MAX_DETAILS);
    }

    #[tokio::test]
    async fn creates_task_and_enqueues_every_item_once() {
        let (store, queue) = (MemoryStore::default(), MemoryQueue::default());
        let s = Settings {
            chunk_size: 10,
            ..Settings::default()
        };
        let owner = Owner::from_subject("alice").unwrap();
        let lanes = MemoryLanes::default();
        let task = submit(
            &store,
            Scheduler {
                lanes: &lanes,
                queue: &queue,
            },
            &s,
            Submission {
                owner,
                task_type: TaskType::BeneficiariesImport,
                batch: Batch::Json(&body(json!(vec![item(None); 25]))),
                tolerance: Tolerance::default(),
            },
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
        assert_eq!(task.total, 25);
        // Three chunks, three lanes opened (the default allows four): the queue holds starts,
        // and each start leads to one stored chunk.
        let sent = queue.sent();
        assert_eq!(sent.len(), 3);
        assert!(sent.iter().all(|m| matches!(m, WorkMessage::Start { .. })));
        let owner_key = Owner::from_subject("alice").unwrap().storage_key();
        let mut items = 0;
        for seq in 0..3 {
            items += lanes
                .chunk_at(&owner_key, seq)
                .await
                .unwrap()
                .unwrap()
                .items
                .len();
        }
        assert_eq!(items, 25);
        assert!(store.get(task.id).is_some());
    }

    #[tokio::test]
    async fn invalid_batch_creates_nothing() {
        let (store, queue) = (MemoryStore::default(), MemoryQueue::default());
        let mut bad = item(None);
        bad["currency"] = json!("EURO");
        let err = alice_submits(&store, &queue, json!([item(None), bad]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "validation_failed");
        assert_eq!(store.task_count(), 0);
        assert!(queue.sent().is_empty());
    }

    /// Alice submits `items` as an import, with default settings and a lane store of its own.
    async fn alice_submits(
        store: &MemoryStore,
        queue: &MemoryQueue,
        items: serde_json::Value,
    ) -> Result<Task, AppError> {
        let scheduler = Scheduler {
            lanes: &MemoryLanes::default(),
            queue,
        };
        let owner = Owner::from_subject("alice").unwrap();
        let settings = Settings::default();
        let now = OffsetDateTime::now_utc();
        let submission = Submission {
            owner,
            task_type: TaskType::BeneficiariesImport,
            batch: Batch::Json(&body(items)),
            tolerance: Tolerance::default(),
        };
        submit(store, scheduler, &settings, submission, now).await
    }

    #[tokio::test]
    async fn queue_down_leaves_no_task_behind() {
        let (store, queue) = (MemoryStore::default(), MemoryQueue::default());
        queue.set_down(true);
        let err = alice_submits(&store, &queue, json!([item(None)]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "queue_unavailable");
        assert_eq!(store.task_count(), 0);
    }
}
