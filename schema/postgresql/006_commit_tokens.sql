-- Version 6: commit tokens, so that a write whose COMMIT was cut off by a
-- lost connection (a crash, a failover to a promoted standby) can learn
-- whether it committed from whichever server now holds the WAL. Every
-- write transaction inserts one row with a random token in the same round
-- trip as its COMMIT; the row exists exactly where the commit does. See
-- docs/dba.md ("Replicas") and libnamespace/src/pg_commit_token.cc.
--
-- fenced: the row was inserted by the writer that lost the COMMIT's answer,
-- after it found no row: the original INSERT then fails on the primary key
-- and its transaction can never commit. created_at: rows older than a few
-- minutes are deleted by the background folding thread (a token is only
-- looked up within seconds of its COMMIT).
CREATE TABLE commit_tokens (
    token       bigint      PRIMARY KEY,
    fenced      boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- A queue: every write inserts, the cleanup deletes in bulk.
ALTER TABLE commit_tokens SET (autovacuum_vacuum_threshold = 10000,
                               autovacuum_vacuum_scale_factor = 0);
