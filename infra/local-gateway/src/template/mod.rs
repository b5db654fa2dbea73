//! Reads `template.yaml`: the table, the queues, the functions with their environment,
//! event sources and HTTP routes. The local stack is built from this, so it cannot drift
//! from what SAM deploys. Only the intrinsic functions the template uses for wiring (`Ref`,
//! `GetAtt`, `Sub`) are understood; anything else is reported, not guessed.

mod expr;
mod functions;
mod storage;
mod websocket;

pub use expr::Expr;
pub use functions::{FunctionSpec, HttpRoute, SqsSource, StreamSource};
pub use storage::{BucketSpec, IndexSpec, QueueSpec, TableSpec};
pub use websocket::{WebSocketApiSpec, WebSocketRoute};

use expr::str_of;
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

#[derive(Debug, Clone)]
pub struct Template {
    pub parameters: BTreeMap<String, String>,
    pub tables: Vec<TableSpec>,
    pub queues: Vec<QueueSpec>,
    pub buckets: Vec<BucketSpec>,
    pub functions: Vec<FunctionSpec>,
    pub websocket_apis: Vec<WebSocketApiSpec>,
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
        let mut buckets = vec![];
        for (k, r) in resources {
            let id = str_of(k)?;
            match r["Type"].as_str() {
                Some("AWS::DynamoDB::Table") => tables.push(storage::table(id, &r["Properties"])?),
                Some("AWS::SQS::Queue") => queues.push(storage::queue(id, &r["Properties"])?),
                Some("AWS::S3::Bucket") => buckets.push(BucketSpec {
                    logical_id: id.to_owned(),
                }),
                Some("AWS::Serverless::Function") => {
                    functions.push(functions::function(id, r, globals)?)
                }
                _ => {}
            }
        }
        Ok(Self {
            parameters,
            tables,
            queues,
            buckets,
            functions,
            websocket_apis: websocket::websocket_apis(resources)?,
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
        assert_eq!(t.buckets[0].logical_id, "UploadsBucket");
        let ingest = t.functions.iter().find(|f| f.binary == "ingest").unwrap();
        assert_eq!(ingest.sqs_sources[0].queue_logical_id, "IngestQueue");
        let api = t.functions.iter().find(|f| f.binary == "api").unwrap();
        assert!(api.http_routes.contains(&HttpRoute {
            method: "GET".into(),
            path: "/tasks/{task_type}/{task_id}".into(),
            public: false,
        }));
        assert!(api.http_routes.contains(&HttpRoute {
            method: "GET".into(),
            path: "/console".into(),
            public: true,
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
