//! The DynamoDB stores' conditional steps that spare the consumer a read, against DynamoDB
//! Local: an outcomes' write that says whether it may have completed its task, a lost lane
//! claim that says which state it lost to, and a chunk's state read with the breaker in front
//! of BOS; and item outcomes grouped in records, read back page by page, beside a task stored
//! before grouping. Each answer is checked against the table.

use aws_adapters::dynamodb::{DynamoLanes, DynamoTaskStore};
use integration_tests::spawn_app;
use serde_json::Map;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tasks_core::breaker::BreakerRecord;
use tasks_core::chunk::ChunkMessage;
use tasks_core::error_body::ErrorDetail;
use tasks_core::identity::Owner;
use tasks_core::outcome::{ItemOutcome, OutcomeResult};
use tasks_core::ports::{
    BreakerStore, Handoff, LaneState, LaneStep, LaneStore, OutcomeFilter, Recorded, TaskStore,
    Vehicle,
};
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

fn failed(index: u32) -> ItemOutcome {
    ItemOutcome {
        index,
        external_id: Some(format!("row-{index}")),
        result: OutcomeResult::Failed {
            error: ErrorDetail::field("iban", "bos_rejected", "refused").at(index, None),
        },
        input: None,
        bos_key: Some(format!("key-{index}")),
    }
}

/// Succeeded, except every seventh item, which failed.
fn mixed(index: u32) -> ItemOutcome {
    if index.is_multiple_of(7) {
        failed(index)
    } else {
        succeeded(index)
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
    let outcomes: Vec<ItemOutcome> = indexes.iter().copied().map(mixed).collect();
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
    assert_eq!((stored.succeeded, stored.failed), (4, 1));
    assert!(stored.completion_status().is_some());

    // And a repeated write is a conflict that counts nothing twice
    assert_eq!(record(&store, &task, &[4]).await, Recorded::Conflict);
    assert_eq!(store.get_task(task.id).await.unwrap().unwrap().succeeded, 4);
}

#[tokio::test]
async fn a_chunk_reads_the_breaker_with_its_task_as_the_breaker_store_reads_it() {
    // Given a task with one outcome, in a table whose breaker was never written
    let app = spawn_app().await;
    let store = DynamoTaskStore::new(app.ddb.clone(), app.table());
    let task = new_task(&store, 5).await;
    record(&store, &task, &[1]).await;

    // Then a chunk of it reads the breaker closed beside its task and done items
    let state = store.chunk_state(task.id, &[0, 1]).await.unwrap().unwrap();
    assert_eq!(state.task.id, task.id);
    assert_eq!(state.done, HashSet::from([1]));
    assert_eq!(state.breaker, Some(BreakerRecord::default()));

    // And once another consumer opened it, the next chunk reads it open
    let open = BreakerRecord::default()
        .opened(1_000, Duration::from_secs(30))
        .unwrap();
    assert!(store.write_breaker(0, &open).await.unwrap());
    let state = store.chunk_state(task.id, &[0, 1]).await.unwrap().unwrap();
    assert_eq!(state.breaker, Some(store.read_breaker().await.unwrap()));
    assert!(state.breaker.is_some_and(|b| b.open));
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
    assert_eq!(store.get_task(task.id).await.unwrap().unwrap().failed, 1);
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

fn task_key(task: &Task) -> HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), attr(&format!("TASK#{}", task.id))),
        ("sk".to_owned(), attr("TASK")),
    ])
}

/// The sort keys of a task's partition, but the task's own.
async fn stored_keys(app: &integration_tests::TestApp, task: &Task) -> Vec<String> {
    keys_of(app, task.id).await
}

async fn keys_of(app: &integration_tests::TestApp, id: TaskId) -> Vec<String> {
    let out = app
        .ddb
        .query()
        .table_name(app.table())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", attr(&format!("TASK#{id}")))
        .send()
        .await
        .expect("query");
    out.items()
        .iter()
        .filter_map(|i| i.get("sk").and_then(|v| v.as_s().ok()).cloned())
        .filter(|sk| sk != "TASK")
        .collect()
}

async fn indexes(
    store: &DynamoTaskStore,
    task: &Task,
    filter: OutcomeFilter,
    after: Option<u32>,
    limit: usize,
) -> (Vec<u32>, bool) {
    let (page, more) = store
        .list_outcomes(task.id, filter, after, limit)
        .await
        .expect("list");
    (page.iter().map(|o| o.index).collect(), more)
}

#[tokio::test]
async fn outcomes_are_grouped_in_records_and_read_back_page_by_page() {
    // Given a 70-item task whose outcomes arrive in three writes, one straddling two records
    let app = spawn_app().await;
    let store = DynamoTaskStore::new(app.ddb.clone(), app.table());
    let task = new_task(&store, 70).await;
    let first: Vec<u32> = (0..20).collect();
    let straddling: Vec<u32> = (20..40).collect();
    let rest: Vec<u32> = (40..70).collect();
    for part in [&first, &straddling, &rest] {
        assert!(matches!(
            record(&store, &task, part).await,
            Recorded::All { .. }
        ));
    }

    // Then they sit in three records of up to 32 items, not one item each
    assert_eq!(
        stored_keys(&app, &task).await,
        ["OUTCOMES#000000", "OUTCOMES#000032", "OUTCOMES#000064"]
    );

    // And pages read them in order across records, with and without a filter
    assert_eq!(
        indexes(&store, &task, OutcomeFilter::All, Some(29), 5).await,
        (vec![30, 31, 32, 33, 34], true)
    );
    let failed_ones: Vec<u32> = (0..70u32).filter(|i| i.is_multiple_of(7)).collect();
    assert_eq!(
        indexes(&store, &task, OutcomeFilter::FailedOnly, None, 100).await,
        (failed_ones.clone(), false)
    );
    assert_eq!(
        indexes(&store, &task, OutcomeFilter::FailedOnly, Some(7), 3).await,
        (vec![14, 21, 28], true)
    );
    assert_eq!(
        indexes(&store, &task, OutcomeFilter::All, Some(69), 10).await,
        (vec![], false)
    );
    let (page, _) = store
        .list_outcomes(task.id, OutcomeFilter::FailedOnly, None, 1)
        .await
        .unwrap();
    assert_eq!(page, vec![failed(0)], "the key BOS saw is kept");

    // And a write that overlaps what is stored writes nothing and counts nothing
    assert_eq!(
        record(&store, &task, &[31, 32, 33]).await,
        Recorded::Conflict
    );
    let stored = store.get_task(task.id).await.unwrap().unwrap();
    assert_eq!((stored.succeeded, stored.failed), (60, 10));
    let done = store.final_items(task.id, &[31, 32, 69]).await.unwrap();
    assert_eq!(done.len(), 3);
}

#[tokio::test]
async fn a_task_stored_before_grouping_keeps_one_item_an_outcome() {
    // Given a 40-item task as stored before outcomes were grouped (with a processed count)
    let app = spawn_app().await;
    let store = DynamoTaskStore::new(app.ddb.clone(), app.table());
    let task = new_task(&store, 40).await;
    app.ddb
        .update_item()
        .table_name(app.table())
        .set_key(Some(task_key(&task)))
        .update_expression("REMOVE #g")
        .expression_attribute_names("#g", "grouped_outcomes")
        .send()
        .await
        .expect("remove the mark");

    // When its outcomes are written in two parts
    let first: Vec<u32> = (0..32).collect();
    let last: Vec<u32> = (32..40).collect();
    let answers = [
        record(&store, &task, &first).await,
        record(&store, &task, &last).await,
    ];

    // Then they are one item each, as before, the limit still says which write completed it
    assert_eq!(
        answers,
        [
            Recorded::All {
                may_complete: false
            },
            Recorded::All { may_complete: true }
        ]
    );
    let keys = stored_keys(&app, &task).await;
    assert_eq!(keys.len(), 40);
    assert!(keys.iter().all(|k| k.starts_with("ITEM#")), "{keys:?}");

    // And they read back, are known final, and are never written twice
    assert_eq!(
        indexes(&store, &task, OutcomeFilter::All, Some(30), 3).await,
        (vec![31, 32, 33], true)
    );
    assert_eq!(
        indexes(&store, &task, OutcomeFilter::FailedOnly, Some(28), 2).await,
        (vec![35], false)
    );
    let state = store.chunk_state(task.id, &[0, 39]).await.unwrap().unwrap();
    assert_eq!(state.done.len(), 2);
    assert_eq!(record(&store, &task, &[39]).await, Recorded::Conflict);
    let stored = store.get_task(task.id).await.unwrap().unwrap();
    assert_eq!(stored.succeeded + stored.failed, 40);
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

/// A lane store, and a caller with one task of 2 chunks in its sequence and 1 lane.
async fn caller_with_two_chunks(
    app: &integration_tests::TestApp,
    owner: &str,
) -> (DynamoLanes, TaskId) {
    let lanes = DynamoLanes::new(app.ddb.clone(), app.table());
    let task = TaskId::new_random();
    let appended = lanes
        .append(owner, LaneState::default(), task, 2, 1, later())
        .await
        .unwrap();
    assert!(appended);
    (lanes, task)
}

/// A waiting chunk as stored before (with the given attributes, plain text).
async fn put_older_chunk<const N: usize>(
    app: &integration_tests::TestApp,
    task: TaskId,
    chunk: u32,
    attributes: [(&str, &str); N],
) {
    let mut put = app
        .ddb
        .put_item()
        .table_name(app.table())
        .item("pk", attr(&format!("TASK#{task}")))
        .item("sk", attr(&format!("CHUNK#{chunk:06}")));
    for (name, value) in attributes {
        put = put.item(name, attr(value));
    }
    put.send().await.expect("an older chunk");
}

#[tokio::test]
async fn a_hand_off_is_an_item_of_its_own_and_one_kept_on_an_older_chunk_is_read() {
    // Given a caller with 2 chunks in its sequence, and a chunk stored before hand-offs had
    // items of their own, which handed its lane on to seq 7
    let app = spawn_app().await;
    let owner = "owner-of-old-chunks";
    let (lanes, task) = caller_with_two_chunks(&app, owner).await;
    put_older_chunk(&app, task, 9, [("body", "{}"), ("handoff", "seq:7")]).await;
    let old = Vehicle::Chunk {
        task_id: task,
        chunk: 9,
    };

    // Then its hand-off is read from the chunk
    assert_eq!(lanes.handoff_of(old).await.unwrap(), Some(Handoff::Seq(7)));

    // And replacing it (seq 7 expired, say) records the new one in an item of its own
    let replaced = lanes
        .claim(owner, 0, old, Some(Handoff::Seq(7)), later())
        .await
        .unwrap();
    assert_eq!(replaced, LaneStep::Done);
    assert_eq!(lanes.handoff_of(old).await.unwrap(), Some(Handoff::Seq(0)));

    // And a new chunk's hand-off is an item of its own too; a second one from a stale view
    // loses
    let new = Vehicle::Chunk {
        task_id: task,
        chunk: 0,
    };
    let claimed = lanes.claim(owner, 1, new, None, later()).await.unwrap();
    assert_eq!(claimed, LaneStep::Done);
    assert_eq!(lanes.handoff_of(new).await.unwrap(), Some(Handoff::Seq(1)));
    assert_eq!(
        keys_of(&app, task).await,
        ["CHUNK#000009", "HANDOFF#000000", "HANDOFF#000009"]
    );
    let stale = lanes.claim(owner, 1, new, None, later()).await.unwrap();
    assert_eq!(stale, LaneStep::Lost);
}

#[tokio::test]
async fn waiting_chunks_are_stored_deflated_and_plain_older_ones_still_read() {
    // Given a caller with 2 chunks in its sequence: the first stored now, the second as
    // stored before chunks were deflated
    let app = spawn_app().await;
    let owner = "owner-with-chunks";
    let (lanes, task) = caller_with_two_chunks(&app, owner).await;
    let chunk = |n: u32| ChunkMessage {
        task_id: task,
        task_type: TaskType::BeneficiariesImport,
        chunk: n,
        owner: Some(owner.to_owned()),
        trace: None,
        items: vec![],
    };
    lanes.store_chunks(&[chunk(0)], later()).await.unwrap();
    let plain = serde_json::to_string(&chunk(1)).unwrap();
    put_older_chunk(&app, task, 1, [("body", plain.as_str())]).await;

    // Then both read back as they were sent, and the new one is stored deflated
    assert_eq!(lanes.chunk_at(owner, 0).await.unwrap(), Some(chunk(0)));
    assert_eq!(lanes.chunk_at(owner, 1).await.unwrap(), Some(chunk(1)));
    let stored = app
        .ddb
        .get_item()
        .table_name(app.table())
        .key("pk", attr(&format!("TASK#{task}")))
        .key("sk", attr("CHUNK#000000"))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(stored.contains_key("packed") && !stored.contains_key("body"));
}
