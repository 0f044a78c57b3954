//! Starts the API server: flags, logs, the WhatsApp session, the HTTP listener, and a
//! clean shutdown on Ctrl-C or SIGTERM.
//!
//! Shutdown: the listener closes, running requests get up to [`HTTP_DRAIN`] to finish
//! (sends in flight still get their acknowledgement), then the WhatsApp session stops
//! within its own budget (12 s at most; the library flushes for up to 5 s + 5 s). It
//! usually takes well under a second; the README recommends a 20 s stop grace period.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info, warn};

use whatsapp_api::config::{Config, Mode};

fn main() -> ExitCode {
    // Before any thread starts.
    whatsapp_api::ops::limit_allocator_arenas();
    // `.env` in the working directory, as the Go server reads it: its settings are
    // defaults below the environment and the flags.
    let dot_env = std::env::current_dir()
        .map_err(|e| format!("cannot read the working directory: {e}"))
        .and_then(|dir| whatsapp_api::go_flags::dot_env(&dir));
    let defaults = dot_env.as_deref().unwrap_or_default();
    let (mode, config) = whatsapp_api::config::from_args_with(std::env::args_os(), defaults);
    if mode == Mode::Health {
        return if healthy(&config) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    // Kept to the end: dropping it flushes the log lines still queued.
    let _logs = whatsapp_api::logs::init(config.debug, config.log_format);
    let runtime = match dot_env.and_then(|_| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))
    }) {
        Ok(runtime) => runtime,
        Err(e) => {
            error!("cannot run: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line in the log's format, with its causes; never a backtrace (which
            // anyhow would print when RUST_BACKTRACE is set).
            error!("cannot run: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: &Config) -> anyhow::Result<()> {
    config.check_consistency().map_err(anyhow::Error::msg)?;
    // The port first: a second server started by mistake on the same port stops
    // here, before it opens the store and connects as the same device (which would
    // take the running server's WhatsApp session away).
    let address = std::net::SocketAddr::new(config.host, config.port);
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let _storage = whatsapp_api::lock_storage(config)?;
    // Each account holds about ten files open.
    if let Some(limit) = whatsapp_api::ops::raise_fd_limit() {
        info!(
            limit,
            accounts = limit / whatsapp_api::ops::FDS_PER_ACCOUNT,
            "open files limit (room for about this many accounts)"
        );
    }
    let (router, accounts) = whatsapp_api::build(config).await?;
    tokio::spawn(async {
        let mut every = tokio::time::interval(whatsapp_api::ops::RETURN_FREE_MEMORY_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let _ = tokio::task::spawn_blocking(whatsapp_api::ops::return_free_memory).await;
        }
    });
    info!(address = %listener.local_addr()?, "HTTP API listening");
    if !config.host.is_loopback() && config.basic_auth.is_empty() {
        warn!(
            address = %config.host,
            "NO AUTHENTICATION: anyone who can reach this port can send WhatsApp messages \
             as this server's accounts and log them out. Set --basic-auth user:password \
             (APP_BASIC_AUTH), or --host 127.0.0.1 to listen on this machine only"
        );
    }

    let (stop, stopping) = watch::channel(None::<Instant>);
    tokio::spawn(async move {
        shutdown_signal().await;
        stop.send_replace(Some(Instant::now()));
    });
    let requested = |mut rx: watch::Receiver<Option<Instant>>| async move {
        rx.wait_for(Option::is_some).await.ok().and_then(|t| *t)
    };
    let serve = whatsapp_api::serve(listener, router, {
        let rx = stopping.clone();
        async move {
            requested(rx).await;
        }
    });
    let drain_deadline = async {
        requested(stopping.clone()).await;
        tokio::time::sleep(HTTP_DRAIN).await;
    };
    tokio::select! {
        served = serve => served?,
        () = drain_deadline => warn!(
            drain_secs = HTTP_DRAIN.as_secs(),
            "requests still running at the end of the drain time; closing them"
        ),
    }
    info!("HTTP server stopped; closing the WhatsApp sessions");
    accounts.shutdown().await;
    if let Some(asked) = *stopping.borrow() {
        info!(took_ms = asked.elapsed().as_millis() as u64, "stopped");
    }
    Ok(())
}

/// How long running requests may take to finish once shutdown is requested.
const HTTP_DRAIN: Duration = Duration::from_secs(5);

async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.ok();
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    info!("shutdown requested");
}

/// Whether the server this configuration describes answers `/health` with OK.
fn healthy(config: &Config) -> bool {
    let host = match config.host {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let url = format!(
        "http://{}/health",
        std::net::SocketAddr::new(host, config.port)
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(5)))
        .build()
        .into();
    match agent.get(&url).call() {
        Ok(mut res) => res
            .body_mut()
            .read_to_string()
            .is_ok_and(|b| b.trim() == "OK"),
        Err(e) => {
            eprintln!("{url}: {e}");
            false
        }
    }
}
