-- The people this account knows, for /user/my/contacts: the name saved on the phone
-- (app-state contact sync) and the push name their messages carry.
CREATE TABLE contacts (
    -- Phone-number JID, without device.
    jid        TEXT    PRIMARY KEY,
    full_name  TEXT,
    push_name  TEXT,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
