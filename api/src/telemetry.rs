//! Logging and tracing. Logs are JSON lines (one object per event, with the
//! request span's request id, workspace and user) unless stdout is a
//! terminal, where they are human-readable (in colour unless `NO_COLOR`);
//! `RUST_LOG` filters; `VCINTEL_LOG_FORMAT=json|pretty` forces one.
//!
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set (the OpenTelemetry SDK's own
//! variables apply: `OTEL_SERVICE_NAME`, `OTEL_BSP_SCHEDULE_DELAY`, …),
//! spans are also exported over OTLP/HTTP. A request's span continues the
//! trace of its `traceparent` header, and the events it appends carry that
//! trace on to the stream, so one trace id follows a command end to end.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::io::IsTerminal;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The span exporter, if any; flush it with [`Telemetry::shutdown`] on exit.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered. The exporter's HTTP client blocks,
    /// so it runs off the async workers.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(error)) = flushed {
                eprintln!("could not flush the last spans: {error}");
            }
        }
    }
}

/// Libraries that log what goes over the wire at trace level (async-nats
/// every message's payload, lettre the SMTP conversation with its mail,
/// hyper and h2 headers and bodies): whatever `RUST_LOG` says, they log at
/// most at debug, so no event payload, mail or credential reaches the logs
/// at any level. `VCINTEL_LOG_WIRE=true` lifts the cap for a debugging
/// session on data that may be logged.
fn wire_cap() -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    const WIRE: &[&str] = &[
        "async_nats",
        "lettre",
        "hyper",
        "hyper_util",
        "h2",
        "reqwest",
        "rustls",
    ];
    let lifted = std::env::var("VCINTEL_LOG_WIRE").is_ok_and(|v| v == "true");
    let cap = if lifted {
        LevelFilter::TRACE
    } else {
        LevelFilter::DEBUG
    };
    WIRE.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |targets, wire| targets.with_target(*wire, cap),
    )
}

/// Standard output with every e-mail address in a log line replaced by
/// `[e-mail]`: the last guard for personal data that an error message
/// (a database's, a mail server's) carries into a log field. The fmt layer
/// writes each event with one `write_all`, so a line is redacted whole.
#[derive(Clone, Copy, Default)]
struct RedactedStdout;

fn email_address() -> &'static regex::bytes::Regex {
    static EMAIL: std::sync::OnceLock<regex::bytes::Regex> = std::sync::OnceLock::new();
    EMAIL.get_or_init(|| {
        // A JSON escape just before the address (`\n`, `\u0022`) is kept:
        // its letters would otherwise be taken for the address's.
        regex::bytes::Regex::new(
            r"(?P<escape>\\(?:u[0-9a-fA-F]{4}|[ntrbf\x22/\\]))?[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+",
        )
        .expect("the e-mail pattern compiles")
    })
}

/// `line` with its e-mail addresses replaced.
fn redact(line: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    email_address().replace_all(line, &b"${escape}[e-mail]"[..])
}

impl std::io::Write for RedactedStdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let line = redact(buf);
        crate::terminal::above_the_bars(|| std::io::stdout().lock().write_all(&line))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

impl tracing_subscriber::fmt::MakeWriter<'_> for RedactedStdout {
    type Writer = RedactedStdout;

    fn make_writer(&self) -> Self::Writer {
        *self
    }
}

/// Installs logging (and span export when configured). Refuses a log
/// format it does not know and a `RUST_LOG` it cannot parse, rather than
/// logging something else than the operator asked for.
pub fn init() -> Result<Telemetry, String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
            .map_err(|error| format!("RUST_LOG: {error} (e.g. `info,vcintel_api=debug`)"))?,
        _ => EnvFilter::new("info,sqlx=warn,async_nats=warn,tower_http=info"),
    };
    let wire = wire_cap();
    let terminal = std::io::stdout().is_terminal();
    let pretty = match std::env::var("VCINTEL_LOG_FORMAT")
        .unwrap_or_default()
        .as_str()
    {
        "json" => false,
        "pretty" => true,
        "" => terminal,
        _ => {
            return Err("VCINTEL_LOG_FORMAT: must be `json` or `pretty` \
                 (unset: JSON lines, or pretty on a terminal)"
                .to_owned())
        }
    };
    // Colour only where a person reads it (https://no-color.org).
    let colour = terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let logs = if pretty {
        tracing_subscriber::fmt::layer()
            .with_writer(RedactedStdout)
            .with_ansi(colour)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(RedactedStdout)
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .boxed()
    };
    let provider =
        std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").and_then(|_| match tracer_provider() {
            Ok(provider) => Some(provider),
            Err(error) => {
                eprintln!("OTLP export is off: {error}");
                None
            }
        });
    let spans = provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("vcintel")));
    // A second init (tests building several apps) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(wire)
        .with(logs)
        .with(spans)
        .try_init();
    Ok(Telemetry { provider })
}

fn tracer_provider() -> anyhow::Result<SdkTracerProvider> {
    use opentelemetry_otlp::WithExportConfig as _;
    // The exporter's HTTP client needs TLS set up for an https endpoint.
    vcintel_infra::install_crypto_provider();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "vcintel".to_owned());
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build(),
        )
        .build())
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn e_mail_addresses_are_redacted_wherever_they_stand_in_a_line() {
        let line = br#"{"level":"WARN","error":"mail to Ada.Lovelace+vc@analytical.example.co.uk refused: 550","user":"o'neil@x.io"}"#;
        let redacted = String::from_utf8(redact(line).into_owned()).unwrap();
        assert_eq!(
            redacted,
            r#"{"level":"WARN","error":"mail to [e-mail] refused: 550","user":"[e-mail]"}"#
        );
        // In a JSON string after an escape, the escape stays whole.
        let escaped = br#"{"error":"refused:\nada@x.io and \u0022bob@y.org\u0022"}"#;
        assert_eq!(
            String::from_utf8(redact(escaped).into_owned()).unwrap(),
            r#"{"error":"refused:\n[e-mail] and \u0022[e-mail]\u0022"}"#
        );
        let plain = b"relay is the leader at position 42 (v1.2@epoch 3)";
        assert_eq!(
            &*redact(plain),
            &plain[..],
            "no domain with a dot: nothing to redact"
        );
    }
}
