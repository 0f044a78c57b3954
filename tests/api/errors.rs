//! Bad input of every kind gets a 4xx in the envelope; unknown routes and methods too.

use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn unknown_routes_and_methods_are_enveloped() {
    let app = TestApp::spawn().await;
    app.get("/nope").await.assert_error(404, "Cannot GET /nope");
    app.get("/send/message")
        .await
        .assert_error(405, "Cannot GET /send/message");
    app.get("/statics/images/qrcode/missing.png")
        .await
        .assert_error(404, "Cannot GET /statics/images/qrcode/missing.png");
}

#[tokio::test]
async fn static_folders_are_not_listed() {
    let app = TestApp::spawn().await;
    app.get("/statics/images/qrcode/")
        .await
        .assert_error(404, "Cannot GET /statics/images/qrcode/");
}

#[tokio::test]
async fn wrong_content_type_is_unsupported() {
    let app = TestApp::spawn().await;
    let res = app
        .post_raw("/send/message", "text/plain", b"phone=1".to_vec())
        .await;
    res.assert_error_starting(415, "unsupported content type");
}

#[tokio::test]
async fn malformed_json_is_a_bad_request() {
    let app = TestApp::spawn().await;
    let res = app
        .post_raw(
            "/send/message",
            "application/json",
            b"{\"phone\": ".to_vec(),
        )
        .await;
    res.assert_error_starting(400, "invalid JSON body");
    let res = app
        .post_raw("/send/message", "application/json", b"[1,2]".to_vec())
        .await;
    res.assert_error(400, "invalid JSON body: expected an object");
    let res = app
        .post_json(
            "/send/message",
            json!({"phone": ["6289685024091"], "message": "x"}),
        )
        .await;
    res.assert_error(400, "phone: must be a string, number or boolean.");
}

#[tokio::test]
async fn with_strict_fields_unknown_fields_are_refused() {
    let app = TestApp::spawn_with(&["--strict-fields"]).await;
    app.post_json(
        "/send/message",
        json!({"phone": "6289685024091", "message": "x", "mesage": "typo"}),
    )
    .await
    .assert_error(400, "mesage: is not a known field.");
    app.post_form(
        "/send/message",
        &[("phone", "6289685024091"), ("message", "x"), ("extra", "1")],
    )
    .await
    .assert_error(400, "extra: is not a known field.");
    // The account selector is not a field of any route's query.
    let info = app
        .get("/user/info?phone=6289685024091&device_id=default")
        .await;
    assert!(!info.text.contains("device_id"), "{}", info.text);
    assert!(app.wa.sent().is_empty());
}

#[tokio::test]
async fn malformed_multipart_is_a_bad_request() {
    let app = TestApp::spawn().await;
    let res = app
        .post_raw(
            "/send/message",
            "multipart/form-data; boundary=XYZ",
            b"--XYZ\r\nContent-Disposition: form-data; name=\"phone\"\r\n\r\n62".to_vec(),
        )
        .await;
    res.assert_error_starting(400, "malformed multipart body");
    let res = app
        .post_raw("/send/message", "multipart/form-data", b"x".to_vec())
        .await;
    assert_eq!(res.status, 400, "{}", res.text);
}

#[tokio::test]
async fn non_utf8_text_is_a_bad_request() {
    let app = TestApp::spawn().await;
    let part = reqwest::multipart::Part::bytes(vec![0xff, 0xfe, 0x41]);
    let form = reqwest::multipart::Form::new()
        .text("phone", "6289685024091")
        .part("message", part);
    app.post_multipart("/send/message", form)
        .await
        .assert_error(400, "message: must be valid UTF-8 text.");
    app.post_raw(
        "/send/message",
        "application/x-www-form-urlencoded",
        b"phone=6289685024091&message=%ff".to_vec(),
    )
    .await
    .assert_error(400, "the form is not valid UTF-8");
    let res = app
        .post_raw(
            "/send/message",
            "application/json",
            b"{\"phone\":\"6289685024091\",\"message\":\"\xff\"}".to_vec(),
        )
        .await;
    assert_eq!(res.status, 400, "{}", res.text);
    assert!(app.wa.sent().is_empty());
}

#[tokio::test]
async fn a_huge_text_body_is_too_large() {
    let app = TestApp::spawn().await;
    let big = format!(
        "{{\"phone\":\"6289685024091\",\"message\":\"{}\"}}",
        "a".repeat(2 * 1024 * 1024)
    );
    app.post_raw("/send/message", "application/json", big.into_bytes())
        .await
        .assert_error(413, "request body is too large");
}

#[tokio::test]
async fn a_body_over_the_limit_is_too_large_even_for_uploads() {
    let app = TestApp::spawn_with(&["--max-file-size-mb", "1", "--max-video-size-mb", "1"]).await;
    // The body limit is 50 MB whatever the upload limits.
    let body = vec![b'a'; 51 * 1024 * 1024];
    let res = app
        .post_raw("/send/file", "multipart/form-data; boundary=XYZ", body)
        .await;
    assert_eq!(res.status, 413, "{}", res.text);
    assert_eq!(res.body["message"], "request body is too large");
    assert!(app.temp_files().is_empty());
}

#[tokio::test]
async fn a_request_over_the_time_limit_is_a_408_envelope() {
    let app = TestApp::spawn_with(&["--request-timeout-secs", "1"]).await;
    app.wa.state.lock().unwrap().send_delay = Some(std::time::Duration::from_secs(5));
    let started = std::time::Instant::now();
    let res = app
        .post_form(
            "/send/message",
            &[("phone", "6289685024091"), ("message", "slow")],
        )
        .await;
    res.assert_error(408, "request timed out");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    assert!(app.wa.sent().is_empty(), "the send was abandoned");
}

#[tokio::test]
async fn a_500_gives_the_cause_and_keeps_paths_and_library_dumps_in_the_log() {
    let app = TestApp::spawn().await;
    app.wa.state.lock().unwrap().send_failure = Some(
        "io error at /tmp/upload-Xy12/secret.bin: Node { tag: \"iq\", attrs: {..} }".to_owned(),
    );
    let res = app
        .post_form(
            "/send/message",
            &[("phone", "6289685024091"), ("message", "hi")],
        )
        .await;
    res.assert_error(500, "sending message 3EB0F00D failed");
    assert!(!res.text.contains("/tmp/"), "{}", res.text);
}
