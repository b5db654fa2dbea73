//! An HTTP proxy in front of DynamoDB Local or moto that counts AWS requests by operation
//! (`X-Amz-Target`), to measure what a task costs in requests, as the AWS bill counts them.

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{Request, Response, StatusCode};
use axum::Router;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Requests by operation, e.g. `PutItem`, `SendMessageBatch`.
    pub by_operation: BTreeMap<String, u64>,
    /// `ReceiveMessage` calls that returned messages / none (long-poll idling).
    pub receives_with_messages: u64,
    pub empty_receives: u64,
    /// Write capacity units as DynamoDB bills them: a unit per KB of each item written (the
    /// larger of before and after for an update or delete), twice in a transaction. Applied
    /// writes count what DynamoDB Local reports (the proxy asks each one for
    /// `ReturnConsumedCapacity`); refused ones (a failed condition, a cancelled transaction)
    /// are estimated from the request: an item's JSON for a put, 1 for an update or delete.
    pub write_units: u64,
    /// `GetItem` requests by the kind of item read: its key's partition and sort key up to
    /// their first `#` (e.g. `TASK/TASK`, `OWNER/STATE`), to tell which step of a chunk
    /// made them.
    pub reads_by_kind: BTreeMap<String, u64>,
}

impl Counts {
    /// Every request but `ReceiveMessage` calls that found nothing.
    pub fn billed_requests(&self) -> u64 {
        self.by_operation.values().sum::<u64>() - self.empty_receives
    }

    pub fn since(&self, before: &Counts) -> Counts {
        let mut by_operation = self.by_operation.clone();
        for (k, v) in &before.by_operation {
            if let Some(n) = by_operation.get_mut(k) {
                *n -= v;
            }
        }
        by_operation.retain(|_, v| *v > 0);
        let mut reads_by_kind = self.reads_by_kind.clone();
        for (k, v) in &before.reads_by_kind {
            if let Some(n) = reads_by_kind.get_mut(k) {
                *n -= v;
            }
        }
        reads_by_kind.retain(|_, v| *v > 0);
        Counts {
            reads_by_kind,
            by_operation,
            receives_with_messages: self.receives_with_messages - before.receives_with_messages,
            empty_receives: self.empty_receives - before.empty_receives,
            write_units: self.write_units - before.write_units,
        }
    }
}

#[derive(Clone)]
pub struct CountingProxy {
    target: String,
    http: reqwest::Client,
    counts: Arc<Mutex<Counts>>,
}

impl CountingProxy {
    /// Starts on a free loopback port; returns the proxy and its URL.
    pub async fn start(target: &str) -> std::io::Result<(Self, String)> {
        let proxy = Self {
            target: target.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            counts: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = Router::new().fallback(forward).with_state(proxy.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((proxy, url))
    }

    /// The counts, taken over if a panicking request poisoned them: a count is still a count.
    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn counts(&self) -> Counts {
        self.lock().clone()
    }
}

/// The kind of item a `GetItem` reads: each key attribute's value up to its first `#`.
fn read_kind(body: &[u8]) -> String {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return "?".into();
    };
    let part = |name: &str| {
        request["Key"][name]["S"]
            .as_str()
            .map(|v| v.split('#').next().unwrap_or_default().to_owned())
            .unwrap_or_else(|| "?".into())
    };
    format!("{}/{}", part("pk"), part("sk"))
}

const WRITES: [&str; 5] = [
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
];

/// A write request that asks DynamoDB for the capacity it consumed, unless it asked already.
fn asking_capacity(body: &[u8]) -> Option<Vec<u8>> {
    let mut request = serde_json::from_slice::<Value>(body).ok()?;
    let fields = request.as_object_mut()?;
    if fields.contains_key("ReturnConsumedCapacity") {
        return None;
    }
    fields.insert("ReturnConsumedCapacity".into(), "TOTAL".into());
    serde_json::to_vec(&request).ok()
}

/// The write units an answer reports (`ConsumedCapacity`: one table's, or a list of them).
fn consumed_units(answer: &[u8]) -> Option<u64> {
    let answer = serde_json::from_slice::<Value>(answer).ok()?;
    let units = |c: &Value| c["CapacityUnits"].as_f64().unwrap_or(0.0);
    let total = match &answer["ConsumedCapacity"] {
        Value::Array(tables) => tables.iter().map(units).sum(),
        c @ Value::Object(_) => units(c),
        _ => return None,
    };
    Some(total.ceil() as u64)
}

/// Units for the item (JSON) written: one per started KB.
fn units(item: &Value) -> u64 {
    (item.to_string().len() as u64).div_ceil(1024).max(1)
}

fn write_units(operation: &str, body: &[u8]) -> u64 {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return 0;
    };
    match operation {
        "PutItem" => units(&request["Item"]),
        "UpdateItem" | "DeleteItem" => 1,
        "BatchWriteItem" => request["RequestItems"]
            .as_object()
            .map(|tables| {
                tables
                    .values()
                    .filter_map(Value::as_array)
                    .flatten()
                    .map(|w| match w.get("PutRequest") {
                        Some(put) => units(&put["Item"]),
                        None => 1,
                    })
                    .sum()
            })
            .unwrap_or(0),
        "TransactWriteItems" => request["TransactItems"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|i| 2 * i.get("Put").map_or(1, |put| units(&put["Item"])))
                    .sum()
            })
            .unwrap_or(0),
        _ => 0,
    }
}

async fn forward(State(proxy): State<CountingProxy>, request: Request<Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, 64 * 1024 * 1024).await else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(Body::empty())
            .unwrap_or_default();
    };
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("other")
        .to_owned();
    let estimated_units = write_units(&operation, &body);
    let is_write = WRITES.contains(&operation.as_str());
    let body = match is_write {
        true => asking_capacity(&body).map_or(body, Into::into),
        false => body,
    };
    let read_kind = (operation == "GetItem").then(|| read_kind(&body));
    let url = format!(
        "{}{}",
        proxy.target,
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut req = proxy
        .http
        .request(parts.method.clone(), url)
        .body(body.to_vec());
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            req = req.header(name, value);
        }
    }
    let Ok(answer) = req.send().await else {
        return Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::empty())
            .unwrap_or_default();
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    let write_units = match is_write && status.is_success() {
        true => consumed_units(&bytes).unwrap_or(estimated_units),
        false => estimated_units,
    };
    {
        let mut c = proxy.lock();
        *c.by_operation.entry(operation.clone()).or_default() += 1;
        c.write_units += write_units;
        if let Some(kind) = read_kind {
            *c.reads_by_kind.entry(kind).or_default() += 1;
        }
        if operation == "ReceiveMessage" {
            let has = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v["Messages"].as_array().map(|m| !m.is_empty()))
                .unwrap_or(false);
            if has {
                c.receives_with_messages += 1;
            } else {
                c.empty_receives += 1;
            }
        }
    }
    let mut res = Response::new(Body::from(bytes));
    *res.status_mut() = status;
    for (name, value) in &headers {
        if name != "content-length" && name != "transfer-encoding" {
            res.headers_mut().insert(name, value.clone());
        }
    }
    res
}
