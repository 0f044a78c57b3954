//! Many accounts in one server: `/devices`, the account selector of every other
//! route (`X-Device-Id`, `device_id`), and each account seeing only its own data.

use serde_json::{Value, json};
use whatsapp_api::messages::{Change, StoredMessage};
use whatsapp_api::whatsapp::SessionStatus;

use crate::helpers::TestApp;

const OTHER_DEVICE: &str = "6281111111111:3@s.whatsapp.net";
const ANN: &str = "6289685024091@s.whatsapp.net";
const ANN_PHONE: &str = "6289685024091";

/// A server with the first account (`default`) and `second`, paired as another
/// number.
async fn two_accounts(args: &[&str]) -> TestApp {
    let app = TestApp::spawn_with(args).await;
    let added = app
        .call(
            "POST",
            "/devices",
            None,
            Some(json!({"device_id": "second"})),
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.text);
    app.account("second").wa.state.lock().unwrap().device = Some(OTHER_DEVICE.into());
    app
}

fn text(chat: &str, id: &str, body: &str) -> Change {
    Change::Message(Box::new(StoredMessage {
        chat: chat.to_owned(),
        id: id.to_owned(),
        sender: chat.to_owned(),
        sender_lid: None,
        push_name: None,
        timestamp: 1_700_000_000,
        is_from_me: false,
        kind: "text".to_owned(),
        body: Some(body.to_owned()),
        quoted_id: None,
        media: None,
        raw: vec![1],
        edited_at: None,
        revoked_at: None,
    }))
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn devices_are_added_listed_and_refused_with_reasons() {
    let app = two_accounts(&[]).await;
    let list = app.get("/devices").await;
    list.assert_success("List devices");
    assert_eq!(ids(&list.body["results"]), ["default", "second"]);
    let second = &list.body["results"][1];
    assert_eq!(second["jid"], "6281111111111@s.whatsapp.net");
    assert_eq!(second["state"], "logged_in");
    assert!(second["created_at"].as_str().unwrap().ends_with('Z'));

    // Made with a UUID when no id is given.
    let added = app.call("POST", "/devices", None, None).await;
    added.assert_success("Device added");
    let id = added.body["results"]["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    // Go's fixed shape: the name is there even when unknown.
    assert_eq!(added.body["results"]["display_name"], "", "{}", added.text);
    assert!(added.body["results"].get("jid").is_some(), "{}", added.text);

    let again = app
        .call(
            "POST",
            "/devices",
            None,
            Some(json!({"device_id": "second"})),
        )
        .await;
    again.assert_error(400, "device second already exists");
    let hostile = app
        .call(
            "POST",
            "/devices",
            None,
            Some(json!({"device_id": "../../etc"})),
        )
        .await;
    assert_eq!(hostile.status, 400, "{}", hostile.text);
    let bad = app
        .post_raw("/devices", "application/json", b"{not json".to_vec())
        .await;
    bad.assert_error(400, "Invalid request body");
    let bad_hook = app
        .call(
            "POST",
            "/devices",
            None,
            Some(json!({"device_id": "third", "webhook_url": "file:///etc/passwd"})),
        )
        .await;
    assert_eq!(bad_hook.status, 400, "{}", bad_hook.text);
    assert_eq!(
        app.get("/devices").await.body["results"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let unknown = app.get("/devices/nobody").await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert_eq!(unknown.body["results"]["device_id"], "nobody");
    let info = app.get("/devices/second").await;
    info.assert_success("Device info");
    assert_eq!(info.body["results"]["id"], "second");
    let status = app.get("/devices/second/status").await;
    status.assert_success("Device status");
    assert_eq!(
        status.body["results"],
        json!({"device_id": "second", "is_connected": true, "is_logged_in": true})
    );
}

#[tokio::test]
async fn every_other_route_needs_the_account_named_once_there_are_two() {
    for v9 in [false, true] {
        let args: &[&str] = if v9 { &["--api-compat", "v9"] } else { &[] };
        let app = two_accounts(args).await;
        let none = app.get("/app/status").await;
        assert_eq!(none.status, 400, "{}", none.text);
        assert_eq!(
            none.body["message"],
            "device_id is required via X-Device-Id header or device_id query"
        );
        let code = if v9 {
            json!("DEVICE_ID_REQUIRED")
        } else {
            json!(400)
        };
        assert_eq!(none.body["code"], code);

        let unknown = app.call("GET", "/app/status", Some("nobody"), None).await;
        assert_eq!(unknown.status, 404, "{}", unknown.text);
        let code = if v9 {
            json!("DEVICE_NOT_FOUND")
        } else {
            json!(404)
        };
        assert_eq!(unknown.body["code"], code);
        assert_eq!(unknown.body["results"]["device_id"], "nobody");

        // By slot id, number or JID, in the header or the query.
        for named in [
            "second",
            "6281111111111",
            "6281111111111@s.whatsapp.net",
            OTHER_DEVICE,
        ] {
            let res = app.call("GET", "/app/status", Some(named), None).await;
            assert_eq!(res.status, 200, "{named}: {}", res.text);
            assert_eq!(res.body["results"]["jid"], OTHER_DEVICE, "{named}");
            let slot = if v9 { "second" } else { OTHER_DEVICE };
            assert_eq!(res.body["results"]["device_id"], slot, "{named}");
        }
        let by_query = app.get("/app/status?device_id=default").await;
        assert_eq!(
            by_query.body["results"]["jid"],
            "6289685028000:7@s.whatsapp.net"
        );
        // URL-decoded.
        let encoded = app
            .call(
                "GET",
                "/app/status",
                Some("6281111111111%40s.whatsapp.net"),
                None,
            )
            .await;
        assert_eq!(encoded.body["results"]["jid"], OTHER_DEVICE);

        // A send goes out through the named account only.
        let sent = app
            .call(
                "POST",
                "/send/message",
                Some("second"),
                Some(json!({"phone": "6289685024091", "message": "hi"})),
            )
            .await;
        assert_eq!(sent.status, 200, "{}", sent.text);
        assert_eq!(app.account("second").wa.sent().len(), 1);
        assert!(app.account("default").wa.sent().is_empty());
    }
}

#[tokio::test]
async fn one_accounts_caller_never_reaches_anothers_data() {
    let app = two_accounts(&[]).await;
    app.account("second")
        .store
        .apply(&[text(ANN, "SECRET1", "for the second account only")], 1)
        .unwrap();
    app.store
        .apply(&[text(ANN, "MINE1", "for the first account")], 1)
        .unwrap();

    // Chats and messages.
    let theirs = app.call("GET", "/chats", Some("second"), None).await;
    let mine = app.call("GET", "/chats", Some("default"), None).await;
    assert_eq!(theirs.body["results"]["data"].as_array().unwrap().len(), 1);
    let path = format!("/chat/{ANN}/messages");
    let listed = app.call("GET", &path, Some("default"), None).await;
    assert!(!listed.text.contains("SECRET1"), "{}", listed.text);
    assert!(listed.text.contains("MINE1"), "{}", listed.text);
    assert!(!mine.text.contains("second account"), "{}", mine.text);

    // Message actions by id: another account's message is not found.
    for action in ["reaction", "star", "read", "delete"] {
        let res = app
            .call(
                "POST",
                &format!("/message/SECRET1/{action}"),
                Some("default"),
                Some(json!({"phone": ANN_PHONE, "emoji": "👍"})),
            )
            .await;
        assert_eq!(res.status, 404, "{action}: {}", res.text);
    }
    let download = app
        .call(
            "GET",
            &format!("/message/SECRET1/download?phone={ANN_PHONE}"),
            Some("default"),
            None,
        )
        .await;
    assert_eq!(download.status, 404, "{}", download.text);
    // The owner reaches it.
    let own = app
        .call(
            "POST",
            "/message/SECRET1/star",
            Some("second"),
            Some(json!({"phone": ANN_PHONE})),
        )
        .await;
    assert_eq!(own.status, 200, "{}", own.text);
    assert!(app.account("default").wa.actions().is_empty());
    assert_eq!(app.account("second").wa.actions().len(), 1);
}

#[tokio::test]
async fn a_fresh_server_in_the_later_dialect_has_no_account_until_a_login() {
    let app = TestApp::spawn_without_accounts(&["--api-compat", "v9"]).await;
    let list = app.get("/devices").await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(
        list.body["results"],
        json!([]),
        "a list, not null: {}",
        list.text
    );
    let status = app.get("/app/status").await;
    assert_eq!(status.status, 400, "{}", status.text);
    assert_eq!(status.body["code"], "DEVICE_ID_REQUIRED");

    // A bad phone is refused before any account is made.
    let bad = app.get("/app/login-with-code?phone=not-a-phone").await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let still = app.get("/devices").await;
    assert_eq!(still.body["results"], json!([]), "{}", still.text);

    // A client of the one-account versions logs in without naming an account.
    app.wa.set_status(SessionStatus::LoggedOut);
    app.wa
        .set_pairing("2@qr-text", std::time::Duration::from_secs(60));
    let login = app.get("/app/login").await;
    assert_eq!(login.status, 200, "{}", login.text);
    assert!(
        login.body["results"]["qr_link"]
            .as_str()
            .unwrap()
            .contains("/statics/qrcode/scan-qr-")
    );
    assert_eq!(ids(&app.get("/devices").await.body["results"]), ["default"]);
    app.get("/app/status").await;
    assert_eq!(app.get("/app/status").await.status, 200);
}

#[tokio::test]
async fn removing_an_account_deletes_its_files_and_leaves_the_other() {
    let app = two_accounts(&[]).await;
    let folders = || -> Vec<String> {
        std::fs::read_dir(app.storage.join("accounts"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(folders().len(), 1, "the second account's folder");
    let second = app.account("second");
    second
        .store
        .apply(&[text(ANN, "GONE1", "removed with its account")], 1)
        .unwrap();
    let removed = app.call("DELETE", "/devices/second", None, None).await;
    removed.assert_success("Device removed");
    assert_eq!(
        second.wa.logouts.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    assert!(folders().is_empty(), "left: {:?}", folders());
    assert_eq!(ids(&app.get("/devices").await.body["results"]), ["default"]);
    let again = app.call("DELETE", "/devices/second", None, None).await;
    assert_eq!(again.status, 404, "{}", again.text);
    // One account left: it is used without naming it.
    app.get("/app/status").await.assert_success("Success");
    assert_eq!(
        app.account("default")
            .wa
            .logouts
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn an_accounts_webhook_is_set_read_and_cleared() {
    let app = two_accounts(&[]).await;
    let path = "/devices/second/webhook";
    let empty = app.get(path).await;
    empty.assert_success("Device webhook retrieved");
    assert_eq!(empty.body["results"]["webhook_url"], "");
    let missing = app
        .call("PATCH", path, None, Some(json!({"webhook_secret": "s"})))
        .await;
    missing.assert_error(400, "webhook_url is required");
    let hostile = app
        .call(
            "PATCH",
            path,
            None,
            Some(json!({"webhook_url": "gopher://x"})),
        )
        .await;
    assert_eq!(hostile.status, 400, "{}", hostile.text);
    let hook = json!({
        "webhook_url": "https://hooks.example/a",
        "webhook_secret": "s3",
        "webhook_events": "message",
        "webhook_insecure_skip_verify": true,
    });
    let set = app.call("PATCH", path, None, Some(hook.clone())).await;
    set.assert_success("Device webhook updated");
    let read = app.get(path).await;
    let mut expected = hook.clone();
    expected["device_id"] = json!("second");
    assert_eq!(read.body["results"], expected);
    // The other account has none.
    assert_eq!(
        app.get("/devices/default/webhook").await.body["results"]["webhook_url"],
        ""
    );
    let cleared = app
        .call("PATCH", path, None, Some(json!({"webhook_url": ""})))
        .await;
    cleared.assert_success("Device webhook updated");
    assert_eq!(app.get(path).await.body["results"]["webhook_url"], "");
    let unknown = app
        .call("PATCH", "/devices/nobody/webhook", None, Some(hook))
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
}

#[tokio::test]
async fn logout_and_reconnect_act_on_the_named_slot_and_keep_it() {
    let app = two_accounts(&[]).await;
    let second = app.account("second");
    app.call("POST", "/devices/second/reconnect", None, None)
        .await
        .assert_success("Reconnect requested");
    assert_eq!(
        second
            .wa
            .reconnects
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    app.call("POST", "/devices/second/logout", None, None)
        .await
        .assert_success("Logout requested");
    assert_eq!(
        second.wa.logouts.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    second.wa.set_status(SessionStatus::LoggedOut);
    assert_eq!(
        ids(&app.get("/devices").await.body["results"]),
        ["default", "second"]
    );
    assert_eq!(
        app.get("/devices/second").await.body["results"]["state"],
        "disconnected"
    );
    assert_eq!(app.wa.logouts.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn groups_and_the_accounts_own_lists_are_per_account() {
    use whatsapp_api::whatsapp::Group;
    const THEIR_GROUP: &str = "120363025246125999@g.us";
    let app = two_accounts(&[]).await;
    let second = app.account("second");
    second.wa.state.lock().unwrap().groups = vec![Group {
        jid: THEIR_GROUP.to_owned(),
        name: "Their team".to_owned(),
        ..Group::default()
    }];
    second
        .store
        .apply(
            &[Change::Contact {
                jid: ANN.to_owned(),
                full_name: Some("Ann of the second".to_owned()),
                push_name: None,
            }],
            1,
        )
        .unwrap();

    let info = format!("/group/info?group_id={THEIR_GROUP}");
    let theirs = app.call("GET", &info, Some("second"), None).await;
    assert_eq!(theirs.status, 200, "{}", theirs.text);
    let mine = app.call("GET", &info, Some("default"), None).await;
    assert_eq!(mine.status, 404, "{}", mine.text);
    let leave = app
        .call(
            "POST",
            "/group/leave",
            Some("default"),
            Some(json!({"group_id": THEIR_GROUP})),
        )
        .await;
    assert_eq!(leave.status, 404, "{}", leave.text);

    for path in ["/user/my/groups", "/user/my/contacts"] {
        let mine = app.call("GET", path, Some("default"), None).await;
        assert_eq!(mine.status, 200, "{path}: {}", mine.text);
        assert!(!mine.text.contains("second"), "{path}: {}", mine.text);
        assert!(!mine.text.contains("Their team"), "{path}: {}", mine.text);
    }
    let their_groups = app
        .call("GET", "/user/my/groups", Some("second"), None)
        .await;
    assert!(
        their_groups.text.contains("Their team"),
        "{}",
        their_groups.text
    );
}

#[tokio::test]
async fn an_accounts_api_key_reaches_that_account_only() {
    let app = TestApp::spawn_with(&["--basic-auth", "admin:secret"]).await;
    let send = |req: reqwest::RequestBuilder| async move {
        crate::helpers::reply(req.send().await.unwrap()).await
    };
    let operator = |method: reqwest::Method, path: &str| {
        app.client
            .request(method, app.url(path))
            .basic_auth("admin", Some("secret"))
    };
    let with_key = |key: &str, path: &str| app.client.get(app.url(path)).bearer_auth(key);

    let added = send(
        operator(reqwest::Method::POST, "/devices")
            .json(&json!({"device_id": "second", "api_key": true})),
    )
    .await;
    added.assert_success("Device added");
    let key = added.body["results"]["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(key.starts_with("wak_") && key.len() == 68, "{key}");
    app.account("second").wa.state.lock().unwrap().device = Some(OTHER_DEVICE.into());

    // Its own account, named or not.
    let own = send(with_key(&key, "/app/status")).await;
    assert_eq!(own.status, 200, "{}", own.text);
    assert_eq!(own.body["results"]["device_id"], OTHER_DEVICE);
    let named = send(with_key(&key, "/app/status").header("x-device-id", "6281111111111")).await;
    assert_eq!(named.status, 200, "{}", named.text);
    let by_header = send(
        app.client
            .get(app.url("/app/status"))
            .header("x-api-key", &key),
    )
    .await;
    assert_eq!(by_header.status, 200, "{}", by_header.text);
    let sent = send(
        app.client
            .post(app.url("/send/message"))
            .bearer_auth(&key)
            .json(&json!({"phone": ANN_PHONE, "message": "by key"})),
    )
    .await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    assert_eq!(app.account("second").wa.sent().len(), 1);
    assert!(app.wa.sent().is_empty());

    // Never another account, never account management.
    for other in ["default", "6289685028000"] {
        let res = send(with_key(&key, "/app/status").header("x-device-id", other)).await;
        assert_eq!(res.status, 404, "{other}: {}", res.text);
    }
    let res = send(with_key(&key, "/app/status?device_id=default")).await;
    assert_eq!(res.status, 404, "{}", res.text);
    for path in ["/devices", "/devices/second", "/devices/default/webhook"] {
        let res = send(with_key(&key, path)).await;
        assert_eq!(res.status, 403, "{path}: {}", res.text);
    }
    let rotate_by_key = send(
        app.client
            .post(app.url("/devices/second/api-key"))
            .bearer_auth(&key),
    )
    .await;
    assert_eq!(rotate_by_key.status, 403, "{}", rotate_by_key.text);

    // Unknown keys and no credentials are refused.
    let wrong = send(with_key("wak_0000", "/app/status")).await;
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    assert_eq!(
        send(app.client.get(app.url("/app/status"))).await.status,
        401
    );

    // A new key replaces the old one.
    let rotated = send(operator(reqwest::Method::POST, "/devices/second/api-key")).await;
    rotated.assert_success("Device API key issued");
    let new_key = rotated.body["results"]["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_key, key);
    assert_eq!(send(with_key(&key, "/app/status")).await.status, 401);
    assert_eq!(send(with_key(&new_key, "/app/status")).await.status, 200);
    // Removing the account ends its key.
    send(operator(reqwest::Method::DELETE, "/devices/second"))
        .await
        .assert_success("Device removed");
    assert_eq!(send(with_key(&new_key, "/app/status")).await.status, 401);
}

#[tokio::test]
async fn a_webhook_change_that_cannot_be_applied_is_undone() {
    let app = two_accounts(&[]).await;
    let hook = json!({"webhook_url": "https://hooks.example/new"});
    // The reopen with the new webhook fails once: the old settings come back.
    app.failing.lock().unwrap().insert("second".into(), 1);
    let res = app
        .call("PATCH", "/devices/second/webhook", None, Some(hook.clone()))
        .await;
    assert_eq!(res.status, 500, "{}", res.text);
    assert!(
        !res.text.contains("the test made"),
        "no internals: {}",
        res.text
    );
    let kept = app.get("/devices/second/webhook").await;
    assert_eq!(kept.body["results"]["webhook_url"], "", "{}", kept.text);
    let status = app.call("GET", "/app/status", Some("second"), None).await;
    assert_eq!(status.status, 200, "{}", status.text);
    assert_eq!(app.get("/health").await.status, 200);

    // It fails again and again: the account answers 500 and can still be removed.
    app.failing.lock().unwrap().insert("second".into(), 2);
    let res = app
        .call("PATCH", "/devices/second/webhook", None, Some(hook))
        .await;
    assert_eq!(res.status, 500, "{}", res.text);
    let broken = app.call("GET", "/app/status", Some("second"), None).await;
    assert_eq!(broken.status, 500, "{}", broken.text);
    assert!(
        broken.text.contains("could not be opened"),
        "{}",
        broken.text
    );
    assert_eq!(app.get("/health").await.status, 200);
    let listed = app.get("/devices").await;
    assert_eq!(ids(&listed.body["results"]), ["default", "second"]);
    app.call("DELETE", "/devices/second", None, None)
        .await
        .assert_success("Device removed");
    assert_eq!(ids(&app.get("/devices").await.body["results"]), ["default"]);
}

#[tokio::test]
async fn a_removed_account_stays_removed_after_a_restart() {
    let app = two_accounts(&[]).await;
    app.call("DELETE", "/devices/default", None, None)
        .await
        .assert_success("Device removed");
    // Clients without a header now reach the one left.
    let status = app.get("/app/status").await;
    assert_eq!(
        status.body["results"]["device_id"], OTHER_DEVICE,
        "{}",
        status.text
    );
    assert_eq!(app.slots_after_restart().await, ["second"]);
}

#[tokio::test]
async fn metrics_count_accounts_by_state_for_the_operator_only() {
    let app = TestApp::spawn_with(&["--basic-auth", "admin:secret"]).await;
    let get = |path: &str| {
        app.client
            .get(app.url(path))
            .basic_auth("admin", Some("secret"))
    };
    let scrape = || async {
        let res = get("/metrics").send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
        res.text().await.unwrap()
    };
    let text = scrape().await;
    assert!(
        text.contains("whatsapp_accounts{state=\"logged_in\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("whatsapp_accounts{state=\"broken\"} 0"),
        "{text}"
    );
    assert!(text.contains("process_open_fds "), "{text}");
    assert!(text.contains("process_resident_memory_bytes "), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");

    let key = app.add_account_with_key("second").await;
    app.account("second")
        .wa
        .set_status(SessionStatus::LoggedOut);
    let text = scrape().await;
    assert!(
        text.contains("whatsapp_accounts{state=\"logged_in\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("whatsapp_accounts{state=\"disconnected\"} 1"),
        "{text}"
    );
    assert!(!text.contains("second"), "no series per account: {text}");

    let anonymous = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let by_key = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(by_key.status(), 403);
}

#[tokio::test]
async fn in_the_later_dialect_removing_every_account_leaves_none_after_a_restart() {
    let app = TestApp::spawn_with(&["--api-compat", "v9"]).await;
    let removed = app.call("DELETE", "/devices/default", None, None).await;
    assert_eq!(removed.status, 200, "{}", removed.text);
    // What removing the first account leaves in the storage folder: its message
    // store, emptied, with the record of what was imported from a Go server.
    whatsapp_api::messages::MessageStore::open(&app.storage.join("chat.db")).unwrap();
    assert_eq!(app.slots_after_restart().await, Vec::<String>::new());
}
