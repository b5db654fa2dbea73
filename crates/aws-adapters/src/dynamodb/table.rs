//! The one DynamoDB table both stores use, and the calls they share: error mapping (what is
//! worth a retry), strongly consistent reads, batch reads and writes that retry unprocessed
//! keys, transactions that say which condition failed, and one paged query loop.

use super::codec::Item;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, TransactWriteItem, WriteRequest};
use aws_sdk_dynamodb::Client;
use std::time::Duration;
use tasks_core::ports::StoreError;

/// `BatchGetItem` takes at most 100 keys.
const KEYS_PER_BATCH_GET: usize = 100;
/// Rounds of unprocessed keys or items before a batch call gives up.
const BATCH_ROUNDS: u32 = 10;

#[derive(Clone)]
pub(crate) struct Table {
    pub(crate) client: Client,
    pub(crate) name: String,
}

/// Throttling, conflicts, time-outs and network trouble are worth a retry; the rest are not.
pub(crate) fn store_error<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
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
    if retryable {
        StoreError::transient(e)
    } else {
        StoreError::permanent(e)
    }
}

/// A request the SDK could not even build (a missing required field): our bug, not a retry.
pub(crate) fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::permanent(e)
}

/// How a transaction that did not apply was cancelled: one reason code per action, in order
/// (`None` where that action was fine), and the item as it stood for each action that asked
/// for it (`ReturnValuesOnConditionCheckFailure`) and failed its condition.
pub(crate) struct Cancelled {
    codes: Vec<Option<String>>,
    items: Vec<Option<Item>>,
}

impl Cancelled {
    pub(crate) fn condition_failed_at(&self, action: usize) -> bool {
        self.codes.get(action).and_then(Option::as_deref) == Some("ConditionalCheckFailed")
    }

    /// Whether the action's part was fine: only the others' conditions or conflicts stopped it.
    pub(crate) fn fine_at(&self, action: usize) -> bool {
        self.codes.get(action).is_some_and(Option::is_none)
    }

    /// The item that failed the action's condition, as it stood, if the action asked for it.
    pub(crate) fn item_at(&self, action: usize) -> Option<&Item> {
        if !self.condition_failed_at(action) {
            return None;
        }
        self.items.get(action).and_then(Option::as_ref)
    }
}

impl Table {
    /// A strongly consistent read of one item.
    pub(crate) async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        Ok(out.item)
    }

    /// Strongly consistent `BatchGetItem` of any number of keys (100 per call), retrying
    /// unprocessed keys with backoff; `projection` names the one attribute wanted, if any.
    pub(crate) async fn batch_get(
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
            let mut pending = Some(request.build().map_err(build_error)?);
            for round in 0..=BATCH_ROUNDS {
                let Some(keys) = pending.take() else { break };
                backoff(round).await;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.name, keys)
                    .send()
                    .await
                    .map_err(store_error)?;
                if let Some(items) = out.responses().and_then(|r| r.get(&self.name)) {
                    found.extend(items.iter().cloned());
                }
                pending = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.name))
                    .filter(|k| !k.keys().is_empty())
                    .cloned();
            }
            if pending.is_some() {
                return Err(StoreError::transient(
                    "batch get kept returning unprocessed keys",
                ));
            }
        }
        Ok(found)
    }

    /// One `BatchWriteItem` (25 requests at most), retrying unprocessed items with backoff.
    pub(crate) async fn write_batch(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        let mut pending = requests;
        for round in 0..BATCH_ROUNDS {
            backoff(round).await;
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.name, pending)
                .send()
                .await
                .map_err(store_error)?;
            pending = out
                .unprocessed_items()
                .and_then(|u| u.get(&self.name))
                .cloned()
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(());
            }
        }
        Err(StoreError::transient(
            "batch write kept returning unprocessed items",
        ))
    }

    /// Runs a transaction. `Ok(Err(_))` when it was cancelled because a condition failed or
    /// another transaction got in the way: the caller decides what that means.
    pub(crate) async fn transact(
        &self,
        actions: Vec<TransactWriteItem>,
    ) -> Result<Result<(), Cancelled>, StoreError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        let se = match result {
            Ok(_) => return Ok(Ok(())),
            Err(SdkError::ServiceError(se)) => se,
            Err(e) => return Err(store_error(e)),
        };
        if let TransactWriteItemsError::TransactionCanceledException(tc) = se.err() {
            let codes: Vec<Option<String>> = tc
                .cancellation_reasons()
                .iter()
                .map(|r| r.code().filter(|c| *c != "None").map(str::to_owned))
                .collect();
            let raced = codes
                .iter()
                .flatten()
                .any(|c| c == "ConditionalCheckFailed" || c == "TransactionConflict");
            if raced {
                let items = tc
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.item().cloned())
                    .collect();
                return Ok(Err(Cancelled { codes, items }));
            }
        }
        Err(store_error(SdkError::ServiceError(se)))
    }

    /// Writes `item` whole, replacing any item with its key.
    pub(crate) async fn put(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Sends a conditional put: `false` when its condition failed (the item exists, or
    /// changed since it was read), any other failure an error.
    pub(crate) async fn put_if(&self, put: PutItemFluentBuilder) -> Result<bool, StoreError> {
        match put.table_name(&self.name).send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(store_error(e)),
        }
    }

    /// Sends a conditional update: `false` when its condition failed, any other failure an
    /// error.
    pub(crate) async fn update_if(
        &self,
        update: UpdateItemFluentBuilder,
    ) -> Result<bool, StoreError> {
        match update.table_name(&self.name).send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(store_error(e)),
        }
    }

    /// A put of `item` unless an item with its key exists.
    pub(crate) async fn put_new(&self, item: Item) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk");
        self.put_if(put).await
    }

    /// A query of one `gsi1` partition, newest first, after the position `after` (a `gsi1sk`
    /// from an earlier page); for [`Table::query_pages`].
    pub(crate) fn newest_first(
        &self,
        partition: String,
        after: Option<&str>,
    ) -> QueryFluentBuilder {
        let q = self
            .client
            .query()
            .index_name("gsi1")
            .scan_index_forward(false)
            .expression_attribute_names("#gpk", "gsi1pk")
            .expression_attribute_values(":gpk", AttributeValue::S(partition));
        match after {
            Some(position) => q
                .key_condition_expression("#gpk = :gpk AND #gsk < :after")
                .expression_attribute_names("#gsk", "gsi1sk")
                .expression_attribute_values(":after", AttributeValue::S(position.to_owned())),
            None => q.key_condition_expression("#gpk = :gpk"),
        }
    }

    /// Runs `query` page after page until one more item than `limit` is decoded or the query
    /// is exhausted (filters may leave pages short). Returns at most `limit` items and whether
    /// more may follow. DynamoDB's `LastEvaluatedKey` never leaves this function: callers make
    /// their own page tokens.
    pub(crate) async fn query_pages<T>(
        &self,
        query: QueryFluentBuilder,
        limit: usize,
        decode: impl Fn(&Item) -> Result<T, StoreError>,
    ) -> Result<(Vec<T>, bool), StoreError> {
        let mut found: Vec<T> = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = query
                .clone()
                .table_name(&self.name)
                .limit((limit + 1 - found.len()) as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(store_error)?;
            for item in out.items() {
                found.push(decode(item)?);
            }
            start = out.last_evaluated_key().cloned();
            if found.len() > limit || start.is_none() {
                break;
            }
        }
        let more = found.len() > limit;
        found.truncate(limit);
        Ok((found, more))
    }
}

/// Waits before retry round `round` (none before the first): 40 ms doubling, capped at 1.3 s.
async fn backoff(round: u32) {
    if round > 0 {
        tokio::time::sleep(Duration::from_millis(20 << round.min(6))).await;
    }
}
