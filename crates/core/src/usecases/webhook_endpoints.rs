//! `/webhook-endpoints`: register, list, read, delete an endpoint and rotate its secret. An
//! endpoint belongs to the caller who registered it; another caller's is "not found". Its URL
//! is checked against the SSRF rules (`webhook_url`) here, and again before each delivery.

use crate::error::AppError;
use crate::error_body::ErrorDetail;
use crate::identity::Owner;
use crate::paging::PageTokens;
use crate::ports::{StoreError, WebhookStore};
use crate::usecases::read_task::PageSize;
use crate::webhook::{
    EndpointId, EndpointView, EventType, WebhookEndpoint, MAX_DESCRIPTION_CHARS,
    MAX_ENDPOINTS_PER_OWNER,
};
use crate::webhook_url::{resolve, TargetPolicy, WebhookUrl};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

/// Page sizes of the endpoint listing.
pub const ENDPOINT_PAGE: PageSize = PageSize {
    default: 20,
    max: 100,
};

/// What `POST /webhook-endpoints` asks for, once valid.
#[derive(Debug)]
pub struct EndpointRequest {
    pub url: WebhookUrl,
    pub event_types: Vec<EventType>,
    pub description: Option<String>,
}

/// Parses a registration body: `{"url", "event_types"?, "description"?}`, nothing else. Every
/// problem is a detail of one 422, as for beneficiaries.
pub fn parse_request(body: &[u8], policy: TargetPolicy) -> Result<EndpointRequest, AppError> {
    let value = crate::strict_json::parse(body)?;
    let Value::Object(fields) = value else {
        return Err(AppError::InvalidBody("a JSON object"));
    };
    let mut details = Vec::new();
    for key in fields.keys() {
        if !["url", "event_types", "description"].contains(&key.as_str()) {
            details.push(ErrorDetail::field(
                key.as_str(),
                "unknown_field",
                "This field is not accepted.",
            ));
        }
    }
    let url = match fields.get("url") {
        Some(Value::String(raw)) => match WebhookUrl::parse(raw, policy) {
            Ok(url) => Some(url),
            Err(refusal) => {
                details.push(ErrorDetail::field(
                    "url",
                    refusal.code(),
                    sentence(&refusal),
                ));
                None
            }
        },
        Some(_) => {
            details.push(ErrorDetail::field(
                "url",
                "invalid_type",
                "Must be a string.",
            ));
            None
        }
        None => {
            details.push(ErrorDetail::field(
                "url",
                "required",
                "This field is required.",
            ));
            None
        }
    };
    let event_types = match fields.get("event_types") {
        None => EventType::ALL.to_vec(),
        Some(Value::Array(names)) if !names.is_empty() => {
            let mut types: Vec<EventType> = Vec::new();
            for name in names {
                match name.as_str().and_then(EventType::parse) {
                    Some(t) if !types.contains(&t) => types.push(t),
                    Some(_) => {}
                    None => details.push(ErrorDetail::field(
                        "event_types",
                        "unknown_event_type",
                        "Event types are task.completed, task.completed_with_errors, task.failed and task.cancelled.",
                    )),
                }
            }
            types.sort();
            types
        }
        Some(_) => {
            details.push(ErrorDetail::field(
                "event_types",
                "invalid_type",
                "Must be a non-empty array of event types.",
            ));
            vec![]
        }
    };
    let description = match fields.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(d))
            if d.chars().count() <= MAX_DESCRIPTION_CHARS && !d.chars().any(char::is_control) =>
        {
            Some(d.clone())
        }
        Some(_) => {
            details.push(ErrorDetail::field(
                "description",
                "invalid_description",
                "Must be a string of at most 256 characters, without control characters.",
            ));
            None
        }
    };
    match url {
        Some(url) if details.is_empty() => Ok(EndpointRequest {
            url,
            event_types,
            description,
        }),
        _ => Err(AppError::ValidationFailed(details)),
    }
}

fn sentence(e: &impl std::fmt::Display) -> String {
    crate::error::sentence(&e.to_string())
}

/// Registers an endpoint for `owner`, after resolving its host and checking every address.
pub async fn create(
    store: &dyn WebhookStore,
    policy: TargetPolicy,
    owner: &Owner,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<WebhookEndpoint, AppError> {
    let request = parse_request(body, policy)?;
    if let Err(refusal) = resolve(&request.url, policy).await {
        let detail = ErrorDetail::field("url", refusal.code(), sentence(&refusal));
        return Err(AppError::ValidationFailed(vec![detail]));
    }
    // A soft cap: two registrations racing may both pass, which is harmless.
    let (existing, _) = store
        .list_endpoints(owner, None, MAX_ENDPOINTS_PER_OWNER)
        .await?;
    if existing.len() >= MAX_ENDPOINTS_PER_OWNER {
        return Err(AppError::TooManyWebhookEndpoints {
            max: MAX_ENDPOINTS_PER_OWNER,
        });
    }
    let endpoint = WebhookEndpoint::new(
        owner.clone(),
        request.url,
        request.event_types,
        request.description,
        now,
    );
    store.insert_endpoint(&endpoint).await?;
    tracing::info!(endpoint_id = %endpoint.id, "webhook endpoint registered");
    Ok(endpoint)
}

/// The caller's endpoint; another caller's, or none, is "not found".
pub async fn get(
    store: &dyn WebhookStore,
    owner: &Owner,
    id: EndpointId,
) -> Result<WebhookEndpoint, AppError> {
    match store.get_endpoint(id).await? {
        Some(e) if &e.owner == owner => Ok(e),
        _ => Err(AppError::WebhookEndpointNotFound),
    }
}

#[derive(Debug, Serialize)]
pub struct EndpointPage {
    pub webhook_endpoints: Vec<EndpointView>,
    pub next_page_token: Option<String>,
}

pub async fn list(
    store: &dyn WebhookStore,
    tokens: &PageTokens,
    owner: &Owner,
    page_token: Option<&str>,
    limit: usize,
) -> Result<EndpointPage, AppError> {
    // Bound to the caller: another caller's token fails its MAC.
    let scope = format!("webhook-endpoints|{}", owner.as_str());
    let read = |after: Option<String>| async move {
        Ok::<_, AppError>(store.list_endpoints(owner, after.as_deref(), limit).await?)
    };
    let (endpoints, next_page_token) = tokens
        .page(&scope, page_token, read, WebhookEndpoint::list_position)
        .await?;
    Ok(EndpointPage {
        webhook_endpoints: endpoints.iter().map(WebhookEndpoint::view).collect(),
        next_page_token,
    })
}

/// `{"id", "deleted": true}`, as the answer to a delete.
#[derive(Debug, Serialize)]
pub struct Deleted {
    pub id: EndpointId,
    pub deleted: bool,
}

pub async fn delete(
    store: &dyn WebhookStore,
    owner: &Owner,
    id: EndpointId,
) -> Result<Deleted, AppError> {
    get(store, owner, id).await?;
    store.delete_endpoint(id).await?;
    tracing::info!(endpoint_id = %id, "webhook endpoint deleted");
    Ok(Deleted { id, deleted: true })
}

/// A new secret; the old one keeps signing for a day (`webhook::ROTATION_OVERLAP`).
pub async fn rotate_secret(
    store: &dyn WebhookStore,
    owner: &Owner,
    id: EndpointId,
    now: OffsetDateTime,
) -> Result<WebhookEndpoint, AppError> {
    // Two rotations racing: the loser reads again and rotates what the winner wrote.
    for _ in 0..3 {
        let mut endpoint = get(store, owner, id).await?;
        let seen = endpoint.updated_at;
        endpoint.rotate(now.max(seen + std::time::Duration::from_micros(1)));
        if store.replace_endpoint(&endpoint, seen).await? {
            tracing::info!(endpoint_id = %id, "webhook secret rotated");
            return Ok(endpoint);
        }
    }
    Err(StoreError::transient("the endpoint kept changing while its secret was rotated").into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;

    fn alice() -> Owner {
        Owner::from_subject("alice").unwrap()
    }

    /// The (field, code) of each detail of a 422.
    type Codes = Vec<(Option<String>, String)>;

    fn codes(result: Result<EndpointRequest, AppError>) -> Codes {
        match result {
            Err(AppError::ValidationFailed(d)) => {
                d.into_iter().map(|d| (d.field, d.code)).collect()
            }
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn registration_bodies() {
        let local = TargetPolicy::local();
        let ok = parse_request(br#"{"url": "http://127.0.0.1:9/x"}"#, local).unwrap();
        assert_eq!(
            ok.event_types,
            EventType::ALL.to_vec(),
            "all events by default"
        );
        let some = parse_request(
            br#"{"url": "https://h.example/x", "event_types": ["task.failed", "task.failed"], "description": "ops"}"#,
            local,
        )
        .unwrap();
        assert_eq!(some.event_types, vec![EventType::TaskFailed]);
        let f = |s: &str| Some(s.to_owned());
        let cases: [(&[u8], Codes); 5] = [
            (br#"{}"#, vec![(f("url"), "required".into())]),
            (
                br#"{"url": "ftp://x"}"#,
                vec![(f("url"), "url_not_https".into())],
            ),
            (
                br#"{"url": "https://h.example", "x": 1}"#,
                vec![(f("x"), "unknown_field".into())],
            ),
            (
                br#"{"url": "https://h.example", "event_types": ["task.done"]}"#,
                vec![(f("event_types"), "unknown_event_type".into())],
            ),
            (
                br#"{"url": "https://h.example", "event_types": []}"#,
                vec![(f("event_types"), "invalid_type".into())],
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(
                codes(parse_request(body, local)),
                expected,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[tokio::test]
    async fn endpoints_belong_to_their_owner_and_rotate() {
        let store = MemoryStore::default();
        let now = OffsetDateTime::now_utc();
        let body = br#"{"url": "http://127.0.0.1:9/hook"}"#;
        let e = create(&store, TargetPolicy::local(), &alice(), body, now)
            .await
            .unwrap();
        let bob = Owner::from_subject("bob").unwrap();
        assert!(matches!(
            get(&store, &bob, e.id).await,
            Err(AppError::WebhookEndpointNotFound)
        ));
        assert!(matches!(
            delete(&store, &bob, e.id).await,
            Err(AppError::WebhookEndpointNotFound)
        ));
        let rotated = rotate_secret(&store, &alice(), e.id, now).await.unwrap();
        assert_ne!(rotated.secrets[0].secret, e.secrets[0].secret);
        assert_eq!(rotated.signing_secrets(now).len(), 2);
        delete(&store, &alice(), e.id).await.unwrap();
        assert!(matches!(
            get(&store, &alice(), e.id).await,
            Err(AppError::WebhookEndpointNotFound)
        ));
    }

    #[tokio::test]
    async fn the_metadata_address_is_refused_at_registration() {
        let store = MemoryStore::default();
        let body = br#"{"url": "http://169.254.169.254/latest/meta-data"}"#;
        let err = create(
            &store,
            TargetPolicy::local(),
            &alice(),
            body,
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap_err();
        assert_eq!(
            codes(Err(err)),
            vec![(Some("url".into()), "forbidden_address".into())]
        );
    }
}
