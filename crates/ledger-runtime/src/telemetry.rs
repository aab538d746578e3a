//! Tracing with OpenTelemetry, and trace context carried in NATS message headers.
//!
//! Every service installs the same subscriber: human-readable logs (or JSON, by the service's
//! `log_format` setting, environment variable `LEDGER_LOG_FORMAT=json`), filtered by `RUST_LOG`, plus an OpenTelemetry layer. Spans always
//! get W3C trace ids so the context can travel in `traceparent` headers from the edge through
//! every consumer to the Sage call; they are exported over OTLP/HTTP only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{global, Context};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Keeps the tracer provider alive; flushes spans when dropped.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line (for log shippers).
    Json,
}

/// Installs logging and tracing for a service with human-readable logs (tests and tools).
/// Safe to call more than once in one process; later calls keep the first subscriber.
pub fn init(service: &'static str) -> TelemetryGuard {
    init_with(service, LogFormat::Text)
}

/// Installs logging and tracing for a service, writing logs in `format`. Safe to call more
/// than once in one process; later calls keep the first subscriber.
pub fn init_with(service: &'static str, format: LogFormat) -> TelemetryGuard {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let mut builder = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service).build());
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
        {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(e) => eprintln!("{service}: OTLP exporter disabled: {e}"),
        }
    }
    let provider = builder.build();
    let tracer = provider.tracer(service);
    global::set_tracer_provider(provider.clone());

    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,async_nats=warn,hyper=warn"));
    let otel = tracing_opentelemetry::layer().with_tracer(tracer);
    let json = format == LogFormat::Json;
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let _ = if json {
        registry
            .with(tracing_subscriber::fmt::layer().json())
            .try_init()
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().with_target(false))
            .try_init()
    };
    TelemetryGuard {
        provider: Some(provider),
    }
}

struct HeaderInjector<'a>(&'a mut async_nats::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct HeaderExtractor<'a>(&'a async_nats::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// Writes the current span's trace context into NATS headers (`traceparent`).
pub fn inject_context(headers: &mut async_nats::HeaderMap) {
    let cx = tracing::Span::current().context();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut HeaderInjector(headers)));
}

/// Reads a trace context from NATS headers (empty context if none).
pub fn extract_context(headers: Option<&async_nats::HeaderMap>) -> Context {
    match headers {
        Some(h) => global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(h))),
        None => Context::new(),
    }
}

/// Makes `span` a child of the trace carried in `headers`, if any.
pub fn link_to_headers(span: &tracing::Span, headers: Option<&async_nats::HeaderMap>) {
    span.set_parent(extract_context(headers));
}

/// Makes `span` a child of the W3C trace context (`traceparent`, `tracestate`) an HTTP client
/// sent, so a store's own trace continues through the ingest and, in the NATS headers, on to
/// every consumer. Returns whether a valid context was found; without one `span` keeps its
/// parent.
pub fn continue_http_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) -> bool {
    use opentelemetry::trace::TraceContextExt;
    let cx = global::get_text_map_propagator(|p| {
        p.extract(&opentelemetry_http::HeaderExtractor(headers))
    });
    let valid = cx.span().span_context().is_valid();
    if valid {
        span.set_parent(cx);
    }
    valid
}

/// The W3C trace id of the current span, as hex (for audit records and logs).
pub fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    let cx = tracing::Span::current().context();
    let id = cx.span().span_context().trace_id();
    (id != opentelemetry::trace::TraceId::INVALID).then(|| id.to_string())
}
