//! Trace context across NATS: an API node writes the current span's context into a job's
//! headers (`traceparent`, W3C Trace Context); the worker that takes the job continues the
//! trace, so one trace spans the request on the node and the decode on the worker.

use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Writes the current span's trace context into `headers` (nothing when not traced).
pub fn inject(headers: &mut HeaderMap) {
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, &mut Writer(headers));
}

/// Makes `span` continue the trace whose context `headers` carry, if they carry one.
pub fn continue_trace(span: &tracing::Span, headers: Option<&HeaderMap>) {
    if let Some(headers) = headers
        && headers.get("traceparent").is_some()
    {
        let parent = TraceContextPropagator::new().extract(&Reader(headers));
        let _ = span.set_parent(parent);
    }
}

struct Writer<'a>(&'a mut HeaderMap);

impl Injector for Writer<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct Reader<'a>(&'a HeaderMap);

impl Extractor for Reader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        Vec::new()
    }
}
