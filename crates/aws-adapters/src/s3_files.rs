//! The file store on S3: pre-signed PUTs for uploads, `HeadObject` to check one, `GetObject`
//! read as a blocking stream for the ingest's parser, `DeleteObject` once it is read; result
//! files written as multipart uploads and handed out as pre-signed GETs.
//!
//! Locally (`AWS_ENDPOINT_URL_S3` set, moto), addresses are path-style: moto serves every
//! bucket on one host, where S3's virtual-hosted names would need a DNS entry per bucket.

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumMode, CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use std::time::Duration;
use tasks_core::ports::{
    FileReader, FileSink, FileStore, PresignedRequest, StoreError, StoredFile,
};
use tasks_core::upload::Upload;

#[derive(Clone)]
pub struct S3Files {
    client: Client,
    bucket: String,
}

impl S3Files {
    pub fn from_config(config: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        let local = std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(local)
            .build();
        Self {
            client: Client::from_conf(s3),
            bucket: bucket.into(),
        }
    }
}

/// Throttling, S3's own trouble and the network are worth a retry; a refusal is not.
fn store_error<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let retryable = match &e {
        SdkError::ServiceError(se) => matches!(
            se.err().code(),
            Some("SlowDown" | "InternalError" | "ServiceUnavailable" | "RequestTimeout")
        ),
        _ => true,
    };
    if retryable {
        StoreError::transient(e)
    } else {
        StoreError::permanent(e)
    }
}

/// The header names a pre-signed URL's `X-Amz-SignedHeaders` lists.
fn signed_headers(uri: &str) -> Vec<String> {
    let query = uri.split_once('?').map_or("", |(_, q)| q);
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "X-Amz-SignedHeaders")
        .map(|(_, v)| v.split(';').map(str::to_owned).collect())
        .unwrap_or_default()
}

#[async_trait]
impl FileStore for S3Files {
    async fn presign_upload(
        &self,
        key: &str,
        upload: &Upload,
        valid_for: Duration,
    ) -> Result<PresignedRequest, StoreError> {
        let config = PresigningConfig::expires_in(valid_for).map_err(StoreError::permanent)?;
        let length = i64::try_from(upload.content_length).map_err(StoreError::permanent)?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(length)
            .content_type(upload.format.content_type())
            .checksum_sha256(&upload.checksum_sha256)
            .presigned(config)
            .await
            .map_err(store_error)?;
        // Only the headers the signature covers: the SDK also adds its own (a trace header),
        // which is ours, not the client's.
        let signed = signed_headers(request.uri());
        Ok(PresignedRequest {
            url: request.uri().to_owned(),
            method: request.method().to_owned(),
            headers: request
                .headers()
                .filter(|(k, _)| signed.iter().any(|s| s.eq_ignore_ascii_case(k)))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        })
    }

    async fn head(&self, key: &str) -> Result<Option<StoredFile>, StoreError> {
        let result = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(StoredFile {
                size: out.content_length().map_or(0, |n| n.max(0) as u64),
                checksum_sha256: out.checksum_sha256().map(str::to_owned),
            })),
            Err(SdkError::ServiceError(se)) if se.err().is_not_found() => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn open(&self, key: &str) -> Result<Option<FileReader>, StoreError> {
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        match result {
            Ok(out) => {
                let stream = out.body.into_async_read();
                Ok(Some(Box::new(tokio_util::io::SyncIoBridge::new(stream))))
            }
            Err(SdkError::ServiceError(se)) if se.err().is_no_such_key() => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn create(&self, key: &str, content_type: &str) -> Result<Box<dyn FileSink>, StoreError> {
        let started = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(store_error)?;
        let upload_id = started
            .upload_id()
            .ok_or_else(|| StoreError::permanent("no upload id"))?
            .to_owned();
        Ok(Box::new(MultipartSink {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            upload_id,
            buffer: Vec::with_capacity(PART_BYTES),
            parts: Vec::new(),
        }))
    }

    async fn presign_download(&self, key: &str, valid_for: Duration) -> Result<String, StoreError> {
        let config = PresigningConfig::expires_in(valid_for).map_err(StoreError::permanent)?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(store_error)?;
        Ok(request.uri().to_owned())
    }
}

/// Bytes a part holds before it is sent (S3 wants at least 5 MiB but for the last): memory
/// for a file of any size is this buffer.
const PART_BYTES: usize = 8 * 1024 * 1024;

/// A file written as an S3 multipart upload, a part every [`PART_BYTES`].
struct MultipartSink {
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    buffer: Vec<u8>,
    parts: Vec<CompletedPart>,
}

impl MultipartSink {
    async fn send_part(&mut self) -> Result<(), StoreError> {
        let number = self.parts.len() as i32 + 1;
        let body = std::mem::replace(&mut self.buffer, Vec::with_capacity(PART_BYTES));
        let sent = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(store_error)?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(sent.e_tag().map(str::to_owned))
                .build(),
        );
        Ok(())
    }

    /// Gives the upload up (best effort: the lifecycle rule aborts what is left after a day).
    async fn abort(&self) {
        let _ = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await;
    }
}

#[async_trait]
impl FileSink for MultipartSink {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= PART_BYTES {
            if let Err(e) = self.send_part().await {
                self.abort().await;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<(), StoreError> {
        // The last part may be short, or empty for an empty file (one part is needed).
        if !self.buffer.is_empty() || self.parts.is_empty() {
            if let Err(e) = self.send_part().await {
                self.abort().await;
                return Err(e);
            }
        }
        let parts = std::mem::take(&mut self.parts);
        let result = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        if let Err(e) = result {
            self.abort().await;
            return Err(store_error(e));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signed_headers_are_read_from_the_query() {
        let uri = "http://h/b/k?x-id=PutObject&X-Amz-SignedHeaders=content-length%3Bhost%3Bx-amz-checksum-sha256&X-Amz-Signature=0";
        assert_eq!(
            super::signed_headers(uri),
            ["content-length", "host", "x-amz-checksum-sha256"]
        );
    }
}
