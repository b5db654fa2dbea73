//! Reads `template.yaml`: the table, the queues, the functions with their environment,
//! event sources and HTTP routes. The local stack is built from this, so it cannot drift
//! from what SAM deploys. Only the intrinsic functions the template uses for wiring (`Ref`,
//! `GetAtt`, `Sub`) are understood; anything else is reported, not guessed.

use serde_norway::Value;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read the template: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot parse the template: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("template: {0}")]
    Shape(String),
}

fn shape(msg: impl Into<String>) -> TemplateError {
    TemplateError::Shape(msg.into())
}

/// A value that may refer to another resource or a parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(String),
    Ref(String),
    GetAtt(String, String),
    /// `!Sub` text with `${Name}` / `${Name.Attribute}` placeholders.
    Sub(String),
    /// `!Join [separator, [parts]]`; a part that is a list parameter's `!Ref` is its text.
    Join(String, Vec<Expr>),
}

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

#[derive(Debug, Clone)]
pub struct QueueSpec {
    pub logical_id: String,
    pub fifo: bool,
    pub content_based_deduplication: bool,
    pub visibility_timeout: u32,
    /// Logical id of the dead-letter queue and the receive count before moving there.
    pub redrive: Option<(String, Expr)>,
}

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
}

/// An API Gateway WebSocket API (`AWS::ApiGatewayV2::Api`, `ProtocolType: WEBSOCKET`) with
/// its stage and routes, each route resolved to the function its integration invokes.
#[derive(Debug, Clone, PartialEq)]
pub struct WebSocketApiSpec {
    pub logical_id: String,
    /// The stage's `StageName`: the URL path (`/{stage}`) and the `@connections` prefix.
    pub stage: String,
    /// `RouteSelectionExpression`; `$request.body.{field}` is the one form understood.
    pub route_selection: String,
    pub routes: Vec<WebSocketRoute>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebSocketRoute {
    /// `$connect`, `$disconnect`, `$default` or a value of the selection field.
    pub key: String,
    /// Logical id of the function the route's integration invokes.
    pub function: String,
    /// Logical id of the REQUEST authorizer's function (`$connect` only, in API Gateway).
    pub authorizer: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Template {
    pub parameters: BTreeMap<String, String>,
    pub tables: Vec<TableSpec>,
    pub queues: Vec<QueueSpec>,
    pub functions: Vec<FunctionSpec>,
    pub websocket_apis: Vec<WebSocketApiSpec>,
}

/// The function a Lambda integration or authorizer URI names: `${Name.Arn}` in its `!Sub`.
fn function_in_uri(id: &str, uri: &Value) -> Result<String, TemplateError> {
    let text = match expr(uri)? {
        Expr::Sub(text) => text,
        other => return Err(shape(format!("{id}: expected a !Sub URI, got {other:?}"))),
    };
    text.split("${")
        .skip(1)
        .find_map(|rest| rest.split_once(".Arn}").map(|(name, _)| name.to_owned()))
        .ok_or_else(|| shape(format!("{id}: no ${{Function.Arn}} in {text}")))
}

/// The logical id a `!Ref` names.
fn ref_of(id: &str, v: &Value) -> Result<String, TemplateError> {
    match expr(v)? {
        Expr::Ref(name) => Ok(name),
        other => Err(shape(format!("{id}: expected a !Ref, got {other:?}"))),
    }
}

/// The WebSocket APIs among `resources`, each with its stage and routes.
fn websocket_apis(
    resources: &serde_norway::Mapping,
) -> Result<Vec<WebSocketApiSpec>, TemplateError> {
    let of_type = |t: &'static str| {
        resources
            .iter()
            .filter(move |(_, r)| r["Type"].as_str() == Some(t))
            .map(|(k, r)| Ok::<_, TemplateError>((str_of(k)?.to_owned(), &r["Properties"])))
    };
    let mut authorizers = BTreeMap::new();
    for entry in of_type("AWS::ApiGatewayV2::Authorizer") {
        let (id, p): (String, &Value) = entry?;
        authorizers.insert(id.clone(), function_in_uri(&id, &p["AuthorizerUri"])?);
    }
    let mut integrations = BTreeMap::new();
    for entry in of_type("AWS::ApiGatewayV2::Integration") {
        let (id, p): (String, &Value) = entry?;
        integrations.insert(id.clone(), function_in_uri(&id, &p["IntegrationUri"])?);
    }
    let mut apis = Vec::new();
    for entry in of_type("AWS::ApiGatewayV2::Api") {
        let (id, p): (String, &Value) = entry?;
        if p["ProtocolType"].as_str() != Some("WEBSOCKET") {
            continue;
        }
        let mut stage = None;
        for entry in of_type("AWS::ApiGatewayV2::Stage") {
            let (sid, sp): (String, &Value) = entry?;
            if ref_of(&sid, &sp["ApiId"])? == id {
                stage = Some(str_of(&sp["StageName"])?.to_owned());
            }
        }
        let mut routes = Vec::new();
        for entry in of_type("AWS::ApiGatewayV2::Route") {
            let (rid, rp): (String, &Value) = entry?;
            if ref_of(&rid, &rp["ApiId"])? != id {
                continue;
            }
            let target = match expr(&rp["Target"])? {
                Expr::Sub(t) => t,
                other => {
                    return Err(shape(format!(
                        "{rid}: Target must be a !Sub, got {other:?}"
                    )))
                }
            };
            let integration = target
                .strip_prefix("integrations/${")
                .and_then(|t| t.strip_suffix('}'))
                .ok_or_else(|| shape(format!("{rid}: Target must be integrations/${{Id}}")))?;
            let function = integrations
                .get(integration)
                .ok_or_else(|| shape(format!("{rid}: unknown integration {integration}")))?
                .clone();
            let authorizer = match rp.get("AuthorizerId") {
                None => None,
                Some(a) => {
                    let name = ref_of(&rid, a)?;
                    Some(
                        authorizers
                            .get(&name)
                            .ok_or_else(|| shape(format!("{rid}: unknown authorizer {name}")))?
                            .clone(),
                    )
                }
            };
            routes.push(WebSocketRoute {
                key: str_of(&rp["RouteKey"])?.to_owned(),
                function,
                authorizer,
            });
        }
        apis.push(WebSocketApiSpec {
            logical_id: id.clone(),
            stage: stage.ok_or_else(|| shape(format!("{id}: no Stage")))?,
            route_selection: str_of(&p["RouteSelectionExpression"])?.to_owned(),
            routes,
        });
    }
    Ok(apis)
}

fn expr(v: &Value) -> Result<Expr, TemplateError> {
    match v {
        Value::String(s) => Ok(Expr::Literal(s.clone())),
        Value::Number(n) => Ok(Expr::Literal(n.to_string())),
        Value::Bool(b) => Ok(Expr::Literal(b.to_string())),
        Value::Tagged(t) if t.tag == "Ref" => Ok(Expr::Ref(str_of(&t.value)?.to_owned())),
        Value::Tagged(t) if t.tag == "Sub" => Ok(Expr::Sub(str_of(&t.value)?.to_owned())),
        Value::Tagged(t) if t.tag == "Join" => join(&t.value),
        Value::Tagged(t) if t.tag == "GetAtt" => {
            let s = str_of(&t.value)?;
            let (res, att) = s
                .split_once('.')
                .ok_or_else(|| shape(format!("bad GetAtt {s}")))?;
            Ok(Expr::GetAtt(res.to_owned(), att.to_owned()))
        }
        Value::Mapping(m) if m.len() == 1 => {
            if let Some(r) = m.get("Ref") {
                return Ok(Expr::Ref(str_of(r)?.to_owned()));
            }
            if let Some(args) = m.get("Fn::Join") {
                return join(args);
            }
            if let Some(text) = m.get("Fn::Sub") {
                return Ok(Expr::Sub(str_of(text)?.to_owned()));
            }
            if let Some(Value::Sequence(parts)) = m.get("Fn::GetAtt") {
                if let [res, att] = parts.as_slice() {
                    return Ok(Expr::GetAtt(
                        str_of(res)?.to_owned(),
                        str_of(att)?.to_owned(),
                    ));
                }
            }
            Err(shape(format!("unsupported intrinsic {v:?}")))
        }
        other => Err(shape(format!("unsupported value {other:?}"))),
    }
}

fn join(args: &Value) -> Result<Expr, TemplateError> {
    let Some([separator, parts]) = args.as_sequence().map(Vec::as_slice) else {
        return Err(shape(format!("bad Join {args:?}")));
    };
    let parts = match parts.as_sequence() {
        Some(list) => list.iter().map(expr).collect::<Result<_, _>>()?,
        None => vec![expr(parts)?],
    };
    Ok(Expr::Join(str_of(separator)?.to_owned(), parts))
}

fn str_of(v: &Value) -> Result<&str, TemplateError> {
    v.as_str()
        .ok_or_else(|| shape(format!("expected a string, got {v:?}")))
}

fn pairs(v: Option<&Value>, a: &str, b: &str) -> Result<Vec<(String, String)>, TemplateError> {
    let seq = v
        .and_then(Value::as_sequence)
        .ok_or_else(|| shape(format!("missing list of {a}/{b}")))?;
    seq.iter()
        .map(|e| Ok((str_of(&e[a])?.to_owned(), str_of(&e[b])?.to_owned())))
        .collect()
}

fn table(id: &str, p: &Value) -> Result<TableSpec, TemplateError> {
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

fn queue(id: &str, p: &Value) -> Result<QueueSpec, TemplateError> {
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

fn function(id: &str, resource: &Value, globals: &Value) -> Result<FunctionSpec, TemplateError> {
    let p = &resource["Properties"];
    let pick = |k: &str| p.get(k).or_else(|| globals.get(k));
    let mut environment = BTreeMap::new();
    for source in [
        &globals["Environment"]["Variables"],
        &p["Environment"]["Variables"],
    ] {
        if let Some(m) = source.as_mapping() {
            for (k, v) in m {
                environment.insert(str_of(k)?.to_owned(), expr(v)?);
            }
        }
    }
    let mut sqs_sources = vec![];
    let mut stream_sources = vec![];
    let mut http_routes = vec![];
    if let Some(events) = p.get("Events").and_then(Value::as_mapping) {
        for (_, e) in events {
            let props = &e["Properties"];
            match e["Type"].as_str() {
                Some("SQS") => {
                    let queue_logical_id = match expr(&props["Queue"])? {
                        Expr::GetAtt(res, _) | Expr::Ref(res) => res,
                        other => {
                            return Err(shape(format!(
                                "{id}: SQS queue must reference a resource, got {other:?}"
                            )))
                        }
                    };
                    let report = props["FunctionResponseTypes"]
                        .as_sequence()
                        .is_some_and(|s| {
                            s.iter()
                                .any(|t| t.as_str() == Some("ReportBatchItemFailures"))
                        });
                    let max_concurrency = match props["ScalingConfig"].get("MaximumConcurrency") {
                        Some(v) => Some(expr(v)?),
                        None => None,
                    };
                    sqs_sources.push(SqsSource {
                        queue_logical_id,
                        batch_size: props["BatchSize"].as_u64().unwrap_or(10) as u32,
                        report_batch_item_failures: report,
                        max_concurrency,
                    });
                }
                Some("DynamoDB") => {
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
                        filters.push(serde_json::from_str(pattern).map_err(|e| {
                            shape(format!("{id}: filter pattern is not JSON: {e}"))
                        })?);
                    }
                    stream_sources.push(StreamSource {
                        table_logical_id,
                        batch_size: props["BatchSize"].as_u64().unwrap_or(100) as u32,
                        report_batch_item_failures: props["FunctionResponseTypes"]
                            .as_sequence()
                            .is_some_and(|s| {
                                s.iter()
                                    .any(|t| t.as_str() == Some("ReportBatchItemFailures"))
                            }),
                        filters,
                        batching_window: std::time::Duration::from_secs(
                            props["MaximumBatchingWindowInSeconds"]
                                .as_u64()
                                .unwrap_or(0),
                        ),
                    });
                }
                Some("HttpApi") => http_routes.push(HttpRoute {
                    method: str_of(&props["Method"])?.to_uppercase(),
                    path: str_of(&props["Path"])?.to_owned(),
                }),
                _ => {}
            }
        }
    }
    Ok(FunctionSpec {
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
        environment,
        sqs_sources,
        stream_sources,
        http_routes,
        sets_visibility: resource["Metadata"]["LocalGateway"]["FunctionSetsVisibility"]
            .as_bool()
            .unwrap_or(false),
    })
}

impl Template {
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        Self::parse(&std::fs::read_to_string(path)?)
    }

    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let doc: Value = serde_norway::from_str(text)?;
        let mut parameters = BTreeMap::new();
        if let Some(m) = doc["Parameters"].as_mapping() {
            for (k, v) in m {
                let default = match &v["Default"] {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => continue,
                };
                parameters.insert(str_of(k)?.to_owned(), default);
            }
        }
        let globals = &doc["Globals"]["Function"];
        let resources = doc["Resources"]
            .as_mapping()
            .ok_or_else(|| shape("no Resources"))?;
        let (mut tables, mut queues, mut functions) = (vec![], vec![], vec![]);
        for (k, r) in resources {
            let id = str_of(k)?;
            match r["Type"].as_str() {
                Some("AWS::DynamoDB::Table") => tables.push(table(id, &r["Properties"])?),
                Some("AWS::SQS::Queue") => queues.push(queue(id, &r["Properties"])?),
                Some("AWS::Serverless::Function") => functions.push(function(id, r, globals)?),
                _ => {}
            }
        }
        Ok(Self {
            parameters,
            tables,
            queues,
            functions,
            websocket_apis: websocket_apis(resources)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_projects_template() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
        let t = Template::load(&path).unwrap();
        assert_eq!(t.tables.len(), 1);
        assert_eq!(t.tables[0].ttl_attribute.as_deref(), Some("expires_at"));
        let work = t
            .queues
            .iter()
            .find(|q| q.logical_id == "WorkQueue")
            .unwrap();
        assert!(work.fifo);
        assert_eq!(work.redrive.as_ref().unwrap().0, "WorkDeadLetterQueue");
        let api = t.functions.iter().find(|f| f.binary == "api").unwrap();
        assert!(api.http_routes.contains(&HttpRoute {
            method: "GET".into(),
            path: "/tasks/{task_type}/{task_id}".into()
        }));
        assert_eq!(
            api.environment["TABLE_NAME"],
            Expr::Ref("TasksTable".into())
        );
        // Secrets are named, never given: the function reads them at cold start.
        assert_eq!(
            api.environment["PAGE_TOKEN_SECRET_SECRET_ID"],
            Expr::Ref("PageTokenSecretName".into())
        );
        assert!(!api.environment.contains_key("PAGE_TOKEN_SECRET"));
        assert_eq!(api.log_format.as_deref(), Some("JSON"));
        let consumer = t.functions.iter().find(|f| f.binary == "consumer").unwrap();
        assert_eq!(consumer.sqs_sources[0].queue_logical_id, "WorkQueue");
        assert_eq!(
            consumer.sqs_sources[0].max_concurrency,
            Some(Expr::Ref("ConsumerMaxConcurrency".into()))
        );
        assert!(consumer.sqs_sources[0].report_batch_item_failures);
        let live = &t.websocket_apis[0];
        assert_eq!(live.stage, "live");
        assert_eq!(live.route_selection, "$request.body.action");
        let connect = live.routes.iter().find(|r| r.key == "$connect").unwrap();
        assert_eq!(connect.function, "WsConnectionsFunction");
        assert_eq!(connect.authorizer.as_deref(), Some("WsAuthorizerFunction"));
        let authorizer = t
            .functions
            .iter()
            .find(|f| f.binary == "ws-authorizer")
            .unwrap();
        assert_eq!(
            authorizer.environment["JWT_AUDIENCE"],
            Expr::Join(",".into(), vec![Expr::Ref("JwtAudience".into())])
        );
    }
}
