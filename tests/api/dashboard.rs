//! The dashboard at `/` and `/app/status`, and the dashboard driven in headless
//! Chromium by `tests/browser/dashboard.mjs`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use whatsapp_api::whatsapp::SessionStatus;

use crate::helpers::{DEVICE_ID, TestApp};

#[tokio::test]
async fn status_reports_each_session_state() {
    let app = TestApp::spawn().await;
    for (state, connected, logged_in, device, phase) in [
        (SessionStatus::LoggedOut, false, false, None, "logged_out"),
        (
            SessionStatus::Disconnected,
            false,
            true,
            Some(DEVICE_ID),
            "connecting",
        ),
        (
            SessionStatus::Connected,
            true,
            true,
            Some(DEVICE_ID),
            "connected",
        ),
    ] {
        app.wa.set_status(state);
        let res = app.get("/app/status").await;
        res.assert_success("Success");
        let results = &res.body["results"];
        assert_eq!(
            results["is_connected"], connected,
            "{state:?}: {}",
            res.text
        );
        assert_eq!(
            results["is_logged_in"], logged_in,
            "{state:?}: {}",
            res.text
        );
        assert_eq!(
            results["device_id"].as_str(),
            device,
            "{state:?}: {}",
            res.text
        );
        assert_eq!(results["state"], phase, "{state:?}: {}", res.text);
    }
}

/// The `assets/...` names the page links to.
fn linked_assets(page: &str) -> Vec<String> {
    page.match_indices("\"assets/")
        .map(|(at, _)| {
            let rest = &page[at + 1..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

#[tokio::test]
async fn the_page_loads_nothing_from_other_hosts_and_its_assets_are_cached() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let headers = res.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-cache");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    let page = res.text().await.unwrap();
    assert!(
        !page.contains("http://") && !page.contains("https://") && !page.contains("//cdn"),
        "the page names another host"
    );

    let assets = linked_assets(&page);
    assert_eq!(assets.len(), 2, "{assets:?}");
    for asset in assets {
        let res = app
            .client
            .get(app.url(&format!("/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{asset}");
        assert_eq!(
            res.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        let expected = if asset.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(res.headers()["content-type"], expected, "{asset}");
        let body = res.text().await.unwrap();
        assert!(body.len() > 1000, "{asset} is {} bytes", body.len());
        assert!(!body.contains("https://"), "{asset} names another host");
    }
}

#[tokio::test]
async fn an_unknown_or_stale_asset_is_a_404_in_the_envelope() {
    let app = TestApp::spawn().await;
    app.get("/assets/app-0000000000000000.js")
        .await
        .assert_error(404, "Cannot GET /assets/app-0000000000000000.js");
}

const QR_CODE: &str =
    "2@ZGFzaGJvYXJkIHRlc3Q=,bm9pc2Uga2V5IGhlcmU=,aWRlbnRpdHkga2V5IGhlcmU=,YWR2IHNlY3JldCBoZXJl";

const NEXT_QR_CODE: &str =
    "2@bmV4dCBjb2Rl,bm9pc2Uga2V5IGhlcmU=,aWRlbnRpdHkga2V5IGhlcmU=,YWR2IHNlY3JldCBoZXJl";

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "{} is missing: install Debian's chromium (`.ci/run` does) or set CHROMIUM",
        path.display()
    );
    path
}

/// Runs the browser script and answers its steps by moving the session along.
#[tokio::test]
async fn the_dashboard_works_in_headless_chromium() {
    let chromium = chromium();
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    crate::common::ensure_npm(&browser_dir, "playwright-core");
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    let _ = std::fs::remove_dir_all(&shots);

    let app = TestApp::spawn().await;
    app.wa.set_status(SessionStatus::LoggedOut);
    app.wa.set_pairing(QR_CODE, Duration::from_secs(4));

    let mut child = Command::new("node")
        .arg(browser_dir.join("dashboard.mjs"))
        .arg(format!("{}/", app.base))
        .arg(&shots)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node is needed for the browser test");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();

    let mut steps = Vec::new();
    let run = async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            println!("browser: {line}");
            let Some(step) = line.strip_prefix("STEP ") else {
                continue;
            };
            match step {
                // The first code expires in a few seconds; WhatsApp has the next.
                "qr-shown" => app.wa.set_pairing(NEXT_QR_CODE, Duration::from_secs(60)),
                // The phone scanned the code; and a notice for the page's socket.
                "qr-renewed" => {
                    app.wa.set_status(SessionStatus::Connected);
                    let hook = serde_json::json!({"webhook_url": "https://hooks.example.com/in"});
                    let res = app
                        .call("PATCH", "/devices/default/webhook", None, Some(hook))
                        .await;
                    assert_eq!(res.status, 200, "{}", res.text);
                }
                "message-sent" => {
                    let sent = app.wa.sent();
                    assert_eq!(sent.len(), 1, "one message reached the session");
                    assert_eq!(sent[0].0.to_string(), "6289685028129@s.whatsapp.net");
                    assert_eq!(sent[0].1.text(), Some("hello"));
                }
                "logout-dismissed" => {
                    assert_eq!(app.wa.logouts.load(Ordering::SeqCst), 0);
                }
                "logged-out" => assert_eq!(app.wa.logouts.load(Ordering::SeqCst), 1),
                // The second account's session is linked to another number.
                "account-added" => {
                    app.account("second").wa.state.lock().unwrap().device =
                        Some("6281111111111:3@s.whatsapp.net".into());
                }
                "second-sent" => {
                    let sent = app.account("second").wa.sent();
                    assert_eq!(sent.len(), 1, "the send went through the second account");
                    assert_eq!(sent[0].1.text(), Some("from the second"));
                    assert_eq!(app.wa.sent().len(), 1, "not through the first");
                }
                "all-removed" => {
                    // Nothing made an account behind the user's back.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let list = app.get("/devices").await;
                    assert_eq!(list.body["results"], serde_json::json!([]), "{}", list.text);
                }
                "account-removed" => {
                    let second = app.account("second");
                    assert_eq!(second.wa.logouts.load(Ordering::SeqCst), 1);
                    assert!(
                        std::fs::read_dir(app.storage.join("accounts"))
                            .map(|d| d.count() == 0)
                            .unwrap_or(true),
                        "the second account's folder is gone"
                    );
                }
                other => panic!("unknown step {other}"),
            }
            steps.push(step.to_owned());
            stdin.write_all(b"go\n").await.unwrap();
        }
        child.wait().await.unwrap()
    };
    let status = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the browser test finished within two minutes");
    assert!(status.success(), "the browser checks failed (see stderr)");
    assert_eq!(
        steps,
        [
            "qr-shown",
            "qr-renewed",
            "message-sent",
            "logout-dismissed",
            "logged-out",
            "account-added",
            "second-sent",
            "account-removed",
            "all-removed"
        ]
    );
    for shot in [
        "desktop-login.png",
        "desktop-logged-in.png",
        "desktop-accounts.png",
        "phone-login.png",
    ] {
        let png = std::fs::read(shots.join(shot)).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{shot} is a PNG");
    }
    println!("screenshots: {}", shots.display());
}

/// Runs `attack.mjs` against `app`: the dashboard works, then a hostile page on
/// another site, in the same browser, tries to send, read and log out.
async fn attack(app: &TestApp, user: &str, password: &str) {
    let chromium = chromium();
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    crate::common::ensure_npm(&browser_dir, "playwright-core");
    app.wa.set_status(SessionStatus::Connected);
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        Command::new("node")
            .arg(browser_dir.join("attack.mjs"))
            .arg(format!("{}/", app.base))
            .args([user, password])
            .env("CHROMIUM", &chromium)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the attack finished within two minutes")
    .expect("node is needed for the browser test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}{stderr}");
    assert!(
        output.status.success(),
        "the browser checks failed:\n{stderr}"
    );
    assert!(stdout.contains("ATTACKED"), "the attacks did not run");
    assert!(
        app.wa.sent().is_empty(),
        "the hostile page sent {:?}",
        app.wa.sent()
    );
    assert_eq!(app.wa.logouts.load(Ordering::SeqCst), 0, "logged out");
}

/// Without auth only the server's origin check stands between the page and the API
/// (without it, this test sees the page's message sent).
#[tokio::test]
async fn a_hostile_page_cannot_use_the_browser_against_an_open_server() {
    let app = TestApp::spawn().await;
    attack(&app, "-", "-").await;
    assert_eq!(
        app.get("/app/status").await.body["results"]["state"],
        "connected"
    );
}

/// Chromium holds the credentials for the API's origin; the server refuses the
/// hostile page's requests whether or not the browser attaches them.
#[tokio::test]
async fn a_hostile_page_cannot_use_the_owners_credentials_against_the_api() {
    let app = TestApp::spawn_with(&["--basic-auth", "owner:s3cret"]).await;
    attack(&app, "owner", "s3cret").await;
    assert_eq!(app.get("/app/status").await.status, 401);
}
