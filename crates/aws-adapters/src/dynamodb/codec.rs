//! The task table's key schema and item codecs: how tasks, item outcomes and idempotency
//! records are keyed and written as DynamoDB items, and read back.
//!
//! | item            | pk              | sk            | also                                    |
//! |-----------------|-----------------|---------------|-----------------------------------------|
//! | task            | `TASK#{id}`     | `TASK`        | `gsi1pk = OWNER#{sha256(owner)}#TYPE#{type}`, `gsi1sk = {created_at ns, 20 digits}#{id}` (listing, newest first) |
//! | item outcomes   | `TASK#{id}`     | `OUTCOMES#000032` | items 32–63, one attribute each (`outcome_records`) |
//! | item outcome, before grouping | `TASK#{id}` | `ITEM#000042` | `idx`, `outcome` (succeeded/failed/cancelled/not_attempted), `body` (JSON) |
//! | idempotency key | `IDEMP#{scope}` | `IDEMP`       | `fingerprint`, `locked_at_ms`, `response` (JSON, once answered) |
//!
//! The scheduler's items share the `TASK#{id}` partition; their keys are in `lanes`.
//! `expires_at` (epoch seconds) is the table's TTL attribute.

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use tasks_core::identity::Owner;
use tasks_core::outcome::ItemOutcome;
use tasks_core::ports::StoreError;
use tasks_core::task::{Task, TaskId, TaskStatus, TaskType};
use tasks_core::tolerance::Tolerance;
use tasks_core::trace::Trace;
use tasks_core::upload::{FileFormat, InvalidRows, Upload, Validation};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub(crate) type Item = HashMap<String, AttributeValue>;

/// A record that does not decode: its attribute is named, its content never (it may be PII).
pub(crate) fn corrupt(what: &'static str) -> StoreError {
    StoreError::permanent(format!("corrupt record: {what}"))
}

/// The sort key of the last possible item outcome: `ITEM#{index, 6 digits}`.
pub(crate) const LAST_ITEM_SK: &str = "ITEM#999999";

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

pub(crate) fn task_pk(id: TaskId) -> String {
    format!("TASK#{id}")
}

pub(crate) fn item_sk(index: u32) -> String {
    format!("ITEM#{index:06}")
}

pub(crate) fn task_key(id: TaskId) -> Item {
    HashMap::from([("pk".into(), s(task_pk(id))), ("sk".into(), s("TASK"))])
}

pub(crate) fn item_key(id: TaskId, index: u32) -> Item {
    HashMap::from([
        ("pk".into(), s(task_pk(id))),
        ("sk".into(), s(item_sk(index))),
    ])
}

pub(crate) fn idempotency_key(scope: &str) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("IDEMP#{scope}"))),
        ("sk".into(), s("IDEMP")),
    ])
}

/// The GSI partition of one owner's tasks of one type.
pub(crate) fn listing_key(owner: &Owner, task_type: TaskType) -> String {
    format!("OWNER#{}#TYPE#{}", owner.storage_key(), task_type.slug())
}

pub(crate) fn is_task(item: &Item) -> bool {
    item.get("sk")
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        == Some("TASK")
}

pub(crate) fn task_to_item(task: &Task) -> Item {
    let mut item = task_key(task.id);
    item.insert("gsi1pk".into(), s(listing_key(&task.owner, task.task_type)));
    item.insert("gsi1sk".into(), s(task.list_position()));
    item.insert("task_type".into(), s(task.task_type.slug()));
    item.insert("owner".into(), s(task.owner.as_str()));
    item.insert("status".into(), s(task.status.as_str()));
    item.insert("total".into(), n(task.total));
    item.insert("succeeded".into(), n(task.succeeded));
    item.insert("failed".into(), n(task.failed));
    item.insert("cancelled".into(), n(task.cancelled));
    item.insert("not_attempted".into(), n(task.not_attempted));
    // The counters' sum, so a condition can tell whether a write completes the task
    // (`TaskStore::record_outcomes`).
    item.insert("processed".into(), n(task.processed()));
    // Only tasks created with this mark have their outcomes grouped: one stored before keeps
    // one item an outcome to its end.
    item.insert(
        super::outcome_records::GROUPED.into(),
        AttributeValue::Bool(true),
    );
    if let Some(p) = task.tolerance.percent {
        item.insert("tolerated_failure_percent".into(), n(p));
    }
    if let Some(c) = task.tolerance.count {
        item.insert("tolerated_failure_count".into(), n(c));
    }
    if let Some(t) = task.waiting_since {
        item.insert("waiting_since".into(), s(rfc3339(t)));
    }
    item.insert("created_at".into(), s(rfc3339(task.created_at)));
    item.insert("updated_at".into(), s(rfc3339(task.updated_at)));
    if let Some(t) = task.started_at {
        item.insert("started_at".into(), s(rfc3339(t)));
    }
    if let Some(t) = task.finished_at {
        item.insert("finished_at".into(), s(rfc3339(t)));
    }
    if let Some(t) = task.expires_at {
        item.insert("expires_at".into(), n(t.unix_timestamp()));
    }
    if let Some(t) = task.cancel_requested_at {
        item.insert("cancel_requested_at".into(), s(rfc3339(t)));
    }
    if let Some(id) = task.retry_of {
        item.insert("retry_of".into(), s(id.to_string()));
    }
    if let Some(id) = task.retried_by {
        item.insert("retried_by".into(), s(id.to_string()));
    }
    if let Some(upload) = &task.upload {
        item.insert("upload_type".into(), s(upload.format.content_type()));
        item.insert("upload_length".into(), n(upload.content_length));
        item.insert("upload_sha256".into(), s(upload.checksum_sha256.clone()));
        item.insert("invalid_rows".into(), s(upload.invalid_rows.as_str()));
        item.insert(
            "result_format".into(),
            s(upload.result_format.content_type()),
        );
        if task.result_files {
            item.insert("result_files".into(), AttributeValue::Bool(true));
        }
        validation_into(&mut item, &task.validation);
    }
    if let Some(rejection) = &task.rejection {
        if let Ok(json) = serde_json::to_string(rejection) {
            item.insert("rejection".into(), s(json));
        }
    }
    if let Some(trace) = &task.trace {
        // The X-Ray header (`Root=<trace id>;Parent=…;Sampled=…`): from a task to its trace.
        item.insert("trace".into(), s(trace.xray_header()));
    }
    item
}

pub(crate) fn task_from_item(item: &Item) -> Result<Task, StoreError> {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str);
    let num = |k: &'static str| -> Result<u32, StoreError> {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| corrupt(k))
    };
    let date = |k: &'static str| -> Result<Option<OffsetDateTime>, StoreError> {
        text(k)
            .map(|v| OffsetDateTime::parse(v, &Rfc3339).map_err(|_| corrupt(k)))
            .transpose()
    };
    let id = text("pk")
        .and_then(|pk| pk.strip_prefix("TASK#"))
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| corrupt("pk"))?;
    Ok(Task {
        id,
        task_type: text("task_type")
            .and_then(TaskType::from_slug)
            .ok_or_else(|| corrupt("task_type"))?,
        owner: text("owner")
            .and_then(Owner::from_subject)
            .ok_or_else(|| corrupt("owner"))?,
        status: text("status")
            .and_then(TaskStatus::parse)
            .ok_or_else(|| corrupt("status"))?,
        total: num("total")?,
        succeeded: num("succeeded")?,
        failed: num("failed")?,
        // Absent on records written before cancellation existed.
        cancelled: num("cancelled").unwrap_or(0),
        // Absent on records written before tolerated failures existed.
        not_attempted: num("not_attempted").unwrap_or(0),
        tolerance: Tolerance {
            percent: item
                .get("tolerated_failure_percent")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok()),
            count: num("tolerated_failure_count").ok(),
        },
        cancel_requested_at: date("cancel_requested_at")?,
        waiting_since: date("waiting_since")?,
        created_at: date("created_at")?.ok_or_else(|| corrupt("created_at"))?,
        started_at: date("started_at")?,
        updated_at: date("updated_at")?.ok_or_else(|| corrupt("updated_at"))?,
        finished_at: date("finished_at")?,
        expires_at: item
            .get("expires_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(|v| OffsetDateTime::from_unix_timestamp(v).ok()),
        // Absent on records written before tracing; never a reason to refuse a task.
        trace: text("trace").and_then(Trace::from_xray_header),
        retry_of: text("retry_of").and_then(|v| v.parse().ok()),
        retried_by: text("retried_by").and_then(|v| v.parse().ok()),
        upload: upload_from(item)?,
        validation: validation_from(item),
        result_files: item
            .get("result_files")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        rejection: text("rejection")
            .map(|v| serde_json::from_str(v).map_err(|_| corrupt("rejection")))
            .transpose()?,
    })
}

/// The attributes of a task's ingest checkpoint (`upload::Validation`), one number each.
pub(crate) const VALIDATION_ATTRIBUTES: [&str; 6] = [
    "rows_read",
    "rows_valid",
    "rows_invalid",
    "chunks_stored",
    "invalid_recorded",
    "admitted",
];

pub(crate) fn validation_values(v: &Validation) -> [u32; 6] {
    [
        v.rows_read,
        v.rows_valid,
        v.rows_invalid,
        v.chunks_stored,
        v.invalid_recorded,
        u32::from(v.admitted),
    ]
}

fn validation_into(item: &mut Item, v: &Validation) {
    for (name, value) in VALIDATION_ATTRIBUTES.iter().zip(validation_values(v)) {
        item.insert((*name).into(), n(value));
    }
}

fn validation_from(item: &Item) -> Validation {
    let num = |k: &str| -> u32 {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Validation {
        rows_read: num("rows_read"),
        rows_valid: num("rows_valid"),
        rows_invalid: num("rows_invalid"),
        chunks_stored: num("chunks_stored"),
        invalid_recorded: num("invalid_recorded"),
        admitted: num("admitted") == 1,
    }
}

fn upload_from(item: &Item) -> Result<Option<Upload>, StoreError> {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str);
    let Some(content_type) = text("upload_type") else {
        return Ok(None);
    };
    Ok(Some(Upload {
        format: FileFormat::parse(content_type).ok_or_else(|| corrupt("upload_type"))?,
        content_length: item
            .get("upload_length")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| corrupt("upload_length"))?,
        checksum_sha256: text("upload_sha256")
            .ok_or_else(|| corrupt("upload_sha256"))?
            .to_owned(),
        invalid_rows: text("invalid_rows")
            .and_then(InvalidRows::parse)
            .ok_or_else(|| corrupt("invalid_rows"))?,
        result_format: text("result_format")
            .and_then(FileFormat::parse)
            .ok_or_else(|| corrupt("result_format"))?,
    }))
}

/// The index of an item-outcome record (`idx`).
pub(crate) fn index_of(item: &Item) -> Option<u32> {
    item.get("idx")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

pub(crate) fn outcome_to_item(
    id: TaskId,
    o: &ItemOutcome,
    expires_at: OffsetDateTime,
) -> Result<Item, StoreError> {
    let body = serde_json::to_string(o).map_err(StoreError::permanent)?;
    let mut item = HashMap::from([
        ("pk".into(), s(task_pk(id))),
        ("sk".into(), s(item_sk(o.index))),
        ("idx".into(), n(o.index)),
        ("outcome".into(), s(o.result.status())),
        ("body".into(), s(body)),
        ("expires_at".into(), n(expires_at.unix_timestamp())),
    ]);
    if let Some(input) = &o.input {
        let input = serde_json::to_string(input).map_err(StoreError::permanent)?;
        item.insert("input".into(), s(input));
    }
    if let Some(key) = &o.bos_key {
        item.insert("bos_key".into(), s(key.clone()));
    }
    Ok(item)
}

pub(crate) fn outcome_from_item(item: &Item) -> Result<ItemOutcome, StoreError> {
    let body = item
        .get("body")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| corrupt("body"))?;
    let mut outcome: ItemOutcome = serde_json::from_str(body).map_err(|_| corrupt("body"))?;
    outcome.input = match item.get("input").and_then(|v| v.as_s().ok()) {
        Some(input) => Some(serde_json::from_str(input).map_err(|_| corrupt("input"))?),
        None => None,
    };
    outcome.bos_key = item.get("bos_key").and_then(|v| v.as_s().ok()).cloned();
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn task_items_round_trip() {
        let owner = Owner::from_subject("alice").unwrap();
        let mut t = Task::new(
            TaskType::BeneficiariesImport,
            owner,
            7,
            OffsetDateTime::UNIX_EPOCH,
        );
        t.succeeded = 3;
        t.expires_at = Some(OffsetDateTime::UNIX_EPOCH + Duration::from_secs(86_400));
        assert_eq!(task_from_item(&task_to_item(&t)).unwrap(), t);
        t.trace = Some(Trace::new_root());
        t.retry_of = Some(TaskId::new_random());
        t.retried_by = Some(TaskId::new_random());
        assert_eq!(task_from_item(&task_to_item(&t)).unwrap(), t);
        t.upload = Some(Upload {
            format: FileFormat::Ndjson,
            content_length: 12,
            checksum_sha256: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".into(),
            invalid_rows: InvalidRows::Skip,
            result_format: FileFormat::Csv,
        });
        t.result_files = true;
        t.validation = Validation {
            rows_read: 5,
            rows_valid: 4,
            rows_invalid: 1,
            chunks_stored: 1,
            invalid_recorded: 3,
            admitted: true,
        };
        t.rejection = Some(tasks_core::error_body::ErrorObject {
            code: "invalid_rows".into(),
            message: "1 of 5 rows are invalid.".into(),
            details: vec![],
        });
        assert_eq!(task_from_item(&task_to_item(&t)).unwrap(), t);
    }

    #[test]
    fn sort_keys_order_numerically() {
        assert!(item_sk(9) < item_sk(10));
        assert!(item_sk(99_999) < item_sk(100_000));
        assert!(item_sk(999_999).as_str() <= LAST_ITEM_SK);
    }
}
