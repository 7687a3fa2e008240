-- Version 4: NFSv4 client records for reclaim after a server restart
-- (RFC 8881 §8.4.2.1, §8.4.3). nfs41d writes them; see docs/schema.md.

-- One row: which server start (epoch) is running and which epoch's clients
-- may reclaim. recovery_epoch is NULL when no grace period is in progress.
CREATE TABLE nfs_grace (
    id              integer PRIMARY KEY CHECK (id = 1),
    current_epoch   bigint  NOT NULL,
    recovery_epoch  bigint,
    started_ns      bigint  NOT NULL
);
INSERT INTO nfs_grace (id, current_epoch, recovery_epoch, started_ns)
    VALUES (1, 0, NULL, 0);

-- One row per confirmed NFSv4 client (keyed by its co_ownerid).
CREATE TABLE nfs_clients (
    owner            bytea   PRIMARY KEY,
    principal        text    NOT NULL,
    verifier         bigint  NOT NULL,
    clientid         bigint  NOT NULL,
    confirmed_ns     bigint  NOT NULL,
    confirmed_epoch  bigint  NOT NULL,
    reclaim_epoch    bigint
);
