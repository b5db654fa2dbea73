//! [`FramePusher`] on API Gateway's `@connections` management API
//! (`aws-sdk-apigatewaymanagement`): one `PostToConnection` per frame. A `GoneException`
//! means the client has left; throttling and server errors are retried a little, since a
//! lost `final` frame is the one a client would miss.

use crate::startup::{StartupError, StoreStart};
use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::error::ProvideErrorMetadata;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_apigatewaymanagement::Client;
use backon::{ExponentialBuilder, Retryable};
use std::time::Duration;
use tasks_core::live_progress::ConnectionId;
use tasks_core::ports::{FramePusher, PushError};

pub struct ApiGatewayPusher {
    client: Client,
}

impl ApiGatewayPusher {
    /// `endpoint`: the WebSocket API's `https://{api id}.execute-api.{region}.amazonaws.com/{stage}`.
    pub fn from_config(config: &aws_config::SdkConfig, endpoint: &str) -> Self {
        let conf = aws_sdk_apigatewaymanagement::config::Builder::from(config)
            .endpoint_url(endpoint)
            .build();
        Self {
            client: Client::from_conf(conf),
        }
    }
}

#[async_trait]
impl FramePusher for ApiGatewayPusher {
    async fn push(&self, id: &ConnectionId, frame: &str) -> Result<(), PushError> {
        let post = || async {
            self.client
                .post_to_connection()
                .connection_id(id.as_str())
                .data(Blob::new(frame.as_bytes()))
                .send()
                .await
        };
        let result = post
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(50))
                    .with_max_times(3),
            )
            .when(|e| {
                // Gone, forbidden and too large will not change; the rest may.
                !matches!(
                    e.as_service_error().and_then(|se| se.code()),
                    Some("GoneException" | "ForbiddenException" | "PayloadTooLargeException")
                )
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_gone_exception()) =>
            {
                Err(PushError::Gone)
            }
            Err(e) => Err(PushError::Failed(Box::new(e))),
        }
    }
}

/// What both live progress functions check before their first poll: [`StoreStart`], and
/// where the WebSocket API is (`WEBSOCKET_API_ENDPOINT`).
pub struct LiveStart {
    store: StoreStart,
    endpoint: String,
}

impl LiveStart {
    pub fn from_env() -> Result<Self, StartupError> {
        Ok(Self {
            store: StoreStart::from_env()?,
            endpoint: crate::startup::required_env("WEBSOCKET_API_ENDPOINT")?,
        })
    }

    /// The store and the pusher, built while the first poll waits.
    pub async fn connect(
        self,
    ) -> Result<(std::sync::Arc<crate::DynamoTaskStore>, ApiGatewayPusher), StartupError> {
        let (aws, store) = self.store.connect().await?;
        Ok((
            std::sync::Arc::new(store),
            ApiGatewayPusher::from_config(&aws, &self.endpoint),
        ))
    }
}
