//! Fetching what a request names by URL (`image_url`, `file_url`, …): http(s) only,
//! a size cap, a time limit, and never an address on this machine or its private
//! networks unless `--allow-private-urls` says so. Every address a name resolves to
//! is checked when the connection is made, redirects included, so neither a
//! redirect nor a DNS answer that changes between checks can reach inside.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use tempfile::TempPath;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL itself is refused (scheme, or where it points).
    #[error("{0}")]
    NotAllowed(String),
    #[error("the download is larger than {0} bytes")]
    TooLarge(u64),
    /// The server could not be reached or answered with an error.
    #[error("{0}")]
    Failed(String),
}

/// What was fetched, in a temporary file.
pub struct Fetched {
    pub path: TempPath,
    pub len: u64,
    pub content_type: Option<String>,
    /// The last path segment of the URL, when it looks like a file name.
    pub file_name: Option<String>,
}

#[derive(Clone)]
pub struct Fetcher {
    agent: ureq::Agent,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher").finish_non_exhaustive()
    }
}

/// Resolves names like the default resolver, but refuses addresses that are not
/// on the public internet.
#[derive(Debug)]
struct PublicOnly {
    inner: DefaultResolver,
    allow_private: bool,
}

impl Resolver for PublicOnly {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addrs = self.inner.resolve(uri, config, timeout)?;
        if !self.allow_private
            && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip()))
        {
            return Err(ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{} is not a public address", bad.ip()),
            )));
        }
        Ok(addrs)
    }
}

/// Whether `ip` is on the public internet: not loopback, private, link-local,
/// shared (CGNAT), unspecified, multicast, documentation or reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || v6 == Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0) // NAT64 prefix itself
                || first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

impl Fetcher {
    pub fn new(allow_private: bool, timeout: Duration) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .max_redirects(5)
            // A proxy would resolve the target itself, past the address check.
            .proxy(None)
            .http_status_as_error(false)
            .user_agent("whatsapp-api")
            .build();
        let resolver = PublicOnly {
            inner: DefaultResolver::default(),
            allow_private,
        };
        Self {
            agent: ureq::Agent::with_parts(config, DefaultConnector::default(), resolver),
        }
    }

    /// Downloads `url` into a temporary file in `dir`, at most `max_bytes`
    /// (blocking: run it on the blocking pool).
    pub fn download(&self, url: &str, dir: &Path, max_bytes: u64) -> Result<Fetched, FetchError> {
        let url = url.trim();
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        if !matches!(scheme.as_deref(), Some("http" | "https")) {
            return Err(FetchError::NotAllowed(
                "only http:// and https:// URLs can be fetched".to_owned(),
            ));
        }
        let parsed: ureq::http::Uri = url
            .parse()
            .ok()
            .filter(|u: &ureq::http::Uri| u.host().is_some())
            .ok_or_else(|| FetchError::NotAllowed("not a valid URL".to_owned()))?;
        let mut res = self.agent.get(url).call().map_err(|e| match e {
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
                FetchError::NotAllowed(io.to_string())
            }
            other => FetchError::Failed(format!("cannot fetch the URL: {other}")),
        })?;
        let status = res.status();
        if !status.is_success() {
            return Err(FetchError::Failed(format!(
                "the URL answered HTTP {}",
                status.as_u16()
            )));
        }
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let file_name = parsed
            .path()
            .rsplit('/')
            .next()
            .filter(|n| n.contains('.') && n.len() <= 100)
            .map(|n| {
                sanitize_filename::sanitize(
                    percent_encoding::percent_decode_str(n).decode_utf8_lossy(),
                )
            });
        let temp = tempfile::Builder::new()
            .prefix("fetched-")
            .tempfile_in(dir)
            .map_err(|e| FetchError::Failed(format!("cannot create a temporary file: {e}")))?;
        let (mut file, path) = temp.into_parts();
        let mut body = res.body_mut().as_reader().take(max_bytes + 1);
        let mut buf = vec![0u8; 64 * 1024];
        let mut len: u64 = 0;
        loop {
            let n = body
                .read(&mut buf)
                .map_err(|e| FetchError::Failed(format!("the download broke off: {e}")))?;
            if n == 0 {
                break;
            }
            len += n as u64;
            if len > max_bytes {
                return Err(FetchError::TooLarge(max_bytes));
            }
            file.write_all(&buf[..n])
                .map_err(|e| FetchError::Failed(format!("cannot store the download: {e}")))?;
        }
        Ok(Fetched {
            path,
            len,
            content_type,
            file_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn only_http_urls_are_fetched() {
        let fetcher = Fetcher::new(false, Duration::from_secs(1));
        let dir = tempfile::tempdir().unwrap();
        for url in [
            "file:///etc/passwd",
            "ftp://example.com/x",
            "gopher://x",
            "not a url",
        ] {
            assert!(
                matches!(
                    fetcher.download(url, dir.path(), 10),
                    Err(FetchError::NotAllowed(_))
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn loopback_is_refused_unless_allowed() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(2) {
                let mut stream = stream.unwrap();
                let mut req = [0u8; 1024];
                let _ = stream.read(&mut req);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 5\r\n\r\nhello",
                );
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{port}/a.png");
        let refused = Fetcher::new(false, Duration::from_secs(5)).download(&url, dir.path(), 100);
        assert!(matches!(refused, Err(FetchError::NotAllowed(m)) if m.contains("127.0.0.1")));
        let fetched = Fetcher::new(true, Duration::from_secs(5))
            .download(&url, dir.path(), 100)
            .unwrap();
        assert_eq!(std::fs::read(&fetched.path).unwrap(), b"hello");
        assert_eq!(fetched.content_type.as_deref(), Some("image/png"));
        assert_eq!(fetched.file_name.as_deref(), Some("a.png"));
        assert!(matches!(
            Fetcher::new(true, Duration::from_secs(5)).download(&url, dir.path(), 3),
            Err(FetchError::TooLarge(3))
        ));
    }
}
