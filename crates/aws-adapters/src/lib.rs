//! The AWS side of the ports: the DynamoDB task and lane stores and the SQS FIFO work queue, plus what
//! every function does once at cold start (AWS configuration, JSON logging).
//!
//! Endpoints come from the standard SDK environment (`AWS_ENDPOINT_URL_DYNAMODB`,
//! `AWS_ENDPOINT_URL_SQS`), which is how the local gateway points the real functions at
//! DynamoDB Local and moto without any code path of its own.

pub mod dynamodb;
pub mod redrive;
#[cfg(feature = "uploads")]
pub mod s3_files;
pub mod sqs_batch;
pub mod sqs_delivery_queue;
pub mod sqs_ingest_queue;
pub mod sqs_queue;
pub mod sqs_send;
pub mod startup;
pub mod table_stream;
#[cfg(feature = "websocket-push")]
pub mod ws_push;

pub use dynamodb::{DynamoLanes, DynamoTaskStore};
pub use sqs_delivery_queue::SqsDeliveryQueue;
pub use sqs_ingest_queue::SqsIngestQueue;
pub use sqs_queue::SqsWorkQueue;
