//! [`ConnectionStore`] on the task table: live progress connections and their subscriptions.
//!
//! | item         | pk               | sk              | also |
//! |--------------|------------------|-----------------|------|
//! | connection   | `CONN#{conn id}` | `CONN`          | `owner` (storage key, never the subject), `tasks` (string set of watched task ids), `expires_at` |
//! | subscription | `TASK#{task id}` | `SUB#{conn id}` | `connection`, `expires_at` |
//!
//! A subscription lives in its task's partition, so the pusher finds a task's watchers with
//! one query. Both items expire through the table's TTL two hours on, when API Gateway has
//! closed the connection anyway; `$disconnect` removes them sooner.

use super::codec::corrupt;
use super::codec::{n, s, Item};
use super::table::{build_error, store_error};
use super::DynamoTaskStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, Put, TransactWriteItem, Update, WriteRequest,
};
use std::collections::HashMap;
use tasks_core::identity::Owner;
use tasks_core::live_progress::{ConnectionId, MAX_SUBSCRIPTIONS};
use tasks_core::ports::{ConnectionStore, StoreError, Subscribed};
use tasks_core::task::TaskId;
use time::OffsetDateTime;

fn connection_key(id: &ConnectionId) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("CONN#{id}"))),
        ("sk".into(), s("CONN")),
    ])
}

fn subscription_key(id: &ConnectionId, task: TaskId) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("TASK#{task}"))),
        ("sk".into(), s(format!("SUB#{id}"))),
    ])
}

impl DynamoTaskStore {
    /// The tasks named in a connection item's `tasks` set.
    fn tasks_of(item: &Item) -> Result<Vec<TaskId>, StoreError> {
        match item.get("tasks") {
            None => Ok(vec![]),
            Some(AttributeValue::Ss(ids)) => ids
                .iter()
                .map(|id| id.parse().map_err(|_| corrupt("tasks")))
                .collect(),
            Some(_) => Err(corrupt("tasks")),
        }
    }
}

#[async_trait]
impl ConnectionStore for DynamoTaskStore {
    async fn put_connection(
        &self,
        id: &ConnectionId,
        owner: &Owner,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut item = connection_key(id);
        item.insert("owner".into(), s(owner.storage_key()));
        item.insert("expires_at".into(), n(expires_at.unix_timestamp()));
        self.table.put(item).await
    }

    async fn watched_tasks(&self, id: &ConnectionId) -> Result<Option<Vec<TaskId>>, StoreError> {
        match self.table.get(connection_key(id)).await? {
            None => Ok(None),
            Some(item) => Self::tasks_of(&item).map(Some),
        }
    }

    async fn delete_connection(&self, id: &ConnectionId) -> Result<(), StoreError> {
        let Some(item) = self.table.get(connection_key(id)).await? else {
            return Ok(());
        };
        // At most MAX_SUBSCRIPTIONS + 1 deletes: one batch (25 requests).
        let mut keys: Vec<Item> = Self::tasks_of(&item)
            .unwrap_or_default()
            .into_iter()
            .map(|task| subscription_key(id, task))
            .collect();
        keys.push(connection_key(id));
        let requests = keys
            .into_iter()
            .map(|key| {
                let delete = DeleteRequest::builder()
                    .set_key(Some(key))
                    .build()
                    .map_err(build_error)?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.table.write_batch(requests).await
    }

    async fn subscribe(
        &self,
        id: &ConnectionId,
        task: TaskId,
        expires_at: OffsetDateTime,
    ) -> Result<Subscribed, StoreError> {
        let task_text = task.to_string();
        let watch = Update::builder()
            .table_name(&self.table.name)
            .set_key(Some(connection_key(id)))
            .update_expression("ADD #tasks :task")
            .condition_expression(
                "attribute_exists(#pk) AND (attribute_not_exists(#tasks) OR contains(#tasks, :id) OR size(#tasks) < :max)",
            )
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#tasks", "tasks")
            .expression_attribute_values(":task", AttributeValue::Ss(vec![task_text.clone()]))
            .expression_attribute_values(":id", s(task_text))
            .expression_attribute_values(":max", n(MAX_SUBSCRIPTIONS))
            .build()
            .map_err(build_error)?;
        let mut item = subscription_key(id, task);
        item.insert("connection".into(), s(id.as_str()));
        item.insert("expires_at".into(), n(expires_at.unix_timestamp()));
        let put = Put::builder()
            .table_name(&self.table.name)
            .set_item(Some(item))
            .build()
            .map_err(build_error)?;
        let actions = vec![
            TransactWriteItem::builder().update(watch).build(),
            TransactWriteItem::builder().put(put).build(),
        ];
        match self.table.transact(actions).await? {
            Ok(()) => Ok(Subscribed::Yes),
            Err(cancelled) if cancelled.condition_failed_at(0) => {
                Ok(match self.table.get(connection_key(id)).await? {
                    None => Subscribed::NoConnection,
                    Some(_) => Subscribed::TooMany,
                })
            }
            // Another write to the same items got in the way: worth another try.
            Err(_) => Err(StoreError::transient("subscription write conflicted")),
        }
    }

    async fn unsubscribe(&self, id: &ConnectionId, task: TaskId) -> Result<(), StoreError> {
        self.table
            .client
            .delete_item()
            .table_name(&self.table.name)
            .set_key(Some(subscription_key(id, task)))
            .send()
            .await
            .map_err(store_error)?;
        self.forget_watch(id, task).await
    }

    async fn subscribers(&self, task: TaskId) -> Result<Vec<ConnectionId>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .table
                .client
                .query()
                .table_name(&self.table.name)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :sub)")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_names("#sk", "sk")
                .expression_attribute_values(":pk", s(format!("TASK#{task}")))
                .expression_attribute_values(":sub", s("SUB#"))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_error)?;
            for item in out.items() {
                let id = item
                    .get("connection")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|v| ConnectionId::parse(v))
                    .ok_or_else(|| corrupt("connection"))?;
                found.push(id);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(found);
            }
        }
    }

    async fn claim_final(&self, id: &ConnectionId, task: TaskId) -> Result<bool, StoreError> {
        let deleted = self
            .table
            .client
            .delete_item()
            .table_name(&self.table.name)
            .set_key(Some(subscription_key(id, task)))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .send()
            .await;
        match deleted {
            Ok(_) => {
                self.forget_watch(id, task).await?;
                Ok(true)
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(store_error(e)),
        }
    }
}

impl DynamoTaskStore {
    /// Takes `task` out of the connection's watched set, if the connection still exists.
    async fn forget_watch(&self, id: &ConnectionId, task: TaskId) -> Result<(), StoreError> {
        let update = self
            .table
            .client
            .update_item()
            .set_key(Some(connection_key(id)))
            .update_expression("DELETE #tasks :task")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#tasks", "tasks")
            .expression_attribute_values(":task", AttributeValue::Ss(vec![task.to_string()]));
        self.table.update_if(update).await.map(|_| ())
    }
}
