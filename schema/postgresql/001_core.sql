-- Version 1: the core namespace. See docs/schema.md for every column and why.
-- The migration runner adds the row for each version it applies.
CREATE TABLE schema_version (
    version     integer PRIMARY KEY,
    name        text    NOT NULL,
    applied_ns  bigint  NOT NULL
);

CREATE TABLE fs_info (
    id          smallint PRIMARY KEY CHECK (id = 1),
    fsid        text     NOT NULL,
    verifier    bigint   NOT NULL,
    created_ns  bigint   NOT NULL
);
INSERT INTO fs_info (id, fsid, verifier, created_ns)
VALUES (1, md5(random()::text || clock_timestamp()::text),
        (random() * 9.2e18)::bigint,
        (extract(epoch FROM clock_timestamp()) * 1e9)::bigint);

CREATE SEQUENCE inode_ino_seq START 2 CACHE 32;
CREATE TABLE inodes (
    ino         bigint   PRIMARY KEY,
    ext_id      text,
    type        smallint NOT NULL,
    mode        integer  NOT NULL,
    nlink       integer  NOT NULL,
    uid         bigint   NOT NULL,
    gid         bigint   NOT NULL,
    size        bigint   NOT NULL DEFAULT 0,
    rdev_major  integer  NOT NULL DEFAULT 0,
    rdev_minor  integer  NOT NULL DEFAULT 0,
    atime_ns    bigint   NOT NULL,
    mtime_ns    bigint   NOT NULL,
    ctime_ns    bigint   NOT NULL,
    btime_ns    bigint   NOT NULL,
    change      bigint   NOT NULL DEFAULT 1,
    generation  integer  NOT NULL DEFAULT 0,
    parent      bigint   NOT NULL DEFAULT 0
) WITH (fillfactor = 80);
CREATE UNIQUE INDEX inodes_ext_id ON inodes (ext_id) WHERE ext_id IS NOT NULL;

INSERT INTO inodes (ino, type, mode, nlink, uid, gid, atime_ns, mtime_ns, ctime_ns, btime_ns, parent)
SELECT 1, 2, 493, 2, 0, 0, created_ns, created_ns, created_ns, created_ns, 1 FROM fs_info;

CREATE SEQUENCE dirent_cookie_seq START 3 CACHE 32;
CREATE TABLE dirents (
    parent  bigint   NOT NULL,
    name    text     COLLATE "C" NOT NULL,
    child   bigint   NOT NULL,
    type    smallint NOT NULL,
    cookie  bigint   NOT NULL,
    PRIMARY KEY (parent, name)
);
CREATE UNIQUE INDEX dirents_parent_cookie ON dirents (parent, cookie);

CREATE TABLE symlinks (
    ino     bigint PRIMARY KEY,
    target  text   NOT NULL
);
