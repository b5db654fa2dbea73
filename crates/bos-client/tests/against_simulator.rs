//! The BOS client against the BOS simulator over real HTTP: classification, retries,
//! time-outs, `Retry-After`, deadlines, and idempotency keys keeping creations at one.

use bos_client::BosFault;
use bos_client::{BosClient, BosConfig};
use bos_simulator::{Knobs, Simulator, EXISTING_IBAN};
use serde_json::json;
use std::time::{Duration, Instant};
use tasks_core::beneficiary::Beneficiary;
use tasks_core::ports::BeneficiaryBackend;
use tasks_core::trace::{self, Trace};
use tasks_core::upstream::{BackendError, RejectionKind};

async fn start(knobs: Knobs) -> (Simulator, BosClient) {
    let sim = Simulator::new(knobs, &[EXISTING_IBAN]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sim.clone().serve(listener));
    let mut config = BosConfig::new(url);
    config.request_timeout = Duration::from_millis(300);
    config.min_backoff = Duration::from_millis(5);
    config.max_backoff = Duration::from_millis(20);
    config.max_attempts = 3;
    (sim, BosClient::new(config).unwrap())
}

fn beneficiary(iban: &str) -> Beneficiary {
    Beneficiary::parse(&json!({"name": "N", "country": "GB", "currency": "GBP", "iban": iban}))
        .unwrap()
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

#[tokio::test]
async fn transient_failures_are_retried_up_to_the_attempt_limit() {
    let (sim, client) = start(Knobs {
        failure_rate: 1.0,
        failure_statuses: vec![500, 503],
        ..Knobs::default()
    })
    .await;
    let err = client
        .create(&beneficiary("GB82WEST12345698765432"), "k1", soon())
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Unavailable(_)), "{err:?}");
    assert_eq!(sim.stats().requests, 3);

    sim.set_knobs(Knobs::default());
    client
        .create(&beneficiary("GB82WEST12345698765432"), "k1", soon())
        .await
        .unwrap();
    assert_eq!(sim.stats().creations, 1);
}

#[tokio::test]
async fn a_lost_answer_is_replayed_not_created_again() {
    let (sim, client) = start(Knobs {
        lost_response_rate: 1.0,
        ..Knobs::default()
    })
    .await;
    let created = client
        .create(&beneficiary("GB82WEST12345698765432"), "k1", soon())
        .await
        .unwrap();
    assert!(created.id.starts_with("ben_"));
    let stats = sim.stats();
    assert_eq!(
        (stats.creations, stats.lost_responses, stats.replays),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn a_hang_times_out_and_retries_find_the_first_answer() {
    let (sim, client) = start(Knobs {
        hang_rate: 1.0,
        hang_ms: 2_000,
        ..Knobs::default()
    })
    .await;
    let err = client
        .create(&beneficiary("GB82WEST12345698765432"), "k1", soon())
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Timeout), "{err:?}");
    let stats = sim.stats();
    assert_eq!((stats.requests, stats.creations, stats.replays), (3, 1, 2));
}

#[tokio::test]
async fn business_rejections_are_permanent_and_not_retried() {
    let (sim, client) = start(Knobs::default()).await;
    let err = client
        .create(&beneficiary(EXISTING_IBAN), "k1", soon())
        .await
        .unwrap_err();
    let BackendError::Rejected(r) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (r.kind, r.code.as_str(), r.field.as_deref()),
        (
            RejectionKind::Duplicate,
            "duplicate_beneficiary",
            Some("iban")
        )
    );
    let b =
        json!({"name": "N", "country": "US", "currency": "MXN", "iban": "GB82WEST12345698765432"});
    let err = client
        .create(&Beneficiary::parse(&b).unwrap(), "k2", soon())
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackendError::Rejected(ref r) if r.kind == RejectionKind::Invalid && r.code == "unsupported_currency")
    );
    assert_eq!(sim.stats().requests, 2);
}

#[tokio::test]
async fn no_retry_waits_past_the_deadline() {
    // BOS asks to come back in 5 s; the caller has 1 s: one attempt, no wait.
    let (sim, client) = start(Knobs {
        failure_rate: 1.0,
        failure_statuses: vec![429],
        retry_after_secs: 5,
        ..Knobs::default()
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(1);
    let err = client
        .create(&beneficiary("GB82WEST12345698765432"), "k1", deadline)
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Unavailable(_)));
    assert_eq!(sim.stats().requests, 1);

    // A deadline already past makes no call at all.
    let err = client
        .create(&beneficiary("GB82WEST12345698765432"), "k2", Instant::now())
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Timeout), "{err:?}");
    assert_eq!(sim.stats().requests, 1);
}

#[tokio::test]
async fn validate_creates_nothing() {
    let (sim, client) = start(Knobs::default()).await;
    client
        .validate(&beneficiary("GB82WEST12345698765432"), "v1", soon())
        .await
        .unwrap();
    let err = client
        .validate(&beneficiary(EXISTING_IBAN), "v2", soon())
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Rejected(_)));
    let stats = sim.stats();
    assert_eq!((stats.creations, stats.validations), (0, 2));
}

#[tokio::test]
async fn the_simulator_reports_the_most_calls_it_had_at_once() {
    // Given a BOS at 100 ms a call
    let (sim, client) = start(Knobs {
        latency_ms: 100,
        ..Knobs::default()
    })
    .await;
    let b = beneficiary("GB82WEST12345698765432");
    let keys: Vec<String> = (0..5).map(|i| format!("peak-{i}")).collect();

    // When five calls run at once
    let calls = keys.iter().map(|k| client.validate(&b, k, soon()));
    for r in futures::future::join_all(calls).await {
        r.unwrap();
    }

    // Then it saw five at once, and none is left in progress
    let stats = sim.stats();
    assert_eq!((stats.peak_concurrency, stats.in_flight), (5, 0));
}

/// Each way an upstream can answer "success" without having done the work is an upstream
/// error, never a success; a validation fails closed.
#[tokio::test]
async fn untrustworthy_success_answers_are_upstream_errors() {
    use bos_simulator::Misbehaviour;
    let b = beneficiary("GB82WEST12345698765432");
    for (misbehave, what) in [
        (Misbehaviour::Redirect, "a redirect to a 200 page"),
        (
            Misbehaviour::OtherBeneficiary,
            "another person's beneficiary",
        ),
        (Misbehaviour::NotJson, "an HTML page"),
        (Misbehaviour::HugeAnswer, "a 20 MB answer"),
    ] {
        let (sim, client) = start(Knobs {
            misbehave,
            ..Knobs::default()
        })
        .await;
        let created = client.create(&b, "k-distrust", soon()).await;
        assert!(
            matches!(created, Err(BackendError::BadResponse(_))),
            "create after {what}: {created:?}"
        );
        let validated = client.validate(&b, "k-distrust-v", soon()).await;
        if misbehave == Misbehaviour::HugeAnswer {
            // `{"valid": true}` padded to 20 MB: refused for its size, never decoded.
            assert!(
                matches!(validated, Err(BackendError::BadResponse(ref c)) if matches!(c.downcast_ref(), Some(BosFault::TooLarge)))
            );
        } else {
            assert!(
                matches!(validated, Err(BackendError::BadResponse(_))),
                "validate after {what}: {validated:?}"
            );
        }
        assert_eq!(sim.stats().creations, 0, "{what}");
    }
}

#[tokio::test]
async fn every_attempt_carries_the_current_trace_as_a_span_of_its_own() {
    // Given a BOS that fails the first two attempts
    let (sim, client) = start(Knobs {
        failure_rate: 1.0,
        failure_statuses: vec![503],
        ..Knobs::default()
    })
    .await;
    let trace = Trace::new_root();
    let _ = trace::within(
        Some(trace.clone()),
        client.create(&beneficiary("GB82WEST12345698765432"), "k1", soon()),
    )
    .await;

    // Then each of the three attempts names the trace, in both formats, with a span id of its
    // own (the parent BOS's spans hang from)
    let calls = sim.calls();
    assert_eq!(calls.len(), 3);
    let w3c_id = trace.trace_id().trim_start_matches("1-").replace('-', "");
    let mut spans = std::collections::HashSet::new();
    for call in &calls {
        let parent = call.traceparent.as_deref().expect("traceparent");
        assert!(parent.starts_with(&format!("00-{w3c_id}-")), "{parent}");
        assert!(parent.ends_with("-01"), "sampled: {parent}");
        let xray = Trace::from_xray_header(call.xray.as_deref().expect("X-Amzn-Trace-Id"));
        assert_eq!(xray.map(|t| t.trace_id()), Some(trace.trace_id()));
        spans.insert(parent.to_owned());
    }
    assert_eq!(spans.len(), 3);

    // And work outside any trace sends no trace headers (none are made up)
    sim.set_knobs(Knobs::default());
    client
        .validate(&beneficiary("GB82WEST12345698765432"), "v1", soon())
        .await
        .unwrap();
    let last = sim.calls().pop().unwrap();
    assert_eq!((last.traceparent, last.xray), (None, None));
}
