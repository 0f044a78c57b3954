//! Helpers shared by the HTTP tests and the end-to-end tests: sample media, upload
//! parts, QR decoding, requests for one account.

use std::io::Cursor;
use std::process::Command;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

/// A JPEG with a gradient, so that resizing it shows.
pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
        .unwrap();
    out
}

/// A short H.264 mp4 made by ffmpeg (which the tests need, as the server does).
pub fn sample_video(dir: &std::path::Path, name: &str, extra: &[&str]) -> Vec<u8> {
    lavfi(dir, name, "testsrc=duration=2:size=320x240:rate=10", extra)
}

/// A second of a 440 Hz tone in the format `name`'s extension names.
pub fn sample_audio(dir: &std::path::Path, name: &str) -> Vec<u8> {
    lavfi(dir, name, "sine=frequency=440:duration=1", &[])
}

/// What ffmpeg makes of the lavfi `source` with `extra` output options, as `name`.
pub fn lavfi(dir: &std::path::Path, name: &str, source: &str, extra: &[&str]) -> Vec<u8> {
    let path = dir.join(name);
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(source)
        .args(extra)
        .arg(&path)
        .status()
        .expect("ffmpeg is needed by the tests (apt-get install ffmpeg)");
    assert!(status.success());
    std::fs::read(path).unwrap()
}

/// A multipart file part.
pub fn file_part(bytes: Vec<u8>, name: &str, mime: &str) -> reqwest::multipart::Part {
    reqwest::multipart::Part::bytes(bytes)
        .file_name(name.to_owned())
        .mime_str(mime)
        .unwrap()
}

/// The text of the one QR code in a PNG.
pub fn decode_qr(png: &[u8]) -> String {
    let img = image::load_from_memory(png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().unwrap().1
}

/// A web server on loopback answering each `(path, content type, body)`; its base
/// URL.
pub async fn web_server(pages: Vec<(&'static str, &'static str, Vec<u8>)>) -> String {
    let mut app = axum::Router::new();
    for (path, content_type, body) in pages {
        app = app.route(
            path,
            axum::routing::get(move || {
                let body = body.clone();
                async move { ([("content-type", content_type)], body) }
            }),
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// A page with Open Graph tags whose image is `/cover.jpg` on the same server; the
/// base URL (the page is `/recipe`).
pub async fn site_with_a_page(title: &str, description: &str) -> String {
    let page = format!(
        r#"<!doctype html><html><head><title>Fallback</title>
        <meta property="og:title" content="{title}">
        <meta property="og:description" content="{description}">
        <meta property="og:image" content="/cover.jpg"></head><body>hi</body></html>"#
    );
    web_server(vec![
        ("/recipe", "text/html; charset=utf-8", page.into_bytes()),
        ("/cover.jpg", "image/jpeg", jpeg(1200, 630)),
    ])
    .await
}

/// A request for the account `device` (`X-Device-Id`, when given), with a JSON body
/// when given.
pub fn account_request(
    client: &reqwest::Client,
    method: &str,
    url: String,
    device: Option<&str>,
    body: Option<serde_json::Value>,
) -> reqwest::RequestBuilder {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client.request(method, url);
    if let Some(device) = device {
        req = req.header("x-device-id", device);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    req
}

/// Installs the locked npm packages of the test scripts in `dir` (`npm ci`) when
/// `probe` (a package) is missing, once per process, so that the README's test
/// command works alone on a fresh machine.
pub fn ensure_npm(dir: &std::path::Path, probe: &str) {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _once = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if dir.join("node_modules").join(probe).exists() {
        return;
    }
    eprintln!("installing {probe}: npm ci --prefix {}", dir.display());
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(dir)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "`npm ci --prefix {}` failed ({s}): the tests need {probe} from the npm registry",
            dir.display()
        ),
        Err(e) => panic!(
            "cannot run npm ({e}): the tests need Node.js and npm \
             (apt-get install nodejs npm; `.ci/run` installs them)"
        ),
    }
}

/// What an MCP client made of `calls` (a list of `{name, arguments}`) at `url`:
/// the official TypeScript SDK over streamable HTTP (`tests/mcp/client.mjs`),
/// with `authorization` as the Authorization header and `device` as X-Device-Id.
/// `{server, tools, results}`; a call the protocol refused has `protocolError`.
pub async fn mcp_client(
    url: &str,
    authorization: Option<&str>,
    device: Option<&str>,
    calls: &serde_json::Value,
) -> serde_json::Value {
    use tokio::io::AsyncWriteExt;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp");
    ensure_npm(&dir, "@modelcontextprotocol/sdk");
    let mut command = tokio::process::Command::new("node");
    command
        .arg(dir.join("client.mjs"))
        .arg(url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(authorization) = authorization {
        command.env("MCP_AUTHORIZATION", authorization);
    }
    if let Some(device) = device {
        command.env("MCP_DEVICE", device);
    }
    let mut child = command.spawn().expect("node runs the MCP client");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(calls.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .expect("the MCP client finishes")
    .unwrap();
    assert!(
        out.status.success(),
        "the MCP client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the MCP client printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A WebSocket client of `/ws`.
pub type Socket =
    tokio_websockets::WebSocketStream<tokio_websockets::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/ws` at `base` (`http://host:port`, the query included in `path`) with
/// `headers`; the error when the server refuses the upgrade.
pub async fn ws_connect(
    base: &str,
    path: &str,
    headers: &[(&'static str, &str)],
) -> Result<Socket, tokio_websockets::Error> {
    let uri = format!("{}{path}", base.replacen("http://", "ws://", 1));
    let mut builder = tokio_websockets::ClientBuilder::new().uri(&uri).unwrap();
    for (name, value) in headers {
        builder = builder.add_header(
            reqwest::header::HeaderName::from_static(name),
            reqwest::header::HeaderValue::from_str(value).unwrap(),
        )?;
    }
    Ok(builder.connect().await?.0)
}

/// The next text frame of `socket` as JSON, within 15 s (`None`: the socket closed).
pub async fn ws_frame(socket: &mut Socket) -> Option<serde_json::Value> {
    use futures_util::StreamExt;
    let wait = std::time::Duration::from_secs(15);
    loop {
        let message = tokio::time::timeout(wait, socket.next())
            .await
            .expect("a /ws frame within 15 s")?
            .ok()?;
        if message.is_close() {
            return None;
        }
        if let Some(text) = message.as_text() {
            return Some(serde_json::from_str(text).unwrap());
        }
    }
}

/// Sends a text frame on `socket`.
pub async fn ws_send(socket: &mut Socket, text: &str) {
    use futures_util::SinkExt;
    socket
        .send(tokio_websockets::Message::text(text.to_owned()))
        .await
        .unwrap();
}
