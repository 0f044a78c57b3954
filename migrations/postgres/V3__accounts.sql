-- The account registry (migrations/accounts in SQLite's accounts.db): the accounts
-- of the servers using this database, one row per slot, so that every server
-- sharing it sees the same ones.
CREATE TABLE wa_accounts (
    -- The slot id clients name in X-Device-Id or device_id.
    id             TEXT   PRIMARY KEY,
    -- Where its files are, relative to each server's own storage folder: '' is the
    -- storage folder itself (the first account), else 'accounts/<uuid>'. Not unique,
    -- unlike SQLite's: every server has a storage folder of its own.
    folder         TEXT   NOT NULL,
    -- Unix seconds.
    created_at     BIGINT NOT NULL,
    -- The SHA-256 of the account's own API key (POST /devices with api_key, POST
    -- /devices/:id/api-key), lower-case hex; NULL when it has none. The key itself
    -- is shown once and never stored.
    api_key_sha256 TEXT   UNIQUE
);

-- An account's own webhook (PATCH /devices/:id/webhook): replaces the global URLs,
-- or adds to them with WHATSAPP_WEBHOOK_DEVICE_MERGE_GLOBAL.
CREATE TABLE wa_account_webhooks (
    account_id           TEXT    PRIMARY KEY REFERENCES wa_accounts (id) ON DELETE CASCADE,
    -- Comma-separated, as the global setting.
    url                  TEXT    NOT NULL,
    secret               TEXT    NOT NULL,
    -- Comma-separated event names; '' sends all.
    events               TEXT    NOT NULL,
    insecure_skip_verify BOOLEAN NOT NULL
);

-- What was imported from a Go server's whatsmeow tables in this database (a
-- device and the state of the tables), so that no server imports it again.
CREATE TABLE wa_imports (
    key         TEXT   PRIMARY KEY,
    -- Unix seconds.
    imported_at BIGINT NOT NULL
);
