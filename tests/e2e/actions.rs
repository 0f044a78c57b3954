//! `/message/:id/*` through the real client: each action reaches WhatsApp in the form
//! it uses (a reaction, an edit or a revoke naming the original id; a read receipt;
//! app-state changes the fake decrypts and verifies).

use std::time::Duration;

use fake_whatsapp::{ContactInfo, MediaType};
use whatsapp_rust::prelude::wa;

use crate::harness::wait_for;
use crate::send::{FRIEND, paired};

const OTHER: &str = "6289685028130";

fn text(body: &str) -> wa::Message {
    wa::Message {
        conversation: Some(body.to_owned()),
        ..Default::default()
    }
}

async fn actions_on_an_incoming_message_reach_whatsapp() {
    let (fake, server, _dir) = paired().await;
    let chat = format!("{FRIEND}@s.whatsapp.net");
    let id = fake.deliver_message(FRIEND, text("hello")).await.unwrap();
    wait_for("the ack", Duration::from_secs(10), || fake.unacked() == 0).await;

    let res = server
        .post_form(
            &format!("/message/{id}/reaction"),
            &[("phone", FRIEND), ("emoji", "👍")],
        )
        .await;
    assert_eq!(res.status, 200, "{}\n{}", res.body, server.log());
    let reaction = fake
        .received()
        .into_iter()
        .find(|r| r.recipient == FRIEND && r.reaction().is_some())
        .expect("the contact got the reaction");
    let (key, emoji) = reaction.reaction().unwrap();
    assert_eq!(emoji, "👍");
    assert_eq!(key.id.as_deref(), Some(id.as_str()));
    assert_eq!(key.from_me, Some(false));
    assert_eq!(key.remote_jid.as_deref(), Some(chat.as_str()));

    let res = server
        .post_form(&format!("/message/{id}/read"), &[("phone", FRIEND)])
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.message(), format!("Mark as read success {id}"));
    wait_for("the read receipt", Duration::from_secs(10), || {
        fake.read_receipts()
            .iter()
            .any(|r| r.kind == "read" && r.ids.contains(&id))
    })
    .await;

    // App state needs the key the phone shares after login.
    wait_for("the app-state key", Duration::from_secs(20), || {
        fake.app_state_key_shared()
    })
    .await;
    let res = server
        .post_form(&format!("/message/{id}/star"), &[("phone", FRIEND)])
        .await;
    assert_eq!(res.status, 200, "{}\n{}", res.body, server.log());
    let starred = fake
        .app_state_value(&["star", &chat, &id, "0", "0"])
        .expect("a star mutation");
    assert_eq!(
        starred.star_action.as_option().and_then(|s| s.starred),
        Some(true)
    );

    let res = server
        .post_form(&format!("/message/{id}/delete"), &[("phone", FRIEND)])
        .await;
    assert_eq!(res.status, 200, "{}\n{}", res.body, server.log());
    assert!(
        fake.app_state_value(&["deleteMessageForMe", &chat, &id, "0", "0"])
            .is_some(),
        "{:?}",
        fake.app_state_mutations()
    );
    // Gone from the store too.
    let again = server
        .post_form(
            &format!("/message/{id}/reaction"),
            &[("phone", FRIEND), ("emoji", "😂")],
        )
        .await;
    assert_eq!(again.status, 404, "{}", again.body);
    assert_eq!(fake.problems(), Vec::<String>::new());
}

async fn own_messages_can_be_edited_forwarded_and_revoked() {
    let (fake, server, _dir) = paired().await;
    fake.add_contact(OTHER, ContactInfo::default()).unwrap();
    let sent = server
        .post_form("/send/message", &[("phone", FRIEND), ("message", "first")])
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let id = sent.body["results"]["message_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let res = server
        .post_form(
            &format!("/message/{id}/update"),
            &[("phone", FRIEND), ("message", "second")],
        )
        .await;
    assert_eq!(res.status, 200, "{}\n{}", res.body, server.log());
    let edit = fake
        .received()
        .into_iter()
        .find(|r| r.recipient == FRIEND && r.edit().is_some())
        .expect("the contact got the edit");
    let (key, edited) = edit.edit().unwrap();
    assert_eq!(key.id.as_deref(), Some(id.as_str()));
    assert_eq!(edited.conversation.as_deref(), Some("second"));

    let res = server
        .post_form(&format!("/message/{id}/forward"), &[("phone", OTHER)])
        .await;
    assert_eq!(res.status, 200, "{}\n{}", res.body, server.log());
    let forwarded = fake
        .received()
        .into_iter()
        .find(|r| r.recipient == OTHER)
        .expect("the other contact got the forward");
    assert!(
        // The score counts earlier forwards: none.
        forwarded.forwarded() == Some(0),
        "{:?}",
        forwarded.message
    );
    let body = forwarded.message.conversation.clone().or_else(|| {
        forwarded
            .message
            .extended_text_message
            .as_option()
            .and_then(|t| t.text.clone())
    });
    // The store holds the latest text: the edit.
    assert_eq!(body.as_deref(), Some("second"));

    let res = server
        .post_form(&format!("/message/{id}/revoke"), &[("phone", FRIEND)])
        .await;
    assert_eq!(res.status, 200, "{}\n{}", res.body, server.log());
    assert!(fake.is_revoked(&format!("{FRIEND}@s.whatsapp.net"), &id));
    let again = server
        .post_form(&format!("/message/{id}/revoke"), &[("phone", FRIEND)])
        .await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert_eq!(fake.problems(), Vec::<String>::new());
}

async fn a_received_picture_downloads_byte_for_byte() {
    let (fake, server, _dir) = paired().await;
    let picture = crate::incoming::png();
    let hosted = fake.host_media(&picture, MediaType::Image).unwrap();
    let message = crate::incoming::image(&hosted, None);
    let id = fake.deliver_message(FRIEND, message).await.unwrap();
    wait_for("the ack", Duration::from_secs(10), || fake.unacked() == 0).await;

    let res = server
        .get(&format!("/message/{id}/download?phone={FRIEND}"))
        .await;
    assert_eq!(res.status, 200, "{}\n{}", res.body, server.log());
    let results = &res.body["results"];
    assert_eq!(results["media_type"], "image");
    assert_eq!(results["file_size"], picture.len() as u64);
    let url = results["file_url"].as_str().unwrap();
    let served = reqwest::get(url).await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().await.unwrap().as_ref(), picture.as_slice());

    // A text has nothing to download.
    let text_id = fake
        .deliver_message(FRIEND, text("no media"))
        .await
        .unwrap();
    wait_for("the ack", Duration::from_secs(10), || fake.unacked() == 0).await;
    let res = server
        .get(&format!("/message/{text_id}/download?phone={FRIEND}"))
        .await;
    assert_eq!(res.status, 400, "{}", res.body);
}

crate::on_both_stores!(
    actions_on_an_incoming_message_reach_whatsapp,
    own_messages_can_be_edited_forwarded_and_revoked,
    a_received_picture_downloads_byte_for_byte,
);
