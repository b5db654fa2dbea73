//! The outcome of a final task made from a file, given back as files: its result (one row per
//! item) and its errors (one row per failed item), CSV with the columns of the CSV pages
//! (`csv_output`) or JSON Lines with the objects of the JSON pages, as the upload session
//! chose. Written by the file function once the notifier sees the task final, as a stream of
//! outcome pages into a multipart upload: memory stays one page and one part, whatever the
//! task's size. The task JSON then links both as pre-signed GETs (`upload_task::view`).

use crate::csv_output;
use crate::outcome::{ItemOutcome, OutcomeResult};
use crate::ports::{FileStore, OutcomeFilter, StoreError, TaskStore};
use crate::task::{Task, TaskId};
use crate::upload::{result_file_keys, FileFormat};

/// Outcomes read per query: about one DynamoDB page.
pub const EXPORT_PAGE: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("an outcome could not be encoded")]
    Encode(#[from] serde_json::Error),
}

/// What an export did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exported {
    /// Nothing to do: no such task, not final, not made from a file, or written already.
    Nothing,
    /// Both files written, with this many rows each.
    Written { results: u64, errors: u64 },
}

/// Writes the task's two files, then records them. Safe to repeat: a file is replaced whole
/// only when its upload finishes.
#[tracing::instrument(skip_all, fields(task_id = %id))]
pub async fn export(
    store: &dyn TaskStore,
    files: &dyn FileStore,
    id: TaskId,
) -> Result<Exported, ExportError> {
    let Some(task) = store.get_task(id).await? else {
        return Ok(Exported::Nothing);
    };
    let Some(upload) = &task.upload else {
        return Ok(Exported::Nothing);
    };
    if !task.status.is_final() || task.result_files {
        return Ok(Exported::Nothing);
    }
    let format = upload.result_format;
    let (result_key, errors_key) = result_file_keys(id, format);
    let results = write(store, files, &task, &result_key, format, OutcomeFilter::All).await?;
    let errors = write(
        store,
        files,
        &task,
        &errors_key,
        format,
        OutcomeFilter::FailedOnly,
    )
    .await?;
    store.mark_result_files(id).await?;
    tracing::info!(results, errors, "result files written");
    Ok(Exported::Written { results, errors })
}

/// Writes one file of the task's outcomes, page by page; returns its rows.
async fn write(
    store: &dyn TaskStore,
    files: &dyn FileStore,
    task: &Task,
    key: &str,
    format: FileFormat,
    filter: OutcomeFilter,
) -> Result<u64, ExportError> {
    let mut sink = files.create(key, format.content_type()).await?;
    let mut after = None;
    let mut rows = 0;
    loop {
        let (page, more) = store
            .list_outcomes(task.id, filter, after, EXPORT_PAGE)
            .await?;
        rows += page.len() as u64;
        let text = render(task, format, filter, &page, after.is_none())?;
        sink.write(text.as_bytes()).await?;
        match (more, page.last()) {
            (true, Some(last)) => after = Some(last.index),
            _ => break,
        }
    }
    sink.finish().await?;
    Ok(rows)
}

/// One page of the file: CSV rows (the header on the first page only), or JSON lines.
fn render(
    task: &Task,
    format: FileFormat,
    filter: OutcomeFilter,
    page: &[ItemOutcome],
    first: bool,
) -> Result<String, serde_json::Error> {
    let errors = filter == OutcomeFilter::FailedOnly;
    match format {
        FileFormat::Csv => {
            let text = if errors {
                csv_output::errors(page)
            } else {
                csv_output::result(task.task_type, page)
            };
            // Every CSV page is a whole file with its header; the file has one header.
            Ok(match (first, text.split_once('\n')) {
                (false, Some((_header, rows))) => rows.to_owned(),
                _ => text,
            })
        }
        FileFormat::Ndjson => {
            let mut text = String::new();
            for outcome in page {
                let line = match (&outcome.result, errors) {
                    (OutcomeResult::Failed { error }, true) => serde_json::to_string(error)?,
                    (_, true) => continue,
                    (_, false) => serde_json::to_string(outcome)?,
                };
                text.push_str(&line);
                text.push('\n');
            }
            Ok(text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_body::ErrorDetail;
    use crate::identity::Owner;
    use crate::memory::{MemoryFiles, MemoryStore};
    use crate::task::{TaskStatus, TaskType};
    use crate::upload::{InvalidRows, Upload};
    use time::OffsetDateTime;

    async fn final_task(store: &MemoryStore, format: FileFormat, items: u32) -> TaskId {
        let now = OffsetDateTime::now_utc();
        let owner = Owner::from_subject("alice").unwrap();
        let mut task = Task::new(TaskType::BeneficiariesValidation, owner, items, now);
        task.upload = Some(Upload {
            format: FileFormat::Csv,
            content_length: 1,
            checksum_sha256: String::new(),
            invalid_rows: InvalidRows::Skip,
            result_format: format,
        });
        store.insert_task(&task).await.unwrap();
        let outcomes: Vec<ItemOutcome> = (0..items)
            .map(|index| ItemOutcome {
                index,
                external_id: Some(format!("x-{index}")),
                result: if index % 3 == 0 {
                    OutcomeResult::Failed {
                        error: ErrorDetail::field("iban", "invalid_checksum", "Bad.")
                            .at(index, None),
                    }
                } else {
                    OutcomeResult::Succeeded {
                        output: serde_json::json!({"verdict": {"valid": true}})
                            .as_object()
                            .cloned()
                            .unwrap_or_default(),
                    }
                },
                input: None,
                bos_key: None,
            })
            .collect();
        for batch in outcomes.chunks(99) {
            store
                .record_outcomes(task.id, batch, None, now, now)
                .await
                .unwrap();
        }
        store
            .transition(
                task.id,
                TaskStatus::Queued,
                TaskStatus::CompletedWithErrors,
                now,
                None,
            )
            .await
            .unwrap();
        task.id
    }

    #[tokio::test]
    async fn a_final_task_gets_one_result_file_and_one_errors_file_over_many_pages() {
        let (store, files) = (MemoryStore::default(), MemoryFiles::default());
        let id = final_task(&store, FileFormat::Csv, 2_500).await;
        let exported = export(&store, &files, id).await.unwrap();
        assert_eq!(
            exported,
            Exported::Written {
                results: 2_500,
                errors: 834
            }
        );
        let (result_key, errors_key) = result_file_keys(id, FileFormat::Csv);
        let result = String::from_utf8(files.get(&result_key).unwrap()).unwrap();
        assert_eq!(result.lines().count(), 2_501, "one header, one row an item");
        assert_eq!(result.matches("index,external_id,status").count(), 1);
        let errors = String::from_utf8(files.get(&errors_key).unwrap()).unwrap();
        assert_eq!(errors.lines().count(), 835);
        assert!(store.get(id).unwrap().result_files);
        assert_eq!(export(&store, &files, id).await.unwrap(), Exported::Nothing);
    }

    #[tokio::test]
    async fn json_lines_files_hold_the_objects_of_the_json_pages() {
        let (store, files) = (MemoryStore::default(), MemoryFiles::default());
        let id = final_task(&store, FileFormat::Ndjson, 4).await;
        export(&store, &files, id).await.unwrap();
        let (result_key, errors_key) = result_file_keys(id, FileFormat::Ndjson);
        let result = String::from_utf8(files.get(&result_key).unwrap()).unwrap();
        let first: serde_json::Value =
            serde_json::from_str(result.lines().next().unwrap()).unwrap();
        assert_eq!(first["status"], "failed");
        let errors = String::from_utf8(files.get(&errors_key).unwrap()).unwrap();
        let codes: Vec<serde_json::Value> = errors
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["index"].clone())
            .collect();
        assert_eq!(codes, [0, 3]);
    }
}
