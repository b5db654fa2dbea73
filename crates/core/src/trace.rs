//! Trace context: the one id that leads an operator from a `POST` to every consumer invocation
//! and every BOS call that worked on the task it created.
//!
//! Lambda hands each invocation an X-Ray trace header (`Root=1-…;Parent=…;Sampled=…`). The
//! api keeps the request's header on the task record and on every chunk it queues; SQS carries
//! it as the `AWSTraceHeader` system attribute, which is how AWS links Lambda → SQS → Lambda;
//! the consumer and the dead-letter function run each message inside that context
//! ([`within`]); and the BOS client stamps every call with it, as W3C `traceparent` and as
//! `X-Amzn-Trace-Id`, each call a new span of the same trace ([`Trace::child`]).
//!
//! The formats are the `opentelemetry` family's: `opentelemetry-aws` reads and writes X-Ray
//! headers, and the SDK's W3C propagator writes `traceparent`. Nothing here parses by hand.
//!
//! The current context is a task-local, like OpenTelemetry's own `Context`: it follows a
//! message's future wherever the future is polled, so concurrent messages of one batch each
//! keep their own, and no signature between the consumer and the BOS client has to carry it.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use opentelemetry_aws::trace::xray_propagator::{span_context_from_str, span_context_to_string};
use opentelemetry_aws::trace::XrayIdGenerator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::IdGenerator;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;

/// One span of a trace: a trace id and the id of the span that hands the context on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Trace(SpanContext);

impl Trace {
    /// Reads an X-Ray trace header (Lambda's `Lambda-Runtime-Trace-Id`, SQS's
    /// `AWSTraceHeader`). A header without a valid root and parent is no context at all.
    pub fn from_xray_header(header: &str) -> Option<Self> {
        span_context_from_str(header)
            .filter(SpanContext::is_valid)
            .map(Self)
    }

    /// A new trace, sampled, for work that arrives without one (a test calling a handler
    /// directly; in AWS, Lambda always gives one). Its id starts with the time, as X-Ray wants.
    pub fn new_root() -> Self {
        let ids = XrayIdGenerator::default();
        Self(SpanContext::new(
            ids.new_trace_id(),
            ids.new_span_id(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        ))
    }

    /// A new span of the same trace: what one outgoing call carries as its parent.
    pub fn child(&self) -> Self {
        Self(SpanContext::new(
            self.0.trace_id(),
            XrayIdGenerator::default().new_span_id(),
            self.0.trace_flags(),
            true,
            self.0.trace_state().clone(),
        ))
    }

    /// The trace id as X-Ray and CloudWatch show it (`1-5759e988-bd862e3fe1be46a994272793`):
    /// what logs carry and what an operator pastes into the X-Ray console.
    pub fn trace_id(&self) -> String {
        let hex = self.0.trace_id().to_string();
        let (time, random) = hex.split_at(8);
        format!("1-{time}-{random}")
    }

    /// The whole X-Ray header: the form SQS's `AWSTraceHeader` and `X-Amzn-Trace-Id` take.
    pub fn xray_header(&self) -> String {
        // Always `Some`: a `Trace` holds only valid span contexts.
        span_context_to_string(&self.0).unwrap_or_default()
    }

    /// The W3C `traceparent` header value (`00-<trace id>-<span id>-<flags>`).
    pub fn traceparent(&self) -> String {
        let context = opentelemetry::Context::new().with_remote_span_context(self.0.clone());
        let mut headers = HashMap::new();
        TraceContextPropagator::new().inject_context(&context, &mut headers);
        headers.remove("traceparent").unwrap_or_default()
    }
}

// `SpanContext` compares its ids, flags and trace state field by field: a total equivalence,
// though the crate does not say so.
impl Eq for Trace {}

impl TryFrom<String> for Trace {
    type Error = String;
    fn try_from(header: String) -> Result<Self, String> {
        Self::from_xray_header(&header).ok_or_else(|| "not an X-Ray trace header".to_owned())
    }
}

impl From<Trace> for String {
    fn from(trace: Trace) -> String {
        trace.xray_header()
    }
}

/// A message that travels in a trace: [`crate::chunk::WorkMessage`], and test messages.
pub trait Traced {
    fn trace(&self) -> Option<&Trace>;
}

tokio::task_local! {
    static CURRENT: Option<Trace>;
}

/// Runs `work` with `trace` as the current context (see [`current`]).
pub async fn within<F: Future>(trace: Option<Trace>, work: F) -> F::Output {
    CURRENT.scope(trace, work).await
}

/// The context of the work being done now, if it has one.
pub fn current() -> Option<Trace> {
    CURRENT.try_with(Clone::clone).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAMBDA: &str =
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

    #[test]
    fn reads_and_writes_the_xray_header_lambda_gives() {
        let trace = Trace::from_xray_header(LAMBDA).expect("valid");
        assert_eq!(trace.trace_id(), "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(trace.xray_header(), LAMBDA);
        assert_eq!(
            trace.traceparent(),
            "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
        );
    }

    #[test]
    fn a_child_keeps_the_trace_and_gets_a_span_of_its_own() {
        let parent = Trace::from_xray_header(LAMBDA).unwrap();
        let child = parent.child();
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.traceparent(), parent.traceparent());
        assert!(
            child.traceparent().ends_with("-01"),
            "sampled stays sampled"
        );
    }

    #[test]
    fn rejects_what_is_not_a_trace() {
        for bad in ["", "Root=1-local-abc", "Root=;Parent=;Sampled=1", "garbage"] {
            assert!(Trace::from_xray_header(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn serialises_as_the_xray_header() {
        let trace = Trace::from_xray_header(LAMBDA).unwrap();
        let json = serde_json::to_string(&trace).unwrap();
        assert_eq!(json, format!("\"{LAMBDA}\""));
        assert_eq!(serde_json::from_str::<Trace>(&json).unwrap(), trace);
        assert!(serde_json::from_str::<Trace>("\"nope\"").is_err());
    }

    #[test]
    fn a_new_root_is_valid_and_starts_with_the_time() {
        let trace = Trace::new_root();
        let now = format!(
            "{:08x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        );
        assert_eq!(&trace.trace_id()[2..6], &now[..4]);
        assert_eq!(Trace::from_xray_header(&trace.xray_header()), Some(trace));
    }

    #[tokio::test]
    async fn the_current_context_follows_each_future() {
        let a = Trace::new_root();
        let b = Trace::new_root();
        assert_eq!(current(), None);
        let (seen_a, seen_b) = futures::join!(
            within(Some(a.clone()), async {
                tokio::task::yield_now().await;
                current()
            }),
            within(Some(b.clone()), async { current() }),
        );
        assert_eq!((seen_a, seen_b), (Some(a), Some(b)));
    }
}
