//! Reading the task table's stream records (the notifier's and the progress pusher's input).

use aws_lambda_events::event::dynamodb::EventRecord;
use tasks_core::task::TaskId;

/// The task a stream record is about: its key is `TASK#{id}` / `TASK`; anything else (an item
/// outcome, a lane record, a subscription) is not a task's own state.
pub fn task_of(record: &EventRecord) -> Option<TaskId> {
    let text = |name: &str| match record.change.keys.get(name) {
        Some(serde_dynamo::AttributeValue::S(s)) => Some(s.as_str()),
        _ => None,
    };
    if text("sk") != Some("TASK") {
        return None;
    }
    text("pk")?.strip_prefix("TASK#")?.parse().ok()
}
