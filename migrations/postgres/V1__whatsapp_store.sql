-- The WhatsApp session state of whatsapp-rust (its storage `Backend`), for any
-- number of accounts in one database: every key starts with the account's name.
-- Integers WhatsApp keeps as u32 or i64 are BIGINT; timestamps are unix seconds.

CREATE TABLE wa_devices (
    account TEXT NOT NULL PRIMARY KEY,
    -- serde_json of whatsapp-rust's `Device`.
    device  BYTEA NOT NULL
);

-- Signal addresses are compared byte-wise ("C"), so that all the devices of one
-- user (`user@server`, `user:device@server`) are one index range.
CREATE TABLE wa_identities (
    account      TEXT NOT NULL,
    address      TEXT COLLATE "C" NOT NULL,
    identity_key BYTEA NOT NULL,
    PRIMARY KEY (account, address)
);

CREATE TABLE wa_sessions (
    account TEXT NOT NULL,
    address TEXT COLLATE "C" NOT NULL,
    record  BYTEA NOT NULL,
    PRIMARY KEY (account, address)
);

CREATE TABLE wa_prekeys (
    account  TEXT NOT NULL,
    id       BIGINT NOT NULL,
    record   BYTEA NOT NULL,
    uploaded BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (account, id)
);

CREATE TABLE wa_signed_prekeys (
    account TEXT NOT NULL,
    id      BIGINT NOT NULL,
    record  BYTEA NOT NULL,
    PRIMARY KEY (account, id)
);

CREATE TABLE wa_sender_keys (
    account TEXT NOT NULL,
    address TEXT NOT NULL,
    record  BYTEA NOT NULL,
    PRIMARY KEY (account, address)
);

-- Orders the app-state sync keys by when they were last set: the latest one
-- encrypts outgoing mutations.
CREATE SEQUENCE wa_app_state_sync_key_order;

CREATE TABLE wa_app_state_sync_keys (
    account       TEXT NOT NULL,
    key_id        BYTEA NOT NULL,
    key_data      BYTEA NOT NULL,
    fingerprint   BYTEA NOT NULL,
    key_timestamp BIGINT NOT NULL,
    set_order     BIGINT NOT NULL DEFAULT nextval('wa_app_state_sync_key_order'),
    PRIMARY KEY (account, key_id)
);
CREATE INDEX wa_app_state_sync_keys_latest ON wa_app_state_sync_keys (account, set_order);

CREATE TABLE wa_app_state_versions (
    account            TEXT NOT NULL,
    name               TEXT NOT NULL,
    version            BIGINT NOT NULL,
    hash               BYTEA NOT NULL,
    -- serde_json of the index/value map.
    index_value_map    BYTEA NOT NULL,
    mac_mismatch_fatal BOOLEAN NOT NULL,
    PRIMARY KEY (account, name)
);

CREATE TABLE wa_app_state_mutation_macs (
    account   TEXT NOT NULL,
    name      TEXT NOT NULL,
    index_mac BYTEA NOT NULL,
    version   BIGINT NOT NULL,
    value_mac BYTEA NOT NULL,
    PRIMARY KEY (account, name, index_mac)
);

CREATE TABLE wa_sender_key_devices (
    account    TEXT NOT NULL,
    group_jid  TEXT NOT NULL,
    device_jid TEXT NOT NULL,
    has_key    BOOLEAN NOT NULL,
    PRIMARY KEY (account, group_jid, device_jid)
);
CREATE INDEX wa_sender_key_devices_device ON wa_sender_key_devices (account, device_jid);

-- Orders the mappings of one phone number: the LID put last is its LID.
CREATE SEQUENCE wa_lid_pn_mapping_order;

CREATE TABLE wa_lid_pn_mappings (
    account         TEXT NOT NULL,
    lid             TEXT NOT NULL,
    phone_number    TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    learning_source TEXT NOT NULL,
    put_order       BIGINT NOT NULL DEFAULT nextval('wa_lid_pn_mapping_order'),
    PRIMARY KEY (account, lid)
);
CREATE INDEX wa_lid_pn_mappings_phone ON wa_lid_pn_mappings (account, phone_number, put_order);

CREATE TABLE wa_base_keys (
    account    TEXT NOT NULL,
    address    TEXT NOT NULL,
    message_id TEXT NOT NULL,
    base_key   BYTEA NOT NULL,
    PRIMARY KEY (account, address, message_id)
);

CREATE TABLE wa_device_lists (
    account        TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    -- serde_json of the devices.
    devices        BYTEA NOT NULL,
    list_timestamp BIGINT NOT NULL,
    phash          TEXT,
    raw_id         BIGINT,
    PRIMARY KEY (account, user_id)
);

CREATE TABLE wa_group_metadata (
    account   TEXT NOT NULL,
    group_jid TEXT NOT NULL,
    metadata  BYTEA NOT NULL,
    PRIMARY KEY (account, group_jid)
);

-- An empty token is a placeholder that only carries the sender timestamp.
CREATE TABLE wa_tc_tokens (
    account          TEXT NOT NULL,
    jid              TEXT NOT NULL,
    token            BYTEA NOT NULL,
    token_timestamp  BIGINT NOT NULL,
    sender_timestamp BIGINT,
    PRIMARY KEY (account, jid)
);

CREATE TABLE wa_sent_messages (
    account    TEXT NOT NULL,
    chat_jid   TEXT NOT NULL,
    message_id TEXT NOT NULL,
    payload    BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (account, chat_jid, message_id)
);
CREATE INDEX wa_sent_messages_age ON wa_sent_messages (account, created_at);

CREATE TABLE wa_pending_inbound (
    account     TEXT NOT NULL,
    chat        TEXT NOT NULL,
    sender      TEXT NOT NULL,
    id          TEXT NOT NULL,
    message     BYTEA NOT NULL,
    inserted_at BIGINT NOT NULL,
    PRIMARY KEY (account, chat, sender, id)
);
CREATE INDEX wa_pending_inbound_age ON wa_pending_inbound (account, inserted_at);

-- expires_at 0: kept for ever; message_ts 0: the parent message's time is unknown.
CREATE TABLE wa_msg_secrets (
    account    TEXT NOT NULL,
    chat       TEXT NOT NULL,
    sender     TEXT NOT NULL,
    msg_id     TEXT NOT NULL,
    secret     BYTEA NOT NULL,
    expires_at BIGINT NOT NULL,
    message_ts BIGINT NOT NULL,
    PRIMARY KEY (account, chat, sender, msg_id)
);
CREATE INDEX wa_msg_secrets_expiry ON wa_msg_secrets (account, expires_at) WHERE expires_at <> 0;
