-- The servers sharing this database (src/postgres/leases.rs): how each is reached,
-- and which backend is its lease connection, so that the holder of an account's
-- lease (an advisory lock in pg_locks, by backend pid) can be found. A row stays
-- after its server stops; a server is alive only while its presence lock is held.
CREATE TABLE wa_servers (
    id         TEXT    PRIMARY KEY,
    -- The base URL other servers forward requests to.
    address    TEXT    NOT NULL,
    -- pg_backend_pid() of its lease connection, updated at each reconnect.
    lease_pid  INTEGER,
    -- Unix seconds.
    started_at BIGINT  NOT NULL
);

-- Leases given up cleanly (the account's client stopped first: a hand-over, a
-- SIGTERM): another server may take them at once, where a lease that lapsed
-- (its server died or was cut off) is taken only after a delay. The row goes
-- when the lease is taken again.
CREATE TABLE wa_released (
    account     TEXT    PRIMARY KEY,
    -- Unix seconds.
    released_at BIGINT  NOT NULL
);
