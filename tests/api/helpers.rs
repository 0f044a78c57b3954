//! `TestApp`: the router on a loopback port, backed by `FakeSession`, an in-memory
//! WhatsApp session that records what the services ask of it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clap::Parser;
use jiff::Timestamp;
use serde_json::Value;
use whatsapp_api::config::Config;
use whatsapp_api::messages::MessageStore;
use whatsapp_api::whatsapp::{
    Ack, Avatar, BusinessProfile, Contact, Context, Group, GroupMember, GroupSetting, JoinRequest,
    MediaKind, MessageRef, Newsletter, NewsletterPost, Outgoing, PairingCode, ParticipantAction,
    ParticipantOutcome, Privacy, SessionStatus, Uploaded, UserDetails, WhatsApp, WhatsAppError,
};
use whatsapp_rust::Jid;

/// The acknowledgement time every fake send reports.
pub const ACK_SECONDS: i64 = 1_644_550_409;
/// The linked device the fake session is logged in as.
pub const DEVICE_ID: &str = "6289685028000:7@s.whatsapp.net";

#[derive(Default)]
pub struct FakeState {
    pub status: Option<SessionStatus>,
    pub pairing: Option<PairingCode>,
    /// The phone numbers pairing codes were asked for.
    pub link_codes: Vec<String>,
    pub user: Option<UserDetails>,
    pub avatar: Option<Avatar>,
    pub privacy: Privacy,
    pub groups: Vec<Group>,
    pub sent: Vec<(Jid, Outgoing)>,
    /// The context of each send, in order.
    pub contexts: Vec<Context>,
    /// Presence updates: `presence:<available>` or `<jid>:<typing>`.
    pub presences: Vec<String>,
    /// Profile pictures set (JPEG bytes) and push names set.
    pub avatars: Vec<Vec<u8>>,
    pub push_names: Vec<String>,
    pub business: Option<BusinessProfile>,
    pub contacts: Vec<Contact>,
    pub newsletters: Vec<Newsletter>,
    pub uploads: Vec<(Vec<u8>, MediaKind)>,
    pub queried: Vec<Jid>,
    /// Numbers (user parts) not on WhatsApp; every other number is.
    pub strangers: Vec<String>,
    /// The numbers checked to be on WhatsApp, in order.
    pub checked: Vec<String>,
    pub send_fails: bool,
    /// Each send takes this long before it is acknowledged.
    pub send_delay: Option<Duration>,
    /// Each send fails with this detail from the library.
    pub send_failure: Option<String>,
    /// Chat actions asked for, e.g. `star:<chat>:<id>:true`, `read:<chat>:<id>`,
    /// `pin:<chat>:true`, `download:<dir>`.
    pub actions: Vec<String>,
    /// What a media download writes.
    pub download: Option<Vec<u8>>,
    /// The linked device when not [`DEVICE_ID`].
    pub device: Option<String>,
}

/// In-memory session: answers from `state`, records sends and uploads.
#[derive(Default)]
pub struct FakeSession {
    pub state: Mutex<FakeState>,
    pub logouts: AtomicUsize,
    pub reconnects: AtomicUsize,
}

impl FakeSession {
    /// A group the account is in; one whose id ends in 403 refuses as to a member.
    fn group(&self, group: &Jid) -> Result<Group, WhatsAppError> {
        if group.user.ends_with("403") {
            return Err(WhatsAppError::Forbidden(
                "participants: only group admins may do that (401 not-authorized)".into(),
            ));
        }
        let jid = group.to_string();
        let groups = self.state.lock().unwrap().groups.clone();
        groups.into_iter().find(|g| g.jid == jid).ok_or_else(|| {
            WhatsAppError::NotFound(
                "group info: the group does not exist or this account is not in it (404 item-not-found)"
                    .into(),
            )
        })
    }

    fn action(&self, what: String) -> Result<(), WhatsAppError> {
        self.state.lock().unwrap().actions.push(what);
        Ok(())
    }

    pub fn actions(&self) -> Vec<String> {
        self.state.lock().unwrap().actions.clone()
    }

    pub fn set_status(&self, status: SessionStatus) {
        self.state.lock().unwrap().status = Some(status);
    }

    pub fn set_pairing(&self, code: &str, valid_for: Duration) {
        self.state.lock().unwrap().pairing = Some(PairingCode {
            code: code.to_owned(),
            expires_at: Instant::now() + valid_for,
        });
    }

    pub fn sent(&self) -> Vec<(Jid, Outgoing)> {
        self.state.lock().unwrap().sent.clone()
    }

    pub fn uploads(&self) -> Vec<(Vec<u8>, MediaKind)> {
        self.state.lock().unwrap().uploads.clone()
    }
}

#[async_trait]
impl WhatsApp for FakeSession {
    fn status(&self) -> SessionStatus {
        self.state
            .lock()
            .unwrap()
            .status
            .unwrap_or(SessionStatus::Connected)
    }

    fn device_id(&self) -> Option<Jid> {
        let state = self.state.lock().unwrap();
        match state.status {
            Some(SessionStatus::LoggedOut) => None,
            _ => Some(
                state
                    .device
                    .as_deref()
                    .unwrap_or(DEVICE_ID)
                    .parse()
                    .unwrap(),
            ),
        }
    }

    async fn pairing_code(&self) -> Result<PairingCode, WhatsAppError> {
        self.state
            .lock()
            .unwrap()
            .pairing
            .clone()
            .ok_or(WhatsAppError::Timeout(
                Duration::from_secs(30),
                "the QR code from WhatsApp",
            ))
    }

    async fn link_code(&self, phone: &str) -> Result<String, WhatsAppError> {
        let mut state = self.state.lock().unwrap();
        if state.pairing.is_none() {
            return Err(WhatsAppError::Timeout(
                Duration::from_secs(30),
                "the QR code from WhatsApp",
            ));
        }
        if phone.len() < 7 {
            return Err(WhatsAppError::Rejected(
                "phone number is too short (must be at least 7 digits)".into(),
            ));
        }
        state.link_codes.push(phone.to_owned());
        Ok("ABCD1234".to_owned())
    }

    async fn logout(&self) -> Result<(), WhatsAppError> {
        let mut state = self.state.lock().unwrap();
        if state.status == Some(SessionStatus::LoggedOut) {
            return Err(WhatsAppError::NoDevice);
        }
        state.status = Some(SessionStatus::LoggedOut);
        self.logouts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn reconnect(&self) -> Result<(), WhatsAppError> {
        if self.status() == SessionStatus::LoggedOut {
            return Err(WhatsAppError::NotLoggedIn);
        }
        self.reconnects.fetch_add(1, Ordering::SeqCst);
        self.set_status(SessionStatus::Connected);
        Ok(())
    }

    async fn user_info(&self, jid: &Jid) -> Result<Option<UserDetails>, WhatsAppError> {
        let mut state = self.state.lock().unwrap();
        state.queried.push(jid.clone());
        Ok(state.user.clone())
    }

    async fn on_whatsapp(&self, jid: &Jid) -> Result<bool, WhatsAppError> {
        let mut state = self.state.lock().unwrap();
        state.checked.push(jid.user.to_string());
        Ok(!state.strangers.iter().any(|s| *s == jid.user))
    }

    async fn avatar(&self, jid: &Jid) -> Result<Option<Avatar>, WhatsAppError> {
        let mut state = self.state.lock().unwrap();
        state.queried.push(jid.clone());
        Ok(state.avatar.clone())
    }

    async fn privacy(&self) -> Result<Privacy, WhatsAppError> {
        Ok(self.state.lock().unwrap().privacy.clone())
    }

    async fn groups(&self) -> Result<Vec<Group>, WhatsAppError> {
        Ok(self.state.lock().unwrap().groups.clone())
    }

    async fn business_profile(&self, _jid: &Jid) -> Result<Option<BusinessProfile>, WhatsAppError> {
        Ok(self.state.lock().unwrap().business.clone())
    }

    async fn contacts(&self) -> Result<Vec<Contact>, WhatsAppError> {
        Ok(self.state.lock().unwrap().contacts.clone())
    }

    async fn newsletters(&self) -> Result<Vec<Newsletter>, WhatsAppError> {
        Ok(self.state.lock().unwrap().newsletters.clone())
    }

    async fn mark_read(&self, chat: &Jid, target: &MessageRef) -> Result<(), WhatsAppError> {
        self.action(format!("read:{chat}:{}", target.id))
    }

    async fn star(
        &self,
        chat: &Jid,
        target: &MessageRef,
        starred: bool,
    ) -> Result<(), WhatsAppError> {
        self.action(format!("star:{chat}:{}:{starred}", target.id))
    }

    async fn delete_for_me(
        &self,
        chat: &Jid,
        target: &MessageRef,
        timestamp: i64,
    ) -> Result<(), WhatsAppError> {
        self.action(format!("delete:{chat}:{}:{timestamp}", target.id))
    }

    async fn pin_chat(&self, chat: &Jid, pinned: bool) -> Result<(), WhatsAppError> {
        self.action(format!("pin:{chat}:{pinned}"))
    }

    async fn archive_chat(&self, chat: &Jid, archived: bool) -> Result<(), WhatsAppError> {
        self.action(format!("archive:{chat}:{archived}"))
    }

    async fn edit_label(&self, id: &str, name: &str, color: i32) -> Result<(), WhatsAppError> {
        self.action(format!("label-edit:{id}:{name}:{color}"))
    }

    async fn label_chat(&self, chat: &Jid, id: &str, labeled: bool) -> Result<(), WhatsAppError> {
        self.action(format!("label:{chat}:{id}:{labeled}"))
    }

    async fn set_disappearing(&self, chat: &Jid, seconds: u32) -> Result<(), WhatsAppError> {
        self.action(format!("disappearing:{chat}:{seconds}"))
    }

    async fn download_media(
        &self,
        _raw: &[u8],
        dir: &std::path::Path,
        max_bytes: u64,
    ) -> Result<PathBuf, WhatsAppError> {
        let data = self.state.lock().unwrap().download.clone();
        let data = data.ok_or_else(|| WhatsAppError::Failed("media download failed".into()))?;
        if data.len() as u64 > max_bytes {
            return Err(WhatsAppError::Rejected("too large".into()));
        }
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("1700000000-fake.jpg");
        std::fs::write(&path, data).unwrap();
        self.action(format!("download:{}", dir.display()))?;
        Ok(path)
    }

    async fn group_info(&self, group: &Jid) -> Result<Group, WhatsAppError> {
        self.group(group)
    }

    async fn create_group(&self, name: &str, participants: &[Jid]) -> Result<Group, WhatsAppError> {
        let group = Group {
            jid: "120363000000000001@g.us".to_owned(),
            name: name.to_owned(),
            participants: participants
                .iter()
                .map(|p| GroupMember {
                    jid: p.to_string(),
                    phone_number: Some(p.to_string()),
                    ..GroupMember::default()
                })
                .collect(),
            ..Group::default()
        };
        self.state.lock().unwrap().groups.push(group.clone());
        Ok(group)
    }

    async fn leave_group(&self, group: &Jid) -> Result<(), WhatsAppError> {
        self.group(group)?;
        let jid = group.to_string();
        self.state.lock().unwrap().groups.retain(|g| g.jid != jid);
        Ok(())
    }

    async fn join_group(&self, link: &str) -> Result<(Jid, bool), WhatsAppError> {
        if link.contains("REVOKED") {
            return Err(WhatsAppError::Rejected(
                "join: the invite link is invalid or was reset (410 gone)".into(),
            ));
        }
        self.action(format!("join:{link}"))?;
        Ok((
            "120363000000000002@g.us".parse().unwrap(),
            link.contains("APPROVAL"),
        ))
    }

    async fn group_from_link(&self, link: &str) -> Result<Group, WhatsAppError> {
        let groups = self.state.lock().unwrap().groups.clone();
        match groups.into_iter().next() {
            Some(group) if !link.contains("REVOKED") => Ok(group),
            _ => Err(WhatsAppError::Rejected(
                "group info from link: the invite link is invalid or was reset (410 gone)".into(),
            )),
        }
    }

    async fn group_invite_link(&self, group: &Jid, reset: bool) -> Result<String, WhatsAppError> {
        self.group(group)?;
        Ok(format!(
            "https://chat.whatsapp.com/{}",
            if reset { "NEWCODE" } else { "OLDCODE" }
        ))
    }

    async fn change_participants(
        &self,
        group: &Jid,
        action: ParticipantAction,
        participants: &[Jid],
    ) -> Result<Vec<ParticipantOutcome>, WhatsAppError> {
        self.group(group)?;
        self.action(format!("{action:?}:{group}:{}", participants.len()))?;
        // A number ending in an error code is refused with it.
        Ok(participants
            .iter()
            .map(|p| ParticipantOutcome {
                jid: p.to_string(),
                error: ["403", "404", "409"]
                    .into_iter()
                    .find(|code| p.user.ends_with(code))
                    .map(str::to_owned),
            })
            .collect())
    }

    async fn join_requests(&self, group: &Jid) -> Result<Vec<JoinRequest>, WhatsAppError> {
        self.group(group)?;
        Ok(vec![JoinRequest {
            jid: "6289685024093@s.whatsapp.net".to_owned(),
            requested_at: Some(1_700_000_000),
        }])
    }

    async fn update_group(&self, group: &Jid, setting: GroupSetting) -> Result<(), WhatsAppError> {
        self.group(group)?;
        self.action(format!("{setting:?}:{group}"))
    }

    async fn set_group_photo(&self, group: &Jid, jpeg: Vec<u8>) -> Result<String, WhatsAppError> {
        self.group(group)?;
        self.action(format!("photo:{group}:{}", jpeg.len()))?;
        Ok("1700000001".to_owned())
    }

    async fn unfollow_newsletter(&self, newsletter: &Jid) -> Result<(), WhatsAppError> {
        let jid = newsletter.to_string();
        let mut state = self.state.lock().unwrap();
        let before = state.newsletters.len();
        state.newsletters.retain(|n| n.jid != jid);
        if state.newsletters.len() == before {
            return Err(WhatsAppError::NotFound(
                "unfollow: no such channel, or this account does not follow it".into(),
            ));
        }
        Ok(())
    }

    async fn newsletter_posts(
        &self,
        newsletter: &Jid,
        count: u32,
        before: Option<u64>,
    ) -> Result<Vec<NewsletterPost>, WhatsAppError> {
        self.action(format!("posts:{newsletter}:{count}:{before:?}"))?;
        Ok(vec![NewsletterPost {
            server_id: 101,
            message_id: "NL101".into(),
            kind: "text".into(),
            timestamp: 1_700_000_000,
            text: Some("news".into()),
            reactions: vec![("👍".into(), 3)],
        }])
    }

    async fn set_avatar(&self, jpeg: Vec<u8>) -> Result<String, WhatsAppError> {
        self.state.lock().unwrap().avatars.push(jpeg);
        Ok("1700000000".to_owned())
    }

    async fn set_push_name(&self, name: &str) -> Result<(), WhatsAppError> {
        self.state.lock().unwrap().push_names.push(name.to_owned());
        Ok(())
    }

    async fn set_presence(&self, available: bool) -> Result<(), WhatsAppError> {
        let mut state = self.state.lock().unwrap();
        state.presences.push(format!("presence:{available}"));
        Ok(())
    }

    async fn chat_presence(&self, to: &Jid, typing: bool) -> Result<(), WhatsAppError> {
        let mut state = self.state.lock().unwrap();
        state.presences.push(format!("{to}:{typing}"));
        Ok(())
    }

    async fn upload_file(
        &self,
        path: &std::path::Path,
        kind: MediaKind,
    ) -> Result<Uploaded, WhatsAppError> {
        let data = std::fs::read(path).expect("the file to upload exists");
        self.upload(data, kind).await
    }

    async fn upload(&self, data: Vec<u8>, kind: MediaKind) -> Result<Uploaded, WhatsAppError> {
        let len = data.len() as u64;
        self.state.lock().unwrap().uploads.push((data, kind));
        Ok(Uploaded {
            url: "https://mmg.example/x".to_owned(),
            direct_path: "/v/x".to_owned(),
            media_key: vec![1; 32],
            file_enc_sha256: vec![2; 32],
            file_sha256: vec![3; 32],
            file_length: len,
            media_key_timestamp: 1,
        })
    }

    async fn send(
        &self,
        to: &Jid,
        message: Outgoing,
        context: Context,
    ) -> Result<Ack, WhatsAppError> {
        self.state.lock().unwrap().contexts.push(context);
        let delay = self.state.lock().unwrap().send_delay;
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let mut state = self.state.lock().unwrap();
        if let Some(detail) = &state.send_failure {
            return Err(WhatsAppError::failed(
                "sending message 3EB0F00D failed",
                detail,
            ));
        }
        if state.send_fails {
            return Err(WhatsAppError::Timeout(
                Duration::from_secs(30),
                "WhatsApp's acknowledgement",
            ));
        }
        state.sent.push((to.clone(), message));
        Ok(Ack {
            message_id: format!("3EB0{:016X}", state.sent.len()),
            timestamp: Timestamp::from_second(ACK_SECONDS).unwrap(),
        })
    }

    async fn shutdown(&self) {}
}

/// An account the test server opened: its slot id, session double and store.
#[derive(Clone)]
pub struct OpenedAccount {
    pub id: String,
    pub wa: Arc<FakeSession>,
    pub store: Arc<MessageStore>,
}

pub type Opened = Arc<Mutex<Vec<OpenedAccount>>>;

/// Opens the first account on the test's session and store, later ones (added
/// through `/devices`) on new doubles of their own, kept in `opened`; a reopened
/// account keeps its double.
struct TestOpener {
    shared: whatsapp_api::SharedServices,
    first: Arc<FakeSession>,
    store: Arc<MessageStore>,
    opened: Opened,
    failing: Failing,
}

/// Slot ids whose next opens fail, and how many times.
pub type Failing = Arc<Mutex<std::collections::HashMap<String, usize>>>;

#[async_trait]
impl whatsapp_api::accounts::Opener for TestOpener {
    async fn open(
        &self,
        place: &whatsapp_api::accounts::Place<'_>,
    ) -> anyhow::Result<whatsapp_api::accounts::Opened> {
        if let Some(left) = self.failing.lock().unwrap().get_mut(place.id)
            && *left > 0
        {
            *left -= 1;
            anyhow::bail!("the test made opening {} fail", place.id);
        }
        let mut opened = self.opened.lock().unwrap();
        let (wa, store) = match opened.iter().find(|o| o.id == place.id) {
            Some(again) => (again.wa.clone(), again.store.clone()),
            None if opened.is_empty() => (self.first.clone(), self.store.clone()),
            None => (
                Arc::new(FakeSession::default()),
                Arc::new(MessageStore::open(&place.layout.messages)?),
            ),
        };
        if !opened.iter().any(|o| o.id == place.id) {
            opened.push(OpenedAccount {
                id: place.id.to_owned(),
                wa: wa.clone(),
                store: store.clone(),
            });
        }
        Ok(whatsapp_api::accounts::Opened {
            wa,
            messages: store,
            webhooks: None,
        })
    }

    fn services(
        &self,
        id: &str,
        opened: &whatsapp_api::accounts::Opened,
        files: &whatsapp_api::accounts::AccountFiles,
    ) -> std::io::Result<whatsapp_api::http::AppState> {
        self.shared.services(id, opened, files)
    }
}

pub struct TestApp {
    pub base: String,
    pub wa: Arc<FakeSession>,
    /// Every account opened, in order.
    pub opened: Opened,
    /// Make opening an account fail (see [`Failing`]).
    pub failing: Failing,
    config: Config,
    /// The storage folder (`--db-path`'s).
    pub storage: PathBuf,
    /// The message store the routes read (tests put messages in it).
    pub store: Arc<MessageStore>,
    pub client: reqwest::Client,
    pub statics: PathBuf,
    pub temp: PathBuf,
    _dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    /// Starts the API with extra command-line `args`, holding one account.
    pub async fn spawn_with(args: &[&str]) -> TestApp {
        Self::start(args, true).await
    }

    /// Starts the API with no account in the later dialect (the default dialect
    /// starts with one, as the one-account versions did).
    pub async fn spawn_without_accounts(args: &[&str]) -> TestApp {
        Self::start(args, false).await
    }

    async fn start(args: &[&str], one_account: bool) -> TestApp {
        init_logs();
        let dir = tempfile::tempdir().unwrap();
        let statics = dir.path().join("statics");
        let temp = dir.path().join("tmp");
        let mut argv = vec![
            "whatsapp-api".to_owned(),
            "--statics-dir".to_owned(),
            statics.display().to_string(),
            "--temp-dir".to_owned(),
            temp.display().to_string(),
        ];
        if !args.iter().any(|a| a.starts_with("--db-path")) {
            argv.push("--db-path".to_owned());
            argv.push(dir.path().join("whatsapp.db").display().to_string());
        }
        argv.extend(args.iter().map(|a| a.to_string()));
        let config = Config::parse_from(argv);
        let wa = Arc::new(FakeSession::default());
        // Not at the storage folder's `chat.db`: a server finding one there opens the
        // one-account versions' account, and these tests choose.
        let store = Arc::new(MessageStore::open(&dir.path().join("test-chat.db")).unwrap());
        let opened = Arc::new(Mutex::new(Vec::new()));
        let failing = Failing::default();
        let settings = whatsapp_api::account_settings(&config);
        let server = whatsapp_api::server_with(&config, settings, |shared| {
            Box::new(TestOpener {
                shared,
                first: wa.clone(),
                store: store.clone(),
                opened: opened.clone(),
                failing: failing.clone(),
            })
        })
        .await
        .unwrap();
        // The later dialect starts with no account; these tests run on one.
        if one_account && server.accounts.is_empty() {
            server.accounts.add(Some("default".into())).await.unwrap();
        }
        let router = whatsapp_api::http::router(server, statics.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(whatsapp_api::serve(
            listener,
            router,
            std::future::pending(),
        ));
        TestApp {
            base,
            wa,
            failing,
            config: config.clone(),
            opened,
            storage: dir.path().to_owned(),
            store,
            client: reqwest::Client::new(),
            statics,
            temp,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> Reply {
        reply(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    /// Any request, with `X-Device-Id: device` when given and a JSON body when given.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        device: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let req =
            crate::common::account_request(&self.client, method, self.url(path), device, body);
        reply(req.send().await.unwrap()).await
    }

    /// What a server started again on the same storage folder holds: its slot ids
    /// (open or not), in the order `/devices` lists them.
    pub async fn slots_after_restart(&self) -> Vec<String> {
        let settings = whatsapp_api::account_settings(&self.config);
        let server = whatsapp_api::server_with(&self.config, settings, |shared| {
            Box::new(TestOpener {
                shared,
                first: self.wa.clone(),
                store: self.store.clone(),
                opened: Arc::new(Mutex::new(Vec::new())),
                failing: Failing::default(),
            })
        })
        .await
        .unwrap();
        let mut ids: Vec<String> = server
            .accounts
            .list()
            .iter()
            .map(|a| a.id.clone())
            .collect();
        ids.extend(server.accounts.not_open().into_iter().map(|(s, _)| s.id));
        ids
    }

    /// The account opened with slot id `id`.
    /// Adds the account `id` with an API key, as the operator `admin:secret`;
    /// returns the key.
    pub async fn add_account_with_key(&self, id: &str) -> String {
        let added: Value = self
            .client
            .post(self.url("/devices"))
            .basic_auth("admin", Some("secret"))
            .json(&serde_json::json!({"device_id": id, "api_key": true}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        added["results"]["api_key"]
            .as_str()
            .unwrap_or_else(|| panic!("an API key: {added}"))
            .to_owned()
    }

    pub fn account(&self, id: &str) -> OpenedAccount {
        let opened = self.opened.lock().unwrap();
        opened.iter().find(|o| o.id == id).cloned().unwrap()
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Reply {
        reply(
            self.client
                .post(self.url(path))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let form = reqwest::multipart::Form::new();
        let form = fields
            .iter()
            .fold(form, |f, (k, v)| f.text(k.to_string(), v.to_string()));
        self.post_multipart(path, form).await
    }

    pub async fn post_multipart(&self, path: &str, form: reqwest::multipart::Form) -> Reply {
        reply(
            self.client
                .post(self.url(path))
                .multipart(form)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        reply(
            self.client
                .post(self.url(path))
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Files left in the upload temp folder.
    pub fn temp_files(&self) -> Vec<String> {
        std::fs::read_dir(&self.temp)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

pub async fn reply(res: reqwest::Response) -> Reply {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

impl Reply {
    /// Asserts the envelope of an error: status, `code`, `message`, `results: null`.
    pub fn assert_error(&self, status: u16, message: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.body["code"], status, "{}", self.text);
        assert_eq!(self.body["message"], message, "{}", self.text);
        assert_eq!(self.body["results"], Value::Null, "{}", self.text);
        assert!(
            self.text.starts_with(r#"{"code":"#),
            "envelope keys out of order: {}",
            self.text
        );
    }

    /// Like [`Reply::assert_error`], for messages that end in a parser's own detail.
    pub fn assert_error_starting(&self, status: u16, prefix: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.body["code"], status, "{}", self.text);
        let message = self.body["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(prefix), "{}", self.text);
        assert_eq!(self.body["results"], Value::Null, "{}", self.text);
    }

    pub fn assert_success(&self, message: &str) {
        assert_eq!(self.status, 200, "{}", self.text);
        assert_eq!(self.body["code"], 200, "{}", self.text);
        assert_eq!(self.body["message"], message, "{}", self.text);
    }
}

/// A multipart file part.
/// The status text the API reports for a send acknowledged at `ACK_SECONDS`.
pub fn sent_status(what: &str, jid: &str) -> String {
    let ts = Timestamp::from_second(ACK_SECONDS).unwrap();
    format!(
        "{what} {jid} (server timestamp: {})",
        whatsapp_api::domain::timestamp::server_time(ts)
    )
}

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_test_writer()
            .try_init();
    }
}
