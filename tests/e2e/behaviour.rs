//! The later Go versions' WhatsApp behaviour flags, each through the fake:
//! `--auto-mark-read` sends read receipts for incoming messages.

use std::time::Duration;

use fake_whatsapp::{ContactInfo, FakeWhatsApp};

use crate::harness::{Server, wait_for};
use crate::send::FRIEND;

async fn paired_with(args: &[&str]) -> (FakeWhatsApp, Server, tempfile::TempDir) {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    fake.add_contact(FRIEND, ContactInfo::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&fake, dir.path(), args).await;
    server.pair(&fake).await;
    (fake, server, dir)
}

fn read(fake: &FakeWhatsApp, id: &str) -> bool {
    fake.read_receipts()
        .iter()
        .any(|r| r.kind == "read" && r.ids.iter().any(|i| i == id))
}

#[tokio::test]
async fn auto_mark_read_reads_incoming_messages_and_is_off_by_default() {
    let (fake, server, _dir) = paired_with(&["--auto-mark-read"]).await;
    let first = fake.deliver(FRIEND, "are you there?").await.unwrap();
    let second = fake.deliver(FRIEND, "hello?").await.unwrap();
    wait_for("read receipts for both", Duration::from_secs(15), || {
        read(&fake, &first) && read(&fake, &second)
    })
    .await;
    drop(server);

    // Without the flag, a message stays unread.
    let (fake, server, _dir) = paired_with(&[]).await;
    let id = fake.deliver(FRIEND, "unread").await.unwrap();
    server
        .wait_reply(
            &format!("/chat/{FRIEND}@s.whatsapp.net/messages"),
            None,
            "the message stored",
            |r| r.to_string().contains("unread"),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!read(&fake, &id), "{:?}", fake.read_receipts());
}
