//! `--db-uri postgres://…`: every account's WhatsApp session in PostgreSQL (a real
//! server from Debian's binaries), with the real client against the fake.

use std::time::Duration;

use fake_whatsapp::{ContactInfo, FakeWhatsApp};
use whatsapp_api::postgres::testing::with_database;

use crate::harness::{Server, wait_for};
use crate::send::{FRIEND, delivered};

/// How many rows the account `account` has in the session tables.
async fn session_rows(url: &str, account: &str) -> i64 {
    let pool = whatsapp_api::postgres::connect(url).await.unwrap();
    let client = pool.get().await.unwrap();
    let mut total = 0;
    for table in ["wa_devices", "wa_identities", "wa_sessions", "wa_prekeys"] {
        let n: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE account = $1"),
                &[&account],
            )
            .await
            .unwrap()
            .get(0);
        total += n;
    }
    total
}

/// How many messages the account `account` has stored in the database.
async fn message_rows(url: &str, account: &str) -> i64 {
    let pool = whatsapp_api::postgres::connect(url).await.unwrap();
    let client = pool.get().await.unwrap();
    client
        .query_one(
            "SELECT count(*) FROM wa_messages WHERE account = $1",
            &[&account],
        )
        .await
        .unwrap()
        .get(0)
}

/// The texts of the account's chat with [`FRIEND`], newest first.
pub(crate) async fn history(server: &Server, account: Option<&str>) -> Vec<String> {
    let path = format!("/chat/{FRIEND}@s.whatsapp.net/messages?limit=100");
    let res = server.request("GET", &path, account, None).await;
    assert_eq!(res.status, 200, "{}\n{}", res.body, server.log());
    res.body["results"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_str().map(str::to_owned))
        .collect()
}

async fn send(server: &Server, text: &str) -> crate::harness::Reply {
    server
        .post_form("/send/message", &[("phone", FRIEND), ("message", text)])
        .await
}

#[tokio::test]
async fn sessions_in_postgres_survive_a_restart_and_one_server_holds_the_database() {
    let postgres = with_database("wa").await;
    let url = postgres.url("wa");
    let fake = FakeWhatsApp::start_local().await.unwrap();
    fake.add_contact(FRIEND, ContactInfo::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // An earlier version kept the chat history in a file beside the session.
    let earlier = dir.path().join("storages/chat.db");
    let friend = format!("{FRIEND}@s.whatsapp.net");
    let old = whatsapp_api::messages::StoredMessage {
        chat: friend.clone(),
        id: "3EB0EARLIER1".into(),
        sender: friend,
        sender_lid: None,
        push_name: Some("Friend".into()),
        timestamp: 1_700_000_000,
        is_from_me: false,
        kind: "text".into(),
        body: Some("kept by an earlier version".into()),
        quoted_id: None,
        media: None,
        raw: Vec::new(),
        edited_at: None,
        revoked_at: None,
    };
    whatsapp_api::messages::MessageStore::open(&earlier)
        .unwrap()
        .apply(&[whatsapp_api::messages::Change::Message(Box::new(old))], 1)
        .unwrap();
    let mut server = Server::start_with(&fake, dir.path(), &["--db-uri", &url]).await;
    server.pair(&fake).await;
    let reply = send(&server, "kept in postgres").await;
    let copy = delivered(&fake, &server, &reply, FRIEND);
    assert_eq!(
        copy.message.conversation.as_deref(),
        Some("kept in postgres")
    );
    // The session is in the database, not in a file beside the message store.
    assert!(session_rows(&url, "default").await > 0);
    assert!(!server.store_path().exists());
    // So is the chat history, the earlier file's included (the file is gone).
    let mut shown = Vec::new();
    for _ in 0..100 {
        shown = history(&server, None).await;
        if shown.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(shown, ["kept in postgres", "kept by an earlier version"]);
    assert!(!earlier.exists(), "{}", server.log());
    assert_eq!(message_rows(&url, "default").await, 2);

    // A second server on the same database takes no account from the first.
    second_server_defers(&fake, &url).await;

    // Restarted: connected again from the database, no scan; the Signal sessions
    // carried over (the fake decrypts the next message).
    let logins = fake.logins().len();
    server.terminate().await;
    server.restart().await;
    server
        .wait_status("connected again", |s| s["state"] == "connected")
        .await;
    assert!(fake.logins().len() > logins, "it logged in again");
    let reply = send(&server, "after a restart").await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, server.log());
    wait_for("the second message", Duration::from_secs(10), || {
        fake.received()
            .iter()
            .any(|r| r.message.conversation.as_deref() == Some("after a restart"))
    })
    .await;
    assert!(
        history(&server, None)
            .await
            .contains(&"kept by an earlier version".to_owned())
    );
    assert!(fake.problems().is_empty(), "{:?}", fake.problems());

    // Postgres restarted under the server (every connection cut): the server
    // takes its lease back at once, so the account keeps running (no new login);
    // the next sends work on new connections.
    let logins = fake.logins().len();
    tokio::task::spawn_blocking({
        let postgres = std::sync::Arc::clone(&postgres);
        move || postgres.restart()
    })
    .await
    .unwrap();
    wait_for("the lease taken back", Duration::from_secs(15), || {
        server.log().contains("every lease was taken back")
    })
    .await;
    for text in ["after postgres restarted", "and again"] {
        let reply = send(&server, text).await;
        assert_eq!(reply.status, 200, "{}\n{}", reply.body, server.log());
        wait_for(text, Duration::from_secs(10), || {
            fake.received()
                .iter()
                .any(|r| r.message.conversation.as_deref() == Some(text))
        })
        .await;
    }
    assert!(fake.problems().is_empty(), "{:?}", fake.problems());
    assert_eq!(fake.logins().len(), logins, "the account kept running");
    assert!(
        !server
            .log()
            .contains("stopped the accounts whose leases are lost")
    );
    assert!(fake.replacements().is_empty(), "{:?}", fake.replacements());

    // Postgres down: not ready (the lock is lost), and ready again once it is back.
    let ready = |server: &Server| {
        let url = format!("{}/ready", server.base);
        async move {
            let res = reqwest::get(url).await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    assert_eq!(ready(&server).await, (200, "OK".to_owned()));
    let stop = std::sync::Arc::clone(&postgres);
    tokio::task::spawn_blocking(move || stop.stop())
        .await
        .unwrap();
    let mut seen = (0, String::new());
    for _ in 0..100 {
        seen = ready(&server).await;
        if seen.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen.0, 503, "{seen:?}");
    assert!(
        seen.1.contains("PostgreSQL lease connection is lost"),
        "{seen:?}"
    );
    let start = std::sync::Arc::clone(&postgres);
    tokio::task::spawn_blocking(move || start.start_again())
        .await
        .unwrap();
    for _ in 0..100 {
        seen = ready(&server).await;
        if seen.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, (200, "OK".to_owned()));

    // Logged out: the account's rows are deleted.
    let out = server.get("/app/logout").await;
    assert_eq!(out.status, 200, "{}", out.body);
    let url_ = url.clone();
    let mut left = 1;
    for _ in 0..100 {
        left = session_rows(&url_, "default").await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "the session is deleted from the database");
    assert_eq!(message_rows(&url, "default").await, 0, "so is its history");

    // Paired again, then the account removed: its rows go with it.
    server.pair(&fake).await;
    assert!(session_rows(&url, "default").await > 0);
    let removed = server
        .request("DELETE", "/devices/default", None, None)
        .await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(session_rows(&url, "default").await, 0);
    assert_eq!(message_rows(&url, "default").await, 0);
}

/// Another server on the database of `url` starts, and takes no account from
/// the server holding them: it sends requests for it on to that server, and the
/// device never logs in twice.
async fn second_server_defers(fake: &FakeWhatsApp, url: &str) {
    let logins = fake.logins().len();
    let other = tempfile::tempdir().unwrap();
    let second = Server::start_with(fake, other.path(), &["--db-uri", url]).await;
    // A few placement rounds.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let status = second
        .request("GET", "/app/status", Some("default"), None)
        .await;
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(
        status.body["results"]["is_connected"], true,
        "{}",
        status.body
    );
    assert_eq!(
        fake.logins().len(),
        logins,
        "no login from the second server"
    );
    assert!(fake.replacements().is_empty(), "{:?}", fake.replacements());
}

#[tokio::test]
async fn webhook_events_wait_in_postgres_across_a_receiver_outage_and_a_kill_9() {
    let postgres = with_database("wa").await;
    let url = postgres.url("wa");
    crate::webhook::survive_an_outage_and_a_kill_9(&["--db-uri", &url], |storage| {
        let url = url.clone();
        async move {
            // The events wait in the database, under the account, not in a file.
            let pool = whatsapp_api::postgres::connect(&url).await.unwrap();
            let client = pool.get().await.unwrap();
            let waiting: i64 = client
                .query_one(
                    "SELECT count(*) FROM wa_webhook_events WHERE account = 'default'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(waiting, 40);
            assert!(!storage.join("outbox.db").exists());
        }
    })
    .await;
}
