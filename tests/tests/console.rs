//! The console in a real browser: Debian's headless Chromium, driven over WebDriver
//! (chromedriver, both installed by scripts/test) against the local stack. A person signs in,
//! submits a CSV, watches the task finish live without a reload, reads its errors, downloads
//! them, and retries; another caller's task is "not found".
//!
//! With `CONSOLE_SCREENSHOTS=dir`, the test also saves a screenshot of each page there (the
//! ones in docs/console/ come from it).

use fantoccini::{Client, ClientBuilder, Locator};
use integration_tests::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A headless Chromium under chromedriver, gone when dropped.
struct Browser {
    client: Client,
    downloads: PathBuf,
    _driver: tokio::process::Child,
    _profile: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn browser() -> Browser {
    let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or("/usr/bin/chromedriver".into());
    let chromium = std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into());
    let port = free_port();
    let driver = tokio::process::Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{chromedriver}: {e}. scripts/test installs it (apt: chromium chromium-driver).")
        });
    let scratch = std::env::temp_dir().join(format!("console-test-{}", uuid::Uuid::new_v4()));
    let (profile, downloads) = (scratch.join("profile"), scratch.join("downloads"));
    std::fs::create_dir_all(&downloads).expect("scratch folders");
    // As this machine's notes say: without the background-networking flags Chromium keeps
    // trying to reach Google's hosts, which a closed network refuses.
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                     format!("--user-data-dir={}", profile.display())],
            "prefs": {"download.default_directory": downloads, "download.prompt_for_download": false},
        },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!("an object literal")
    };
    let url = format!("http://127.0.0.1:{port}");
    let mut tries = 0;
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&url)
            .await
        {
            Ok(client) => break client,
            // chromedriver takes a moment to listen.
            Err(e) if tries < 100 => {
                tries += 1;
                if tries == 100 {
                    panic!("no WebDriver session: {e}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no WebDriver session: {e}"),
        }
    };
    Browser {
        client,
        downloads,
        _driver: driver,
        _profile: scratch,
    }
}

impl Browser {
    /// Waits (bounded, so a missing element fails the test instead of hanging it) until the
    /// page's text in `css` satisfies `ok`; answers that text.
    async fn text_until(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let found = eventually(|| async {
            let element = self.client.find(Locator::Css(css)).await.ok()?;
            let text = element.text().await.ok()?;
            ok(&text).then_some(text)
        })
        .await;
        match found {
            Some(text) => text,
            None => {
                let last = match self.client.find(Locator::Css(css)).await {
                    Ok(e) => e.text().await.unwrap_or_default(),
                    Err(_) => "(not on the page)".into(),
                };
                panic!("{css} never became as expected; last text: {last}")
            }
        }
    }

    async fn click(&self, xpath: &str) {
        let element = self
            .client
            .wait()
            .at_most(POLL_BOUND)
            .for_element(Locator::XPath(xpath))
            .await
            .unwrap_or_else(|e| panic!("{xpath}: {e}"));
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("{xpath}: {e}"));
    }

    async fn hash(&self) -> String {
        let url = self.client.current_url().await.expect("url");
        url.fragment().unwrap_or_default().to_owned()
    }

    /// Submits `file` from the console's New task form (with `shot`, a screenshot of the
    /// filled form by that name), and waits for the new task's page to open: its task id.
    async fn submit_file(&self, file: &Path, shot: Option<&str>) -> String {
        self.click("//nav//a[normalize-space()='New task']").await;
        let input = self
            .client
            .wait()
            .at_most(POLL_BOUND)
            .for_element(Locator::Id("new-file"))
            .await
            .expect("the file input");
        input
            .send_keys(&file.display().to_string())
            .await
            .expect("a file chosen");
        if let Some(name) = shot {
            self.screenshot(name).await;
        }
        self.click("//form//button[normalize-space()='Submit']")
            .await;
        eventually(|| async {
            self.hash()
                .await
                .starts_with("/tasks/beneficiaries-import/")
                .then_some(())
        })
        .await
        .expect("the new task's page opens");
        self.hash().await.rsplit('/').next().unwrap().to_owned()
    }

    async fn screenshot(&self, name: &str) {
        let Ok(dir) = std::env::var("CONSOLE_SCREENSHOTS") else {
            return;
        };
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).expect("screenshot");
    }
}

/// `rows` as the CSV a person would export from a spreadsheet.
fn csv_of(rows: &Value) -> String {
    let mut csv = String::from("name,country,currency,iban,external_id\n");
    for r in rows.as_array().expect("rows") {
        let field = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
        csv.push_str(
            &[
                field("name"),
                field("country"),
                field("currency"),
                field("iban"),
                field("external_id"),
            ]
            .join(","),
        );
        csv.push('\n');
    }
    csv
}

#[tokio::test]
async fn a_person_imports_a_csv_watches_it_finish_live_and_retries_its_failures() {
    // Given a stack whose BOS is always unavailable for one IBAN (that item fails with a
    // cause a retry may fix), slow enough that progress is seen moving, and a task of bob's
    let rows = beneficiaries_from(500, 120);
    let failing = rows[7]["iban"].as_str().unwrap().to_owned();
    let mut options = AppOptions::dead_lettering(failing);
    options.knobs.latency_ms = 20;
    let app = spawn_app_with(options).await;
    let bobs = app.import(BOB, &beneficiaries_from(900, 2)).await;
    let bobs = bobs.body["task_id"].as_str().unwrap().to_owned();
    let file = std::env::temp_dir().join(format!("payees-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(&file, csv_of(&rows)).expect("the CSV file");
    let b = browser().await;

    // When alice opens the console and signs in with her development token
    b.client
        .goto(&format!("{}/console", app.base))
        .await
        .expect("the console loads");
    b.text_until("#sign-in-title", |t| t == "Sign in").await;
    b.screenshot("sign-in").await;
    b.click("//button[normalize-space()='Sign in as alice']")
        .await;
    b.text_until("#who-name", |t| t == "Signed in as alice")
        .await;

    // …and submits the CSV as a new import
    let task_id = b.submit_file(&file, Some("new-task")).await;

    // Then the task's page shows it running, live, and reaching 100 % without a reload
    b.client
        .execute("window.sameDocument = true; return null;", vec![])
        .await
        .expect("a marker in the page");
    b.text_until("#live-mode", |t| t.starts_with("Live") || t == "Finished.")
        .await;
    let done = b
        .text_until("#task-summary .progress-text", |t| t.ends_with("(100%)"))
        .await;
    assert_eq!(done, "120 of 120 items (100%)");
    b.text_until("#task-summary .status", |t| t == "completed with errors")
        .await;
    let summary = b.text_until("#task-summary", |_| true).await;
    assert!(
        !summary.contains("null") && !summary.contains("undefined"),
        "{summary}"
    );
    let same = b
        .client
        .execute("return window.sameDocument === true;", vec![])
        .await
        .expect("the marker read back");
    assert_eq!(same, json!(true), "the page was reloaded");
    // The progress text is announced to screen readers.
    let live = b
        .client
        .find(Locator::Css("#task-summary .progress-text"))
        .await
        .unwrap();
    assert_eq!(
        live.attr("aria-live").await.unwrap().as_deref(),
        Some("polite")
    );
    // Live frames came over a ticketed WebSocket, and no ticket or token reached a log.
    assert!(app
        .function_log("ws-authorizer")
        .contains("connection allowed"));
    let logs = app.function_logs();
    assert!(!logs.contains("dev-token-alice"));

    // …its errors table names the failed item
    let errors = b
        .text_until("#view table", |t| t.contains("upstream_unavailable"))
        .await;
    assert!(errors.contains("ext-7"), "{errors}");
    b.screenshot("task").await;

    // …the errors download is the CSV the API serves
    b.click("//button[normalize-space()='Download errors (CSV)']")
        .await;
    let downloaded = eventually(|| async {
        let entry = std::fs::read_dir(&b.downloads)
            .ok()?
            .flatten()
            .find(|e| e.path().extension().is_some_and(|x| x == "csv"))?;
        std::fs::read_to_string(entry.path()).ok()
    })
    .await
    .expect("the errors CSV is downloaded");
    assert!(downloaded.starts_with("index,name,"), "{downloaded}");
    assert_eq!(downloaded.lines().count(), 2, "{downloaded}");
    assert!(downloaded.contains("ext-7") && downloaded.contains("upstream_unavailable"));

    // …and "retry failed items", once confirmed, opens the new task that retries it
    b.click("//button[normalize-space()='Retry failed items']")
        .await;
    b.client.accept_alert().await.expect("the confirmation");
    eventually(|| async {
        let hash = b.hash().await;
        (hash.starts_with("/tasks/") && !hash.ends_with(&task_id)).then_some(())
    })
    .await
    .expect("the retry's page opens");
    let retry_id = b.hash().await.rsplit('/').next().unwrap().to_owned();
    b.text_until("#task-summary", |t| {
        t.contains(&format!("Retries {task_id}"))
    })
    .await;
    let retry = app
        .get(ALICE, &format!("/tasks/beneficiaries-import/{retry_id}"))
        .await;
    assert_eq!(retry.body["retry_of"], task_id.as_str());

    // Bob's task, opened by alice, is "not found", as an unknown one is.
    b.client
        .goto(&format!(
            "{}/console#/tasks/beneficiaries-import/{bobs}",
            app.base
        ))
        .await
        .expect("navigates");
    let alert = b
        .text_until("#alert", |t| t.contains("task_not_found"))
        .await;
    assert!(alert.starts_with("Task not found."), "{alert}");

    // The list shows alice's two tasks, newest first.
    b.click("//nav//a[normalize-space()='Tasks']").await;
    let list = b
        .text_until("#view table", |t| {
            t.contains(&retry_id) && t.contains(&task_id)
        })
        .await;
    assert!(list.find(&retry_id) < list.find(&task_id), "{list}");
    assert!(!list.contains(&bobs));
    b.screenshot("tasks").await;
    b.click("//nav//a[normalize-space()='Webhooks']").await;
    b.text_until("#view table", |t| t.contains("No endpoints yet."))
        .await;
    b.screenshot("webhooks").await;
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn a_file_over_the_inline_limit_goes_through_an_upload_session() {
    // Given a stack whose inline limit (MAX_BODY_BYTES) is below the file's size
    let rows = beneficiaries_from(700, 40);
    let csv = csv_of(&rows);
    let app = spawn_app_with(AppOptions {
        extra_env: vec![("MAX_BODY_BYTES", "1000".into())],
        ..AppOptions::default()
    })
    .await;
    assert!(csv.len() > 1000);
    let file = std::env::temp_dir().join(format!("payees-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(&file, &csv).expect("the CSV file");
    let b = browser().await;

    // When bob submits it from the console
    b.client
        .goto(&format!("{}/console#/new", app.base))
        .await
        .expect("the console loads");
    b.click("//button[normalize-space()='Sign in as bob']")
        .await;
    let task_id = b.submit_file(&file, None).await;

    // Then the browser hashed and PUT the file to storage, closed the session, and the task
    // ran to the end: one made from a file, which an inline POST could not have made
    let done = b
        .text_until("#task-summary .progress-text", |t| t.ends_with("(100%)"))
        .await;
    assert_eq!(done, "40 of 40 items (100%)");
    let task = app
        .get(BOB, &format!("/tasks/beneficiaries-import/{task_id}"))
        .await;
    assert_eq!(task.body["status"], "completed", "{}", task.body);
    assert_eq!(task.body["file"]["rows_valid"], 40, "{}", task.body);
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn the_console_ships_with_a_strict_policy_and_needs_no_credentials() {
    let app = spawn_app().await;
    for path in [
        "/console",
        "/console/app.js",
        "/console/style.css",
        "/console/icon.svg",
        "/console/config.json",
    ] {
        let response = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("served");
        assert_eq!(response.status(), 200, "{path}");
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap();
        assert!(
            csp.contains("script-src 'self';") && !csp.contains("unsafe"),
            "{csp}"
        );
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
    // The page learns where live progress is, and the local development tokens.
    let config: Value = app
        .http
        .get(format!("{}/console/config.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(config["live_url"]
        .as_str()
        .unwrap()
        .starts_with("ws://127.0.0.1:"));
    assert!(config["dev_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["token"] == ALICE && t["subject"] == "alice"));
    // Everything else still needs credentials.
    let anonymous = app
        .send(
            app.http
                .get(format!("{}/tasks/beneficiaries-import", app.base)),
        )
        .await;
    assert_eq!(anonymous.status, 401);
}
