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
    let store = server.store_path();
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

#[tokio::test]
async fn logs_have_no_colour_codes_in_a_file_and_can_be_json_lines() {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&fake, dir.path()).await;
    server.pair(&fake).await;
    let text = server.log();
    assert!(text.contains("connected to WhatsApp"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "ANSI escapes in a log file:\n{text}"
    );
    drop(server);

    let fake = FakeWhatsApp::start_local().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&fake, dir.path(), &["--log-format", "json"]).await;
    server.pair(&fake).await;
    let log = server.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 5, "{log}");
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string())
    );
    let request = lines
        .iter()
        .find(|l| l["fields"]["message"] == "request")
        .expect("a request line");
    assert!(request["fields"]["status"].is_number(), "{request}");
    assert!(request["fields"]["path"].is_string(), "{request}");
    assert!(request["fields"]["method"].is_string(), "{request}");
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "connected to WhatsApp")
    );
}

#[tokio::test]
async fn pairing_by_code_logs_in() {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&fake, dir.path()).await;

    // WhatsApp refuses a code for a number that is not the phone's.
    let other = server.get("/app/login-with-code?phone=15559990000").await;
    assert_eq!(other.status, 400, "{}", other.body);
    assert!(other.message().contains("refused"), "{}", other.body);

    let phone = format!("+{}", fake_whatsapp::PHONE_USER);
    let res = server
        .get(&format!(
            "/app/login-with-code?phone={}",
            phone.replace('+', "%2B")
        ))
        .await;
    assert_eq!(res.status, 200, "{}\n{}", res.body, server.log());
    assert_eq!(res.message(), "Login with code success");
    let code = res.body["results"]["pair_code"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(code.len(), 9, "{code}");
    assert_eq!(&code[4..5], "-", "{code}");
    let pending = fake.pair_codes();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].phone, fake_whatsapp::PHONE_USER);

    // A mistyped code links nothing; the right one links this server.
    let mistyped = if code.starts_with('A') {
        "BBBB-BBBB"
    } else {
        "AAAA-AAAA"
    };
    assert!(fake.enter_code(mistyped).await.is_err());
    assert!(fake.devices().is_empty());
    let device = fake
        .enter_code(&code)
        .await
        .unwrap_or_else(|e| panic!("the phone could not pair: {e:#}\n{}", server.log()));

    let status = server.wait_connected().await;
    assert_eq!(status["is_logged_in"], true);
    assert_eq!(status["device_id"].as_str(), Some(device.jid.as_str()));
    let again = server.get("/app/login-with-code?phone=15550001234").await;
    assert_eq!(again.message(), "you already logged in :)");
    assert_eq!(fake.problems(), Vec::<String>::new());
}

#[tokio::test]
async fn the_health_command_asks_the_running_server() {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&fake, dir.path()).await;
    assert!(server.health_command(), "logged out is still healthy");
    server.terminate().await;
    assert!(!server.health_command(), "a stopped server is not");
}
