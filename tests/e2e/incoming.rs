//! Receiving every kind of message: media downloaded and identical to what the contact
//! sent, reactions, edits, revokes, contacts, locations, replies, forwards, view-once,
//! each in the Go webhook shape.

use std::time::Duration;

use fake_whatsapp::{FakeWhatsApp, HostedMedia, MediaType};
use serde_json::{Value, json};
use whatsapp_rust::prelude::{MessageField, wa};
use whatsapp_rust::waproto::whatsapp::message::protocol_message::Type as ProtocolType;

use crate::harness::{Server, wait_for};
use crate::send::FRIEND;
use crate::webhook::{Receiver, paired_with_webhooks_and};

/// Waits for the event of message `id` and returns it.
async fn event_of(receiver: &Receiver, id: &str) -> Value {
    wait_for(
        &format!("the event of {id}"),
        Duration::from_secs(20),
        || {
            receiver
                .hits()
                .iter()
                .any(|h| h.body["payload"]["id"] == id)
        },
    )
    .await;
    receiver
        .hits()
        .into_iter()
        .find(|h| h.body["payload"]["id"] == id)
        .unwrap()
        .body
}

pub fn image(media: &HostedMedia, caption: Option<&str>) -> wa::Message {
    wa::Message {
        image_message: MessageField::some(wa::message::ImageMessage {
            url: Some(media.url.clone()),
            direct_path: Some(media.direct_path.clone()),
            mimetype: Some("image/png".into()),
            caption: caption.map(str::to_owned),
            media_key: Some(media.media_key.clone()),
            file_sha256: Some(media.file_sha256.clone()),
            file_enc_sha256: Some(media.file_enc_sha256.clone()),
            file_length: Some(media.file_length),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn document(media: &HostedMedia, name: &str) -> wa::Message {
    wa::Message {
        document_message: MessageField::some(wa::message::DocumentMessage {
            url: Some(media.url.clone()),
            direct_path: Some(media.direct_path.clone()),
            mimetype: Some("application/pdf".into()),
            file_name: Some(name.into()),
            media_key: Some(media.media_key.clone()),
            file_sha256: Some(media.file_sha256.clone()),
            file_enc_sha256: Some(media.file_enc_sha256.clone()),
            file_length: Some(media.file_length),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn key(id: &str, from_me: bool) -> wa::MessageKey {
    wa::MessageKey {
        remote_jid: Some(format!("{FRIEND}@s.whatsapp.net")),
        from_me: Some(from_me),
        id: Some(id.into()),
        participant: None,
    }
}

pub fn png() -> Vec<u8> {
    let mut bytes = Vec::new();
    image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]))
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

/// Reads a payload path (absolute here: the test gives an absolute statics folder).
fn saved(path: &Value) -> Vec<u8> {
    std::fs::read(path.as_str().unwrap()).unwrap()
}

async fn paired(extra: &[&str]) -> (FakeWhatsApp, Receiver, Server, tempfile::TempDir) {
    let receiver = Receiver::start(200).await;
    let (fake, server, dir) = paired_with_webhooks_and(&[&receiver.url], extra).await;
    (fake, receiver, server, dir)
}

async fn media_is_downloaded_intact_and_every_kind_arrives_in_the_go_shape() {
    let (fake, receiver, _server, dir) = paired(&["--max-download-size-mb", "1"]).await;
    let friend = format!("{FRIEND}@s.whatsapp.net");

    // An image with a caption: downloaded, the same bytes, `{path, caption}`.
    let picture = png();
    let hosted = fake.host_media(&picture, MediaType::Image).unwrap();
    let id = fake
        .deliver_message(FRIEND, image(&hosted, Some("look <here>")))
        .await
        .unwrap();
    let body = event_of(&receiver, &id).await;
    assert_eq!(body["event"], "message");
    let payload = &body["payload"];
    assert_eq!(payload["body"], "look <here>");
    assert_eq!(payload["image"]["caption"], "look <here>");
    let path = &payload["image"]["path"];
    assert!(path.as_str().unwrap().ends_with(".png"), "{path}");
    assert!(path.as_str().unwrap().contains("/statics/media/"), "{path}");
    assert_eq!(saved(path), picture);
    assert_eq!(fake.downloads(&hosted.direct_path), 1);

    // A document without a caption: the path itself, with the file's extension.
    let pdf = b"%PDF-1.4 fake document body".repeat(100);
    let hosted = fake.host_media(&pdf, MediaType::Document).unwrap();
    let id = fake
        .deliver_message(FRIEND, document(&hosted, "report.PDF"))
        .await
        .unwrap();
    let payload = event_of(&receiver, &id).await["payload"].clone();
    assert!(payload["document"].as_str().unwrap().ends_with(".pdf"));
    assert_eq!(saved(&payload["document"]), pdf);

    // Larger than --max-download-size-mb: not downloaded, its URL instead.
    let big = vec![7u8; 1_200_000];
    let hosted = fake.host_media(&big, MediaType::Document).unwrap();
    let id = fake
        .deliver_message(FRIEND, document(&hosted, "big.bin"))
        .await
        .unwrap();
    let payload = event_of(&receiver, &id).await["payload"].clone();
    assert_eq!(
        payload["document"],
        json!({"url": hosted.url, "filename": "big.bin"})
    );
    assert_eq!(fake.downloads(&hosted.direct_path), 0);

    // A sender that declares a small file and sends a big one: refused while
    // downloading, nothing of it left on disk.
    let hosted = fake.host_media(&big, MediaType::Document).unwrap();
    let mut lying = document(&hosted, "small.txt");
    lying.document_message.as_option_mut().unwrap().file_length = Some(100);
    let id = fake.deliver_message(FRIEND, lying).await.unwrap();
    let payload = event_of(&receiver, &id).await["payload"].clone();
    assert_eq!(payload["document"]["url"], hosted.url.as_str());
    assert!(fake.downloads(&hosted.direct_path) >= 1, "it was tried");
    let media_dir = dir_path(&dir).join("statics/media");
    let leftovers: Vec<_> = std::fs::read_dir(&media_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(std::fs::read_dir(&media_dir).unwrap().count(), 2);

    // A reply that quotes, forwarded.
    let original = fake.deliver(FRIEND, "the original").await.unwrap();
    let reply = wa::Message {
        extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
            text: Some("the answer".into()),
            context_info: MessageField::some(wa::ContextInfo {
                stanza_id: Some(original.clone()),
                participant: Some(friend.clone()),
                quoted_message: MessageField::some(wa::Message {
                    conversation: Some("the original".into()),
                    ..Default::default()
                }),
                is_forwarded: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = fake.deliver_message(FRIEND, reply).await.unwrap();
    let payload = event_of(&receiver, &id).await["payload"].clone();
    assert_eq!(payload["body"], "the answer");
    assert_eq!(payload["replied_to_id"], original.as_str());
    assert_eq!(payload["quoted_body"], "the original");
    assert_eq!(payload["forwarded"], true);

    // A reaction, an edit and a revoke of that original.
    let reaction = wa::Message {
        reaction_message: MessageField::some(wa::message::ReactionMessage {
            key: MessageField::some(key(&original, false)),
            text: Some("👍".into()),
            sender_timestamp_ms: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = fake.deliver_message(FRIEND, reaction).await.unwrap();
    let body = event_of(&receiver, &id).await;
    assert_eq!(body["event"], "message.reaction");
    assert_eq!(body["payload"]["reaction"], "👍");
    assert_eq!(body["payload"]["reacted_message_id"], original.as_str());
    assert_eq!(body["payload"]["chat_id"], friend.as_str());

    let edit = wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            key: MessageField::some(key(&original, false)),
            r#type: Some(ProtocolType::MESSAGE_EDIT),
            edited_message: MessageField::some(wa::Message {
                conversation: Some("the original, fixed".into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = fake.deliver_message(FRIEND, edit).await.unwrap();
    let body = event_of(&receiver, &id).await;
    assert_eq!(body["event"], "message.edited");
    assert_eq!(body["payload"]["original_message_id"], original.as_str());
    assert_eq!(body["payload"]["body"], "the original, fixed");

    let revoke = wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            key: MessageField::some(key(&original, false)),
            r#type: Some(ProtocolType::REVOKE),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = fake.deliver_message(FRIEND, revoke).await.unwrap();
    let body = event_of(&receiver, &id).await;
    assert_eq!(body["event"], "message.revoked");
    assert_eq!(body["payload"]["revoked_message_id"], original.as_str());
    assert_eq!(body["payload"]["revoked_from_me"], false);
    assert_eq!(body["payload"]["revoked_chat"], friend.as_str());

    // A contact card and a location.
    let vcard =
        "BEGIN:VCARD\nVERSION:3.0\nFN:Budi\nTEL;type=CELL;waid=6281234567:+62 812-34567\nEND:VCARD";
    let contact = wa::Message {
        contact_message: MessageField::some(wa::message::ContactMessage {
            display_name: Some("Budi".into()),
            vcard: Some(vcard.into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = fake.deliver_message(FRIEND, contact).await.unwrap();
    let payload = event_of(&receiver, &id).await["payload"].clone();
    assert_eq!(
        payload["contact"],
        json!({"displayName": "Budi", "vcard": vcard, "phone_number": "6281234567"})
    );
    let location = wa::Message {
        location_message: MessageField::some(wa::message::LocationMessage {
            degrees_latitude: Some(-6.2),
            degrees_longitude: Some(106.8),
            name: Some("Monas".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = fake.deliver_message(FRIEND, location).await.unwrap();
    let payload = event_of(&receiver, &id).await["payload"].clone();
    assert_eq!(
        payload["location"],
        json!({"degreesLatitude": -6.2, "degreesLongitude": 106.8, "name": "Monas"})
    );

    // A view-once image.
    let hosted = fake.host_media(&picture, MediaType::Image).unwrap();
    let once = wa::Message {
        view_once_message: MessageField::some(wa::message::FutureProofMessage {
            message: MessageField::some(image(&hosted, None)),
        }),
        ..Default::default()
    };
    let id = fake.deliver_message(FRIEND, once).await.unwrap();
    let payload = event_of(&receiver, &id).await["payload"].clone();
    assert_eq!(payload["view_once"], true);
    assert_eq!(saved(&payload["image"]), picture);
    assert!(fake.problems().is_empty(), "{:?}", fake.problems());
}

#[tokio::test]
async fn without_auto_download_media_carries_its_url() {
    let (fake, receiver, _server, dir) = paired(&["--auto-download-media=false"]).await;
    let hosted = fake.host_media(&png(), MediaType::Image).unwrap();
    let id = fake
        .deliver_message(FRIEND, image(&hosted, Some("hi")))
        .await
        .unwrap();
    let payload = event_of(&receiver, &id).await["payload"].clone();
    assert_eq!(
        payload["image"],
        json!({"url": hosted.url, "caption": "hi"})
    );
    assert_eq!(fake.downloads(&hosted.direct_path), 0);
    assert!(!dir_path(&dir).join("statics/media").exists());
}

fn dir_path(dir: &tempfile::TempDir) -> &std::path::Path {
    dir.path()
}

/// The events named `name`, in arrival order.
fn events_named(receiver: &Receiver, name: &str) -> Vec<Value> {
    receiver
        .hits()
        .into_iter()
        .filter(|h| h.body["event"] == name)
        .map(|h| h.body)
        .collect()
}

#[tokio::test]
async fn group_membership_changes_and_calls_reach_the_webhook() {
    use crate::webhook::OTHER;
    use fake_whatsapp::{FakeGroup, PHONE_USER};
    let (fake, receiver, _server, _dir) = paired(&[]).await;
    let group = |members: &[&str]| FakeGroup {
        subject: "Team".into(),
        admin: FRIEND.into(),
        members: members.iter().map(|m| m.to_string()).collect(),
    };
    fake.add_group("120363000000001", group(&[FRIEND, PHONE_USER]));
    fake.add_group("120363000000002", group(&[FRIEND]));
    let gid = "120363000000001@g.us";
    let other = format!("{OTHER}@s.whatsapp.net");
    // One change at a time: whatsapp-rust handles notifications concurrently, so
    // changes a few milliseconds apart may reach its event handler in any order.
    for (n, action) in ["add", "promote", "demote", "remove"].iter().enumerate() {
        fake.group_participants("120363000000001", action, &[OTHER], FRIEND)
            .await
            .unwrap();
        wait_for("the group change", Duration::from_secs(10), || {
            events_named(&receiver, "group.participants").len() > n
        })
        .await;
    }
    fake.group_participants("120363000000002", "add", &[PHONE_USER], FRIEND)
        .await
        .unwrap();
    let call_id = fake.call_offer(FRIEND).await.unwrap();

    wait_for("the group and call events", Duration::from_secs(20), || {
        events_named(&receiver, "group.participants").len() == 4
            && events_named(&receiver, "group.joined").len() == 1
            && events_named(&receiver, "call.offer").len() == 1
    })
    .await;
    let changes = events_named(&receiver, "group.participants");
    let kinds: Vec<&str> = changes
        .iter()
        .map(|e| e["payload"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["join", "promote", "demote", "leave"]);
    for event in &changes {
        assert_eq!(event["payload"]["chat_id"], gid);
        assert_eq!(event["payload"]["jids"], json!([other]));
        assert_eq!(event["device_id"], fake.phone_jid());
        let t = event["timestamp"].as_str().unwrap();
        assert!(t.parse::<jiff::Timestamp>().is_ok(), "{t}");
    }
    let joined = &events_named(&receiver, "group.joined")[0];
    assert_eq!(joined["payload"]["chat_id"], "120363000000002@g.us");
    assert_eq!(joined["payload"]["type"], "join");
    assert_eq!(joined["payload"]["jids"], json!([fake.phone_jid()]));

    let call = &events_named(&receiver, "call.offer")[0];
    assert_eq!(call["payload"]["call_id"], call_id.as_str());
    assert_eq!(
        call["payload"]["from"],
        format!("{FRIEND}@s.whatsapp.net").as_str()
    );
    assert_eq!(call["payload"]["auto_rejected"], false);
    assert_eq!(call["payload"]["remote_platform"], "android");
    assert!(call["timestamp"].is_string());

    // The client acknowledged every notification as WhatsApp expects.
    assert!(fake.problems().is_empty(), "{:?}", fake.problems());
    wait_for("the notifications' acks", Duration::from_secs(5), || {
        fake.flood().acked == 5
    })
    .await;
}

crate::on_both_stores!(media_is_downloaded_intact_and_every_kind_arrives_in_the_go_shape,);
