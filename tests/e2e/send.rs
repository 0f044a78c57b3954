//! Every send route: the fake recipient decrypts exactly what was asked for.

use fake_whatsapp::{ContactInfo, FakeWhatsApp, Received};
use jiff::Timestamp;
use whatsapp_api::domain::timestamp::server_time;

use crate::common::file_part;
use crate::harness::{Reply, Server, wait_for};

pub const FRIEND: &str = "6289685028129";

/// A fake with one contact, and a server paired with it.
pub async fn paired() -> (FakeWhatsApp, Server, tempfile::TempDir) {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    fake.add_contact(FRIEND, ContactInfo::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&fake, dir.path()).await;
    server.pair(&fake).await;
    (fake, server, dir)
}

/// The copy the contact decrypted of the message the reply names.
pub fn delivered(fake: &FakeWhatsApp, server: &Server, reply: &Reply, to: &str) -> Received {
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, server.log());
    assert!(fake.problems().is_empty(), "{:?}", fake.problems());
    let received = fake.received();
    let copy = received
        .iter()
        .find(|r| r.recipient == to)
        .unwrap_or_else(|| panic!("{to} received nothing: {received:?}"))
        .clone();
    let status = reply.body["results"]["status"].as_str().unwrap();
    let t = Timestamp::from_second(copy.ack_t.expect("acknowledged") as i64).unwrap();
    assert!(
        status.ends_with(&format!("(server timestamp: {})", server_time(t))),
        "{status} does not carry the ack time {t}"
    );
    copy
}

async fn a_text_reaches_the_recipient_decrypted() {
    let (fake, server, _dir) = paired().await;
    let reply = server
        .post_form(
            "/send/message",
            &[("phone", FRIEND), ("message", "selamat malam")],
        )
        .await;
    let copy = delivered(&fake, &server, &reply, FRIEND);
    assert_eq!(copy.chat, format!("{FRIEND}@s.whatsapp.net"));
    assert_eq!(copy.message.conversation.as_deref(), Some("selamat malam"));
    let status = reply.body["results"]["status"].as_str().unwrap();
    assert!(
        status.starts_with(&format!("Message sent to {FRIEND}@s.whatsapp.net")),
        "{status}"
    );
    // The phone got its own copy (a device-sent message) too.
    assert!(
        fake.received()
            .iter()
            .any(|r| r.recipient == fake_whatsapp::PHONE_USER
                && r.message.conversation.as_deref() == Some("selamat malam")),
        "the phone has no copy"
    );
}

#[tokio::test]
async fn an_image_arrives_compressed_with_caption_and_thumbnail() {
    let (fake, server, _dir) = paired().await;
    let form = reqwest::multipart::Form::new()
        .text("phone", FRIEND)
        .text("caption", "look")
        .part(
            "image",
            file_part(crate::common::jpeg(1600, 1200), "big.jpg", "image/jpeg"),
        );
    let reply = server.post_multipart("/send/image", form).await;
    let copy = delivered(&fake, &server, &reply, FRIEND);
    let image = copy
        .message
        .image_message
        .as_option()
        .expect("an image message");
    assert_eq!(image.caption.as_deref(), Some("look"));
    assert_eq!(image.mimetype.as_deref(), Some("image/jpeg"));
    // The decrypted upload is the compressed JPEG: 600 px on its long side.
    let sent = image::load_from_memory(copy.media.as_deref().unwrap()).unwrap();
    assert_eq!((sent.width(), sent.height()), (600, 450));
    let thumb = image::load_from_memory(image.jpeg_thumbnail.as_deref().unwrap()).unwrap();
    assert!(
        thumb.width() <= 100 && thumb.height() <= 100,
        "{}x{}",
        thumb.width(),
        thumb.height()
    );
}

#[tokio::test]
async fn a_file_arrives_byte_for_byte_with_its_name() {
    let (fake, server, _dir) = paired().await;
    let mut pdf = b"%PDF-1.4\n".to_vec();
    pdf.extend((0..200_000u32).map(|i| (i * 7 % 251) as u8));
    let form = reqwest::multipart::Form::new().text("phone", FRIEND).part(
        "file",
        file_part(pdf.clone(), "report.pdf", "application/pdf"),
    );
    let reply = server.post_multipart("/send/file", form).await;
    let copy = delivered(&fake, &server, &reply, FRIEND);
    let doc = copy
        .message
        .document_message
        .as_option()
        .expect("a document");
    assert_eq!(doc.file_name.as_deref(), Some("report.pdf"));
    assert_eq!(doc.mimetype.as_deref(), Some("application/pdf"));
    assert_eq!(
        copy.media.as_deref(),
        Some(&pdf[..]),
        "the decrypted upload is the file"
    );
}

#[tokio::test]
async fn a_video_arrives_with_its_thumbnail() {
    let (fake, server, dir) = paired().await;
    let video = crate::common::sample_video(dir.path(), "clip.mp4", &["-pix_fmt", "yuv420p"]);
    let form = reqwest::multipart::Form::new()
        .text("phone", FRIEND)
        .text("caption", "clip")
        .part("video", file_part(video.clone(), "clip.mp4", "video/mp4"));
    let reply = server.post_multipart("/send/video", form).await;
    let copy = delivered(&fake, &server, &reply, FRIEND);
    let msg = copy.message.video_message.as_option().expect("a video");
    assert_eq!(msg.caption.as_deref(), Some("clip"));
    assert_eq!(
        copy.media.as_deref(),
        Some(&video[..]),
        "an mp4 is sent as it is"
    );
    let thumb = image::load_from_memory(msg.jpeg_thumbnail.as_deref().unwrap()).unwrap();
    assert!(thumb.width() > 0);
}

#[tokio::test]
async fn a_contact_arrives_as_a_vcard() {
    let (fake, server, _dir) = paired().await;
    let reply = server
        .post_form(
            "/send/contact",
            &[
                ("phone", FRIEND),
                ("contact_name", "Budi"),
                ("contact_phone", "6281111111111"),
            ],
        )
        .await;
    let copy = delivered(&fake, &server, &reply, FRIEND);
    let contact = copy.message.contact_message.as_option().expect("a contact");
    assert_eq!(contact.display_name.as_deref(), Some("Budi"));
    let vcard = contact.vcard.as_deref().unwrap();
    assert!(vcard.contains("FN:Budi"), "{vcard}");
    assert!(vcard.contains("waid=6281111111111"), "{vcard}");
}

async fn a_group_message_reaches_every_member() {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    let shop = "6281234567890";
    fake.add_contact(FRIEND, ContactInfo::default()).unwrap();
    fake.add_contact(shop, ContactInfo::default()).unwrap();
    fake.add_group(
        "120363025246125888",
        fake_whatsapp::FakeGroup {
            subject: "Team".to_owned(),
            admin: FRIEND.to_owned(),
            members: vec![FRIEND.to_owned(), shop.to_owned()],
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&fake, dir.path()).await;
    server.pair(&fake).await;

    for text in ["hello team", "second"] {
        let reply = server
            .post_form(
                "/send/message",
                &[
                    ("phone", "120363025246125888"),
                    ("type", "group"),
                    ("message", text),
                ],
            )
            .await;
        assert_eq!(reply.status, 200, "{}\n{}", reply.body, server.log());
        let status = reply.body["results"]["status"].as_str().unwrap();
        assert!(
            status.starts_with("Message sent to 120363025246125888@g.us"),
            "{status}"
        );
        assert!(fake.problems().is_empty(), "{:?}", fake.problems());
        for member in [FRIEND, shop, fake_whatsapp::PHONE_USER] {
            assert!(
                fake.received().iter().any(|r| r.recipient == member
                    && r.chat == "120363025246125888@g.us"
                    && r.message.conversation.as_deref() == Some(text)),
                "{member} did not decrypt {text:?}"
            );
        }
    }
}

#[tokio::test]
async fn an_incoming_message_gets_the_autoreply_once_per_interval() {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    fake.add_contact(FRIEND, ContactInfo::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = ["--autoreply", "I am away", "--autoreply-interval-secs", "2"];
    let server = Server::start_with(&fake, dir.path(), &args).await;
    server.pair(&fake).await;
    let replies = || {
        fake.received()
            .into_iter()
            .filter(|r| r.recipient == FRIEND)
            .collect::<Vec<_>>()
    };

    fake.deliver(FRIEND, "are you there?").await.unwrap();
    wait_for("the autoreply", std::time::Duration::from_secs(10), || {
        !replies().is_empty()
    })
    .await;
    assert!(fake.problems().is_empty(), "{:?}", fake.problems());
    let reply = replies()
        .pop()
        .unwrap_or_else(|| panic!("no autoreply reached {FRIEND}\n{}", server.log()));
    assert_eq!(reply.chat, format!("{FRIEND}@s.whatsapp.net"));
    assert_eq!(reply.message.conversation.as_deref(), Some("I am away"));
    // Stored like every message sent, as Go stores its auto-replies.
    let db = rusqlite::Connection::open(dir.path().join("storages/chat.db")).unwrap();
    wait_for(
        "the stored auto-reply",
        std::time::Duration::from_secs(5),
        || {
            db.query_row(
            "SELECT COUNT(*) FROM messages WHERE is_from_me = 1 AND body = 'I am away' AND id = ?1",
            [&reply.id],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
            == 1
        },
    )
    .await;

    // A second message within the interval gets no second answer…
    fake.deliver(FRIEND, "hello??").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert_eq!(replies().len(), 1, "answered twice within the interval");
    // …one after it does.
    fake.deliver(FRIEND, "still away?").await.unwrap();
    wait_for(
        "the second autoreply",
        std::time::Duration::from_secs(10),
        || replies().len() == 2,
    )
    .await;
}

#[tokio::test]
async fn a_large_file_goes_through_the_resumable_upload() {
    let (fake, server, _dir) = paired().await;
    // Over 5 MiB: the client first asks whether the upload can be resumed.
    let data: Vec<u8> = (0..6_000_000u32).map(|i| (i * 31 % 253) as u8).collect();
    let form = reqwest::multipart::Form::new().text("phone", FRIEND).part(
        "file",
        file_part(data.clone(), "big.bin", "application/octet-stream"),
    );
    let reply = server.post_multipart("/send/file", form).await;
    let copy = delivered(&fake, &server, &reply, FRIEND);
    assert_eq!(copy.media.as_deref().map(<[u8]>::len), Some(data.len()));
    assert!(
        copy.media.as_deref() == Some(&data[..]),
        "the decrypted upload is the file"
    );
}

/// Big images in a burst: what the media workers cannot take in time is turned away
/// with a 503, what they take is delivered, and memory stays bounded.
#[tokio::test]
async fn a_burst_of_big_images_is_bounded_by_the_media_workers() {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    fake.add_contact(FRIEND, ContactInfo::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = ["--media-workers", "1", "--media-queue-timeout-secs", "1"];
    let server = Server::start_with(&fake, dir.path(), &args).await;
    server.pair(&fake).await;
    let before = server.peak_rss_kb();
    let big = crate::common::jpeg(4000, 3000);
    let sends = (0..12).map(|i| {
        let form = reqwest::multipart::Form::new()
            .text("phone", FRIEND)
            .text("caption", format!("big {i}"))
            .part("image", file_part(big.clone(), "big.jpg", "image/jpeg"));
        server.post_multipart("/send/image", form)
    });
    let replies = futures_util::future::join_all(sends).await;
    let busy = replies.iter().filter(|r| r.status == 503).count();
    let sent = replies.iter().filter(|r| r.status == 200).count();
    let peak = server.peak_rss_kb();
    eprintln!(
        "12 images of {} KB, 1 worker: {sent} sent, {busy} busy; peak RSS {before} kB before, {peak} kB after",
        big.len() / 1000
    );
    assert!(busy >= 1, "nothing was turned away");
    assert!(sent >= 1, "nothing was sent");
    assert_eq!(busy + sent, replies.len(), "only 200s and 503s");
    let delivered = fake
        .received()
        .iter()
        .filter(|r| r.recipient == FRIEND && r.media.is_some())
        .count();
    assert_eq!(delivered, sent, "each 200 was a decrypted image");
}

crate::on_both_stores!(
    a_text_reaches_the_recipient_decrypted,
    a_group_message_reaches_every_member,
);
