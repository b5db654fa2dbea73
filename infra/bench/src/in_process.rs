//! In-process measurements: validation and parsing cost per item, and the api handler on
//! `POST /tasks/beneficiaries-import` with in-memory adapters (no I/O), with the AWS requests
//! the real adapters would make.

use crate::report::{median, Report};
use crate::workload::{items, BoxError};
use api::App;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use tasks_core::memory::{
    MemoryBackend, MemoryDeliveryQueue, MemoryLanes, MemoryQueue, MemoryStore,
};
use tasks_core::paging::PageTokens;
use tasks_core::usecases::submit_task::parse_items;

/// `n` parsed beneficiaries, as the api function would hold them after validation.
pub fn beneficiaries(n: usize) -> Vec<tasks_core::beneficiary::Beneficiary> {
    items(n, 1)
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| tasks_core::beneficiary::Beneficiary::parse(v).ok())
        .collect()
}

pub fn validation(report: &mut Report) -> Result<(), BoxError> {
    let body = serde_json::to_vec(&items(10_000, 1)).unwrap_or_default();
    let settings = crate::shipped::api_settings()?;
    let mut per_item = vec![];
    for _ in 0..15 {
        let started = Instant::now();
        let parsed = parse_items(&body, &settings).map(|v| v.len()).unwrap_or(0);
        per_item.push(started.elapsed().as_secs_f64() * 1e6 / parsed.max(1) as f64);
    }
    let us = median(per_item);
    report.check(
        "validation + parsing per item (10,000-item body, in process, median of 15)",
        format!("{us:.2} µs"),
        "≤ 2 µs",
        us <= 2.0,
    );
    Ok(())
}

fn request(body: &[u8]) -> lambda_http::Request {
    let event = json!({
        "version": "2.0", "routeKey": "POST /tasks/{task_type}", "rawPath": "/tasks/beneficiaries-import",
        "rawQueryString": "", "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": "/tasks/beneficiaries-import",
            "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "authorizer": {"jwt": {"claims": {"sub": "bench"}, "scopes": null}},
            "requestId": "bench", "routeKey": "POST /tasks/{task_type}", "stage": "$default",
            "time": "", "timeEpoch": 0, "accountId": "0", "apiId": "bench", "domainName": "x", "domainPrefix": "x"},
        "body": String::from_utf8_lossy(body), "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("event")
}

pub async fn handler(report: &mut Report) -> Result<(), BoxError> {
    let shipped = crate::shipped::api_settings()?;
    for n in [1_000usize, 10_000] {
        let body = serde_json::to_vec(&items(n, 1)).unwrap_or_default();
        let mut times = vec![];
        let (mut writes, mut sends) = (0, 0);
        for _ in 0..11 {
            let store = Arc::new(MemoryStore::default());
            let queue = Arc::new(MemoryQueue::default());
            let lanes = Arc::new(MemoryLanes::default());
            let settings = shipped.clone();
            let app = App::new(
                store.clone(),
                api::Ports {
                    lanes: lanes.clone(),
                    queue: queue.clone(),
                    backend: Arc::new(MemoryBackend::default()),
                    delivery_queue: Arc::new(MemoryDeliveryQueue::default()),
                    files: Arc::new(tasks_core::memory::MemoryFiles::default()),
                    ingest: Arc::new(tasks_core::memory::MemoryIngestQueue::default()),
                    console: Default::default(),
                },
                settings,
                PageTokens::new(b"test-page-token-key"),
            );
            let req = request(&body);
            let started = Instant::now();
            let res = app.handle(req).await;
            times.push(started.elapsed().as_secs_f64() * 1e3);
            assert_eq!(res.status(), 202);
            writes = store.write_requests() + lanes.write_requests();
            sends = queue.batch_calls();
        }
        let ms = median(times);
        let what = format!("POST of {n} items, api handler with in-memory adapters (median of 11)");
        let value = format!("{ms:.1} ms; {writes} DynamoDB writes (task, waiting chunks, lane state), {sends} SendMessageBatch");
        if n == 10_000 {
            report.check(what, value, "≤ 50 ms", ms <= 50.0);
        } else {
            report.info(what, value);
        }
    }
    Ok(())
}
