//! Logging: JSON lines (one object per event, with the request span's
//! request id, workspace and user) unless stdout is a terminal, where it is
//! human-readable. `RUST_LOG` filters; `VCINTEL_LOG_FORMAT=json|pretty` forces one.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,async_nats=warn,tower_http=info"));
    let format = std::env::var("VCINTEL_LOG_FORMAT").unwrap_or_default();
    let pretty = match format.as_str() {
        "json" => false,
        "pretty" => true,
        _ => std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = if pretty {
        builder.try_init()
    } else {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .try_init()
    };
    // A second init (tests building several apps) keeps the first subscriber.
    drop(result);
}
