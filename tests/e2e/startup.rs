//! A server that cannot start says why in one log line and exits with status 1, in
//! the log's format, without a backtrace even when RUST_BACKTRACE asks for one; and
//! two servers never share a storage folder. (That a killed server's folder is free
//! again is what every `kill_and_restart` test relies on.)

use std::process::Stdio;
use std::time::Duration;

use fake_whatsapp::FakeWhatsApp;
use tokio::process::Command;

use crate::harness::Server;

const BINARY: &str = env!("CARGO_BIN_EXE_whatsapp-api");

/// Flags of a server that stops before it connects: loopback, any port, a
/// WhatsApp URL nothing answers.
pub const OFFLINE: [&str; 6] = [
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--whatsapp-ws-url",
    "ws://127.0.0.1:9/ws/chat",
];

/// Runs the binary with `args` in a fresh directory; (exit code, stderr).
async fn run(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    run_on(args, &dir.path().join("whatsapp.db")).await
}

/// Runs the binary with `args` and the store at `db`; (exit code, stderr).
pub async fn run_on(args: &[&str], db: &std::path::Path) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut all: Vec<&str> = args.to_vec();
    let (db, temp) = (db.to_str().unwrap(), dir.path().to_str().unwrap());
    all.extend(["--db-path", db, "--temp-dir", temp]);
    run_in(dir.path(), &all, &[("RUST_BACKTRACE", "1")]).await
}

/// Runs the binary in `cwd` with `args` and extra environment (no `RUST_LOG`,
/// nothing of the caller's `WHATSAPP_ACK_TIMEOUT`); (exit code, stderr).
pub async fn run_in(
    cwd: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, String) {
    let child = Command::new(BINARY)
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .env_remove("WHATSAPP_ACK_TIMEOUT")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the server gave up within 30 s")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_port_in_use_is_one_error_line_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let storage = tempfile::tempdir().unwrap();
    let (code, stderr) = run_on(
        &[
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--whatsapp-ws-url",
            "ws://127.0.0.1:9/ws/chat",
        ],
        &storage.path().join("whatsapp.db"),
    )
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(
        errors[0].to_lowercase().contains("in use"),
        "the cause is kept: {stderr}"
    );
    assert!(!stderr.contains("backtrace"), "{stderr}");
    // It stopped before taking the storage folder, opening a store or connecting.
    let left: Vec<_> = std::fs::read_dir(storage.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(!stderr.contains("no stored WhatsApp session"), "{stderr}");
}

#[tokio::test]
async fn a_refused_configuration_is_a_json_line_with_log_format_json() {
    // A test build refuses to start without a fake WhatsApp server's URL.
    let (code, stderr) = run(&["--port", "0", "--log-format", "json"]).await;
    assert_eq!(code, Some(1), "{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let error = lines
        .iter()
        .find(|l| l["level"] == "ERROR")
        .unwrap_or_else(|| panic!("an error line: {stderr}"));
    let message = error["fields"]["message"].as_str().unwrap();
    assert!(message.contains("this is a test build"), "{message}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
}

#[tokio::test]
async fn a_second_server_on_the_same_storage_stops_before_connecting() {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start(&fake, dir.path()).await;
    first.pair(&fake).await;
    let logins = fake.logins().len();

    let (code, stderr) = run_on(
        &[
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--whatsapp-ws-url",
            &fake.ws_url(),
        ],
        &first.db_path(),
    )
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("another server is running"), "{stderr}");
    assert!(errors[0].contains("--db-path"), "{stderr}");

    // The first server kept its session: nobody else logged in as its device.
    assert_eq!(fake.logins().len(), logins);
    let status = first.status().await;
    assert_eq!(status["is_connected"], true, "{status}");
    assert_eq!(status["state"], "connected", "{status}");
}

#[tokio::test]
async fn a_storage_folder_this_user_cannot_write_is_one_line_saying_how_to_fix_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let storages = dir.path().join("storages");
    std::fs::create_dir(&storages).unwrap();
    let db = storages.join("whatsapp.db");
    let mut args = OFFLINE.to_vec();
    args.extend(["--temp-dir", "/tmp", "--db-path", db.to_str().unwrap()]);
    let out = if nix::unistd::getuid().is_root() {
        // As a Go image's volume meets this image: a folder of another user. The
        // binary is copied where that user can run it.
        std::fs::set_permissions(&storages, std::fs::Permissions::from_mode(0o755)).unwrap();
        let binary = dir.path().join("whatsapp-api");
        std::fs::copy(BINARY, &binary).unwrap();
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&binary)
            .args(&args)
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .output()
            .await
            .expect("setpriv (util-linux) runs")
    } else {
        // Not root: a folder of this user's that it may not write.
        std::fs::set_permissions(&storages, std::fs::Permissions::from_mode(0o555)).unwrap();
        Command::new(BINARY)
            .args(&args)
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .output()
            .await
            .unwrap()
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("cannot write in the storage folder"),
        "{stderr}"
    );
    if nix::unistd::getuid().is_root() {
        assert!(errors[0].contains("chown -R 65534"), "{stderr}");
    }
    assert_eq!(
        std::fs::read_dir(&storages).unwrap().count(),
        0,
        "nothing written"
    );
}
