//! Test-build-only wiring (cargo feature `e2e`): lets the client reach a fake WhatsApp
//! server's media host over plain HTTP on loopback. Never compiled into a release build.

use whatsapp_rust::http::UreqHttpClient;
use whatsapp_rust::wacore::net::{HttpClient, HttpRequest, HttpResponse};

/// Delegates to the normal HTTP client, but sends `https://` requests for loopback hosts
/// (`127.0.0.1`, `localhost`) as plain `http://`, since the fake has no certificate.
#[derive(Default)]
pub struct LoopbackHttpClient {
    inner: UreqHttpClient,
}

fn downgrade_loopback(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(host, "127.0.0.1" | "localhost" | "[::1]").then(|| format!("http://{rest}"))
}

#[whatsapp_rust::async_trait]
impl HttpClient for LoopbackHttpClient {
    async fn execute(&self, mut request: HttpRequest) -> anyhow::Result<HttpResponse> {
        if let Some(url) = downgrade_loopback(&request.url) {
            request.url = url;
        }
        self.inner.execute(request).await
    }

    fn execute_upload(
        &self,
        mut request: HttpRequest,
        body: whatsapp_rust::wacore::net::UploadBody,
        content_length: u64,
    ) -> anyhow::Result<HttpResponse> {
        if let Some(url) = downgrade_loopback(&request.url) {
            request.url = url;
        }
        self.inner.execute_upload(request, body, content_length)
    }
}

#[cfg(test)]
mod tests {
    use super::downgrade_loopback;

    #[test]
    fn only_loopback_hosts_are_downgraded() {
        assert_eq!(
            downgrade_loopback("https://127.0.0.1:8443/mms/image/x").as_deref(),
            Some("http://127.0.0.1:8443/mms/image/x")
        );
        assert_eq!(
            downgrade_loopback("https://localhost/x").as_deref(),
            Some("http://localhost/x")
        );
        assert_eq!(downgrade_loopback("https://mmg.whatsapp.net/x"), None);
        assert_eq!(downgrade_loopback("https://127.0.0.1.evil.com/x"), None);
    }
}
