-- Version 5: pNFS (RFC 8881 §12-13): the data servers, the devices (ordered
-- sets of data servers) layouts name, each file's layout, and the queue of
-- work for data servers (removal and truncation of stripe files). nfs41d
-- writes them through ns::PnfsRegistry; see docs/schema.md and docs/pnfs.md.

-- One row per data server ever registered, keyed by the uuid of its data
-- directory (so a restarted data server keeps its id).
CREATE TABLE pnfs_data_servers (
    id             bigserial PRIMARY KEY,
    uuid           text      NOT NULL UNIQUE,
    advertise      text      NOT NULL,
    listen         text      NOT NULL,
    heartbeat_ns   bigint    NOT NULL,
    state          smallint  NOT NULL,
    bytes_total    bigint    NOT NULL DEFAULT 0,
    bytes_free     bigint    NOT NULL DEFAULT 0,
    registered_ns  bigint    NOT NULL
);

-- A device (deviceid4): an ordered list of data servers; stripe index i
-- goes to the member at pos i. `members` ("3,1,2") is the list as text, so
-- the same ordered set is found again instead of minting a new device.
CREATE TABLE pnfs_devices (
    id          bigserial PRIMARY KEY,
    members     text      NOT NULL UNIQUE,
    created_ns  bigint    NOT NULL
);
CREATE TABLE pnfs_device_members (
    device  bigint   NOT NULL,
    pos     integer  NOT NULL,
    ds      bigint   NOT NULL,
    PRIMARY KEY (device, pos)
);

-- The layout of a file: which device holds its bytes, striped in units of
-- stripe_unit bytes. A file without a row keeps its bytes in the MDS.
CREATE TABLE pnfs_layouts (
    ino          bigint  PRIMARY KEY,
    device       bigint  NOT NULL,
    stripe_unit  bigint  NOT NULL
);

-- Work for data servers, handed out on heartbeats (pnfs/nsctl.x); a row is
-- deleted when its data server reports it done. op: 1 remove, 2 truncate.
CREATE TABLE pnfs_work (
    id         bigserial PRIMARY KEY,
    ds         bigint    NOT NULL,
    op         smallint  NOT NULL,
    fileid     bigint    NOT NULL,
    size       bigint    NOT NULL DEFAULT 0,
    queued_ns  bigint    NOT NULL
);
CREATE INDEX pnfs_work_ds ON pnfs_work (ds, id);
CREATE INDEX pnfs_work_fileid ON pnfs_work (fileid);

-- The work is queued by triggers, in the transaction that deletes the inode
-- or shrinks it, so no code path that releases or truncates a file can
-- forget it and a crash cannot lose it. Files without a layout cost one
-- primary-key probe on delete and nothing on an update that does not shrink
-- (the WHEN clause is evaluated without calling the function).
CREATE FUNCTION pnfs_queue_work() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO pnfs_work (ds, op, fileid, size, queued_ns)
            SELECT m.ds, 1, OLD.ino, 0,
                   (extract(epoch FROM clock_timestamp()) * 1e9)::bigint
              FROM pnfs_layouts l JOIN pnfs_device_members m ON m.device = l.device
             WHERE l.ino = OLD.ino;
        DELETE FROM pnfs_layouts WHERE ino = OLD.ino;
    ELSE
        INSERT INTO pnfs_work (ds, op, fileid, size, queued_ns)
            SELECT m.ds, 2, NEW.ino, NEW.size,
                   (extract(epoch FROM clock_timestamp()) * 1e9)::bigint
              FROM pnfs_layouts l JOIN pnfs_device_members m ON m.device = l.device
             WHERE l.ino = NEW.ino;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER pnfs_inode_deleted AFTER DELETE ON inodes
    FOR EACH ROW EXECUTE FUNCTION pnfs_queue_work();
CREATE TRIGGER pnfs_inode_shrunk AFTER UPDATE OF size ON inodes
    FOR EACH ROW WHEN (NEW.size < OLD.size) EXECUTE FUNCTION pnfs_queue_work();
