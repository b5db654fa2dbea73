//! The SQS event checked into `events/consumer-chunk.json` goes through the real consumer
//! handler, with in-memory adapters: every item is created once, even when redelivered.

use aws_lambda_events::event::sqs::SqsEvent;
use consumer::Consumer;
use lambda_runtime::{Context, LambdaEvent};
use std::sync::Arc;
use tasks_core::config::Settings;
use tasks_core::identity::Owner;
use tasks_core::memory::{MemoryBackend, MemoryLanes, MemoryQueue, MemoryStore};
use tasks_core::ports::TaskStore;
use tasks_core::task::{Task, TaskStatus, TaskType};
use time::OffsetDateTime;

fn sample() -> SqsEvent {
    let path = format!(
        "{}/../../events/consumer-chunk.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("a valid SQS event")
}

fn context() -> Context {
    let mut ctx = Context::default();
    ctx.request_id = "test".into();
    ctx.deadline = (OffsetDateTime::now_utc().unix_timestamp() as u64 + 60) * 1000;
    ctx
}

#[tokio::test]
async fn sample_chunk_is_processed_once_even_when_redelivered() {
    let event = sample();
    let chunk: serde_json::Value =
        serde_json::from_str(event.records[0].body.as_deref().unwrap()).unwrap();
    let store = Arc::new(MemoryStore::default());
    let mut task = Task::new(
        TaskType::BeneficiariesImport,
        Owner::from_subject("alice").unwrap(),
        3,
        OffsetDateTime::now_utc(),
    );
    task.id = chunk["task_id"].as_str().unwrap().parse().unwrap();
    store.insert_task(&task).await.unwrap();
    let backend = Arc::new(MemoryBackend::default());
    backend.reject_iban("GB33BUKB20201555555555");
    let consumer = Consumer {
        breakers: store.clone(),
        breaker: Default::default(),
        turn: Default::default(),
        store: store.clone(),
        lanes: Arc::new(MemoryLanes::default()),
        queue: Arc::new(MemoryQueue::default()),
        backend: backend.clone(),
        settings: Settings::default(),
    };

    for _ in 0..2 {
        let res = consumer
            .handle(LambdaEvent::new(event.clone(), context()))
            .await;
        assert!(res.batch_item_failures.is_empty());
    }

    let t = store.get(task.id).unwrap();
    assert_eq!(
        (t.status, t.succeeded, t.failed),
        (TaskStatus::CompletedWithErrors, 2, 1)
    );
    assert_eq!(backend.creations(), 2);
}

#[tokio::test]
async fn undecodable_messages_are_reported_failed() {
    let mut event = sample();
    event.records[0].body = Some("{not json".into());
    let consumer = Consumer {
        breakers: Arc::new(MemoryStore::default()),
        breaker: Default::default(),
        turn: Default::default(),
        store: Arc::new(MemoryStore::default()),
        lanes: Arc::new(MemoryLanes::default()),
        queue: Arc::new(MemoryQueue::default()),
        backend: Arc::new(MemoryBackend::default()),
        settings: Settings::default(),
    };
    let res = consumer.handle(LambdaEvent::new(event, context())).await;
    assert_eq!(res.batch_item_failures.len(), 1);
}
