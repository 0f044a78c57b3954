//! The message store (`storages/chat.db`): every message in and out, reactions,
//! edits, deletions and receipts, read here straight from SQLite; logout empties it.

use std::time::Duration;

use fake_whatsapp::{ContactInfo, FakeWhatsApp, MediaType};
use rusqlite::{Connection, OptionalExtension};
use whatsapp_rust::prelude::{MessageField, wa};
use whatsapp_rust::waproto::whatsapp::message::protocol_message::Type as ProtocolType;

use crate::harness::{Server, wait_for};
use crate::send::FRIEND;

/// A row of `messages`, as the test needs it.
#[derive(Debug, PartialEq)]
struct Row {
    sender: String,
    is_from_me: bool,
    kind: String,
    body: Option<String>,
    direct_path: Option<String>,
    media_key: Option<Vec<u8>>,
    revoked: bool,
    edited: bool,
}

fn open(dir: &std::path::Path) -> Connection {
    Connection::open(dir.join("storages/chat.db")).unwrap()
}

fn row(db: &Connection, id: &str) -> Option<Row> {
    db.query_row(
        "SELECT sender, is_from_me, kind, body, direct_path, media_key, revoked_at IS NOT NULL, \
         edited_at IS NOT NULL FROM messages WHERE chat_jid = ?1 AND id = ?2",
        [format!("{FRIEND}@s.whatsapp.net"), id.to_owned()],
        |r| {
            Ok(Row {
                sender: r.get(0)?,
                is_from_me: r.get(1)?,
                kind: r.get(2)?,
                body: r.get(3)?,
                direct_path: r.get(4)?,
                media_key: r.get(5)?,
                revoked: r.get(6)?,
                edited: r.get(7)?,
            })
        },
    )
    .optional()
    .unwrap()
}

fn count(db: &Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn key(id: &str, from_me: bool) -> MessageField<wa::MessageKey> {
    MessageField::some(wa::MessageKey {
        remote_jid: Some(format!("{FRIEND}@s.whatsapp.net")),
        from_me: Some(from_me),
        id: Some(id.into()),
        participant: None,
    })
}

fn protocol(kind: ProtocolType, target: &str, edited: Option<&str>) -> wa::Message {
    wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            key: key(target, false),
            r#type: Some(kind),
            edited_message: match edited {
                Some(text) => MessageField::some(wa::Message {
                    conversation: Some(text.into()),
                    ..Default::default()
                }),
                None => MessageField::none(),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_message_in_and_out_is_stored_with_what_happened_to_it_and_logout_forgets_them() {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    fake.add_contact(FRIEND, ContactInfo::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&fake, dir.path()).await;
    server.pair(&fake).await;
    let friend = format!("{FRIEND}@s.whatsapp.net");

    // Out: a text, which the contact's phone confirms and reads.
    fake.set_faults(fake_whatsapp::Faults {
        flood_per_message: 2,
        ..Default::default()
    });
    let reply = server
        .post_form(
            "/send/message",
            &[("phone", FRIEND), ("message", "hi from the API")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let sent_id = reply.body["results"]["message_id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| fake.received()[0].id.clone());
    fake.set_faults(fake_whatsapp::Faults::default());

    // In: a text, an image, a reaction to ours, an edit and a revoke of theirs.
    let text_id = fake.deliver(FRIEND, "hello there").await.unwrap();
    let hosted = fake
        .host_media(b"not really a jpeg", MediaType::Image)
        .unwrap();
    let image = wa::Message {
        image_message: MessageField::some(wa::message::ImageMessage {
            url: Some(hosted.url.clone()),
            direct_path: Some(hosted.direct_path.clone()),
            caption: Some("a picture".into()),
            mimetype: Some("image/jpeg".into()),
            media_key: Some(hosted.media_key.clone()),
            file_sha256: Some(hosted.file_sha256.clone()),
            file_enc_sha256: Some(hosted.file_enc_sha256.clone()),
            file_length: Some(hosted.file_length),
            ..Default::default()
        }),
        ..Default::default()
    };
    let image_id = fake.deliver_message(FRIEND, image).await.unwrap();
    let reaction = wa::Message {
        reaction_message: MessageField::some(wa::message::ReactionMessage {
            key: key(&sent_id, true),
            text: Some("🙏".into()),
            sender_timestamp_ms: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    };
    fake.deliver_message(FRIEND, reaction).await.unwrap();
    fake.deliver_message(
        FRIEND,
        protocol(ProtocolType::MESSAGE_EDIT, &text_id, Some("hello there!")),
    )
    .await
    .unwrap();
    fake.deliver_message(FRIEND, protocol(ProtocolType::REVOKE, &image_id, None))
        .await
        .unwrap();

    let db = open(dir.path());
    wait_for("everything stored", Duration::from_secs(15), || {
        row(&db, &image_id).is_some_and(|r| r.revoked)
            && row(&db, &text_id).is_some_and(|r| r.edited)
            && count(&db, "SELECT COUNT(*) FROM reactions") == 1
            && count(&db, "SELECT COUNT(*) FROM receipts") == 2
    })
    .await;

    let out = row(&db, &sent_id).unwrap();
    assert!(out.is_from_me);
    assert_eq!(out.sender, fake.phone_jid());
    assert_eq!(
        (out.kind.as_str(), out.body.as_deref()),
        ("text", Some("hi from the API"))
    );
    let text = row(&db, &text_id).unwrap();
    assert_eq!(text.sender, friend);
    assert_eq!(
        text.body.as_deref(),
        Some("hello there!"),
        "the edit applied"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM edits WHERE body = 'hello there!'"
        ),
        1
    );
    let revoked = row(&db, &image_id).unwrap();
    assert_eq!(revoked.kind, "image");
    assert_eq!(
        (revoked.body, revoked.media_key, revoked.direct_path),
        (None, None, None)
    );
    let (emoji, on): (String, String) = db
        .query_row("SELECT emoji, message_id FROM reactions", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((emoji.as_str(), on.as_str()), ("🙏", sent_id.as_str()));
    let mut kinds: Vec<String> = db
        .prepare("SELECT kind FROM receipts WHERE message_id = ?1")
        .unwrap()
        .query_map([&sent_id], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    kinds.sort();
    assert_eq!(kinds, ["delivered", "read"]);
    let name: Option<String> = db
        .query_row("SELECT name FROM chats WHERE jid = ?1", [&friend], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(name.as_deref(), Some("Fake Contact"));

    // Logout forgets them all.
    let reply = server.get("/app/logout").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    wait_for("an empty store", Duration::from_secs(15), || {
        count(&db, "SELECT COUNT(*) FROM messages") == 0
    })
    .await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM reactions"), 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM receipts"), 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM chats"), 0);
}
