//! Starts the API server: flags, logs, the WhatsApp session, the HTTP listener, and a
//! clean shutdown on Ctrl-C or SIGTERM.

use clap::Parser;
use tokio::net::TcpListener;
use tracing::info;
use tracing_subscriber::EnvFilter;

use whatsapp_api::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    init_logs(config.debug);

    let (router, wa) = whatsapp_api::build(&config).await?;
    let listener = TcpListener::bind((config.host, config.port)).await?;
    info!(address = %listener.local_addr()?, "HTTP API listening");

    whatsapp_api::serve(listener, router, shutdown_signal()).await?;
    info!("HTTP server stopped; closing the WhatsApp session");
    wa.shutdown().await;
    Ok(())
}

/// Logs go to stderr; `RUST_LOG` overrides the level chosen by `--debug`. `init` also
/// bridges the `log` facade, which whatsapp-rust logs through.
fn init_logs(debug: bool) {
    let default = if debug {
        "debug,hyper=info,h2=info,diesel=info"
    } else {
        "info,whatsapp_rust=warn,wacore=warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

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
