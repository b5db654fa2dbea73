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
