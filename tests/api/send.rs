//! `/send/message` and `/send/contact`, in every encoding, and the checks shared by
//! all send routes.

use serde_json::json;
use whatsapp_api::whatsapp::{Outgoing, SessionStatus};

use crate::helpers::{TestApp, sent_status};

#[tokio::test]
async fn message_is_sent_as_text_and_reports_the_ack_time() {
    let app = TestApp::spawn().await;

    let res = app
        .post_form(
            "/send/message",
            &[("phone", "+6289685024091"), ("message", "selamat malam")],
        )
        .await;

    res.assert_success("Success");
    assert_eq!(
        res.body["results"]["status"],
        sent_status("Message sent to", "6289685024091@s.whatsapp.net")
    );
    let sent = app.wa.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.to_string(), "6289685024091@s.whatsapp.net");
    assert_eq!(sent[0].1, Outgoing::Text("selamat malam".into()));
}

#[tokio::test]
async fn message_accepts_json_with_a_numeric_phone_and_urlencoded_forms() {
    let app = TestApp::spawn().await;

    app.post_json(
        "/send/message",
        json!({"phone": 6289685024091u64, "message": "json"}),
    )
    .await
    .assert_success("Success");
    app.post_raw(
        "/send/message",
        "application/x-www-form-urlencoded",
        b"phone=6289685024091&message=hello+%F0%9F%91%8B".to_vec(),
    )
    .await
    .assert_success("Success");

    let texts: Vec<_> = app
        .wa
        .sent()
        .into_iter()
        .map(|(_, m)| m.text().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["json", "hello 👋"]);
}

#[tokio::test]
async fn type_group_sends_to_the_group() {
    let app = TestApp::spawn().await;

    let res = app
        .post_form(
            "/send/message",
            &[
                ("phone", "120363025246125888"),
                ("message", "hi all"),
                ("type", "group"),
            ],
        )
        .await;

    res.assert_success("Success");
    assert_eq!(app.wa.sent()[0].0.to_string(), "120363025246125888@g.us");
    assert_eq!(
        res.body["results"]["status"],
        sent_status("Message sent to", "120363025246125888@g.us")
    );
}

#[tokio::test]
async fn a_phone_with_an_at_sign_is_used_as_the_jid() {
    let app = TestApp::spawn().await;
    app.post_form(
        "/send/message",
        &[("phone", "120363025246125888@g.us"), ("message", "hi")],
    )
    .await
    .assert_success("Success");
    assert_eq!(app.wa.sent()[0].0.to_string(), "120363025246125888@g.us");
}

#[tokio::test]
async fn message_fields_are_validated_in_ozzo_format() {
    let app = TestApp::spawn().await;
    app.post_form("/send/message", &[])
        .await
        .assert_error(400, "message: cannot be blank; phone: cannot be blank.");
    app.post_form("/send/message", &[("phone", "62812"), ("message", "x")])
        .await
        .assert_error(400, "phone: the length must be between 10 and 25.");
    app.post_form(
        "/send/message",
        &[("phone", "62812345678901234567890123"), ("message", "x")],
    )
    .await
    .assert_error(400, "phone: the length must be between 10 and 25.");
    app.post_form(
        "/send/message",
        &[("phone", "62812abc4567"), ("message", "x")],
    )
    .await
    .assert_error(400, "phone: must contain only digits.");
    assert!(app.wa.sent().is_empty());
}

#[tokio::test]
async fn validation_comes_before_the_login_check() {
    let app = TestApp::spawn().await;
    app.wa.set_status(SessionStatus::LoggedOut);
    app.post_form("/send/message", &[("phone", "6289685024091")])
        .await
        .assert_error(400, "message: cannot be blank.");
    app.post_form(
        "/send/message",
        &[("phone", "6289685024091"), ("message", "x")],
    )
    .await
    .assert_error(500, "you are not loggin");
    app.wa.set_status(SessionStatus::Disconnected);
    app.post_form(
        "/send/contact",
        &[
            ("phone", "6289685024091"),
            ("contact_name", "A"),
            ("contact_phone", "628"),
        ],
    )
    .await
    .assert_error(
        500,
        "you are not connect to whatsapp server, please reconnect",
    );
}

#[tokio::test]
async fn a_send_that_is_never_acknowledged_is_a_clear_500() {
    let app = TestApp::spawn().await;
    app.wa.state.lock().unwrap().send_fails = true;
    app.post_form(
        "/send/message",
        &[("phone", "6289685024091"), ("message", "x")],
    )
    .await
    .assert_error(
        500,
        "timed out after 30s waiting for WhatsApp's acknowledgement",
    );
}

#[tokio::test]
async fn contact_is_sent_as_a_vcard() {
    let app = TestApp::spawn().await;

    let res = app
        .post_form(
            "/send/contact",
            &[
                ("phone", "6289685024051"),
                ("contact_name", "Aldino Kemal"),
                ("contact_phone", "+6289685024992"),
            ],
        )
        .await;

    res.assert_success("Success");
    assert_eq!(
        res.body["results"]["status"],
        sent_status("Contact sent to", "6289685024051@s.whatsapp.net")
    );
    assert_eq!(
        app.wa.sent()[0].1,
        Outgoing::Contact {
            name: "Aldino Kemal".into(),
            vcard: "BEGIN:VCARD\nVERSION:3.0\nN:;Aldino Kemal;;;\nFN:Aldino Kemal\nTEL;type=CELL;waid=6289685024992:+6289685024992\nEND:VCARD".into(),
        }
    );
}

#[tokio::test]
async fn contact_fields_are_required() {
    let app = TestApp::spawn().await;
    app.post_json("/send/contact", json!({}))
        .await
        .assert_error(400, "contact_name: cannot be blank; contact_phone: cannot be blank; phone: cannot be blank.");
    app.post_json(
        "/send/contact",
        json!({"phone": "6289685024051", "contact_name": "A", "contact_phone": "call me"}),
    )
    .await
    .assert_error(400, "contact_phone: must contain only digits.");
}
