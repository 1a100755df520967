//! `vcintel serve`: the API, relay and workers under one shutdown signal.

use crate::{Application, Component, Settings};
use vcintel_infra::CancellationToken;

pub async fn run(settings: Settings, only: Vec<Component>) -> anyhow::Result<()> {
    let components = if only.is_empty() {
        Component::ALL.to_vec()
    } else {
        only
    };
    let app = Application::build(settings, &components).await?;
    if let Some(address) = app.address() {
        // Where to go: a wildcard bind is reached on loopback from here.
        let host = if address.ip().is_unspecified() {
            std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), address.port())
        } else {
            address
        };
        tracing::info!(
            components = ?components,
            api = %format!("http://{host}/v1"),
            docs = %format!("http://{host}/docs"),
            openapi = %format!("http://{host}/openapi.json"),
            health = %format!("http://{host}/health/ready"),
            "vcintel serving on {address}: API http://{host}/v1, docs http://{host}/docs, \
             health http://{host}/health/ready"
        );
    } else {
        tracing::info!(components = ?components, "vcintel running");
    }
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received");
        signal.cancel();
    });
    app.run(shutdown).await
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
