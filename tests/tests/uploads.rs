//! Tasks made from an uploaded file, end to end: the upload session through the local
//! gateway, the file PUT to S3 (moto) with the pre-signed URL as a client would, the close,
//! the ingest function reading the file from S3, and the consumers working the chunks.
//! Bad input ends in a clear 4xx or a final task with its reason, never a 5xx or a stuck task.

use base64::Engine;
use integration_tests::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const UPLOADS: &str = "/tasks/beneficiaries-import/uploads";

fn sha256(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

/// A CSV of `n` payees with accounts `first..`; rows in `bad` have an IBAN whose checksum
/// fails.
fn csv(first: u64, n: u64, bad: &[u64]) -> Vec<u8> {
    let mut text = String::from("name,country,currency,iban,external_id\r\n");
    for i in 0..n {
        let iban = if bad.contains(&i) {
            "DE00370400440532013000".to_owned()
        } else {
            german_iban(first + i)
        };
        text.push_str(&format!("Payee {i},DE,EUR,{iban},ext-{i}\r\n"));
    }
    text.into_bytes()
}

/// Opens a session for `declared` (its length and SHA-256), as `content_type`.
async fn open(app: &TestApp, declared: &[u8], content_type: &str, extra: Value) -> Answer {
    let mut body = json!({"content_type": content_type, "content_length": declared.len(),
        "checksum_sha256": sha256(declared)});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    app.post_json(ALICE, UPLOADS, &body).await
}

/// PUTs `bytes` with the session's URL and headers, as curl or a browser would.
async fn put(session: &Value, bytes: Vec<u8>) -> u16 {
    let upload = &session["upload"];
    let mut request = reqwest::Client::new()
        .put(upload["url"].as_str().expect("an upload URL"))
        .body(bytes);
    for (name, value) in upload["headers"].as_object().expect("headers") {
        // The client's own length is the body's: a wrong body is sent as it is.
        if name != "content-length" {
            request = request.header(name, value.as_str().unwrap_or_default());
        }
    }
    request.send().await.expect("PUT to S3").status().as_u16()
}

async fn close(app: &TestApp, token: &str, task_id: &str) -> Answer {
    let path = format!("/tasks/{IMPORT}/{task_id}/upload-complete");
    app.send(app.request(reqwest::Method::POST, token, &path))
        .await
}

/// Opens a session for `file`, uploads it, closes it: the task id and the close's answer.
async fn upload(
    app: &TestApp,
    file: Vec<u8>,
    content_type: &str,
    extra: Value,
) -> (String, Answer) {
    let session = open(app, &file, content_type, extra).await;
    assert_eq!(session.status, 201, "{}", session.body);
    assert_eq!(put(&session.body, file).await, 200);
    let id = session.body["task_id"]
        .as_str()
        .expect("task id")
        .to_owned();
    let closed = close(app, ALICE, &id).await;
    (id, closed)
}

/// The final task once its result files are written (the notifier sends their export when
/// the task ends; the file function writes them).
async fn with_files(app: &TestApp, id: &str) -> Value {
    let path = format!("/tasks/{IMPORT}/{id}");
    let written = || async {
        let task = app.get(ALICE, &path).await.body;
        task["links"]["result_file"].is_string().then_some(task)
    };
    eventually(written)
        .await
        .unwrap_or_else(|| panic!("the result files of {id} were never written"))
}

/// A pre-signed GET, as a browser or curl would follow it.
async fn download(url: &Value) -> String {
    let url = url.as_str().expect("a pre-signed URL");
    let res = reqwest::get(url).await.expect("GET from S3");
    assert_eq!(res.status(), 200);
    res.text().await.expect("text")
}

async fn errors(app: &TestApp, id: &str) -> Vec<Value> {
    let page = app
        .get(ALICE, &format!("/tasks/{IMPORT}/{id}/errors?limit=100"))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.body["errors"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_csv_file_uploaded_with_its_url_is_validated_and_processed() {
    let app = spawn_app().await;
    let file = csv(1, 300, &[]);
    let session = open(&app, &file, "text/csv", json!({})).await;
    assert_eq!(session.status, 201, "{}", session.body);
    let task = &session.body;
    assert_eq!(task["status"], "awaiting_upload");
    assert_eq!(task["progress"]["percent"], 0);
    let headers = task["upload"]["headers"].as_object().unwrap();
    assert_eq!(headers["x-amz-checksum-sha256"], sha256(&file));
    assert!(
        headers.keys().all(|k| !k.starts_with("x-amzn")),
        "only signed headers: {headers:?}"
    );
    let id = task["task_id"].as_str().unwrap();

    assert_eq!(put(task, file).await, 200);
    let closed = close(&app, ALICE, id).await;
    assert_eq!(closed.status, 202, "{}", closed.body);
    let again = close(&app, ALICE, id).await;
    assert_eq!(
        again.status, 202,
        "a second close is a harmless replay: {}",
        again.body
    );

    let done = app.wait_final(ALICE, id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["progress"]["succeeded"], 300);
    assert_eq!(done["file"]["rows_read"], 300);
    assert!(done["upload"].is_null());
    assert_eq!(app.bos_stats().await.creations, 300, "each created once");

    // The outcome comes back as one file, CSV as the upload was: a header and a row an item
    let done = with_files(&app, id).await;
    let result = download(&done["links"]["result_file"]).await;
    assert_eq!(
        result.lines().count(),
        301,
        "{}",
        &result[..200.min(result.len())]
    );
    assert!(result.starts_with("index,external_id,status,beneficiary_id"));
    assert_eq!(result.matches("index,external_id,status").count(), 1);
    let errors = download(&done["links"]["errors_file"]).await;
    assert_eq!(errors.lines().count(), 1, "a header and no failed item");
}

#[tokio::test]
async fn invalid_rows_refuse_the_file_by_default_and_each_is_listed_with_its_line() {
    let app = spawn_app().await;
    let mut lines = vec![];
    for i in 0..20u64 {
        lines.push(
            json!({"name": format!("P{i}"), "country": "DE", "currency": "EUR",
                "iban": german_iban(100 + i)})
            .to_string(),
        );
    }
    lines[4] = json!({"name": "P4", "country": "DE", "currency": "EURO",
        "iban": german_iban(104)})
    .to_string();
    lines[9] = "{\"name\": ".into();
    let file = format!("{}\n", lines.join("\n")).into_bytes();
    let (id, closed) = upload(&app, file, "application/x-ndjson", json!({})).await;
    assert_eq!(closed.status, 202, "{}", closed.body);

    let task = app.wait_final(ALICE, &id).await;
    assert_eq!(task["status"], "rejected", "{task}");
    assert_eq!(task["rejection"]["code"], "invalid_rows");
    assert_eq!(task["progress"]["failed"], 2);
    assert_eq!(task["progress"]["not_attempted"], 18);
    let listed: Vec<(Value, Value)> = errors(&app, &id)
        .await
        .iter()
        .map(|e| (e["line"].clone(), e["code"].clone()))
        .collect();
    assert_eq!(
        listed,
        [
            (json!(5), json!("invalid_currency")),
            (json!(10), json!("malformed_json")),
        ]
    );
    assert_eq!(app.bos_stats().await.requests, 0, "nothing reached BOS");
}

#[tokio::test]
async fn with_invalid_rows_skip_they_fail_and_the_rest_is_processed() {
    let app = spawn_app().await;
    let file = csv(200, 50, &[10]);
    let skip = json!({"invalid_rows": "skip", "result_format": "ndjson"});
    let (id, _) = upload(&app, file, "text/csv", skip).await;
    let task = app.wait_final(ALICE, &id).await;
    assert_eq!(task["status"], "completed_with_errors", "{task}");
    assert_eq!(task["progress"]["succeeded"], 49);
    assert_eq!(task["progress"]["failed"], 1);
    let failed = errors(&app, &id).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["line"], 12, "the header is line 1");
    assert_eq!(failed[0]["code"], "invalid_checksum");

    // The files are JSON Lines, as asked: the errors file holds the errors page's objects
    let done = with_files(&app, &id).await;
    assert_eq!(done["file"]["result_format"], "ndjson");
    let lines: Vec<Value> = download(&done["links"]["errors_file"])
        .await
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines, failed);
    let results = download(&done["links"]["result_file"]).await;
    assert_eq!(results.lines().count(), 50);
}

#[tokio::test]
async fn a_wrong_upload_is_refused_at_the_close_and_can_be_sent_again() {
    let app = spawn_app().await;
    let file = csv(300, 10, &[]);
    let session = open(&app, &file, "text/csv", json!({})).await;
    let id = session.body["task_id"].as_str().unwrap();

    let early = close(&app, ALICE, id).await;
    assert_eq!(
        (early.status, early.body["error"]["code"].as_str()),
        (409, Some("upload_not_received"))
    );
    for wrong in [
        file[..file.len() - 5].to_vec(),
        [&file[..], b"extra\r\n"].concat(),
    ] {
        assert_eq!(put(&session.body, wrong).await, 200);
        let refused = close(&app, ALICE, id).await;
        assert_eq!(refused.status, 409, "{}", refused.body);
        assert_eq!(refused.body["error"]["code"], "upload_mismatch");
    }
    let other = close(&app, BOB, id).await;
    assert_eq!(other.status, 404, "another caller's task is not found");

    assert_eq!(put(&session.body, file).await, 200);
    assert_eq!(close(&app, ALICE, id).await.status, 202);
    let task = app.wait_final(ALICE, id).await;
    assert_eq!(task["status"], "completed", "{task}");
}

#[tokio::test]
async fn a_file_that_is_not_what_it_should_be_ends_rejected_with_its_reason() {
    let app = spawn_app_with(AppOptions {
        extra_env: vec![("MAX_FILE_ROWS", "40".into())],
        ..AppOptions::default()
    })
    .await;
    let header = "name,country,currency,iban\r\n";
    let mut long_line = header.as_bytes().to_vec();
    long_line.extend(vec![b'x'; 10 * 1024 * 1024]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not UTF-8",
            format!("{header}M\u{fc}ller,DE,EUR,{}\r\n", german_iban(400))
                .into_bytes()
                .into_iter()
                .map(|b| if b == 0xc3 { 0xfc } else { b })
                .collect(),
            "invalid_encoding",
        ),
        (
            "unknown and repeated columns",
            b"name,name,colour,country,currency,iban\r\nA,A,red,DE,EUR,X\r\n".to_vec(),
            "invalid_csv_header",
        ),
        ("a 10 MB line", long_line, "line_too_long"),
        (
            "a header and no row",
            header.as_bytes().to_vec(),
            "empty_batch",
        ),
        (
            "more rows than allowed",
            csv(500, 41, &[]),
            "too_many_items",
        ),
    ];
    let mut ids = vec![];
    for (what, file, code) in cases {
        let (id, closed) = upload(&app, file, "text/csv", json!({})).await;
        assert_eq!(closed.status, 202, "{what}: {}", closed.body);
        ids.push((what, id, code));
    }
    // A declared checksum that is not the file's (same length, one byte changed). S3 refuses
    // such a PUT; moto takes it, and the ingest, which hashes what it reads, refuses the file.
    let file = csv(600, 5, &[]);
    let mut declared = file.clone();
    declared[0] = b'N';
    let session = open(&app, &declared, "text/csv", json!({})).await;
    assert_eq!(put(&session.body, file).await, 200);
    let id = session.body["task_id"].as_str().unwrap().to_owned();
    close(&app, ALICE, &id).await;
    ids.push(("a checksum mismatch", id, "upload_mismatch"));

    for (what, id, code) in ids {
        let task = app.wait_final(ALICE, &id).await;
        assert_eq!(task["status"], "rejected", "{what}: {task}");
        assert_eq!(task["rejection"]["code"], code, "{what}: {task}");
        let p = &task["progress"];
        assert_eq!(
            p["processed"], p["total"],
            "{what}: every row accounted for"
        );
    }
    assert_eq!(app.bos_stats().await.requests, 0);

    let empty = json!({"content_type": "text/csv", "content_length": 0,
        "checksum_sha256": sha256(b"")});
    let refused = app.post_json(ALICE, UPLOADS, &empty).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.body["error"]["details"][0]["code"], "empty_file");
}

#[tokio::test]
async fn a_session_cancelled_before_its_file_ends_at_once() {
    let app = spawn_app().await;
    let file = csv(700, 3, &[]);
    let session = open(&app, &file, "text/csv", json!({})).await;
    let id = session.body["task_id"].as_str().unwrap();
    let cancelled = app.delete(ALICE, &format!("/tasks/{IMPORT}/{id}")).await;
    assert_eq!(cancelled.status, 202, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    let late = close(&app, ALICE, id).await;
    assert_eq!(late.body["error"]["code"], "task_not_awaiting_upload");
}

#[tokio::test]
async fn an_ingest_killed_half_way_resumes_from_its_checkpoint() {
    // Given an ingest that aborts after its second batch of writes, before their checkpoint
    let marker = std::env::temp_dir().join(format!("crash-{}", uuid::Uuid::new_v4()));
    let app = spawn_app_with(AppOptions {
        extra_env: vec![
            ("FAILPOINT_CRASH_BEFORE_CHECKPOINT", "2".into()),
            ("FAILPOINT_MARKER", marker.display().to_string()),
            ("CHUNK_SIZE", "5".into()),
        ],
        ..AppOptions::default()
    })
    .await;
    // 1,000 rows in 200 chunks: checkpoints every 64 chunks, so the crash is mid-file
    let (id, _) = upload(&app, csv(1_000, 1_000, &[]), "text/csv", json!({})).await;

    let task = app.wait_final(ALICE, &id).await;
    assert!(marker.exists(), "the failpoint fired");
    assert!(app.function_log("ingest").contains("failpoint: crashing"));
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["progress"]["succeeded"], 1_000);
    let stats = app.bos_stats().await;
    assert_eq!(stats.creations, 1_000, "every row created once: {stats:?}");
}

#[tokio::test]
async fn an_upload_session_with_an_idempotency_key_is_opened_once() {
    let app = spawn_app().await;
    let file = csv(800, 2, &[]);
    let body = json!({"content_type": "text/csv", "content_length": file.len(),
        "checksum_sha256": sha256(&file)});
    let first = app
        .post_idempotent(ALICE, UPLOADS, "session-1", &body)
        .await;
    let again = app
        .post_idempotent(ALICE, UPLOADS, "session-1", &body)
        .await;
    assert_eq!((first.status, again.status), (201, 201), "{}", again.body);
    assert_eq!(first.body["task_id"], again.body["task_id"]);
    let other = json!({"content_type": "text/csv", "content_length": file.len() + 1,
        "checksum_sha256": sha256(&file)});
    let reused = app
        .post_idempotent(ALICE, UPLOADS, "session-1", &other)
        .await;
    assert_eq!(reused.status, 422, "{}", reused.body);
    assert_eq!(reused.body["error"]["code"], "idempotency_key_reused");
}
