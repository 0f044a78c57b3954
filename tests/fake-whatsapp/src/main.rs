//! The fake WhatsApp server as a program: a sandbox to try whatsapp-api without a phone.
//! See the README's "Sandbox" section.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use fake_whatsapp::FakeWhatsApp;

#[derive(Parser)]
#[command(about = "A fake WhatsApp server on loopback, for tests and as a sandbox")]
struct Args {
    /// Address to listen on; keep it on loopback.
    #[arg(long, env = "FAKE_WHATSAPP_ADDR", default_value = "127.0.0.1:3100")]
    addr: SocketAddr,
    /// Where the server's Noise key is kept across runs of the fake (devices and
    /// messages are in memory only).
    #[arg(
        long,
        env = "FAKE_WHATSAPP_KEY_FILE",
        default_value = "fake-whatsapp.key"
    )]
    key_file: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let fake = FakeWhatsApp::start(listener, Some(&args.key_file)).await?;
    tracing::info!(
        ws_url = %fake.ws_url(),
        admin = %format!("{}/admin/devices", fake.base_url()),
        "fake WhatsApp server ready; start whatsapp-api (built with --features e2e) with WHATSAPP_WS_URL={}",
        fake.ws_url()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
