//! The live progress protocol spoken over the WebSocket API: what a client may send
//! (`subscribe`, `unsubscribe`) and the frames the server pushes (`snapshot`, `progress`,
//! `final`, `unsubscribed`, `error`). Every frame that carries a task carries it exactly as
//! `GET /tasks/{task_type}/{task_id}` returns it. docs/live-progress.md is the client's guide.

use crate::error_body::ErrorObject;
use crate::task::{Task, TaskId, TaskView};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The largest client message read; anything longer is refused unread (API Gateway allows
/// 128 KB, and a valid message is under 100 bytes).
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// How many tasks one connection may watch at once.
pub const MAX_SUBSCRIPTIONS: usize = 20;

/// How long a connection and its subscriptions are kept without being cleaned up: API
/// Gateway ends every WebSocket connection after 2 hours, so nothing outlives this.
pub const CONNECTION_TTL: time::Duration = time::Duration::hours(2);

/// API Gateway's id of one WebSocket connection (e.g. `L0SM9cOFvHcCIhw=`): the address
/// frames are posted to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(String);

impl ConnectionId {
    /// `None` for anything that is not a plausible id: it is used in table keys and URLs.
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = (1..=128).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_=+/".contains(&b));
        ok.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message from the client, once understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    Subscribe(TaskId),
    Unsubscribe(TaskId),
    /// Keeps an otherwise quiet connection open (API Gateway closes one idle for 10 minutes).
    Ping,
}

#[derive(Deserialize)]
struct RawMessage {
    action: Option<String>,
    task_id: Option<String>,
}

impl ClientMessage {
    /// Reads one text frame. The error is the frame to answer with; it never echoes what
    /// the client sent.
    pub fn parse(body: &str) -> Result<Self, Frame> {
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(Frame::error(
                None,
                "message_too_large",
                format!("A message may be at most {MAX_MESSAGE_BYTES} bytes."),
            ));
        }
        let raw: RawMessage = serde_json::from_str(body).map_err(|_| {
            Frame::error(
                None,
                "invalid_message",
                "A message is a JSON object with \"action\" and \"task_id\".",
            )
        })?;
        if raw.action.as_deref() == Some("ping") {
            return Ok(Self::Ping);
        }
        let task_id = raw
            .task_id
            .as_deref()
            .and_then(|t| t.parse::<TaskId>().ok())
            .ok_or_else(|| {
                Frame::error(
                    None,
                    "invalid_task_id",
                    "\"task_id\" must be a task id (a UUID).",
                )
            })?;
        match raw.action.as_deref() {
            Some("subscribe") => Ok(Self::Subscribe(task_id)),
            Some("unsubscribe") => Ok(Self::Unsubscribe(task_id)),
            _ => Err(Frame::error(
                Some(task_id),
                "unknown_action",
                "\"action\" must be \"subscribe\", \"unsubscribe\" or \"ping\".",
            )),
        }
    }
}

/// A frame the server sends. The task is boxed: it is most of a frame's size, and errors
/// (which carry none) are passed around by value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame {
    /// The task as it stands, sent at once on `subscribe`.
    Snapshot { task: Box<TaskView> },
    /// The task after a change; changes within about a second are sent as one frame.
    Progress { task: Box<TaskView> },
    /// The task once final; the last frame about it, sent once per subscription.
    Final { task: Box<TaskView> },
    /// The subscription is gone; no more frames about this task.
    Unsubscribed { task_id: TaskId },
    /// The answer to `ping`.
    Pong,
    /// A message that could not be served. `task_id` only when it was a valid id.
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task_id: Option<TaskId>,
        error: ErrorObject,
    },
}

impl Frame {
    pub fn error(task_id: Option<TaskId>, code: &str, message: impl Into<String>) -> Self {
        Self::Error {
            task_id,
            error: ErrorObject {
                code: code.to_owned(),
                message: message.into(),
                details: vec![],
            },
        }
    }

    pub fn snapshot(task: &Task) -> Self {
        Self::Snapshot {
            task: Box::new(task.view()),
        }
    }

    /// `progress` for a running task, `final` for a finished one.
    pub fn change(task: &Task) -> Self {
        if task.status.is_final() {
            Self::Final {
                task: Box::new(task.view()),
            }
        } else {
            Self::Progress {
                task: Box::new(task.view()),
            }
        }
    }

    /// The frame as sent: one JSON text.
    pub fn to_json(&self) -> String {
        // A frame holds strings, numbers and ids only: serialising it cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "6f1c1b0e-8d2a-4c1e-9b7a-2f7e8c9d0a1b";

    fn code(frame: Frame) -> String {
        match frame {
            Frame::Error { error, .. } => error.code,
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn reads_both_actions() {
        let id: TaskId = ID.parse().unwrap();
        let sub = format!(r#"{{"action":"subscribe","task_id":"{ID}"}}"#);
        let unsub = format!(r#"{{"action":"unsubscribe","task_id":"{ID}"}}"#);
        assert_eq!(ClientMessage::parse(&sub), Ok(ClientMessage::Subscribe(id)));
        assert_eq!(
            ClientMessage::parse(&unsub),
            Ok(ClientMessage::Unsubscribe(id))
        );
    }

    #[test]
    fn refuses_without_echoing() {
        let long = format!(
            r#"{{"action":"subscribe","task_id":"{}"}}"#,
            "x".repeat(2000)
        );
        assert_eq!(
            code(ClientMessage::parse(&long).unwrap_err()),
            "message_too_large"
        );
        assert_eq!(
            code(ClientMessage::parse("not json").unwrap_err()),
            "invalid_message"
        );
        let bad_id = r#"{"action":"subscribe","task_id":"<script>"}"#;
        let frame = ClientMessage::parse(bad_id).unwrap_err();
        assert!(!frame.to_json().contains("script"));
        assert_eq!(code(frame), "invalid_task_id");
        let unknown = format!(r#"{{"action":"delete","task_id":"{ID}"}}"#);
        let frame = ClientMessage::parse(&unknown).unwrap_err();
        assert!(!frame.to_json().contains("delete"));
        assert_eq!(code(frame), "unknown_action");
    }

    #[test]
    fn frames_are_tagged_by_type() {
        let id: TaskId = ID.parse().unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&Frame::Unsubscribed { task_id: id }.to_json()).unwrap();
        assert_eq!(json["type"], "unsubscribed");
        let json: serde_json::Value =
            serde_json::from_str(&Frame::error(None, "invalid_message", "m").to_json()).unwrap();
        assert_eq!(json["type"], "error");
        assert_eq!(json["error"]["code"], "invalid_message");
        assert!(json.get("task_id").is_none());
    }

    #[test]
    fn connection_ids_are_checked() {
        assert!(ConnectionId::parse("L0SM9cOFvHcCIhw=").is_some());
        assert!(ConnectionId::parse("").is_none());
        assert!(ConnectionId::parse("a b").is_none());
        assert!(ConnectionId::parse("../x").is_none());
        assert!(ConnectionId::parse(&"a".repeat(129)).is_none());
    }
}
