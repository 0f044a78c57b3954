//! Three servers on one PostgreSQL database, six accounts on six phones of the
//! fake: the accounts spread over the servers, any server answers for any of
//! them (sending the request on), and they move when a server is killed
//! (kill -9), frozen (SIGSTOP past its lease) or stopped (SIGTERM), with no scan,
//! no incoming message lost, and never two servers running one account (the fake
//! records every login that replaced another connection of the same device).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fake_whatsapp::{ContactInfo, FakeWhatsApp};
use whatsapp_api::postgres::testing::with_database;

use crate::accounts::{link_account, send_as};
use crate::harness::{Server, wait_for};
use crate::send::FRIEND;
use crate::webhook::Receiver;

/// Six in CI; `CLUSTER_TEST_ACCOUNTS=30` for the figures.
fn accounts() -> usize {
    std::env::var("CLUSTER_TEST_ACCOUNTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(6)
}

fn phone(i: usize) -> String {
    format!("1555000{:04}", 7000 + i)
}

fn account(i: usize) -> String {
    format!("acc{i}")
}

/// A database for the servers (its URL), and the fake with `n` phones and
/// [`FRIEND`].
async fn with_phones(
    n: usize,
) -> (
    std::sync::Arc<whatsapp_api::postgres::testing::TestServer>,
    String,
    FakeWhatsApp,
) {
    let postgres = with_database("wa").await;
    let url = postgres.url("wa");
    let fake = FakeWhatsApp::start_local().await.unwrap();
    fake.add_contact(FRIEND, ContactInfo::default()).unwrap();
    for i in 0..n {
        fake.add_phone(&phone(i), &format!("20{}", phone(i)), &format!("Phone {i}"))
            .unwrap();
    }
    (postgres, url, fake)
}

/// Which of `servers` serves each account connected (none while it moves).
async fn holders(servers: &[&Server]) -> HashMap<String, usize> {
    let mut found = HashMap::new();
    for (n, server) in servers.iter().enumerate() {
        for i in 0..accounts() {
            let id = account(i);
            // Marked as sent on already: each server answers for itself only.
            let res = server
                .http
                .get(format!("{}/app/status", server.base))
                .header("x-device-id", &id)
                .header("x-whatsapp-api-forwarded", "1")
                .send()
                .await
                .unwrap();
            let status = res.status();
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            if status == 200 && body["results"]["is_connected"] == true {
                found.insert(id, n);
            }
        }
    }
    found
}

/// Waits until every account is connected on one of `servers`, each holding
/// `share` of them at most; how long it took.
async fn wait_spread(servers: &[&Server], share: usize, what: &str) -> Duration {
    wait_spread_of(servers, accounts(), share, what).await
}

/// [`wait_spread`] for `total` accounts.
async fn wait_spread_of(servers: &[&Server], total: usize, share: usize, what: &str) -> Duration {
    let started = Instant::now();
    loop {
        let found = holders(servers).await;
        let mut per_server = vec![0; servers.len()];
        for n in found.values() {
            per_server[*n] += 1;
        }
        if found.len() == total && per_server.iter().all(|n| *n <= share) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what}: {found:?}\n{}",
            servers
                .iter()
                .map(|s| s.log())
                .collect::<Vec<_>>()
                .join("\n----\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the receiver accepted a message with each of `texts`.
async fn all_at_webhook(receiver: &Receiver, texts: &[String]) {
    wait_for(
        "every message at the webhook",
        Duration::from_secs(30),
        || {
            let got: Vec<String> = receiver
                .accepted()
                .iter()
                .filter_map(|h| h.body["payload"]["body"].as_str().map(str::to_owned))
                .collect();
            texts.iter().all(|t| got.contains(t))
        },
    )
    .await;
}

#[tokio::test]
async fn accounts_spread_over_three_servers_and_move_when_one_dies_freezes_or_stops() {
    let (postgres, url, fake) = with_phones(accounts()).await;
    let receiver = Receiver::start(200).await;
    // The later dialect: no account is made unasked (the one-account dialect
    // makes `default` at the first start).
    let args = [
        "--api-compat",
        "v9",
        "--db-uri",
        url.as_str(),
        "--webhook",
        receiver.url.as_str(),
    ];
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();

    // One server links the six accounts; two more join and take their shares.
    let a = Server::start_with(&fake, dirs[0].path(), &args).await;
    for i in 0..accounts() {
        link_account(&fake, &a, &account(i), &phone(i)).await;
    }
    let mut b = Server::start_with(&fake, dirs[1].path(), &args).await;
    let mut c = Server::start_with(&fake, dirs[2].path(), &args).await;
    wait_spread(
        &[&a, &b, &c],
        accounts().div_ceil(3),
        "a third on each server",
    )
    .await;
    assert!(fake.replacements().is_empty(), "{:?}", fake.replacements());
    assert_eq!(fake.devices().len(), accounts(), "no account paired twice");
    // Every server lists every account, as the server serving it sees it.
    let mut all: Vec<String> = (0..accounts()).map(account).collect();
    all.sort();
    let mut lists = Vec::new();
    for server in [&a, &b, &c] {
        let res = server.request("GET", "/devices", None, None).await;
        assert_eq!(res.status, 200, "{}", res.body);
        let listed = res.body["results"].as_array().unwrap().clone();
        let mut ids: Vec<&str> = listed.iter().map(|d| d["id"].as_str().unwrap()).collect();
        ids.sort();
        assert_eq!(ids, all);
        assert!(
            listed
                .iter()
                .all(|d| d["state"] == "logged_in" && d["jid"].is_string()),
            "{listed:?}"
        );
        lists.push(listed);
    }
    assert_eq!(lists[0], lists[1]);
    assert_eq!(lists[1], lists[2]);

    // Any server answers for any account: each account sends through every
    // server (the two that do not serve it send the request on), as its own
    // phone, and the fake decrypts each from the right account.
    let found = holders(&[&a, &b, &c]).await;
    for i in 0..accounts() {
        let id = account(i);
        for (n, server) in [&a, &b, &c].into_iter().enumerate() {
            let text = format!("from {id} through server {n}");
            let sender = send_as(&fake, server, &id, &text).await;
            assert!(sender.starts_with(&phone(i)), "{sender}");
        }
    }
    // The answer sent on is the serving server's own.
    let holder = [&a, &b, &c][found["acc0"]];
    let elsewhere = [&a, &b, &c][(found["acc0"] + 1) % 3];
    let direct = holder
        .request("GET", "/app/status", Some("acc0"), None)
        .await;
    let sent_on = elsewhere
        .request("GET", "/app/status", Some("acc0"), None)
        .await;
    assert_eq!(
        (sent_on.status, &sent_on.body),
        (direct.status, &direct.body)
    );
    // A request already sent on once is not sent on again: a 503 to retry.
    let twice = elsewhere
        .http
        .get(format!("{}/app/status", elsewhere.base))
        .header("x-device-id", "acc0")
        .header("x-whatsapp-api-forwarded", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 503);
    assert!(twice.headers().contains_key("retry-after"));

    // kill -9 b with messages on the wire to its accounts: the others take them
    // over within 30 s, and every message reaches the webhook (a repeat only
    // with the same event id).
    let on_b: Vec<usize> = (0..accounts())
        .filter(|i| found[&account(*i)] == 1)
        .collect();
    let mut texts = Vec::new();
    for i in &on_b {
        for n in 0..3 {
            let text = format!("to {} #{n}", account(*i));
            fake.deliver_to(&phone(*i), FRIEND, &text).await.unwrap();
            texts.push(text);
        }
    }
    b.kill().await;
    let failover = wait_spread(&[&a, &c], accounts().div_ceil(2), "b's accounts on a and c").await;
    assert!(failover < Duration::from_secs(30), "{failover:?}");
    all_at_webhook(&receiver, &texts).await;
    let mut id_of: HashMap<String, String> = HashMap::new();
    for hit in receiver.accepted() {
        let Some(text) = hit.body["payload"]["body"].as_str() else {
            continue;
        };
        let id = hit.header("x-webhook-id").to_owned();
        assert_eq!(
            id_of.entry(text.to_owned()).or_insert_with(|| id.clone()),
            &id
        );
    }
    assert!(fake.replacements().is_empty(), "{:?}", fake.replacements());
    // Their chat history moved with them: what b stored before it died (the
    // sends) and what came during the failover, through any server.
    for i in &on_b {
        let id = account(*i);
        let shown = crate::postgres::history(&a, Some(&id)).await;
        for n in 0..3 {
            for text in [
                format!("from {id} through server {n}"),
                format!("to {id} #{n}"),
            ] {
                assert!(shown.contains(&text), "{id}: {text} not in {shown:?}");
            }
        }
    }
    let deliveries = receiver
        .accepted()
        .iter()
        .filter(|h| {
            h.body["payload"]["body"]
                .as_str()
                .is_some_and(|t| texts.iter().any(|x| x == t))
        })
        .count();
    eprintln!(
        "failover after kill -9: {failover:?}; {} messages on the wire, all delivered, {} repeats (same id)",
        texts.len(),
        deliveries - texts.len()
    );

    // a frozen past its lease: c takes its accounts (WhatsApp replaces a's
    // frozen connections, once each); resumed, a stops them, never logs in as
    // them again while c serves them, then takes its share back by hand-over.
    let on_a: Vec<String> = holders(&[&a, &c])
        .await
        .into_iter()
        .filter(|(_, n)| *n == 0)
        .map(|(id, _)| id)
        .collect();
    a.signal("STOP").await;
    let frozen = Instant::now();
    wait_spread(&[&c], accounts(), "every account on c").await;
    let taken_over = frozen.elapsed();
    let replaced = fake.replacements();
    assert!(replaced.len() <= on_a.len(), "{replaced:?}");
    a.signal("CONT").await;
    wait_for("a fences itself", Duration::from_secs(15), || {
        a.log()
            .contains("stopped the accounts whose leases are lost")
    })
    .await;
    wait_spread(
        &[&a, &c],
        accounts().div_ceil(2),
        "the accounts shared by a and c again",
    )
    .await;
    assert_eq!(
        fake.replacements(),
        replaced,
        "no login replaced another after a resumed"
    );
    eprintln!("taken over from a frozen server after {taken_over:?}");

    // SIGTERM: c hands its accounts over, and a takes them all.
    let (stopped_in, status) = c.terminate().await;
    assert!(status.success());
    let handover = wait_spread(&[&a], accounts(), "every account on a").await;
    assert_eq!(fake.replacements(), replaced);
    eprintln!("hand-over after SIGTERM: stopped in {stopped_in:?}, all on a {handover:?} later");

    // Postgres restarted right after messages were acknowledged: a takes its
    // leases back at once, so its accounts keep running (no new login), and
    // every acknowledged message reaches the webhook.
    let logins = fake.logins().len();
    let mut texts = Vec::new();
    for i in 0..accounts() {
        let text = format!("to {} across a Postgres restart", account(i));
        fake.deliver_to(&phone(i), FRIEND, &text).await.unwrap();
        texts.push(text);
    }
    wait_for("the messages acknowledged", Duration::from_secs(20), || {
        fake.unacked() == 0
    })
    .await;
    let restarted = Instant::now();
    tokio::task::spawn_blocking({
        let postgres = std::sync::Arc::clone(&postgres);
        move || postgres.restart()
    })
    .await
    .unwrap();
    wait_for("a takes its leases back", Duration::from_secs(15), || {
        a.log().contains("every lease was taken back")
    })
    .await;
    let back = restarted.elapsed();
    all_at_webhook(&receiver, &texts).await;
    assert_eq!(fake.logins().len(), logins, "the accounts kept running");
    assert_eq!(fake.replacements(), replaced);
    eprintln!("every lease back {back:?} after Postgres restarted, no account stopped");
    assert!(fake.problems().is_empty(), "{:?}", fake.problems());
}

#[tokio::test]
async fn a_server_taking_accounts_over_connects_them_a_bounded_number_at_a_time() {
    let (_postgres, url, fake) = with_phones(4).await;
    let args = [
        "--api-compat",
        "v9",
        "--db-uri",
        url.as_str(),
        "--startup-handshakes",
        "1",
    ];
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut a = Server::start_with(&fake, dirs[0].path(), &args).await;
    for i in 0..4 {
        link_account(&fake, &a, &account(i), &phone(i)).await;
    }
    let b = Server::start_with(&fake, dirs[1].path(), &args).await;
    wait_spread_of(&[&a, &b], 4, 2, "two accounts on each server").await;
    // Each login takes a while, so overlapping ones would show.
    fake.set_faults(fake_whatsapp::Faults {
        login_delay_ms: 300,
        ..Default::default()
    });
    fake.max_handshakes();
    a.kill().await;
    wait_spread_of(&[&b], 4, 4, "every account on b").await;
    assert_eq!(
        fake.max_handshakes(),
        1,
        "one takeover connecting at a time"
    );
    assert!(fake.replacements().is_empty(), "{:?}", fake.replacements());
}
