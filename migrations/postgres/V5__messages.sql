-- The message store (migrations/chat in SQLite's chat.db), for any number of
-- accounts in one database: every message in and out, what happened to it
-- afterwards (reactions, edits, deletion for everyone), its receipts, the chats,
-- contacts and labels. Every key starts with the account; timestamps are unix
-- seconds. JIDs, message ids and the other text keys are compared byte-wise
-- ("C"), so that listings come in SQLite's order.

-- A chat: its name, settings and how far it is read.
CREATE TABLE wa_chats (
    account              TEXT    NOT NULL,
    jid                  TEXT    COLLATE "C" NOT NULL,
    -- The contact's push name or the group's subject, when known.
    name                 TEXT,
    last_message_at      BIGINT  NOT NULL,
    created_at           BIGINT,
    updated_at           BIGINT,
    -- The settings WhatsApp syncs: archive, pin, disappearing timer (seconds, 0 off).
    archived             BOOLEAN NOT NULL DEFAULT FALSE,
    pinned               BOOLEAN NOT NULL DEFAULT FALSE,
    ephemeral_expiration BIGINT  NOT NULL DEFAULT 0,
    -- Kept with every insert and delete: a chat's total without counting its messages.
    message_count        BIGINT  NOT NULL DEFAULT 0,
    -- The time of the newest message read: incoming messages after it are unread.
    read_until           BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (account, jid)
);
CREATE INDEX wa_chats_by_last_message ON wa_chats (account, last_message_at);

CREATE TABLE wa_messages (
    account         TEXT    NOT NULL,
    chat_jid        TEXT    COLLATE "C" NOT NULL,
    id              TEXT    COLLATE "C" NOT NULL,
    sender          TEXT    NOT NULL,
    sender_lid      TEXT,
    push_name       TEXT,
    timestamp       BIGINT  NOT NULL,
    is_from_me      BOOLEAN NOT NULL,
    -- text, image, video, video_note, audio, document, sticker, contact, location, other
    kind            TEXT    NOT NULL,
    -- The text, or the media's caption.
    body            TEXT,
    quoted_id       TEXT,
    -- Media: what a later download or forward needs.
    mimetype        TEXT,
    file_name       TEXT,
    url             TEXT,
    direct_path     TEXT,
    media_key       BYTEA,
    file_sha256     BYTEA,
    file_enc_sha256 BYTEA,
    file_length     BIGINT,
    -- The WhatsApp message itself (protobuf), for quoting and forwarding.
    raw             BYTEA,
    edited_at       BIGINT,
    -- Deleted for everyone: content, media keys and raw message are cleared.
    revoked_at      BIGINT,
    stored_at       BIGINT  NOT NULL,
    PRIMARY KEY (account, chat_jid, id)
);
CREATE INDEX wa_messages_by_chat_time ON wa_messages (account, chat_jid, timestamp);
CREATE INDEX wa_messages_by_time ON wa_messages (account, timestamp);
-- Messages found by id alone (forwards).
CREATE INDEX wa_messages_by_id ON wa_messages (account, id);

-- The latest reaction of each sender to a message.
CREATE TABLE wa_reactions (
    account    TEXT   NOT NULL,
    chat_jid   TEXT   COLLATE "C" NOT NULL,
    message_id TEXT   COLLATE "C" NOT NULL,
    sender     TEXT   COLLATE "C" NOT NULL,
    emoji      TEXT   NOT NULL,
    timestamp  BIGINT NOT NULL,
    PRIMARY KEY (account, chat_jid, message_id, sender)
);

-- Every edit (the message row holds the latest text), by the edit's own id.
CREATE TABLE wa_edits (
    account    TEXT   NOT NULL,
    chat_jid   TEXT   COLLATE "C" NOT NULL,
    edit_id    TEXT   COLLATE "C" NOT NULL,
    message_id TEXT   COLLATE "C" NOT NULL,
    body       TEXT   NOT NULL,
    edited_at  BIGINT NOT NULL,
    PRIMARY KEY (account, chat_jid, edit_id)
);
CREATE INDEX wa_edits_by_message ON wa_edits (account, chat_jid, message_id);

CREATE TABLE wa_receipts (
    account    TEXT   NOT NULL,
    chat_jid   TEXT   COLLATE "C" NOT NULL,
    message_id TEXT   COLLATE "C" NOT NULL,
    -- delivered, read, played, read-self, …
    kind       TEXT   COLLATE "C" NOT NULL,
    sender     TEXT   COLLATE "C" NOT NULL,
    timestamp  BIGINT NOT NULL,
    PRIMARY KEY (account, chat_jid, message_id, kind, sender)
);

-- The people this account knows: the name saved on the phone (app-state contact
-- sync) and the push name their messages carry.
CREATE TABLE wa_contacts (
    account    TEXT   NOT NULL,
    -- Phone-number JID, without device.
    jid        TEXT   COLLATE "C" NOT NULL,
    full_name  TEXT,
    push_name  TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (account, jid)
);

-- What was imported from a Go server's files into this account's message store,
-- so that it is imported once (SQLite's `imports`). The Go session's import is
-- kept across logout, the Go chat history's ('go-chats:…') is not.
CREATE TABLE wa_message_imports (
    account     TEXT   NOT NULL,
    key         TEXT   COLLATE "C" NOT NULL,
    imported_at BIGINT NOT NULL,
    PRIMARY KEY (account, key)
);

-- Labels (WhatsApp Business chat labels, synced between devices): their names
-- and colours, and which chats carry them. A chat's labels outlive its messages.
CREATE TABLE wa_labels (
    account    TEXT    NOT NULL,
    id         TEXT    COLLATE "C" NOT NULL,
    name       TEXT    NOT NULL DEFAULT '',
    color      INTEGER NOT NULL DEFAULT 0,
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (account, id)
);

CREATE TABLE wa_chat_labels (
    account  TEXT NOT NULL,
    chat_jid TEXT COLLATE "C" NOT NULL,
    label_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (account, chat_jid, label_id)
);
CREATE INDEX wa_chat_labels_by_label ON wa_chat_labels (account, label_id);
