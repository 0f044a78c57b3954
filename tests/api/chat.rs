//! `/chats` and `/chat/:jid/*`: listings from the message store with pagination and
//! filters, and the synced chat settings.

use serde_json::{Value, json};
use whatsapp_api::messages::{Change, StoredMedia, StoredMessage};

use crate::helpers::TestApp;

const ANN: &str = "6289685024091@s.whatsapp.net";
const BOB: &str = "6289685024092@s.whatsapp.net";
const ME: &str = "6289685028000@s.whatsapp.net";

fn message(chat: &str, id: &str, t: i64, from_me: bool, body: &str, media: bool) -> Change {
    Change::Message(Box::new(StoredMessage {
        chat: chat.to_owned(),
        id: id.to_owned(),
        sender: if from_me { ME } else { chat }.to_owned(),
        sender_lid: None,
        push_name: (!from_me).then(|| "Ann".to_owned()),
        timestamp: t,
        is_from_me: from_me,
        kind: if media { "image" } else { "text" }.to_owned(),
        body: Some(body.to_owned()),
        quoted_id: None,
        media: media.then(|| StoredMedia {
            direct_path: Some("/v/x".to_owned()),
            file_name: Some("a.jpg".to_owned()),
            file_length: Some(1234),
            ..StoredMedia::default()
        }),
        raw: vec![1],
        edited_at: None,
        revoked_at: None,
    }))
}

async fn app() -> TestApp {
    let app = TestApp::spawn().await;
    let mut changes = vec![message(BOB, "B1", 1_700_000_100, false, "from bob", false)];
    for i in 0..5 {
        changes.push(message(
            ANN,
            &format!("A{i}"),
            1_700_000_000 + i64::from(i) * 1_000,
            i % 2 == 1,
            &format!("text {i}"),
            i == 4,
        ));
    }
    changes.push(Change::Reaction {
        chat: ANN.into(),
        message_id: "A3".into(),
        sender: ANN.into(),
        emoji: "❤".into(),
        timestamp: 1_700_003_500,
    });
    app.store.apply(&changes, 1_700_010_000).unwrap();
    app
}

fn ids(res: &Value) -> Vec<&str> {
    res["results"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().or(m["jid"].as_str()).unwrap())
        .collect()
}

#[tokio::test]
async fn chats_are_listed_latest_first_with_filters_and_pagination() {
    let app = app().await;
    let res = app.get("/chats").await;
    res.assert_success("Success get chat list");
    assert_eq!(ids(&res.body), [ANN, BOB]);
    assert_eq!(
        res.body["results"]["pagination"],
        json!({ "limit": 25, "offset": 0, "total": 2 })
    );
    let ann = &res.body["results"]["data"][0];
    assert_eq!(ann["name"], "Ann");
    assert_eq!(ann["last_message_time"], "2023-11-14T23:20:00Z");
    assert_eq!(ann["archived"], false);

    let page = app.get("/chats?limit=1&offset=1").await;
    assert_eq!(ids(&page.body), [BOB]);
    assert_eq!(page.body["results"]["pagination"]["total"], 2);
    assert_eq!(ids(&app.get("/chats?has_media=true").await.body), [ANN]);
    assert_eq!(ids(&app.get("/chats?search=024092").await.body), [BOB]);
    // LIKE wildcards are taken literally.
    assert!(ids(&app.get("/chats?search=%25").await.body).is_empty());

    app.get("/chats?limit=0")
        .await
        .assert_error(400, "limit: must be between 1 and 100.");
    app.get("/chats?limit=500&archived=maybe")
        .await
        .assert_error(
            400,
            "archived: must be a boolean (true or false); limit: must be between 1 and 100.",
        );
}

#[tokio::test]
async fn a_chats_messages_come_newest_first_with_reactions_and_filters() {
    let app = app().await;
    let res = app.get(&format!("/chat/{ANN}/messages")).await;
    res.assert_success("Success get chat messages");
    assert_eq!(ids(&res.body), ["A4", "A3", "A2", "A1", "A0"]);
    assert_eq!(
        res.body["results"]["pagination"],
        json!({ "limit": 50, "offset": 0, "total": 5 })
    );
    assert_eq!(res.body["results"]["chat_info"]["jid"], ANN);
    let newest = &res.body["results"]["data"][0];
    assert_eq!(newest["media_type"], "image");
    assert_eq!(newest["filename"], "a.jpg");
    assert_eq!(newest["file_length"], 1234);
    assert_eq!(newest["content"], "text 4");
    assert_eq!(newest["sender_display_name"], "Ann");
    assert!(newest.get("reactions").is_none());
    let reacted = &res.body["results"]["data"][1];
    assert_eq!(
        reacted["reactions"],
        json!([{ "emoji": "❤", "sender_jid": ANN, "sender_display_name": "",
                 "is_from_me": false, "timestamp": "2023-11-14T23:11:40Z" }])
    );

    // A phone number names the same chat.
    let page = app
        .get("/chat/6289685024091/messages?limit=2&offset=1")
        .await;
    assert_eq!(ids(&page.body), ["A3", "A2"]);
    assert_eq!(page.body["results"]["pagination"]["total"], 5);
    let mine = app
        .get(&format!("/chat/{ANN}/messages?is_from_me=true"))
        .await;
    assert_eq!(ids(&mine.body), ["A3", "A1"]);
    let media = app.get(&format!("/chat/{ANN}/messages?media_only=1")).await;
    assert_eq!(ids(&media.body), ["A4"]);
    let found = app.get(&format!("/chat/{ANN}/messages?search=xt+2")).await;
    assert_eq!(ids(&found.body), ["A2"]);
    let window = app
        .get(&format!(
            "/chat/{ANN}/messages?start_time=2023-11-14T22:31:00Z&end_time=2023-11-14T23:05:00Z"
        ))
        .await;
    assert_eq!(ids(&window.body), ["A3", "A2"]);
}

#[tokio::test]
async fn unknown_or_malformed_chats_are_4xx() {
    let app = app().await;
    let res = app.get("/chat/6289999999999@s.whatsapp.net/messages").await;
    res.assert_error(404, "chat 6289999999999@s.whatsapp.net not found");
    app.get("/chat/not-a-jid!/messages")
        .await
        .assert_error(400, "chat_jid: must be a valid WhatsApp JID.");
    app.get(&format!("/chat/{ANN}/messages?start_time=yesterday"))
        .await
        .assert_error(
            400,
            "start_time: must be an RFC 3339 time, e.g. 2024-01-31T08:00:00Z.",
        );
}

#[tokio::test]
async fn pin_archive_and_timer_reach_the_session_and_show_in_the_list() {
    let app = app().await;
    let res = app
        .post_json(&format!("/chat/{BOB}/pin"), json!({ "pinned": true }))
        .await;
    res.assert_success("Chat pinned successfully");
    assert_eq!(
        res.body["results"],
        json!({ "status": "success", "message": "Chat pinned successfully",
                "chat_jid": BOB, "pinned": true })
    );
    app.post_json(&format!("/chat/{BOB}/archive"), json!({ "archived": true }))
        .await
        .assert_success("Chat archived successfully");
    app.post_json(
        &format!("/chat/{ANN}/disappearing"),
        json!({ "timer_seconds": 86400 }),
    )
    .await
    .assert_success("Disappearing messages set to 86400 seconds");
    app.post_json(
        &format!("/chat/{ANN}/disappearing"),
        json!({ "timer_seconds": 5 }),
    )
    .await
    .assert_error(400, "timer_seconds: must be 0, 86400, 604800 or 7776000.");
    app.post_json(&format!("/chat/{ANN}/pin"), json!({}))
        .await
        .assert_error(400, "pinned: cannot be blank.");

    assert_eq!(
        app.wa.actions(),
        [
            format!("pin:{BOB}:true"),
            format!("archive:{BOB}:true"),
            format!("disappearing:{ANN}:86400"),
        ]
    );
    let archived = app.get("/chats?archived=true").await;
    assert_eq!(ids(&archived.body), [BOB]);
    assert_eq!(archived.body["results"]["data"][0]["pinned"], true);
    let ann = app.get(&format!("/chat/{ANN}/messages?limit=1")).await;
    assert_eq!(
        ann.body["results"]["chat_info"]["ephemeral_expiration"],
        86400
    );
}

#[tokio::test]
async fn a_label_is_named_once_put_on_and_taken_off() {
    let app = app().await;
    let path = format!("/chat/{BOB}/label");
    let on = json!({"label_id": "5", "label_name": "Paid", "labeled": true});
    let res = app.post_json(&path, on.clone()).await;
    res.assert_success("Chat labeled successfully with label 'Paid'");
    assert_eq!(
        res.body["results"],
        json!({"status": "success", "message": "Chat labeled successfully with label 'Paid'",
               "chat_jid": BOB, "label_id": "5", "labeled": true})
    );
    // Known by that name now: put on again without renaming it.
    app.post_json(&path, on)
        .await
        .assert_success("Chat labeled successfully with label 'Paid'");
    app.post_json(
        &path,
        json!({"label_id": "5", "label_name": "Paid", "labeled": false}),
    )
    .await
    .assert_success("Chat unlabeled successfully from label 'Paid'");
    assert_eq!(
        app.wa.actions(),
        [
            "label-edit:5:Paid:0".to_owned(),
            format!("label:{BOB}:5:true"),
            format!("label:{BOB}:5:true"),
            format!("label:{BOB}:5:false"),
        ]
    );
    for (body, error) in [
        (
            json!({"label_name": "x", "labeled": true}),
            "label_id: cannot be blank.",
        ),
        (
            json!({"label_id": "5", "label_name": "a\tb", "labeled": true}),
            "label_name: must not contain control characters.",
        ),
        (
            json!({"label_id": "x".repeat(65), "label_name": "x", "labeled": true}),
            "label_id: must be 1 to 64 characters.",
        ),
        (
            json!({"label_id": "5", "label_name": "x"}),
            "labeled: cannot be blank.",
        ),
    ] {
        app.post_json(&path, body).await.assert_error(400, error);
    }
    assert_eq!(app.wa.actions().len(), 4, "nothing more reached WhatsApp");
}

#[tokio::test]
async fn unread_counts_and_the_unread_filter() {
    let app = app().await;
    // Ann's last message came after this account's reply; Bob's was never read.
    let unread = app.get("/chats?unread=true").await;
    unread.assert_success("Success get chat list");
    let counts: Vec<(String, u64)> = unread.body["results"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["jid"].as_str().unwrap().to_owned(),
                c["unread_count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts, [(ANN.to_owned(), 1), (BOB.to_owned(), 1)]);
    let read = Change::Receipt {
        chat: BOB.into(),
        message_ids: vec!["B1".into()],
        kind: "read-self".into(),
        sender: BOB.into(),
        timestamp: 1_700_000_200,
    };
    app.store.apply(&[read], 1_700_010_000).unwrap();
    assert_eq!(ids(&app.get("/chats?unread=true").await.body), [ANN]);
    assert_eq!(
        app.get("/chats").await.body["results"]["pagination"]["total"],
        2
    );
    app.get("/chats?unread=maybe")
        .await
        .assert_error(400, "unread: must be a boolean (true or false).");
}

#[tokio::test]
async fn a_search_finds_text_across_chats() {
    let app = app().await;
    let found = app.get("/messages/search?search=TEXT").await;
    found.assert_success("Success search messages");
    assert_eq!(found.body["results"]["pagination"]["total"], 5);
    assert_eq!(found.body["results"]["data"][0]["id"], "A4", "newest first");
    let bob = app.get("/messages/search?search=bob").await;
    assert_eq!(bob.body["results"]["data"][0]["chat_jid"], BOB);
    let none = app
        .get(&format!("/messages/search?search=text&chat_jid={BOB}"))
        .await;
    assert_eq!(none.body["results"]["pagination"]["total"], 0);
    let received = app
        .get("/messages/search?search=text&is_from_me=false&limit=1")
        .await;
    assert_eq!(received.body["results"]["pagination"]["total"], 3);
    assert_eq!(
        received.body["results"]["data"].as_array().unwrap().len(),
        1
    );
    app.get("/messages/search")
        .await
        .assert_error(400, "search: cannot be blank.");
    app.get(&format!("/messages/search?search={}", "x".repeat(201)))
        .await
        .assert_error(400, "search: must be 1 to 200 characters.");
    app.get("/messages/search?search=x&chat_jid=not%20a%20jid")
        .await
        .assert_error(400, "chat_jid: must be a valid WhatsApp JID.");
}
