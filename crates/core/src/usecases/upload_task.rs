//! Upload sessions. `POST /tasks/{task_type}/uploads` opens one: a task `awaiting_upload` and a
//! pre-signed PUT for its file. `POST …/{task_id}/upload-complete` closes it (Salesforce's
//! `UploadComplete`): the stored file is checked against what the session declared, the task
//! becomes `validating`, and an ingest run is sent (`usecases::ingest`).

use crate::config::Settings;
use crate::error::AppError;
use crate::error_body::ErrorDetail;
use crate::identity::Owner;
use crate::ports::{FileStore, IngestMessage, IngestQueue, TaskStore};
use crate::task::{Task, TaskId, TaskStatus, TaskType, TaskView};
use crate::tolerance::Tolerance;
use crate::upload::{
    result_file_keys, FileFormat, InvalidRows, Upload, UploadInstructions, MAX_UPLOAD_BYTES,
    URL_VALIDITY,
};
use crate::usecases::read_task::get_task;
use base64::Engine;
use serde::Deserialize;
use time::OffsetDateTime;

/// What a client asked for in one `POST /tasks/{task_type}/uploads`.
pub struct UploadSession {
    pub owner: Owner,
    pub task_type: TaskType,
    pub upload: Upload,
    pub tolerance: Tolerance,
}

/// Opens an upload session: the task, and how to send its file. A session never closed
/// expires with the task's retention (and its file with the bucket's lifecycle rule).
#[tracing::instrument(skip_all, fields(task_type = session.task_type.slug(),
    owner = %session.owner.log_id()))]
pub async fn open(
    store: &dyn TaskStore,
    files: &dyn FileStore,
    settings: &Settings,
    session: UploadSession,
    now: OffsetDateTime,
) -> Result<TaskView, AppError> {
    let mut task = Task::new(session.task_type, session.owner, 0, now);
    task.status = TaskStatus::AwaitingUpload;
    task.tolerance = session.tolerance;
    task.upload = Some(session.upload);
    task.expires_at = Some(now + settings.retention);
    task.trace = crate::trace::current();
    store.insert_task(&task).await?;
    tracing::info!(task_id = %task.id, "upload session opened");
    view(files, &task, now).await
}

/// The task's JSON; while it awaits its file, with a freshly signed upload request, and once
/// its result files are written, with freshly signed links to them.
pub async fn view(
    files: &dyn FileStore,
    task: &Task,
    now: OffsetDateTime,
) -> Result<TaskView, AppError> {
    let mut view = task.view();
    if let (TaskStatus::AwaitingUpload, Some(upload)) = (task.status, &task.upload) {
        let request = files
            .presign_upload(&object_key(task.id), upload, URL_VALIDITY)
            .await?;
        view.upload = Some(UploadInstructions {
            url: request.url,
            method: request.method,
            headers: request.headers.into_iter().collect(),
            expires_at: now + URL_VALIDITY,
            complete: format!("{}/upload-complete", view.links.self_),
        });
    }
    if let (true, Some(upload)) = (task.result_files, &task.upload) {
        let (result, errors) = result_file_keys(task.id, upload.result_format);
        view.links.result_file = Some(files.presign_download(&result, URL_VALIDITY).await?);
        view.links.errors_file = Some(files.presign_download(&errors, URL_VALIDITY).await?);
    }
    Ok(view)
}

/// Closes the upload: checks the stored file, moves the task to `validating` and sends the
/// ingest run. A second close of a closed upload answers the task as it stands (and sends the
/// run again, which finds its work done or resumes it).
#[tracing::instrument(skip_all, fields(task_id = %id))]
pub async fn complete(
    store: &dyn TaskStore,
    files: &dyn FileStore,
    ingest: &dyn IngestQueue,
    owner: &Owner,
    task_type: TaskType,
    id: TaskId,
    now: OffsetDateTime,
) -> Result<Task, AppError> {
    let task = get_task(store, owner, task_type, id, now).await?;
    let Some(upload) = &task.upload else {
        return Err(AppError::TaskNotAwaitingUpload);
    };
    match task.status {
        TaskStatus::AwaitingUpload => {}
        TaskStatus::Validating => {
            send_run(ingest, id).await?;
            return Ok(task);
        }
        // Closed before (validation started it), or cancelled while it awaited the file.
        _ if task.started_at.is_some() => return Ok(task),
        _ => return Err(AppError::TaskNotAwaitingUpload),
    }
    let Some(stored) = files.head(&object_key(id)).await? else {
        return Err(AppError::UploadNotReceived);
    };
    if stored.size != upload.content_length {
        return Err(AppError::UploadMismatch(
            "its length is not the declared content_length",
        ));
    }
    if stored
        .checksum_sha256
        .as_ref()
        .is_some_and(|sum| sum != &upload.checksum_sha256)
    {
        return Err(AppError::UploadMismatch(
            "its SHA-256 is not the declared checksum_sha256",
        ));
    }
    if !store
        .transition(
            id,
            TaskStatus::AwaitingUpload,
            TaskStatus::Validating,
            now,
            None,
        )
        .await?
    {
        // A concurrent close or cancel moved it first: answer as for a repeated close.
        let task = get_task(store, owner, task_type, id, now).await?;
        return match task.status {
            TaskStatus::Validating => Ok(task),
            _ if task.started_at.is_some() => Ok(task),
            _ => Err(AppError::TaskNotAwaitingUpload),
        };
    }
    // The task is `validating` now: if this send fails, the client's retried close sends it.
    send_run(ingest, id).await?;
    tracing::info!(task_id = %id, bytes = upload.content_length, "upload closed; ingest sent");
    get_task(store, owner, task_type, id, now).await
}

/// Where a task's file is kept in the uploads bucket. Derived from the task id alone: no
/// caller data in object keys.
pub fn object_key(task_id: TaskId) -> String {
    format!("uploads/{task_id}")
}

/// The body of `POST /tasks/{task_type}/uploads`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadRequest {
    content_type: String,
    content_length: u64,
    checksum_sha256: String,
    #[serde(default)]
    invalid_rows: Option<String>,
    #[serde(default)]
    result_format: Option<String>,
}

/// Reads and checks an upload request; every problem is one detail of a 422.
pub fn parse_upload(body: &[u8]) -> Result<Upload, AppError> {
    let value = crate::strict_json::parse(body).map_err(AppError::from)?;
    if !value.is_object() {
        return Err(AppError::InvalidBody("a JSON object describing the file"));
    }
    let request: UploadRequest = serde_json::from_value(value).map_err(|_| {
        AppError::InvalidBody(
            "content_type, content_length, checksum_sha256, and optionally invalid_rows and result_format",
        )
    })?;
    let mut details = Vec::new();
    let format = FileFormat::parse(&request.content_type);
    if format.is_none() {
        details.push(ErrorDetail::field(
            "content_type",
            "unsupported_content_type",
            "Use text/csv or application/x-ndjson.",
        ));
    }
    if request.content_length == 0 {
        details.push(ErrorDetail::field(
            "content_length",
            "empty_file",
            "The file must not be empty.",
        ));
    } else if request.content_length > MAX_UPLOAD_BYTES {
        details.push(ErrorDetail::field(
            "content_length",
            "file_too_large",
            format!("A file may hold at most {MAX_UPLOAD_BYTES} bytes."),
        ));
    }
    if !is_sha256_base64(&request.checksum_sha256) {
        details.push(ErrorDetail::field(
            "checksum_sha256",
            "invalid_checksum_sha256",
            "The file's SHA-256, base64-encoded (44 characters).",
        ));
    }
    let invalid_rows = match request.invalid_rows.as_deref() {
        None => Some(InvalidRows::default()),
        Some(v) => InvalidRows::parse(v),
    };
    if invalid_rows.is_none() {
        details.push(ErrorDetail::field(
            "invalid_rows",
            "invalid_value",
            "Use reject or skip.",
        ));
    }
    let result_format = match request.result_format.as_deref() {
        None => format,
        Some("csv") => Some(FileFormat::Csv),
        Some("ndjson") => Some(FileFormat::Ndjson),
        Some(_) => {
            details.push(ErrorDetail::field(
                "result_format",
                "invalid_value",
                "Use csv or ndjson.",
            ));
            None
        }
    };
    match (format, invalid_rows, result_format) {
        (Some(format), Some(invalid_rows), Some(result_format)) if details.is_empty() => {
            Ok(Upload {
                format,
                content_length: request.content_length,
                checksum_sha256: request.checksum_sha256,
                invalid_rows,
                result_format,
            })
        }
        _ => Err(AppError::ValidationFailed(details)),
    }
}

fn is_sha256_base64(text: &str) -> bool {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .is_ok_and(|bytes| bytes.len() == 32)
}

async fn send_run(ingest: &dyn IngestQueue, task_id: TaskId) -> Result<(), AppError> {
    ingest
        .send(IngestMessage::ingest(task_id, 0))
        .await
        .map_err(|e| {
            tracing::error!(task_id = %task_id, cause = %crate::error::Chain(&e), "ingest send failed");
            AppError::QueueUnavailable
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUM: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

    fn codes(body: &str) -> Vec<String> {
        match parse_upload(body.as_bytes()) {
            Ok(_) => vec![],
            Err(AppError::ValidationFailed(d)) => d.into_iter().map(|d| d.code).collect(),
            Err(e) => vec![e.code().to_owned()],
        }
    }

    #[test]
    fn a_request_names_a_supported_file() {
        let ok = format!(
            r#"{{"content_type": "text/csv", "content_length": 10, "checksum_sha256": "{SUM}"}}"#
        );
        let upload = parse_upload(ok.as_bytes()).unwrap();
        assert_eq!(upload.format, FileFormat::Csv);
        assert_eq!(upload.invalid_rows, InvalidRows::Reject);
        let bad = r#"{"content_type": "text/plain", "content_length": 0, "checksum_sha256": "abc", "invalid_rows": "keep"}"#;
        assert_eq!(
            codes(bad),
            [
                "unsupported_content_type",
                "empty_file",
                "invalid_checksum_sha256",
                "invalid_value"
            ]
        );
        let big = format!(
            r#"{{"content_type": "application/x-ndjson", "content_length": 268435457, "checksum_sha256": "{SUM}"}}"#
        );
        assert_eq!(codes(&big), ["file_too_large"]);
        assert_eq!(codes(r#"{"content_type": "text/csv"}"#), ["invalid_body"]);
        assert_eq!(codes("[]"), ["invalid_body"]);
    }
}
