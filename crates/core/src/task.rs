//! The task resource: its id, its type, its state machine and its progress, and the JSON view
//! clients read.

use crate::error_body::ErrorObject;
use crate::identity::Owner;
use crate::tolerance::Tolerance;
use crate::trace::Trace;
use crate::upload::{FileView, Upload, UploadInstructions, Validation};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use time::OffsetDateTime;
use uuid::Uuid;

/// A task's public id: a random UUID, never an internal key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(Uuid);

impl TaskId {
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The id without hyphens, for ids derived from it.
    pub fn simple(self) -> uuid::fmt::Simple {
        self.0.simple()
    }
}

impl FromStr for TaskId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// The task types the API offers: a closed set, so a `match` names every one and a type
/// that exists cannot lack behaviour. The slug (path segment and `task_type` value) and the
/// serde form are the same string, spelled once by `rename_all`. What a type does per item
/// lives in [`crate::task_types`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskType {
    BeneficiariesImport,
    BeneficiariesValidation,
}

impl TaskType {
    pub const ALL: [TaskType; 2] = [Self::BeneficiariesImport, Self::BeneficiariesValidation];

    /// The URL path of a task of this type.
    pub fn path_of(self, id: TaskId) -> String {
        format!("/tasks/{}/{id}", self.slug())
    }

    pub fn slug(self) -> &'static str {
        match self {
            Self::BeneficiariesImport => "beneficiaries-import",
            Self::BeneficiariesValidation => "beneficiaries-validation",
        }
    }

    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.slug() == slug)
    }
}

/// `queued → running → completed | completed_with_errors | failed | cancelled`. A task made
/// from an uploaded file starts earlier: `awaiting_upload → validating → queued`, or
/// `validating → rejected` when the file is refused (`crate::upload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    AwaitingUpload,
    Validating,
    Queued,
    Running,
    Completed,
    CompletedWithErrors,
    Failed,
    Cancelled,
    Rejected,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 9] = [
        Self::AwaitingUpload,
        Self::Validating,
        Self::Queued,
        Self::Running,
        Self::Completed,
        Self::CompletedWithErrors,
        Self::Failed,
        Self::Cancelled,
        Self::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingUpload => "awaiting_upload",
            Self::Validating => "validating",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::CompletedWithErrors => "completed_with_errors",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        !matches!(
            self,
            Self::AwaitingUpload | Self::Validating | Self::Queued | Self::Running
        )
    }

    /// The one place that says which transitions exist. Stores apply them with conditional
    /// writes, so two writers can never both move a task.
    pub fn can_become(self, next: TaskStatus) -> bool {
        use TaskStatus::*;
        matches!(
            (self, next),
            (AwaitingUpload, Validating | Cancelled)
                | (Validating, Queued | Rejected | Cancelled)
                | (Validating, Completed | CompletedWithErrors | Failed)
                | (Queued, Running)
                | (
                    Queued | Running,
                    Completed | CompletedWithErrors | Failed | Cancelled
                )
        )
    }
}

/// The stored task. Counters only grow, by atomic increments, as item outcomes are recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: TaskId,
    pub task_type: TaskType,
    pub owner: Owner,
    pub status: TaskStatus,
    pub total: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub cancelled: u32,
    /// Items never sent to BOS because the task passed its [`Tolerance`].
    pub not_attempted: u32,
    /// How many failed items the task tolerates before it stops.
    pub tolerance: Tolerance,
    pub created_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub updated_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    /// When the record may be deleted (DynamoDB TTL); set once the task is final.
    pub expires_at: Option<OffsetDateTime>,
    /// Set by `DELETE`: items not yet started end `cancelled`.
    pub cancel_requested_at: Option<OffsetDateTime>,
    /// Set while a chunk of the task is held because BOS's breaker is open
    /// (`usecases::upstream_wait`), cleared when work resumes.
    pub waiting_since: Option<OffsetDateTime>,
    /// The trace of the request that created the task, kept so that an operator can go from
    /// a task id to its trace. Internal: the task JSON does not show it.
    pub trace: Option<Trace>,
    /// The task whose failed items this one retries (`POST …/{task_id}/retry`).
    pub retry_of: Option<TaskId>,
    /// The task that retries this one's failed items; a task is retried at most once.
    pub retried_by: Option<TaskId>,
    /// For a task made from an uploaded file: what the upload session declared.
    pub upload: Option<Upload>,
    /// For a task made from an uploaded file: how far its ingest has read it.
    pub validation: Validation,
    /// Why the file of a `rejected` task was refused.
    pub rejection: Option<ErrorObject>,
    /// The final task's result and errors files are written (`usecases::export`).
    pub result_files: bool,
}

impl Task {
    pub fn new(task_type: TaskType, owner: Owner, total: u32, now: OffsetDateTime) -> Self {
        Self {
            id: TaskId::new_random(),
            task_type,
            owner,
            status: TaskStatus::Queued,
            total,
            succeeded: 0,
            failed: 0,
            cancelled: 0,
            not_attempted: 0,
            tolerance: Tolerance::default(),
            created_at: now,
            started_at: None,
            updated_at: now,
            finished_at: None,
            expires_at: None,
            cancel_requested_at: None,
            waiting_since: None,
            trace: None,
            retry_of: None,
            retried_by: None,
            upload: None,
            validation: Validation::default(),
            rejection: None,
            result_files: false,
        }
    }

    pub fn processed(&self) -> u32 {
        self.succeeded + self.failed + self.cancelled + self.not_attempted
    }

    /// Whether the task's failed items passed its tolerance: no further item is sent to BOS.
    pub fn is_stopping(&self) -> bool {
        self.tolerance.exceeded(self.failed, self.total)
    }

    /// Why a `failed` task failed.
    pub fn failure_reason(&self) -> Option<FailureReason> {
        (self.status == TaskStatus::Failed && self.is_stopping())
            .then_some(FailureReason::ToleratedFailuresExceeded)
    }

    /// The final state this task should move to, once every item has an outcome.
    pub fn completion_status(&self) -> Option<TaskStatus> {
        if self.status.is_final() || self.processed() < self.total {
            return None;
        }
        Some(if self.is_stopping() {
            TaskStatus::Failed
        } else if self.cancelled > 0 {
            TaskStatus::Cancelled
        } else if self.failed == 0 {
            TaskStatus::Completed
        } else {
            TaskStatus::CompletedWithErrors
        })
    }

    /// Where this task stands in its owner's newest-first listing: fixed-width creation time
    /// (nanoseconds) then id, so positions sort as strings.
    pub fn list_position(&self) -> String {
        format!("{:020}#{}", self.created_at.unix_timestamp_nanos(), self.id)
    }

    /// Expired records are hidden even before DynamoDB's lazy TTL deletion removes them.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    pub fn view(&self) -> TaskView {
        let processed = self.processed();
        // A task with no items yet (its file is still on its way) has done nothing, not all.
        let percent = (processed * 100)
            .checked_div(self.total)
            .unwrap_or(if self.status.is_final() { 100 } else { 0 });
        let base = self.task_type.path_of(self.id);
        TaskView {
            task_id: self.id,
            task_type: self.task_type,
            status: self.status,
            progress: Progress {
                total: self.total,
                processed,
                succeeded: self.succeeded,
                failed: self.failed,
                cancelled: self.cancelled,
                not_attempted: self.not_attempted,
                percent,
                waiting_for_upstream: self.waiting_since.is_some() && !self.status.is_final(),
            },
            failure_reason: self.failure_reason(),
            tolerated_failure_percent: self.tolerance.percent,
            tolerated_failure_count: self.tolerance.count,
            file: self
                .upload
                .as_ref()
                .map(|upload| FileView::of(upload, self.validation)),
            upload: None,
            rejection: self.rejection.clone(),
            cancel_requested_at: self.cancel_requested_at,
            retry_of: self.retry_of,
            retried_by: self.retried_by,
            created_at: self.created_at,
            started_at: self.started_at,
            updated_at: self.updated_at,
            finished_at: self.finished_at,
            links: Links {
                errors: format!("{base}/errors"),
                result: format!("{base}/result"),
                retry_of: self.retry_of.map(|id| self.task_type.path_of(id)),
                retried_by: self.retried_by.map(|id| self.task_type.path_of(id)),
                result_file: None,
                errors_file: None,
                self_: base,
            },
        }
    }
}

/// The task JSON clients read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskView {
    pub task_id: TaskId,
    pub task_type: TaskType,
    pub status: TaskStatus,
    pub progress: Progress,
    /// Why the task is `failed`; null otherwise.
    #[serde(default)]
    pub failure_reason: Option<FailureReason>,
    /// The limits the task was created with (null: none).
    #[serde(default)]
    pub tolerated_failure_percent: Option<f64>,
    #[serde(default)]
    pub tolerated_failure_count: Option<u32>,
    /// For a task made from an uploaded file: the file and how far its validation got.
    #[serde(default)]
    pub file: Option<FileView>,
    /// While the task awaits its file: where and how to send it (a fresh pre-signed request
    /// on every read; the api fills it in).
    #[serde(default)]
    pub upload: Option<UploadInstructions>,
    /// Why a `rejected` task's file was refused; its invalid rows are in `…/errors`.
    #[serde(default)]
    pub rejection: Option<ErrorObject>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub cancel_requested_at: Option<OffsetDateTime>,
    /// The task this one retries the failed items of, if it is a retry.
    pub retry_of: Option<TaskId>,
    /// The task retrying this one's failed items, once there is one.
    pub retried_by: Option<TaskId>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    pub links: Links,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub total: u32,
    pub processed: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub cancelled: u32,
    /// Items not sent to BOS because the task passed its tolerated failures.
    #[serde(default)]
    pub not_attempted: u32,
    pub percent: u32,
    /// True while BOS is failing and the task's work waits for it to recover (the breaker in
    /// front of BOS is open): nothing fails meanwhile, it only waits.
    #[serde(default)]
    pub waiting_for_upstream: bool,
}

/// Why a task ended `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// More items failed than the task's `tolerated_failure_percent` or `_count` allow.
    ToleratedFailuresExceeded,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Links {
    #[serde(rename = "self")]
    pub self_: String,
    pub errors: String,
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retried_by: Option<String>,
    /// For a final task made from a file: its result as one file, a pre-signed `GET` signed
    /// afresh on every read of the task (never logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_file: Option<String>,
    /// ... and its failed items as one file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors_file: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskStatus::*;

    /// A new import task of `total` items, created at the epoch.
    fn import_of(total: u32) -> Task {
        let owner = Owner::from_subject("o").unwrap();
        Task::new(
            TaskType::BeneficiariesImport,
            owner,
            total,
            OffsetDateTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn transitions() {
        let allowed = [
            (Queued, Running),
            (Queued, Cancelled),
            (Queued, Failed),
            (Running, Completed),
            (Running, CompletedWithErrors),
            (Running, Failed),
            (Running, Cancelled),
        ];
        for (from, to) in allowed {
            assert!(from.can_become(to), "{from:?} -> {to:?}");
        }
        let refused = [
            (Running, Queued),
            (Completed, Running),
            (Cancelled, Completed),
            (Failed, Running),
            (Running, Running),
        ];
        for (from, to) in refused {
            assert!(!from.can_become(to), "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn completion_needs_every_item_and_counts_errors() {
        let mut t = import_of(3);
        t.status = Running;
        t.succeeded = 2;
        assert_eq!(t.completion_status(), None);
        t.succeeded = 3;
        assert_eq!(t.completion_status(), Some(Completed));
        t.succeeded = 2;
        t.failed = 1;
        assert_eq!(t.completion_status(), Some(CompletedWithErrors));
        t.status = CompletedWithErrors;
        assert_eq!(t.completion_status(), None, "already final");
    }

    #[test]
    fn view_has_percent_and_links() {
        let mut t = import_of(4);
        t.succeeded = 1;
        let v = serde_json::to_value(t.view()).unwrap();
        assert_eq!(v["progress"]["percent"], 25);
        assert_eq!(v["status"], "queued");
        assert_eq!(v["task_type"], "beneficiaries-import");
        assert_eq!(
            v["links"]["self"],
            format!("/tasks/beneficiaries-import/{}", t.id)
        );
        assert_eq!(v["created_at"], "1970-01-01T00:00:00Z");
        assert!(v["finished_at"].is_null());
    }

    #[test]
    fn slugs_and_serde_agree() {
        for t in TaskType::ALL {
            assert_eq!(TaskType::from_slug(t.slug()), Some(t));
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.slug()), "serde and slug agree");
            assert_eq!(serde_json::from_str::<TaskType>(&json).unwrap(), t);
            assert!(
                t.slug()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-'),
                "url-safe slug"
            );
        }
        assert_eq!(TaskType::from_slug("nope"), None);
        assert!(serde_json::from_str::<TaskType>("\"nope\"").is_err());
    }

    #[test]
    fn passing_the_tolerance_fails_the_task_with_its_reason() {
        let mut t = import_of(10);
        t.status = Running;
        t.tolerance = Tolerance {
            percent: Some(10.0),
            count: None,
        };
        t.failed = 1;
        assert!(!t.is_stopping(), "1 of 10 is 10 %, not past it");
        t.failed = 2;
        assert!(t.is_stopping());
        assert_eq!(t.completion_status(), None, "items are still open");
        t.succeeded = 3;
        t.not_attempted = 5;
        assert_eq!(t.completion_status(), Some(Failed));
        t.status = Failed;
        let v = serde_json::to_value(t.view()).unwrap();
        assert_eq!(v["failure_reason"], "tolerated_failures_exceeded");
        assert_eq!(v["progress"]["not_attempted"], 5);
        assert_eq!(v["progress"]["processed"], 10);
        assert_eq!(v["tolerated_failure_percent"], 10.0);
    }

    #[test]
    fn waiting_shows_only_while_the_task_is_open() {
        let mut t = import_of(10);
        t.status = Running;
        t.waiting_since = Some(OffsetDateTime::UNIX_EPOCH);
        assert!(t.view().progress.waiting_for_upstream);
        t.status = Completed;
        assert!(!t.view().progress.waiting_for_upstream);
    }

    #[test]
    fn cancelled_items_make_a_cancelled_task() {
        let mut t = import_of(3);
        t.status = Running;
        t.succeeded = 1;
        t.cancelled = 2;
        assert_eq!(t.completion_status(), Some(Cancelled));
    }
}
