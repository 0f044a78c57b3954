//! Command-line flags and environment variables: one clap struct for the whole server.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `--presence-on-connect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PresenceOnConnect {
    Available,
    Unavailable,
    None,
}

/// A duration written as Go writes them (`24h`, `5m`, `1h30m`, `1.5h`), more than
/// zero.
fn go_duration(text: &str) -> Result<Duration, String> {
    let wrong = || format!("{text:?} is not a duration like 24h, 5m or 1h30m");
    let parsed: jiff::SignedDuration = text.trim().parse().map_err(|_| wrong())?;
    Duration::try_from(parsed)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(wrong)
}

/// What the process does: serve the API, or ask a running server's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Serve,
    /// `whatsapp-api health`: exit 0 when the server on `--host`/`--port` answers
    /// `/health` with OK (the container's health check; the image has no curl).
    Health,
}

/// The mode and configuration from the command line. `rest` (the later Go
/// versions' subcommand, which their compose files pass) is accepted and means
/// serve; `health` checks a running server. Flags may come before or after either,
/// as cobra's persistent flags may.
pub fn from_args<I, T>(args: I) -> (Mode, Config)
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    from_args_with(args, &[])
}

/// [`from_args`], with `defaults` (a `.env` file's `KEY=value` settings) taken for
/// every setting whose environment variable is `KEY`, unless the environment or a
/// flag sets it: a flag wins over the environment, which wins over `.env`. Keys
/// that name no setting are ignored. On a bad command line, clap prints why and
/// exits, as it always did.
pub fn from_args_with<I, T>(args: I, defaults: &[(String, String)]) -> (Mode, Config)
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let mode = take_subcommand(&mut args);
    let config = parse_with_defaults(args, defaults).unwrap_or_else(|e| e.exit());
    (mode, config)
}

/// Removes the subcommand (`rest`, `health`) from `args`, wherever it stands among
/// the flags: the first word that is neither a flag nor a flag's value.
fn take_subcommand(args: &mut Vec<std::ffi::OsString>) -> Mode {
    use clap::CommandFactory;
    let mut command = Config::command();
    command.build();
    // How many values the flag named by `token` may take: (at least, at most).
    let values = |token: &str| {
        let arg = if let Some(long) = token.strip_prefix("--") {
            command.get_arguments().find(|a| {
                a.get_long() == Some(long)
                    || a.get_all_aliases()
                        .is_some_and(|aliases| aliases.contains(&long))
            })
        } else {
            let short = token.strip_prefix('-').and_then(|s| {
                let mut chars = s.chars();
                chars.next().filter(|_| chars.next().is_none())
            });
            command
                .get_arguments()
                .find(|a| short.is_some() && a.get_short() == short)
        };
        arg.filter(|a| a.get_action().takes_values())
            .and_then(|a| a.get_num_args())
            .map_or((0, 0), |n| (n.min_values(), n.max_values()))
    };
    let mut i = 1;
    while let Some(token) = args.get(i).and_then(|a| a.to_str()) {
        match token {
            "rest" | "health" => {
                let mode = if token == "rest" {
                    Mode::Serve
                } else {
                    Mode::Health
                };
                args.remove(i);
                return mode;
            }
            "--" => break,
            flag if flag.starts_with('-') && !flag.contains('=') => {
                let next = args.get(i + 1).and_then(|a| a.to_str()).unwrap_or("-");
                i += match values(flag) {
                    (min, _) if min > 0 => 2,
                    // An optional value (Go's `--debug false`): the next word, unless
                    // it is a flag or the subcommand.
                    (_, max)
                        if max > 0
                            && !next.starts_with('-')
                            && !matches!(next, "rest" | "health") =>
                    {
                        2
                    }
                    _ => 1,
                };
            }
            flag if flag.starts_with('-') => i += 1,
            _ => break,
        }
    }
    Mode::Serve
}

/// Parses `args` with `defaults` below the environment (see [`from_args_with`]).
pub fn parse_with_defaults<I, T>(
    args: I,
    defaults: &[(String, String)],
) -> Result<Config, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::{CommandFactory, FromArgMatches};
    let mut command = Config::command();
    // An empty value (`APP_PORT=`, as compose files write `${X:-}`) means unset, as
    // the Go server reads it; so for the environment too.
    let empty_in_env: Vec<clap::Id> = command
        .get_arguments()
        .filter(|a| {
            a.get_env()
                .and_then(std::env::var_os)
                .is_some_and(|v| v.is_empty())
        })
        .map(|a| a.get_id().clone())
        .collect();
    for id in empty_in_env {
        command = command.mut_arg(id, |arg| arg.env(None::<&str>));
    }
    for (key, value) in defaults.iter().filter(|(_, v)| !v.trim().is_empty()) {
        let ids: Vec<clap::Id> = command
            .get_arguments()
            .filter(|a| a.get_env().is_some_and(|env| env == key.as_str()))
            .map(|a| a.get_id().clone())
            .collect();
        for id in ids {
            let value = value.clone();
            // Not shown by --help: `.env` holds secrets.
            command = command.mut_arg(id, move |arg| {
                arg.default_value(value).hide_default_value(true)
            });
        }
    }
    let matches = command.try_get_matches_from(args)?;
    Config::from_arg_matches(&matches)
}

/// A drop-in WhatsApp HTTP API server (go-whatsapp-web-multidevice API v2.3.0).
///
/// `whatsapp-api [rest] [OPTIONS]` serves the API; `whatsapp-api health [--port N]`
/// exits 0 when a running server's /health answers OK.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Config {
    /// Port the HTTP API listens on.
    #[arg(short, long, env = "APP_PORT", default_value_t = 3000)]
    pub port: u16,

    /// Address the HTTP API binds to.
    #[arg(short = 'H', long, env = "APP_HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,

    /// Accounts allowed to use the API, `user:password` (comma-separated for
    /// several). When set, every route needs HTTP basic auth.
    #[arg(
        short = 'b',
        long,
        env = "APP_BASIC_AUTH",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub basic_auth: Vec<String>,

    /// Web origins allowed to call the API from a browser (`*` for any), e.g.
    /// `https://crm.example.com`. Others get 403 on state-changing routes.
    #[arg(
        long,
        alias = "cors-allowed-origins",
        env = "APP_CORS_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// Host names browsers may reach this server by when no basic auth is set
    /// (IP addresses and `localhost` always work); stops DNS rebinding.
    #[arg(long, env = "APP_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Log lines as `text` (colour only on a terminal) or `json` (one object per
    /// line, for log collectors).
    #[arg(long, env = "APP_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Verbose logs (debug level for this server and the WhatsApp client).
    #[arg(short, long, env = "APP_DEBUG", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub debug: bool,

    /// Answer new private text messages with this text.
    #[arg(long, env = "WHATSAPP_AUTO_REPLY")]
    pub autoreply: Option<String>,

    /// At most one auto-reply per chat in this many seconds.
    #[arg(long, env = "WHATSAPP_AUTO_REPLY_INTERVAL", default_value_t = 60)]
    pub autoreply_interval_secs: u64,

    /// The WhatsApp session file as the Go server names it: a Go server's
    /// (whatsmeow) session found there is imported read-only, never changed. This
    /// server's own files live in the same folder (`whatsapp-rust.db`, `chat.db`,
    /// `outbox.db`, `server.lock`).
    #[arg(long, env = "WHATSAPP_DB_PATH", default_value = "storages/whatsapp.db")]
    pub db_path: PathBuf,

    /// The Go server's `DB_URI`: `file:PATH[?options]` names the session file (as
    /// --db-path does, and wins over it); `postgres://…` keeps the accounts, their
    /// WhatsApp sessions and webhook outboxes in that PostgreSQL database instead
    /// (the message stores stay in --db-path's folder), which several servers
    /// may share.
    #[arg(long, env = "DB_URI", hide_env_values = true)]
    pub db_uri: Option<String>,

    /// With several servers on one PostgreSQL database (--db-uri): the base URL
    /// the other servers reach this one at, such as `http://10.0.0.5:3000`
    /// (default: `http://<host name>:<port>`).
    #[arg(long, env = "CLUSTER_ADDRESS")]
    pub cluster_address: Option<String>,

    /// The Go server's `DB_KEYS_URI`: `file:PATH` of a separate whatsmeow key store
    /// (its prekeys, identities, sessions and sender keys are imported from there).
    #[arg(long, env = "DB_KEYS_URI", hide_env_values = true)]
    pub db_keys_uri: Option<String>,

    /// Name of this device as the phone lists it under "Linked devices" (Go's
    /// `--os`); set when pairing.
    #[arg(long = "os", env = "APP_OS")]
    pub device_name: Option<String>,

    /// Prefix of every route but `/health` (e.g. `/gowa`), for a server behind a
    /// reverse proxy under a sub-path; statics and the dashboard included.
    #[arg(long, env = "APP_BASE_PATH", default_value = "")]
    pub base_path: String,

    /// Folder served under `/statics/`; QR codes are written to `images/qrcode/` inside it.
    #[arg(long, env = "APP_STATICS_DIR", default_value = "statics")]
    pub statics_dir: PathBuf,

    /// Folder for temporary upload files (default: the system temp folder).
    #[arg(long, env = "APP_TEMP_DIR")]
    pub temp_dir: Option<PathBuf>,

    /// Largest file accepted by /send/file and /send/image, in MB (1 MB = 1,000,000 bytes, as v2.3.0).
    #[arg(long, env = "WHATSAPP_MAX_FILE_SIZE_MB", default_value_t = 30)]
    pub max_file_size_mb: u64,

    /// Largest video accepted by /send/video, in MB (1 MB = 1,000,000 bytes).
    #[arg(long, env = "WHATSAPP_MAX_VIDEO_SIZE_MB", default_value_t = 30)]
    pub max_video_size_mb: u64,

    /// Seconds a send waits for WhatsApp's acknowledgement before failing.
    #[arg(long, env = "WHATSAPP_ACK_TIMEOUT", default_value_t = 30)]
    pub ack_timeout_secs: u64,

    /// Longest an HTTP request may take (uploads from slow clients included).
    #[arg(long, env = "APP_REQUEST_TIMEOUT", default_value_t = 600)]
    pub request_timeout_secs: u64,

    /// ffmpeg binary used for video thumbnails and compression.
    #[arg(long, env = "APP_FFMPEG", default_value = "ffmpeg")]
    pub ffmpeg: PathBuf,

    /// Seconds an ffmpeg run may take before it is killed.
    #[arg(long, env = "APP_FFMPEG_TIMEOUT", default_value_t = 120)]
    pub ffmpeg_timeout_secs: u64,

    /// How many accounts may be connecting to WhatsApp at once while the server
    /// starts; the others wait their turn, in a jittered order (no restart storm).
    #[arg(long, env = "APP_STARTUP_HANDSHAKES", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub startup_handshakes: u16,

    /// How many image decodes and ffmpeg runs may work at once (default: the number
    /// of CPUs).
    #[arg(long, env = "APP_MEDIA_WORKERS")]
    pub media_workers: Option<usize>,

    /// Seconds a media upload may wait for a free worker before it gets a 503.
    #[arg(long, env = "APP_MEDIA_QUEUE_TIMEOUT", default_value_t = 30)]
    pub media_queue_timeout_secs: u64,

    /// URLs that receive incoming messages as webhooks (comma-separated).
    #[arg(
        short = 'w',
        long,
        env = "WHATSAPP_WEBHOOK",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub webhook: Vec<String>,

    /// Key of the `X-Hub-Signature-256` HMAC on every webhook.
    #[arg(
        long,
        env = "WHATSAPP_WEBHOOK_SECRET",
        hide_env_values = true,
        default_value = "secret"
    )]
    pub webhook_secret: String,

    /// Webhook events to send (comma-separated, e.g. `message`); empty sends all.
    #[arg(long, env = "WHATSAPP_WEBHOOK_EVENTS", value_delimiter = ',')]
    pub webhook_events: Vec<String>,

    /// Chats and senders whose events are not sent (comma-separated exact JIDs, or
    /// server suffixes like `@g.us`, `@s.whatsapp.net`, `@lid`).
    #[arg(long, env = "WHATSAPP_WEBHOOK_IGNORE_JIDS", value_delimiter = ',')]
    pub webhook_ignore_jids: Vec<String>,

    /// Accept any TLS certificate from webhook receivers (self-signed setups only).
    #[arg(
        long,
        env = "WHATSAPP_WEBHOOK_INSECURE_SKIP_VERIFY",
        default_value_t = false,
        action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub webhook_insecure_skip_verify: bool,

    /// An account's own webhook (`PATCH /devices/:id/webhook`) adds to the global
    /// URLs instead of replacing them.
    #[arg(
        long,
        env = "WHATSAPP_WEBHOOK_DEVICE_MERGE_GLOBAL",
        default_value_t = false,
        action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub webhook_device_merge_global: bool,

    /// Mark every incoming message read as it arrives (blue ticks for the sender).
    #[arg(
        long,
        env = "WHATSAPP_AUTO_MARK_READ",
        default_value_t = false,
        action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub auto_mark_read: bool,

    /// Reject incoming calls as they ring (`call.offer` webhooks then say
    /// `auto_rejected: true`).
    #[arg(
        long,
        env = "WHATSAPP_AUTO_REJECT_CALL",
        default_value_t = false,
        action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub auto_reject_call: bool,

    /// Check that a phone number is on WhatsApp before sending to it (an unknown
    /// number then gets a 400 instead of a send nobody receives). Default: on with
    /// `--api-compat v9`, off with v2.3.0 (as each Go version did).
    #[arg(
        long,
        env = "WHATSAPP_ACCOUNT_VALIDATION",
        action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub account_validation: Option<bool>,

    /// The presence each account announces when it connects: `available`,
    /// `unavailable` (the phone keeps its notifications) or `none`. Default:
    /// `unavailable` with `--api-compat v9`, `available` with v2.3.0.
    #[arg(long, env = "WHATSAPP_PRESENCE_ON_CONNECT", value_enum)]
    pub presence_on_connect: Option<PresenceOnConnect>,

    /// Now and then mark each account available for a while, then unavailable
    /// again: WhatsApp sends typing indicators only to clients seen online.
    /// Default: on with `--api-compat v9`, off with v2.3.0.
    #[arg(
        long,
        env = "WHATSAPP_PRESENCE_PULSE_ENABLED",
        action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub presence_pulse_enabled: Option<bool>,

    /// Time between two presence pulses of an account (`24h`, `90m`, `1h30m`).
    #[arg(long, env = "WHATSAPP_PRESENCE_PULSE_INTERVAL", default_value = "24h", value_parser = go_duration)]
    pub presence_pulse_interval: Duration,

    /// How long a presence pulse keeps the account available (`5m`).
    #[arg(long, env = "WHATSAPP_PRESENCE_PULSE_DURATION", default_value = "5m", value_parser = go_duration)]
    pub presence_pulse_duration: Duration,

    /// Also send this server's own sends to the webhooks, as `message` events with
    /// `is_from_me: true`.
    #[arg(
        long,
        env = "WHATSAPP_WEBHOOK_INCLUDE_OUTGOING",
        default_value_t = false,
        action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub webhook_include_outgoing: bool,

    /// Serve the MCP endpoint at `/mcp` for AI agents (behind the same auth).
    #[arg(
        long,
        env = "MCP_ENABLED",
        default_value_t = true,
        action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub mcp_enabled: bool,

    /// Hours a webhook event is retried (across restarts) before it is marked dead.
    #[arg(long, env = "WHATSAPP_WEBHOOK_RETRY_HOURS", default_value_t = 24)]
    pub webhook_retry_hours: u64,

    /// Most webhook events the outbox holds; beyond it, incoming messages are not
    /// acknowledged (WhatsApp delivers them again later).
    #[arg(long, env = "WHATSAPP_WEBHOOK_OUTBOX_MAX", default_value_t = 100_000)]
    pub webhook_outbox_max: u64,

    /// Wire format: `v2.3.0` (integer codes, `type=user|group`) or `v9` (the later
    /// Go versions: string codes, their statuses, no `type` needed).
    #[arg(long, env = "APP_API_COMPAT", value_enum, default_value = "v2.3.0")]
    pub api_compat: crate::http::wire::ApiCompat,

    /// Let `image_url`, `file_url`… fetch from loopback, private and link-local
    /// addresses (by default only public addresses are fetched).
    #[arg(long, env = "APP_ALLOW_PRIVATE_URLS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_private_urls: bool,

    /// Refuse unknown request fields with a 400 (by default they are ignored, as Go
    /// ignored them).
    #[arg(long, env = "APP_STRICT_FIELDS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub strict_fields: bool,

    /// Download incoming media into `statics/media/` for webhooks (`false`: the
    /// payload carries WhatsApp's URL instead).
    #[arg(
        long,
        env = "WHATSAPP_AUTO_DOWNLOAD_MEDIA",
        default_value_t = true,
        action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub auto_download_media: bool,

    /// Largest incoming media downloaded, in MB (1 MB = 1,000,000 bytes).
    #[arg(long, env = "WHATSAPP_MAX_DOWNLOAD_SIZE_MB", default_value_t = 100)]
    pub max_download_size_mb: u64,

    /// Days downloaded media is kept in `statics/media/` (0 keeps it forever).
    #[arg(long, env = "APP_MEDIA_RETENTION_DAYS", default_value_t = 30)]
    pub media_retention_days: u64,

    /// Days messages are kept in the message store (0 keeps them until logout).
    #[arg(long, env = "APP_MESSAGE_RETENTION_DAYS", default_value_t = 0)]
    pub message_retention_days: u64,

    /// WebSocket URL of the WhatsApp server. Only for test builds (cargo feature `e2e`),
    /// to talk to a fake WhatsApp server; a normal build refuses it.
    #[arg(long, env = "WHATSAPP_WS_URL")]
    pub whatsapp_ws_url: Option<String>,

    /// Proxy for the WebSocket to WhatsApp: `socks5://[user:password@]host:port` or
    /// `http://[user:password@]host:port` (Go's WHATSAPP_PROXY).
    #[arg(long, env = "WHATSAPP_PROXY", hide_env_values = true)]
    pub whatsapp_proxy: Option<String>,

    /// The Go server's settings that have no effect here (yet): accepted so that a
    /// Go deployment's command line and `.env` start this server unchanged.
    #[command(flatten)]
    pub go_only: crate::go_flags::GoOnly,
}

impl Config {
    pub fn ack_timeout(&self) -> Duration {
        Duration::from_secs(self.ack_timeout_secs)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub fn autoreply_interval(&self) -> Duration {
        Duration::from_secs(self.autoreply_interval_secs)
    }

    pub fn ffmpeg_timeout(&self) -> Duration {
        Duration::from_secs(self.ffmpeg_timeout_secs)
    }

    /// `--account-validation`, or the default of the wire format's Go version.
    pub fn account_validation(&self) -> bool {
        self.account_validation
            .unwrap_or(self.api_compat == crate::http::wire::ApiCompat::V9)
    }

    /// `--presence-on-connect`, or the default of the wire format's Go version
    /// (v2.3.0 announced `available`; the later versions `unavailable`).
    pub fn presence_on_connect(&self) -> PresenceOnConnect {
        self.presence_on_connect.unwrap_or(match self.api_compat {
            crate::http::wire::ApiCompat::V2_3_0 => PresenceOnConnect::Available,
            crate::http::wire::ApiCompat::V9 => PresenceOnConnect::Unavailable,
        })
    }

    /// The presence pulse's interval and duration, when it is on.
    pub fn presence_pulse(&self) -> Option<(Duration, Duration)> {
        self.presence_pulse_enabled
            .unwrap_or(self.api_compat == crate::http::wire::ApiCompat::V9)
            .then_some((self.presence_pulse_interval, self.presence_pulse_duration))
    }

    /// Where QR images go: `statics/images/qrcode/` in v2.3.0, `statics/qrcode/` in
    /// the later versions.
    pub fn qr_dir(&self) -> PathBuf {
        self.statics_dir.join(self.api_compat.qr_path())
    }

    pub fn temp_dir(&self) -> PathBuf {
        self.temp_dir.clone().unwrap_or_else(std::env::temp_dir)
    }

    /// The `--basic-auth` accounts as `(user, password)`; a malformed entry stops
    /// startup.
    pub fn basic_auth_accounts(&self) -> Result<Vec<(String, String)>, String> {
        self.basic_auth
            .iter()
            .filter(|entry| !entry.trim().is_empty())
            .map(|entry| match entry.split_once(':') {
                Some((user, password)) if !user.is_empty() && !password.is_empty() => {
                    Ok((user.to_owned(), password.to_owned()))
                }
                // The entry is not echoed: it may hold a password.
                _ => Err(
                    "--basic-auth / APP_BASIC_AUTH is not valid: use user:password, \
                     comma-separated for several accounts (a password cannot contain a comma)"
                        .to_owned(),
                ),
            })
            .collect()
    }

    /// The session path: `--db-uri`'s file when given, else `--db-path` (also with
    /// a Postgres `--db-uri`: its folder keeps this server's other files).
    pub fn session_path(&self) -> Result<PathBuf, String> {
        match &self.db_uri {
            _ if self.postgres_uri().is_some() => Ok(self.db_path.clone()),
            Some(uri) if !uri.trim().is_empty() => sqlite_uri_path(uri, "--db-uri / DB_URI"),
            _ => Ok(self.db_path.clone()),
        }
    }

    /// How the other servers on the database reach this one.
    pub fn cluster_address(&self) -> String {
        match self.cluster_address.as_deref().map(str::trim) {
            Some(given) if !given.is_empty() => given.trim_end_matches('/').to_owned(),
            _ => {
                let host = nix::unistd::gethostname()
                    .ok()
                    .and_then(|h| h.into_string().ok())
                    .unwrap_or_else(|| "localhost".to_owned());
                format!("http://{host}:{}", self.port)
            }
        }
    }

    /// `--db-uri` when it names a PostgreSQL database.
    pub fn postgres_uri(&self) -> Option<String> {
        let uri = unquoted(self.db_uri.as_deref()?);
        (uri.starts_with("postgres://") || uri.starts_with("postgresql://")).then(|| uri.to_owned())
    }

    /// The Go server's separate key store (`--db-keys-uri`), when one is set.
    pub fn keys_path(&self) -> Result<Option<PathBuf>, String> {
        match &self.db_keys_uri {
            Some(uri) if !uri.trim().is_empty() => {
                sqlite_uri_path(uri, "--db-keys-uri / DB_KEYS_URI").map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Where this server's files are (see [`crate::storage`]).
    pub fn layout(&self) -> crate::storage::Layout {
        // An invalid --db-uri stops startup in `check_consistency` first.
        crate::storage::Layout::new(&self.session_path().unwrap_or_else(|_| self.db_path.clone()))
    }

    /// The message store, beside the session.
    pub fn chat_db_path(&self) -> PathBuf {
        self.layout().messages
    }

    /// The lock that keeps a second server out of the storage folder.
    pub fn storage_lock_path(&self) -> PathBuf {
        self.layout().lock
    }

    /// `--whatsapp-proxy`, when set.
    pub fn proxy(&self) -> Result<Option<crate::whatsapp::proxy::Proxy>, String> {
        self.whatsapp_proxy
            .as_deref()
            .filter(|p| !p.trim().is_empty())
            .map(crate::whatsapp::proxy::Proxy::parse)
            .transpose()
    }

    /// `--base-path` as a route prefix: `""` or `/segment[/segment…]`, no trailing
    /// slash.
    pub fn route_prefix(&self) -> Result<String, String> {
        let trimmed = self.base_path.trim().trim_end_matches('/');
        if trimmed.is_empty() {
            return Ok(String::new());
        }
        let prefixed = if trimmed.starts_with('/') {
            trimmed.to_owned()
        } else {
            format!("/{trimmed}")
        };
        let fine = prefixed[1..].split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        });
        if fine {
            Ok(prefixed)
        } else {
            Err(format!(
                "--base-path / APP_BASE_PATH {:?} is not a path prefix like /gowa (letters, \
                 digits, - . _ ~ and / between segments)",
                self.base_path
            ))
        }
    }

    /// How long stored messages are kept; `None` until logout.
    pub fn message_retention(&self) -> Option<Duration> {
        (self.message_retention_days > 0)
            .then(|| Duration::from_secs(self.message_retention_days * 86_400))
    }

    /// The webhook settings, when any URL is configured.
    pub fn webhook_config(&self) -> Option<crate::webhook::WebhookConfig> {
        self.account_webhook_config(&self.layout(), &self.statics_dir.join("media"), None)
    }

    /// The webhook settings of one account: the global ones, or with its own
    /// webhook, that one (replacing the global URLs, or with
    /// `--webhook-device-merge-global` added to them). `None`: no URL at all.
    pub fn account_webhook_config(
        &self,
        layout: &crate::storage::Layout,
        media_dir: &std::path::Path,
        own: Option<&crate::accounts::AccountWebhook>,
    ) -> Option<crate::webhook::WebhookConfig> {
        let split = |text: &str| -> Vec<String> {
            text.split(',')
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty())
                .collect()
        };
        let global: Vec<String> = self
            .webhook
            .iter()
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        let own = own.filter(|o| !o.url.trim().is_empty());
        let urls = match own {
            None => global,
            Some(own) if self.webhook_device_merge_global => {
                let mut urls = global;
                for url in split(&own.url) {
                    if !urls.contains(&url) {
                        urls.push(url);
                    }
                }
                urls
            }
            Some(own) => split(&own.url),
        };
        if urls.is_empty() {
            return None;
        }
        Some(crate::webhook::WebhookConfig {
            urls,
            secret: own
                .map(|o| o.secret.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| self.webhook_secret.clone()),
            events: own
                .map(|o| split(&o.events))
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| self.webhook_events.clone()),
            outbox_path: layout.outbox.clone(),
            outbox_postgres: None,
            max_events: self.webhook_outbox_max,
            max_age: Duration::from_secs(self.webhook_retry_hours * 3600),
            ignore_jids: self.webhook_ignore_jids.clone(),
            insecure_skip_verify: own.map_or(self.webhook_insecure_skip_verify, |o| {
                o.insecure_skip_verify
            }),
            session_id: None,
            media: self
                .auto_download_media
                .then(|| crate::webhook::media::MediaConfig {
                    dir: media_dir.to_owned(),
                    max_bytes: self.max_download_size_mb.saturating_mul(1_000_000),
                    retention: (self.media_retention_days > 0)
                        .then(|| Duration::from_secs(self.media_retention_days * 86_400)),
                }),
        })
    }

    /// Settings that contradict each other.
    pub fn check_consistency(&self) -> Result<(), String> {
        self.basic_auth_accounts()?;
        self.session_path()?;
        self.keys_path()?;
        self.route_prefix()?;
        self.proxy()?;
        if let Some(bad) = self
            .webhook
            .iter()
            .map(|u| u.trim())
            .find(|u| !(u.is_empty() || u.starts_with("http://") || u.starts_with("https://")))
        {
            return Err(format!(
                "--webhook / WHATSAPP_WEBHOOK: {bad:?} is not an http:// or https:// URL"
            ));
        }
        if self.request_timeout_secs <= self.ack_timeout_secs {
            return Err(format!(
                "--request-timeout-secs ({}) must be longer than --ack-timeout-secs ({}), \
                 or a send would be cut off before it can report its outcome",
                self.request_timeout_secs, self.ack_timeout_secs
            ));
        }
        Ok(())
    }

    /// Settings a normal build must refuse rather than silently ignore.
    pub fn check_build_support(&self) -> Result<(), String> {
        if self.whatsapp_ws_url.is_none() && cfg!(feature = "e2e") {
            return Err(
                "this is a test build (cargo feature `e2e`: it does not check WhatsApp's \
                 certificate chain); it only talks to a fake WhatsApp server given by \
                 WHATSAPP_WS_URL / --whatsapp-ws-url. Build without `e2e` to use WhatsApp"
                    .to_owned(),
            );
        }
        if self.whatsapp_ws_url.is_some() && !cfg!(feature = "e2e") {
            return Err(
                "WHATSAPP_WS_URL / --whatsapp-ws-url is only accepted by a test build \
                 (cargo feature `e2e`); this build always talks to WhatsApp itself"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

/// The file of a Go `DB_URI`: `file:storages/whatsapp.db?_foreign_keys=on` →
/// `storages/whatsapp.db`. The URI is not echoed in errors: it may hold a password.
/// A setting's value without the quotes a `.env` or compose file may leave on it.
fn unquoted(value: &str) -> &str {
    value.trim().trim_matches(|c| c == '"' || c == '\'')
}

fn sqlite_uri_path(uri: &str, what: &str) -> Result<PathBuf, String> {
    let uri = unquoted(uri);
    if let Some(rest) = uri.strip_prefix("file:") {
        let path = rest.split('?').next().unwrap_or_default();
        // `file:///data/whatsapp.db` is an absolute path; `file://host/…` is not a file.
        let path = match path.strip_prefix("//") {
            Some(abs) if abs.starts_with('/') => abs,
            Some(_) => {
                return Err(format!(
                    "{what}: only local files (file:PATH) are supported"
                ));
            }
            None => path,
        };
        if path.is_empty() {
            return Err(format!("{what}: file: names no file"));
        }
        return Ok(PathBuf::from(path));
    }
    if uri.starts_with("postgres:") || uri.starts_with("postgresql:") {
        return Err(format!(
            "{what}: Postgres is not supported here; use file:PATH (a Postgres --db-uri \
             keeps the keys with the session)"
        ));
    }
    Err(format!(
        "{what}: unknown database type; only file: (SQLite) is supported"
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn durations_are_read_as_go_writes_them() {
        assert_eq!(go_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(go_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(go_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(go_duration("1.5h"), Ok(Duration::from_secs(5_400)));
        assert_eq!(go_duration("2s"), Ok(Duration::from_secs(2)));
        for bad in ["", "0s", "-5m", "soon", "5"] {
            assert!(go_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn behaviour_defaults_follow_the_wire_formats_go_version() {
        let v2 = Config::parse_from(["whatsapp-api"]);
        assert!(!v2.account_validation());
        assert_eq!(v2.presence_on_connect(), PresenceOnConnect::Available);
        assert_eq!(v2.presence_pulse(), None);
        let v9 = Config::parse_from(["whatsapp-api", "--api-compat", "v9"]);
        assert!(v9.account_validation());
        assert_eq!(v9.presence_on_connect(), PresenceOnConnect::Unavailable);
        assert_eq!(
            v9.presence_pulse(),
            Some((Duration::from_secs(86_400), Duration::from_secs(300)))
        );
        let set = Config::parse_from([
            "whatsapp-api",
            "--api-compat",
            "v9",
            "--account-validation=false",
            "--presence-on-connect",
            "none",
            "--presence-pulse-enabled=false",
        ]);
        assert!(!set.account_validation());
        assert_eq!(set.presence_on_connect(), PresenceOnConnect::None);
        assert_eq!(set.presence_pulse(), None);
    }

    #[test]
    fn an_accounts_webhook_replaces_the_global_one_or_adds_to_it() {
        let config = |args: &[&str]| {
            let mut argv = vec![
                "whatsapp-api",
                "--webhook",
                "https://g.example/a,https://g.example/b",
            ];
            argv.extend_from_slice(args);
            argv.extend_from_slice(&["--webhook-secret", "global", "--webhook-events", "message"]);
            Config::parse_from(argv)
        };
        let layout = crate::storage::Layout::in_folder(Path::new("/data/accounts/x"));
        let media = Path::new("/statics/media/x");
        let own = crate::accounts::AccountWebhook {
            url: "https://own.example/h, https://g.example/a".into(),
            secret: "own".into(),
            events: String::new(),
            insecure_skip_verify: true,
        };
        let replaced = config(&[])
            .account_webhook_config(&layout, media, Some(&own))
            .unwrap();
        assert_eq!(
            replaced.urls,
            ["https://own.example/h", "https://g.example/a"]
        );
        assert_eq!(replaced.secret, "own");
        assert_eq!(
            replaced.events,
            ["message"],
            "the global events when it names none"
        );
        assert!(replaced.insecure_skip_verify);
        assert_eq!(
            replaced.outbox_path,
            Path::new("/data/accounts/x/outbox.db")
        );
        assert_eq!(replaced.media.unwrap().dir, media);

        let merged = config(&["--webhook-device-merge-global"])
            .account_webhook_config(&layout, media, Some(&own))
            .unwrap();
        assert_eq!(
            merged.urls,
            [
                "https://g.example/a",
                "https://g.example/b",
                "https://own.example/h"
            ]
        );

        let global = config(&[])
            .account_webhook_config(&layout, media, None)
            .unwrap();
        assert_eq!(global.urls, ["https://g.example/a", "https://g.example/b"]);
        assert_eq!(global.secret, "global");
        let none =
            Config::parse_from(["whatsapp-api"]).account_webhook_config(&layout, media, None);
        assert!(none.is_none());
        let own_only = Config::parse_from(["whatsapp-api"])
            .account_webhook_config(&layout, media, Some(&own))
            .unwrap();
        assert_eq!(own_only.urls.len(), 2);
    }

    #[test]
    fn go_db_uris_name_the_session_file() {
        let path = |uri: &str| Config::parse_from(["whatsapp-api", "--db-uri", uri]).session_path();
        assert_eq!(
            path("file:storages/whatsapp.db?_foreign_keys=on"),
            Ok(PathBuf::from("storages/whatsapp.db"))
        );
        assert_eq!(
            path("\"file:/data/wa.db\""),
            Ok(PathBuf::from("/data/wa.db"))
        );
        assert_eq!(path("file:///data/wa.db"), Ok(PathBuf::from("/data/wa.db")));
        // Postgres keeps the sessions; the storage folder stays --db-path's.
        let pg = Config::parse_from(["whatsapp-api", "--db-uri", "'postgres://u:p@db/wa'"]);
        assert_eq!(pg.postgres_uri().as_deref(), Some("postgres://u:p@db/wa"));
        assert_eq!(pg.session_path(), Ok(PathBuf::from("storages/whatsapp.db")));
        let keys = Config::parse_from([
            "whatsapp-api",
            "--db-keys-uri",
            "postgres://user:hunter2@db/wa",
        ])
        .keys_path()
        .unwrap_err();
        assert!(keys.contains("Postgres is not supported here"), "{keys}");
        assert!(!keys.contains("hunter2"), "the URI is not echoed: {keys}");
        assert!(
            path("mysql://x")
                .unwrap_err()
                .contains("unknown database type")
        );
        // --db-uri wins over --db-path; without it --db-path is the session path.
        let both = Config::parse_from([
            "whatsapp-api",
            "--db-path",
            "a/whatsapp.db",
            "--db-uri",
            "file:b/whatsapp.db",
        ]);
        assert_eq!(both.session_path(), Ok(PathBuf::from("b/whatsapp.db")));
        assert_eq!(both.chat_db_path(), PathBuf::from("b/chat.db"));
        assert_eq!(both.layout().session, PathBuf::from("b/whatsapp-rust.db"));
    }

    #[test]
    fn base_paths_are_plain_prefixes() {
        let prefix =
            |p: &str| Config::parse_from(["whatsapp-api", "--base-path", p]).route_prefix();
        assert_eq!(prefix(""), Ok(String::new()));
        assert_eq!(prefix("/"), Ok(String::new()));
        assert_eq!(prefix("/gowa"), Ok("/gowa".into()));
        assert_eq!(prefix("gowa/"), Ok("/gowa".into()));
        assert_eq!(prefix("/a/b-c"), Ok("/a/b-c".into()));
        for bad in ["/../x", "/a//b", "/a b", "/<script>"] {
            assert!(prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rest_and_health_may_lead_the_flags() {
        let (mode, config) = from_args(["whatsapp-api", "rest", "--port", "3001"]);
        assert_eq!((mode, config.port), (Mode::Serve, 3001));
        let (mode, config) = from_args(["whatsapp-api", "health", "-p", "4000"]);
        assert_eq!((mode, config.port), (Mode::Health, 4000));
        let (mode, config) = from_args(["whatsapp-api", "--port", "3002"]);
        assert_eq!((mode, config.port), (Mode::Serve, 3002));
        // Flags before the subcommand, as cobra's persistent flags allow.
        let (mode, config) = from_args(["whatsapp-api", "-d", "rest", "--port", "3003"]);
        assert_eq!((mode, config.debug, config.port), (Mode::Serve, true, 3003));
        let (mode, config) = from_args(["whatsapp-api", "--port=3004", "health"]);
        assert_eq!((mode, config.port), (Mode::Health, 3004));
        let (mode, config) = from_args(["whatsapp-api", "--port", "3005", "rest"]);
        assert_eq!((mode, config.port), (Mode::Serve, 3005));
        let (mode, config) =
            from_args(["whatsapp-api", "--debug", "false", "--port", "3006", "rest"]);
        assert_eq!(
            (mode, config.debug, config.port),
            (Mode::Serve, false, 3006)
        );
        let (mode, config) = from_args([
            "whatsapp-api",
            "--chatwoot-url",
            "https://cw.example",
            "rest",
        ]);
        assert_eq!(
            (mode, config.go_only.chatwoot_url.as_deref()),
            (Mode::Serve, Some("https://cw.example"))
        );
        // A flag's value that reads `rest` stays its value.
        let (mode, config) = from_args(["whatsapp-api", "--autoreply", "rest"]);
        assert_eq!(
            (mode, config.autoreply.as_deref()),
            (Mode::Serve, Some("rest"))
        );
    }

    #[test]
    fn a_custom_whatsapp_url_needs_a_test_build() {
        let config = Config::parse_from([
            "whatsapp-api",
            "--whatsapp-ws-url",
            "ws://127.0.0.1:1/ws/chat",
        ]);
        let verdict = config.check_build_support();
        if cfg!(feature = "e2e") {
            assert_eq!(verdict, Ok(()));
        } else {
            let err = verdict.unwrap_err();
            assert!(err.contains("only accepted by a test build"), "{err}");
        }
        // And a test build refuses to talk to the real WhatsApp.
        let plain = Config::parse_from(["whatsapp-api"]);
        if cfg!(feature = "e2e") {
            let err = plain.check_build_support().unwrap_err();
            assert!(
                err.contains("only talks to a fake WhatsApp server"),
                "{err}"
            );
        } else {
            assert_eq!(plain.check_build_support(), Ok(()));
        }
    }

    #[test]
    fn basic_auth_takes_several_accounts_and_refuses_malformed_ones() {
        let config = Config::parse_from(["whatsapp-api", "-b", "kemal:secret,toni:pa:ss"]);
        assert_eq!(
            config.basic_auth_accounts().unwrap(),
            vec![
                ("kemal".to_owned(), "secret".to_owned()),
                ("toni".to_owned(), "pa:ss".to_owned())
            ]
        );
        for bad in ["kemal", "kemal:", ":secret", "a:b,c"] {
            let config = Config::parse_from(["whatsapp-api", "--basic-auth", bad]);
            let err = config.check_consistency().unwrap_err();
            assert!(err.contains("is not valid"), "{bad}: {err}");
            assert!(!err.contains("secret"), "the value is not echoed: {err}");
        }
        let none = Config::parse_from(["whatsapp-api"]);
        assert!(none.basic_auth_accounts().unwrap().is_empty());
    }

    #[test]
    fn webhooks_need_http_urls_and_keep_their_outbox_beside_the_session() {
        let config = Config::parse_from([
            "whatsapp-api",
            "--db-path",
            "/data/wa/whatsapp.db",
            "-w",
            "http://a.example/hook, https://b.example/hook",
        ]);
        assert_eq!(config.check_consistency(), Ok(()));
        let hooks = config.webhook_config().unwrap();
        assert_eq!(
            hooks.urls,
            ["http://a.example/hook", "https://b.example/hook"]
        );
        assert_eq!(hooks.secret, "secret", "Go's default");
        assert_eq!(hooks.outbox_path, PathBuf::from("/data/wa/outbox.db"));
        assert_eq!(hooks.max_age, Duration::from_secs(24 * 3600));
        let bad = Config::parse_from(["whatsapp-api", "-w", "ftp://x/hook"]);
        assert!(
            bad.check_consistency()
                .unwrap_err()
                .contains("ftp://x/hook")
        );
        assert!(
            Config::parse_from(["whatsapp-api"])
                .webhook_config()
                .is_none()
        );
    }

    #[test]
    fn a_request_timeout_shorter_than_the_ack_timeout_is_refused() {
        let config = Config::parse_from([
            "whatsapp-api",
            "--request-timeout-secs",
            "10",
            "--ack-timeout-secs",
            "30",
        ]);
        let err = config.check_consistency().unwrap_err();
        assert!(err.contains("--request-timeout-secs (10)"), "{err}");
        assert_eq!(
            Config::parse_from(["whatsapp-api"]).check_consistency(),
            Ok(())
        );
    }
}
