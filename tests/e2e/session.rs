//! Pairing, login, restart, logout.

use fake_whatsapp::FakeWhatsApp;

use crate::harness::Server;

#[tokio::test]
async fn pairing_by_qr_logs_in_and_survives_a_restart() {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&fake, dir.path()).await;

    let device = server.pair(&fake).await;
    let status = server.status().await;
    assert_eq!(status["is_logged_in"], true);
    assert_eq!(status["device_id"].as_str(), Some(device.jid.as_str()));
    let again = server.get("/app/login").await;
    assert_eq!(again.status, 500, "{}", again.body);
    assert_eq!(again.message(), "you already logged in :)");

    // A kill -9 and a new process: the stored session logs in again, with IK, no QR.
    server.kill_and_restart().await;
    server.wait_connected().await;
    let logins = fake.logins();
    let last = logins.last().unwrap();
    assert_eq!(last.device.as_deref(), Some(device.jid.as_str()));
    assert_eq!(last.pattern, "Ik", "{logins:?}");
    assert_eq!(fake.devices().len(), 1, "no second pairing");
}

#[tokio::test]
async fn logout_removes_the_device_at_whatsapp_and_the_store() {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&fake, dir.path()).await;
    server.pair(&fake).await;

    let res = server.get("/app/logout").await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.message(), "Success logout");
    assert!(fake.devices()[0].removed, "the fake saw the removal");
    let store = server.db_path();
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", store.display());
        assert!(!std::path::Path::new(&path).exists(), "{path} is left");
    }
    let status = server.status().await;
    assert_eq!(status["is_logged_in"], false);

    // A new pairing works.
    let device = server.pair(&fake).await;
    assert_eq!(device.id, 2);
}
