-- The webhook outbox: an event is stored before the incoming message is acknowledged
-- to WhatsApp, with one delivery row per webhook URL, removed after a 2xx.
CREATE TABLE webhook_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Stable across retries and redeliveries of the same message.
    event_id   TEXT    NOT NULL UNIQUE,
    -- Deliveries to one URL keep the order of events of one chat.
    chat       TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    event_seq       INTEGER NOT NULL REFERENCES webhook_events(seq) ON DELETE CASCADE,
    url             TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    dead            INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (event_seq, url)
);

CREATE INDEX webhook_deliveries_by_url ON webhook_deliveries(url, dead, event_seq);
