//! Keeps `docs/openapi.yaml` true to the code: the same routes as `template.yaml`, the task
//! types of the registry, and every error code the API can answer with.

use serde_norway::Value;
use std::collections::BTreeSet;
use tasks_core::error::{AppError, ErrorDetail};
use tasks_core::task_types::REGISTRY;

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
fn task_types_match_the_registry() {
    let openapi = yaml("docs/openapi.yaml");
    let enum_of = |v: &Value| -> BTreeSet<String> {
        v["enum"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    let registered: BTreeSet<String> = REGISTRY.iter().map(|k| k.slug().to_owned()).collect();
    assert_eq!(
        enum_of(&openapi["components"]["parameters"]["TaskType"]["schema"]),
        registered
    );
    assert_eq!(
        enum_of(&openapi["components"]["schemas"]["Task"]["properties"]["task_type"]),
        registered
    );
}

/// One of each error; the `match` has no wildcard, so a new variant fails to compile here
/// until it is listed (and documented).
fn every_error() -> Vec<AppError> {
    let d = || ErrorDetail {
        index: None,
        external_id: None,
        field: None,
        code: "c".into(),
        message: "m".into(),
    };
    let all = vec![
        AppError::Unauthenticated,
        AppError::MalformedJson(String::new()),
        AppError::DuplicateJsonKey,
        AppError::InvalidBody(""),
        AppError::UnsupportedMediaType,
        AppError::BodyTooLarge { max_bytes: 1 },
        AppError::TooManyItems { max: 1 },
        AppError::EmptyBatch,
        AppError::ValidationFailed(vec![]),
        AppError::InvalidQuery(""),
        AppError::InvalidPageToken,
        AppError::UnknownTaskType,
        AppError::TaskNotFound,
        AppError::TaskAlreadyFinal,
        AppError::InvalidIdempotencyKey,
        AppError::IdempotencyKeyReused,
        AppError::IdempotencyInProgress,
        AppError::RouteNotFound,
        AppError::MethodNotAllowed,
        AppError::Duplicate(d()),
        AppError::Rejected(d()),
        AppError::UpstreamUnavailable,
        AppError::UpstreamTimeout,
        AppError::UpstreamBadResponse,
        AppError::QueueUnavailable,
        AppError::Internal(String::new()),
    ];
    for e in &all {
        match e {
            AppError::Unauthenticated
            | AppError::MalformedJson(_)
            | AppError::DuplicateJsonKey
            | AppError::InvalidBody(_)
            | AppError::UnsupportedMediaType
            | AppError::BodyTooLarge { .. }
            | AppError::TooManyItems { .. }
            | AppError::EmptyBatch
            | AppError::ValidationFailed(_)
            | AppError::InvalidQuery(_)
            | AppError::InvalidPageToken
            | AppError::UnknownTaskType
            | AppError::TaskNotFound
            | AppError::TaskAlreadyFinal
            | AppError::InvalidIdempotencyKey
            | AppError::IdempotencyKeyReused
            | AppError::IdempotencyInProgress
            | AppError::RouteNotFound
            | AppError::MethodNotAllowed
            | AppError::Duplicate(_)
            | AppError::Rejected(_)
            | AppError::UpstreamUnavailable
            | AppError::UpstreamTimeout
            | AppError::UpstreamBadResponse
            | AppError::QueueUnavailable
            | AppError::Internal(_) => {}
        }
    }
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
