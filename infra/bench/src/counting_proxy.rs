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
    /// larger of before and after for an update or delete), twice in a transaction.
    /// - Single-item and batch writes count what DynamoDB Local reports (the proxy asks each
    ///   for `ReturnConsumedCapacity`).
    /// - Transactions are sized here: DynamoDB Local reports four times one item's units for a
    ///   whole transaction, whatever it holds. The proxy reads each updated, deleted or checked
    ///   item before and after (reads it does not count) and sizes it by DynamoDB's rules;
    ///   a put is sized from its item.
    /// - Refused writes (a failed condition, a cancelled transaction) are estimated from the
    ///   request: a put's item, 1 for anything else.
    pub write_units: u64,
    /// Write units by write: its operation and the kinds of item it writes (as
    /// `reads_by_kind` names them), e.g. `TransactWriteItems TASK/OUTCOMES+TASK/TASK`.
    pub write_units_by_kind: BTreeMap<String, u64>,
    /// Write requests by write, named as in `write_units_by_kind`, refused ones included.
    pub writes_by_kind: BTreeMap<String, u64>,
    /// Of those, the ones refused (a failed condition, a cancelled transaction): for a lane
    /// claim, a race lost to the caller's other lanes.
    pub refused_by_kind: BTreeMap<String, u64>,
    /// `GetItem` requests by the kind of item read: its key's partition and sort key up to
    /// their first `#` (e.g. `TASK/TASK`, `OWNER/STATE`), to tell which step of a chunk
    /// made them.
    pub reads_by_kind: BTreeMap<String, u64>,
}

/// Each count of `now` less its count in `before`, keeping those above zero.
fn minus(now: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let mut left = now.clone();
    for (k, v) in before {
        if let Some(n) = left.get_mut(k) {
            *n -= v;
        }
    }
    left.retain(|_, v| *v > 0);
    left
}

impl Counts {
    /// Every request but `ReceiveMessage` calls that found nothing.
    pub fn billed_requests(&self) -> u64 {
        self.by_operation.values().sum::<u64>() - self.empty_receives
    }

    pub fn since(&self, before: &Counts) -> Counts {
        Counts {
            reads_by_kind: minus(&self.reads_by_kind, &before.reads_by_kind),
            write_units_by_kind: minus(&self.write_units_by_kind, &before.write_units_by_kind),
            writes_by_kind: minus(&self.writes_by_kind, &before.writes_by_kind),
            refused_by_kind: minus(&self.refused_by_kind, &before.refused_by_kind),
            by_operation: minus(&self.by_operation, &before.by_operation),
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
    key_kind(&request["Key"])
}

/// An item's kind from its key (or the item itself): `pk` and `sk` up to their first `#`.
fn key_kind(key: &Value) -> String {
    let part = |name: &str| {
        key[name]["S"]
            .as_str()
            .map(|v| v.split('#').next().unwrap_or_default().to_owned())
            .unwrap_or_else(|| "?".into())
    };
    format!("{}/{}", part("pk"), part("sk"))
}

/// A write's operation and the distinct kinds of the items it writes, joined by `+`.
fn write_kind(operation: &str, body: &[u8]) -> String {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return operation.to_owned();
    };
    let target = |w: &Value| {
        if w["Item"].is_object() {
            key_kind(&w["Item"])
        } else {
            key_kind(&w["Key"])
        }
    };
    let mut kinds: Vec<String> = match operation {
        "TransactWriteItems" => request["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|action| action.as_object()?.values().next().map(target))
            .collect(),
        "BatchWriteItem" => request["RequestItems"]
            .as_object()
            .into_iter()
            .flat_map(|tables| tables.values())
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|w| w.as_object()?.values().next().map(target))
            .collect(),
        _ => vec![target(&request)],
    };
    kinds.sort();
    kinds.dedup();
    format!("{operation} {}", kinds.join("+"))
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

/// An item's size as DynamoDB bills it: each attribute's name and value, strings and binary
/// by their bytes, numbers by about half their digits, and 3 bytes more per map or list and
/// 1 per element in it.
fn item_size(item: &Value) -> u64 {
    item.as_object()
        .map(|attributes| {
            attributes
                .iter()
                .map(|(name, value)| name.len() as u64 + value_size(value))
                .sum()
        })
        .unwrap_or(0)
}

fn value_size(value: &Value) -> u64 {
    let Some((kind, inner)) = value.as_object().and_then(|v| v.iter().next()) else {
        return 0;
    };
    match kind.as_str() {
        "S" => inner.as_str().map_or(0, |t| t.len() as u64),
        // Base64 in JSON: three bytes in every four characters.
        "B" => inner.as_str().map_or(0, |t| t.len() as u64 * 3 / 4),
        "N" => inner.as_str().map_or(1, |t| t.len() as u64 / 2 + 1),
        "BOOL" | "NULL" => 1,
        "M" => inner.as_object().map_or(3, |m| {
            3 + m
                .iter()
                .map(|(k, v)| 1 + k.len() as u64 + value_size(v))
                .sum::<u64>()
        }),
        "L" => inner
            .as_array()
            .map_or(3, |l| 3 + l.iter().map(|v| 1 + value_size(v)).sum::<u64>()),
        _ => inner.to_string().len() as u64,
    }
}

/// Units for an item of `bytes`: one per started KB.
fn kb_units(bytes: u64) -> u64 {
    bytes.div_ceil(1024).max(1)
}

/// A transaction's actions that do not carry their item (update, delete, condition check):
/// the table and key of each.
fn keyed_actions(body: &[u8]) -> Vec<(Value, Value)> {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    request["TransactItems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|action| action.as_object()?.values().next())
        .filter(|a| a["Key"].is_object())
        .map(|a| (a["TableName"].clone(), a["Key"].clone()))
        .collect()
}

/// Units of a transaction's puts: two per started KB of each item.
fn put_units(body: &[u8]) -> u64 {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return 0;
    };
    request["TransactItems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|action| action.get("Put"))
        .map(|put| 2 * kb_units(item_size(&put["Item"])))
        .sum()
}

impl CountingProxy {
    /// The stored sizes of `items` (0 for one that is not there), read past the counts.
    async fn sizes(&self, headers: &axum::http::HeaderMap, items: &[(Value, Value)]) -> Vec<u64> {
        let mut sizes = Vec::with_capacity(items.len());
        for (table, key) in items {
            let body = serde_json::json!({"TableName": table, "Key": key, "ConsistentRead": true});
            let mut req = self
                .http
                .post(format!("{}/", self.target))
                .body(body.to_string());
            for (name, value) in headers {
                if name != "host" && name != "content-length" && name != "x-amz-target" {
                    req = req.header(name, value);
                }
            }
            let size = match req
                .header("x-amz-target", "DynamoDB_20120810.GetItem")
                .send()
                .await
            {
                Ok(answer) => answer
                    .json::<Value>()
                    .await
                    .map_or(0, |v| item_size(&v["Item"])),
                Err(_) => 0,
            };
            sizes.push(size);
        }
        sizes
    }
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
    let keyed = match operation.as_str() {
        "TransactWriteItems" => keyed_actions(&body),
        _ => Vec::new(),
    };
    let before = proxy.sizes(&parts.headers, &keyed).await;
    let write_kind = WRITES
        .contains(&operation.as_str())
        .then(|| write_kind(&operation, &body));
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
    let write_units = match (is_write && status.is_success(), operation.as_str()) {
        (true, "TransactWriteItems") => {
            let after = proxy.sizes(&parts.headers, &keyed).await;
            let keyed: u64 = before
                .iter()
                .zip(&after)
                .map(|(b, a)| 2 * kb_units(*b.max(a)))
                .sum();
            keyed + put_units(&body)
        }
        (true, _) => consumed_units(&bytes).unwrap_or(estimated_units),
        (false, _) => estimated_units,
    };
    {
        let mut c = proxy.lock();
        *c.by_operation.entry(operation.clone()).or_default() += 1;
        c.write_units += write_units;
        if let Some(kind) = write_kind {
            *c.write_units_by_kind.entry(kind.clone()).or_default() += write_units;
            *c.writes_by_kind.entry(kind.clone()).or_default() += 1;
            if !status.is_success() {
                *c.refused_by_kind.entry(kind).or_default() += 1;
            }
        }
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
