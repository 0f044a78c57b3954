//! Two WhatsApp accounts in one server, linked to two phones of the fake: each
//! sends as its own phone, gets its own incoming messages and webhooks, survives a
//! kill -9, and goes without touching the other.

use std::time::Duration;

use fake_whatsapp::{ContactInfo, FakeWhatsApp, PHONE_USER};
use serde_json::{Value, json};

use crate::harness::{Server, wait_for};
use crate::send::FRIEND;
use crate::webhook::Receiver;

const SECOND: &str = "15550009876";
const SECOND_LID: &str = "205550009876001";

/// Waits until the account `device` reports itself connected.
pub(crate) async fn wait_connected_as(server: &Server, device: &str) {
    let what = format!("{device} to connect");
    server
        .wait_reply("/app/status", Some(device), &what, |r| {
            r["results"]["is_connected"] == true
        })
        .await;
}

/// Sends `text` to FRIEND through the account `device`; the sender the fake saw.
pub(crate) async fn send_as(
    fake: &FakeWhatsApp,
    server: &Server,
    device: &str,
    text: &str,
) -> String {
    let res = server
        .request(
            "POST",
            "/send/message",
            Some(device),
            Some(json!({"phone": FRIEND, "message": text})),
        )
        .await;
    assert_eq!(res.status, 200, "{device}: {}\n{}", res.body, server.log());
    let id = res.body["results"]["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let received = fake.received();
    let copy = received
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("the fake never decrypted {id}: {received:?}"));
    assert_eq!(copy.recipient, FRIEND);
    assert_eq!(copy.message.conversation.as_deref(), Some(text));
    copy.sender.clone()
}

/// The webhook event of the incoming message `id`.
async fn event_of(receiver: &Receiver, id: &str) -> Value {
    let found = || {
        receiver
            .accepted()
            .into_iter()
            .find(|h| h.body["payload"]["id"] == id)
    };
    wait_for("the webhook event", Duration::from_secs(20), || {
        found().is_some()
    })
    .await;
    found().unwrap().body
}

/// A server holding two accounts: `default` linked to the fake's phone, `sales` to
/// the phone SECOND; the device SECOND linked.
async fn two_paired(
    extra: &[&str],
) -> (
    FakeWhatsApp,
    Server,
    tempfile::TempDir,
    fake_whatsapp::Device,
) {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    fake.add_contact(FRIEND, ContactInfo::default()).unwrap();
    fake.add_phone(SECOND, SECOND_LID, "Second Phone").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&fake, dir.path(), extra).await;

    // The first account as a one-account client pairs it; the second by its slot.
    server.pair(&fake).await;
    let linked = link_account(&fake, &server, "sales", SECOND).await;
    (fake, server, dir, linked)
}

/// Adds the account `id` and links it to the fake's phone `phone` by QR.
pub(crate) async fn link_account(
    fake: &FakeWhatsApp,
    server: &Server,
    id: &str,
    phone: &str,
) -> fake_whatsapp::Device {
    let added = server
        .request("POST", "/devices", None, Some(json!({"device_id": id})))
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    let login = format!("/devices/{id}/login");
    let linked = server.scan_for(fake, &login, id, phone).await;
    assert!(
        linked.jid.starts_with(&format!("{phone}:")),
        "{}",
        linked.jid
    );
    wait_connected_as(server, id).await;
    linked
}

#[tokio::test]
async fn two_accounts_from_two_phones_work_side_by_side() {
    let receiver = Receiver::start(200).await;
    let (fake, mut server, dir, linked) = two_paired(&["--webhook", &receiver.url]).await;

    let unnamed = server.get("/app/status").await;
    assert_eq!(unnamed.status, 400, "{}", unnamed.body);

    // Each send comes from its own phone's device, named by slot id or by JID.
    let first = send_as(&fake, &server, "default", "from the first").await;
    assert!(first.starts_with(&format!("{PHONE_USER}:")), "{first}");
    let second_jid = format!("{SECOND}@s.whatsapp.net");
    let second = send_as(&fake, &server, &second_jid, "from sales").await;
    assert_eq!(second, linked.jid);

    // Incoming messages reach the right account, with its ids on the event.
    let to_sales = fake.deliver_to(SECOND, FRIEND, "to sales").await.unwrap();
    let to_first = fake.deliver(FRIEND, "to the first").await.unwrap();
    let event = event_of(&receiver, &to_sales).await;
    assert_eq!(event["device_id"], second_jid.as_str());
    assert_eq!(event["session_id"], "sales");
    let event = event_of(&receiver, &to_first).await;
    assert_eq!(event["device_id"], format!("{PHONE_USER}@s.whatsapp.net"));
    assert_eq!(event["session_id"], "default");
    let friend = format!("{FRIEND}@s.whatsapp.net");
    let path = format!("/chat/{friend}/messages");
    let first_chat = server.request("GET", &path, Some("default"), None).await;
    let text = first_chat.body.to_string();
    assert!(
        text.contains("to the first") && !text.contains("to sales"),
        "{text}"
    );

    // kill -9 and start: both accounts come back with no scan.
    let devices = fake.devices().len();
    server.kill_and_restart().await;
    wait_connected_as(&server, "default").await;
    wait_connected_as(&server, "sales").await;
    assert_eq!(fake.devices().len(), devices, "no new pairing");
    send_as(&fake, &server, "sales", "after the restart").await;

    // Removing one logs it out at WhatsApp and deletes its files; the other stays.
    assert_eq!(
        account_folders(dir.path()).len(),
        1,
        "the QR folder of sales"
    );
    let removed = server.request("DELETE", "/devices/sales", None, None).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    wait_for(
        "the phone to list the device as removed",
        Duration::from_secs(10),
        || fake.devices_of(SECOND).iter().all(|d| d.removed),
    )
    .await;
    let left: Vec<_> = std::fs::read_dir(dir.path().join("storages/accounts"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left on disk: {left:?}");
    assert!(
        account_folders(dir.path()).is_empty(),
        "{:?}",
        account_folders(dir.path())
    );
    let list = server.get("/devices").await;
    assert_eq!(
        list.body["results"].as_array().unwrap().len(),
        1,
        "{}",
        list.body
    );
    send_as(&fake, &server, "default", "still here").await;
    assert!(fake.problems().is_empty(), "{:?}", fake.problems());
}

/// Folders under `statics/` named by an account (its QR images, its media).
fn account_folders(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    walk(&dir.join("statics"))
        .into_iter()
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.len() == 36))
        .collect()
}

/// Every path under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}

#[tokio::test]
async fn a_replaced_stream_or_an_unlink_stops_that_account_only() {
    let (fake, server, _dir, _) = two_paired(&[]).await;
    assert_eq!(fake.replace_session_of(SECOND), 1);
    server
        .wait_reply("/app/status", Some("sales"), "sales to be replaced", |r| {
            r["results"]["state"] == "replaced"
        })
        .await;
    send_as(&fake, &server, "default", "the other one carries on").await;
    let back = server
        .request("POST", "/devices/sales/reconnect", None, None)
        .await;
    assert_eq!(back.status, 200, "{}", back.body);
    send_as(&fake, &server, "sales", "taken back").await;

    assert_eq!(fake.unlink_device_of(SECOND), 1);
    server
        .wait_reply(
            "/devices/sales/status",
            None,
            "sales to be logged out",
            |r| r["results"]["is_logged_in"] == false,
        )
        .await;
    // The slot stays, logged out; the other account is untouched.
    let slot = server.request("GET", "/devices/sales", None, None).await;
    assert_eq!(
        slot.body["results"]["state"], "disconnected",
        "{}",
        slot.body
    );
    send_as(&fake, &server, "default", "still connected").await;
    let status = server
        .request("GET", "/app/status", Some("default"), None)
        .await;
    assert_eq!(status.body["results"]["is_connected"], true);
}

#[tokio::test]
async fn accounts_reconnect_at_start_a_bounded_number_at_a_time() {
    let (fake, mut server, _dir, _) = two_paired(&["--startup-handshakes", "1"]).await;
    fake.add_phone("15550004444", "205550004444001", "Third Phone")
        .unwrap();
    link_account(&fake, &server, "ops", "15550004444").await;
    // Each login takes a while, so overlapping ones would show.
    fake.set_faults(fake_whatsapp::Faults {
        login_delay_ms: 300,
        ..Default::default()
    });
    let all_connected = async |server: &Server| {
        for id in ["default", "sales", "ops"] {
            wait_connected_as(server, id).await;
        }
    };
    server.terminate().await;
    fake.max_handshakes();
    server.restart().await;
    // Every account is listed at once, those still waiting their turn too.
    let listed = server.request("GET", "/devices", None, None).await;
    assert_eq!(
        listed.body["results"].as_array().unwrap().len(),
        3,
        "{}",
        listed.body
    );
    all_connected(&server).await;
    assert_eq!(fake.max_handshakes(), 1, "one at a time");

    // The count does see overlap when more are allowed.
    server.terminate().await;
    server.set_args(&["--startup-handshakes", "3"]);
    server.restart().await;
    all_connected(&server).await;
    assert!(fake.max_handshakes() >= 2);
}

#[tokio::test]
async fn an_accounts_own_webhook_takes_its_events_signed_with_its_secret() {
    let global = Receiver::start(200).await;
    let own = Receiver::start(200).await;
    let (fake, server, _dir, _) = two_paired(&["--webhook", &global.url]).await;
    let set = server
        .request(
            "PATCH",
            "/devices/sales/webhook",
            None,
            Some(json!({"webhook_url": own.url, "webhook_secret": "sales-secret"})),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    wait_connected_as(&server, "sales").await;

    let to_sales = fake
        .deliver_to(SECOND, FRIEND, "for the sales hook")
        .await
        .unwrap();
    let to_first = fake.deliver(FRIEND, "for the global hook").await.unwrap();
    let event = event_of(&own, &to_sales).await;
    assert_eq!(event["session_id"], "sales");
    let hit = own
        .accepted()
        .into_iter()
        .find(|h| h.body["payload"]["id"] == to_sales.as_str())
        .unwrap();
    assert_eq!(
        hit.header("x-hub-signature-256"),
        format!(
            "sha256={}",
            crate::webhook::hmac_hex("sales-secret", &hit.raw)
        )
    );
    event_of(&global, &to_first).await;
    let ids = |r: &Receiver| -> Vec<String> {
        r.hits()
            .iter()
            .filter_map(|h| h.body["payload"]["id"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(!ids(&global).contains(&to_sales), "replaced, not added to");
    assert!(!ids(&own).contains(&to_first), "the other account's event");
}

#[tokio::test]
async fn an_account_is_refused_before_the_server_runs_out_of_open_files() {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_nofile(&fake, dir.path(), 120).await;
    let mut refused = None;
    for n in 0..20 {
        let res = server
            .request(
                "POST",
                "/devices",
                None,
                Some(json!({"device_id": format!("a{n}")})),
            )
            .await;
        if res.status != 200 {
            refused = Some(res);
            break;
        }
    }
    let refused = refused.expect("a limit of 120 open files holds fewer than 20 accounts");
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused.message().contains("limit of open files"),
        "{}",
        refused.body
    );
    // The server goes on serving what it has.
    let list = server.get("/devices").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(
        server.log().contains("open files limit"),
        "{}",
        server.log()
    );
}
