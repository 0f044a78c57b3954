//! The chat history the phone pushes after pairing (WhatsApp's history sync), in
//! chunks, lands in the message store: `/chats` and `/chat/:jid/messages` answer
//! from it as they do for live messages, and a chunk pushed again changes nothing.

use fake_whatsapp::{HistoryChat, HistoryMessage, HistoryOptions, PHONE_USER};
use serde_json::Value;

use crate::send::paired;

const ANN: &str = "6289685024091@s.whatsapp.net";
const GROUP: &str = "120363000000000042@g.us";
const BOB: &str = "6289685024092@s.whatsapp.net";

fn history() -> Vec<HistoryChat> {
    let ann: Vec<_> = (0..30)
        .map(|i| {
            let message = HistoryMessage::text(
                format!("ANN{i:02}"),
                i % 3 == 0,
                1_700_000_000 + i,
                &format!("ann {i}"),
            );
            if i % 3 == 0 {
                message
            } else {
                message.with_push_name("Ann")
            }
        })
        .collect();
    let group = vec![
        HistoryMessage::text("GRP01", false, 1_700_000_100, "hello group").sent_by(BOB),
        HistoryMessage::text("GRP02", true, 1_700_000_200, "hello back"),
    ];
    vec![
        HistoryChat::new(ANN, Some("Ann Smith"), ann),
        HistoryChat::new(GROUP, Some("Old friends"), group),
    ]
}

fn total(reply: &Value) -> u64 {
    reply["results"]["pagination"]["total"]
        .as_u64()
        .unwrap_or(0)
}

async fn the_phones_history_fills_the_chats_after_pairing() {
    let (fake, server, _dir) = paired().await;
    // In chunks of 12 messages: three chunks, Ann's chat spread over all of them.
    let options = HistoryOptions {
        messages_per_chunk: 12,
        ..HistoryOptions::default()
    };
    let pushed = fake
        .push_history_with(PHONE_USER, &history(), options)
        .await
        .unwrap();
    assert_eq!(pushed.chunks.len(), 3);

    let ann = format!("/chat/{ANN}/messages?limit=100");
    let listed = server
        .wait_reply(&ann, None, "Ann's 30 messages from the history", |r| {
            total(r) == 30
        })
        .await;
    let data = listed["results"]["data"].as_array().unwrap();
    let newest = &data[0];
    assert_eq!(newest["id"], "ANN29");
    assert_eq!(newest["content"], "ann 29");
    assert_eq!(newest["is_from_me"], false);
    let own = data.iter().find(|m| m["id"] == "ANN27").unwrap();
    assert_eq!(own["is_from_me"], true);

    let group = format!("/chat/{GROUP}/messages");
    let listed = server
        .wait_reply(&group, None, "the group's history", |r| total(r) == 2)
        .await;
    let from_bob = listed["results"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "GRP01")
        .unwrap()
        .clone();
    assert_eq!(from_bob["sender_jid"], BOB, "{from_bob}");

    let chats = server.get("/chats").await;
    let names: Vec<(String, String)> = chats.body["results"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["jid"].as_str().unwrap_or_default().to_owned(),
                c["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        names.contains(&(GROUP.to_owned(), "Old friends".to_owned()))
            && names.contains(&(ANN.to_owned(), "Ann Smith".to_owned())),
        "{names:?}"
    );
    // The group's latest message is newer than Ann's: it is listed first.
    assert_eq!(names[0].0, GROUP, "{names:?}");

    // Each chunk fetched once; pushed again (a phone may resend), nothing doubles.
    for chunk in &pushed.chunks {
        assert_eq!(
            fake.downloads(&chunk.direct_path),
            1,
            "{}",
            chunk.direct_path
        );
    }
    let again = fake.push_history(PHONE_USER, &history()).await.unwrap();
    let path = &again.chunks[0].direct_path;
    crate::harness::wait_for(
        "the resent chunk to be fetched",
        std::time::Duration::from_secs(20),
        || fake.downloads(path) == 1,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(total(&server.get(&ann).await.body), 30);
    assert!(fake.problems().is_empty(), "{:?}", fake.problems());
}

crate::on_both_stores!(the_phones_history_fills_the_chats_after_pairing,);
