//! Live progress: the WebSocket connection's life (connect, messages, disconnect) and the
//! pushing of task changes to the connections watching them.
//!
//! Frames about one task reach a connection in order, because of who sends what when:
//! - on `subscribe`, the snapshot is posted *before* the subscription is stored, so no
//!   `progress` frame can overtake it (the pusher only sees stored subscriptions);
//! - the pusher reads the task afresh for every frame and runs one batch at a time per stream
//!   shard, and a task's records are in one shard, so its frames never go backwards;
//! - the `final` frame is sent by whoever ends the subscription (a conditional delete), so it
//!   is sent once, by the pusher or by `subscribe` when the task finished meanwhile.

use crate::error::AppError;
use crate::identity::Owner;
use crate::live_progress::{ClientMessage, ConnectionId, Frame, CONNECTION_TTL, MAX_SUBSCRIPTIONS};
use crate::ports::{ConnectionStore, FramePusher, PushError, StoreError, Subscribed, TaskStore};
use crate::task::{Task, TaskId};
use time::OffsetDateTime;

/// The ports live progress uses.
pub struct LivePorts<'a> {
    pub tasks: &'a dyn TaskStore,
    pub connections: &'a dyn ConnectionStore,
    pub pusher: &'a dyn FramePusher,
}

/// `$connect`, once the authorizer has allowed it: remember whose connection it is.
pub async fn connect(
    ports: &LivePorts<'_>,
    id: &ConnectionId,
    owner: &Owner,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    ports
        .connections
        .put_connection(id, owner, now + CONNECTION_TTL)
        .await
}

/// `$disconnect`: forget the connection and what it watched.
pub async fn disconnect(ports: &LivePorts<'_>, id: &ConnectionId) -> Result<(), StoreError> {
    ports.connections.delete_connection(id).await
}

/// One message from the client. Every answer is a frame posted to the connection; only a
/// store failure is an error (the route then fails, and the client may send again).
pub async fn on_message(
    ports: &LivePorts<'_>,
    id: &ConnectionId,
    owner: &Owner,
    body: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    match ClientMessage::parse(body) {
        Err(frame) => send(ports, id, &frame).await,
        Ok(ClientMessage::Subscribe(task)) => subscribe(ports, id, owner, task, now).await,
        Ok(ClientMessage::Unsubscribe(task)) => {
            ports.connections.unsubscribe(id, task).await?;
            send(ports, id, &Frame::Unsubscribed { task_id: task }).await
        }
        Ok(ClientMessage::Ping) => send(ports, id, &Frame::Pong).await,
    }
}

async fn subscribe(
    ports: &LivePorts<'_>,
    id: &ConnectionId,
    owner: &Owner,
    task_id: TaskId,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    // Another caller's task and an unknown id get the same answer, so ids cannot be probed.
    let Some(task) = owned_task(ports.tasks, owner, task_id, now).await? else {
        let error = AppError::TaskNotFound.body().error;
        return send(
            ports,
            id,
            &Frame::Error {
                task_id: Some(task_id),
                error,
            },
        )
        .await;
    };
    // Checked before the snapshot, so that a refused subscribe gets its error alone; the
    // store's write enforces the cap too, against concurrent subscribes.
    let watched = ports
        .connections
        .watched_tasks(id)
        .await?
        .unwrap_or_default();
    if !watched.contains(&task_id) && watched.len() >= MAX_SUBSCRIPTIONS {
        return send(ports, id, &too_many(task_id)).await;
    }
    send(ports, id, &Frame::snapshot(&task)).await?;
    if task.status.is_final() {
        // Nothing will change any more: the snapshot is followed by the final frame at once.
        return send(ports, id, &Frame::change(&task)).await;
    }
    match ports
        .connections
        .subscribe(id, task_id, now + CONNECTION_TTL)
        .await?
    {
        Subscribed::Yes => {}
        Subscribed::TooMany => return send(ports, id, &too_many(task_id)).await,
        Subscribed::NoConnection => {
            // Its record expired, or its $connect was never recorded: a new connection is the
            // way back.
            let frame = Frame::error(
                Some(task_id),
                "internal_error",
                "This connection is no longer known; reconnect and subscribe again.",
            );
            return send(ports, id, &frame).await;
        }
    }
    // The task may have finished between the snapshot and the subscription, before the
    // pusher could see the subscription: then its final frame is ours to send.
    if let Some(task) = ports.tasks.get_task(task_id).await? {
        if task.status.is_final() && ports.connections.claim_final(id, task_id).await? {
            send(ports, id, &Frame::change(&task)).await?;
        }
    }
    Ok(())
}

fn too_many(task_id: TaskId) -> Frame {
    Frame::error(
        Some(task_id),
        "too_many_subscriptions",
        format!(
            "A connection may watch at most {MAX_SUBSCRIPTIONS} tasks at once; unsubscribe from one first."
        ),
    )
}

async fn owned_task(
    tasks: &dyn TaskStore,
    owner: &Owner,
    id: TaskId,
    now: OffsetDateTime,
) -> Result<Option<Task>, StoreError> {
    Ok(tasks
        .get_task(id)
        .await?
        .filter(|t| &t.owner == owner && !t.is_expired(now)))
}

/// Posts a frame; a connection that has gone is forgotten, which is not an error.
async fn send(ports: &LivePorts<'_>, id: &ConnectionId, frame: &Frame) -> Result<(), StoreError> {
    match ports.pusher.push(id, &frame.to_json()).await {
        Ok(()) => Ok(()),
        Err(PushError::Gone) => ports.connections.delete_connection(id).await,
        Err(PushError::Failed(cause)) => {
            // Frames are best effort: a client that hears nothing can subscribe again and gets
            // a fresh snapshot (docs/live-progress.md).
            tracing::warn!(error = %crate::error::Chain(cause.as_ref()), "frame not delivered");
            Ok(())
        }
    }
}

/// What [`push_changes`] did, for the function's log and the benchmark.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    /// Tasks that had at least one subscriber.
    pub watched_tasks: usize,
    pub frames: usize,
    /// Connections found closed and forgotten.
    pub gone: usize,
}

/// Sends each changed task's state to the connections watching it: one frame per task and
/// connection, however many changes the batch held (the caller passes each task once).
/// A store failure names the task it happened on, so the stream is retried from there.
pub async fn push_changes(
    ports: &LivePorts<'_>,
    changed: &[TaskId],
) -> Result<Pushed, (TaskId, StoreError)> {
    let mut pushed = Pushed::default();
    for &task_id in changed {
        push_one(ports, task_id, &mut pushed)
            .await
            .map_err(|e| (task_id, e))?;
    }
    Ok(pushed)
}

async fn push_one(
    ports: &LivePorts<'_>,
    task_id: TaskId,
    pushed: &mut Pushed,
) -> Result<(), StoreError> {
    let subscribers = ports.connections.subscribers(task_id).await?;
    if subscribers.is_empty() {
        return Ok(());
    }
    // Read afresh rather than taken from the stream record: a frame then never shows an
    // older state than one sent before it.
    let Some(task) = ports.tasks.get_task(task_id).await? else {
        return Ok(());
    };
    pushed.watched_tasks += 1;
    let frame = Frame::change(&task);
    let text = frame.to_json();
    for connection in subscribers {
        if task.status.is_final() && !ports.connections.claim_final(&connection, task_id).await? {
            continue;
        }
        match ports.pusher.push(&connection, &text).await {
            Ok(()) => pushed.frames += 1,
            Err(PushError::Gone) => {
                ports.connections.delete_connection(&connection).await?;
                pushed.gone += 1;
            }
            Err(PushError::Failed(cause)) => {
                tracing::warn!(task_id = %task_id, error = %crate::error::Chain(cause.as_ref()),
                    "frame not delivered");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryPusher, MemoryStore};
    use crate::task::{TaskStatus, TaskType};

    struct World {
        store: MemoryStore,
        pusher: MemoryPusher,
    }

    impl World {
        fn new() -> Self {
            Self {
                store: MemoryStore::default(),
                pusher: MemoryPusher::default(),
            }
        }
        fn ports(&self) -> LivePorts<'_> {
            LivePorts {
                tasks: &self.store,
                connections: &self.store,
                pusher: &self.pusher,
            }
        }
        fn task_of(&self, owner: &str, total: u32) -> Task {
            let task = Task::new(
                TaskType::BeneficiariesImport,
                Owner::from_subject(owner).unwrap(),
                total,
                OffsetDateTime::now_utc(),
            );
            self.store.put(task.clone());
            task
        }
        /// A connection of alice's.
        async fn connected(&self, name: &str) -> ConnectionId {
            let id = conn(name);
            connect(&self.ports(), &id, &alice(), OffsetDateTime::now_utc())
                .await
                .unwrap();
            id
        }
        async fn subscribe(&self, c: &ConnectionId, task: TaskId) {
            let body = format!(r#"{{"action":"subscribe","task_id":"{task}"}}"#);
            on_message(&self.ports(), c, &alice(), &body, OffsetDateTime::now_utc())
                .await
                .unwrap();
        }
        fn types(&self, id: &ConnectionId) -> Vec<String> {
            self.pusher
                .frames(id)
                .iter()
                .map(|f| f["type"].as_str().unwrap_or_default().to_owned())
                .collect()
        }
    }

    fn conn(name: &str) -> ConnectionId {
        ConnectionId::parse(name).unwrap()
    }

    fn alice() -> Owner {
        Owner::from_subject("alice").unwrap()
    }

    /// Moves the stored task on by `succeeded` items, finishing it when all are done.
    fn advance(world: &World, id: TaskId, succeeded: u32) {
        let mut task = world.store.get(id).unwrap();
        task.status = TaskStatus::Running;
        task.succeeded += succeeded;
        if task.processed() == task.total {
            task.status = TaskStatus::Completed;
        }
        world.store.put(task);
    }

    #[tokio::test]
    async fn subscribe_sends_a_snapshot_then_changes_then_one_final() {
        let w = World::new();
        let c = w.connected("c1").await;
        let task = w.task_of("alice", 2);
        w.subscribe(&c, task.id).await;
        advance(&w, task.id, 1);
        push_changes(&w.ports(), &[task.id]).await.unwrap();
        advance(&w, task.id, 1);
        push_changes(&w.ports(), &[task.id]).await.unwrap();
        // A redelivered stream batch sends nothing more: the final frame was claimed.
        push_changes(&w.ports(), &[task.id]).await.unwrap();
        assert_eq!(w.types(&c), ["snapshot", "progress", "final"]);
        let frames = w.pusher.frames(&c);
        assert_eq!(
            frames[0]["task"],
            serde_json::to_value(task.view()).unwrap()
        );
        assert_eq!(frames[2]["task"]["progress"]["succeeded"], 2);
        assert!(w.store.subscribers(task.id).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn other_callers_and_unknown_tasks_get_the_same_error() {
        let w = World::new();
        let c = w.connected("c1").await;
        let bobs = w.task_of("bob", 1);
        let unknown = TaskId::new_random();
        for id in [bobs.id, unknown] {
            w.subscribe(&c, id).await;
        }
        let frames = w.pusher.frames(&c);
        assert_eq!(frames.len(), 2);
        for (frame, id) in frames.iter().zip([bobs.id, unknown]) {
            assert_eq!(frame["type"], "error");
            assert_eq!(frame["error"]["code"], "task_not_found");
            assert_eq!(frame["task_id"], id.to_string());
        }
        assert_eq!(frames[0]["error"], frames[1]["error"]);
        assert!(w.store.subscribers(bobs.id).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_finished_task_gets_snapshot_and_final_and_no_subscription() {
        let w = World::new();
        let c = w.connected("c1").await;
        let task = w.task_of("alice", 1);
        advance(&w, task.id, 1);
        w.subscribe(&c, task.id).await;
        assert_eq!(w.types(&c), ["snapshot", "final"]);
        assert!(w.store.subscribers(task.id).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn unsubscribe_stops_frames_and_gone_connections_are_forgotten() {
        let w = World::new();
        let (c1, c2) = (w.connected("c1").await, w.connected("c2").await);
        let now = OffsetDateTime::now_utc();
        let task = w.task_of("alice", 3);
        for c in [&c1, &c2] {
            w.subscribe(c, task.id).await;
        }
        let unsub = format!(r#"{{"action":"unsubscribe","task_id":"{}"}}"#, task.id);
        on_message(&w.ports(), &c1, &alice(), &unsub, now)
            .await
            .unwrap();
        w.pusher.close(&c2);
        advance(&w, task.id, 1);
        let pushed = push_changes(&w.ports(), &[task.id]).await.unwrap();
        assert_eq!(pushed.gone, 1);
        assert_eq!(w.types(&c1), ["snapshot", "unsubscribed"]);
        assert_eq!(w.store.watched_tasks(&c2).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_connection_watches_a_bounded_number_of_tasks() {
        let w = World::new();
        let c = w.connected("c1").await;
        for _ in 0..=MAX_SUBSCRIPTIONS {
            let task = w.task_of("alice", 1);
            w.subscribe(&c, task.id).await;
        }
        let frames = w.pusher.frames(&c);
        let last = frames.last().unwrap();
        assert_eq!(last["error"]["code"], "too_many_subscriptions");
        assert_eq!(
            w.store.watched_tasks(&c).await.unwrap().unwrap().len(),
            MAX_SUBSCRIPTIONS
        );
    }
}
