//! How a trace crosses process boundaries: W3C `traceparent` values read
//! from and written to HTTP headers, event metadata and NATS headers, and
//! the span kinds every hop uses (producer, consumer, Postgres client), so
//! one trace runs from an HTTP request through the store, the relay, the
//! projectors and the enricher to the model call.
//!
//! Without an OpenTelemetry layer installed (no `OTEL_EXPORTER_OTLP_ENDPOINT`)
//! spans have no trace context: continuing does nothing and a span's own
//! `traceparent` is `None`, so callers pass the incoming value on unchanged.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::collections::HashMap;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACEPARENT: &str = "traceparent";

fn context_of(traceparent: &str) -> opentelemetry::Context {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    TraceContextPropagator::new().extract(&carrier)
}

/// Makes `span` continue the trace named by a W3C `traceparent` value.
pub fn continue_trace(span: &Span, traceparent: Option<&str>) {
    if let Some(traceparent) = traceparent {
        let _ = span.set_parent(context_of(traceparent));
    }
}

/// `span`'s place in its trace as a `traceparent` value, when spans are
/// exported (otherwise there is no trace to name).
pub fn traceparent_of(span: &Span) -> Option<String> {
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The current span's `traceparent`; see [`traceparent_of`].
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&Span::current())
}

/// The `traceparent` a NATS message carries.
pub fn message_traceparent(message: &async_nats::Message) -> Option<&str> {
    message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(TRACEPARENT))
        .map(|value| value.as_str())
}

/// Puts `traceparent` on an outgoing NATS message's headers.
pub fn set_message_traceparent(headers: &mut async_nats::HeaderMap, traceparent: &str) {
    headers.insert(TRACEPARENT, traceparent);
}

/// Names `span` once what it is became known (a request's route). The
/// OpenTelemetry span may already have started, so it is renamed there.
pub fn rename(span: &Span, name: String) {
    span.context().span().update_name(name);
}

/// Records that `span` also served the work of `others` (one batch
/// serving several traces).
pub fn link_spans(span: &Span, others: &[Span]) {
    for other in others {
        let linked = other.context().span().span_context().clone();
        if linked.is_valid() {
            span.add_link(linked);
        }
    }
}

/// A span for one Postgres round trip or transaction, named by what it does
/// (`"append events"`), never by the values it carries.
pub fn db_span(operation: &'static str) -> Span {
    db_span_under(&Span::current(), operation)
}

/// [`db_span`] as a child of `parent` rather than of the current span.
pub fn db_span_under(parent: &Span, operation: &'static str) -> Span {
    tracing::info_span!(
        parent: parent,
        "db",
        otel.name = operation,
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = operation,
    )
}
