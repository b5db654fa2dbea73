//! The task store on one DynamoDB table (single-table design):
//!
//! | item            | pk              | sk            | also                                    |
//! |-----------------|-----------------|---------------|-----------------------------------------|
//! | task            | `TASK#{id}`     | `TASK`        | `gsi1pk = OWNER#{sha256(owner)}#TYPE#{type}`, `gsi1sk = {created_at ns, 20 digits}#{id}` (listing, newest first) |
//! | item outcome    | `TASK#{id}`     | `ITEM#000042` | `outcome` (succeeded/failed/cancelled), `body` (JSON) |
//! | idempotency key | `IDEMP#{scope}` | `IDEMP`       | `fingerprint`, `locked_at_ms`, `response` (JSON, once answered) |

//!
//! `expires_at` (epoch seconds) is the table's TTL attribute. Every attribute name in an
//! expression goes through `#names`, since DynamoDB reserves many common words (`status`).

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tasks_core::identity::Owner;
use tasks_core::ports::{
    CancelOutcome, IdempotencyBegin, IdempotencyStore, ItemOutcome, OutcomeFilter, Recorded,
    StoreError, StoredResponse, Tally, TaskStore,
};

use tasks_core::task::{Task, TaskId, TaskStatus, TaskType};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub(crate) type Item = HashMap<String, AttributeValue>;

/// One transaction holds at most 100 actions: 99 outcomes and the counter update.
const OUTCOMES_PER_TRANSACTION: usize = 99;
const KEYS_PER_BATCH_GET: usize = 100;

#[derive(Clone)]
pub struct DynamoTaskStore {
    client: Client,
    table: String,
}

pub(crate) fn task_pk(id: TaskId) -> String {
    format!("TASK#{id}")
}

fn item_sk(index: u32) -> String {
    format!("ITEM#{index:06}")
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Throttling, time-outs and network trouble are worth a retry; the rest are not.
pub(crate) fn store_error<
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
>(
    e: SdkError<E, R>,
) -> StoreError {
    const RETRYABLE: [&str; 6] = [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "TransactionConflictException",
        "TransactionInProgressException",
    ];
    let retryable = match &e {
        SdkError::ServiceError(se) => se.err().code().is_some_and(|c| RETRYABLE.contains(&c)),
        _ => true,
    };
    let text = DisplayErrorContext(e).to_string();
    if retryable {
        StoreError::Unavailable(text)
    } else {
        StoreError::Other(text)
    }
}

/// A strongly consistent read of one item (shared by the task and lane stores).
pub(crate) async fn get_consistent(
    client: &Client,
    table: &str,
    key: Item,
) -> Result<Option<Item>, StoreError> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .map_err(store_error)?;
    Ok(out.item)
}

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Other(format!("corrupt record: {what}"))
}

impl DynamoTaskStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(config), table)
    }

    /// The lane store on the same table and the same client: every client built costs
    /// cold-start time.
    pub fn lanes(&self) -> crate::DynamoLanes {
        crate::DynamoLanes::new(self.client.clone(), self.table.clone())
    }

    fn task_key(id: TaskId) -> Item {
        HashMap::from([("pk".into(), s(task_pk(id))), ("sk".into(), s("TASK"))])
    }

    fn task_to_item(task: &Task) -> Item {
        let mut item = Self::task_key(task.id);
        item.insert(
            "gsi1pk".into(),
            s(Self::listing_key(&task.owner, task.task_type)),
        );
        item.insert("gsi1sk".into(), s(task.list_position()));
        item.insert("task_type".into(), s(task.task_type.slug()));
        item.insert("owner".into(), s(task.owner.as_str()));
        item.insert("status".into(), s(task.status.as_str()));
        item.insert("total".into(), n(task.total));
        item.insert("succeeded".into(), n(task.succeeded));
        item.insert("failed".into(), n(task.failed));
        item.insert("cancelled".into(), n(task.cancelled));
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
        item
    }

    /// The GSI partition of one owner's tasks of one type.
    fn listing_key(owner: &Owner, task_type: TaskType) -> String {
        format!("OWNER#{}#TYPE#{}", owner.storage_key(), task_type.slug())
    }

    fn task_from_item(item: &Item) -> Result<Task, StoreError> {
        let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str);
        let num = |k: &str| -> Result<u32, StoreError> {
            item.get(k)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| corrupt(k))
        };
        let date = |k: &str| -> Result<Option<OffsetDateTime>, StoreError> {
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
            cancel_requested_at: date("cancel_requested_at")?,
            created_at: date("created_at")?.ok_or_else(|| corrupt("created_at"))?,
            started_at: date("started_at")?,
            updated_at: date("updated_at")?.ok_or_else(|| corrupt("updated_at"))?,
            finished_at: date("finished_at")?,
            expires_at: item
                .get("expires_at")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
                .and_then(|v| OffsetDateTime::from_unix_timestamp(v).ok()),
        })
    }

    fn item_key(id: TaskId, index: u32) -> Item {
        HashMap::from([
            ("pk".into(), s(task_pk(id))),
            ("sk".into(), s(item_sk(index))),
        ])
    }

    fn index_of(item: &Item) -> Option<u32> {
        item.get("idx")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
    }

    /// Strongly consistent `BatchGetItem` of any number of keys (100 per call), retrying
    /// unprocessed keys with backoff; `projection` names the one attribute wanted, if any.
    async fn batch_get(
        &self,
        keys: Vec<Item>,
        projection: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::new();
        for group in keys.chunks(KEYS_PER_BATCH_GET) {
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(group.to_vec()))
                .consistent_read(true);
            if let Some(attribute) = projection {
                request = request
                    .projection_expression("#p")
                    .expression_attribute_names("#p", attribute);
            }
            let mut request = Some(
                request
                    .build()
                    .map_err(|e| StoreError::Other(e.to_string()))?,
            );
            let mut round = 0u32;
            while let Some(keys) = request.take() {
                if round > 0 {
                    tokio::time::sleep(Duration::from_millis(20 << round.min(6))).await;
                }
                round += 1;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .send()
                    .await
                    .map_err(store_error)?;
                if let Some(items) = out.responses().and_then(|r| r.get(&self.table)) {
                    found.extend(items.iter().cloned());
                }
                request = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .filter(|k| !k.keys().is_empty())
                    .cloned();
                if round > 10 && request.is_some() {
                    return Err(StoreError::Unavailable(
                        "batch get kept returning unprocessed keys".into(),
                    ));
                }
            }
        }
        Ok(found)
    }

    async fn get_consistent(&self, key: Item) -> Result<Option<Item>, StoreError> {
        get_consistent(&self.client, &self.table, key).await
    }

    fn idempotency_key(scope: &str) -> Item {
        HashMap::from([
            ("pk".into(), s(format!("IDEMP#{scope}"))),
            ("sk".into(), s("IDEMP")),
        ])
    }

    fn outcome_to_item(
        id: TaskId,
        o: &ItemOutcome,
        expires_at: OffsetDateTime,
    ) -> Result<Item, StoreError> {
        let body = serde_json::to_string(o).map_err(|e| StoreError::Other(e.to_string()))?;
        Ok(HashMap::from([
            ("pk".into(), s(task_pk(id))),
            ("sk".into(), s(item_sk(o.index))),
            ("idx".into(), n(o.index)),
            ("outcome".into(), s(o.result.status())),
            ("body".into(), s(body)),
            ("expires_at".into(), n(expires_at.unix_timestamp())),
        ]))
    }

    async fn record_group(
        &self,
        id: TaskId,
        outcomes: &[ItemOutcome],
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<Recorded, StoreError> {
        let tally = Tally::of(outcomes);
        let mut actions = Vec::with_capacity(outcomes.len() + 1);
        for o in outcomes {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(Self::outcome_to_item(id, o, expires_at)?))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", "pk")
                .build()
                .map_err(|e| StoreError::Other(e.to_string()))?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::task_key(id)))
            .update_expression(
                "ADD #succeeded :s, #failed :f, #cancelled :c SET #updated_at = :now",
            )
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#succeeded", "succeeded")
            .expression_attribute_names("#failed", "failed")
            .expression_attribute_names("#cancelled", "cancelled")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_values(":s", n(tally.succeeded))
            .expression_attribute_values(":f", n(tally.failed))
            .expression_attribute_values(":c", n(tally.cancelled))
            .expression_attribute_values(":now", s(rfc3339(now)))
            .build()
            .map_err(|e| StoreError::Other(e.to_string()))?;
        actions.push(TransactWriteItem::builder().update(update).build());

        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Recorded::All),
            Err(SdkError::ServiceError(se)) => {
                if let TransactWriteItemsError::TransactionCanceledException(tc) = se.err() {
                    let reasons = tc.cancellation_reasons();
                    let failed_at = |i: usize| {
                        reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed")
                    };
                    if (0..outcomes.len()).any(failed_at) {
                        return Ok(Recorded::Conflict);
                    }
                    if failed_at(outcomes.len()) {
                        return Err(StoreError::Other(
                            "task not found while recording outcomes".into(),
                        ));
                    }
                }
                Err(store_error(SdkError::ServiceError(se)))
            }
            Err(e) => Err(store_error(e)),
        }
    }
}

#[async_trait]
impl TaskStore for DynamoTaskStore {
    #[tracing::instrument(skip_all, fields(task_id = %task.id))]
    async fn insert_task(&self, task: &Task) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::task_to_item(task)))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn get_task(&self, id: TaskId) -> Result<Option<Task>, StoreError> {
        self.get_consistent(Self::task_key(id))
            .await?
            .as_ref()
            .map(Self::task_from_item)
            .transpose()
    }

    async fn delete_task(&self, id: TaskId) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::task_key(id)))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(task_id = %id, to = to.as_str()))]
    async fn transition(
        &self,
        id: TaskId,
        from: TaskStatus,
        to: TaskStatus,
        now: OffsetDateTime,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        if !from.can_become(to) {
            return Ok(false);
        }
        let mut set = vec!["#status = :to", "#updated_at = :now"];
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::task_key(id)))
            .condition_expression("#status = :from")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_values(":from", s(from.as_str()))
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":now", s(rfc3339(now)));
        if to == TaskStatus::Running {
            set.push("#started_at = if_not_exists(#started_at, :now)");
            req = req.expression_attribute_names("#started_at", "started_at");
        }
        if to.is_final() {
            set.push("#finished_at = :now");
            req = req.expression_attribute_names("#finished_at", "finished_at");
            if let Some(exp) = expires_at {
                set.push("#expires_at = :exp");
                req = req
                    .expression_attribute_names("#expires_at", "expires_at")
                    .expression_attribute_values(":exp", n(exp.unix_timestamp()));
            }
        }
        match req
            .update_expression(format!("SET {}", set.join(", ")))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(store_error(e)),
        }
    }

    async fn final_items(&self, id: TaskId, indexes: &[u32]) -> Result<HashSet<u32>, StoreError> {
        let keys = indexes.iter().map(|i| Self::item_key(id, *i)).collect();
        let items = self.batch_get(keys, Some("idx")).await?;
        Ok(items.iter().filter_map(Self::index_of).collect())
    }

    /// The task and its chunk's final items in one `BatchGetItem` (for up to 99 items).
    async fn chunk_state(
        &self,
        id: TaskId,
        indexes: &[u32],
    ) -> Result<Option<(Task, HashSet<u32>)>, StoreError> {
        let mut keys = vec![Self::task_key(id)];
        keys.extend(indexes.iter().map(|i| Self::item_key(id, *i)));
        let items = self.batch_get(keys, None).await?;
        let mut task = None;
        let mut done = HashSet::new();
        for item in &items {
            if item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
                == Some("TASK")
            {
                task = Some(Self::task_from_item(item)?);
            } else if let Some(i) = Self::index_of(item) {
                done.insert(i);
            }
        }
        Ok(task.map(|t| (t, done)))
    }

    #[tracing::instrument(skip_all, fields(task_id = %id, outcomes = outcomes.len()))]
    async fn record_outcomes(
        &self,
        id: TaskId,
        outcomes: &[ItemOutcome],
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<Recorded, StoreError> {
        for group in outcomes.chunks(OUTCOMES_PER_TRANSACTION) {
            if self.record_group(id, group, now, expires_at).await? == Recorded::Conflict {
                return Ok(Recorded::Conflict);
            }
        }
        Ok(Recorded::All)
    }

    #[tracing::instrument(skip_all, fields(task_id = %id))]
    async fn request_cancel(
        &self,
        id: TaskId,
        now: OffsetDateTime,
    ) -> Result<CancelOutcome, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::task_key(id)))
            .update_expression("SET #cra = if_not_exists(#cra, :now), #updated_at = :now")
            .condition_expression("attribute_exists(#pk) AND #status IN (:queued, :running)")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#cra", "cancel_requested_at")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", s(rfc3339(now)))
            .expression_attribute_values(":queued", s(TaskStatus::Queued.as_str()))
            .expression_attribute_values(":running", s(TaskStatus::Running.as_str()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out
                    .attributes()
                    .ok_or_else(|| corrupt("no attributes returned"))?;
                Ok(CancelOutcome::Requested(Self::task_from_item(item)?))
            }
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Ok(match self.get_task(id).await? {
                    Some(task) => CancelOutcome::AlreadyFinal(task),
                    None => CancelOutcome::NotFound,
                })
            }
            Err(e) => Err(store_error(e)),
        }
    }

    async fn list_tasks(
        &self,
        owner: &Owner,
        task_type: TaskType,
        status: Option<TaskStatus>,
        after: Option<&str>,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<(Vec<Task>, bool), StoreError> {
        let partition = Self::listing_key(owner, task_type);
        let mut tasks: Vec<Task> = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("gsi1")
                .scan_index_forward(false)
                .expression_attribute_names("#gpk", "gsi1pk")
                .expression_attribute_values(":gpk", s(&partition))
                .expression_attribute_names("#exp", "expires_at")
                .expression_attribute_values(":now", n(now.unix_timestamp()))
                .limit((limit + 1 - tasks.len()).max(1) as i32)
                .set_exclusive_start_key(start.take());
            q = match after {
                Some(position) => q
                    .key_condition_expression("#gpk = :gpk AND #gsk < :after")
                    .expression_attribute_names("#gsk", "gsi1sk")
                    .expression_attribute_values(":after", s(position)),
                None => q.key_condition_expression("#gpk = :gpk"),
            };
            let mut filter = "(attribute_not_exists(#exp) OR #exp > :now)".to_owned();
            if let Some(st) = status {
                filter.push_str(" AND #status = :status");
                q = q
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":status", s(st.as_str()));
            }
            let out = q
                .filter_expression(filter)
                .send()
                .await
                .map_err(store_error)?;
            for item in out.items() {
                tasks.push(Self::task_from_item(item)?);
            }
            start = out.last_evaluated_key().cloned();
            if tasks.len() > limit || start.is_none() {
                break;
            }
        }
        let more = tasks.len() > limit;
        tasks.truncate(limit);
        Ok((tasks, more))
    }

    async fn list_outcomes(
        &self,
        id: TaskId,
        filter: OutcomeFilter,
        after: Option<u32>,
        limit: usize,
    ) -> Result<(Vec<ItemOutcome>, bool), StoreError> {
        let from = item_sk(after.map_or(0, |a| a + 1));
        let mut items: Vec<ItemOutcome> = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_names("#sk", "sk")
                .expression_attribute_values(":pk", s(task_pk(id)))
                .expression_attribute_values(":from", s(&from))
                .expression_attribute_values(":to", s("ITEM#999999"))
                .consistent_read(true)
                // One more than asked: tells whether another page exists.
                .limit((limit + 1 - items.len()) as i32)
                .set_exclusive_start_key(start.take());
            if filter == OutcomeFilter::FailedOnly {
                q = q
                    .filter_expression("#outcome = :failed")
                    .expression_attribute_names("#outcome", "outcome")
                    .expression_attribute_values(":failed", s("failed"));
            }
            let out = q.send().await.map_err(store_error)?;
            for item in out.items() {
                let body = item
                    .get("body")
                    .and_then(|v| v.as_s().ok())
                    .ok_or_else(|| corrupt("body"))?;
                items.push(serde_json::from_str(body).map_err(|_| corrupt("body"))?);
            }
            start = out.last_evaluated_key().cloned();
            if items.len() > limit || start.is_none() {
                break;
            }
        }
        let more = items.len() > limit;
        items.truncate(limit);
        Ok((items, more))
    }
}

#[async_trait]
impl IdempotencyStore for DynamoTaskStore {
    async fn begin(
        &self,
        scope: &str,
        fingerprint: &str,
        now: OffsetDateTime,
        stale_after: Duration,
        expires_at: OffsetDateTime,
    ) -> Result<IdempotencyBegin, StoreError> {
        let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        let mut item = Self::idempotency_key(scope);
        item.insert("fingerprint".into(), s(fingerprint));
        item.insert("locked_at_ms".into(), n(now_ms));
        item.insert("expires_at".into(), n(expires_at.unix_timestamp()));
        let claimed = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // An expired record is as good as none: TTL deletion is lazy.
            .condition_expression("attribute_not_exists(#pk) OR #exp < :now")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#exp", "expires_at")
            .expression_attribute_values(":now", n(now.unix_timestamp()))
            .send()
            .await;
        match claimed {
            Ok(_) => return Ok(IdempotencyBegin::Proceed),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
            }
            Err(e) => return Err(store_error(e)),
        }
        // Someone holds the key: compare payloads on this path too, then replay or wait.
        let existing = self.get_consistent(Self::idempotency_key(scope)).await?;
        let Some(existing) = existing.as_ref() else {
            // Released between our two calls; the client may simply retry.
            return Ok(IdempotencyBegin::InProgress);
        };
        let text = |k: &str| existing.get(k).and_then(|v| v.as_s().ok());
        if text("fingerprint").map(String::as_str) != Some(fingerprint) {
            return Ok(IdempotencyBegin::Mismatch);
        }
        if let Some(body) = text("response") {
            let response: StoredResponse =
                serde_json::from_str(body).map_err(|_| corrupt("idempotency response"))?;
            return Ok(IdempotencyBegin::Replay(response));
        }
        let locked_at = existing
            .get("locked_at_ms")
            .and_then(|v| v.as_n().ok())
            .cloned()
            .unwrap_or_default();
        let stale = locked_at
            .parse::<i64>()
            .map_or(true, |t| t + stale_after.as_millis() as i64 <= now_ms);
        if !stale {
            return Ok(IdempotencyBegin::InProgress);
        }
        // Take over an abandoned claim, unless someone else just did.
        let takeover = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::idempotency_key(scope)))
            .update_expression("SET #locked = :now")
            .condition_expression("#locked = :old AND attribute_not_exists(#resp)")
            .expression_attribute_names("#locked", "locked_at_ms")
            .expression_attribute_names("#resp", "response")
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":old", AttributeValue::N(locked_at))
            .send()
            .await;
        match takeover {
            Ok(_) => Ok(IdempotencyBegin::Proceed),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Ok(IdempotencyBegin::InProgress)
            }
            Err(e) => Err(store_error(e)),
        }
    }

    async fn complete(&self, scope: &str, response: &StoredResponse) -> Result<(), StoreError> {
        let body = serde_json::to_string(response).map_err(|e| StoreError::Other(e.to_string()))?;
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::idempotency_key(scope)))
            .update_expression("SET #resp = :r")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#resp", "response")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_values(":r", s(body))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn abandon(&self, scope: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::idempotency_key(scope)))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn task_items_round_trip() {
        let owner = Owner::from_subject("alice").unwrap();
        let mut t = Task::new(
            TaskType::BENEFICIARIES_IMPORT,
            owner,
            7,
            OffsetDateTime::UNIX_EPOCH,
        );
        t.succeeded = 3;
        t.expires_at = Some(OffsetDateTime::UNIX_EPOCH + Duration::from_secs(86_400));
        let back = DynamoTaskStore::task_from_item(&DynamoTaskStore::task_to_item(&t)).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn sort_keys_order_numerically() {
        assert!(item_sk(9) < item_sk(10));
        assert!(item_sk(99_999) < item_sk(100_000));
    }
}
