//! The fake's admin API, as README's sandbox uses it with curl.

use fake_whatsapp::FakeWhatsApp;
use serde_json::{Value, json};

use crate::harness::Server;

async fn admin_post(fake: &FakeWhatsApp, path: &str, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/admin/{path}", fake.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn admin_get(fake: &FakeWhatsApp, path: &str) -> Value {
    reqwest::get(format!("{}/admin/{path}", fake.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_sandbox_flow_works_over_the_admin_api() {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    let (status, _) = admin_post(
        &fake,
        "contacts",
        json!({"user": "6289685028129", "status": "hi"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = admin_post(&fake, "contacts", json!({"user": "+62 896"})).await;
    assert_eq!(status, 400, "{body}");

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&fake, dir.path()).await;
    let qr = server.login_qr().await;
    let (status, body) = admin_post(&fake, "scan", json!({"qr": "2@nope,AAAA,AAAA,AAAA"})).await;
    assert_eq!(status, 400, "{body}");
    let (status, device) = admin_post(&fake, "scan", json!({"qr": qr})).await;
    assert_eq!(status, 200, "{device}");
    assert_eq!(device["jid"], "15550001234:1@s.whatsapp.net");
    server.wait_connected().await;

    let reply = server
        .post_form(
            "/send/message",
            &[("phone", "6289685028129"), ("message", "from the sandbox")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let messages = admin_get(&fake, "messages").await;
    let to_friend = messages
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["recipient"] == "6289685028129")
        .unwrap_or_else(|| panic!("{messages}"));
    assert_eq!(to_friend["kind"], "text");
    assert_eq!(to_friend["text"], "from the sandbox");
    assert!(to_friend["ack_t"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(admin_get(&fake, "problems").await, json!([]));

    let (status, dropped) = admin_post(&fake, "drop", json!({})).await;
    assert_eq!(status, 200);
    assert!(dropped["dropped"].as_u64().unwrap() >= 1, "{dropped}");
}
