//! Plays Lambda's DynamoDB Streams event sources from DynamoDB Local's own stream: reads every
//! shard from its start (the stack's table is new) and on after the last record read, turns records into the event Lambda sends
//! (`{"Records": [{"eventID", "eventName", "dynamodb": {"Keys", "NewImage", "OldImage",
//! "SequenceNumber", …}}]}`), keeps those each source's `FilterCriteria` let through, and
//! invokes its function. A batch the function fails (an error, or `batchItemFailures`) is sent
//! again from the first failed record, as Lambda does, up to [`RETRIES`] times.
//!
//! One reader serves every source on a table's stream (in AWS each event source mapping polls
//! on its own, outside the table's request path; here a second reader would double DynamoDB
//! Local's work on a shared machine). Each source still gets its own batches, batching window
//! and one invocation at a time: records gather while its previous batch runs, as they do in
//! Lambda.

use crate::function::FunctionPool;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Times a failing batch is sent again before its records are given up (and logged).
pub const RETRIES: usize = 10;

pub struct StreamConfig {
    pub batch_size: u32,
    pub report_batch_item_failures: bool,
    pub filters: Vec<Value>,
    /// Lambda's `MaximumBatchingWindowInSeconds`: records are gathered this long (or until a
    /// batch is full) before the function is invoked.
    pub batching_window: Duration,
}

/// Where one shard is read from: the next iterator, and the last record seen, to ask for a
/// new iterator after it (DynamoDB Local ends an open shard's iterator when it runs dry).
#[derive(Default)]
struct Shard {
    iterator: Option<String>,
    last: Option<String>,
}

/// One function fed by the stream: its pool and its source's settings.
pub struct Consumer {
    pub function: Arc<FunctionPool>,
    pub config: StreamConfig,
}

/// A stream reader running on its own thread; [`Reader::stop`] ends it.
pub struct Reader {
    stop: Arc<AtomicBool>,
}

impl Reader {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts reading on a thread of its own, with its own runtime: decoding a busy stream's
/// records (every item outcome and lane write is one) must not slow the gateway's other work,
/// which runs on the caller's runtime (a test's single thread, say).
pub fn spawn(
    dynamodb_endpoint: String,
    stream_arn: String,
    consumers: Vec<Consumer>,
) -> std::io::Result<Reader> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("stream-source".into())
        .spawn(move || {
            runtime.block_on(async move {
                let streams = crate::streams_client(&dynamodb_endpoint).await;
                run(streams, stream_arn, consumers, stopped).await;
            })
        })?;
    Ok(Reader { stop })
}

/// One consumer's side of the reader: the records gathered for it, since when, and whether
/// its function is busy with a batch (Lambda runs one batch per shard at a time).
struct Feed {
    consumer: Arc<Consumer>,
    pending: Vec<Value>,
    window_opened: Option<Instant>,
    busy: Arc<AtomicBool>,
}

impl Feed {
    fn batch_size(&self) -> usize {
        self.consumer.config.batch_size.clamp(1, 1000) as usize
    }

    /// How soon the gathered records may be handed over: when the window ends, or, if that
    /// has passed and the function is busy, soon (its batch may be done).
    fn due_in(&self) -> Duration {
        let left = self.window_opened.map_or(Duration::ZERO, |at| {
            self.consumer
                .config
                .batching_window
                .saturating_sub(at.elapsed())
        });
        left.max(Duration::from_millis(20))
    }

    /// Hands a batch to the function if it is free and the batch is due: full, or its
    /// window is over.
    fn dispatch(&mut self) {
        let due = self.pending.len() >= self.batch_size()
            || self
                .window_opened
                .is_some_and(|at| at.elapsed() >= self.consumer.config.batching_window);
        if !due || self.pending.is_empty() || self.busy.load(Ordering::Acquire) {
            return;
        }
        let batch: Vec<Value> = self
            .pending
            .drain(..self.pending.len().min(self.batch_size()))
            .collect();
        if self.pending.is_empty() {
            self.window_opened = None;
        }
        self.busy.store(true, Ordering::Release);
        let (consumer, busy) = (Arc::clone(&self.consumer), Arc::clone(&self.busy));
        tokio::spawn(async move {
            deliver(&consumer.function, &consumer.config, batch).await;
            busy.store(false, Ordering::Release);
        });
    }
}

/// Runs until `stop` is set.
async fn run(
    streams: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    consumers: Vec<Consumer>,
    stop: Arc<AtomicBool>,
) {
    let mut feeds: Vec<Feed> = consumers
        .into_iter()
        .map(|consumer| Feed {
            consumer: Arc::new(consumer),
            pending: Vec::new(),
            window_opened: None,
            busy: Arc::new(AtomicBool::new(false)),
        })
        .collect();
    let read_limit = feeds.iter().map(Feed::batch_size).max().unwrap_or(100) as i32;
    let mut shards: HashMap<String, Shard> = HashMap::new();
    let mut rounds = 0u32;
    while !stop.load(Ordering::Relaxed) {
        // Every 20 rounds (2 s when idle), look for new shards.
        if rounds == 0 {
            discover(&streams, &stream_arn, &mut shards).await;
        }
        rounds = (rounds + 1) % 20;
        let mut got_any = false;
        for (id, shard) in shards.iter_mut() {
            if shard.iterator.is_none() {
                shard.iterator = iterator(&streams, &stream_arn, id, shard.last.as_deref()).await;
            }
            let Some(current) = shard.iterator.clone() else {
                continue;
            };
            let out = streams
                .get_records()
                .shard_iterator(current)
                .limit(read_limit)
                .send()
                .await;
            let out = match out {
                Ok(out) => out,
                Err(e) => {
                    let error = aws_sdk_dynamodbstreams::error::DisplayErrorContext(e);
                    tracing::warn!(%error, "stream read failed; retrying");
                    shard.iterator = None;
                    continue;
                }
            };
            shard.iterator = out.next_shard_iterator().map(str::to_owned);
            if let Some(last) = out
                .records()
                .last()
                .and_then(|r| r.dynamodb())
                .and_then(|d| d.sequence_number())
            {
                shard.last = Some(last.to_owned());
            }
            let records: Vec<Value> = out
                .records()
                .iter()
                .map(|r| record(r, &stream_arn))
                .collect();
            for feed in &mut feeds {
                let filters = &feed.consumer.config.filters;
                let passed = records
                    .iter()
                    .filter(|r| filters.is_empty() || filters.iter().any(|f| matches(f, r)));
                let before = feed.pending.len();
                feed.pending.extend(passed.cloned());
                if feed.pending.len() > before {
                    got_any = true;
                    feed.window_opened.get_or_insert_with(Instant::now);
                }
            }
        }
        for feed in &mut feeds {
            feed.dispatch();
        }
        if !got_any {
            // Nothing new: wait for new records (100 ms, as when idle), or less if a batch
            // falls due before then (its window ends, or its busy function may be done).
            let pause = feeds
                .iter()
                .filter(|f| !f.pending.is_empty())
                .map(Feed::due_in)
                .fold(Duration::from_millis(100), Duration::min);
            tokio::time::sleep(pause).await;
        }
    }
}

/// Finds shards not seen yet (DynamoDB rolls them over).
async fn discover(
    streams: &aws_sdk_dynamodbstreams::Client,
    arn: &str,
    shards: &mut HashMap<String, Shard>,
) {
    let Ok(described) = streams.describe_stream().stream_arn(arn).send().await else {
        return;
    };
    for shard in described
        .stream_description()
        .map(|d| d.shards())
        .unwrap_or_default()
    {
        if let Some(id) = shard.shard_id() {
            shards.entry(id.to_owned()).or_default();
        }
    }
}

/// An iterator after `last`, or from the shard's start when nothing was read from it yet.
async fn iterator(
    streams: &aws_sdk_dynamodbstreams::Client,
    arn: &str,
    shard: &str,
    last: Option<&str>,
) -> Option<String> {
    let request = streams.get_shard_iterator().stream_arn(arn).shard_id(shard);
    let request = match last {
        Some(sequence) => request
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .sequence_number(sequence),
        None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
    };
    let out = request.send().await.ok()?;
    out.shard_iterator().map(str::to_owned)
}

/// Invokes the function with `records`, sending the failed rest again as Lambda would.
async fn deliver(function: &FunctionPool, config: &StreamConfig, mut records: Vec<Value>) {
    for _ in 0..=RETRIES {
        let event = json!({ "Records": records });
        let answer = function
            .invoke(serde_json::to_vec(&event).unwrap_or_default())
            .await;
        let first_failed = match answer {
            Ok(_) if !config.report_batch_item_failures => return,
            Ok(body) => serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
                v["batchItemFailures"][0]["itemIdentifier"]
                    .as_str()
                    .map(str::to_owned)
            }),
            Err(e) => {
                tracing::warn!(function = function.name(), error = %e, "stream batch failed");
                records
                    .first()
                    .and_then(|r| r["dynamodb"]["SequenceNumber"].as_str().map(str::to_owned))
            }
        };
        let Some(sequence) = first_failed else {
            return;
        };
        if let Some(at) = records
            .iter()
            .position(|r| r["dynamodb"]["SequenceNumber"] == sequence.as_str())
        {
            records.drain(..at);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tracing::error!(
        function = function.name(),
        records = records.len(),
        "stream records given up after retries"
    );
}

/// The Lambda event record for a stream record.
fn record(r: &Record, stream_arn: &str) -> Value {
    let change = r.dynamodb();
    let image = |m: Option<&HashMap<String, AttributeValue>>| m.map(attributes);
    let mut dynamodb = Map::new();
    if let Some(c) = change {
        if let Some(t) = c.approximate_creation_date_time() {
            dynamodb.insert("ApproximateCreationDateTime".into(), json!(t.secs()));
        }
        dynamodb.insert("Keys".into(), image(c.keys()).unwrap_or(Value::Null));
        if let Some(new) = image(c.new_image()) {
            dynamodb.insert("NewImage".into(), new);
        }
        if let Some(old) = image(c.old_image()) {
            dynamodb.insert("OldImage".into(), old);
        }
        dynamodb.insert("SequenceNumber".into(), json!(c.sequence_number()));
        dynamodb.insert("SizeBytes".into(), json!(c.size_bytes().unwrap_or(0)));
        dynamodb.insert(
            "StreamViewType".into(),
            json!(c.stream_view_type().map(|v| v.as_str())),
        );
    }
    json!({
        "eventID": r.event_id(),
        "eventName": r.event_name().map(|n| n.as_str()),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    })
}

fn attributes(map: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(map.iter().map(|(k, v)| (k.clone(), attribute(v))).collect())
}

/// An attribute in DynamoDB's JSON form (`{"S": "…"}`, `{"N": "…"}`, …).
fn attribute(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::B(b) => json!({ "B": B64.encode(b.as_ref()) }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => {
            json!({ "BS": v.iter().map(|b| B64.encode(b.as_ref())).collect::<Vec<_>>() })
        }
        AttributeValue::L(v) => json!({ "L": v.iter().map(attribute).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": attributes(m) }),
        _ => Value::Null,
    }
}

/// Lambda's event filtering, the part the template uses: in a pattern, an object matches an
/// object key by key, and an array lists the values a field may have. A field the pattern
/// names must be present.
pub fn matches(pattern: &Value, event: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields
            .iter()
            .all(|(k, p)| event.get(k).is_some_and(|v| matches(p, v))),
        Value::Array(allowed) => allowed.iter().any(|a| a == event),
        other => other == event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_templates_filter_lets_only_final_transitions_of_tasks_through() {
        let pattern: Value = serde_json::from_str(
            r#"{"eventName": ["MODIFY"], "dynamodb": {"Keys": {"sk": {"S": ["TASK"]}},
                "OldImage": {"status": {"S": ["queued", "running"]}},
                "NewImage": {"status": {"S": ["completed", "failed"]}}}}"#,
        )
        .unwrap();
        let event = |name: &str, sk: &str, old: &str, new: &str| {
            json!({"eventName": name, "dynamodb": {"Keys": {"pk": {"S": "TASK#1"}, "sk": {"S": sk}},
                "OldImage": {"status": {"S": old}}, "NewImage": {"status": {"S": new}, "total": {"N": "3"}}}})
        };
        assert!(matches(
            &pattern,
            &event("MODIFY", "TASK", "running", "completed")
        ));
        assert!(!matches(
            &pattern,
            &event("INSERT", "TASK", "running", "completed")
        ));
        assert!(!matches(
            &pattern,
            &event("MODIFY", "ITEM#000001", "running", "completed")
        ));
        assert!(!matches(
            &pattern,
            &event("MODIFY", "TASK", "queued", "running")
        ));
        assert!(!matches(
            &pattern,
            &event("MODIFY", "TASK", "completed", "completed")
        ));
        assert!(
            !matches(&pattern, &json!({"eventName": "MODIFY"})),
            "named fields must exist"
        );
    }
}
