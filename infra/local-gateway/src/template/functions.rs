//! The functions: the binary each runs, its settings and environment, and the events that
//! invoke it (SQS queues, the table's stream, HTTP routes).

use super::expr::{expr, str_of, Expr};
use super::{shape, TemplateError};
use serde_norway::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub logical_id: String,
    /// The cargo binary (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    pub timeout_secs: u64,
    pub memory_mb: u32,
    pub environment: BTreeMap<String, Expr>,
    pub sqs_sources: Vec<SqsSource>,
    pub stream_sources: Vec<StreamSource>,
    pub http_routes: Vec<HttpRoute>,
    /// `Metadata.LocalGateway.FunctionSetsVisibility`: the function sets its failed messages'
    /// visibility itself, so the local poller must not (AWS's never does).
    pub sets_visibility: bool,
    /// `LoggingConfig`: Lambda passes these as `AWS_LAMBDA_LOG_FORMAT` / `AWS_LAMBDA_LOG_LEVEL`.
    pub log_format: Option<String>,
    pub log_level: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SqsSource {
    pub queue_logical_id: String,
    pub batch_size: u32,
    pub report_batch_item_failures: bool,
    /// `ScalingConfig.MaximumConcurrency`: the most invocations this source runs at once.
    pub max_concurrency: Option<Expr>,
}

/// A DynamoDB stream event source.
#[derive(Debug, Clone)]
pub struct StreamSource {
    pub table_logical_id: String,
    pub batch_size: u32,
    pub report_batch_item_failures: bool,
    /// `FilterCriteria.Filters[].Pattern`, parsed: a record is delivered if any matches.
    pub filters: Vec<serde_json::Value>,
    /// `MaximumBatchingWindowInSeconds`: how long records are gathered before an invocation.
    pub batching_window: std::time::Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpRoute {
    pub method: String,
    pub path: String,
    /// `Auth.Authorizer: NONE`: the route answers without credentials (the console's files).
    pub public: bool,
}

/// One `AWS::Serverless::Function`, with the `Globals` it inherits.
pub(super) fn function(
    id: &str,
    resource: &Value,
    globals: &Value,
) -> Result<FunctionSpec, TemplateError> {
    let p = &resource["Properties"];
    let pick = |k: &str| p.get(k).or_else(|| globals.get(k));
    let mut spec = FunctionSpec {
        logical_id: id.to_owned(),
        binary: str_of(&resource["Metadata"]["BuildProperties"]["Binary"])
            .map_err(|_| shape(format!("{id}: Metadata.BuildProperties.Binary is required")))?
            .to_owned(),
        log_format: pick("LoggingConfig")
            .and_then(|l| l["LogFormat"].as_str())
            .map(str::to_owned),
        log_level: pick("LoggingConfig")
            .and_then(|l| l["ApplicationLogLevel"].as_str())
            .map(str::to_owned),
        timeout_secs: pick("Timeout").and_then(Value::as_u64).unwrap_or(3),
        memory_mb: pick("MemorySize").and_then(Value::as_u64).unwrap_or(128) as u32,
        environment: environment(p, globals)?,
        sqs_sources: vec![],
        stream_sources: vec![],
        http_routes: vec![],
        sets_visibility: resource["Metadata"]["LocalGateway"]["FunctionSetsVisibility"]
            .as_bool()
            .unwrap_or(false),
    };
    for (_, e) in p
        .get("Events")
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
    {
        let props = &e["Properties"];
        match e["Type"].as_str() {
            Some("SQS") => spec.sqs_sources.push(sqs_source(id, props)?),
            Some("DynamoDB") => spec.stream_sources.push(stream_source(id, props)?),
            Some("HttpApi") => spec.http_routes.push(HttpRoute {
                method: str_of(&props["Method"])?.to_uppercase(),
                path: str_of(&props["Path"])?.to_owned(),
                public: props["Auth"]["Authorizer"].as_str() == Some("NONE"),
            }),
            _ => {}
        }
    }
    Ok(spec)
}

/// `Globals` variables, then the function's own, which win.
fn environment(p: &Value, globals: &Value) -> Result<BTreeMap<String, Expr>, TemplateError> {
    let mut environment = BTreeMap::new();
    for source in [
        &globals["Environment"]["Variables"],
        &p["Environment"]["Variables"],
    ] {
        for (k, v) in source.as_mapping().into_iter().flatten() {
            environment.insert(str_of(k)?.to_owned(), expr(v)?);
        }
    }
    Ok(environment)
}

fn sqs_source(id: &str, props: &Value) -> Result<SqsSource, TemplateError> {
    let queue_logical_id = match expr(&props["Queue"])? {
        Expr::GetAtt(res, _) | Expr::Ref(res) => res,
        other => {
            return Err(shape(format!(
                "{id}: SQS queue must reference a resource, got {other:?}"
            )))
        }
    };
    let max_concurrency = match props["ScalingConfig"].get("MaximumConcurrency") {
        Some(v) => Some(expr(v)?),
        None => None,
    };
    Ok(SqsSource {
        queue_logical_id,
        batch_size: props["BatchSize"].as_u64().unwrap_or(10) as u32,
        report_batch_item_failures: reports_item_failures(props),
        max_concurrency,
    })
}

fn stream_source(id: &str, props: &Value) -> Result<StreamSource, TemplateError> {
    let table_logical_id = match expr(&props["Stream"])? {
        Expr::GetAtt(res, att) if att == "StreamArn" => res,
        other => {
            return Err(shape(format!(
                "{id}: Stream must be !GetAtt Table.StreamArn, got {other:?}"
            )))
        }
    };
    let mut filters = vec![];
    for f in props["FilterCriteria"]["Filters"]
        .as_sequence()
        .into_iter()
        .flatten()
    {
        let pattern = str_of(&f["Pattern"])?;
        filters.push(
            serde_json::from_str(pattern)
                .map_err(|e| shape(format!("{id}: filter pattern is not JSON: {e}")))?,
        );
    }
    let window = props["MaximumBatchingWindowInSeconds"]
        .as_u64()
        .unwrap_or(0);
    Ok(StreamSource {
        table_logical_id,
        batch_size: props["BatchSize"].as_u64().unwrap_or(100) as u32,
        report_batch_item_failures: reports_item_failures(props),
        filters,
        batching_window: std::time::Duration::from_secs(window),
    })
}

/// Whether `FunctionResponseTypes` names `ReportBatchItemFailures`.
fn reports_item_failures(props: &Value) -> bool {
    props["FunctionResponseTypes"]
        .as_sequence()
        .is_some_and(|s| {
            s.iter()
                .any(|t| t.as_str() == Some("ReportBatchItemFailures"))
        })
}
