//! The DynamoDB stores' conditional steps that spare the consumer a read, against DynamoDB
//! Local: an outcomes' write that says whether it may have completed its task, and a lost
//! lane claim that says which state it lost to. Each answer is checked against the table.

use aws_adapters::dynamodb::{DynamoLanes, DynamoTaskStore};
use integration_tests::spawn_app;
use serde_json::Map;
use std::collections::HashMap;
use tasks_core::identity::Owner;
use tasks_core::outcome::{ItemOutcome, OutcomeResult};
use tasks_core::ports::{Handoff, LaneState, LaneStep, LaneStore, Recorded, TaskStore, Vehicle};
use tasks_core::task::{Task, TaskId, TaskType};
use time::OffsetDateTime;

fn succeeded(index: u32) -> ItemOutcome {
    ItemOutcome {
        index,
        external_id: None,
        result: OutcomeResult::Succeeded { output: Map::new() },
        input: None,
        bos_key: None,
    }
}

fn later() -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::days(31)
}

async fn new_task(store: &DynamoTaskStore, total: u32) -> Task {
    let owner = Owner::from_subject("alice").expect("owner");
    let task = Task::new(
        TaskType::BeneficiariesImport,
        owner,
        total,
        OffsetDateTime::now_utc(),
    );
    store.insert_task(&task).await.expect("insert");
    task
}

async fn record(store: &DynamoTaskStore, task: &Task, indexes: &[u32]) -> Recorded {
    let outcomes: Vec<ItemOutcome> = indexes.iter().copied().map(succeeded).collect();
    let now = OffsetDateTime::now_utc();
    store
        .record_outcomes(task.id, &outcomes, Some(task.total), now, later())
        .await
        .expect("record")
}

#[tokio::test]
async fn only_the_write_that_completes_a_task_may_have_completed_it() {
    // Given a 5-item task
    let app = spawn_app().await;
    let store = DynamoTaskStore::new(app.ddb.clone(), app.table());
    let task = new_task(&store, 5).await;

    // When its outcomes are written in three parts, the last one completing it
    let first = record(&store, &task, &[0, 1]).await;
    let second = record(&store, &task, &[2]).await;
    let last = record(&store, &task, &[3, 4]).await;

    // Then only the last write may have completed it, and every write counted
    assert_eq!(
        first,
        Recorded::All {
            may_complete: false
        }
    );
    assert_eq!(
        second,
        Recorded::All {
            may_complete: false
        }
    );
    assert_eq!(last, Recorded::All { may_complete: true });
    let stored = store.get_task(task.id).await.unwrap().unwrap();
    assert_eq!(stored.succeeded, 5);
    assert!(stored.completion_status().is_some());

    // And a repeated write is a conflict that counts nothing twice
    assert_eq!(record(&store, &task, &[4]).await, Recorded::Conflict);
    assert_eq!(store.get_task(task.id).await.unwrap().unwrap().succeeded, 5);
}

#[tokio::test]
async fn a_task_stored_without_a_processed_count_is_checked_after_every_write() {
    // Given a 3-item task as stored before tasks kept a processed count
    let app = spawn_app().await;
    let store = DynamoTaskStore::new(app.ddb.clone(), app.table());
    let task = new_task(&store, 3).await;
    let key = HashMap::from([
        ("pk".to_owned(), attr(&format!("TASK#{}", task.id))),
        ("sk".to_owned(), attr("TASK")),
    ]);
    app.ddb
        .update_item()
        .table_name(app.table())
        .set_key(Some(key.clone()))
        .update_expression("REMOVE #p")
        .expression_attribute_names("#p", "processed")
        .send()
        .await
        .expect("remove the count");

    // When one of its outcomes is written
    let answer = record(&store, &task, &[0]).await;

    // Then the write may have completed it (a read must say), it counted, and the task was
    // not given a count that would start from the middle
    assert_eq!(answer, Recorded::All { may_complete: true });
    assert_eq!(store.get_task(task.id).await.unwrap().unwrap().succeeded, 1);
    let item = app
        .ddb
        .get_item()
        .table_name(app.table())
        .set_key(Some(key))
        .send()
        .await
        .expect("read")
        .item
        .expect("the task");
    assert!(!item.contains_key("processed"), "{item:?}");
}

fn attr(text: &str) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::S(text.to_owned())
}

#[tokio::test]
async fn a_lost_claim_says_which_state_it_lost_to() {
    // Given a caller with 3 chunks in its sequence and 2 lanes
    let app = spawn_app().await;
    let lanes = DynamoLanes::new(app.ddb.clone(), app.table());
    let owner = "owner-key";
    let task = TaskId::new_random();
    let appended = lanes
        .append(owner, LaneState::default(), task, 3, 2, later())
        .await
        .unwrap();
    assert!(appended);
    let (a, b) = (
        Vehicle::Chunk {
            task_id: task,
            chunk: 0,
        },
        Vehicle::Chunk {
            task_id: task,
            chunk: 1,
        },
    );

    // When two vehicles claim the chunk at the same cursor
    let won = lanes.claim(owner, 0, a, None, later()).await.unwrap();
    let lost = lanes.claim(owner, 0, b, None, later()).await.unwrap();

    // Then the first takes it, and the second learns the state it lost to
    assert_eq!(won, LaneStep::Done);
    let moved = LaneState {
        next_seq: 3,
        cursor: 1,
        lanes: 2,
    };
    assert_eq!(lost, LaneStep::Moved(moved));
    assert_eq!(lanes.lane_state(owner).await.unwrap(), moved);
    assert_eq!(lanes.handoff_of(b).await.unwrap(), None);

    // And claiming from that state takes the next chunk without a read
    let retried = lanes.claim(owner, moved.cursor, b, None, later()).await;
    assert_eq!(retried.unwrap(), LaneStep::Done);
    assert_eq!(lanes.handoff_of(b).await.unwrap(), Some(Handoff::Seq(1)));

    // And a vehicle that handed on already learns nothing from a claim: it must read
    let again = lanes.claim(owner, 2, a, None, later()).await.unwrap();
    assert_eq!(again, LaneStep::Lost);
    assert_eq!(lanes.lane_state(owner).await.unwrap().cursor, 2);
}
