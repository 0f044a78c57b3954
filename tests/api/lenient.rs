//! What Go's binders accepted, this server accepts in both wire modes: unknown and
//! later-version fields, any case of a field name, checkbox booleans, phone numbers
//! written for humans, a trailing slash.

use serde_json::json;
use whatsapp_api::whatsapp::{Outgoing, UserDetails};

use crate::common::{file_part, jpeg};
use crate::helpers::TestApp;

#[tokio::test]
async fn later_version_and_unknown_fields_are_ignored() {
    let app = TestApp::spawn().await;
    app.wa.state.lock().unwrap().user = Some(UserDetails::default());
    let res = app
        .post_json(
            "/send/message",
            json!({
                "phone": "6289685024091",
                "message": "from a v9 client",
                "reply_message_id": "3EB0A0",
                "is_forwarded": false,
                "duration": 86400,
                "mentions": ["6289685024092"],
                "_": "1732550000000",
                "something_new": {"nested": true},
            }),
        )
        .await;
    res.assert_success("Success");
    assert!(
        res.body["results"]["message_id"].is_string(),
        "{}",
        res.body
    );
    app.post_form(
        "/send/message",
        &[("phone", "6289685024091"), ("message", "form"), ("_", "1")],
    )
    .await
    .assert_success("Success");
    app.get("/user/info?phone=6289685024091&_=1732550000000")
        .await
        .assert_success("Success");
    let texts: Vec<_> = app
        .wa
        .sent()
        .into_iter()
        .map(|(_, m)| m.text().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["from a v9 client", "form"]);
}

#[tokio::test]
async fn field_names_match_in_any_case_and_checkboxes_are_booleans() {
    let app = TestApp::spawn().await;
    app.post_form(
        "/send/message",
        &[("Phone", "6289685024091"), ("MESSAGE", "shouting")],
    )
    .await
    .assert_success("Success");
    let form = reqwest::multipart::Form::new()
        .text("PHONE", "6289685024091")
        .text("View_Once", "on")
        .text("compress", "f")
        .part("Image", file_part(jpeg(64, 64), "a.jpg", "image/jpeg"));
    app.post_multipart("/send/image", form)
        .await
        .assert_success("Success");
    let sent = app.wa.sent();
    assert_eq!(sent[0].1, Outgoing::Text("shouting".into()));
    let Outgoing::Image { view_once, .. } = &sent[1].1 else {
        panic!("not an image: {:?}", sent[1].1);
    };
    assert!(view_once);
    let form = reqwest::multipart::Form::new()
        .text("phone", "6289685024091")
        .text("view_once", "perhaps")
        .part("image", file_part(jpeg(64, 64), "a.jpg", "image/jpeg"));
    app.post_multipart("/send/image", form)
        .await
        .assert_error(400, "view_once: must be a boolean (true or false).");
}

#[tokio::test]
async fn phone_numbers_written_for_humans_are_normalised() {
    let app = TestApp::spawn().await;
    app.wa.state.lock().unwrap().user = Some(UserDetails::default());
    app.post_form(
        "/send/message",
        &[("phone", "+62 896-8502-4091"), ("message", "hi")],
    )
    .await
    .assert_success("Success");
    app.post_json(
        "/send/contact",
        json!({"phone": "6289685024091", "contact_name": "Budi", "contact_phone": "+62 812-3456-7890"}),
    )
    .await
    .assert_success("Success");
    app.get("/user/info?phone=%2B62%20896-8502-4091")
        .await
        .assert_success("Success");
    let sent = app.wa.sent();
    assert_eq!(sent[0].0.to_string(), "6289685024091@s.whatsapp.net");
    let Outgoing::Contact { vcard, .. } = &sent[1].1 else {
        panic!("not a contact");
    };
    assert!(
        vcard.contains("waid=6281234567890:+6281234567890"),
        "{vcard}"
    );
    // Still not a number.
    app.post_form(
        "/send/message",
        &[("phone", "+62 896-abc-4091"), ("message", "hi")],
    )
    .await
    .assert_error(400, "phone: must contain only digits.");
}

#[tokio::test]
async fn a_trailing_slash_reaches_the_route() {
    let app = TestApp::spawn().await;
    app.post_form(
        "/send/message/",
        &[("phone", "6289685024091"), ("message", "slash")],
    )
    .await
    .assert_success("Success");
    app.get("/app/status/").await.assert_success("Success");
    assert_eq!(app.wa.sent().len(), 1);
}
