//! `GET /console`: the task console, a small web app for people (plain HTML, CSS and
//! JavaScript in `functions/api/console/`, built into the binary, no CDN, no build step).
//! It calls this same API from the browser with the bearer token the person pastes in.
//!
//! These routes answer without credentials (the page has none until the person signs in);
//! the template declares them without an authorizer. Every answer carries a strict
//! Content-Security-Policy: scripts and styles from this origin only, no inline script, and
//! connections only to this API, its live progress URL and the uploads bucket.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The console's files, as they ship.
const FILES: [(&str, &str, &str); 4] = [
    (
        "/console",
        "text/html; charset=utf-8",
        include_str!("../console/index.html"),
    ),
    (
        "/console/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/app.js"),
    ),
    (
        "/console/style.css",
        "text/css; charset=utf-8",
        include_str!("../console/style.css"),
    ),
    // Linked from the page, so a browser does not ask for `/favicon.ico`, which is no route.
    (
        "/console/icon.svg",
        "image/svg+xml",
        include_str!("../console/icon.svg"),
    ),
];

/// What the page needs to know about where it runs, from the function's environment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConsoleSettings {
    /// The WebSocket URL of live progress (`LIVE_PROGRESS_URL`); without it, the page polls.
    pub live_url: Option<String>,
    /// Where upload sessions send files (`UPLOADS_ORIGIN`, or the S3 endpoint the SDK is
    /// pointed at): the only other origin the page may send to.
    pub uploads_origin: Option<String>,
    /// Development tokens offered as sign-in buttons (`CONSOLE_DEV_TOKENS`, `token=subject`
    /// pairs). Only the local gateway sets it; the template never does.
    pub dev_tokens: Vec<DevToken>,
    /// The largest request body, so the page knows when a file needs an upload session.
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct DevToken {
    pub token: String,
    pub subject: String,
}

impl ConsoleSettings {
    pub fn from_env(max_body_bytes: usize) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut dev_tokens: Vec<DevToken> = var("CONSOLE_DEV_TOKENS")
            .unwrap_or_default()
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(t, s)| DevToken {
                token: t.trim().to_owned(),
                subject: s.trim().to_owned(),
            })
            .filter(|d| !d.token.is_empty() && !d.subject.is_empty())
            .collect();
        dev_tokens.sort_by(|a, b| a.subject.cmp(&b.subject));
        Self {
            live_url: var("LIVE_PROGRESS_URL"),
            // A custom S3 endpoint (moto, locally) is where the SDK presigns uploads to.
            uploads_origin: var("AWS_ENDPOINT_URL_S3")
                .or_else(|| var("UPLOADS_ORIGIN"))
                .map(|o| o.trim_end_matches('/').to_owned()),
            dev_tokens,
            max_body_bytes,
        }
    }

    /// The page's Content-Security-Policy.
    fn policy(&self) -> String {
        let mut connect = vec!["'self'".to_owned()];
        connect.extend(self.live_url.iter().filter_map(|u| origin(u)));
        connect.extend(self.uploads_origin.iter().filter_map(|u| origin(u)));
        format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src {}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            connect.join(" ")
        )
    }
}

/// `scheme://host[:port]` of a URL, if it has plain characters only (it goes into a header).
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next()?;
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    };
    (plain(scheme) && plain(host)).then(|| format!("{scheme}://{host}"))
}

struct Console {
    policy: HeaderValue,
    /// `(path, content type, body, etag)`, the config answer among them.
    files: Vec<(&'static str, &'static str, String, String)>,
}

/// The console's routes: its four files and its settings (`/console/config.json`).
pub fn router(settings: ConsoleSettings) -> Router {
    let config = serde_json::to_string(&settings).unwrap_or_else(|_| "{}".to_owned());
    let mut files: Vec<_> = FILES
        .iter()
        .map(|(path, kind, body)| (*path, *kind, (*body).to_owned()))
        .collect();
    files.push(("/console/config.json", "application/json", config));
    let console = Console {
        policy: HeaderValue::from_str(&settings.policy())
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'")),
        files: files
            .into_iter()
            .map(|(path, kind, body)| {
                let etag = format!("\"{:x}\"", Sha256::digest(body.as_bytes()));
                (path, kind, body, etag)
            })
            .collect(),
    };
    let console = Arc::new(console);
    let mut router = Router::new();
    for (path, ..) in &console.files {
        router = router.route(path, get(serve));
    }
    router.with_state(console)
}

async fn serve(
    State(console): State<Arc<Console>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let Some((_, kind, body, etag)) = console.files.iter().find(|f| f.0 == uri.path()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        body.clone().into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    // Revalidated on every load (cheap with the ETag), so a deploy is seen at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, console.policy.clone());
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    fn settings() -> ConsoleSettings {
        ConsoleSettings {
            live_url: Some("wss://abc.execute-api.eu-west-1.amazonaws.com/live".into()),
            uploads_origin: Some("https://bucket.s3.eu-west-1.amazonaws.com".into()),
            dev_tokens: vec![],
            max_body_bytes: 3_000_000,
        }
    }

    async fn get(path: &str, etag: Option<&str>) -> Response {
        let mut request = axum::http::Request::get(path);
        if let Some(e) = etag {
            request = request.header("if-none-match", e);
        }
        router(settings())
            .oneshot(request.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn every_file_carries_the_policy_and_revalidates() {
        for path in [
            "/console",
            "/console/app.js",
            "/console/style.css",
            "/console/icon.svg",
            "/console/config.json",
        ] {
            let response = get(path, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap();
            assert!(csp.contains("script-src 'self';"), "{csp}");
            assert!(!csp.contains("unsafe"), "{csp}");
            assert!(
                csp.contains("wss://abc.execute-api.eu-west-1.amazonaws.com "),
                "{csp}"
            );
            assert!(
                csp.contains("https://bucket.s3.eu-west-1.amazonaws.com;"),
                "{csp}"
            );
            let etag = response.headers()[header::ETAG]
                .to_str()
                .unwrap()
                .to_owned();
            assert_eq!(
                get(path, Some(&etag)).await.status(),
                StatusCode::NOT_MODIFIED
            );
        }
    }

    #[test]
    fn the_page_has_no_inline_script_and_never_uses_inner_html() {
        let page = FILES[0].2;
        assert!(page.contains(r#"<script type="module" src="/console/app.js"></script>"#));
        assert_eq!(
            page.matches("<script").count(),
            1,
            "one script, from a file"
        );
        let handlers = page.split(" on").skip(1).filter(|rest| {
            rest.split_once('=')
                .is_some_and(|(name, _)| name.chars().all(|c| c.is_ascii_alphabetic()))
        });
        assert_eq!(handlers.count(), 0, "no inline event handlers");
        let script = FILES[1].2;
        assert!(!script.contains("innerHTML") && !script.contains("outerHTML"));
        assert!(!script.contains("insertAdjacentHTML") && !script.contains("document.write"));
    }

    #[test]
    fn an_origin_is_scheme_and_host_only() {
        assert_eq!(
            origin("ws://127.0.0.1:3000/live").as_deref(),
            Some("ws://127.0.0.1:3000")
        );
        assert_eq!(origin("https://a.b/c?d").as_deref(), Some("https://a.b"));
        assert_eq!(origin("https://a b/c"), None);
        assert_eq!(origin("nonsense"), None);
    }
}
