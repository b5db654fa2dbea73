//! Plays API Gateway (HTTP API, payload format 2.0, JWT authorizer) in front of the api
//! function: only the template's routes are served; the bearer token must be one of the
//! configured development tokens (401 otherwise, before any function runs); the token's
//! subject goes into `requestContext.authorizer.jwt.claims`, as the JWT authorizer does; the
//! function's answer becomes the HTTP response.

use crate::function::{FunctionPool, InvokeError};
use crate::template::HttpRoute;
use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext,
    ApiGatewayV2httpRequestContextHttpDescription,
};
use aws_lambda_events::query_map::QueryMap;
use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use time::OffsetDateTime;

/// API Gateway's own payload limit for HTTP APIs.
const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;
/// Lambda's limit on a synchronous invocation's event.
const MAX_INVOKE_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

pub struct Gateway {
    pub api: Arc<FunctionPool>,
    pub routes: Vec<HttpRoute>,
    /// Development bearer token → subject.
    pub tokens: HashMap<String, String>,
    /// Extra documents served as they are (path → (content type, body)), e.g. the OpenAPI file.
    pub static_files: HashMap<String, (String, Vec<u8>)>,
}

pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new().fallback(handle).with_state(gateway)
}

fn plain(status: StatusCode, message: &str) -> Response<Body> {
    let mut res = Response::new(Body::from(json!({ "message": message }).to_string()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    res
}

/// Matches a request path against a route template such as `/tasks/{task_type}/{task_id}`.
fn match_route<'a>(
    routes: &'a [HttpRoute],
    method: &str,
    path: &str,
) -> Option<(&'a HttpRoute, HashMap<String, String>)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    routes.iter().filter(|r| r.method == method).find_map(|r| {
        let pattern: Vec<&str> = r.path.trim_matches('/').split('/').collect();
        if pattern.len() != segments.len() {
            return None;
        }
        let mut params = HashMap::new();
        for (p, s) in pattern.iter().zip(&segments) {
            if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if s.is_empty() {
                    return None;
                }
                params.insert(name.to_owned(), (*s).to_owned());
            } else if p != s {
                return None;
            }
        }
        Some((r, params))
    })
}

fn subject(gateway: &Gateway, headers: &HeaderMap) -> Option<String> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))?
        .trim();
    gateway.tokens.get(token).cloned()
}

async fn handle(State(gateway): State<Arc<Gateway>>, request: Request<Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    if parts.method == "GET" {
        if let Some((content_type, bytes)) = gateway.static_files.get(&path) {
            let mut res = Response::new(Body::from(bytes.clone()));
            if let Ok(v) = HeaderValue::from_str(content_type) {
                res.headers_mut().insert("content-type", v);
            }
            return res;
        }
    }
    // A path the function could read otherwise than the gateway (dot segments, encoded
    // slashes) is no route, as in the api function itself.
    if !tasks_core::paths::is_canonical(&path) {
        return plain(StatusCode::NOT_FOUND, "Not Found");
    }
    let Some((route, path_parameters)) = match_route(&gateway.routes, parts.method.as_str(), &path)
    else {
        return plain(StatusCode::NOT_FOUND, "Not Found");
    };
    // A route without an authorizer gets no claims, whatever the request carries.
    let sub = match (route.public, subject(&gateway, &parts.headers)) {
        (true, _) => None,
        (false, Some(sub)) => Some(sub),
        (false, None) => return plain(StatusCode::UNAUTHORIZED, "Unauthorized"),
    };
    let Ok(body) = to_bytes(body, MAX_PAYLOAD_BYTES).await else {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    };

    let request_id = uuid::Uuid::new_v4().to_string();
    let now = OffsetDateTime::now_utc();
    let route_key = format!("{} {}", route.method, route.path);
    let event = http_api_event(HttpApiRequest {
        parts: &parts,
        body: &body,
        path: &path,
        route_key: &route_key,
        path_parameters,
        sub: sub.as_deref(),
        request_id: &request_id,
        now,
    });
    let Ok(payload) = serde_json::to_vec(&event) else {
        tracing::error!("could not encode the request as an event");
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    if payload.len() > MAX_INVOKE_PAYLOAD_BYTES {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    }

    let mut res = match gateway.api.invoke(payload).await {
        Ok(answer) => into_response(&answer),
        Err(InvokeError::Timeout) => plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
        Err(e) => {
            tracing::error!(error = %e, "api function failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert("apigw-requestid", v);
    }
    res
}

/// What one HTTP request becomes in its event.
struct HttpApiRequest<'a> {
    parts: &'a axum::http::request::Parts,
    body: &'a [u8],
    path: &'a str,
    route_key: &'a str,
    path_parameters: HashMap<String, String>,
    /// The authorizer's subject; `None` on a route without an authorizer.
    sub: Option<&'a str>,
    request_id: &'a str,
    now: OffsetDateTime,
}

/// The payload format 2.0 event API Gateway sends for `request`, built from
/// `aws_lambda_events`' own types (the ones `lambda_http` reads), so the two cannot disagree on
/// a field's name or shape.
fn http_api_event(request: HttpApiRequest<'_>) -> ApiGatewayV2httpRequest {
    let HttpApiRequest {
        parts,
        body,
        path,
        route_key,
        path_parameters,
        sub,
        request_id,
        now,
    } = request;
    // API Gateway joins a repeated header's values with commas into one, and the event is
    // JSON: bytes that are not UTF-8 arrive replaced (U+FFFD), never as a broken event.
    let mut headers = HeaderMap::new();
    for name in parts.headers.keys() {
        let joined: Vec<&[u8]> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        let joined = String::from_utf8_lossy(&joined.join(&b","[..])).into_owned();
        if let Ok(value) = HeaderValue::from_str(&joined) {
            headers.insert(name.clone(), value);
        }
    }
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let mut query: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in form_urlencoded_pairs(&raw_query) {
        query.entry(k).or_default().push(v);
    }
    let header = |name: &str| parts.headers.get(name).and_then(|h| h.to_str().ok());

    let authorizer = sub.map(|sub| {
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims = HashMap::from([
            ("sub".to_owned(), sub.to_owned()),
            ("iss".to_owned(), "local-gateway".to_owned()),
            ("aud".to_owned(), "background-tasks-api".to_owned()),
        ]);
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        authorizer
    });
    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = parts.method.clone();
    http.path = Some(path.to_owned());
    http.protocol = Some("HTTP/1.1".to_owned());
    http.source_ip = Some("127.0.0.1".to_owned());
    http.user_agent = Some(header("user-agent").unwrap_or("").to_owned());
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.route_key = Some(route_key.to_owned());
    context.account_id = Some("000000000000".to_owned());
    context.stage = Some("$default".to_owned());
    context.request_id = Some(request_id.to_owned());
    context.authorizer = authorizer;
    context.apiid = Some("local".to_owned());
    context.domain_name = Some(header("host").unwrap_or("localhost").to_owned());
    context.domain_prefix = Some("local".to_owned());
    context.time = now
        .format(&time::format_description::well_known::Rfc2822)
        .ok();
    context.time_epoch = now.unix_timestamp() * 1000 + i64::from(now.millisecond());
    context.http = http;

    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".to_owned());
    event.route_key = Some(route_key.to_owned());
    event.raw_path = Some(path.to_owned());
    event.raw_query_string = Some(raw_query);
    event.headers = headers;
    event.query_string_parameters = QueryMap::from(query);
    event.path_parameters = path_parameters;
    event.request_context = context;
    (event.body, event.is_base64_encoded) = match std::str::from_utf8(body) {
        _ if body.is_empty() => (None, false),
        Ok(text) => (Some(text.to_owned()), false),
        Err(_) => (Some(B64.encode(body)), true),
    };
    event
}

/// `a=1&b=x%20y` → pairs, percent- and plus-decoded.
fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// The function's `{statusCode, headers, body, isBase64Encoded, cookies}` as an HTTP answer.
fn into_response(answer: &[u8]) -> Response<Body> {
    let Ok(v) = serde_json::from_slice::<Value>(answer) else {
        return plain(StatusCode::BAD_GATEWAY, "Internal Server Error");
    };
    let status = v["statusCode"]
        .as_u64()
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::OK);
    let body = match (v["body"].as_str(), v["isBase64Encoded"].as_bool()) {
        (Some(b), Some(true)) => B64.decode(b).unwrap_or_default(),
        (Some(b), _) => b.as_bytes().to_vec(),
        (None, _) => Vec::new(),
    };
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    if let Some(headers) = v["headers"].as_object() {
        for (k, val) in headers {
            if let (Ok(name), Some(Ok(value))) = (
                HeaderName::try_from(k.as_str()),
                val.as_str().map(HeaderValue::from_str),
            ) {
                res.headers_mut().insert(name, value);
            }
        }
    }
    if let Some(mv) = v["multiValueHeaders"].as_object() {
        for (k, vals) in mv {
            for val in vals.as_array().into_iter().flatten() {
                if let (Ok(name), Some(Ok(value))) = (
                    HeaderName::try_from(k.as_str()),
                    val.as_str().map(HeaderValue::from_str),
                ) {
                    res.headers_mut().append(name, value);
                }
            }
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_that_are_not_utf8_still_make_an_event() {
        // Given a request whose header holds a Latin-1 byte, and another repeated
        let request = Request::builder()
            .method("POST")
            .uri("/tasks/beneficiaries-import?a=1&a=2")
            .header(
                "idempotency-key",
                HeaderValue::from_bytes(b"caf\xe9").unwrap(),
            )
            .header("x-twice", "1")
            .header("x-twice", "2")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();

        // When it becomes an event
        let event = http_api_event(HttpApiRequest {
            parts: &parts,
            body: b"[]",
            path: "/tasks/beneficiaries-import",
            route_key: "POST /tasks/{task_type}",
            path_parameters: HashMap::new(),
            sub: Some("alice"),
            request_id: "r",
            now: OffsetDateTime::UNIX_EPOCH,
        });

        // Then it encodes, with the byte replaced and repeats joined as API Gateway does
        let json: Value = serde_json::to_value(&event).unwrap();
        assert_eq!(json["headers"]["idempotency-key"], "caf\u{fffd}");
        assert_eq!(json["headers"]["x-twice"], "1,2");
        assert_eq!(json["queryStringParameters"]["a"], "1,2");
        assert_eq!(
            json["requestContext"]["authorizer"]["jwt"]["claims"]["sub"],
            "alice"
        );
        assert_eq!(json["requestContext"]["http"]["method"], "POST");
        assert_eq!(json["body"], "[]");
    }

    fn routes() -> Vec<HttpRoute> {
        vec![
            HttpRoute {
                method: "POST".into(),
                path: "/tasks/{task_type}".into(),
                public: false,
            },
            HttpRoute {
                method: "GET".into(),
                path: "/tasks/{task_type}/{task_id}".into(),
                public: false,
            },
        ]
    }

    #[test]
    fn routes_match_like_api_gateway() {
        let r = routes();
        let (route, params) = match_route(&r, "GET", "/tasks/beneficiaries-import/abc").unwrap();
        assert_eq!(route.path, "/tasks/{task_type}/{task_id}");
        assert_eq!(params["task_id"], "abc");
        assert!(match_route(&r, "DELETE", "/tasks/x/abc").is_none());
        assert!(match_route(&r, "GET", "/tasks/x/abc/extra").is_none());
        assert!(match_route(&r, "POST", "/tasks/").is_none());
    }

    #[test]
    fn query_strings_decode() {
        assert_eq!(
            form_urlencoded_pairs("limit=5&page_token=a%2Bb&x=y+z&flag"),
            vec![
                ("limit".into(), "5".into()),
                ("page_token".into(), "a+b".into()),
                ("x".into(), "y z".into()),
                ("flag".into(), String::new())
            ]
        );
    }
}
