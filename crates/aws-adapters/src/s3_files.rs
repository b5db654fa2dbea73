//! The file store on S3: pre-signed PUTs for uploads, `HeadObject` to check one, `GetObject`
//! read as a blocking stream for the ingest's parser, `DeleteObject` once it is read.
//!
//! Locally (`AWS_ENDPOINT_URL_S3` set, moto), addresses are path-style: moto serves every
//! bucket on one host, where S3's virtual-hosted names would need a DNS entry per bucket.

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::ChecksumMode;
use aws_sdk_s3::Client;
use std::time::Duration;
use tasks_core::ports::{FileReader, FileStore, PresignedRequest, StoreError, StoredFile};
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
