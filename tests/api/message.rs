//! `/message/:id/*`: actions on a stored message, answered as the later Go versions
//! answer them; unknown ids and ids of another chat are 404s.

use serde_json::json;
use whatsapp_api::messages::{Change, StoredMedia, StoredMessage};
use whatsapp_api::whatsapp::{MessageRef, Outgoing, SessionStatus};

use crate::helpers::TestApp;

const CHAT: &str = "6289685024091";
const OTHER: &str = "6289685024092";

fn stored(id: &str, from_me: bool, media: bool) -> StoredMessage {
    StoredMessage {
        chat: format!("{CHAT}@s.whatsapp.net"),
        id: id.to_owned(),
        sender: if from_me {
            "6289685028000@s.whatsapp.net".to_owned()
        } else {
            format!("{CHAT}@s.whatsapp.net")
        },
        sender_lid: None,
        push_name: None,
        timestamp: 1_700_000_000,
        is_from_me: from_me,
        kind: if media { "image" } else { "text" }.to_owned(),
        body: Some("hello".to_owned()),
        quoted_id: None,
        media: media.then(|| StoredMedia {
            direct_path: Some("/v/t62/fake".to_owned()),
            media_key: Some(vec![7; 32]),
            mimetype: Some("image/jpeg".to_owned()),
            ..StoredMedia::default()
        }),
        raw: vec![10, 5, 104, 101, 108, 108, 111],
        edited_at: None,
        revoked_at: None,
    }
}

async fn app_with(messages: &[StoredMessage]) -> TestApp {
    let app = TestApp::spawn().await;
    let changes: Vec<Change> = messages
        .iter()
        .map(|m| Change::Message(Box::new(m.clone())))
        .collect();
    app.store.apply(&changes, 1).unwrap();
    app
}

#[tokio::test]
async fn a_reaction_names_the_message_and_answers_with_its_status() {
    let app = app_with(&[stored("3EB0AA", false, false)]).await;

    let res = app
        .post_form(
            "/message/3EB0AA/reaction",
            &[("phone", CHAT), ("emoji", "👍")],
        )
        .await;

    assert_eq!(res.status, 200, "{}", res.text);
    let status = res.body["results"]["status"].as_str().unwrap();
    assert!(
        status.starts_with(&format!(
            "Reaction sent to {CHAT}@s.whatsapp.net (server timestamp: "
        )),
        "{status}"
    );
    assert_eq!(res.body["message"], status);
    assert!(res.body["results"]["message_id"].is_string());
    let sent = app.wa.sent();
    assert_eq!(sent[0].0.to_string(), format!("{CHAT}@s.whatsapp.net"));
    assert_eq!(
        sent[0].1,
        Outgoing::Reaction {
            target: MessageRef {
                id: "3EB0AA".into(),
                from_me: false,
                sender: None,
            },
            emoji: "👍".into(),
        }
    );
}

#[tokio::test]
async fn an_unknown_id_or_another_chats_message_is_a_404() {
    let app = app_with(&[stored("3EB0AA", false, false)]).await;
    for (path, phone) in [
        ("/message/3EB0FF/reaction", CHAT),
        ("/message/3EB0AA/reaction", OTHER),
        ("/message/3EB0AA/revoke", OTHER),
        ("/message/3EB0AA/read", OTHER),
        ("/message/3EB0AA/star", OTHER),
        ("/message/3EB0AA/delete", OTHER),
    ] {
        let res = app
            .post_form(path, &[("phone", phone), ("emoji", "👍")])
            .await;
        assert_eq!(res.status, 404, "{path} {phone}: {}", res.text);
        assert!(
            res.body["message"].as_str().unwrap().contains("not found"),
            "{}",
            res.text
        );
    }
    let res = app
        .get(&format!("/message/3EB0FF/download?phone={CHAT}"))
        .await;
    assert_eq!(res.status, 404, "{}", res.text);
    let res = app
        .post_form("/message/NOPE/forward", &[("phone", OTHER)])
        .await;
    assert_eq!(res.status, 404, "{}", res.text);
    assert!(app.wa.sent().is_empty());
    assert!(app.wa.actions().is_empty());

    let v9 = TestApp::spawn_with(&["--api-compat", "v9"]).await;
    let res = v9
        .post_form("/message/3EB0FF/revoke", &[("phone", CHAT)])
        .await;
    assert_eq!(res.status, 404, "{}", res.text);
    assert_eq!(res.body["code"], "NOT_FOUND");
}

#[tokio::test]
async fn a_malformed_id_or_chat_is_a_400() {
    let app = app_with(&[stored("3EB0AA", false, false)]).await;
    let res = app
        .post_form("/message/..%2F..%2Fetc/reaction", &[("phone", CHAT)])
        .await;
    res.assert_error(400, "message_id: must be a valid message id.");
    let long = "A".repeat(129);
    let res = app
        .post_form(&format!("/message/{long}/read"), &[("phone", CHAT)])
        .await;
    res.assert_error(400, "message_id: must be a valid message id.");
    app.post_form("/message/3EB0AA/read", &[])
        .await
        .assert_error(400, "phone: cannot be blank.");
    app.post_form(
        "/message/3EB0AA/reaction",
        &[("phone", CHAT), ("emoji", "lol")],
    )
    .await
    .assert_error(400, "emoji: must be an emoji.");
    app.post_form("/message/3EB0AA/update", &[("phone", CHAT)])
        .await
        .assert_error(400, "message: cannot be blank.");
}

#[tokio::test]
async fn revoke_and_edit_are_sent_for_the_right_messages_only() {
    let app = app_with(&[stored("MINE", true, false), stored("THEIRS", false, false)]).await;

    let res = app
        .post_form("/message/MINE/revoke", &[("phone", CHAT)])
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(
        res.body["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Revoke success {CHAT}"))
    );

    app.post_form(
        "/message/THEIRS/update",
        &[("phone", CHAT), ("message", "changed")],
    )
    .await
    .assert_error(
        400,
        "message THEIRS was not sent by this account; only your own messages can be edited",
    );
    let res = app
        .post_form(
            "/message/MINE/update",
            &[("phone", CHAT), ("message", "changed")],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(
        res.body["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Update message success {CHAT}"))
    );

    let sent: Vec<Outgoing> = app.wa.sent().into_iter().map(|(_, m)| m).collect();
    assert_eq!(
        sent,
        [
            Outgoing::Revoke {
                target: MessageRef {
                    id: "MINE".into(),
                    from_me: true,
                    sender: None
                }
            },
            Outgoing::Edit {
                id: "MINE".into(),
                text: "changed".into()
            },
        ]
    );
}

#[tokio::test]
async fn read_star_and_delete_reach_the_session_and_delete_forgets_the_message() {
    let app = app_with(&[stored("3EB0AA", false, false)]).await;
    let chat = format!("{CHAT}@s.whatsapp.net");

    let res = app
        .post_form("/message/3EB0AA/read", &[("phone", CHAT)])
        .await;
    res.assert_success("Mark as read success 3EB0AA");
    app.post_form("/message/3EB0AA/star", &[("phone", CHAT)])
        .await
        .assert_success("Starred message successfully");
    app.post_form("/message/3EB0AA/unstar", &[("phone", CHAT)])
        .await
        .assert_success("Unstarred message successfully");
    app.post_form("/message/3EB0AA/delete", &[("phone", CHAT)])
        .await
        .assert_success("Message deleted successfully");

    assert_eq!(
        app.wa.actions(),
        [
            format!("read:{chat}:3EB0AA"),
            format!("star:{chat}:3EB0AA:true"),
            format!("star:{chat}:3EB0AA:false"),
            format!("delete:{chat}:3EB0AA:1700000000"),
        ]
    );
    assert_eq!(app.store.get(&chat, "3EB0AA").unwrap(), None);
    let again = app
        .post_form("/message/3EB0AA/delete", &[("phone", CHAT)])
        .await;
    assert_eq!(again.status, 404, "{}", again.text);
}

#[tokio::test]
async fn forward_sends_the_stored_message_to_another_chat() {
    let app = app_with(&[stored("3EB0AA", false, false)]).await;
    let res = app
        .post_form(
            "/message/3EB0AA/forward",
            &[("phone", OTHER), ("duration", "86400")],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(res.body["message"].as_str().unwrap().starts_with(&format!(
        "Message forwarded to {OTHER}@s.whatsapp.net (server timestamp: "
    )));
    let sent = app.wa.sent();
    assert_eq!(sent[0].0.to_string(), format!("{OTHER}@s.whatsapp.net"));
    assert_eq!(
        sent[0].1,
        Outgoing::Forward {
            raw: stored("3EB0AA", false, false).raw,
            edited_text: None,
        }
    );
    let contexts = app.wa.state.lock().unwrap().contexts.clone();
    assert_eq!(contexts[0].expiration, Some(86_400));
}

#[tokio::test]
async fn download_writes_the_media_under_statics_and_links_it() {
    let app = app_with(&[stored("TEXT", false, false), stored("PIC", false, true)]).await;
    app.get(&format!("/message/TEXT/download?phone={CHAT}"))
        .await
        .assert_error(400, "message TEXT does not contain downloadable media");

    app.wa.state.lock().unwrap().download = Some(b"\xFF\xD8\xFFjpeg".to_vec());
    let res = app
        .get(&format!("/message/PIC/download?phone={CHAT}"))
        .await;

    assert_eq!(res.status, 200, "{}", res.text);
    let results = &res.body["results"];
    assert_eq!(results["message_id"], "PIC");
    assert_eq!(results["media_type"], "image");
    assert_eq!(results["file_size"], 7);
    let path = results["file_path"].as_str().unwrap();
    assert!(path.starts_with("statics/media/"), "{path}");
    assert_eq!(results["file_url"], json!(format!("{}/{path}", app.base)));
    let file = app
        .statics
        .join("media")
        .join(results["filename"].as_str().unwrap());
    assert_eq!(std::fs::read(file).unwrap(), b"\xFF\xD8\xFFjpeg");
    let served = app
        .client
        .get(results["file_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
}

#[tokio::test]
async fn actions_need_a_logged_in_session() {
    let app = app_with(&[stored("3EB0AA", false, false)]).await;
    app.wa.set_status(SessionStatus::LoggedOut);
    app.post_form(
        "/message/3EB0AA/reaction",
        &[("phone", CHAT), ("emoji", "👍")],
    )
    .await
    .assert_error(500, "you are not loggin");
}
