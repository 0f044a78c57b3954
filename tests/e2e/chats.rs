//! Chat history through the real binary: what was sent and received, in order, with
//! pagination; pin, archive and the disappearing timer reach WhatsApp.

use std::time::Duration;

use whatsapp_rust::prelude::wa;

use crate::harness::wait_for;
use crate::send::{FRIEND, paired};

async fn history_lists_what_was_sent_and_received_in_order() {
    let (fake, server, _dir) = paired().await;
    let chat = format!("{FRIEND}@s.whatsapp.net");
    let mut expected = Vec::new();
    for i in 0..3 {
        let hello = wa::Message {
            conversation: Some(format!("in {i}")),
            ..Default::default()
        };
        let id = fake.deliver_message(FRIEND, hello).await.unwrap();
        wait_for("the ack", Duration::from_secs(10), || fake.unacked() == 0).await;
        expected.push((id, format!("in {i}"), false));
        let sent = server
            .post_form(
                "/send/message",
                &[("phone", FRIEND), ("message", &format!("out {i}"))],
            )
            .await;
        assert_eq!(sent.status, 200, "{}", sent.body);
        let id = sent.body["results"]["message_id"]
            .as_str()
            .unwrap()
            .to_owned();
        expected.push((id, format!("out {i}"), true));
        // Distinct seconds, so that the order is the time order.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    // Sent messages are stored just after their ack, in the background.
    let url = format!("/chat/{chat}/messages?limit=1");
    for _ in 0..100 {
        if server.get(&url).await.body["results"]["pagination"]["total"] == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    expected.reverse();

    let mut seen = Vec::new();
    for offset in [0, 4] {
        let res = server
            .get(&format!("/chat/{chat}/messages?limit=4&offset={offset}"))
            .await;
        assert_eq!(res.status, 200, "{}\n{}", res.body, server.log());
        assert_eq!(
            res.body["results"]["pagination"]["total"], 6,
            "{}",
            res.body
        );
        for m in res.body["results"]["data"].as_array().unwrap() {
            seen.push((
                m["id"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
                m["is_from_me"].as_bool().unwrap(),
            ));
        }
    }
    // Within one second the order of an in and an out is by id; compare as sets
    // per second and the whole sequence by time.
    let mut by_time = seen.clone();
    by_time.sort_by_key(|(_, body, _)| body.split(' ').nth(1).unwrap().parse::<u32>().unwrap());
    let mut want = expected.clone();
    want.sort_by_key(|(_, body, _)| body.split(' ').nth(1).unwrap().parse::<u32>().unwrap());
    assert_eq!(by_time.len(), 6, "{seen:?}");
    assert_eq!(
        by_time
            .iter()
            .map(|s| &s.0)
            .collect::<std::collections::BTreeSet<_>>(),
        want.iter()
            .map(|s| &s.0)
            .collect::<std::collections::BTreeSet<_>>()
    );
    let rounds: Vec<u32> = seen
        .iter()
        .map(|(_, body, _)| body.split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(rounds, [2, 2, 1, 1, 0, 0], "newest first: {seen:?}");

    let chats = server.get("/chats").await;
    assert_eq!(chats.status, 200, "{}", chats.body);
    assert_eq!(chats.body["results"]["data"][0]["jid"], chat.as_str());
    assert_eq!(chats.body["results"]["data"][0]["name"], "Fake Contact");
}

async fn pin_archive_and_timer_reach_whatsapp() {
    let (fake, server, _dir) = paired().await;
    let chat = format!("{FRIEND}@s.whatsapp.net");
    wait_for("the app-state key", Duration::from_secs(20), || {
        fake.app_state_key_shared()
    })
    .await;

    let res = server
        .post_form(&format!("/chat/{chat}/pin"), &[("pinned", "true")])
        .await;
    assert_eq!(res.status, 200, "{}\n{}", res.body, server.log());
    let pin = fake
        .app_state_value(&["pin_v1", &chat])
        .expect("a pin mutation");
    assert_eq!(
        pin.pin_action.as_option().and_then(|p| p.pinned),
        Some(true)
    );

    let res = server
        .post_form(&format!("/chat/{chat}/archive"), &[("archived", "true")])
        .await;
    assert_eq!(res.status, 200, "{}\n{}", res.body, server.log());
    let archive = fake
        .app_state_value(&["archive", &chat])
        .expect("an archive mutation");
    assert_eq!(
        archive
            .archive_chat_action
            .as_option()
            .and_then(|a| a.archived),
        Some(true)
    );

    let res = server
        .post_form(
            &format!("/chat/{chat}/disappearing"),
            &[("timer_seconds", "604800")],
        )
        .await;
    assert_eq!(res.status, 200, "{}\n{}", res.body, server.log());
    let setting = fake
        .received()
        .into_iter()
        .filter(|r| r.recipient == FRIEND)
        .find_map(|r| r.message.protocol_message.as_option().cloned())
        .unwrap_or_else(|| panic!("the contact got no timer; problems: {:?}", fake.problems()));
    assert_eq!(setting.ephemeral_expiration, Some(604_800));

    let listed = server.get("/chats?archived=true").await;
    let data = &listed.body["results"]["data"][0];
    assert_eq!(data["jid"], chat.as_str(), "{}", listed.body);
    assert_eq!(data["pinned"], true);
    assert_eq!(data["ephemeral_expiration"], 604_800);
    assert_eq!(fake.problems(), Vec::<String>::new());
}

async fn a_label_reaches_whatsapp_and_shows_in_chats() {
    let (fake, server, _dir) = paired().await;
    let chat = format!("{FRIEND}@s.whatsapp.net");
    wait_for("the app-state key", Duration::from_secs(20), || {
        fake.app_state_key_shared()
    })
    .await;
    fake.deliver(FRIEND, "order #12").await.unwrap();
    server
        .wait_reply("/chats", None, "the chat stored", |r| {
            r["results"]["data"][0]["jid"] == chat.as_str()
        })
        .await;

    let path = format!("/chat/{chat}/label");
    let res = server
        .post_form(
            &path,
            &[
                ("label_id", "5"),
                ("label_name", "Paid"),
                ("labeled", "true"),
            ],
        )
        .await;
    assert_eq!(res.status, 200, "{}\n{}", res.body, server.log());
    assert_eq!(
        res.body["message"],
        "Chat labeled successfully with label 'Paid'"
    );
    assert_eq!(res.body["results"]["label_id"], "5");
    // The fake decrypted both mutations: the label named, then put on the chat.
    let edit = fake
        .app_state_value(&["label_edit", "5"])
        .expect("a label_edit mutation");
    let edit = edit.label_edit_action.as_option().unwrap();
    assert_eq!(edit.name.as_deref(), Some("Paid"));
    assert_eq!(edit.deleted, Some(false));
    let tag = fake
        .app_state_value(&["label_jid", "5", &chat])
        .expect("a label_jid mutation");
    assert_eq!(
        tag.label_association_action
            .as_option()
            .and_then(|a| a.labeled),
        Some(true)
    );
    let chats = server.get("/chats").await;
    assert_eq!(
        chats.body["results"]["data"][0]["labels"],
        serde_json::json!([{"id": "5", "name": "Paid", "color": 0}])
    );

    // Off again; the label itself stays (it was known by that name: no new edit).
    let edits = fake.app_state_mutations().len();
    let res = server
        .post_form(
            &path,
            &[
                ("label_id", "5"),
                ("label_name", "Paid"),
                ("labeled", "false"),
            ],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let tag = fake.app_state_value(&["label_jid", "5", &chat]).unwrap();
    assert_eq!(
        tag.label_association_action
            .as_option()
            .and_then(|a| a.labeled),
        Some(false)
    );
    assert_eq!(fake.app_state_mutations().len(), edits + 1);
    let chats = server.get("/chats").await;
    assert_eq!(
        chats.body["results"]["data"][0]["labels"],
        serde_json::json!([])
    );

    // Bad input is a 400 that sends nothing.
    let res = server
        .post_form(
            &path,
            &[("label_id", ""), ("label_name", "x"), ("labeled", "true")],
        )
        .await;
    assert_eq!(res.status, 400, "{}", res.body);
    let res = server
        .post_form(
            &path,
            &[
                ("label_id", "6"),
                ("label_name", "two\nlines"),
                ("labeled", "true"),
            ],
        )
        .await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert_eq!(fake.app_state_mutations().len(), edits + 1);
    assert!(fake.problems().is_empty(), "{:?}", fake.problems());
}

crate::on_both_stores!(
    history_lists_what_was_sent_and_received_in_order,
    pin_archive_and_timer_reach_whatsapp,
    a_label_reaches_whatsapp_and_shows_in_chats,
);
