//! The HTTP side of a webhook: one POST, to the addresses the use case checked (the client is
//! pinned to them, so DNS cannot answer differently between the check and the connection),
//! no redirects followed, a time-out on the whole attempt, and at most
//! `webhook_delivery::MAX_ANSWER_BYTES` of the answer read. Nothing of the answer is kept.

use async_trait::async_trait;
use tasks_core::ports::{WebhookPost, WebhookPoster};
use tasks_core::webhook_delivery::MAX_ANSWER_BYTES;

pub struct HttpPoster;

#[async_trait]
impl WebhookPoster for HttpPoster {
    async fn post(&self, post: WebhookPost<'_>) -> Result<u16, &'static str> {
        let url = post.url.url();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(post.timeout)
            .user_agent("background-tasks-webhooks/1");
        if let Some(url::Host::Domain(host)) = url.host() {
            builder = builder.resolve_to_addrs(host, post.addresses);
        }
        let client = builder.build().map_err(|_| "connection_failed")?;
        let mut request = client.post(url.clone()).body(post.body.to_owned());
        for (name, value) in post.headers {
            request = request.header(name, value);
        }
        let mut answer = request.send().await.map_err(classify)?;
        let status = answer.status().as_u16();
        // Read (and drop) a little of the body, so the receiver sees its answer taken.
        let mut read = 0;
        while read < MAX_ANSWER_BYTES {
            match answer.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
        Ok(status)
    }
}

fn classify(e: reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else {
        "connection_failed"
    }
}
