-- Version 2: entry changes recorded apart from the directory row, so creates
-- in one directory do not queue on its row lock; and the orphan list for
-- unlinked inodes kept alive by open files.
CREATE SEQUENCE dir_delta_seq CACHE 32;
CREATE TABLE dir_deltas (
    parent       bigint   NOT NULL,
    id           bigint   NOT NULL DEFAULT nextval('dir_delta_seq'),
    nlink_delta  smallint NOT NULL,
    time_ns      bigint   NOT NULL,
    PRIMARY KEY (parent, id)
);
ALTER TABLE dir_deltas SET (autovacuum_vacuum_scale_factor = 0.0,
                            autovacuum_vacuum_threshold = 1000);

CREATE TABLE orphans (
    ino       bigint PRIMARY KEY,
    since_ns  bigint NOT NULL
);
