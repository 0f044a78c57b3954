-- The accounts this server holds: the later Go versions' device slots.
CREATE TABLE accounts (
    -- The slot id clients name in X-Device-Id or device_id.
    id         TEXT    PRIMARY KEY,
    -- Where its files are, relative to the storage folder: '' is the storage folder
    -- itself (the first account, where the one-account versions kept it), else
    -- 'accounts/<uuid>'.
    folder     TEXT    NOT NULL UNIQUE,
    -- Unix seconds.
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- An account's own webhook (PATCH /devices/:id/webhook): replaces the global URLs,
-- or adds to them with WHATSAPP_WEBHOOK_DEVICE_MERGE_GLOBAL.
CREATE TABLE account_webhooks (
    account_id           TEXT    PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    -- Comma-separated, as the global setting.
    url                  TEXT    NOT NULL,
    secret               TEXT    NOT NULL,
    -- Comma-separated event names; '' sends all.
    events               TEXT    NOT NULL,
    insecure_skip_verify INTEGER NOT NULL
) WITHOUT ROWID;
