-- Events delivered to every URL, remembered for the retry window: WhatsApp may
-- deliver a message again (after a crash before its acknowledgement), and its event
-- must not be sent a second time.
CREATE TABLE webhook_done (
    event_id TEXT    PRIMARY KEY,
    done_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX webhook_done_by_age ON webhook_done(done_at);
