//! The table and the queues: what the local stack creates in DynamoDB Local and moto.

use super::expr::{expr, pairs, str_of, Expr};
use super::{shape, TemplateError};
use serde_norway::Value;

#[derive(Debug, Clone)]
pub struct TableSpec {
    pub logical_id: String,
    pub attributes: Vec<(String, String)>,
    pub key_schema: Vec<(String, String)>,
    pub indexes: Vec<IndexSpec>,
    pub ttl_attribute: Option<String>,
    /// `StreamSpecification.StreamViewType`, when the table has a stream.
    pub stream_view_type: Option<String>,
}

#[derive(Debug, Clone)]
pub struct IndexSpec {
    pub name: String,
    pub key_schema: Vec<(String, String)>,
    pub projection: String,
}

/// An S3 bucket: created empty in moto. Its lifecycle, encryption and policy are AWS's to
/// apply; locally, files are deleted by the ingest (or with the emulator).
#[derive(Debug, Clone)]
pub struct BucketSpec {
    pub logical_id: String,
}

#[derive(Debug, Clone)]
pub struct QueueSpec {
    pub logical_id: String,
    pub fifo: bool,
    pub content_based_deduplication: bool,
    pub visibility_timeout: u32,
    /// Logical id of the dead-letter queue and the receive count before moving there.
    pub redrive: Option<(String, Expr)>,
}

pub(super) fn table(id: &str, p: &Value) -> Result<TableSpec, TemplateError> {
    let indexes = match p.get("GlobalSecondaryIndexes").and_then(Value::as_sequence) {
        None => vec![],
        Some(seq) => seq
            .iter()
            .map(|g| {
                Ok(IndexSpec {
                    name: str_of(&g["IndexName"])?.to_owned(),
                    key_schema: pairs(g.get("KeySchema"), "AttributeName", "KeyType")?,
                    projection: g["Projection"]["ProjectionType"]
                        .as_str()
                        .unwrap_or("ALL")
                        .to_owned(),
                })
            })
            .collect::<Result<_, TemplateError>>()?,
    };
    let ttl = p.get("TimeToLiveSpecification");
    Ok(TableSpec {
        logical_id: id.to_owned(),
        attributes: pairs(
            p.get("AttributeDefinitions"),
            "AttributeName",
            "AttributeType",
        )?,
        key_schema: pairs(p.get("KeySchema"), "AttributeName", "KeyType")?,
        indexes,
        ttl_attribute: ttl
            .filter(|t| t["Enabled"].as_bool() == Some(true))
            .and_then(|t| t["AttributeName"].as_str())
            .map(str::to_owned),
        stream_view_type: p
            .get("StreamSpecification")
            .and_then(|s| s["StreamViewType"].as_str())
            .map(str::to_owned),
    })
}

pub(super) fn queue(id: &str, p: &Value) -> Result<QueueSpec, TemplateError> {
    let redrive = match p.get("RedrivePolicy") {
        None => None,
        Some(r) => {
            let target = match expr(&r["deadLetterTargetArn"])? {
                Expr::GetAtt(res, att) if att == "Arn" => res,
                other => {
                    return Err(shape(format!(
                        "{id}: deadLetterTargetArn must be !GetAtt X.Arn, got {other:?}"
                    )))
                }
            };
            Some((target, expr(&r["maxReceiveCount"])?))
        }
    };
    Ok(QueueSpec {
        logical_id: id.to_owned(),
        fifo: p["FifoQueue"].as_bool().unwrap_or(false),
        content_based_deduplication: p["ContentBasedDeduplication"].as_bool().unwrap_or(false),
        visibility_timeout: p["VisibilityTimeout"].as_u64().unwrap_or(30) as u32,
        redrive,
    })
}
