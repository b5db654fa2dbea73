//! [`TaskStore`] on the task table: tasks, their item outcomes and the counters that move
//! with them (keys and codecs in `codec`).

use super::breaker_store;
use super::codec::corrupt;
use super::codec::{
    self, index_of, is_task, item_key, listing_key, n, outcome_from_item, outcome_to_item, rfc3339,
    s, task_from_item, task_key, task_pk, task_to_item,
};
use super::outcome_records;
use super::table::{build_error, store_error, Table};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use std::collections::HashSet;
use tasks_core::breaker::BreakerRecord;
use tasks_core::chunk::MAX_CHUNK_SIZE;
use tasks_core::identity::Owner;
use tasks_core::outcome::{ItemOutcome, Tally};
use tasks_core::ports::{
    CancelOutcome, ChunkState, OutcomeFilter, Recorded, StoreError, TaskStore, ValidationEnd,
};
use tasks_core::task::{Task, TaskId, TaskStatus, TaskType};
use tasks_core::upload::Validation;
use time::OffsetDateTime;

/// The task store; the idempotency store (`idempotency_store`) is the same table and client.
#[derive(Clone)]
pub struct DynamoTaskStore {
    pub(crate) table: Table,
}

impl DynamoTaskStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            table: Table {
                client,
                name: table.into(),
            },
        }
    }

    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(config), table)
    }

    /// The lane store on the same table and the same client: every client built costs
    /// cold-start time.
    pub fn lanes(&self) -> super::DynamoLanes {
        super::DynamoLanes::new(self.table.client.clone(), self.table.name.clone())
    }

    fn client(&self) -> &Client {
        &self.table.client
    }

    /// The outcomes' transaction in `layout`; with `below`, only if the task's `processed`
    /// count is less.
    async fn write_outcomes(
        &self,
        write: &OutcomeWrite<'_>,
        layout: Layout,
        counting: Counting,
        below: Option<u32>,
    ) -> Result<Written, StoreError> {
        let OutcomeWrite {
            id,
            outcomes,
            now,
            expires_at,
        } = *write;
        let tally = Tally::of(outcomes);
        let mut actions = Vec::with_capacity(outcomes.len() + 1);
        match layout {
            Layout::Grouped => {
                for update in outcome_records::updates(&self.table.name, id, outcomes, expires_at)?
                {
                    actions.push(TransactWriteItem::builder().update(update).build());
                }
            }
            Layout::PerItem => {
                for o in outcomes {
                    let put = Put::builder()
                        .table_name(&self.table.name)
                        .set_item(Some(outcome_to_item(id, o, expires_at)?))
                        .condition_expression("attribute_not_exists(#pk)")
                        .expression_attribute_names("#pk", "pk")
                        .build()
                        .map_err(build_error)?;
                    actions.push(TransactWriteItem::builder().put(put).build());
                }
            }
        }
        let mut add = "ADD #succeeded :s, #failed :f, #cancelled :c, #not_attempted :na".to_owned();
        let mut update = Update::builder()
            .table_name(&self.table.name)
            .set_key(Some(task_key(id)))
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#succeeded", "succeeded")
            .expression_attribute_names("#failed", "failed")
            .expression_attribute_names("#cancelled", "cancelled")
            .expression_attribute_names("#not_attempted", "not_attempted")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_values(":s", n(tally.succeeded))
            .expression_attribute_values(":f", n(tally.failed))
            .expression_attribute_values(":c", n(tally.cancelled))
            .expression_attribute_values(":na", n(tally.not_attempted))
            .expression_attribute_values(":now", s(rfc3339(now)));
        if counting == Counting::Processed {
            add.push_str(", #processed :p");
            update = update
                .expression_attribute_names("#processed", "processed")
                .expression_attribute_values(":p", n(tally.total()));
        }
        let mut conditions = vec!["attribute_exists(#pk)"];
        if layout == Layout::Grouped {
            conditions.push("#grouped = :grouped");
            update = update
                .expression_attribute_names("#grouped", outcome_records::GROUPED)
                .expression_attribute_values(":grouped", AttributeValue::Bool(true));
        }
        if let Some(below) = below {
            conditions.push("#processed < :below");
            update = update
                .expression_attribute_names("#processed", "processed")
                .expression_attribute_values(":below", n(below));
        }
        if conditions.len() > 1 {
            // The task as it stood says which of its conditions failed.
            update = update.return_values_on_condition_check_failure(AllOld);
        }
        let update = update
            .condition_expression(conditions.join(" AND "))
            .update_expression(format!("{add} SET #updated_at = :now"))
            .build()
            .map_err(build_error)?;
        actions.push(TransactWriteItem::builder().update(update).build());

        let task_at = actions.len() - 1;
        match self.table.transact(actions).await? {
            Ok(()) => Ok(Written::Done),
            Err(cancelled) if (0..task_at).any(|i| cancelled.condition_failed_at(i)) => {
                Ok(Written::Conflict)
            }
            Err(cancelled) => match cancelled.item_at(task_at) {
                Some(task)
                    if layout == Layout::Grouped
                        && !task.contains_key(outcome_records::GROUPED) =>
                {
                    Ok(Written::PerItem {
                        counted: task.contains_key("processed"),
                    })
                }
                Some(task) if below.is_some() => Ok(Written::Limit {
                    counted: task.contains_key("processed"),
                }),
                _ if cancelled.condition_failed_at(task_at) => Err(StoreError::permanent(
                    "task not found while recording outcomes",
                )),
                // Only another transaction was in the way: a retry will do.
                _ => Err(StoreError::transient(
                    "outcomes' transaction conflicted with another",
                )),
            },
        }
    }

    /// Which of `indexes` have an outcome; with `for_chunk`, also the task (`None` when it is
    /// gone) and the breaker's record, which a chunk reads as it starts anyway. The task, the
    /// records that hold the outcomes and the breaker come in one `BatchGetItem`; the items of
    /// a task stored before grouping in a second.
    async fn finals(
        &self,
        id: TaskId,
        indexes: &[u32],
        for_chunk: bool,
    ) -> Result<(Option<Task>, HashSet<u32>, Option<BreakerRecord>), StoreError> {
        let wanted: HashSet<u32> = indexes.iter().copied().collect();
        let mut keys = vec![task_key(id)];
        keys.extend(outcome_records::record_keys(id, indexes));
        if for_chunk {
            keys.push(breaker_store::breaker_key());
        }
        let items = self.table.batch_get(keys, None).await?;
        let mut task = None;
        let mut grouped = false;
        let mut done = HashSet::new();
        // A breaker never written is closed, as `read_breaker` reads it.
        let mut breaker = for_chunk.then(BreakerRecord::default);
        for item in &items {
            if is_task(item) {
                grouped = item.contains_key(outcome_records::GROUPED);
                if for_chunk {
                    task = Some(task_from_item(item)?);
                }
            } else if outcome_records::is_record(item) {
                done.extend(outcome_records::indexes(item).filter(|i| wanted.contains(i)));
            } else if breaker_store::is_breaker(item) {
                breaker = Some(breaker_store::from_item(item)?);
            }
        }
        if !grouped {
            let keys = indexes.iter().map(|i| item_key(id, *i)).collect();
            let items = self.table.batch_get(keys, Some("idx")).await?;
            done.extend(items.iter().filter_map(index_of));
        }
        Ok((task, done, breaker))
    }

    /// A page of a task's grouped outcomes from index `from`: the records from the one that
    /// holds it, decoded and filtered here. Also says whether any record was there at all.
    async fn grouped_outcomes(
        &self,
        id: TaskId,
        filter: OutcomeFilter,
        from: u32,
        limit: usize,
    ) -> Result<(Vec<ItemOutcome>, bool, bool), StoreError> {
        let query = self
            .client()
            .query()
            .table_name(&self.table.name)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":pk", s(task_pk(id)))
            .expression_attribute_values(
                ":from",
                s(outcome_records::record_sk(outcome_records::record_of(from))),
            )
            .expression_attribute_values(":to", s(outcome_records::LAST_RECORD_SK))
            .consistent_read(true);
        let mut found = Vec::new();
        let mut any = false;
        let mut start = None;
        loop {
            // Enough records for the rest of the page if none is filtered out, and one more.
            let wanted =
                (limit + 1 - found.len()) / outcome_records::OUTCOMES_PER_RECORD as usize + 2;
            let out = query
                .clone()
                .limit(wanted as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(store_error)?;
            for record in out.items() {
                any = true;
                found.extend(
                    outcome_records::outcomes(record)?
                        .into_iter()
                        .filter(|o| o.index >= from && filter.keeps(o)),
                );
            }
            start = out.last_evaluated_key().cloned();
            if found.len() > limit || start.is_none() {
                break;
            }
        }
        let more = found.len() > limit;
        found.truncate(limit);
        Ok((found, more, any))
    }
}

/// One chunk's outcomes on their way to the table.
#[derive(Clone, Copy)]
struct OutcomeWrite<'a> {
    id: TaskId,
    outcomes: &'a [ItemOutcome],
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
}

/// Whether a write adds to the task's `processed` count: not for a task written before it
/// existed, whose count would start from the middle and lie.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Counting {
    Processed,
    Legacy,
}

/// How a task's outcomes are stored (`outcome_records`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// In records of consecutive items: every task created since grouping.
    Grouped,
    /// One item each: a task stored before grouping.
    PerItem,
}

/// How an outcomes' transaction ended.
enum Written {
    Done,
    /// An item had an outcome already.
    Conflict,
    /// The task was stored before grouping; `counted`: it has a `processed` count.
    PerItem {
        counted: bool,
    },
    /// The task's `processed` count was not below the limit; `counted`: it has one at all.
    Limit {
        counted: bool,
    },
}

/// Adds to a task update what every move to a final status writes: when it finished, and
/// when the finished task's record expires, if it does.
fn set_finished(
    mut req: UpdateItemFluentBuilder,
    set: &mut Vec<String>,
    to: TaskStatus,
    expires_at: Option<OffsetDateTime>,
) -> UpdateItemFluentBuilder {
    if to.is_final() {
        set.push("#finished_at = :now".into());
        req = req.expression_attribute_names("#finished_at", "finished_at");
        if let Some(exp) = expires_at {
            set.push("#expires_at = :exp".into());
            req = req
                .expression_attribute_names("#expires_at", "expires_at")
                .expression_attribute_values(":exp", n(exp.unix_timestamp()));
        }
    }
    req
}

#[async_trait]
impl TaskStore for DynamoTaskStore {
    #[tracing::instrument(skip_all, fields(task_id = %task.id))]
    async fn insert_task(&self, task: &Task) -> Result<(), StoreError> {
        // Its id is random: a put that finds one is a bug worth an error, not a `false`.
        if !self.table.put_new(task_to_item(task)).await? {
            return Err(StoreError::permanent("task id already taken"));
        }
        Ok(())
    }

    async fn get_task(&self, id: TaskId) -> Result<Option<Task>, StoreError> {
        self.table
            .get(task_key(id))
            .await?
            .as_ref()
            .map(task_from_item)
            .transpose()
    }

    async fn delete_task(&self, id: TaskId) -> Result<(), StoreError> {
        self.client()
            .delete_item()
            .table_name(&self.table.name)
            .set_key(Some(task_key(id)))
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
        let mut set: Vec<String> = vec!["#status = :to".into(), "#updated_at = :now".into()];
        let mut req = self
            .client()
            .update_item()
            .set_key(Some(task_key(id)))
            .condition_expression("#status = :from")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_values(":from", s(from.as_str()))
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":now", s(rfc3339(now)));
        if matches!(to, TaskStatus::Running | TaskStatus::Validating) {
            set.push("#started_at = if_not_exists(#started_at, :now)".into());
            req = req.expression_attribute_names("#started_at", "started_at");
        }
        // The open upload session's expiry ends with it.
        let mut remove = "";
        if from == TaskStatus::AwaitingUpload && !to.is_final() {
            remove = " REMOVE #expires_at";
            req = req.expression_attribute_names("#expires_at", "expires_at");
        }
        let req = set_finished(req, &mut set, to, expires_at);
        self.table
            .update_if(req.update_expression(format!("SET {}{remove}", set.join(", "))))
            .await
    }

    async fn final_items(&self, id: TaskId, indexes: &[u32]) -> Result<HashSet<u32>, StoreError> {
        Ok(self.finals(id, indexes, false).await?.1)
    }

    /// The task, the records of its chunk's items and the breaker in one `BatchGetItem`.
    async fn chunk_state(
        &self,
        id: TaskId,
        indexes: &[u32],
    ) -> Result<Option<ChunkState>, StoreError> {
        let (task, done, breaker) = self.finals(id, indexes, true).await?;
        Ok(task.map(|task| ChunkState {
            task,
            done,
            breaker,
        }))
    }

    /// One `TransactWriteItems`: an update per outcome record (`outcome_records`), each item
    /// set only if it has no outcome yet, and the counter update. More than
    /// [`MAX_CHUNK_SIZE`] outcomes are refused rather than split, which would break the
    /// one-atomic-step promise (a task stored before grouping takes one action an outcome,
    /// and a transaction holds at most 100).
    ///
    /// With `total`, the update also requires the task's `processed` count (the sum of its
    /// counters, kept beside them) to stay below `total` minus these outcomes: only the write
    /// that completes the task fails that condition. It is written again without it and
    /// answers `may_complete`; every other write answers `may_complete: false`, and its caller
    /// reads nothing more. `processed` is only ever added to where it exists: a task written
    /// before it existed goes without, and every write to it answers `may_complete`.
    #[tracing::instrument(skip_all, fields(task_id = %id, outcomes = outcomes.len()))]
    async fn record_outcomes(
        &self,
        id: TaskId,
        outcomes: &[ItemOutcome],
        total: Option<u32>,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<Recorded, StoreError> {
        if outcomes.len() > MAX_CHUNK_SIZE {
            return Err(StoreError::permanent(format!(
                "{} outcomes do not fit one transaction ({MAX_CHUNK_SIZE} at most)",
                outcomes.len()
            )));
        }
        let write = OutcomeWrite {
            id,
            outcomes,
            now,
            expires_at,
        };
        // Without a total the limit is one no count reaches: the condition then only finds
        // out whether the task has a count to add to.
        let below = total.map_or(u32::MAX, |t| t.saturating_sub(outcomes.len() as u32));
        let (mut layout, mut counting, mut limit) =
            (Layout::Grouped, Counting::Processed, Some(below));
        // At most three writes: the first; one in the task's own layout if it was stored
        // before grouping; one without the limit if this write completes the task (or the
        // task predates `processed`), after which a read decides.
        for _ in 0..3 {
            match self.write_outcomes(&write, layout, counting, limit).await? {
                Written::Done => {
                    return Ok(Recorded::All {
                        may_complete: limit.is_none() || total.is_none(),
                    })
                }
                Written::Conflict => return Ok(Recorded::Conflict),
                Written::PerItem { counted } => {
                    layout = Layout::PerItem;
                    if !counted {
                        (counting, limit) = (Counting::Legacy, None);
                    }
                }
                Written::Limit { counted } => {
                    if !counted {
                        counting = Counting::Legacy;
                    }
                    limit = None;
                }
            }
        }
        Ok(Recorded::Conflict)
    }

    #[tracing::instrument(skip_all, fields(task_id = %id))]
    async fn mark_retried(&self, id: TaskId, by: TaskId) -> Result<bool, StoreError> {
        let update = self
            .client()
            .update_item()
            .set_key(Some(task_key(id)))
            .update_expression("SET #retried_by = :by")
            .condition_expression("attribute_exists(#pk) AND attribute_not_exists(#retried_by)")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#retried_by", "retried_by")
            .expression_attribute_values(":by", s(by.to_string()));
        self.table.update_if(update).await
    }

    async fn unmark_retried(&self, id: TaskId, by: TaskId) -> Result<(), StoreError> {
        let update = self
            .client()
            .update_item()
            .set_key(Some(task_key(id)))
            .update_expression("REMOVE #retried_by")
            .condition_expression("#retried_by = :by")
            .expression_attribute_names("#retried_by", "retried_by")
            .expression_attribute_values(":by", s(by.to_string()));
        // `false`: someone else's mark, or none; nothing of ours to undo.
        self.table.update_if(update).await.map(|_| ())
    }

    #[tracing::instrument(skip_all, fields(task_id = %id, waiting = since.is_some()))]
    async fn set_waiting(
        &self,
        id: TaskId,
        since: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        let update = self
            .client()
            .update_item()
            .set_key(Some(task_key(id)))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#ws", "waiting_since");
        let update = match since {
            Some(at) => update
                .update_expression("SET #ws = if_not_exists(#ws, :at)")
                .expression_attribute_values(":at", s(rfc3339(at))),
            None => update.update_expression("REMOVE #ws"),
        };
        // `false`: the task is gone (expired, or removed); nobody waits on it.
        self.table.update_if(update).await.map(|_| ())
    }

    #[tracing::instrument(skip_all, fields(task_id = %id))]
    async fn save_validation(
        &self,
        id: TaskId,
        seen: &Validation,
        next: &Validation,
        now: OffsetDateTime,
    ) -> Result<Option<Task>, StoreError> {
        let mut req = self
            .client()
            .update_item()
            .table_name(&self.table.name)
            .set_key(Some(task_key(id)))
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_values(":now", s(rfc3339(now)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        let mut set = vec!["#updated_at = :now".to_owned()];
        // A checkpoint never written reads as zeros: "absent or 0" is "0".
        let mut conditions = vec!["attribute_exists(#pk)".to_owned()];
        let values = codec::validation_values(seen)
            .into_iter()
            .zip(codec::validation_values(next));
        for (i, (name, (was, will))) in codec::VALIDATION_ATTRIBUTES.iter().zip(values).enumerate()
        {
            req = req
                .expression_attribute_names(format!("#v{i}"), *name)
                .expression_attribute_values(format!(":was{i}"), n(was))
                .expression_attribute_values(format!(":will{i}"), n(will));
            set.push(format!("#v{i} = :will{i}"));
            conditions.push(if was == 0 {
                format!("(attribute_not_exists(#v{i}) OR #v{i} = :was{i})")
            } else {
                format!("#v{i} = :was{i}")
            });
        }
        let result = req
            .update_expression(format!("SET {}", set.join(", ")))
            .condition_expression(conditions.join(" AND "))
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out
                    .attributes()
                    .ok_or_else(|| corrupt("no attributes returned"))?;
                Ok(Some(task_from_item(item)?))
            }
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Ok(None)
            }
            Err(e) => Err(store_error(e)),
        }
    }

    #[tracing::instrument(skip_all, fields(task_id = %id, to = end.to.as_str()))]
    async fn end_validation(
        &self,
        id: TaskId,
        end: &ValidationEnd,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        if !TaskStatus::Validating.can_become(end.to) {
            return Ok(false);
        }
        let mut set = vec![
            "#status = :to".to_owned(),
            "#updated_at = :now".to_owned(),
            "#total = :total".to_owned(),
            "#cancelled = #cancelled + :cancelled".to_owned(),
            "#not_attempted = if_not_exists(#not_attempted, :zero) + :not_attempted".to_owned(),
        ];
        let mut req = self
            .client()
            .update_item()
            .table_name(&self.table.name)
            .set_key(Some(task_key(id)))
            .condition_expression("#status = :validating")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_names("#total", "total")
            .expression_attribute_names("#cancelled", "cancelled")
            .expression_attribute_names("#not_attempted", "not_attempted")
            .expression_attribute_values(":validating", s(TaskStatus::Validating.as_str()))
            .expression_attribute_values(":to", s(end.to.as_str()))
            .expression_attribute_values(":now", s(rfc3339(now)))
            .expression_attribute_values(":total", n(end.total))
            .expression_attribute_values(":cancelled", n(end.cancelled))
            .expression_attribute_values(":not_attempted", n(end.not_attempted))
            .expression_attribute_values(":zero", n(0));
        for (i, (name, value)) in codec::VALIDATION_ATTRIBUTES
            .iter()
            .zip(codec::validation_values(&end.validation))
            .enumerate()
        {
            req = req
                .expression_attribute_names(format!("#v{i}"), *name)
                .expression_attribute_values(format!(":v{i}"), n(value));
            set.push(format!("#v{i} = :v{i}"));
        }
        if let Some(rejection) = &end.rejection {
            let json = serde_json::to_string(rejection).map_err(StoreError::permanent)?;
            set.push("#rejection = :rejection".into());
            req = req
                .expression_attribute_names("#rejection", "rejection")
                .expression_attribute_values(":rejection", s(json));
        }
        let req = set_finished(req, &mut set, end.to, end.expires_at);
        self.table
            .update_if(req.update_expression(format!("SET {}", set.join(", "))))
            .await
    }

    async fn mark_result_files(&self, id: TaskId) -> Result<(), StoreError> {
        self.client()
            .update_item()
            .table_name(&self.table.name)
            .set_key(Some(task_key(id)))
            .condition_expression("attribute_exists(#pk)")
            .update_expression("SET #files = :yes")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#files", "result_files")
            .expression_attribute_values(
                ":yes",
                aws_sdk_dynamodb::types::AttributeValue::Bool(true),
            )
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn request_cancel(
        &self,
        id: TaskId,
        now: OffsetDateTime,
    ) -> Result<CancelOutcome, StoreError> {
        let result = self
            .client()
            .update_item()
            .table_name(&self.table.name)
            .set_key(Some(task_key(id)))
            .update_expression("SET #cra = if_not_exists(#cra, :now), #updated_at = :now")
            .condition_expression(
                "attribute_exists(#pk) AND #status IN (:awaiting, :validating, :queued, :running)",
            )
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#cra", "cancel_requested_at")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", s(rfc3339(now)))
            .expression_attribute_values(":awaiting", s(TaskStatus::AwaitingUpload.as_str()))
            .expression_attribute_values(":validating", s(TaskStatus::Validating.as_str()))
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
                Ok(CancelOutcome::Requested(task_from_item(item)?))
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
        let mut q = self
            .table
            .newest_first(listing_key(owner, task_type), after)
            .expression_attribute_names("#exp", "expires_at")
            .expression_attribute_values(":now", n(now.unix_timestamp()));
        let mut filter = "(attribute_not_exists(#exp) OR #exp > :now)".to_owned();
        if let Some(st) = status {
            filter.push_str(" AND #status = :status");
            q = q
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(st.as_str()));
        }
        self.table
            .query_pages(q.filter_expression(filter), limit, task_from_item)
            .await
    }

    async fn list_outcomes(
        &self,
        id: TaskId,
        filter: OutcomeFilter,
        after: Option<u32>,
        limit: usize,
    ) -> Result<(Vec<ItemOutcome>, bool), StoreError> {
        let from = after.map_or(0, |a| a + 1);
        let (found, more, any) = self.grouped_outcomes(id, filter, from, limit).await?;
        if any {
            return Ok((found, more));
        }
        // No record from here on: the task may be one stored before grouping.
        let mut q = self
            .client()
            .query()
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":pk", s(task_pk(id)))
            .expression_attribute_values(":from", s(codec::item_sk(from)))
            .expression_attribute_values(":to", s(codec::LAST_ITEM_SK))
            .consistent_read(true);
        match filter {
            OutcomeFilter::All => {}
            OutcomeFilter::FailedOnly => {
                q = q
                    .filter_expression("#outcome = :failed")
                    .expression_attribute_names("#outcome", "outcome")
                    .expression_attribute_values(":failed", s("failed"));
            }
            OutcomeFilter::FailedOrNotAttempted => {
                q = q
                    .filter_expression("#outcome IN (:failed, :not_attempted)")
                    .expression_attribute_names("#outcome", "outcome")
                    .expression_attribute_values(":failed", s("failed"))
                    .expression_attribute_values(":not_attempted", s("not_attempted"));
            }
        }
        self.table.query_pages(q, limit, outcome_from_item).await
    }
}
