//! Plays API Gateway (HTTP API, payload format 2.0, JWT authorizer) in front of the api
//! function: only the template's routes are served; the bearer token must be one of the
//! configured development tokens (401 otherwise, before any function runs); the token's
//! subject goes into `requestContext.authorizer.jwt.claims`, as the JWT authorizer does; the
//! function's answer becomes the HTTP response.

use crate::function::{FunctionPool, InvokeError};
use crate::template::HttpRoute;
use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Map, Value};
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
) -> Option<(&'a HttpRoute, Map<String, Value>)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    routes.iter().filter(|r| r.method == method).find_map(|r| {
        let pattern: Vec<&str> = r.path.trim_matches('/').split('/').collect();
        if pattern.len() != segments.len() {
            return None;
        }
        let mut params = Map::new();
        for (p, s) in pattern.iter().zip(&segments) {
            if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if s.is_empty() {
                    return None;
                }
                params.insert(name.to_owned(), Value::String((*s).to_owned()));
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
    let Some(sub) = subject(&gateway, &parts.headers) else {
        return plain(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    let Ok(body) = to_bytes(body, MAX_PAYLOAD_BYTES).await else {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    };

    let request_id = uuid::Uuid::new_v4().to_string();
    let now = OffsetDateTime::now_utc();
    let route_key = format!("{} {}", route.method, route.path);
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|e| {
                if let Value::String(s) = e {
                    s.push(',');
                    s.push_str(&v);
                }
            })
            .or_insert(Value::String(v));
    }
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let mut query = Map::new();
    for (k, v) in form_urlencoded_pairs(&raw_query) {
        query
            .entry(k)
            .and_modify(|e| {
                if let Value::String(s) = e {
                    s.push(',');
                    s.push_str(&v);
                }
            })
            .or_insert(Value::String(v.clone()));
    }
    let (body_value, is_base64) = match std::str::from_utf8(&body) {
        _ if body.is_empty() => (Value::Null, false),
        Ok(text) => (Value::String(text.to_owned()), false),
        Err(_) => (Value::String(B64.encode(&body)), true),
    };
    let event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "queryStringParameters": if query.is_empty() { Value::Null } else { Value::Object(query) },
        "pathParameters": path_parameters,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "authorizer": { "jwt": {
                "claims": { "sub": sub, "iss": "local-gateway", "aud": "background-tasks-api" },
                "scopes": null
            }},
            "domainName": parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost"),
            "domainPrefix": "local",
            "http": {
                "method": parts.method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": parts.headers.get("user-agent").and_then(|h| h.to_str().ok()).unwrap_or(""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": now.format(&time::format_description::well_known::Rfc2822).unwrap_or_default(),
            "timeEpoch": now.unix_timestamp() * 1000 + i64::from(now.millisecond()),
        },
        "body": body_value,
        "isBase64Encoded": is_base64,
    });
    let payload = serde_json::to_vec(&event).unwrap_or_default();
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

    fn routes() -> Vec<HttpRoute> {
        vec![
            HttpRoute {
                method: "POST".into(),
                path: "/tasks/{task_type}".into(),
            },
            HttpRoute {
                method: "GET".into(),
                path: "/tasks/{task_type}/{task_id}".into(),
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
