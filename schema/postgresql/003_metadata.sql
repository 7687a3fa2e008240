-- Version 3: NFSv4 ACLs, extended attributes, directory tags, checksums and
-- storage locations. See docs/schema.md ("metadata") for every column and
-- why. Every table is keyed by inode first, so DeleteInode removes an
-- inode's rows with one index range each. An inode that has an ACL carries
-- bit 0x10000 in inodes.mode, so access checks on inodes without one never
-- probe aces.
CREATE TABLE aces (
    ino       bigint   NOT NULL,
    pos       smallint NOT NULL,
    type      smallint NOT NULL,
    flags     integer  NOT NULL,
    mask      integer  NOT NULL,
    who_kind  smallint NOT NULL,
    who_id    bigint   NOT NULL,
    PRIMARY KEY (ino, pos)
);

CREATE TABLE xattrs (
    ino    bigint NOT NULL,
    name   text   COLLATE "C" NOT NULL,
    value  bytea  NOT NULL,
    PRIMARY KEY (ino, name)
);

-- Directory tags, copy-on-write: dir_tags says whose tag set a directory
-- sees; tags holds the sets, keyed by the inode that made them (origin).
CREATE TABLE dir_tags (
    ino     bigint PRIMARY KEY,
    origin  bigint NOT NULL
);
CREATE INDEX dir_tags_origin ON dir_tags (origin);
CREATE TABLE tags (
    origin  bigint NOT NULL,
    name    text   COLLATE "C" NOT NULL,
    value   bytea  NOT NULL,
    PRIMARY KEY (origin, name)
);

CREATE TABLE checksums (
    ino    bigint   NOT NULL,
    type   smallint NOT NULL,
    value  text     NOT NULL,
    PRIMARY KEY (ino, type)
);

CREATE TABLE locations (
    ino       bigint   NOT NULL,
    type      smallint NOT NULL,
    location  text     COLLATE "C" NOT NULL,
    added_ns  bigint   NOT NULL,
    PRIMARY KEY (ino, type, location)
);
