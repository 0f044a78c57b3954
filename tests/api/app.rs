//! `/app/login`, `/app/logout`, `/app/reconnect`.

use std::time::Duration;

use serde_json::Value;
use whatsapp_api::whatsapp::SessionStatus;

use crate::common::decode_qr;
use crate::helpers::TestApp;

const CODE: &str =
    "2@QVBJIHRlc3QgcmVm,bm9pc2Uga2V5IGhlcmU=,aWRlbnRpdHkga2V5IGhlcmU=,YWR2IHNlY3JldCBoZXJl";

fn qr_files(app: &TestApp) -> Vec<String> {
    std::fs::read_dir(app.statics.join("images/qrcode"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn login_renders_the_pairing_code_as_a_served_png() {
    let app = TestApp::spawn().await;
    app.wa.set_status(SessionStatus::LoggedOut);
    app.wa.set_pairing(CODE, Duration::from_secs(60));

    let res = app.get("/app/login").await;

    res.assert_success("Success");
    assert!(
        res.text.contains(r#""results":{"qr_duration":"#),
        "results keys in order: {}",
        res.text
    );
    let duration = res.body["results"]["qr_duration"].as_u64().unwrap();
    assert!((58..=60).contains(&duration), "{duration}");
    let link = res.body["results"]["qr_link"].as_str().unwrap();
    let prefix = format!("{}/statics/images/qrcode/scan-qr-", app.base);
    assert!(
        link.starts_with(&prefix) && link.ends_with(".png"),
        "{link}"
    );
    let uuid = &link[prefix.len()..link.len() - 4];
    assert_eq!(uuid::Uuid::parse_str(uuid).unwrap().get_version_num(), 4);

    let png = app.client.get(link).send().await.unwrap();
    assert_eq!(png.status(), 200);
    assert_eq!(png.headers()["content-type"], "image/png");
    assert_eq!(decode_qr(&png.bytes().await.unwrap()), CODE);
}

#[tokio::test]
async fn login_link_follows_forwarded_host_and_proto() {
    let app = TestApp::spawn().await;
    app.wa.set_status(SessionStatus::LoggedOut);
    app.wa.set_pairing(CODE, Duration::from_secs(60));

    let res = app
        .client
        .get(app.url("/app/login"))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "wa.example.com")
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    let link = body["results"]["qr_link"].as_str().unwrap();
    assert!(
        link.starts_with("https://wa.example.com/statics/images/qrcode/scan-qr-"),
        "{link}"
    );
}

#[tokio::test]
async fn login_again_returns_the_same_image_until_the_code_changes() {
    let app = TestApp::spawn().await;
    app.wa.set_status(SessionStatus::LoggedOut);
    app.wa.set_pairing(CODE, Duration::from_secs(60));

    let first = app.get("/app/login").await.body["results"]["qr_link"].clone();
    let again = app.get("/app/login").await.body["results"]["qr_link"].clone();
    assert_eq!(first, again);
    assert_eq!(qr_files(&app).len(), 1);

    app.wa
        .set_pairing("2@next,code,for,pairing", Duration::from_secs(20));
    let next = app.get("/app/login").await;
    let next_link = next.body["results"]["qr_link"].as_str().unwrap();
    assert_ne!(Value::from(next_link), first);
    assert!(next.body["results"]["qr_duration"].as_u64().unwrap() <= 20);
    let files = qr_files(&app);
    assert_eq!(files.len(), 1, "the replaced image is deleted: {files:?}");
    assert!(next_link.ends_with(&files[0]));
}

#[tokio::test]
async fn the_image_is_deleted_when_its_code_expires() {
    let app = TestApp::spawn().await;
    app.wa.set_status(SessionStatus::LoggedOut);
    app.wa.set_pairing(CODE, Duration::from_millis(700));

    app.get("/app/login").await.assert_success("Success");
    assert_eq!(qr_files(&app).len(), 1);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(qr_files(&app).is_empty());
}

#[tokio::test]
async fn login_when_logged_in_is_refused() {
    let app = TestApp::spawn().await;
    app.get("/app/login")
        .await
        .assert_error(500, "you already logged in :)");
    app.wa.set_status(SessionStatus::Disconnected);
    app.get("/app/login")
        .await
        .assert_error(500, "you already logged in :)");
}

#[tokio::test]
async fn login_with_code_gives_the_code_for_the_normalised_number() {
    let app = TestApp::spawn().await;
    app.wa.set_status(SessionStatus::LoggedOut);
    app.wa.set_pairing(CODE, Duration::from_secs(60));

    let res = app
        .get("/app/login-with-code?phone=%2B62%20896-8502-4091")
        .await;

    res.assert_success("Login with code success");
    assert_eq!(res.body["results"]["pair_code"], "ABCD-1234");
    assert_eq!(app.wa.state.lock().unwrap().link_codes, ["6289685024091"]);
}

#[tokio::test]
async fn login_with_code_refuses_a_bad_number_before_asking_whatsapp() {
    let app = TestApp::spawn().await;
    app.wa.set_status(SessionStatus::LoggedOut);
    app.wa.set_pairing(CODE, Duration::from_secs(60));

    app.get("/app/login-with-code")
        .await
        .assert_error(400, "phone: cannot be blank.");
    app.get("/app/login-with-code?phone=0812345678")
        .await
        .assert_error(400, "phone: must be a valid E164 number.");
    app.get("/app/login-with-code?phone=62812abc")
        .await
        .assert_error(400, "phone: must be a valid E164 number.");
    assert!(app.wa.state.lock().unwrap().link_codes.is_empty());
}

#[tokio::test]
async fn login_with_code_when_logged_in_is_refused() {
    let app = TestApp::spawn().await;
    app.get("/app/login-with-code?phone=6289685024091")
        .await
        .assert_error(500, "you already logged in :)");
    assert!(app.wa.state.lock().unwrap().link_codes.is_empty());
}

#[tokio::test]
async fn logout_removes_the_session_and_qr_images() {
    let app = TestApp::spawn().await;
    app.wa.set_status(SessionStatus::LoggedOut);
    app.wa.set_pairing(CODE, Duration::from_secs(60));
    app.get("/app/login").await.assert_success("Success");
    app.wa.set_status(SessionStatus::Connected);

    let res = app.get("/app/logout").await;

    res.assert_success("Success logout");
    assert_eq!(res.body["results"], Value::Null);
    assert!(res.text.contains(r#""results":null"#));
    assert_eq!(app.wa.logouts.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(qr_files(&app).is_empty());
}

#[tokio::test]
async fn logout_without_a_session_says_so() {
    let app = TestApp::spawn().await;
    app.wa.set_status(SessionStatus::LoggedOut);
    app.get("/app/logout")
        .await
        .assert_error(500, "the store doesn't contain a device JID");
}

#[tokio::test]
async fn reconnect_reopens_the_connection() {
    let app = TestApp::spawn().await;
    app.wa.set_status(SessionStatus::Disconnected);

    let res = app.get("/app/reconnect").await;

    res.assert_success("Reconnect success");
    assert_eq!(res.body["results"], Value::Null);
    assert_eq!(
        app.wa.reconnects.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn reconnect_without_a_session_is_refused() {
    let app = TestApp::spawn().await;
    app.wa.set_status(SessionStatus::LoggedOut);
    app.get("/app/reconnect")
        .await
        .assert_error(500, "you are not loggin");
}
