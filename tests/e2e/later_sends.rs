//! The later Go versions' sends, through the fake: what the recipient decrypts
//! carries the quote, mentions, forwarded flag and timer; a location its coordinates.

use std::time::Duration;

use crate::harness::wait_for;
use crate::send::{FRIEND, delivered, paired};

#[tokio::test]
async fn a_reply_quotes_the_stored_message_with_mentions_forwarded_and_a_timer() {
    let (fake, server, _dir) = paired().await;
    let question = fake.deliver(FRIEND, "are you coming?").await.unwrap();
    // Acknowledged to WhatsApp only once stored.
    wait_for("the question stored", Duration::from_secs(10), || {
        fake.unacked() == 0
    })
    .await;
    let reply = server
        .post_form(
            "/send/message",
            &[
                ("phone", FRIEND),
                ("message", "yes, with @6281234567"),
                ("reply_message_id", &question),
                ("mentions", "6289685028777"),
                ("is_forwarded", "true"),
                ("duration", "86400"),
            ],
        )
        .await;
    let copy = delivered(&fake, &server, &reply, FRIEND);
    let text = copy
        .message
        .extended_text_message
        .as_option()
        .expect("an extended text");
    assert_eq!(text.text.as_deref(), Some("yes, with @6281234567"));
    let context = text.context_info.as_option().expect("a context");
    assert_eq!(context.stanza_id.as_deref(), Some(question.as_str()));
    assert_eq!(
        context.participant.as_deref(),
        Some(format!("{FRIEND}@s.whatsapp.net").as_str())
    );
    let quoted = context
        .quoted_message
        .as_option()
        .expect("the quoted message");
    assert_eq!(quoted.conversation.as_deref(), Some("are you coming?"));
    let mut mentioned = context.mentioned_jid.clone();
    mentioned.sort();
    assert_eq!(
        mentioned,
        ["6281234567@s.whatsapp.net", "6289685028777@s.whatsapp.net"]
    );
    assert_eq!(context.is_forwarded, Some(true));
    assert_eq!(context.expiration, Some(86_400));

    // An id that is not stored: sent without a quote, as Go does.
    let reply = server
        .post_form(
            "/send/message",
            &[
                ("phone", FRIEND),
                ("message", "plain"),
                ("reply_message_id", "NOPE"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let last = fake.received().last().unwrap().clone();
    assert_eq!(last.message.conversation.as_deref(), Some("plain"));
}

#[tokio::test]
async fn a_location_arrives_with_its_coordinates() {
    let (fake, server, _dir) = paired().await;
    let reply = server
        .post_form(
            "/send/location",
            &[
                ("phone", FRIEND),
                ("latitude", "-6.175392"),
                ("longitude", "106.827153"),
                ("name", "Monas"),
                ("address", "Gambir, Jakarta"),
            ],
        )
        .await;
    let copy = delivered(&fake, &server, &reply, FRIEND);
    let location = copy
        .message
        .location_message
        .as_option()
        .expect("a location");
    assert_eq!(location.degrees_latitude, Some(-6.175392));
    assert_eq!(location.degrees_longitude, Some(106.827153));
    assert_eq!(location.name.as_deref(), Some("Monas"));
    assert_eq!(location.address.as_deref(), Some("Gambir, Jakarta"));
}

#[tokio::test]
async fn presence_and_typing_reach_whatsapp() {
    let (fake, server, _dir) = paired().await;
    // The presence announced after the connect (v2.3.0: available) comes first.
    wait_for("the presence on connect", Duration::from_secs(5), || {
        fake.presences().iter().any(|p| p == "available")
    })
    .await;
    let before = fake.presences().len();
    let reply = server
        .post_form("/send/presence", &[("type", "unavailable")])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    for action in ["start", "stop"] {
        let reply = server
            .post_form(
                "/send/chat-presence",
                &[("phone", FRIEND), ("action", action)],
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    wait_for("the stanzas", Duration::from_secs(5), || {
        fake.chatstates().len() == 2
    })
    .await;
    assert_eq!(fake.presences()[before..], ["unavailable"]);
    let friend = format!("{FRIEND}@s.whatsapp.net");
    assert_eq!(
        fake.chatstates(),
        [
            (friend.clone(), "composing".to_owned()),
            (friend, "paused".to_owned())
        ]
    );
    assert!(fake.problems().is_empty(), "{:?}", fake.problems());
}

#[tokio::test]
async fn a_poll_arrives_with_its_options_and_secret() {
    let (fake, server, _dir) = paired().await;
    let reply = server
        .post_form(
            "/send/poll",
            &[
                ("phone", FRIEND),
                ("question", "Lunch?"),
                ("options", "Soto"),
                ("options", "Sate"),
                ("options", "Bakso"),
                ("max_answer", "2"),
            ],
        )
        .await;
    let copy = delivered(&fake, &server, &reply, FRIEND);
    let poll = copy
        .message
        .poll_creation_message
        .as_option()
        .expect("a multiple-choice poll");
    assert_eq!(poll.name.as_deref(), Some("Lunch?"));
    let names: Vec<_> = poll
        .options
        .iter()
        .filter_map(|o| o.option_name.as_deref())
        .collect();
    assert_eq!(names, ["Soto", "Sate", "Bakso"]);
    assert_eq!(poll.selectable_options_count, Some(2));
    let secret = copy
        .message
        .message_context_info
        .as_option()
        .and_then(|c| c.message_secret.clone())
        .expect("the poll's secret");
    assert_eq!(secret.len(), 32);
}

#[tokio::test]
async fn a_voice_note_arrives_as_ogg_opus() {
    let (fake, server, dir) = paired().await;
    let wav = crate::common::sample_audio(dir.path(), "note.wav");
    let form = reqwest::multipart::Form::new()
        .text("phone", FRIEND)
        .text("ptt", "true")
        .part(
            "audio",
            crate::common::file_part(wav, "note.wav", "audio/wav"),
        );
    let reply = server.post_multipart("/send/audio", form).await;
    let copy = delivered(&fake, &server, &reply, FRIEND);
    let audio = copy.message.audio_message.as_option().expect("audio");
    assert_eq!(audio.ptt, Some(true));
    let media = copy.media.expect("the decrypted voice note");
    assert!(media.starts_with(b"OggS") && media.windows(8).any(|w| w == b"OpusHead"));
}

#[tokio::test]
async fn a_sticker_arrives_as_a_512_square_webp() {
    let (fake, server, _dir) = paired().await;
    let form = reqwest::multipart::Form::new().text("phone", FRIEND).part(
        "sticker",
        crate::common::file_part(crate::common::jpeg(640, 360), "wide.jpg", "image/jpeg"),
    );
    let reply = server.post_multipart("/send/sticker", form).await;
    // The fake refuses anything but a 512x512 WebP.
    let copy = delivered(&fake, &server, &reply, FRIEND);
    let sticker = copy.message.sticker_message.as_option().expect("a sticker");
    assert_eq!(sticker.mimetype.as_deref(), Some("image/webp"));
    assert!(copy.media.unwrap().starts_with(b"RIFF"));
}

#[tokio::test]
async fn a_link_arrives_with_its_preview() {
    let fake = fake_whatsapp::FakeWhatsApp::start_local().await.unwrap();
    fake.add_contact(FRIEND, fake_whatsapp::ContactInfo::default())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server =
        crate::harness::Server::start_with(&fake, dir.path(), &["--allow-private-urls"]).await;
    server.pair(&fake).await;
    let site = crate::common::site_with_a_page("Recipe", "Fried rice").await;
    let link = format!("{site}/recipe");
    let reply = server
        .post_form(
            "/send/link",
            &[("phone", FRIEND), ("link", &link), ("caption", "Try this")],
        )
        .await;
    let copy = delivered(&fake, &server, &reply, FRIEND);
    let text = copy
        .message
        .extended_text_message
        .as_option()
        .expect("a text");
    assert_eq!(
        text.text.as_deref(),
        Some(format!("Try this\n{link}").as_str())
    );
    assert_eq!(text.matched_text.as_deref(), Some(link.as_str()));
    assert_eq!(text.title.as_deref(), Some("Recipe"));
    assert!(
        text.jpeg_thumbnail
            .as_ref()
            .is_some_and(|t| t.starts_with(&[0xff, 0xd8]))
    );
}
