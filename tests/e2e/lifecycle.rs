//! The session's lifecycle under load and under every network event: a send's answer
//! is the truth, and no sequence of events leaves the session stuck.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fake_whatsapp::{FakeWhatsApp, Faults};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::harness::{Reply, Server, wait_for};
use crate::send::{FRIEND, delivered, paired};

/// Sends `text` to the friend without waiting for the answer.
fn send_text(server: &Server, text: &str) -> JoinHandle<Result<Reply, reqwest::Error>> {
    send_text_via(&server.http, &server.base, text)
}

/// [`send_text`] to the server at `base`, for tasks that outlive a `&Server`.
fn send_text_via(
    http: &reqwest::Client,
    base: &str,
    text: &str,
) -> JoinHandle<Result<Reply, reqwest::Error>> {
    let http = http.clone();
    let url = format!("{base}/send/message");
    let form = reqwest::multipart::Form::new()
        .text("phone", FRIEND)
        .text("message", text.to_owned());
    tokio::spawn(async move {
        let res = http.post(url).multipart(form).send().await?;
        Ok(Reply::read(res).await)
    })
}

/// How many copies of each text the friend decrypted.
fn copies(fake: &FakeWhatsApp) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for r in fake.received() {
        if r.recipient == FRIEND
            && let Some(text) = r.message.conversation.clone()
        {
            *seen.entry(text).or_default() += 1;
        }
    }
    seen
}

#[tokio::test]
async fn a_thousand_sends_64_at_a_time_under_a_flood_are_each_delivered_once() {
    const SENDS: usize = 1_000;
    let (fake, server, _dir) = paired().await;
    // Every message brings a burst of receipts and notifications with it.
    fake.set_faults(Faults {
        flood_per_message: 8,
        ..Faults::default()
    });
    let started = Instant::now();
    let replies: Vec<(String, Reply)> = futures_util::stream::iter(0..SENDS)
        .map(|i| {
            let text = format!("burst {i}");
            let task = send_text(&server, &text);
            async move { (text, task.await.unwrap().unwrap()) }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let took = started.elapsed();

    let failed: Vec<&(String, Reply)> = replies.iter().filter(|(_, r)| r.status != 200).collect();
    let seen = copies(&fake);
    let duplicates = seen.values().filter(|&&n| n > 1).count();
    eprintln!(
        "burst: {SENDS} sends in {took:?}, {} not 200, {duplicates} duplicated, flood {:?}",
        failed.len(),
        fake.flood()
    );
    assert!(
        failed.is_empty(),
        "{} failed, e.g. {:?}",
        failed.len(),
        failed[0].1.body
    );
    for (text, _) in &replies {
        assert_eq!(
            seen.get(text),
            Some(&1),
            "{text} was not decrypted exactly once"
        );
    }
    assert_eq!(seen.len(), SENDS);
    assert!(
        fake.flood().sent >= (SENDS * 8) as u64,
        "{:?}",
        fake.flood()
    );
    assert!(fake.problems().is_empty(), "{:?}", fake.problems());
}

#[tokio::test]
async fn acks_arriving_in_a_burst_for_512_waiting_sends_are_all_matched() {
    const SENDS: usize = 1_024;
    let (fake, server, _dir) = paired().await;
    // The fake holds its acks until 512 are due and sends them at once, while 512
    // sends wait for theirs.
    fake.set_faults(Faults {
        ack_batch: 512,
        ..Faults::default()
    });
    let replies: Vec<(String, Reply)> = futures_util::stream::iter(0..SENDS)
        .map(|i| {
            let text = format!("ack burst {i}");
            let task = send_text(&server, &text);
            async move { (text, task.await.unwrap().unwrap()) }
        })
        .buffer_unordered(512)
        .collect()
        .await;
    // A 500 for a message WhatsApp acknowledged would be a lie.
    let acked: HashMap<String, bool> = fake
        .received()
        .into_iter()
        .filter(|r| r.recipient == FRIEND)
        .filter_map(|r| Some((r.message.conversation?, r.ack_t.is_some())))
        .collect();
    let lies = replies
        .iter()
        .filter(|(text, r)| r.status != 200 && acked.get(text) == Some(&true))
        .count();
    let failed = replies.iter().filter(|(_, r)| r.status != 200).count();
    let duplicates = copies(&fake).values().filter(|&&n| n > 1).count();
    eprintln!(
        "ack burst: {SENDS} sends, {failed} not 200, {lies} of them acknowledged, {duplicates} duplicated"
    );
    assert_eq!(failed, 0, "{lies} of {failed} failures were acknowledged");
    assert_eq!(duplicates, 0);
    assert_eq!(acked.len(), SENDS);
}

/// A send whose acknowledgement the fake withholds, once the fake has it; and its id.
async fn send_in_flight(
    fake: &FakeWhatsApp,
    server: &Server,
) -> (JoinHandle<Result<Reply, reqwest::Error>>, String) {
    fake.set_faults(Faults {
        withhold_acks: 1,
        ..Faults::default()
    });
    let task = send_text(server, "in flight");
    let sent = || {
        fake.received()
            .into_iter()
            .find(|r| r.message.conversation.as_deref() == Some("in flight"))
    };
    wait_for("the send to reach WhatsApp", Duration::from_secs(5), || {
        sent().is_some()
    })
    .await;
    (task, sent().unwrap().id)
}

/// The answer of an interrupted send: a 500 within 2 s naming the id.
async fn answered_at_once(
    task: JoinHandle<Result<Reply, reqwest::Error>>,
    since: Instant,
) -> Reply {
    let reply = tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("the send answered within 2 s")
        .unwrap()
        .unwrap();
    assert!(since.elapsed() < Duration::from_secs(2));
    assert_eq!(reply.status, 500, "{}", reply.body);
    reply
}

#[tokio::test]
async fn a_send_in_flight_when_the_socket_drops_fails_at_once_naming_its_id() {
    let (fake, server, _dir) = paired().await;
    let (task, id) = send_in_flight(&fake, &server).await;
    let since = Instant::now();
    assert!(fake.drop_connections() >= 1);
    let reply = answered_at_once(task, since).await;
    assert_eq!(
        reply.message(),
        format!(
            "message {id}: the connection to WhatsApp was lost before it was acknowledged; \
             delivery unknown"
        )
    );
    // The session recovers by itself.
    fake.set_faults(Faults::default());
    server.wait_connected().await;
    let reply = send_text(&server, "after the drop").await.unwrap().unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(copies(&fake).get("after the drop"), Some(&1));
}

#[tokio::test]
async fn a_send_in_flight_when_reconnect_is_called_fails_at_once_naming_its_id() {
    let (fake, server, _dir) = paired().await;
    let (task, id) = send_in_flight(&fake, &server).await;
    let since = Instant::now();
    let reconnect = server.get("/app/reconnect");
    let (reply, reconnected) = tokio::join!(answered_at_once(task, since), reconnect);
    assert_eq!(
        reply.message(),
        format!(
            "message {id}: the connection was reset by a reconnect before it was acknowledged; \
             delivery unknown"
        )
    );
    assert_eq!(reconnected.status, 200, "{}", reconnected.body);
    fake.set_faults(Faults::default());
    let reply = send_text(&server, "after reconnect")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn a_send_in_flight_when_logout_is_called_fails_at_once_naming_its_id() {
    let (fake, server, _dir) = paired().await;
    let (task, id) = send_in_flight(&fake, &server).await;
    let since = Instant::now();
    let logout = server.get("/app/logout");
    let (reply, logged_out) = tokio::join!(answered_at_once(task, since), logout);
    assert_eq!(
        reply.message(),
        format!(
            "message {id}: the device was logged out before it was acknowledged; delivery unknown"
        )
    );
    assert_eq!(logged_out.status, 200, "{}", logged_out.body);
    assert_eq!(server.status().await["state"], "logged_out");
}

#[tokio::test]
async fn the_phone_unlinking_the_device_deletes_the_store_and_login_pairs_again() {
    let (fake, server, _dir) = paired().await;
    assert!(fake.unlink_device() >= 1);
    let status = server
        .wait_status("a logged-out session", |s| s["is_logged_in"] == false)
        .await;
    assert_eq!(status["state"], "logged_out");
    assert_eq!(status["device_id"], Value::Null);
    let store = server.store_path();
    wait_for("the store to be deleted", Duration::from_secs(15), || {
        !store.exists()
    })
    .await;
    let reply = send_text(&server, "gone").await.unwrap().unwrap();
    assert_eq!(reply.status, 500);
    assert_eq!(reply.message(), "you are not loggin");

    let device = server.pair(&fake).await;
    assert_eq!(device.id, 2, "a new device was linked");
    let reply = send_text(&server, "paired again").await.unwrap().unwrap();
    delivered(&fake, &server, &reply, FRIEND);
}

#[tokio::test]
async fn another_client_taking_over_stops_reconnecting_until_reconnect() {
    let (fake, server, _dir) = paired().await;
    assert!(fake.replace_session() >= 1);
    let status = server
        .wait_status("a replaced session", |s| s["state"] == "replaced")
        .await;
    assert_eq!(status["is_connected"], false);
    assert_eq!(status["is_logged_in"], true);
    // The log line is written by the log's background writer, a moment later.
    wait_for("the takeover in the log", Duration::from_secs(5), || {
        server
            .log()
            .contains("another client took over this WhatsApp session")
    })
    .await;
    // It does not fight the other client for the session.
    let logins = fake.logins().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(fake.logins().len(), logins, "it reconnected by itself");
    assert_eq!(server.status().await["state"], "replaced");

    let res = server.get("/app/reconnect").await;
    assert_eq!(res.status, 200, "{}\n{}", res.body, server.log());
    assert_eq!(server.status().await["state"], "connected");
    assert_eq!(fake.logins().last().unwrap().pattern, "Ik");
    let reply = send_text(&server, "mine again").await.unwrap().unwrap();
    delivered(&fake, &server, &reply, FRIEND);
}

/// `/app/login`: the QR link and its `qr_duration`.
async fn login(server: &Server) -> (String, u64) {
    let res = server.get("/app/login").await;
    assert_eq!(res.status, 200, "{}\n{}", res.body, server.log());
    let results = &res.body["results"];
    (
        results["qr_link"].as_str().unwrap().to_owned(),
        results["qr_duration"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn qr_codes_rotate_then_run_out_and_the_next_login_starts_afresh() {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    fake.set_faults(Faults {
        qr_refs: 2,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&fake, dir.path()).await;
    let started = Instant::now();
    let (first, duration) = login(&server).await;
    assert!((55..=60).contains(&duration), "{duration}");
    assert_eq!(
        login(&server).await.0,
        first,
        "the same code while it is valid"
    );
    assert_eq!(server.status().await["state"], "pairing");

    // The first code lasts 60 s, the next one 20 s.
    tokio::time::sleep(Duration::from_secs(61).saturating_sub(started.elapsed())).await;
    let (second, duration) = login(&server).await;
    assert_ne!(second, first);
    assert!((1..=20).contains(&duration), "{duration}");
    let attempts = fake.logins().len();

    // Then the codes run out: the attempt ends, its files go.
    let status = server
        .wait_status("the attempt to end", |s| s["state"] == "logged_out")
        .await;
    assert_eq!(status["is_logged_in"], false);
    // Removed by the session's store worker, just after the state changed.
    let store = server.store_path();
    wait_for(
        "the unpaired store to be removed",
        Duration::from_secs(10),
        || !store.exists(),
    )
    .await;
    let (third, duration) = login(&server).await;
    assert_ne!(third, second);
    assert!(duration >= 55, "{duration}");
    assert!(fake.logins().len() > attempts, "a new pairing connection");
}

#[tokio::test]
async fn a_scan_in_the_last_seconds_of_the_only_code_pairs_for_good() {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    fake.add_contact(FRIEND, Default::default()).unwrap();
    fake.set_faults(Faults {
        qr_refs: 1,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&fake, dir.path()).await;
    let qr = server.login_qr().await;
    let (_, left) = login(&server).await;
    tokio::time::sleep(Duration::from_secs(left.saturating_sub(2))).await;
    fake.scan(&qr)
        .await
        .expect("the phone pairs with the last code");
    server.wait_connected().await;
    // The end of the code's time comes and goes; the session stays.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let status = server.status().await;
    assert_eq!(status["state"], "connected", "{status}");
    assert!(server.store_path().exists());
    let reply = send_text(&server, "paired late").await.unwrap().unwrap();
    delivered(&fake, &server, &reply, FRIEND);
}

#[tokio::test]
async fn sigterm_during_a_burst_answers_only_what_was_delivered_and_keeps_the_session() {
    let (fake, mut server, _dir) = paired().await;
    fake.set_faults(Faults {
        ack_delay_ms: 50,
        ..Faults::default()
    });
    let sends = {
        let http = server.http.clone();
        let base = server.base.clone();
        tokio::spawn(async move {
            futures_util::stream::iter(0..400)
                .map(|i| {
                    let text = format!("term {i}");
                    let task = send_text_via(&http, &base, &text);
                    // No reply at all once the server stopped listening.
                    async move { (text, task.await.unwrap().ok()) }
                })
                .buffer_unordered(32)
                .collect::<Vec<_>>()
                .await
        })
    };
    wait_for("some sends to arrive", Duration::from_secs(30), || {
        copies(&fake).len() >= 40
    })
    .await;
    let (took, exit) = server.terminate().await;
    let results = sends.await.unwrap();
    eprintln!("SIGTERM to exit: {took:?}");
    assert!(exit.success(), "{exit:?}");
    // Docker's default grace is 10 s; the documented bound is 17 s.
    assert!(took < Duration::from_secs(17), "{took:?}");

    let seen = copies(&fake);
    let mut answered = 0;
    for (text, reply) in &results {
        match reply {
            Some(r) if r.status == 200 => {
                answered += 1;
                assert_eq!(
                    seen.get(text),
                    Some(&1),
                    "{text} answered 200 but not delivered once"
                );
            }
            Some(r) => assert_eq!(r.status, 500, "{text}: {}", r.body),
            None => {}
        }
    }
    assert!(answered >= 40, "{answered}");

    // The next start logs in with the stored keys (no QR) and sends.
    fake.set_faults(Faults::default());
    server.restart().await;
    server.wait_connected().await;
    assert_eq!(fake.devices().len(), 1, "no new pairing");
    assert_eq!(fake.logins().last().unwrap().pattern, "Ik");
    let reply = send_text(&server, "after restart").await.unwrap().unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(copies(&fake).contains_key("after restart"));
}
