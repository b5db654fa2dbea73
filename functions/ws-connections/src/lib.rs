//! The WebSocket API's one route function. API Gateway sends it `$connect` (after the
//! authorizer allowed the connection), `$disconnect`, and every client message (`$default`);
//! `usecases::live_progress` does the work. The caller is the authorizer's `sub`, which API
//! Gateway hands every route of the connection; nothing the client sends names it.

use aws_adapters::startup::invocation_trace;
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use lambda_runtime::LambdaEvent;
use std::sync::Arc;
use tasks_core::error::Chain;
use tasks_core::identity::Owner;
use tasks_core::live_progress::{ConnectionId, Frame};
use tasks_core::ports::{ConnectionStore, FramePusher, TaskStore};
use tasks_core::usecases::live_progress::{self, LivePorts};
use time::OffsetDateTime;

pub struct Routes {
    pub tasks: Arc<dyn TaskStore>,
    pub connections: Arc<dyn ConnectionStore>,
    pub pusher: Arc<dyn FramePusher>,
}

fn answer(status: i64) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response
}

/// The owner the authorizer put in the connection's context.
fn owner_of(request: &ApiGatewayWebsocketProxyRequest) -> Option<Owner> {
    let sub = request.request_context.authorizer.fields.get("sub")?;
    Owner::from_subject(sub.as_str()?)
}

impl Routes {
    fn ports(&self) -> LivePorts<'_> {
        LivePorts {
            tasks: self.tasks.as_ref(),
            connections: self.connections.as_ref(),
            pusher: self.pusher.as_ref(),
        }
    }

    #[tracing::instrument(skip_all, fields(request_id = %event.context.request_id,
        trace_id = tracing::field::Empty, route = tracing::field::Empty,
        owner = tracing::field::Empty))]
    pub async fn handle(
        &self,
        event: LambdaEvent<ApiGatewayWebsocketProxyRequest>,
    ) -> ApiGatewayProxyResponse {
        invocation_trace(&event.context);
        let request = event.payload;
        let context = &request.request_context;
        let route = context.route_key.as_deref().unwrap_or("$default");
        let span = tracing::Span::current();
        span.record("route", route);
        let Some(id) = context
            .connection_id
            .as_deref()
            .and_then(ConnectionId::parse)
        else {
            tracing::warn!("no connection id in the request");
            return answer(400);
        };
        if route == "$disconnect" {
            return match live_progress::disconnect(&self.ports(), &id).await {
                Ok(()) => answer(200),
                Err(e) => {
                    tracing::error!(error = %Chain(&e), "disconnect not recorded");
                    answer(500)
                }
            };
        }
        // Every other route runs behind the authorizer; without its subject, refuse.
        let Some(owner) = owner_of(&request) else {
            tracing::error!("no authorizer subject; is the $connect authorizer configured?");
            return answer(403);
        };
        span.record("owner", owner.log_id());
        let now = OffsetDateTime::now_utc();
        let done = if route == "$connect" {
            live_progress::connect(&self.ports(), &id, &owner, now).await
        } else {
            let body = request.body.as_deref().unwrap_or_default();
            live_progress::on_message(&self.ports(), &id, &owner, body, now).await
        };
        match done {
            Ok(()) => {
                tracing::info!("route handled");
                answer(200)
            }
            Err(e) => {
                tracing::error!(error = %Chain(&e), "route failed");
                if route != "$connect" {
                    let frame = Frame::error(
                        None,
                        "internal_error",
                        "Something went wrong on our side; send the message again.",
                    );
                    let _ = self.pusher.push(&id, &frame.to_json()).await;
                }
                answer(500)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tasks_core::memory::{MemoryPusher, MemoryStore};

    struct World {
        store: Arc<MemoryStore>,
        pusher: Arc<MemoryPusher>,
        routes: Routes,
    }

    fn world() -> World {
        let store = Arc::new(MemoryStore::default());
        let pusher = Arc::new(MemoryPusher::default());
        let routes = Routes {
            tasks: store.clone(),
            connections: store.clone(),
            pusher: pusher.clone(),
        };
        World {
            store,
            pusher,
            routes,
        }
    }

    /// An event as API Gateway sends it, with the authorizer's `sub` if given.
    fn event(
        route: &str,
        sub: Option<&str>,
        body: Option<&str>,
    ) -> LambdaEvent<ApiGatewayWebsocketProxyRequest> {
        let mut context = serde_json::json!({"routeKey": route, "connectionId": "c-1",
            "connectedAt": 0, "requestTimeEpoch": 0});
        if let Some(sub) = sub {
            context["authorizer"] = serde_json::json!({"sub": sub, "principalId": sub});
        }
        let request = serde_json::json!({"requestContext": context, "body": body});
        LambdaEvent::new(
            serde_json::from_value(request).unwrap(),
            lambda_runtime::Context::default(),
        )
    }

    fn connection() -> ConnectionId {
        ConnectionId::parse("c-1").unwrap()
    }

    #[tokio::test]
    async fn connect_records_the_authorizers_subject_and_disconnect_forgets_it() {
        let w = world();
        let answer = w
            .routes
            .handle(event("$connect", Some("alice"), None))
            .await;
        assert_eq!(answer.status_code, 200);
        assert_eq!(
            w.store.watched_tasks(&connection()).await.unwrap(),
            Some(vec![])
        );
        let answer = w.routes.handle(event("$disconnect", None, None)).await;
        assert_eq!(answer.status_code, 200);
        assert_eq!(w.store.watched_tasks(&connection()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn without_an_authorizer_subject_nothing_is_served() {
        let w = world();
        let body = r#"{"action":"ping"}"#;
        for route in ["$connect", "$default"] {
            let answer = w.routes.handle(event(route, None, Some(body))).await;
            assert_eq!(answer.status_code, 403);
        }
        assert_eq!(w.store.watched_tasks(&connection()).await.unwrap(), None);
        assert!(w.pusher.frames(&connection()).is_empty());
    }

    #[tokio::test]
    async fn messages_are_answered_on_the_connection() {
        let w = world();
        w.routes
            .handle(event("$connect", Some("alice"), None))
            .await;
        let body = r#"{"action":"ping"}"#;
        let answer = w
            .routes
            .handle(event("$default", Some("alice"), Some(body)))
            .await;
        assert_eq!(answer.status_code, 200);
        let body = r#"{"action":"subscribe","task_id":"nope"}"#;
        w.routes
            .handle(event("$default", Some("alice"), Some(body)))
            .await;
        let frames = w.pusher.frames(&connection());
        assert_eq!(frames[0]["type"], "pong");
        assert_eq!(frames[1]["error"]["code"], "invalid_task_id");
    }
}
