//! The file store and the ingest queue in memory: files by key, and the ingest runs that
//! would have been sent.

use super::lock;
use crate::ports::*;
use crate::upload::Upload;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct MemoryFiles {
    files: std::sync::Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

impl MemoryFiles {
    /// Stores a file as a client's PUT would.
    pub fn put(&self, key: &str, bytes: Vec<u8>) {
        lock(&self.files).insert(key.to_owned(), bytes);
    }

    pub fn contains(&self, key: &str) -> bool {
        lock(&self.files).contains_key(key)
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        lock(&self.files).get(key).cloned()
    }
}

#[async_trait]
impl FileStore for MemoryFiles {
    async fn presign_upload(
        &self,
        key: &str,
        upload: &Upload,
        _valid_for: std::time::Duration,
    ) -> Result<PresignedRequest, StoreError> {
        Ok(PresignedRequest {
            url: format!("memory://files/{key}"),
            method: "PUT".into(),
            headers: vec![
                ("content-length".into(), upload.content_length.to_string()),
                (
                    "x-amz-checksum-sha256".into(),
                    upload.checksum_sha256.clone(),
                ),
            ],
        })
    }

    async fn head(&self, key: &str) -> Result<Option<StoredFile>, StoreError> {
        Ok(lock(&self.files).get(key).map(|bytes| StoredFile {
            size: bytes.len() as u64,
            checksum_sha256: None,
        }))
    }

    async fn open(&self, key: &str) -> Result<Option<FileReader>, StoreError> {
        Ok(lock(&self.files)
            .get(key)
            .map(|bytes| Box::new(std::io::Cursor::new(bytes.clone())) as FileReader))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        lock(&self.files).remove(key);
        Ok(())
    }

    async fn create(
        &self,
        key: &str,
        _content_type: &str,
    ) -> Result<Box<dyn FileSink>, StoreError> {
        Ok(Box::new(MemorySink {
            files: std::sync::Arc::clone(&self.files),
            key: key.to_owned(),
            bytes: Vec::new(),
        }))
    }

    async fn presign_download(
        &self,
        key: &str,
        _valid_for: std::time::Duration,
    ) -> Result<String, StoreError> {
        Ok(format!("memory://files/{key}"))
    }
}

/// A file being written: visible once finished, as an S3 multipart upload.
struct MemorySink {
    files: std::sync::Arc<Mutex<HashMap<String, Vec<u8>>>>,
    key: String,
    bytes: Vec<u8>,
}

#[async_trait]
impl FileSink for MemorySink {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<(), StoreError> {
        lock(&self.files).insert(self.key, self.bytes);
        Ok(())
    }
}

/// The ingest runs sent, in order.
#[derive(Default)]
pub struct MemoryIngestQueue {
    sent: Mutex<Vec<IngestMessage>>,
}

impl MemoryIngestQueue {
    pub fn sent(&self) -> Vec<IngestMessage> {
        lock(&self.sent).clone()
    }
}

#[async_trait]
impl IngestQueue for MemoryIngestQueue {
    async fn send(&self, message: IngestMessage) -> Result<(), QueueError> {
        lock(&self.sent).push(message);
        Ok(())
    }
}
