//! Keeps `docs/openapi.yaml` true to the code: the same routes as `template.yaml`, every task
//! type, and every error code the API can answer with.

use api::error::ApiError;
use serde_norway::Value;
use std::collections::BTreeSet;
use tasks_core::error::AppError;
use tasks_core::ports::StoreError;
use tasks_core::strict_json;
use tasks_core::task::TaskType;
use tasks_core::upstream::{BackendError, Rejection, RejectionKind, UpstreamCause, UpstreamStatus};

fn yaml(name: &str) -> Value {
    let path = format!("{}/../../{name}", env!("CARGO_MANIFEST_DIR"));
    serde_norway::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")),
    )
    .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn routes_match_the_sam_template() {
    let openapi = yaml("docs/openapi.yaml");
    let mut documented = BTreeSet::new();
    for (path, item) in openapi["paths"].as_mapping().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.insert((method.to_uppercase(), path.as_str().unwrap().to_owned()));
            }
        }
    }
    let template = yaml("template.yaml");
    let mut deployed = BTreeSet::new();
    for (_, resource) in template["Resources"].as_mapping().unwrap() {
        for (_, event) in resource["Properties"]["Events"]
            .as_mapping()
            .into_iter()
            .flatten()
        {
            if event["Type"].as_str() == Some("HttpApi") {
                let p = &event["Properties"];
                deployed.insert((
                    p["Method"].as_str().unwrap().to_uppercase(),
                    p["Path"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    assert_eq!(documented, deployed);
}

#[test]
fn task_types_match_the_enum() {
    let openapi = yaml("docs/openapi.yaml");
    let enum_of = |v: &Value| -> BTreeSet<String> {
        v["enum"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    let registered: BTreeSet<String> = TaskType::ALL.iter().map(|t| t.slug().to_owned()).collect();
    assert_eq!(
        enum_of(&openapi["components"]["parameters"]["TaskType"]["schema"]),
        registered
    );
    assert_eq!(
        enum_of(&openapi["components"]["schemas"]["Task"]["properties"]["task_type"]),
        registered
    );
}

/// One of each error; the `match`es have no wildcard, so a new variant fails to compile here
/// until it is listed (and documented).
fn every_error() -> Vec<ApiError> {
    let rejection = |kind| {
        BackendError::Rejected(Rejection {
            kind,
            code: "c".into(),
            message: "m".into(),
            field: None,
        })
    };
    let malformed = strict_json::parse(b"{").unwrap_err();
    let app = vec![
        AppError::from(malformed),
        AppError::DuplicateJsonKey,
        AppError::MalformedCsv { line: 1 },
        AppError::InvalidCsvEncoding { line: 1 },
        AppError::InvalidCsvHeader(vec![]),
        AppError::InvalidBody(""),
        AppError::BodyTooLarge { max_bytes: 1 },
        AppError::TooManyItems { max: 1 },
        AppError::EmptyBatch,
        AppError::ValidationFailed(vec![]),
        AppError::InvalidQuery(""),
        AppError::InvalidPageToken,
        AppError::UnknownTaskType,
        AppError::TaskNotFound,
        AppError::TaskAlreadyFinal,
        AppError::TaskNotFinal,
        AppError::TaskAlreadyRetried,
        AppError::NothingToRetry,
        AppError::InvalidIdempotencyKey,
        AppError::IdempotencyKeyReused,
        AppError::IdempotencyInProgress,
        AppError::Backend(rejection(RejectionKind::Duplicate)),
        AppError::Backend(rejection(RejectionKind::Invalid)),
        AppError::Backend(BackendError::unavailable_status(503)),
        AppError::Backend(BackendError::Timeout),
        AppError::Backend(BackendError::BadResponse(UpstreamCause::new(
            UpstreamStatus(302),
        ))),
        AppError::WebhookEndpointNotFound,
        AppError::TooManyWebhookEndpoints { max: 1 },
        AppError::WebhookDeliveryNotFound,
        AppError::WebhookDeliveryInProgress,
        AppError::LineTooLong {
            line: 2,
            max_bytes: 1,
        },
        AppError::UploadNotReceived,
        AppError::UploadMismatch("its length"),
        AppError::TaskNotAwaitingUpload,
        AppError::QueueUnavailable,
        AppError::Store(StoreError::permanent("x")),
    ];
    for e in &app {
        match e {
            AppError::MalformedJson(_)
            | AppError::DuplicateJsonKey
            | AppError::MalformedCsv { .. }
            | AppError::InvalidCsvEncoding { .. }
            | AppError::InvalidCsvHeader(_)
            | AppError::InvalidBody(_)
            | AppError::BodyTooLarge { .. }
            | AppError::TooManyItems { .. }
            | AppError::EmptyBatch
            | AppError::ValidationFailed(_)
            | AppError::InvalidQuery(_)
            | AppError::InvalidPageToken
            | AppError::UnknownTaskType
            | AppError::TaskNotFound
            | AppError::TaskAlreadyFinal
            | AppError::TaskNotFinal
            | AppError::TaskAlreadyRetried
            | AppError::NothingToRetry
            | AppError::InvalidIdempotencyKey
            | AppError::IdempotencyKeyReused
            | AppError::IdempotencyInProgress
            | AppError::Backend(
                BackendError::Rejected(_)
                | BackendError::Unavailable(_)
                | BackendError::Timeout
                | BackendError::BadResponse(_),
            )
            | AppError::WebhookEndpointNotFound
            | AppError::TooManyWebhookEndpoints { .. }
            | AppError::WebhookDeliveryNotFound
            | AppError::WebhookDeliveryInProgress
            | AppError::LineTooLong { .. }
            | AppError::UploadNotReceived
            | AppError::UploadMismatch(_)
            | AppError::TaskNotAwaitingUpload
            | AppError::QueueUnavailable
            | AppError::Store(_) => {}
        }
    }
    let mut all = vec![
        ApiError::Unauthenticated,
        ApiError::RouteNotFound,
        ApiError::MethodNotAllowed,
        ApiError::UnsupportedMediaType,
    ];
    for e in &all {
        match e {
            ApiError::Unauthenticated
            | ApiError::RouteNotFound
            | ApiError::MethodNotAllowed
            | ApiError::UnsupportedMediaType
            | ApiError::App(_) => {}
        }
    }
    all.extend(app.into_iter().map(ApiError::App));
    all
}

#[test]
fn every_error_code_is_documented() {
    let openapi = yaml("docs/openapi.yaml");
    let documented: BTreeSet<String> = openapi["components"]["schemas"]["Error"]["properties"]
        ["error"]["properties"]["code"]["enum"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    let codes: BTreeSet<String> = every_error().iter().map(|e| e.code().to_owned()).collect();
    assert_eq!(codes, documented);
}
