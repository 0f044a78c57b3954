-- The webhook outbox (migrations/outbox in SQLite), for any number of accounts in
-- one database: an event is stored before the incoming message is acknowledged to
-- WhatsApp, with one delivery row per webhook URL, removed after a 2xx. Every key
-- starts with the account's name; timestamps are unix seconds.

CREATE TABLE wa_webhook_events (
    account    TEXT   NOT NULL,
    -- One sequence for the whole table (so unique over it): deliveries to one URL
    -- keep the order of the events of one chat, and the oldest go first.
    seq        BIGINT GENERATED ALWAYS AS IDENTITY,
    -- Stable across retries and redeliveries of the same message.
    event_id   TEXT   NOT NULL,
    chat       TEXT   NOT NULL,
    body       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (account, seq),
    UNIQUE (account, event_id)
);

CREATE TABLE wa_webhook_deliveries (
    account         TEXT    NOT NULL,
    event_seq       BIGINT  NOT NULL,
    url             TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    last_error      TEXT,
    -- Failed for good: kept and counted, never retried.
    dead            BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (account, event_seq, url),
    FOREIGN KEY (account, event_seq)
        REFERENCES wa_webhook_events (account, seq) ON DELETE CASCADE
);

CREATE INDEX wa_webhook_deliveries_by_url
    ON wa_webhook_deliveries (account, url, dead, event_seq);

-- Events delivered to every URL, remembered for the retry window: WhatsApp may
-- deliver a message again (after a crash before its acknowledgement), and its event
-- must not be sent a second time.
CREATE TABLE wa_webhook_done (
    account  TEXT   NOT NULL,
    event_id TEXT   NOT NULL,
    done_at  BIGINT NOT NULL,
    PRIMARY KEY (account, event_id)
);

CREATE INDEX wa_webhook_done_by_age ON wa_webhook_done (account, done_at);
