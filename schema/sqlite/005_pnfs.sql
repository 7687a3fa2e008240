-- Version 5: pNFS (RFC 8881 §12-13): the data servers, the devices (ordered
-- sets of data servers) layouts name, each file's layout, and the queue of
-- work for data servers (removal and truncation of stripe files). nfs41d
-- writes them through ns::PnfsRegistry; see docs/schema.md and docs/pnfs.md.

-- One row per data server ever registered, keyed by the uuid of its data
-- directory (so a restarted data server keeps its id).
CREATE TABLE pnfs_data_servers (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid           TEXT    NOT NULL UNIQUE,
    advertise      TEXT    NOT NULL,
    listen         TEXT    NOT NULL,
    heartbeat_ns   INTEGER NOT NULL,
    state          INTEGER NOT NULL,
    bytes_total    INTEGER NOT NULL DEFAULT 0,
    bytes_free     INTEGER NOT NULL DEFAULT 0,
    registered_ns  INTEGER NOT NULL
);

-- A device (deviceid4): an ordered list of data servers; stripe index i
-- goes to the member at pos i. `members` ("3,1,2") is the list as text, so
-- the same ordered set is found again instead of minting a new device.
CREATE TABLE pnfs_devices (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    members     TEXT    NOT NULL UNIQUE,
    created_ns  INTEGER NOT NULL
);
CREATE TABLE pnfs_device_members (
    device  INTEGER NOT NULL,
    pos     INTEGER NOT NULL,
    ds      INTEGER NOT NULL,
    PRIMARY KEY (device, pos)
) WITHOUT ROWID;

-- The layout of a file: which device holds its bytes, striped in units of
-- stripe_unit bytes. A file without a row keeps its bytes in the MDS.
CREATE TABLE pnfs_layouts (
    ino          INTEGER PRIMARY KEY,
    device       INTEGER NOT NULL,
    stripe_unit  INTEGER NOT NULL
);

-- Work for data servers, handed out on heartbeats (pnfs/nsctl.x); a row is
-- deleted when its data server reports it done. op: 1 remove, 2 truncate.
CREATE TABLE pnfs_work (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ds         INTEGER NOT NULL,
    op         INTEGER NOT NULL,
    fileid     INTEGER NOT NULL,
    size       INTEGER NOT NULL DEFAULT 0,
    queued_ns  INTEGER NOT NULL
);
CREATE INDEX pnfs_work_ds ON pnfs_work (ds, id);
CREATE INDEX pnfs_work_fileid ON pnfs_work (fileid);

-- The work is queued by triggers, in the transaction that deletes the inode
-- or shrinks it, so no code path that releases or truncates a file can
-- forget it and a crash cannot lose it. Files without a layout cost one
-- primary-key probe on delete and nothing on an update that does not shrink.
CREATE TRIGGER pnfs_inode_deleted AFTER DELETE ON inodes
BEGIN
    INSERT INTO pnfs_work (ds, op, fileid, size, queued_ns)
        SELECT m.ds, 1, OLD.ino, 0,
               CAST((julianday('now') - 2440587.5) * 86400000000000 AS INTEGER)
          FROM pnfs_layouts l JOIN pnfs_device_members m ON m.device = l.device
         WHERE l.ino = OLD.ino;
    DELETE FROM pnfs_layouts WHERE ino = OLD.ino;
END;

CREATE TRIGGER pnfs_inode_shrunk AFTER UPDATE OF size ON inodes
WHEN NEW.size < OLD.size
BEGIN
    INSERT INTO pnfs_work (ds, op, fileid, size, queued_ns)
        SELECT m.ds, 2, NEW.ino, NEW.size,
               CAST((julianday('now') - 2440587.5) * 86400000000000 AS INTEGER)
          FROM pnfs_layouts l JOIN pnfs_device_members m ON m.device = l.device
         WHERE l.ino = NEW.ino;
END;
