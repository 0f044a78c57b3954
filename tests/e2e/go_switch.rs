//! Switching from the Go server in place: a Go volume (a whatsmeow session file in
//! whatsmeow's own v15 schema) starts this server logged in, without a QR code,
//! and the Go file stays byte for byte what it was. Bad Go files stop startup with
//! one error line and are left alone.
//!
//! The Go file is written from a device paired with the fake: its keys, prekeys,
//! peer identities and Signal sessions, the sessions as go.mau.fi/libsignal's JSON.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use rusqlite::Connection;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use whatsapp_rust::wacore::libsignal::protocol::{
    PreKeyRecord, SessionChainComponents, SessionComponents, SessionMessageKeyMaterial,
    SessionRecord,
};

use fake_whatsapp::FakeWhatsApp;

use crate::harness::Server;
use crate::send::{FRIEND, delivered, paired};
use crate::startup::run_in;

const WHATSMEOW_V15: &str = include_str!("fixtures/whatsmeow-v15.sql");

fn b64(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn b64_opt(bytes: &Option<Vec<u8>>) -> Value {
    bytes.as_deref().map(b64).unwrap_or(Value::Null)
}

/// whatsapp-rust's Signal address (`user[:device]@server.0`) as whatsmeow's
/// (`user[_agent]:device`).
fn go_address(address: &str) -> String {
    let name = address.strip_suffix(".0").expect("a device-0 address");
    let (user_device, server) = name.split_once('@').unwrap();
    let (user, device) = user_device.split_once(':').unwrap_or((user_device, "0"));
    match server {
        "c.us" | "s.whatsapp.net" => format!("{user}:{device}"),
        "lid" => format!("{user}_1:{device}"),
        other => panic!("no Go agent for {other}"),
    }
}

fn go_chain(chain: &SessionChainComponents) -> Value {
    let keys: Vec<Value> = chain
        .message_keys
        .iter()
        .map(|k| match &k.material {
            SessionMessageKeyMaterial::Derived {
                cipher_key,
                mac_key,
                iv,
            } => json!({"CipherKey": b64(cipher_key), "MacKey": b64(mac_key), "IV": b64(iv), "Index": k.index}),
            other => panic!("a message key whatsmeow cannot hold: {other:?}"),
        })
        .collect();
    json!({
        "SenderRatchetKeyPublic": b64_opt(&chain.sender_ratchet_key),
        "SenderRatchetKeyPrivate": b64_opt(&chain.sender_ratchet_key_private),
        "ChainKey": chain.chain_key.as_ref().map(|c| json!({"Key": b64_opt(&c.key), "Index": c.index.unwrap_or(0)})),
        "MessageKeys": keys,
    })
}

fn go_state(state: &SessionComponents) -> Value {
    json!({
        "LocalIdentityPublic": b64_opt(&state.local_identity_public),
        "LocalRegistrationID": state.local_registration_id.unwrap_or(0),
        "NeedsRefresh": state.needs_refresh.unwrap_or(false),
        "PendingKeyExchange": null,
        "PendingPreKey": state.pending_pre_key.as_ref().map(|p| json!({
            "PreKeyID": match p.pre_key_id {
                Some(id) => json!({"Value": id, "IsEmpty": false}),
                None => json!({"Value": 0, "IsEmpty": true}),
            },
            "SignedPreKeyID": p.signed_pre_key_id.unwrap_or(0),
            "BaseKey": b64_opt(&p.base_key),
        })),
        "PreviousCounter": state.previous_counter.unwrap_or(0),
        "ReceiverChains": state.receiver_chains.iter().map(go_chain).collect::<Vec<_>>(),
        "RemoteIdentityPublic": b64_opt(&state.remote_identity_public),
        "RemoteRegistrationID": state.remote_registration_id.unwrap_or(0),
        "RootKey": b64_opt(&state.root_key),
        "SenderBaseKey": b64_opt(&state.alice_base_key),
        "SenderChain": state.sender_chain.as_ref().map(go_chain),
        "SessionVersion": state.session_version.unwrap_or(3),
    })
}

/// A whatsapp-rust session record as go.mau.fi/libsignal's JSON.
fn go_session_json(record: &[u8]) -> Vec<u8> {
    let components = SessionRecord::deserialize(record)
        .unwrap()
        .into_components()
        .unwrap();
    let value = json!({
        "SessionState": components.current_session.as_ref().map(go_state),
        "PreviousStates": components.previous_sessions.iter().map(go_state).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&value).unwrap()
}

/// Writes the device in this server's store at `store` as the Go server would have
/// it: a whatsmeow v15 file at `go`, in WAL mode, left as a stopped Go server leaves
/// it (it never closes the file): everything still in `whatsapp.db-wal`.
fn write_go_session(store: &Path, go: &Path) {
    std::fs::create_dir_all(go.parent().unwrap()).unwrap();
    let ours = Connection::open(store).unwrap();
    let out = Connection::open(go).unwrap();
    out.execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;")
        .unwrap();
    out.execute_batch(WHATSMEOW_V15).unwrap();
    out.execute_batch(
        "CREATE TABLE whatsmeow_version (version INTEGER, compat INTEGER);
         INSERT INTO whatsmeow_version VALUES (15, 8);",
    )
    .unwrap();
    // The device row: whatsapp-rust keeps key pairs as private ‖ public, whatsmeow
    // only the private half; the registration id is a bit-cast u32 here.
    out.execute("ATTACH DATABASE ?1 AS ours", [store.to_str().unwrap()])
        .unwrap();
    out.execute_batch(
        "INSERT INTO whatsmeow_device (jid, lid, registration_id, noise_key, identity_key, \
         signed_pre_key, signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details, \
         adv_account_sig, adv_account_sig_key, adv_device_sig, push_name) \
         SELECT pn, NULLIF(lid, ''), registration_id & 4294967295, substr(noise_key, 1, 32), \
         substr(identity_key, 1, 32), substr(signed_pre_key, 1, 32), signed_pre_key_id, \
         signed_pre_key_signature, adv_secret_key, x'', zeroblob(64), zeroblob(32), \
         zeroblob(64), push_name FROM ours.device; \
         DETACH DATABASE ours;",
    )
    .unwrap();
    // The ADV identity: one protobuf here, four columns there.
    let account: Vec<u8> = ours
        .query_row("SELECT account FROM device", [], |r| r.get(0))
        .unwrap();
    let account =
        whatsapp_rust::wacore::store::device::account_serde::from_bytes(&account).unwrap();
    out.execute(
        "UPDATE whatsmeow_device SET adv_details = ?1, adv_account_sig = ?2, \
         adv_account_sig_key = ?3, adv_device_sig = ?4",
        rusqlite::params![
            account.details.unwrap(),
            account.account_signature.unwrap(),
            account.account_signature_key.unwrap(),
            account.device_signature.unwrap(),
        ],
    )
    .unwrap();
    let pn: String = out
        .query_row("SELECT jid FROM whatsmeow_device", [], |r| r.get(0))
        .unwrap();
    let mut prekeys = ours
        .prepare("SELECT id, key, uploaded FROM prekeys")
        .unwrap();
    let rows = prekeys
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, bool>(2)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (id, record, uploaded) = row.unwrap();
        let private = PreKeyRecord::deserialize(&record)
            .unwrap()
            .private_key()
            .unwrap()
            .serialize()
            .to_vec();
        out.execute(
            "INSERT INTO whatsmeow_pre_keys (jid, key_id, key, uploaded) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![pn, id, private, uploaded],
        )
        .unwrap();
    }
    let mut identities = ours.prepare("SELECT address, key FROM identities").unwrap();
    for row in identities
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .unwrap()
    {
        let (address, key) = row.unwrap();
        out.execute(
            "INSERT INTO whatsmeow_identity_keys (our_jid, their_id, identity) VALUES (?1, ?2, ?3)",
            rusqlite::params![pn, go_address(&address), key],
        )
        .unwrap();
    }
    let mut sessions = ours
        .prepare("SELECT address, record FROM sessions")
        .unwrap();
    for row in sessions
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .unwrap()
    {
        let (address, record) = row.unwrap();
        out.execute(
            "INSERT INTO whatsmeow_sessions (our_jid, their_id, session) VALUES (?1, ?2, ?3)",
            rusqlite::params![pn, go_address(&address), go_session_json(&record)],
        )
        .unwrap();
    }
    // A contact the phone synced to the Go server.
    out.execute(
        "INSERT INTO whatsmeow_contacts (our_jid, their_jid, first_name, full_name, push_name) \
         VALUES (?1, ?2, 'Friend', 'Friend From Go', 'friend')",
        rusqlite::params![pn, format!("{FRIEND}@s.whatsapp.net")],
    )
    .unwrap();
    leave_unclosed(go, out);
}

/// Closes `conn` on `path` as a killed process would: the file and its log as
/// they are now, with no checkpoint and no `-shm`.
fn leave_unclosed(path: &Path, conn: Connection) {
    let wal = format!("{}-wal", path.display());
    let kept = |p: &str| format!("{p}.kept");
    std::fs::copy(path, kept(path.to_str().unwrap())).unwrap();
    std::fs::copy(&wal, kept(&wal)).unwrap();
    drop(conn);
    std::fs::rename(kept(path.to_str().unwrap()), path).unwrap();
    std::fs::rename(kept(&wal), &wal).unwrap();
    let _ = std::fs::remove_file(format!("{}-shm", path.display()));
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
}

fn sha256(path: &Path) -> Vec<u8> {
    Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

/// Waits until the message store holds a message of FRIEND's chat with `text`.
async fn stored(server: &Server, text: &str) {
    let chat = format!("{FRIEND}@s.whatsapp.net");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let reply = server.get(&format!("/chat/{chat}/messages?limit=20")).await;
        if reply.body.to_string().contains(text) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{text:?} never reached the store: {}\n{}",
            reply.body,
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn send(server: &Server, text: &str) -> crate::harness::Reply {
    server
        .post_form("/send/message", &[("phone", FRIEND), ("message", text)])
        .await
}

/// A paired server, a conversation with FRIEND (so that both sides hold a Signal
/// session), then the server stopped; the paired device's JID.
async fn talked_then_stopped() -> (FakeWhatsApp, Server, tempfile::TempDir, String) {
    let (fake, mut server, dir) = paired().await;
    fake.deliver(FRIEND, "before the switch").await.unwrap();
    stored(&server, "before the switch").await;
    let reply = send(&server, "answer before the switch").await;
    delivered(&fake, &server, &reply, FRIEND);
    let (_, status) = server.terminate().await;
    assert!(status.success());
    let device = fake.devices()[0].jid.clone();
    (fake, server, dir, device)
}

/// The contact's next message decrypts with the imported session (no retry
/// receipt: the fake would not answer one), and the answer of `go` reaches the
/// contact.
async fn both_sides_decrypt(fake: &FakeWhatsApp, go: &Server) {
    fake.deliver(FRIEND, "after the switch").await.unwrap();
    stored(go, "after the switch").await;
    let sent_before = fake.received().len();
    let reply = send(go, "answer after the switch").await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, go.log());
    let copy = fake.received()[sent_before..]
        .iter()
        .find(|r| r.recipient == FRIEND)
        .cloned()
        .expect("the contact got the answer");
    assert_eq!(
        copy.message.conversation.as_deref(),
        Some("answer after the switch")
    );
    assert!(fake.problems().is_empty(), "{:?}", fake.problems());
}

#[tokio::test]
async fn a_go_session_file_logs_in_without_a_qr_and_both_sides_decrypt() {
    let (fake, server, _dir, device) = talked_then_stopped().await;

    // The Go server's volume: only its session file.
    let go_dir = tempfile::tempdir().unwrap();
    let go_file = go_dir.path().join("storages/whatsapp.db");
    let go_wal = go_dir.path().join("storages/whatsapp.db-wal");
    write_go_session(&server.store_path(), &go_file);
    let before = (sha256(&go_file), sha256(&go_wal));
    let logins = fake.logins().len();

    let mut go = Server::start(&fake, go_dir.path()).await;
    let status = go.wait_connected().await;
    assert_eq!(status["is_logged_in"], true, "{status}");
    assert_eq!(fake.devices().len(), 1, "no new device was paired");
    assert!(fake.logins().len() > logins, "it logged in as the device");
    let imports: Vec<String> = go
        .log()
        .lines()
        .filter(|l| l.contains("imported the Go server's WhatsApp session"))
        .map(str::to_owned)
        .collect();
    assert_eq!(imports.len(), 1, "{}", go.log());
    assert!(
        imports[0].contains(&device),
        "the JID is logged: {}",
        imports[0]
    );

    both_sides_decrypt(&fake, &go).await;

    // The Go file and its log are unchanged, nothing was made beside them, and a
    // restart does not import again.
    assert_eq!((sha256(&go_file), sha256(&go_wal)), before);
    assert!(!go_dir.path().join("storages/whatsapp.db-shm").exists());
    let leftovers: Vec<_> = std::fs::read_dir(go_dir.path().join("storages"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".go-snapshot") || n.ends_with(".importing"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    go.terminate().await;
    go.restart().await;
    go.wait_connected().await;
    let imports = go
        .log()
        .matches("imported the Go server's WhatsApp session")
        .count();
    assert_eq!(imports, 1, "{}", go.log());
    assert_eq!((sha256(&go_file), sha256(&go_wal)), before);
    fake.deliver(FRIEND, "after the restart").await.unwrap();
    stored(&go, "after the restart").await;
    assert!(!go.log().contains("has used this device since"));

    // Back to the Go server for a while (it writes its file), then here again:
    // this server keeps its own session and says the two have diverged.
    go.terminate().await;
    Connection::open(&go_file)
        .unwrap()
        .execute("UPDATE whatsmeow_device SET push_name = 'went back'", [])
        .unwrap();
    go.restart().await;
    go.wait_connected().await;
    assert!(
        go.log()
            .contains("the Go server has used this device since"),
        "{}",
        go.log()
    );
    assert_eq!(
        go.log()
            .matches("imported the Go server's WhatsApp session")
            .count(),
        1
    );

    // A Go server running on the same folder is said, and this server, with its
    // own session, still starts.
    go.terminate().await;
    let holder = Connection::open(&go_file).unwrap();
    let _: i64 = holder
        .query_row("SELECT count(*) FROM whatsmeow_device", [], |r| r.get(0))
        .unwrap();
    go.restart().await;
    go.wait_connected().await;
    assert!(go.log().contains("open in another program"), "{}", go.log());
    drop(holder);
}

/// Runs the binary on `go_file` as the session path; (exit code, stderr).
async fn start_on(go_file: &Path) -> (Option<i32>, String) {
    crate::startup::run_on(&crate::startup::OFFLINE, go_file).await
}

fn whatsmeow_file(path: &Path, version: i64, device: bool) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(WHATSMEOW_V15).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE whatsmeow_version (version INTEGER, compat INTEGER);
         INSERT INTO whatsmeow_version VALUES ({version}, 8);"
    ))
    .unwrap();
    if device {
        let k = |b: u8| vec![b; 32];
        conn.execute(
            "INSERT INTO whatsmeow_device (jid, registration_id, noise_key, identity_key, \
             signed_pre_key, signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details, \
             adv_account_sig, adv_account_sig_key, adv_device_sig) \
             VALUES ('6281:7@s.whatsapp.net', 1, ?1, ?2, ?3, 1, ?4, ?5, x'00', ?4, ?6, ?4)",
            rusqlite::params![k(1), k(2), k(3), vec![4u8; 64], k(5), k(6)],
        )
        .unwrap();
        // Pages of prekeys, so that cutting the file loses real content.
        for id in 1..400 {
            conn.execute(
                "INSERT INTO whatsmeow_pre_keys (jid, key_id, key, uploaded) \
                 VALUES ('6281:7@s.whatsapp.net', ?1, ?2, true)",
                rusqlite::params![id, k(id as u8)],
            )
            .unwrap();
        }
    }
}

#[tokio::test]
async fn bad_go_files_stop_startup_with_one_line_and_stay_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    type Make = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Make, &str)> = vec![
        (
            "truncated",
            Box::new(|p: &Path| {
                whatsmeow_file(p, 15, true);
                let bytes = std::fs::read(p).unwrap();
                std::fs::write(p, &bytes[..bytes.len() / 2]).unwrap();
            }),
            "damaged or half-written",
        ),
        (
            "unknown version",
            Box::new(|p: &Path| whatsmeow_file(p, 99, true)),
            "schema version 99",
        ),
        (
            "another program's",
            Box::new(|p: &Path| {
                let conn = Connection::open(p).unwrap();
                conn.execute_batch("CREATE TABLE invoices (id INTEGER, total REAL);")
                    .unwrap();
            }),
            "another program (tables: invoices)",
        ),
        (
            "not a database",
            Box::new(|p: &Path| std::fs::write(p, b"my notes").unwrap()),
            "not an SQLite database",
        ),
    ];
    // A Go server still running: it holds the file open (here: this test does).
    let running = dir.path().join("running");
    std::fs::create_dir_all(&running).unwrap();
    let live = running.join("whatsapp.db");
    whatsmeow_file(&live, 15, true);
    let holder = Connection::open(&live).unwrap();
    holder
        .execute_batch("PRAGMA journal_mode = WAL; UPDATE whatsmeow_device SET push_name = 'x';")
        .unwrap();
    let (code, stderr) = start_on(&live).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("still running"), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.contains("ERROR")).count(),
        1,
        "{stderr}"
    );
    drop(holder);
    for (name, make, expected) in cases {
        let case = dir.path().join(name.replace(' ', "-"));
        std::fs::create_dir_all(&case).unwrap();
        let file = case.join("whatsapp.db");
        make(&file);
        let before = sha256(&file);
        let (code, stderr) = start_on(&file).await;
        assert_eq!(code, Some(1), "{name}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
        assert_eq!(errors.len(), 1, "{name}: {stderr}");
        assert!(errors[0].contains(expected), "{name}: {stderr}");
        assert!(errors[0].contains("left untouched"), "{name}: {stderr}");
        assert_eq!(sha256(&file), before, "{name}: the file changed");
        assert!(
            !case.join("whatsapp-rust.db").exists(),
            "{name}: no store of ours was made"
        );
    }
}

#[tokio::test]
async fn a_go_file_without_a_device_is_left_alone_and_the_server_pairs_anew() {
    let fake = fake_whatsapp::FakeWhatsApp::start_local().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let go_file = dir.path().join("storages/whatsapp.db");
    std::fs::create_dir_all(go_file.parent().unwrap()).unwrap();
    // What a Go server that never paired (or was logged out) leaves.
    whatsmeow_file(&go_file, 15, false);
    let before = sha256(&go_file);
    let server = Server::start(&fake, dir.path()).await;
    assert!(
        server
            .log()
            .contains("holds no paired device: nothing to import"),
        "{}",
        server.log()
    );
    assert_eq!(server.status().await["is_logged_in"], false);
    server.pair(&fake).await;
    assert_eq!(sha256(&go_file), before);
}

#[tokio::test]
async fn a_foreign_file_where_our_store_goes_stops_startup() {
    for name in ["whatsapp-rust.db", "chat.db", "outbox.db", "server.lock"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, b"someone else's file").unwrap();
        let (code, stderr) = start_on(&dir.path().join("whatsapp.db")).await;
        assert_eq!(code, Some(1), "{name}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
        assert_eq!(errors.len(), 1, "{name}: {stderr}");
        assert!(errors[0].contains(name), "{name}: {stderr}");
        assert_eq!(std::fs::read(&path).unwrap(), b"someone else's file");
    }
}

#[tokio::test]
async fn a_store_of_the_one_file_layout_moves_to_its_own_name_and_stays_paired() {
    let (fake, mut server, _dir) = paired().await;
    server.terminate().await;
    // The layout before this version: the session at --db-path itself.
    std::fs::rename(server.store_path(), server.db_path()).unwrap();
    for suffix in ["-wal", "-shm"] {
        let from = format!("{}{suffix}", server.store_path().display());
        if Path::new(&from).exists() {
            std::fs::rename(&from, format!("{}{suffix}", server.db_path().display())).unwrap();
        }
    }
    let logins = fake.logins().len();
    server.restart().await;
    server.wait_connected().await;
    assert!(
        server
            .log()
            .contains("moved this server's WhatsApp session")
    );
    assert!(
        !server.db_path().exists(),
        "the old name is free for the Go server"
    );
    assert!(server.store_path().exists());
    assert_eq!(fake.devices().len(), 1);
    assert!(fake.logins().len() > logins);
}

#[tokio::test]
async fn dot_env_is_read_and_the_environment_and_flags_win_over_it() {
    let dir = tempfile::tempdir().unwrap();
    // A setting whose value shows in the error it causes (and stops at once).
    std::fs::write(
        dir.path().join(".env"),
        "# Go's .env\nWHATSAPP_ACK_TIMEOUT=700\nAPP_UI_ENABLED=true\n",
    )
    .unwrap();
    let base = ["--whatsapp-ws-url", "ws://127.0.0.1:9/ws/chat"];
    let (code, stderr) = run_in(dir.path(), &base, &[]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("--ack-timeout-secs (700)"), "{stderr}");
    let (_, stderr) = run_in(dir.path(), &base, &[("WHATSAPP_ACK_TIMEOUT", "800")]).await;
    assert!(
        stderr.contains("--ack-timeout-secs (800)"),
        "env over .env: {stderr}"
    );
    let mut args = base.to_vec();
    args.extend(["--ack-timeout-secs", "900"]);
    let (_, stderr) = run_in(dir.path(), &args, &[("WHATSAPP_ACK_TIMEOUT", "800")]).await;
    assert!(
        stderr.contains("--ack-timeout-secs (900)"),
        "flag over env: {stderr}"
    );
    // A .env that cannot be parsed is one clear line, not a silent default.
    std::fs::write(dir.path().join(".env"), "APP_PORT='3000\n").unwrap();
    let (code, stderr) = run_in(dir.path(), &base, &[]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains(".env"), "{stderr}");
}

#[tokio::test]
async fn a_go_command_line_starts_the_server_under_its_base_path() {
    let fake = fake_whatsapp::FakeWhatsApp::start_local().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let uri = format!(
        "--db-uri=file:{}?_foreign_keys=on",
        dir.path().join("storages/whatsapp.db").display()
    );
    let server = Server::start_with(
        &fake,
        dir.path(),
        &[
            "--os=Chrome",
            &uri,
            "--base-path=/gowa",
            "--account-validation=false",
            "--auto-mark-read",
            "--chatwoot-enabled=false",
        ],
    )
    .await;
    let log = server.log();
    let warning = log
        .lines()
        .find(|l| l.contains("no effect here"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(warning.contains("--chatwoot-enabled"), "{warning}");
    for working in ["--auto-mark-read", "--account-validation"] {
        assert!(
            !warning.contains(working),
            "{working} has an effect: {warning}"
        );
    }

    assert_eq!(server.get("/gowa/app/status").await.status, 200);
    assert_eq!(
        server.get("/gowa/app/info").await.body["results"]["base_path"],
        "/gowa"
    );
    // The cross-site check sees the route under its prefix: a page elsewhere cannot
    // log the device out through /gowa/app/logout.
    let cross_site = server
        .http
        .get(format!("{}/gowa/app/logout", server.base))
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status().as_u16(), 403);
    assert_eq!(server.get("/app/status").await.status, 404);
    let health = server
        .http
        .get(format!("{}/health", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "OK");
    // The dashboard is at /gowa/ (the slash keeps its relative links inside the
    // prefix) and its assets load from there.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = no_redirect
        .get(format!("{}/gowa", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 308);
    assert_eq!(res.headers()["location"], "/gowa/");
    let page = no_redirect
        .get(format!("{}/gowa/", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let script = page
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page loads a script");
    assert!(script.starts_with("assets/"), "a relative link: {script}");
    let js = no_redirect
        .get(format!("{}/gowa/{script}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status().as_u16(), 200);
    // The QR image: linked and served under the prefix.
    let login = server.get("/gowa/app/login").await;
    let link = login.body["results"]["qr_link"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        link.starts_with(&format!("{}/gowa/statics/", server.base)),
        "{link}"
    );
    let png = server.http.get(&link).send().await.unwrap();
    assert_eq!(png.status().as_u16(), 200);
    assert_eq!(&png.bytes().await.unwrap()[..4], b"\x89PNG");
    // Paired with --os, the phone lists the device by that name.
    let qr = crate::common::decode_qr(
        &std::fs::read(
            dir.path()
                .join("statics")
                .join(link.rsplit("/statics/").next().unwrap()),
        )
        .unwrap(),
    );
    let device = fake.scan(&qr).await.unwrap();
    assert_eq!(device.name, "Chrome", "the phone lists the device by --os");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server.get("/gowa/app/status").await.body["results"]["is_connected"] != true {
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const GO_CHATS_V9: &str = include_str!("fixtures/go-chatstorage-v9.sql");

#[tokio::test]
async fn a_go_chat_history_shows_in_chats_messages_and_downloads() {
    let (fake, mut server, _dir) = paired().await;
    let device = fake.devices()[0].jid.clone();
    let (user, _) = device.split_once(':').unwrap();
    let account = format!("{user}@s.whatsapp.net");
    let friend = format!("{FRIEND}@s.whatsapp.net");
    server.terminate().await;

    let go_dir = tempfile::tempdir().unwrap();
    write_go_session(
        &server.store_path(),
        &go_dir.path().join("storages/whatsapp.db"),
    );
    // What the Go server saw of a chat with the friend: an edited text, a photo
    // (its media on WhatsApp's servers), our answer with a reaction; and a chat
    // of another account of the same Go server, which is not ours to show.
    let picture = crate::incoming::png();
    let hosted = fake
        .host_media(&picture, fake_whatsapp::MediaType::Image)
        .unwrap();
    let chats = go_dir.path().join("storages/chatstorage.db");
    let conn = Connection::open(&chats).unwrap();
    conn.execute_batch(GO_CHATS_V9).unwrap();
    for version in 1..=43 {
        conn.execute("INSERT INTO schema_info (version) VALUES (?1)", [version])
            .unwrap();
    }
    conn.execute(
        "INSERT INTO chats (jid, device_id, name, last_message_time) VALUES \
         (?1, ?2, 'Friend', '2026-11-30 10:02:00+00:00'), \
         ('6281999@s.whatsapp.net', '6287700@s.whatsapp.net', 'Theirs', '2026-11-30 10:00:00+00:00')",
        rusqlite::params![friend, account],
    )
    .unwrap();
    let text = |id: &str, sender: &str, content: &str, at: &str, from_me: bool| {
        conn.execute(
            "INSERT INTO messages (id, chat_jid, device_id, sender, content, timestamp, \
             is_from_me, media_type, filename, url, file_length) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, '', '', '', 0)",
            rusqlite::params![id, friend, account, sender, content, at, from_me],
        )
        .unwrap();
    };
    text(
        "GOTEXT1",
        &friend,
        "see you at ten",
        "2026-11-30 10:00:00+00:00",
        false,
    );
    text(
        "GOTEXT2",
        &device,
        "on my way",
        "2026-11-30 10:02:00+00:00",
        true,
    );
    conn.execute(
        "INSERT INTO messages (id, chat_jid, device_id, sender, content, timestamp, is_from_me, \
         media_type, filename, url, media_key, file_sha256, file_enc_sha256, file_length, \
         direct_path) VALUES ('GOPIC', ?1, ?2, ?1, 'the view', '2026-11-30 10:01:00+00:00', 0, \
         'image', 'image_20261130.png', ?3, ?4, ?5, ?6, ?7, ?8)",
        rusqlite::params![
            friend,
            account,
            hosted.url,
            hosted.media_key,
            hosted.file_sha256,
            hosted.file_enc_sha256,
            hosted.file_length as i64,
            hosted.direct_path,
        ],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO message_edits (original_message_id, edit_event_id, chat_jid, device_id, \
         editor, previous_content, new_content, edited_at) VALUES \
         ('GOTEXT1', 'EDIT1', ?1, ?2, ?1, 'see you at nine', 'see you at ten', \
         '2026-11-30 10:00:30+00:00')",
        rusqlite::params![friend, account],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO message_reactions (message_id, chat_jid, device_id, reactor_jid, emoji, \
         is_from_me, reaction_timestamp) VALUES ('GOTEXT2', ?1, ?2, ?1, '👍', 0, \
         '2026-11-30 10:03:00+00:00')",
        rusqlite::params![friend, account],
    )
    .unwrap();
    // The Go server's slot for this account (Go v8+), with its own webhook, and
    // another account's.
    conn.execute(
        "INSERT INTO devices (device_id, jid, ad_jid, webhook_url, webhook_secret) VALUES \
         ('org-sales', ?1, ?2, 'https://hooks.example/sales', 'sales-secret'), \
         ('org-other', '6287700@s.whatsapp.net', '6287700:2@s.whatsapp.net', NULL, '')",
        rusqlite::params![account, device],
    )
    .unwrap();
    drop(conn);
    let before = sha256(&chats);

    let go = Server::start(&fake, go_dir.path()).await;
    go.wait_connected().await;
    assert!(
        go.log().contains("imported the Go server's chat history"),
        "{}",
        go.log()
    );
    let listed = go.get("/chats").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let listed = listed.body.to_string();
    assert!(listed.contains(&friend), "{listed}");
    assert!(
        !listed.contains("6281999"),
        "another account's chat: {listed}"
    );

    let messages = go.get(&format!("/chat/{friend}/messages?limit=10")).await;
    assert_eq!(messages.status, 200, "{}", messages.body);
    let data = messages.body["results"]["data"].as_array().unwrap().clone();
    let by_id = |id: &str| {
        data.iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing: {data:?}"))
            .clone()
    };
    assert_eq!(data.len(), 3, "{data:?}");
    let edited = by_id("GOTEXT1");
    assert_eq!(edited["content"], "see you at ten", "the edited text");
    assert_ne!(
        edited["updated_at"], edited["created_at"],
        "marked as edited"
    );
    let answer = by_id("GOTEXT2");
    assert!(answer.to_string().contains("on my way"));
    assert!(
        answer["reactions"].to_string().contains("👍"),
        "the reaction: {answer}"
    );
    assert!(by_id("GOPIC").to_string().contains("the view"));

    let res = go
        .get(&format!("/message/GOPIC/download?phone={FRIEND}"))
        .await;
    assert_eq!(res.status, 200, "{}\n{}", res.body, go.log());
    let url = res.body["results"]["file_url"].as_str().unwrap();
    let served = reqwest::get(url).await.unwrap();
    assert_eq!(served.bytes().await.unwrap().as_ref(), picture.as_slice());
    assert_eq!(sha256(&chats), before, "the Go history is unchanged");

    // Go clients name the account by its Go device id; its webhook came along.
    let devices = go.get("/devices").await;
    assert_eq!(
        devices.body["results"][0]["id"], "org-sales",
        "{}",
        devices.body
    );
    assert_eq!(devices.body["results"].as_array().unwrap().len(), 1);
    let status = go
        .request("GET", "/app/status", Some("org-sales"), None)
        .await;
    assert_eq!(
        status.body["results"]["is_connected"], true,
        "{}",
        status.body
    );
    let hook = go.get("/devices/org-sales/webhook").await;
    assert_eq!(
        hook.body["results"]["webhook_url"],
        "https://hooks.example/sales"
    );
    assert_eq!(hook.body["results"]["webhook_secret"], "sales-secret");
}

/// An HTTP proxy for the test: answers `CONNECT host:port` with a tunnel and
/// records each target. (The server side of a proxy; the server under test uses
/// real client libraries for its side.)
async fn connect_proxy(refuse: bool) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let targets = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = targets.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head
                    .strip_prefix("CONNECT ")
                    .and_then(|rest| rest.split(' ').next())
                    .unwrap_or_default()
                    .to_owned();
                seen.lock().unwrap().push(target.clone());
                if refuse {
                    // Kept alive, as a proxy asking for credentials does.
                    let _ = client
                        .write_all(
                            b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                              Proxy-Authenticate: Basic realm=\"p\"\r\nContent-Length: 0\r\n\r\n",
                        )
                        .await;
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
                let Ok(mut upstream) = tokio::net::TcpStream::connect(&target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (format!("http://{address}"), targets)
}

/// Pairs and sends through `proxy`, then checks that every WebSocket went to the
/// fake through it (`targets`: what the proxy was asked for).
async fn carries_the_websocket(
    fake: &fake_whatsapp::FakeWhatsApp,
    proxy: &str,
    targets: &std::sync::Mutex<Vec<String>>,
) {
    fake.add_contact(FRIEND, fake_whatsapp::ContactInfo::default())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(fake, dir.path(), &["--whatsapp-proxy", proxy]).await;
    server.pair(fake).await;
    let reply = send(&server, "through the proxy").await;
    delivered(fake, &server, &reply, FRIEND);
    let fake_address = fake.ws_url();
    let fake_address = fake_address
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let targets = targets.lock().unwrap().clone();
    // The pairing socket and the one after WhatsApp's 515 restart.
    assert!(targets.len() >= 2, "{targets:?}");
    assert!(targets.iter().all(|t| *t == fake_address), "{targets:?}");
}

#[tokio::test]
async fn whatsapp_proxy_carries_the_websocket() {
    let fake = fake_whatsapp::FakeWhatsApp::start_local().await.unwrap();
    let (proxy, targets) = connect_proxy(false).await;
    carries_the_websocket(&fake, &proxy, &targets).await;
}

#[tokio::test]
async fn a_proxy_refusing_the_tunnel_is_said_at_once() {
    let fake = fake_whatsapp::FakeWhatsApp::start_local().await.unwrap();
    let (proxy, targets) = connect_proxy(true).await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&fake, dir.path(), &["--whatsapp-proxy", &proxy]).await;
    let login = tokio::spawn({
        let http = server.http.clone();
        let url = format!("{}/app/login", server.base);
        async move { http.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    // Each dial fails on the proxy's answer, not after a timeout.
    crate::harness::wait_for("the refusal in the log", Duration::from_secs(10), || {
        server.log().contains("refused the tunnel: 407")
    })
    .await;
    assert!(!targets.lock().unwrap().is_empty());
    assert!(fake.logins().is_empty(), "nothing reached the fake");
    login.abort();
}

/// A SOCKS5 proxy for the test (no authentication): records each target.
async fn socks5_proxy() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let targets = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = targets.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                // Greeting: version, methods; answer "no authentication".
                let mut head = [0u8; 2];
                client.read_exact(&mut head).await?;
                let mut methods = vec![0u8; head[1] as usize];
                client.read_exact(&mut methods).await?;
                client.write_all(&[5, 0]).await?;
                // CONNECT request: version, command, reserved, address type.
                let mut request = [0u8; 4];
                client.read_exact(&mut request).await?;
                let host = match request[3] {
                    1 => {
                        let mut ip = [0u8; 4];
                        client.read_exact(&mut ip).await?;
                        std::net::Ipv4Addr::from(ip).to_string()
                    }
                    3 => {
                        let mut len = [0u8; 1];
                        client.read_exact(&mut len).await?;
                        let mut name = vec![0u8; len[0] as usize];
                        client.read_exact(&mut name).await?;
                        String::from_utf8_lossy(&name).into_owned()
                    }
                    _ => return Ok::<_, std::io::Error>(()),
                };
                let mut port = [0u8; 2];
                client.read_exact(&mut port).await?;
                let target = format!("{host}:{}", u16::from_be_bytes(port));
                seen.lock().unwrap().push(target.clone());
                let mut upstream = tokio::net::TcpStream::connect(&target).await?;
                client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
                tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
                Ok(())
            });
        }
    });
    (format!("socks5://{address}"), targets)
}

#[tokio::test]
async fn a_socks5_proxy_carries_the_websocket() {
    let fake = fake_whatsapp::FakeWhatsApp::start_local().await.unwrap();
    let (proxy, targets) = socks5_proxy().await;
    carries_the_websocket(&fake, &proxy, &targets).await;
}

/// Puts the whatsmeow file `go_file` into the database at `url` as a Go server
/// with `DB_URI=postgres://…` keeps it: whatsmeow's v15 tables (the fixture is
/// its PostgreSQL schema), row for row.
async fn whatsmeow_in_postgres(go_file: &Path, url: &str) {
    use tokio_postgres::types::ToSql;
    let pool = whatsapp_api::postgres::connect(url).await.unwrap();
    let client = pool.get().await.unwrap();
    client.batch_execute(WHATSMEOW_V15).await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE whatsmeow_version (version INTEGER, compat INTEGER);
             INSERT INTO whatsmeow_version VALUES (15, 8);",
        )
        .await
        .unwrap();
    let go = Connection::open(go_file).unwrap();
    for table in [
        "whatsmeow_device",
        "whatsmeow_identity_keys",
        "whatsmeow_pre_keys",
        "whatsmeow_sessions",
        "whatsmeow_contacts",
    ] {
        let columns: Vec<(String, String)> = client
            .query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_name = $1 AND data_type != 'uuid' ORDER BY ordinal_position",
                &[&table],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
        let insert = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            names.join(", "),
            (1..=names.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut select = go
            .prepare(&format!("SELECT {} FROM {table}", names.join(", ")))
            .unwrap();
        let rows: Vec<Vec<rusqlite::types::Value>> = select
            .query_map([], |r| {
                (0..names.len()).map(|i| r.get(i)).collect::<Result<_, _>>()
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!rows.is_empty() || table == "whatsmeow_contacts", "{table}");
        for row in rows {
            use rusqlite::types::Value;
            let params: Vec<Box<dyn ToSql + Sync + Send>> = row
                .into_iter()
                .zip(&columns)
                .map(|(value, (_, kind))| -> Box<dyn ToSql + Sync + Send> {
                    match (value, kind.as_str()) {
                        (Value::Null, "bytea") => Box::new(None::<Vec<u8>>),
                        (Value::Null, _) => Box::new(None::<String>),
                        (Value::Blob(b), _) => Box::new(b),
                        (Value::Text(t), _) => Box::new(t),
                        (Value::Integer(n), "boolean") => Box::new(n != 0),
                        (Value::Integer(n), "integer") => Box::new(n as i32),
                        (Value::Integer(n), _) => Box::new(n),
                        (other, kind) => panic!("{other:?} for {kind}"),
                    }
                })
                .collect();
            let params: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            client.execute(&insert, &params).await.unwrap();
        }
    }
}

/// Every whatsmeow table's rows, digested by Postgres.
async fn whatsmeow_digest(url: &str) -> Vec<(String, Option<String>)> {
    let pool = whatsapp_api::postgres::connect(url).await.unwrap();
    let client = pool.get().await.unwrap();
    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_name LIKE 'whatsmeow%' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut digests = Vec::new();
    for table in tables {
        let row = client
            .query_one(
                &format!("SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {table} t"),
                &[],
            )
            .await
            .unwrap();
        digests.push((table, row.get(0)));
    }
    digests
}

#[tokio::test]
async fn a_go_session_in_postgres_logs_in_without_a_qr_and_its_tables_stay_as_they_were() {
    let (fake, server, _dir, device) = talked_then_stopped().await;

    // The Go server's database: whatsmeow's tables in Postgres, no file.
    let scratch = tempfile::tempdir().unwrap();
    let go_file = scratch.path().join("whatsapp.db");
    write_go_session(&server.store_path(), &go_file);
    let postgres = whatsapp_api::postgres::testing::with_database("go").await;
    let url = postgres.url("go");
    whatsmeow_in_postgres(&go_file, &url).await;
    let before = whatsmeow_digest(&url).await;
    assert!(before.len() > 10, "{before:?}");
    let logins = fake.logins().len();

    // The Go command line, on an empty volume: logged in as the Go device.
    let go_dir = tempfile::tempdir().unwrap();
    let mut go = Server::start_with(
        &fake,
        go_dir.path(),
        &["--api-compat", "v9", "--db-uri", &url],
    )
    .await;
    go.wait_connected().await;
    assert_eq!(fake.devices().len(), 1, "no new device was paired");
    assert!(fake.logins().len() > logins, "it logged in as the device");
    let imports: Vec<String> = go
        .log()
        .lines()
        .filter(|l| l.contains("imported the Go server's WhatsApp session from its tables"))
        .map(str::to_owned)
        .collect();
    assert_eq!(imports.len(), 1, "{}", go.log());
    assert!(imports[0].contains(&device), "{}", imports[0]);

    both_sides_decrypt(&fake, &go).await;
    // The contact Go knew is in the message store.
    let contacts = go.get("/user/my/contacts").await;
    assert!(
        contacts.body.to_string().contains("Friend From Go"),
        "{}",
        contacts.body
    );

    // Go's tables are unchanged (the import is recorded beside them, for every
    // server), no scratch copy is left, and a restart does not import again.
    assert_eq!(whatsmeow_digest(&url).await, before);
    let recorded: i64 = whatsapp_api::postgres::connect(&url)
        .await
        .unwrap()
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM wa_imports", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, 1);
    let leftovers: Vec<_> = std::fs::read_dir(go_dir.path().join("storages"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".go-snapshot"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    go.terminate().await;
    go.restart().await;
    go.wait_connected().await;
    assert_eq!(
        go.log()
            .matches("imported the Go server's WhatsApp session")
            .count(),
        1,
        "{}",
        go.log()
    );
    fake.deliver(FRIEND, "after the restart").await.unwrap();
    stored(&go, "after the restart").await;
    assert_eq!(whatsmeow_digest(&url).await, before);
}
