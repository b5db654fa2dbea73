//! Tasks made from an uploaded file: the upload session a client opens
//! (`POST /tasks/{task_type}/uploads`), what the task keeps of it, and how far the streamed
//! ingest (`usecases::ingest`) has read it.
//!
//! The file never passes through the api: the client PUTs it straight to the bucket with a
//! pre-signed URL bound to the length and SHA-256 it declared, closes the upload
//! (`…/upload-complete`), and the ingest function reads it as a stream into the same waiting
//! chunks an inline task has. So a task may hold [`MAX_FILE_ROWS`] items while no function ever
//! holds the file.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::OffsetDateTime;

/// Largest file an upload session accepts (256 MiB).
pub const MAX_UPLOAD_BYTES: u64 = 256 * 1024 * 1024;

/// Most rows (items) one uploaded file may hold.
pub const MAX_FILE_ROWS: u32 = 1_000_000;

/// How long a pre-signed upload URL is valid.
pub const URL_VALIDITY: Duration = Duration::from_secs(15 * 60);

/// What an uploaded file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileFormat {
    /// `text/csv`: the inline CSV body's rules (header, BOM, CRLF, quoting).
    #[serde(rename = "text/csv")]
    Csv,
    /// `application/x-ndjson`: one JSON object, a beneficiary, per line.
    #[serde(rename = "application/x-ndjson")]
    Ndjson,
}

impl FileFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv",
            Self::Ndjson => "application/x-ndjson",
        }
    }

    pub fn parse(content_type: &str) -> Option<Self> {
        [Self::Csv, Self::Ndjson]
            .into_iter()
            .find(|f| f.content_type() == content_type)
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Ndjson => "jsonl",
        }
    }

    /// `csv` or `ndjson`, as `result_format` is given.
    pub fn short_name(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Ndjson => "ndjson",
        }
    }
}

/// What becomes of a file's invalid rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidRows {
    /// The whole file is refused, as an inline body is: the task ends `rejected` and nothing
    /// reaches BOS.
    #[default]
    Reject,
    /// Each invalid row becomes a failed item (with its line); the others are processed.
    Skip,
}

impl InvalidRows {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reject => "reject",
            Self::Skip => "skip",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Reject, Self::Skip]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// What a task keeps of its upload session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub format: FileFormat,
    /// The exact length the client declared, and the URL is bound to.
    pub content_length: u64,
    /// SHA-256 of the file, base64 (S3's `x-amz-checksum-sha256`).
    pub checksum_sha256: String,
    pub invalid_rows: InvalidRows,
    /// How the result and errors files are written once the task is final (by default, as
    /// the file came).
    pub result_format: FileFormat,
}

/// How far the ingest has read a task's file. Also its checkpoint: chunks below
/// `chunks_stored` are stored and invalid rows below `invalid_recorded` are recorded, so a
/// redelivered ingest stores and records only what comes after (the parse itself is
/// deterministic, so the same rows make the same chunks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Validation {
    pub rows_read: u32,
    pub rows_valid: u32,
    pub rows_invalid: u32,
    /// Chunks `0..chunks_stored` are in the lane store.
    pub chunks_stored: u32,
    /// Invalid rows with an index below this have their failed outcome recorded.
    pub invalid_recorded: u32,
    /// The chunks were appended to the owner's sequence: lanes may take them.
    pub admitted: bool,
}

/// Where a final task's result and errors files are kept: derived from the task id alone.
pub fn result_file_keys(task_id: impl std::fmt::Display, format: FileFormat) -> (String, String) {
    let extension = format.extension();
    (
        format!("results/{task_id}/result.{extension}"),
        format!("results/{task_id}/errors.{extension}"),
    )
}

/// What a task's JSON shows of its file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileView {
    pub content_type: FileFormat,
    pub content_length: u64,
    pub invalid_rows: InvalidRows,
    pub rows_read: u32,
    pub rows_valid: u32,
    pub rows_invalid: u32,
    /// `csv` or `ndjson`: how the result and errors files are written.
    pub result_format: String,
}

impl FileView {
    pub fn of(upload: &Upload, validation: Validation) -> Self {
        Self {
            content_type: upload.format,
            content_length: upload.content_length,
            invalid_rows: upload.invalid_rows,
            result_format: upload.result_format.short_name().to_owned(),
            rows_read: validation.rows_read,
            rows_valid: validation.rows_valid,
            rows_invalid: validation.rows_invalid,
        }
    }
}

/// How to send the file: the pre-signed request, exactly as the client must make it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadInstructions {
    pub url: String,
    pub method: String,
    /// Headers the client must send as they are (the URL's signature covers them).
    pub headers: std::collections::BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Where to close the upload once the file is sent.
    pub complete: String,
}
