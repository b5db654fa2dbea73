//! CSV in, end to end: the spreadsheet an operations team exports (BOM, CRLF, quoted commas,
//! non-ASCII names) imports like the JSON array it stands for, and a CSV that is broken is
//! refused with a code and the line to look at.

use integration_tests::*;
use serde_json::Value;

fn path() -> String {
    format!("/tasks/{IMPORT}")
}

/// What Excel's "CSV UTF-8" writes: a BOM, CRLF line ends, quotes around fields with commas or
/// quotes in them.
fn excel_csv() -> String {
    format!(
        "\u{feff}name,country,currency,iban,email,external_id\r\n\
         \"Müller, Jörg\",DE,EUR,{},joerg@example.com,row-1\r\n\
         \"Zoë \"\"Zo\"\" Ørsted\",DE,EUR,{},,row-2\r\n\
         Łukasz Żółć,DE,EUR,{},,row-3\r\n",
        german_iban(9_001),
        german_iban(9_002),
        german_iban(9_003),
    )
}

#[tokio::test]
async fn an_excel_csv_imports_like_its_json() {
    let app = spawn_app().await;

    let answer = app.post_csv(ALICE, &path(), None, &excel_csv()).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let id = answer.body["task_id"].as_str().unwrap().to_owned();
    let task = app.wait_final(ALICE, &id).await;
    assert_eq!(task["status"], "completed", "{task}");

    let result = app.get(ALICE, &format!("{}/{id}/result", path())).await;
    let results = result.body["results"].as_array().unwrap();
    let names: Vec<(&str, &str)> = results
        .iter()
        .map(|r| {
            (
                r["external_id"].as_str().unwrap(),
                r["beneficiary"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("row-1", "Müller, Jörg"),
            ("row-2", "Zoë \"Zo\" Ørsted"),
            ("row-3", "Łukasz Żółć"),
        ]
    );
    assert_eq!(
        results[1]["beneficiary"].get("email"),
        None,
        "an empty cell is no e-mail"
    );
    assert_eq!(app.bos_stats().await.creations, 3);
}

#[tokio::test]
async fn a_csv_is_idempotent_like_json() {
    let app = spawn_app().await;
    let first = app
        .post_csv(ALICE, &path(), Some("csv-import-1"), &excel_csv())
        .await;
    let again = app
        .post_csv(ALICE, &path(), Some("csv-import-1"), &excel_csv())
        .await;
    assert_eq!(first.status, 202);
    assert_eq!(again.status, 202);
    assert_eq!(again.body["task_id"], first.body["task_id"]);
    assert_eq!(
        again
            .headers
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
}

#[tokio::test]
async fn a_broken_csv_is_refused_with_a_code_and_the_line_to_look_at() {
    let app = spawn_app().await;
    let header = "name,country,currency,iban\r\n";
    let good = format!("Ada,DE,EUR,{}\r\n", german_iban(9_101));

    // A row with a field missing
    let ragged = format!("{header}{good}Grace,DE,EUR\r\n");
    let answer = app.post_csv(ALICE, &path(), None, &ragged).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.body["error"]["code"], "malformed_csv");
    assert_eq!(
        answer.body["error"]["message"],
        "The CSV is malformed at line 3."
    );

    // Text that is not UTF-8 (Latin-1 from an old export)
    let mut latin1 = format!("{header}{good}").into_bytes();
    latin1.extend_from_slice(b"M\xfcller,DE,EUR,X\r\n");
    let answer = app
        .send(
            app.request(reqwest::Method::POST, ALICE, &path())
                .header("content-type", "text/csv; charset=utf-8")
                .body(latin1),
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.body["error"]["code"], "invalid_encoding");
    assert_eq!(
        answer.body["error"]["message"],
        "The CSV is not UTF-8 at line 3."
    );

    // An unknown and a repeated column, and a required one missing
    let answer = app
        .post_csv(
            ALICE,
            &path(),
            None,
            "name,name,iban,colour\r\nA,A,X,red\r\n",
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.body["error"]["code"], "invalid_csv_header");
    let found: Vec<(&str, &str)> = answer.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["field"].as_str().unwrap(), d["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        found,
        vec![
            ("name", "duplicate_column"),
            ("colour", "unknown_column"),
            ("country", "missing_column"),
            ("currency", "missing_column"),
        ]
    );

    // A row that parses but is not a valid beneficiary: the 422 names its index and line
    let invalid = format!("{header}{good}Grace,DE,EUR,DE00370400440532013000\r\n");
    let answer = app.post_csv(ALICE, &path(), None, &invalid).await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    let detail: &Value = &answer.body["error"]["details"][0];
    assert_eq!(
        (&detail["index"], &detail["line"], &detail["code"]),
        (
            &Value::from(1),
            &Value::from(3),
            &Value::from("invalid_checksum")
        )
    );

    // Nothing of any of them was created or queued
    assert_eq!(app.bos_stats().await.requests, 0);
    let tasks = app.get(ALICE, &path()).await;
    assert_eq!(tasks.body["tasks"], Value::Array(vec![]));
}

/// A CSV GET: the body and the `Link` header's next URL, if any.
/// A CSV page: from a `….csv` resource as it is, else asked for with `Accept: text/csv` (the
/// way callers did before the `.csv` resources).
async fn get_csv(app: &TestApp, path: &str) -> (u16, String, Option<String>) {
    let mut request = app
        .http
        .get(format!("{}{path}", app.base))
        .bearer_auth(ALICE);
    if !path.split('?').next().unwrap_or("").ends_with(".csv") {
        request = request.header("accept", "text/csv");
    }
    let res = request.send().await.expect("GET");
    let status = res.status().as_u16();
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/csv; charset=utf-8")
    );
    let next = res
        .headers()
        .get("link")
        .and_then(|v| v.to_str().ok())
        .and_then(|l| l.strip_prefix('<'))
        .and_then(|l| l.split_once(">; rel=\"next\""))
        .map(|(url, _)| url.to_owned());
    (status, res.text().await.expect("body"), next)
}

#[tokio::test]
async fn the_csv_error_report_is_fixed_and_posted_back() {
    // Given a CSV with one row BOS rejects (its IBAN already has a beneficiary) and one BOS
    // can never process (upstream failure, through the dead-letter queue)
    let poison = german_iban(9_203);
    let app = spawn_app_with(AppOptions::dead_lettering(poison.clone())).await;
    let csv = format!(
        "name,country,currency,iban,external_id\r\n\
         Ada,DE,EUR,{},ok-1\r\n\
         \"Turing, Alan\",GB,GBP,{},dup-2\r\n\
         Grace,DE,EUR,{poison},down-3\r\n",
        german_iban(9_201),
        bos_simulator::EXISTING_IBAN,
    );
    let id = app.post_csv(ALICE, &path(), None, &csv).await.body["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let task = app.wait_final(ALICE, &id).await;
    assert_eq!(task["status"], "completed_with_errors", "{task}");

    // When the operator downloads the errors as CSV
    let (status, report, next) = get_csv(&app, &format!("{}/{id}/errors.csv", path())).await;
    assert_eq!(status, 200);
    assert_eq!(next, None);
    // (the same file as `Accept: text/csv` on the JSON resource gives)
    let negotiated = get_csv(&app, &format!("{}/{id}/errors", path())).await;
    assert_eq!(negotiated, (200, report.clone(), None));
    let lines: Vec<&str> = report.trim_end().split("\r\n").collect();
    assert_eq!(
        lines,
        vec![
            "index,name,country,currency,iban,bic,email,external_id,field,code,message",
            &format!(
                "1,\"Turing, Alan\",GB,GBP,{},,,dup-2,iban,duplicate_beneficiary,A beneficiary with this IBAN already exists.",
                bos_simulator::EXISTING_IBAN
            ),
            &format!(
                "2,Grace,DE,EUR,{poison},,,down-3,,upstream_unavailable,The back office is unavailable."
            ),
        ]
    );

    // Then fixing the duplicate's IBAN and posting the file back as it is (the report's own
    // columns are ignored) creates both rows' beneficiaries once BOS is back
    let fixed = report.replace(bos_simulator::EXISTING_IBAN, &german_iban(9_202));
    app.bos.set_knobs(bos_simulator::Knobs::default());
    let again = app.post_csv(ALICE, &path(), None, &fixed).await;
    assert_eq!(again.status, 202, "{}", again.body);
    let second = again.body["task_id"].as_str().unwrap().to_owned();
    let task = app.wait_final(ALICE, &second).await;
    assert_eq!(task["status"], "completed", "{task}");
    let (_, result, _) = get_csv(&app, &format!("{}/{second}/result", path())).await;
    assert!(result.contains(",dup-2,succeeded,ben_"), "{result}");
    assert!(result.contains(",down-3,succeeded,ben_"), "{result}");
}

#[tokio::test]
async fn csv_results_page_through_link_headers() {
    let app = spawn_app().await;
    let rows: String = (0..5)
        .map(|i| format!("P{i},DE,EUR,{},r-{i}\r\n", german_iban(9_300 + i)))
        .collect();
    let csv = format!("name,country,currency,iban,external_id\r\n{rows}");
    let id = app.post_csv(ALICE, &path(), None, &csv).await.body["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_final(ALICE, &id).await;

    // Pages of two rows, each a whole CSV with its header, linked until the last
    let mut next = Some(format!("{}/{id}/result.csv?limit=2", path()));
    let mut pages = vec![];
    while let Some(url) = next {
        let (status, body, link) = get_csv(&app, &url).await;
        assert_eq!(status, 200);
        pages.push(body);
        next = link;
    }
    assert_eq!(pages.len(), 3);
    let ids: Vec<String> = pages
        .iter()
        .flat_map(|p| {
            let mut lines = p.trim_end().split("\r\n");
            assert!(lines
                .next()
                .unwrap()
                .starts_with("index,external_id,status,beneficiary_id"));
            lines
                .map(|l| l.split(',').nth(1).unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(ids, vec!["r-0", "r-1", "r-2", "r-3", "r-4"]);
}
