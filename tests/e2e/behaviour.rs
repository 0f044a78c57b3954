//! The later Go versions' WhatsApp behaviour flags, each through the fake:
//! `--auto-mark-read` sends read receipts for incoming messages,
//! `--auto-reject-call` rejects calls, `--account-validation` checks a number
//! before a send, `--presence-on-connect` and the presence pulse announce the
//! account's presence, `--webhook-include-outgoing` sends our own sends to the
//! webhooks.

use std::time::Duration;

use fake_whatsapp::{ContactInfo, FakeWhatsApp};

use crate::harness::{Server, wait_for};
use crate::send::FRIEND;
use crate::webhook::{Receiver, paired_with_webhooks_and};

/// A number the fake does not know: not on WhatsApp.
const STRANGER: &str = "6289685028131";

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
    // Read here: the chat has nothing unread.
    server
        .wait_reply("/chats", None, "the chat read", |r| {
            r["results"]["data"][0]["unread_count"] == 0 && r["results"]["pagination"]["total"] == 1
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
    assert_eq!(
        server.get("/chats").await.body["results"]["data"][0]["unread_count"],
        1
    );
}

fn events_named(receiver: &Receiver, name: &str) -> Vec<serde_json::Value> {
    receiver
        .hits()
        .into_iter()
        .map(|h| h.body)
        .filter(|b| b["event"] == name)
        .collect()
}

#[tokio::test]
async fn auto_reject_call_rejects_the_call_and_its_webhook_says_so() {
    let receiver = Receiver::start(200).await;
    let (fake, _server, _dir) =
        paired_with_webhooks_and(&[&receiver.url], &["--auto-reject-call"]).await;
    let call_id = fake.call_offer(FRIEND).await.unwrap();
    // The reject reaches the fake, which checks it against its offer.
    wait_for("the reject and the event", Duration::from_secs(15), || {
        !events_named(&receiver, "call.offer").is_empty() && !fake.rejected_calls().is_empty()
    })
    .await;
    assert_eq!(fake.rejected_calls(), std::slice::from_ref(&call_id));
    let call = &events_named(&receiver, "call.offer")[0];
    assert_eq!(call["payload"]["call_id"], call_id.as_str());
    assert_eq!(call["payload"]["auto_rejected"], true);
    assert!(fake.problems().is_empty(), "{:?}", fake.problems());
}

#[tokio::test]
async fn account_validation_refuses_a_number_not_on_whatsapp_and_can_be_off() {
    let (fake, server, _dir) = paired_with(&["--api-compat", "v9"]).await;
    let reply = server
        .post_form("/send/message", &[("phone", STRANGER), ("message", "hi")])
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.body["code"], "INVALID_JID");
    assert!(
        reply.body["message"].as_str().unwrap().contains(STRANGER),
        "{}",
        reply.body
    );
    // A number on WhatsApp is checked, then sent to; the fake decrypts it.
    let reply = server
        .post_form(
            "/send/message",
            &[("phone", FRIEND), ("message", "checked")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    wait_for("the message at the fake", Duration::from_secs(10), || {
        fake.received()
            .iter()
            .any(|r| r.recipient == FRIEND && r.message.conversation.as_deref() == Some("checked"))
    })
    .await;
    assert!(
        fake.received().iter().all(|r| r.recipient != STRANGER),
        "nothing went to the stranger"
    );
    drop(server);

    // Off: the number is not asked about; the send goes out as it is.
    let (_fake, server, _dir) =
        paired_with(&["--api-compat", "v9", "--account-validation=false"]).await;
    let reply = server
        .post_form("/send/message", &[("phone", STRANGER), ("message", "hi")])
        .await;
    assert_ne!(reply.body["code"], "INVALID_JID", "{}", reply.body);
}

#[tokio::test]
async fn presence_on_connect_announces_the_configured_presence() {
    // The later versions' default: unavailable, so the phone keeps notifying.
    let (fake, server, _dir) =
        paired_with(&["--api-compat", "v9", "--presence-pulse-enabled=false"]).await;
    wait_for("an unavailable presence", Duration::from_secs(10), || {
        fake.presences().last().map(String::as_str) == Some("unavailable")
    })
    .await;
    drop(server);
    // v2.3.0 announced available, and never unavailable.
    let (fake, _server, _dir) = paired_with(&[]).await;
    wait_for("an available presence", Duration::from_secs(10), || {
        fake.presences().iter().any(|p| p == "available")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !fake.presences().iter().any(|p| p == "unavailable"),
        "{:?}",
        fake.presences()
    );
}

#[tokio::test]
async fn the_presence_pulse_marks_the_account_available_then_unavailable_again() {
    let (fake, _server, _dir) = paired_with(&[
        "--api-compat",
        "v9",
        "--presence-pulse-interval",
        "2s",
        "--presence-pulse-duration",
        "500ms",
    ])
    .await;
    // After the unavailable of the connect: two pulses, each available then
    // unavailable.
    let pulses = |presences: &[String]| {
        let start = presences.iter().position(|p| p == "unavailable");
        let after: Vec<&str> = start
            .map(|i| presences[i + 1..].iter().map(String::as_str).collect())
            .unwrap_or_default();
        after.starts_with(&["available", "unavailable", "available", "unavailable"])
    };
    wait_for("two pulses", Duration::from_secs(20), || {
        pulses(&fake.presences())
    })
    .await;
}

#[tokio::test]
async fn include_outgoing_sends_our_own_sends_to_the_webhook() {
    let receiver = Receiver::start(200).await;
    let (fake, server, _dir) = paired_with_webhooks_and(
        &[&receiver.url],
        &["--webhook-include-outgoing", "--api-compat", "v9"],
    )
    .await;
    let reply = server
        .post_form(
            "/send/message",
            &[("phone", FRIEND), ("message", "from the API")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = reply.body["results"]["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for("the outgoing event", Duration::from_secs(15), || {
        receiver
            .hits()
            .iter()
            .any(|h| h.body["payload"]["id"] == id)
    })
    .await;
    let event = receiver
        .hits()
        .into_iter()
        .find(|h| h.body["payload"]["id"] == id)
        .unwrap()
        .body;
    assert_eq!(event["event"], "message");
    assert_eq!(event["payload"]["is_from_me"], true);
    assert_eq!(event["payload"]["body"], "from the API");
    assert_eq!(
        event["payload"]["chat_id"],
        format!("{FRIEND}@s.whatsapp.net").as_str()
    );
    assert_eq!(event["payload"]["from"], fake.phone_jid().as_str());
    drop(server);

    // Off by default: an incoming message is the only event.
    let receiver = Receiver::start(200).await;
    let (fake, server, _dir) = paired_with_webhooks_and(&[&receiver.url], &[]).await;
    let reply = server
        .post_form("/send/message", &[("phone", FRIEND), ("message", "quiet")])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let incoming = fake.deliver(FRIEND, "after it").await.unwrap();
    wait_for("the incoming event", Duration::from_secs(15), || {
        receiver
            .hits()
            .iter()
            .any(|h| h.body["payload"]["id"] == incoming)
    })
    .await;
    assert_eq!(receiver.hits().len(), 1, "only the incoming message");
}
