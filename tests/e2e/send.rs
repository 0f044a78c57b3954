//! Every send route: the fake recipient decrypts exactly what was asked for.

use fake_whatsapp::{ContactInfo, FakeWhatsApp, Received};
use jiff::Timestamp;
use whatsapp_api::domain::timestamp::server_time;

use crate::harness::{Reply, Server};

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

#[tokio::test]
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
