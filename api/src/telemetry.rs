//! Logs and traces. Log lines go to standard output as text or JSON (`log_format`); with
//! `otlp_endpoint`, spans also go to an OpenTelemetry collector over OTLP/HTTP: one trace
//! per request, through authorization, catalog queries, cache lookups and the jobs sent to
//! workers (whose spans join the trace through the `traceparent` header of the NATS message).
//! A `traceparent` from the caller (a load balancer or a traced client) is continued.

use axum::http::{HeaderMap, StatusCode};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// How this process logs and traces.
#[derive(Clone, Debug)]
pub struct TelemetrySettings {
    pub log_format: LogFormat,
    /// OTLP/HTTP endpoint (`http://host:4318`); `None`: no traces.
    pub otlp_endpoint: Option<String>,
    /// Fraction of new traces kept.
    pub sample_ratio: f64,
    /// `service.name` of the spans (`tessera-api`, `tessera-worker`).
    pub service: &'static str,
}

/// Keeps the trace exporter alive; [`Telemetry::shutdown`] sends what is still buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the trace exporter (at exit).
    pub fn shutdown(self) {
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown()
        {
            eprintln!("traces not all sent at exit: {e}");
        }
    }
}

/// Installs the process's log and trace subscriber. `RUST_LOG` filters (default `info`).
pub fn init(settings: &TelemetrySettings) -> anyhow::Result<Telemetry> {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let fmt = match settings.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stdout)
            .with_filter(filter())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stdout)
            .with_filter(filter())
            .boxed(),
    };
    let provider = match &settings.otlp_endpoint {
        Some(endpoint) => Some(provider(endpoint, settings)?),
        None => None,
    };
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("tessera"))
            .with_filter(EnvFilter::new("info"))
    });
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()?;
    if let Some(endpoint) = &settings.otlp_endpoint {
        tracing::info!(
            "sending traces to {endpoint} (sampling {:.0} %)",
            settings.sample_ratio * 100.0
        );
    }
    Ok(Telemetry { provider })
}

/// The OTLP/HTTP pipeline to `endpoint`, batched in the background.
fn provider(endpoint: &str, settings: &TelemetrySettings) -> anyhow::Result<SdkTracerProvider> {
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .build()
        .map_err(|e| anyhow::anyhow!("the OTLP exporter to {endpoint}: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(settings.service)
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sample_ratio)));
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler)
        .with_resource(resource)
        .build())
}

/// The span of one request: continues the caller's trace when it sends `traceparent`, and
/// carries the request id into every log line logged inside it.
pub fn request_span(
    headers: &HeaderMap,
    method: &'static str,
    endpoint: &'static str,
    id: &str,
) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        otel.name = format!("{method} {endpoint}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = endpoint,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        request_id = id,
    );
    if headers.contains_key("traceparent") {
        let parent = TraceContextPropagator::new().extract(&HeaderText(headers));
        let _ = span.set_parent(parent);
    }
    span
}

/// Records the request's status on its span.
pub fn end_request(span: &tracing::Span, status: StatusCode) {
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

struct HeaderText<'a>(&'a HeaderMap);

impl Extractor for HeaderText<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
