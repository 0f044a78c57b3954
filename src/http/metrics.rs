//! `GET /metrics`: the server in Prometheus's (OpenMetrics) text format, for the
//! operator: accounts by state (a label per state, never per account, so the series
//! stay few whatever the number of accounts), and the process's memory and open
//! files against their limit. Behind basic auth like every route; refused to
//! account API keys.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Server;
use super::response::ApiError;

pub fn router() -> Router<Server> {
    Router::new().route("/metrics", get(metrics))
}

/// The states an account is counted under: Go's four, and this server's two for
/// accounts not open.
const STATES: [&str; 6] = [
    "logged_in",
    "connecting",
    "connected",
    "disconnected",
    "starting",
    "broken",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

async fn metrics(State(server): State<Server>) -> Result<Response, ApiError> {
    let mut registry = Registry::default();
    let accounts = Family::<StateLabel, Gauge>::default();
    registry.register(
        "whatsapp_accounts",
        "Accounts by state (starting: waiting for their turn to connect; broken: could not be opened)",
        accounts.clone(),
    );
    for state in STATES {
        accounts.get_or_create(&StateLabel { state }).set(0);
    }
    for account in server.accounts.list() {
        let state = super::devices::state_name(account.wa.phase());
        accounts.get_or_create(&StateLabel { state }).inc();
    }
    for (_, broken) in server.accounts.not_open() {
        let state = if broken { "broken" } else { "starting" };
        accounts.get_or_create(&StateLabel { state }).inc();
    }
    let gauge = |registry: &mut Registry, name: &str, help: &str, value: Option<u64>| {
        if let Some(value) = value {
            let g = Gauge::<i64>::default();
            g.set(i64::try_from(value).unwrap_or(i64::MAX));
            registry.register(name, help, g);
        }
    };
    let memory = crate::ops::memory();
    gauge(
        &mut registry,
        "process_resident_memory_bytes",
        "Resident memory",
        memory.map(|m| m.0),
    );
    gauge(
        &mut registry,
        "process_resident_memory_peak_bytes",
        "Peak resident memory",
        memory.map(|m| m.1),
    );
    gauge(
        &mut registry,
        "process_open_fds",
        "Open files",
        crate::ops::open_fds(),
    );
    gauge(
        &mut registry,
        "process_max_fds",
        "Limit on open files",
        crate::ops::fd_limit(),
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).map_err(|e| {
        tracing::error!(error = %e, "cannot encode the metrics");
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics",
        )
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
