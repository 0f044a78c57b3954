//! `--whatsapp-proxy` (Go's `WHATSAPP_PROXY`): the WebSocket to WhatsApp through a
//! SOCKS5 or HTTP proxy. whatsapp-rust's stock transport dials directly, but takes
//! a WebSocket over any stream (`from_websocket`): this factory opens the tunnel
//! (tokio-socks, or an HTTP `CONNECT` through hyper), then TLS and the upgrade as
//! the stock transport does them, with the same `Origin`.
//!
//! The HTTP requests to WhatsApp (media, the web client's version) go through it
//! too ([`http_agent`]), as whatsmeow's proxy setting covers both.

use std::sync::Arc;

use axum::http::{Method, Request, Uri, header};
use base64::Engine;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use whatsapp_rust::transport::{
    Connector, Transport, TransportEvent, TransportFactory, from_websocket,
};
use whatsapp_rust::wacore::net::{WHATSAPP_WEB_ORIGIN, WHATSAPP_WEB_WS_URL};

/// How long dialing through the proxy, TLS and the upgrade may take together
/// (whatsapp-rust gives the whole connect 20 s).
const DIAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Socks5,
    Http,
}

/// A parsed `--whatsapp-proxy`.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    credentials: Option<(String, String)>,
    /// As given (for ureq); never shown.
    url: String,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("Proxy")
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("credentials", &self.credentials.is_some())
            .finish()
    }
}

impl Proxy {
    /// `socks5://[user:password@]host:port` or `http://[user:password@]host:port`.
    /// The error never repeats the value (it may hold a password).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("--whatsapp-proxy / WHATSAPP_PROXY: {why}");
        let uri: Uri = text
            .trim()
            .parse()
            .map_err(|_| bad("not a URL like socks5://host:1080 or http://host:3128"))?;
        let scheme = uri.scheme_str().map(str::to_ascii_lowercase);
        let scheme = match scheme.as_deref() {
            Some("socks5" | "socks5h") => Scheme::Socks5,
            Some("http") => Scheme::Http,
            Some("https") => {
                return Err(bad(
                    "https:// proxies are not supported; use http:// (the WebSocket inside \
                     is encrypted end to end) or socks5://",
                ));
            }
            _ => return Err(bad("use socks5:// or http://")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        let host = authority.host().trim_matches(['[', ']']).to_owned();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad(
                "a proxy URL has no path (percent-encode a / ? # in the password)",
            ));
        }
        let host_port = authority
            .as_str()
            .rsplit_once('@')
            .map_or(authority.as_str(), |(_, host_port)| host_port);
        let port_text = if host_port.starts_with('[') {
            host_port.rsplit_once("]:").map(|(_, port)| port)
        } else {
            host_port.rsplit_once(':').map(|(_, port)| port)
        };
        let port = match port_text {
            Some(text) => text
                .parse::<u16>()
                .map_err(|_| bad("the port is not a number up to 65535"))?,
            None => match scheme {
                Scheme::Socks5 => 1080,
                Scheme::Http => 80,
            },
        };
        let credentials = authority.as_str().rsplit_once('@').map(|(userinfo, _)| {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(user), decode(password))
        });
        if scheme == Scheme::Socks5
            && credentials
                .as_ref()
                .is_some_and(|(user, password)| user.is_empty() || password.is_empty())
        {
            return Err(bad("a SOCKS5 proxy's user and password must both be given"));
        }
        Ok(Self {
            scheme,
            host,
            port,
            credentials,
            url: text.trim().to_owned(),
        })
    }

    /// An HTTP agent for whatsapp-rust's requests (media, version) through this
    /// proxy, sized as whatsapp-rust's own agent is.
    pub fn http_agent(&self) -> Result<ureq::Agent, String> {
        let proxy = ureq::Proxy::new(&self.url)
            .map_err(|_| "--whatsapp-proxy / WHATSAPP_PROXY: not usable for HTTP".to_owned())?;
        Ok(ureq::Agent::config_builder()
            .proxy(Some(proxy))
            .input_buffer_size(16 * 1024)
            .output_buffer_size(16 * 1024)
            .max_idle_connections(3)
            .max_idle_connections_per_host(2)
            .build()
            .into())
    }

    /// A TCP stream to `host:port` through the proxy.
    async fn tunnel(&self, host: &str, port: u16) -> anyhow::Result<TcpStream> {
        let proxy = (self.host.as_str(), self.port);
        match self.scheme {
            Scheme::Socks5 => {
                let stream = match &self.credentials {
                    Some((user, password)) => {
                        tokio_socks::tcp::Socks5Stream::connect_with_password(
                            proxy,
                            (host, port),
                            user,
                            password,
                        )
                        .await
                    }
                    None => tokio_socks::tcp::Socks5Stream::connect(proxy, (host, port)).await,
                }
                .map_err(|e| anyhow::anyhow!("SOCKS5 proxy: {e}"))?;
                Ok(stream.into_inner())
            }
            Scheme::Http => {
                let tcp = TcpStream::connect(proxy)
                    .await
                    .map_err(|e| anyhow::anyhow!("HTTP proxy: {e}"))?;
                self.http_connect(tcp, host, port).await
            }
        }
    }

    /// Asks an HTTP proxy on `tcp` for a tunnel to `host:port`; the stream is the
    /// tunnel once it answers 200.
    async fn http_connect(
        &self,
        tcp: TcpStream,
        host: &str,
        port: u16,
    ) -> anyhow::Result<TcpStream> {
        let target = format!("{host}:{port}");
        let mut request = Request::builder()
            .method(Method::CONNECT)
            .uri(target.as_str())
            .header(header::HOST, target.as_str());
        if let Some((user, password)) = &self.credentials {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            request = request.header(header::PROXY_AUTHORIZATION, format!("Basic {token}"));
        }
        let request = request.body(http_body_util::Empty::<bytes::Bytes>::new())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        // The connection is driven until the proxy answers; a 2xx ends it (hyper
        // hands the socket back as the tunnel), anything else is an answer to stop
        // at, not to wait behind.
        let answer = sender.send_request(request);
        drop(sender);
        let mut conn = std::pin::pin!(conn.without_shutdown());
        let mut answer = std::pin::pin!(answer);
        let (status, parts) = tokio::select! {
            response = &mut answer => (response?.status(), None),
            parts = &mut conn => (answer.await?.status(), Some(parts?)),
        };
        if !status.is_success() {
            anyhow::bail!("HTTP proxy refused the tunnel: {status}");
        }
        let parts = match parts {
            Some(parts) => parts,
            None => conn.await?,
        };
        anyhow::ensure!(
            parts.read_buf.is_empty(),
            "HTTP proxy sent data before the tunnel was up"
        );
        Ok(parts.io.into_inner())
    }
}

/// Dials WhatsApp (or the test build's WebSocket URL) through a proxy.
pub struct ProxiedTransportFactory {
    proxy: Proxy,
    url: String,
}

impl ProxiedTransportFactory {
    pub fn new(proxy: Proxy, url: Option<String>) -> Self {
        Self {
            proxy,
            url: url.unwrap_or_else(|| WHATSAPP_WEB_WS_URL.to_owned()),
        }
    }

    async fn dial(
        &self,
    ) -> anyhow::Result<(Arc<dyn Transport>, async_channel::Receiver<TransportEvent>)> {
        let uri: Uri = self.url.parse()?;
        let host = uri
            .host()
            .ok_or_else(|| anyhow::anyhow!("no host in {}", self.url))?;
        let secure = uri.scheme_str() == Some("wss");
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let tcp = self.proxy.tunnel(host, port).await?;
        let connector = if secure {
            whatsapp_rust::transport::default_tls_connector()
        } else {
            Connector::Plain
        };
        let stream = connector.wrap(host, tcp).await?;
        let (ws, _) = tokio_websockets::ClientBuilder::from_uri(uri.clone())
            .add_header(
                header::ORIGIN,
                header::HeaderValue::from_static(WHATSAPP_WEB_ORIGIN),
            )?
            .connect_on(stream)
            .await?;
        Ok(from_websocket(ws))
    }
}

#[async_trait::async_trait]
impl TransportFactory for ProxiedTransportFactory {
    async fn create_transport(
        &self,
    ) -> Result<(Arc<dyn Transport>, async_channel::Receiver<TransportEvent>), anyhow::Error> {
        let dialed = tokio::time::timeout(DIAL_TIMEOUT, self.dial())
            .await
            .map_err(|_| anyhow::anyhow!("dialing through the proxy timed out"))
            .and_then(|dialed| dialed);
        if let Err(e) = &dialed {
            // whatsapp-rust logs only that the transport did not open. The error
            // names hosts and statuses, never the proxy's credentials.
            tracing::warn!(proxy = %self.proxy.host, error = %e, "cannot reach WhatsApp through the proxy");
        }
        dialed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_parse_without_echoing_secrets() {
        let socks = Proxy::parse("socks5://bob:s%40cret@10.0.0.1:1081").unwrap();
        assert_eq!(
            (socks.scheme, socks.host.as_str(), socks.port),
            (Scheme::Socks5, "10.0.0.1", 1081)
        );
        assert_eq!(
            socks.credentials,
            Some(("bob".to_owned(), "s@cret".to_owned()))
        );
        assert!(!format!("{socks:?}").contains("cret"));
        let http = Proxy::parse("HTTP://proxy.example").unwrap();
        assert_eq!(
            (http.scheme, http.port, http.credentials),
            (Scheme::Http, 80, None),
            "Go's default port for http://"
        );
        assert_eq!(Proxy::parse("SOCKS5://[::1]:9050").unwrap().host, "::1");
        for bad in [
            "https://p:3128",
            "ftp://p",
            "p:3128",
            "socks5://:1",
            "",
            "socks5://p:99999",
            "http://p:3128/path",
            "socks5://bob@p:1080",
        ] {
            let err = Proxy::parse(bad).unwrap_err();
            assert!(err.starts_with("--whatsapp-proxy"), "{bad}: {err}");
        }
        let err = Proxy::parse("https://user:hunter2@p:3128").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
