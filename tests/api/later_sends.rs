//! The later Go versions' send routes and common fields, in both dialects.

use serde_json::json;
use whatsapp_api::whatsapp::{Context, Outgoing};

use crate::helpers::TestApp;

const PHONE: &str = "6289685024091";

#[tokio::test]
async fn location_takes_numbers_or_text_and_checks_the_range() {
    for args in [&[][..], &["--api-compat", "v9"][..]] {
        let app = TestApp::spawn_with(args).await;
        let res = app
            .post_json(
                "/send/location",
                json!({"phone": PHONE, "latitude": -6.2, "longitude": "106.816666", "name": "Monas"}),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.text);
        let status = res.body["results"]["status"].as_str().unwrap();
        assert!(
            status.starts_with(
                "Send location success 6289685024091@s.whatsapp.net (server timestamp: "
            ),
            "{status}"
        );
        assert_eq!(
            app.wa.sent()[0].1,
            Outgoing::Location {
                latitude: -6.2,
                longitude: 106.816666,
                name: Some("Monas".into()),
                address: None,
            }
        );
        let res = app
            .post_form(
                "/send/location",
                &[("phone", PHONE), ("latitude", "91"), ("longitude", "east")],
            )
            .await;
        assert_eq!(res.status, 400);
        assert_eq!(
            res.body["message"],
            "latitude: must be a number between -90 and 90; longitude: must be a number between -180 and 180."
        );
        let res = app.post_form("/send/location", &[("phone", PHONE)]).await;
        assert_eq!(
            res.body["message"],
            "latitude: cannot be blank; longitude: cannot be blank."
        );
        assert_eq!(app.wa.sent().len(), 1);
    }
}

#[tokio::test]
async fn every_send_takes_the_common_fields() {
    let app = TestApp::spawn().await;
    app.post_json(
        "/send/message",
        json!({
            "phone": PHONE,
            "message": "hello @6281234567 and @6289999999",
            "reply_message_id": "3EB0QUOTED",
            "mentions": ["6281111111", "6281234567"],
            "is_forwarded": true,
            "duration": 604800,
        }),
    )
    .await
    .assert_success("Success");
    // Repeated form fields, a timer WhatsApp does not offer (ignored, as in Go).
    app.post_form(
        "/send/contact",
        &[
            ("phone", PHONE),
            ("contact_name", "Budi"),
            ("contact_phone", "6281234567890"),
            ("mentions", "6281111111"),
            ("mentions", "6282222222"),
            ("duration", "3600"),
        ],
    )
    .await
    .assert_success("Success");
    let contexts = app.wa.state.lock().unwrap().contexts.clone();
    assert_eq!(
        contexts[0],
        Context {
            reply_to: Some("3EB0QUOTED".into()),
            mentions: vec![
                "6281111111".into(),
                "6281234567".into(),
                "6289999999".into()
            ],
            forwarded: true,
            expiration: Some(604_800),
        }
    );
    assert_eq!(
        contexts[1],
        Context {
            mentions: vec!["6281111111".into(), "6282222222".into()],
            ..Context::default()
        }
    );
    let res = app
        .post_form(
            "/send/message",
            &[("phone", PHONE), ("message", "x"), ("duration", "soon")],
        )
        .await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.body["message"],
        "duration: must be a number of seconds."
    );
}
