//! The HTTP edge's cost: the real server binary (default logs, logged out) beside a
//! bare axum server answering the same envelopes, each in its own process, loaded in
//! turn by the same client with 64 keep-alive connections. Two requests:
//! `GET /app/status` and a `POST /send/message` that fails validation (a raw-socket
//! client, so that the client is not what is measured). A third process is the bare
//! server with the server's own request line (its log setup and `LogLayer`): what the
//! line costs by itself. Reported: requests per second of each, and the ratios, per
//! round and as medians.
//!
//! `cargo bench --bench http_edge` (`ROUNDS=n`, `SECONDS=n` per measurement).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CONNECTIONS: usize = 64;
const BINARY: &str = env!("CARGO_BIN_EXE_whatsapp-api");
const STATUS: &str = r#"{"code":200,"message":"Success","results":{"is_connected":false,"is_logged_in":false,"device_id":null,"jid":null,"state":"logged_out"}}"#;
const INVALID: &str = r#"{"code":400,"message":"message: cannot be blank.","results":null}"#;

/// The bare server: the same answers, nothing else (run as this program with
/// `HTTP_EDGE_BARE=<port>`); with `logged`, the server's request line too.
async fn bare(port: u16, logged: bool) {
    use axum::http::{StatusCode, header};
    use axum::routing::{get, post};
    let json = |status: StatusCode, body: &'static str| {
        (status, [(header::CONTENT_TYPE, "application/json")], body)
    };
    let app =
        axum::Router::new()
            .route(
                "/app/status",
                get(move || async move { json(StatusCode::OK, STATUS) }),
            )
            .route(
                "/send/message",
                post(move |_body: axum::body::Bytes| async move {
                    json(StatusCode::BAD_REQUEST, INVALID)
                }),
            );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    if logged {
        let _logs = whatsapp_api::logs::init(false, whatsapp_api::config::LogFormat::Text);
        let app = app.layer(whatsapp_api::http::edge::LogLayer);
        axum::serve(listener, app).await.unwrap();
    } else {
        axum::serve(listener, app).await.unwrap();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_up(base: &str) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client
            .get(format!("{base}/app/status"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} did not come up");
}

/// Requests per second over `seconds`, `CONNECTIONS` connections at once, each
/// sending its next request when the last answer is in. A bare HTTP/1.1 client on
/// raw sockets: a general-purpose client costs more per request than the servers
/// measured, and would measure itself.
async fn load(base: &str, post: bool, seconds: f64) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://").to_owned();
    let request: Arc<[u8]> = if post {
        let body = "phone=6289685024091";
        format!(
            "POST /send/message HTTP/1.1\r\nHost: {addr}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
        .into()
    } else {
        format!("GET /app/status HTTP/1.1\r\nHost: {addr}\r\n\r\n")
            .into_bytes()
            .into()
    };
    let expected: &'static [u8] = if post {
        b"HTTP/1.1 400"
    } else {
        b"HTTP/1.1 200"
    };
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (done, addr, request) = (done.clone(), addr.clone(), request.clone());
            tokio::spawn(async move {
                let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
                socket.set_nodelay(true).unwrap();
                let mut buf = Vec::with_capacity(4096);
                while Instant::now() < until {
                    socket.write_all(&request).await.unwrap();
                    buf.clear();
                    // Headers, then as much body as Content-Length says.
                    let (head_end, length) = loop {
                        let mut chunk = [0u8; 4096];
                        let n = socket.read(&mut chunk).await.unwrap();
                        assert!(n > 0, "the server closed the connection");
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = std::str::from_utf8(&buf[..at])
                                .unwrap()
                                .to_ascii_lowercase();
                            let length: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .map(|v| v.trim().parse().unwrap())
                                .expect("a Content-Length");
                            break (at + 4, length);
                        }
                    };
                    assert!(
                        buf.starts_with(expected),
                        "{}",
                        String::from_utf8_lossy(&buf)
                    );
                    while buf.len() < head_end + length {
                        let mut chunk = [0u8; 4096];
                        let n = socket.read(&mut chunk).await.unwrap();
                        assert!(n > 0, "the server closed the connection");
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    if let Ok(port) = std::env::var("HTTP_EDGE_BARE") {
        bare(
            port.parse().unwrap(),
            std::env::var_os("HTTP_EDGE_LOGGED").is_some(),
        )
        .await;
        return;
    }
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seconds: f64 = std::env::var("SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3.0);
    let dir = tempfile::tempdir().unwrap();

    let ours_port = free_port();
    // `EDGE_LOG=warn` (a RUST_LOG filter for the server) shows what the logs cost.
    let log = std::env::var("EDGE_LOG").ok();
    let mut server = Command::new(BINARY);
    match &log {
        Some(filter) => server.env("RUST_LOG", filter),
        None => server.env_remove("RUST_LOG"),
    };
    let _ours = Process(
        server
            .args(["--port", &ours_port.to_string(), "--host", "127.0.0.1"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let bare_process = |logged: bool| {
        let port = free_port();
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.env("HTTP_EDGE_BARE", port.to_string());
        if logged {
            // The server's default filter, whatever this shell's RUST_LOG says.
            command.env("HTTP_EDGE_LOGGED", "1").env_remove("RUST_LOG");
        }
        let process = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        (Process(process), format!("http://127.0.0.1:{port}"))
    };
    let (_bare, bare) = bare_process(false);
    let (_logged, logged) = bare_process(true);
    let ours = format!("http://127.0.0.1:{ours_port}");
    wait_up(&ours).await;
    wait_up(&bare).await;
    wait_up(&logged).await;
    // Both answer as expected before anything is measured.
    let status = reqwest::get(format!("{ours}/app/status")).await.unwrap();
    assert_eq!(status.text().await.unwrap(), STATUS);

    let logs = log.map_or_else(
        || "its default logs (info, a line per request)".to_owned(),
        |f| format!("RUST_LOG={f}"),
    );
    println!(
        "http_edge: {CONNECTIONS} keep-alive connections, {seconds} s per measurement, {rounds} rounds; \
         the server with {logs}"
    );
    for (name, post) in [
        ("GET /app/status", false),
        ("POST /send/message (400)", true),
    ] {
        let (mut ratios, mut line_ratios) = (Vec::new(), Vec::new());
        let (mut ours_rates, mut bare_rates, mut logged_rates) =
            (Vec::new(), Vec::new(), Vec::new());
        // Warm them up.
        for base in [&bare, &logged, &ours] {
            load(base, post, 0.5).await;
        }
        for round in 1..=rounds {
            let b = load(&bare, post, seconds).await;
            let l = load(&logged, post, seconds).await;
            let o = load(&ours, post, seconds).await;
            println!(
                "  {name}, round {round}: bare {b:.0}/s, bare with the request line {l:.0}/s ({:.2}x), \
                 server {o:.0}/s ({:.2}x)",
                l / b,
                o / b
            );
            ratios.push(o / b);
            line_ratios.push(l / b);
            ours_rates.push(o);
            bare_rates.push(b);
            logged_rates.push(l);
        }
        println!(
            "  {name}: median bare {:.0}/s; bare with the request line {:.0}/s, {:.2}x; \
             server {:.0}/s, ratio {:.2}x",
            median(bare_rates),
            median(logged_rates),
            median(line_ratios),
            median(ours_rates),
            median(ratios)
        );
    }
}
