//! Runs the real server binary as a child process against the fake WhatsApp server.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fake_whatsapp::FakeWhatsApp;
use serde_json::Value;
use tokio::process::{Child, Command};

/// The server binary, built with the same features as this test (`e2e`).
const BINARY: &str = env!("CARGO_BIN_EXE_whatsapp-api");

tokio::task_local! {
    /// Set by [`on_postgres`]: the Postgres server the servers started within
    /// keep everything in.
    static POSTGRES: std::sync::Arc<whatsapp_api::postgres::testing::TestServer>;
}

/// Runs `test` with every server it starts (without a `--db-uri` of its own)
/// keeping its accounts, sessions, outboxes and messages in a fresh database of a
/// Postgres server of the test's own.
#[allow(dead_code)]
pub async fn on_postgres(test: impl std::future::Future<Output = ()>) {
    on_postgres_with(false, test).await
}

/// [`on_postgres`] on a Postgres that writes as a production one does (fsync and
/// synchronous commits on), for benchmarks.
#[allow(dead_code)]
pub async fn on_durable_postgres(test: impl std::future::Future<Output = ()>) {
    on_postgres_with(true, test).await
}

async fn on_postgres_with(durable: bool, test: impl std::future::Future<Output = ()>) {
    use whatsapp_api::postgres::testing::TestServer;
    let postgres = tokio::task::spawn_blocking(move || match durable {
        true => std::sync::Arc::new(TestServer::start_durable()),
        false => std::sync::Arc::new(TestServer::start()),
    })
    .await
    .unwrap();
    POSTGRES.scope(postgres, test).await;
}

/// `--db-uri` of a fresh database when the test runs [`on_postgres`].
async fn postgres_args(given: &[&str]) -> Vec<String> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let Ok(postgres) = POSTGRES.try_with(|p| p.clone()) else {
        return Vec::new();
    };
    if given.contains(&"--db-uri") {
        return Vec::new();
    }
    let name = format!(
        "e2e{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let url = tokio::task::spawn_blocking(move || {
        postgres.create_database(&name);
        postgres.url(&name)
    })
    .await
    .unwrap();
    vec!["--db-uri".to_owned(), url]
}

pub struct Server {
    pub base: String,
    pub http: reqwest::Client,
    child: Option<Child>,
    dir: PathBuf,
    ws_url: String,
    port: u16,
    extra_args: Vec<String>,
    /// A limit on open files for the process (through `prlimit`).
    nofile: Option<u64>,
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub async fn read(res: reqwest::Response) -> Reply {
        Reply {
            status: res.status().as_u16(),
            body: res.json().await.unwrap_or(Value::Null),
        }
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

impl Server {
    /// For the benchmarks: `total` texts to `to` through `POST /send/message`,
    /// `concurrency` at a time, the n-th as the account `account(n)` names
    /// (`X-Device-Id`; `None`: none); acknowledged messages per second.
    #[allow(dead_code)]
    pub async fn send_rate(
        &self,
        to: &str,
        total: usize,
        concurrency: usize,
        tag: &str,
        account: impl Fn(usize) -> Option<String>,
    ) -> f64 {
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
        let url = format!("{}/send/message", self.base);
        let started = Instant::now();
        let tasks: Vec<_> = (0..total)
            .map(|n| {
                let (slots, client, url) = (slots.clone(), self.http.clone(), url.clone());
                let body = serde_json::json!({ "phone": to, "message": format!("{tag} {n}") });
                let device = account(n);
                tokio::spawn(async move {
                    let _slot = slots.acquire_owned().await.unwrap();
                    let mut req = client.post(url).json(&body);
                    if let Some(device) = device {
                        req = req.header("x-device-id", device);
                    }
                    let res = req.send().await.unwrap();
                    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        total as f64 / started.elapsed().as_secs_f64()
    }

    /// Starts the server in `dir` (its store, statics and log live there).
    pub async fn start(fake: &FakeWhatsApp, dir: &Path) -> Server {
        Self::start_with(fake, dir, &[]).await
    }

    /// Starts the server with extra command-line flags.
    pub async fn start_with(fake: &FakeWhatsApp, dir: &Path, extra_args: &[&str]) -> Server {
        Self::launch(fake, dir, extra_args, None).await
    }

    /// Starts the server with at most `nofile` open files.
    pub async fn start_with_nofile(fake: &FakeWhatsApp, dir: &Path, nofile: u64) -> Server {
        Self::launch(fake, dir, &[], Some(nofile)).await
    }

    async fn launch(
        fake: &FakeWhatsApp,
        dir: &Path,
        extra_args: &[&str],
        nofile: Option<u64>,
    ) -> Server {
        let port = free_port();
        let mut server = Server {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            child: None,
            dir: dir.to_owned(),
            ws_url: fake.ws_url(),
            port,
            extra_args: extra_args
                .iter()
                .map(|a| a.to_string())
                .chain(postgres_args(extra_args).await)
                .collect(),
            nofile,
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut command = match self.nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(BINARY);
                c
            }
            None => Command::new(BINARY),
        };
        let child = command
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--db-path")
            .arg(self.db_path())
            .arg("--statics-dir")
            .arg(self.dir.join("statics"))
            .arg("--temp-dir")
            .arg(self.dir.join("tmp"))
            .args(["--whatsapp-ws-url", &self.ws_url])
            .args(["--ack-timeout-secs", "4"])
            .args(&self.extra_args)
            .env("RUST_LOG", "info,whatsapp_rust=info,fake_whatsapp=debug")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("the server binary starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // The port is bound before the server is ready: a request waits for it,
            // so each try has its own limit within the deadline.
            let reply = self
                .http
                .get(&self.base)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if reply.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not start:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The session path given with `--db-path` (the Go server's name for it).
    pub fn db_path(&self) -> PathBuf {
        self.dir.join("storages/whatsapp.db")
    }

    /// This server's own session store, beside it.
    pub fn store_path(&self) -> PathBuf {
        self.dir.join("storages/whatsapp-rust.db")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The server's peak resident memory so far, in kB (Linux `VmHWM`).
    pub fn peak_rss_kb(&self) -> u64 {
        self.status_kb("VmHWM:")
    }

    /// The resident set now, in kB (the benches report it).
    #[allow(dead_code)]
    pub fn rss_kb(&self) -> u64 {
        self.status_kb("VmRSS:")
    }

    /// The resident set's heap and other anonymous memory, and its file-backed part
    /// (the binary's code and data pages), in kB.
    #[allow(dead_code)]
    pub fn rss_split_kb(&self) -> (u64, u64) {
        (self.status_kb("RssAnon:"), self.status_kb("RssFile:"))
    }

    /// How many files the server has open now (the benches report it).
    #[allow(dead_code)]
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .and_then(|c| c.id())
            .expect("the server runs")
    }

    fn status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/PID/status"))
    }

    /// CPU time the server used so far (user and system), from /proc/PID/stat (the
    /// benches report it).
    #[allow(dead_code)]
    pub fn cpu_time(&self) -> Duration {
        cpu_time_of(self.pid())
    }

    /// SIGTERM, and how long the process took to exit (with its exit status).
    pub async fn terminate(&mut self) -> (Duration, std::process::ExitStatus) {
        let mut child = self.child.take().expect("the server runs");
        let pid = child.id().expect("the server has a pid");
        let started = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("the server exits after SIGTERM")
            .unwrap();
        (started.elapsed(), status)
    }

    /// The extra flags of the next start.
    pub fn set_args(&mut self, extra_args: &[&str]) {
        self.extra_args = extra_args.iter().map(|a| a.to_string()).collect();
    }

    /// Starts the server again on the same store (after [`terminate`](Self::terminate)).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "the server still runs");
        self.spawn().await;
    }

    /// `kill -9`; [`restart`](Self::restart) starts it again.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    /// Sends the process `signal` (`STOP`, `CONT`, …).
    pub async fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .await
            .unwrap();
        assert!(sent.success());
    }

    /// `kill -9`, then start again on the same store.
    pub async fn kill_and_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
        self.spawn().await;
    }

    pub async fn get(&self, path: &str) -> Reply {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        Reply::read(res).await
    }

    /// Any request for the account `device` (`X-Device-Id`), with a JSON body when
    /// given.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        device: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let url = format!("{}{path}", self.base);
        let req = crate::common::account_request(&self.http, method, url, device, body);
        Reply::read(req.send().await.unwrap()).await
    }

    /// A multipart form of text fields, as the v2.3.0 spec sends them.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let form = fields
            .iter()
            .fold(reqwest::multipart::Form::new(), |form, (k, v)| {
                form.text(k.to_string(), v.to_string())
            });
        self.post_multipart(path, form).await
    }

    pub async fn post_multipart(&self, path: &str, form: reqwest::multipart::Form) -> Reply {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .multipart(form)
            .send()
            .await
            .unwrap();
        Reply::read(res).await
    }

    /// `whatsapp-api health` against this server: whether it exited 0.
    pub fn health_command(&self) -> bool {
        std::process::Command::new(BINARY)
            .args(["health", "--port", &self.port.to_string()])
            .status()
            .unwrap()
            .success()
    }

    pub async fn status(&self) -> Value {
        self.get("/app/status").await.body["results"].clone()
    }

    /// Waits until `/app/status` satisfies `ready`.
    pub async fn wait_status(&self, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let reply = self
            .wait_reply("/app/status", None, what, |r| ready(&r["results"]))
            .await;
        reply["results"].clone()
    }

    /// Waits until the answer to `GET path` for the account `device` satisfies
    /// `ready`; returns it.
    pub async fn wait_reply(
        &self,
        path: &str,
        device: Option<&str>,
        what: &str,
        ready: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            let res = self.request("GET", path, device, None).await;
            if ready(&res.body) {
                return res.body;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last answer {}; server log:\n{}",
                res.body,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_connected(&self) -> Value {
        self.wait_status("a connected session", |s| s["is_connected"] == true)
            .await
    }

    /// `/app/login`, the PNG behind `qr_link`, decoded.
    pub async fn login_qr(&self) -> String {
        let res = self.get("/app/login").await;
        assert_eq!(res.status, 200, "{}\n{}", res.body, self.log());
        let link = res.body["results"]["qr_link"].as_str().unwrap().to_owned();
        let png = self.http.get(&link).send().await.unwrap();
        assert_eq!(png.status(), 200);
        crate::common::decode_qr(&png.bytes().await.unwrap())
    }

    /// The phone `phone` of the fake scans the QR code the account `device` shows
    /// at `GET login` (`/app/login` with its `X-Device-Id`, or
    /// `/devices/:id/login`); the linked device.
    pub async fn scan_for(
        &self,
        fake: &FakeWhatsApp,
        login: &str,
        device: &str,
        phone: &str,
    ) -> fake_whatsapp::Device {
        let login = self.request("GET", login, Some(device), None).await;
        assert_eq!(
            login.status,
            200,
            "{device}: {}\n{}",
            login.body,
            self.log()
        );
        let link = login.body["results"]["qr_link"]
            .as_str()
            .unwrap()
            .to_owned();
        let png = self
            .http
            .get(&link)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let qr = crate::common::decode_qr(&png);
        fake.scan_as(phone, &qr)
            .await
            .unwrap_or_else(|e| panic!("{device} did not pair: {e:#}\n{}", self.log()))
    }

    /// Pairs the fake phone: login QR, scan, wait for the session to come up.
    pub async fn pair(&self, fake: &FakeWhatsApp) -> fake_whatsapp::Device {
        let qr = self.login_qr().await;
        let device = fake
            .scan(&qr)
            .await
            .unwrap_or_else(|e| panic!("the phone could not pair: {e:#}\n{}", self.log()));
        self.wait_connected().await;
        device
    }
}

/// Waits up to `within` for `done`, e.g. for the fake to see something.
pub async fn wait_for(what: &str, within: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- server log ----\n{}", self.log());
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// CPU time process `pid` used so far (user and system), from /proc/PID/stat.
#[allow(dead_code)]
pub fn cpu_time_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) in parentheses.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}
