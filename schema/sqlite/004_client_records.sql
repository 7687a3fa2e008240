-- Version 4: NFSv4 client records for reclaim after a server restart
-- (RFC 8881 §8.4.2.1, §8.4.3). nfs41d writes them; see docs/schema.md.

-- One row: which server start (epoch) is running and which epoch's clients
-- may reclaim. recovery_epoch is NULL when no grace period is in progress.
CREATE TABLE nfs_grace (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    current_epoch   INTEGER NOT NULL,
    recovery_epoch  INTEGER,
    started_ns      INTEGER NOT NULL
);
INSERT INTO nfs_grace (id, current_epoch, recovery_epoch, started_ns)
    VALUES (1, 0, NULL, 0);

-- One row per confirmed NFSv4 client (keyed by its co_ownerid).
CREATE TABLE nfs_clients (
    owner            BLOB    PRIMARY KEY,
    principal        TEXT    NOT NULL,
    verifier         INTEGER NOT NULL,
    clientid         INTEGER NOT NULL,
    confirmed_ns     INTEGER NOT NULL,
    confirmed_epoch  INTEGER NOT NULL,
    reclaim_epoch    INTEGER
) WITHOUT ROWID;
