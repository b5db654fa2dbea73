//! Creates the template's table and queues in DynamoDB Local and moto, under a name prefix
//! so that several stacks (parallel tests, a dev stack) share one emulator without touching
//! each other, and resolves `Ref`/`GetAtt` for function environments.

use crate::template::{Expr, Template};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone)]
pub struct QueueInfo {
    pub name: String,
    pub url: String,
    pub arn: String,
}

/// What exists after provisioning, by logical id.
#[derive(Debug, Clone, Default)]
pub struct Provisioned {
    pub tables: HashMap<String, String>,
    /// Table logical id → its stream's ARN (DynamoDB Local's `LatestStreamArn`).
    pub streams: HashMap<String, String>,
    pub queues: HashMap<String, QueueInfo>,
    /// Bucket logical id → its name in moto.
    pub buckets: HashMap<String, String>,
    pub parameters: BTreeMap<String, String>,
    /// Secrets Manager secret name → value, for `{{resolve:secretsmanager:NAME:SecretString}}`.
    pub secrets: BTreeMap<String, String>,
    /// Stands in for `AWS::StackName`.
    pub stack_name: String,
    /// WebSocket API logical id → the local gateway's base URL (`http://127.0.0.1:3000`),
    /// which stands in for `https://{api id}.execute-api.{region}.amazonaws.com`.
    pub websocket_apis: HashMap<String, String>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn keys(schema: &[(String, String)]) -> Result<Vec<KeySchemaElement>, BoxError> {
    schema
        .iter()
        .map(|(name, kind)| {
            Ok(KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(KeyType::from(kind.as_str()))
                .build()?)
        })
        .collect()
}

pub async fn provision(
    template: &Template,
    prefix: &str,
    ddb: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    moto: &str,
    parameter_overrides: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, String>,
) -> Result<Provisioned, BoxError> {
    let mut out = Provisioned {
        parameters: template.parameters.clone(),
        secrets: secrets.clone(),
        stack_name: prefix.to_owned(),
        ..Default::default()
    };
    out.parameters.extend(parameter_overrides.clone());

    for t in &template.tables {
        let name = format!("{prefix}-{}", t.logical_id);
        let mut req = ddb
            .create_table()
            .table_name(&name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(keys(&t.key_schema)?));
        for (attr, kind) in &t.attributes {
            req = req.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(attr)
                    .attribute_type(ScalarAttributeType::from(kind.as_str()))
                    .build()?,
            );
        }
        if let Some(view) = &t.stream_view_type {
            req = req.stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::from(view.as_str()))
                    .build()?,
            );
        }
        for i in &t.indexes {
            req = req.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(&i.name)
                    .set_key_schema(Some(keys(&i.key_schema)?))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::from(i.projection.as_str()))
                            .build(),
                    )
                    .build()?,
            );
        }
        match req.send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) =>
            {
                tracing::info!(table = %name, "table exists; reusing it");
            }
            Err(e) => {
                return Err(aws_sdk_dynamodb::error::DisplayErrorContext(e)
                    .to_string()
                    .into())
            }
        }
        if let Some(attr) = &t.ttl_attribute {
            // DynamoDB Local accepts the setting; it does not delete expired items, which is
            // why reads hide expired records themselves.
            let _ttl_is_best_effort_locally = ddb
                .update_time_to_live()
                .table_name(&name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(attr)
                        .enabled(true)
                        .build()?,
                )
                .send()
                .await;
        }
        if t.stream_view_type.is_some() {
            let described = ddb
                .describe_table()
                .table_name(&name)
                .send()
                .await
                .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())?;
            let arn = described
                .table()
                .and_then(|t| t.latest_stream_arn())
                .ok_or_else(|| format!("{name} has no stream"))?;
            out.streams.insert(t.logical_id.clone(), arn.to_owned());
        }
        out.tables.insert(t.logical_id.clone(), name);
    }

    // Dead-letter targets first: a queue's redrive policy needs its target's ARN.
    let mut queues = template.queues.clone();
    queues.sort_by_key(|q| q.redrive.is_some());
    for q in &queues {
        let name = format!(
            "{prefix}-{}{}",
            q.logical_id,
            if q.fifo { ".fifo" } else { "" }
        );
        let mut req = sqs.create_queue().queue_name(&name).attributes(
            QueueAttributeName::VisibilityTimeout,
            q.visibility_timeout.to_string(),
        );
        if q.fifo {
            req = req
                .attributes(QueueAttributeName::FifoQueue, "true")
                .attributes(
                    QueueAttributeName::ContentBasedDeduplication,
                    q.content_based_deduplication.to_string(),
                );
        }
        if let Some((target, max_receive)) = &q.redrive {
            let target_arn = &out
                .queues
                .get(target)
                .ok_or_else(|| format!("{}: dead-letter queue {target} not found", q.logical_id))?
                .arn;
            let max = resolve(max_receive, &out)?;
            let policy =
                serde_json::json!({"deadLetterTargetArn": target_arn, "maxReceiveCount": max});
            req = req.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
        }
        let url = req
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?
            .queue_url()
            .ok_or("create_queue returned no URL")?
            .to_owned();
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
        let arn = attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .ok_or("queue has no ARN")?
            .clone();
        out.queues
            .insert(q.logical_id.clone(), QueueInfo { name, url, arn });
    }
    for b in &template.buckets {
        let name = bucket_name(prefix, &b.logical_id);
        create_bucket(moto, &name).await?;
        out.buckets.insert(b.logical_id.clone(), name);
    }
    Ok(out)
}

/// S3's rules for a name (3 to 63 lowercase letters, digits and hyphens), from the prefix and
/// the logical id.
fn bucket_name(prefix: &str, logical_id: &str) -> String {
    let name: String = format!("{prefix}-{logical_id}")
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name.chars()
        .take(63)
        .collect::<String>()
        .trim_matches('-')
        .to_owned()
}

/// `CreateBucket` as a plain path-style PUT: moto asks for no signature, and a bucket that
/// exists already (a stack restarted on the same emulator) is reused.
async fn create_bucket(moto: &str, name: &str) -> Result<(), BoxError> {
    let response = reqwest::Client::new()
        .put(format!("{}/{name}", moto.trim_end_matches('/')))
        .send()
        .await?;
    let status = response.status();
    if status.is_success() || status == reqwest::StatusCode::CONFLICT {
        Ok(())
    } else {
        Err(format!("creating bucket {name} answered {status}").into())
    }
}

/// The value CloudFormation would give `expr` once the stack exists.
pub fn resolve(expr: &Expr, p: &Provisioned) -> Result<String, BoxError> {
    match expr {
        Expr::Literal(v) => Ok(v.clone()),
        Expr::Ref(id) => p
            .parameters
            .get(id)
            .or_else(|| p.tables.get(id))
            .or_else(|| p.buckets.get(id))
            .cloned()
            .or_else(|| p.queues.get(id).map(|q| q.url.clone()))
            .ok_or_else(|| format!("cannot resolve !Ref {id}").into()),
        Expr::GetAtt(id, att) => {
            if let Some(q) = p.queues.get(id) {
                return match att.as_str() {
                    "Arn" => Ok(q.arn.clone()),
                    "QueueName" => Ok(q.name.clone()),
                    "QueueUrl" => Ok(q.url.clone()),
                    _ => Err(format!("unsupported !GetAtt {id}.{att}").into()),
                };
            }
            if let (Some(b), "Arn") = (p.buckets.get(id), att.as_str()) {
                return Ok(format!("arn:aws:s3:::{b}"));
            }
            if let (Some(t), "Arn") = (p.tables.get(id), att.as_str()) {
                return Ok(format!("arn:aws:dynamodb:us-east-1:000000000000:table/{t}"));
            }
            if let (Some(arn), "StreamArn") = (p.streams.get(id), att.as_str()) {
                return Ok(arn.clone());
            }
            Err(format!("cannot resolve !GetAtt {id}.{att}").into())
        }
        Expr::Sub(text) => substitute(text, p),
        Expr::Join(separator, parts) => Ok(parts
            .iter()
            .map(|part| resolve(part, p))
            .collect::<Result<Vec<_>, _>>()?
            .join(separator)),
    }
}

/// Stores the local secrets in Secrets Manager (moto), where the functions read them at cold
/// start as they do in AWS. Stacks share the emulator and the development values, so a secret
/// that exists already gets this value again.
pub async fn store_secrets(
    client: &aws_sdk_secretsmanager::Client,
    secrets: &BTreeMap<String, String>,
) -> Result<(), BoxError> {
    for (name, value) in secrets {
        let created = client
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_exists_exception()) =>
            {
                client
                    .put_secret_value()
                    .secret_id(name)
                    .secret_string(value)
                    .send()
                    .await?;
            }
            Err(e) => {
                return Err(aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                    .to_string()
                    .into())
            }
        }
    }
    Ok(())
}

/// `!Sub`: `${AWS::…}` pseudo parameters, `${Name}` as `!Ref`, `${Name.Attr}` as `!GetAtt`;
/// then Secrets Manager dynamic references from the local secrets.
fn substitute(text: &str, p: &Provisioned) -> Result<String, BoxError> {
    // A WebSocket API's execute-api address is the local gateway's.
    // (`wss://` is the WebSocket URL clients open: `ws://` on the gateway.)
    for (id, base) in &p.websocket_apis {
        let host = format!("${{{id}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}");
        if let Some(path) = text.strip_prefix(&format!("https://{host}")) {
            return Ok(format!("{base}{}", substitute(path, p)?));
        }
        if let Some(path) = text.strip_prefix(&format!("wss://{host}")) {
            let base = base.replacen("http://", "ws://", 1);
            return Ok(format!("{base}{}", substitute(path, p)?));
        }
    }
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| format!("unclosed ${{ in {text}"))?
            + start;
        let name = &rest[start + 2..end];
        let value = match name {
            "AWS::Region" => "us-east-1".to_owned(),
            "AWS::AccountId" => "000000000000".to_owned(),
            "AWS::StackName" => p.stack_name.clone(),
            "AWS::URLSuffix" => "amazonaws.com".to_owned(),
            _ => match name.split_once('.') {
                Some((res, att)) => resolve(&Expr::GetAtt(res.to_owned(), att.to_owned()), p)?,
                None => resolve(&Expr::Ref(name.to_owned()), p)?,
            },
        };
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    while let Some(start) = out.find("{{resolve:secretsmanager:") {
        let end = out[start..]
            .find("}}")
            .ok_or("unclosed dynamic reference")?
            + start;
        let reference = &out[start + "{{resolve:secretsmanager:".len()..end];
        let name = reference.split(':').next().unwrap_or_default().to_owned();
        let secret = p
            .secrets
            .get(&name)
            .ok_or_else(|| format!("no local value for secret {name}"))?;
        out.replace_range(start..end + 2, secret);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_resolves_parameters_resources_and_secrets() {
        let mut p = Provisioned {
            stack_name: "local".into(),
            ..Default::default()
        };
        p.parameters.insert("Stage".into(), "dev".into());
        p.parameters.insert("SecretName".into(), "app/key".into());
        p.tables.insert("Table".into(), "local-Table".into());
        p.secrets.insert("app/key".into(), "s3cret".into());
        let r = |t: &str| resolve(&Expr::Sub(t.into()), &p);
        assert_eq!(
            r("BackgroundTasks/${Stage}").unwrap(),
            "BackgroundTasks/dev"
        );
        assert_eq!(
            r("${Table}@${AWS::Region}").unwrap(),
            "local-Table@us-east-1"
        );
        assert_eq!(
            r("{{resolve:secretsmanager:${SecretName}:SecretString}}").unwrap(),
            "s3cret"
        );
        assert!(r("${Unknown}").is_err());
        assert!(r("{{resolve:secretsmanager:other:SecretString}}").is_err());
    }
}
