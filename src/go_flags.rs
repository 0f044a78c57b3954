//! The Go server's (v9.2) flags and environment variables that have no effect here.
//! A Go deployment passes them on its command line, in its compose file or in its
//! `.env`; they are accepted so it starts unchanged, and startup names the ones set
//! in one warning. Settings that do something here are ordinary fields of
//! [`crate::config::Config`].

/// Declares the accepted-only settings: field, flag (`--name`), environment
/// variable, and why it has no effect.
macro_rules! go_only {
    ($( $field:ident, $flag:literal, $env:literal, $why:literal; )*) => {
        /// Go settings accepted without effect (see the module docs).
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct GoOnly {
            $(
                #[arg(
                    long = $flag,
                    env = $env,
                    hide = true,
                    num_args = 0..=1,
                    default_missing_value = "true"
                )]
                pub $field: Option<String>,
            )*
        }

        impl GoOnly {
            /// Every accepted-only setting: (flag, environment variable, why).
            pub const ALL: &'static [(&'static str, &'static str, &'static str)] =
                &[$(($flag, $env, $why)),*];

            /// The settings given a non-empty value: (flag, environment variable).
            pub fn given(&self) -> Vec<(&'static str, &'static str)> {
                let mut set = Vec::new();
                $(
                    if self.$field.as_deref().is_some_and(|v| !v.trim().is_empty()) {
                        set.push(($flag, $env));
                    }
                )*
                set
            }
        }
    };
}

go_only! {
    trusted_proxies, "trusted-proxies", "APP_TRUSTED_PROXIES",
        "X-Forwarded-Host is always honoured for the host check";
    ui_enabled, "ui-enabled", "APP_UI_ENABLED",
        "this server serves its own dashboard at /";
    ui_auto_update, "ui-auto-update", "APP_UI_AUTO_UPDATE",
        "the dashboard is built in; nothing is downloaded";
    ui_repo, "ui-repo", "APP_UI_REPO", "the dashboard is built in";
    ui_asset_name, "ui-asset-name", "APP_UI_ASSET_NAME", "the dashboard is built in";
    ui_update_interval, "ui-update-interval", "APP_UI_UPDATE_INTERVAL",
        "the dashboard is built in";
    ui_asset_sha256, "ui-asset-sha256", "APP_UI_ASSET_SHA256", "the dashboard is built in";
    ui_github_token, "ui-github-token", "APP_UI_GITHUB_TOKEN", "the dashboard is built in";
    mcp_oauth_enabled, "mcp-oauth-enabled", "MCP_OAUTH_ENABLED",
        "/mcp takes the REST API's credentials; no OAuth";
    mcp_oauth_issuer_url, "mcp-oauth-issuer-url", "MCP_OAUTH_ISSUER_URL",
        "/mcp takes the REST API's credentials; no OAuth";
    mcp_oauth_resource_url, "mcp-oauth-resource-url", "MCP_OAUTH_RESOURCE_URL",
        "/mcp takes the REST API's credentials; no OAuth";
    mcp_oauth_db_uri, "mcp-oauth-db-uri", "MCP_OAUTH_DB_URI",
        "/mcp takes the REST API's credentials; no OAuth";
    chat_storage, "chat-storage", "WHATSAPP_CHAT_STORAGE",
        "the message store is always on (routes such as /chats need it)";
    chat_storage_max_open_conns, "chat-storage-max-open-conns", "CHAT_STORAGE_MAX_OPEN_CONNS",
        "the message store manages its own connections";
    chatwoot_enabled, "chatwoot-enabled", "CHATWOOT_ENABLED", "no Chatwoot integration";
    chatwoot_url, "chatwoot-url", "CHATWOOT_URL", "no Chatwoot integration";
    chatwoot_api_token, "chatwoot-api-token", "CHATWOOT_API_TOKEN", "no Chatwoot integration";
    chatwoot_account_id, "chatwoot-account-id", "CHATWOOT_ACCOUNT_ID", "no Chatwoot integration";
    chatwoot_inbox_id, "chatwoot-inbox-id", "CHATWOOT_INBOX_ID", "no Chatwoot integration";
    chatwoot_device_id, "chatwoot-device-id", "CHATWOOT_DEVICE_ID", "no Chatwoot integration";
    chatwoot_import_messages, "chatwoot-import-messages", "CHATWOOT_IMPORT_MESSAGES",
        "no Chatwoot integration";
    chatwoot_days_limit_import_messages, "chatwoot-days-limit-import-messages",
        "CHATWOOT_DAYS_LIMIT_IMPORT_MESSAGES", "no Chatwoot integration";
    chatwoot_import_db_uri, "chatwoot-import-db-uri", "CHATWOOT_IMPORT_DB_URI",
        "no Chatwoot integration";
    chatwoot_import_placeholder_media_message, "chatwoot-import-placeholder-media-message",
        "CHATWOOT_IMPORT_PLACEHOLDER_MEDIA_MESSAGE", "no Chatwoot integration";
    chatwoot_import_media_with_rest, "chatwoot-import-media-with-rest",
        "CHATWOOT_IMPORT_MEDIA_WITH_REST", "no Chatwoot integration";
    chatwoot_auto_create, "chatwoot-auto-create", "CHATWOOT_AUTO_CREATE",
        "no Chatwoot integration";
    chatwoot_inbox_name, "chatwoot-inbox-name", "CHATWOOT_INBOX_NAME", "no Chatwoot integration";
    chatwoot_webhook_url, "chatwoot-webhook-url", "CHATWOOT_WEBHOOK_URL",
        "no Chatwoot integration";
    chatwoot_webhook_secret, "chatwoot-webhook-secret", "CHATWOOT_WEBHOOK_SECRET",
        "no Chatwoot integration";
    chatwoot_reopen_conversation, "chatwoot-reopen-conversation", "CHATWOOT_REOPEN_CONVERSATION",
        "no Chatwoot integration";
    chatwoot_conversation_pending, "chatwoot-conversation-pending",
        "CHATWOOT_CONVERSATION_PENDING", "no Chatwoot integration";
    chatwoot_ignore_jids, "chatwoot-ignore-jids", "CHATWOOT_IGNORE_JIDS",
        "no Chatwoot integration";
    chatwoot_sign_msg, "chatwoot-sign-msg", "CHATWOOT_SIGN_MSG", "no Chatwoot integration";
    chatwoot_sign_delimiter, "chatwoot-sign-delimiter", "CHATWOOT_SIGN_DELIMITER",
        "no Chatwoot integration";
    chatwoot_forward_edits, "chatwoot-forward-edits", "CHATWOOT_FORWARD_EDITS",
        "no Chatwoot integration";
    chatwoot_forward_deletes, "chatwoot-forward-deletes", "CHATWOOT_FORWARD_DELETES",
        "no Chatwoot integration";
    chatwoot_message_read, "chatwoot-message-read", "CHATWOOT_MESSAGE_READ",
        "no Chatwoot integration";
    chatwoot_message_delete, "chatwoot-message-delete", "CHATWOOT_MESSAGE_DELETE",
        "no Chatwoot integration";
    chatwoot_allowed_hosts, "chatwoot-allowed-hosts", "CHATWOOT_ALLOWED_HOSTS",
        "no Chatwoot integration";
}

/// The one startup warning naming each Go setting that is set but has no effect
/// here; `None` when there is none. Values are not shown (some are secrets).
pub fn warning(go_only: &GoOnly) -> Option<String> {
    let given = go_only.given();
    if given.is_empty() {
        return None;
    }
    let names: Vec<String> = given
        .iter()
        .map(|(flag, env)| format!("--{flag} ({env})"))
        .collect();
    Some(format!(
        "accepted for compatibility with the Go server, no effect here: {}",
        names.join(", ")
    ))
}

/// The settings of `.env` in the working directory, as the Go server reads it:
/// `KEY=value` lines. Nothing is put into the process environment; the caller
/// makes them defaults below the environment and the flags. A file that cannot be
/// parsed is an error that does not quote it (it may hold secrets).
pub fn dot_env(dir: &std::path::Path) -> Result<Vec<(String, String)>, String> {
    let path = dir.join(".env");
    let lines = match dotenvy::from_path_iter(&path) {
        Ok(lines) => lines,
        Err(e) if e.not_found() => return Ok(Vec::new()),
        Err(e) => {
            return Err(format!(
                ".env in the working directory cannot be read ({})",
                e.kind_only()
            ));
        }
    };
    let mut pairs = Vec::new();
    for (n, line) in lines.enumerate() {
        match line {
            Ok(pair) => pairs.push(pair),
            Err(_) => {
                return Err(format!(
                    ".env in the working directory cannot be parsed at its setting {} \
                     (check its quotes); its content is not shown, it may hold secrets",
                    n + 1
                ));
            }
        }
    }
    Ok(pairs)
}

/// The part of a dotenvy error that holds no file content.
trait KindOnly {
    fn kind_only(&self) -> String;
}

impl KindOnly for dotenvy::Error {
    fn kind_only(&self) -> String {
        match self {
            dotenvy::Error::Io(e) => e.kind().to_string(),
            dotenvy::Error::LineParse(..) => "a line cannot be parsed".into(),
            dotenvy::Error::EnvVar(e) => e.to_string(),
            _ => "unreadable".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::config::Config;

    #[test]
    fn a_go_command_line_parses_and_is_named_in_one_warning() {
        let config = Config::try_parse_from([
            "whatsapp-api",
            "--os=Chrome",
            "--db-uri=file:storages/whatsapp.db?_foreign_keys=on",
            "--base-path=/gowa",
            "--account-validation=false",
            "--auto-mark-read",
            "--chatwoot-api-token=s3cret",
            "--chatwoot-allowed-hosts=a.example",
            "--debug=true",
            "--webhook-insecure-skip-verify=false",
            "--auto-download-media=false",
            "-H",
            "127.0.0.1",
            "--port",
            "3001",
        ])
        .unwrap();
        assert_eq!(config.device_name.as_deref(), Some("Chrome"));
        assert_eq!(config.base_path, "/gowa");
        assert_eq!(config.port, 3001);
        assert!(config.debug);
        assert!(!config.webhook_insecure_skip_verify);
        assert!(!config.auto_download_media);
        let warning = super::warning(&config.go_only).unwrap();
        assert_eq!(config.account_validation, Some(false));
        assert!(
            !warning.contains("--account-validation"),
            "--account-validation has an effect: {warning}"
        );
        assert!(config.auto_mark_read);
        assert!(
            !warning.contains("--auto-mark-read"),
            "--auto-mark-read has an effect: {warning}"
        );
        assert!(warning.contains("--chatwoot-api-token"), "{warning}");
        assert!(
            !warning.contains("s3cret"),
            "values are not shown: {warning}"
        );
        assert!(!warning.contains("--os"), "--os has an effect: {warning}");
        let plain = Config::try_parse_from(["whatsapp-api"]).unwrap();
        assert_eq!(super::warning(&plain.go_only), None);
    }

    #[test]
    fn dot_env_settings_are_defaults_below_the_environment_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".env"),
            "# a Go .env\nAPP_PORT=3005\nAPP_BASIC_AUTH=a:1,b:2\nAPP_DEBUG=true\n\
             HTTPS_PROXY=http://proxy.example\nWHATSAPP_ACCOUNT_VALIDATION=false\n",
        )
        .unwrap();
        let pairs = super::dot_env(dir.path()).unwrap();
        let config = crate::config::parse_with_defaults(["whatsapp-api"], &pairs).unwrap();
        assert_eq!(config.port, 3005);
        assert!(config.debug);
        assert_eq!(config.basic_auth, ["a:1", "b:2"]);
        assert_eq!(config.account_validation, Some(false));
        let flagged =
            crate::config::parse_with_defaults(["whatsapp-api", "--port", "3006"], &pairs).unwrap();
        assert_eq!(flagged.port, 3006, "a flag wins over .env");

        std::fs::write(
            dir.path().join(".env"),
            "APP_PORT=3000\nAPP_BASIC_AUTH='u:hunter2\n",
        )
        .unwrap();
        let err = super::dot_env(dir.path()).unwrap_err();
        assert!(err.contains("cannot be parsed"), "{err}");
        assert!(!err.contains("hunter2"), "the content is not shown: {err}");
        assert_eq!(super::dot_env(&dir.path().join("none")).unwrap(), vec![]);
    }

    #[test]
    fn every_setting_has_a_distinct_flag_and_variable() {
        let all = super::GoOnly::ALL;
        let mut flags: Vec<_> = all.iter().map(|(f, _, _)| *f).collect();
        let mut envs: Vec<_> = all.iter().map(|(_, e, _)| *e).collect();
        flags.sort();
        flags.dedup();
        envs.sort();
        envs.dedup();
        assert_eq!((flags.len(), envs.len()), (all.len(), all.len()));
    }
}
