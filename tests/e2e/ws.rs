//! `/ws` with the real client: a socket hears the phone pair and unlink.

use fake_whatsapp::FakeWhatsApp;

use crate::common::{ws_connect, ws_frame, ws_send};
use crate::harness::Server;

#[tokio::test]
async fn a_socket_hears_the_phone_pair_and_unlink_the_device() {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&fake, dir.path(), &["--api-compat", "v9"]).await;
    let mut socket = ws_connect(&server.base, "/ws", &[]).await.unwrap();

    let device = server.pair(&fake).await;
    let frame = ws_frame(&mut socket).await.unwrap();
    assert_eq!(frame["code"], "LOGIN_SUCCESS", "{frame}");
    assert_eq!(
        frame["message"],
        format!("Successfully pair with {}", device.jid).as_str()
    );
    assert_eq!(frame["result"], serde_json::Value::Null);
    let account = frame["device_id"].as_str().unwrap().to_owned();
    assert!(!account.is_empty());

    ws_send(&mut socket, r#"{"code":"FETCH_DEVICES"}"#).await;
    let listed = ws_frame(&mut socket).await.unwrap();
    assert_eq!(listed["code"], "LIST_DEVICES");
    assert_eq!(
        listed["result"],
        serde_json::json!([{
            "name": fake.phone_jid().split('@').next().unwrap(),
            "device": account,
            "jid": fake.phone_jid(),
        }])
    );

    assert!(fake.unlink_device() >= 1);
    let frame = ws_frame(&mut socket).await.unwrap();
    assert_eq!(frame["code"], "DEVICE_LOGGED_OUT", "{frame}");
    assert_eq!(frame["message"], "Device logged out (slot kept)");
    assert_eq!(frame["result"]["device_id"], account.as_str());
    assert_eq!(frame["device_id"], account.as_str());
}
