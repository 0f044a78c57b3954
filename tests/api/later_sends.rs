//! The later Go versions' send routes and common fields, in both dialects.

use serde_json::json;
use whatsapp_api::whatsapp::{Context, Outgoing};

use crate::common::{jpeg, site_with_a_page, web_server};
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

#[tokio::test]
async fn presence_and_chat_presence_answer_as_the_later_versions() {
    let app = TestApp::spawn().await;
    let res = app
        .post_json("/send/presence", json!({"type": "available"}))
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        res.body["results"],
        json!({"message_id": "presence", "status": "Send presence success available"})
    );
    let res = app
        .post_form(
            "/send/chat-presence",
            &[("phone", PHONE), ("action", "start")],
        )
        .await;
    assert_eq!(
        res.body["results"],
        json!({
            "message_id": "chat-presence-start",
            "status": "Send chat presence start typing success 6289685024091@s.whatsapp.net"
        })
    );
    app.post_form(
        "/send/chat-presence",
        &[("phone", PHONE), ("action", "stop")],
    )
    .await
    .assert_success("Success");
    let res = app
        .post_json("/send/presence", json!({"type": "busy"}))
        .await;
    assert_eq!(
        res.body["message"],
        "type: must be available or unavailable."
    );
    let res = app
        .post_form("/send/chat-presence", &[("phone", PHONE)])
        .await;
    assert_eq!(res.body["message"], "action: cannot be blank.");
    assert_eq!(
        app.wa.state.lock().unwrap().presences,
        [
            "presence:true",
            "6289685024091@s.whatsapp.net:true",
            "6289685024091@s.whatsapp.net:false"
        ]
    );
}

#[tokio::test]
async fn user_check_says_whether_a_number_is_on_whatsapp() {
    let app = TestApp::spawn().await;
    app.wa.state.lock().unwrap().strangers = vec![PHONE.to_owned()];
    let res = app.get(&format!("/user/check?phone={PHONE}")).await;
    assert_eq!(
        res.body["results"],
        json!({"is_on_whatsapp": false}),
        "{}",
        res.text
    );
    app.wa.state.lock().unwrap().strangers.clear();
    let res = app.get(&format!("/user/check?phone={PHONE}")).await;
    assert_eq!(
        res.body["results"],
        json!({"is_on_whatsapp": true}),
        "{}",
        res.text
    );
    let res = app.get("/user/check?phone=12").await;
    assert_eq!(res.status, 400, "{}", res.text);
}

#[tokio::test]
async fn a_poll_needs_distinct_options_and_a_sensible_choice_count() {
    let app = TestApp::spawn().await;
    let res = app
        .post_json(
            "/send/poll",
            json!({"phone": PHONE, "question": "Lunch?", "options": ["Soto", "Sate", "Bakso"], "max_answer": 2}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(
        res.body["results"]["status"]
            .as_str()
            .unwrap()
            .starts_with("Send poll success 6289685024091@s.whatsapp.net")
    );
    assert_eq!(
        app.wa.sent()[0].1,
        Outgoing::Poll {
            question: "Lunch?".into(),
            options: vec!["Soto".into(), "Sate".into(), "Bakso".into()],
            max_answer: 2,
        }
    );
    for (body, message) in [
        (
            json!({"phone": PHONE, "question": "Q", "options": ["A"]}),
            "options: must have at least 2 options.",
        ),
        (
            json!({"phone": PHONE, "question": "Q", "options": ["A", "A"]}),
            "options: must be unique.",
        ),
        (
            json!({"phone": PHONE, "question": "Q", "options": ["A", "B"], "max_answer": 3}),
            "max_answer: must be between 1 and 2.",
        ),
        (
            json!({"phone": PHONE, "options": ["A", "B"]}),
            "question: cannot be blank.",
        ),
    ] {
        let res = app.post_json("/send/poll", body).await;
        assert_eq!(
            (res.status, res.body["message"].as_str().unwrap()),
            (400, message)
        );
    }
    // Repeated form fields work too; max_answer defaults to 1.
    app.post_form(
        "/send/poll",
        &[
            ("phone", PHONE),
            ("question", "Q"),
            ("options", "Yes"),
            ("options", "No"),
        ],
    )
    .await
    .assert_success("Success");
    let Outgoing::Poll {
        max_answer,
        options,
        ..
    } = &app.wa.sent()[1].1
    else {
        panic!("not a poll");
    };
    assert_eq!((*max_answer, options.len()), (1, 2));
}

#[tokio::test]
async fn audio_as_a_voice_note_becomes_ogg_opus_and_mp3_goes_as_it_is() {
    use crate::common::{file_part, sample_audio};
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let wav = sample_audio(dir.path(), "tone.wav");
    let form = reqwest::multipart::Form::new()
        .text("phone", PHONE)
        .text("ptt", "true")
        .part("audio", file_part(wav, "tone.wav", "audio/wav"));
    let res = app.post_multipart("/send/audio", form).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(
        res.body["results"]["status"]
            .as_str()
            .unwrap()
            .starts_with("Send audio success 6289685024091@s.whatsapp.net")
    );
    let uploads = app.wa.uploads();
    assert!(uploads[0].0.starts_with(b"OggS"));
    assert!(uploads[0].0.windows(8).any(|w| w == b"OpusHead"));
    let Outgoing::Audio { mime_type, ptt, .. } = &app.wa.sent()[0].1 else {
        panic!("not audio");
    };
    assert_eq!((mime_type.as_str(), *ptt), ("audio/ogg; codecs=opus", true));

    let mp3 = sample_audio(dir.path(), "tone.mp3");
    let form = reqwest::multipart::Form::new()
        .text("phone", PHONE)
        .part("audio", file_part(mp3.clone(), "tone.mp3", "audio/mpeg"));
    app.post_multipart("/send/audio", form)
        .await
        .assert_success("Success");
    assert_eq!(app.wa.uploads()[1].0, mp3, "sent as it is");

    let form = reqwest::multipart::Form::new().text("phone", PHONE).part(
        "audio",
        file_part(b"just some text".to_vec(), "a.mp3", "audio/mpeg"),
    );
    let res = app.post_multipart("/send/audio", form).await;
    assert_eq!(res.status, 400, "{}", res.text);
    assert_eq!(
        res.body["message"],
        "your audio type is not allowed. please use mp3/m4a/aac/ogg/wav/flac"
    );
    assert!(app.temp_files().is_empty(), "{:?}", app.temp_files());
}

#[tokio::test]
async fn media_urls_are_fetched_from_public_addresses_only_unless_allowed() {
    let base = web_server(vec![("/media/photo.jpg", "image/jpeg", jpeg(800, 600))]).await;
    let url = format!("{base}/media/photo.jpg");
    let app = TestApp::spawn().await;
    let res = app
        .post_json("/send/image", json!({"phone": PHONE, "image_url": url}))
        .await;
    assert_eq!(res.status, 400, "{}", res.text);
    assert_eq!(
        res.body["message"],
        "image_url: 127.0.0.1 is not a public address."
    );
    for bad in ["file:///etc/passwd", "gopher://example.com/"] {
        let res = app
            .post_json("/send/file", json!({"phone": PHONE, "file_url": bad}))
            .await;
        assert_eq!(
            res.body["message"], "file_url: only http:// and https:// URLs can be fetched.",
            "{bad}"
        );
    }
    assert!(app.wa.sent().is_empty());

    let app = TestApp::spawn_with(&["--allow-private-urls", "--max-file-size-mb", "1"]).await;
    let res = app
        .post_form(
            "/send/image",
            &[
                ("phone", PHONE),
                ("image_url", &url),
                ("caption", "fetched"),
            ],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let Outgoing::Image { width, caption, .. } = &app.wa.sent()[0].1 else {
        panic!("not an image");
    };
    assert_eq!((*width, caption.as_deref()), (600, Some("fetched")));
    // The file limit holds for fetched files too.
    let big = web_server(vec![(
        "/media/big.bin",
        "application/octet-stream",
        vec![0u8; 1_500_000],
    )])
    .await;
    let res = app
        .post_json(
            "/send/file",
            json!({"phone": PHONE, "file_url": format!("{big}/media/big.bin")}),
        )
        .await;
    assert_eq!(res.status, 400);
    assert!(
        res.body["message"]
            .as_str()
            .unwrap()
            .starts_with("max file upload is 1 MB")
    );
    assert!(app.temp_files().is_empty(), "{:?}", app.temp_files());
}

#[tokio::test]
async fn a_sticker_becomes_a_512_square_webp() {
    use crate::common::{file_part, jpeg};
    let app = TestApp::spawn().await;
    let form = reqwest::multipart::Form::new().text("phone", PHONE).part(
        "sticker",
        file_part(jpeg(300, 200), "cat.jpg", "image/jpeg"),
    );
    let res = app.post_multipart("/send/sticker", form).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(
        res.body["results"]["status"]
            .as_str()
            .unwrap()
            .starts_with("Sticker sent to 6289685024091@s.whatsapp.net")
    );
    let (bytes, kind) = app.wa.uploads()[0].clone();
    assert_eq!(kind, whatsapp_api::whatsapp::MediaKind::Sticker);
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WEBP");
    // The image crate here reads no WebP; ffmpeg does: ask it for the size.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.webp");
    std::fs::write(&path, &bytes).unwrap();
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-i"])
        .arg(&path)
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&out.stderr);
    assert!(info.contains("512x512"), "{info}");
    assert!(matches!(app.wa.sent()[0].1, Outgoing::Sticker { .. }));

    let form = reqwest::multipart::Form::new().text("phone", PHONE).part(
        "sticker",
        file_part(b"%PDF-1.4".to_vec(), "x.pdf", "application/pdf"),
    );
    let res = app.post_multipart("/send/sticker", form).await;
    assert_eq!(res.status, 400, "{}", res.text);
    assert_eq!(
        res.body["message"],
        "your sticker is not allowed. please use jpg/jpeg/png/webp/gif"
    );
    assert!(app.temp_files().is_empty(), "{:?}", app.temp_files());
}

#[tokio::test]
async fn a_link_carries_the_page_preview_when_the_page_can_be_read() {
    let site = site_with_a_page("Nasi goreng, the recipe", "Fried rice in 15 minutes.").await;
    let link = format!("{site}/recipe");
    let app = TestApp::spawn_with(&["--allow-private-urls"]).await;
    let res = app
        .post_json(
            "/send/link",
            json!({"phone": PHONE, "link": link, "caption": "Try this"}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(
        res.body["results"]["status"]
            .as_str()
            .unwrap()
            .starts_with("Link sent to 6289685024091@s.whatsapp.net")
    );
    let Outgoing::Link {
        text,
        url,
        title,
        description,
        thumbnail,
    } = app.wa.sent()[0].1.clone()
    else {
        panic!("not a link");
    };
    assert_eq!(text, format!("Try this\n{link}"));
    assert_eq!(url, link);
    assert_eq!(title.as_deref(), Some("Nasi goreng, the recipe"));
    assert_eq!(description.as_deref(), Some("Fried rice in 15 minutes."));
    let thumb = image::load_from_memory(&thumbnail.expect("a thumbnail")).unwrap();
    assert_eq!(thumb.width(), 100);

    // Without the flag the page is on a private address: no preview, still sent.
    let app = TestApp::spawn().await;
    app.post_json(
        "/send/link",
        json!({"phone": PHONE, "link": link, "caption": "x"}),
    )
    .await
    .assert_success("Success");
    let Outgoing::Link {
        title, thumbnail, ..
    } = app.wa.sent()[0].1.clone()
    else {
        panic!("not a link");
    };
    assert_eq!((title, thumbnail), (None, None));
    let res = app
        .post_json(
            "/send/link",
            json!({"phone": PHONE, "link": "javascript:alert(1)"}),
        )
        .await;
    assert_eq!(
        res.body["message"],
        "caption: cannot be blank; link: must be a valid URL."
    );
}

#[tokio::test]
async fn a_profile_picture_is_sent_as_a_640_square_jpeg_and_the_push_name_is_checked() {
    use crate::common::file_part;
    let app = TestApp::spawn().await;
    let mut png = Vec::new();
    image::RgbImage::from_fn(1000, 500, |x, _| image::Rgb([(x % 256) as u8, 0, 0]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let form =
        reqwest::multipart::Form::new().part("avatar", file_part(png, "me.png", "image/png"));
    let res = app.post_multipart("/user/avatar", form).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["message"], "Success change avatar");
    let sent = app.wa.state.lock().unwrap().avatars.clone();
    let jpeg = image::load_from_memory_with_format(&sent[0], image::ImageFormat::Jpeg).unwrap();
    assert_eq!((jpeg.width(), jpeg.height()), (640, 640));
    let res = app
        .post_multipart("/user/avatar", reqwest::multipart::Form::new())
        .await;
    assert_eq!(res.body["message"], "avatar: cannot be blank.");

    let res = app
        .post_json("/user/pushname", json!({"push_name": " Toko Budi "}))
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["message"], "Success change push name");
    let res = app.post_json("/user/pushname", json!({})).await;
    assert_eq!(res.body["message"], "push_name: cannot be blank.");
    assert_eq!(app.wa.state.lock().unwrap().push_names, ["Toko Budi"]);
}

#[tokio::test]
async fn a_business_profile_comes_in_the_later_shape() {
    use whatsapp_api::whatsapp::{BusinessHours, BusinessProfile};
    let app = TestApp::spawn().await;
    let res = app
        .get(&format!("/user/business-profile?phone={PHONE}"))
        .await;
    assert_eq!(res.status, 400, "{}", res.text);
    assert_eq!(
        res.body["message"],
        "6289685024091 is not a business account"
    );
    app.wa.state.lock().unwrap().business = Some(BusinessProfile {
        jid: format!("{PHONE}@s.whatsapp.net"),
        description: "Soto".into(),
        email: Some("a@b.example".into()),
        website: vec!["https://b.example".into()],
        categories: vec![("1".into(), "Food".into())],
        address: None,
        timezone: Some("Asia/Jakarta".into()),
        hours: vec![BusinessHours {
            day: "tue".into(),
            mode: "specific_hours".into(),
            open: Some(480),
            close: Some(1080),
        }],
    });
    let res = app
        .get(&format!("/user/business-profile?phone={PHONE}"))
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        res.body["results"],
        json!({
            "jid": "6289685024091@s.whatsapp.net",
            "email": "a@b.example",
            "address": "",
            "description": "Soto",
            "website": ["https://b.example"],
            "categories": [{"id": "1", "name": "Food"}],
            "profile_options": {},
            "business_hours_timezone": "Asia/Jakarta",
            "business_hours": [{"day_of_week": "tue", "mode": "specific_hours", "open_time": "480", "close_time": "1080"}],
        })
    );
}

#[tokio::test]
async fn account_validation_checks_a_number_once_an_hour_and_refuses_strangers() {
    const STRANGER: &str = "6289685028131";
    let app = TestApp::spawn_with(&["--api-compat", "v9"]).await;
    app.wa.state.lock().unwrap().strangers = vec![STRANGER.to_owned()];
    let res = app
        .post_json("/send/message", json!({"phone": STRANGER, "message": "hi"}))
        .await;
    assert_eq!(res.status, 400, "{}", res.text);
    assert_eq!(res.body["code"], "INVALID_JID");
    assert!(app.wa.sent().is_empty(), "nothing was sent");
    for text in ["one", "two"] {
        let res = app
            .post_json("/send/message", json!({"phone": PHONE, "message": text}))
            .await;
        assert_eq!(res.status, 200, "{}", res.text);
    }
    assert_eq!(app.wa.sent().len(), 2);
    // Each number was asked about once: a number found is remembered.
    assert_eq!(app.wa.state.lock().unwrap().checked, [STRANGER, PHONE]);
    // Groups are not checked.
    let res = app
        .post_json(
            "/send/message",
            json!({"phone": "120363000000001@g.us", "message": "team"}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(app.wa.state.lock().unwrap().checked.len(), 2);

    // v2.3.0 (and --account-validation=false) never asks.
    let app = TestApp::spawn().await;
    app.wa.state.lock().unwrap().strangers = vec![STRANGER.to_owned()];
    let res = app
        .post_json("/send/message", json!({"phone": STRANGER, "message": "hi"}))
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(app.wa.state.lock().unwrap().checked.is_empty());
}
