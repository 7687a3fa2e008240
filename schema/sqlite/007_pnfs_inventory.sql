-- Version 7: what the data servers hold (docs/pnfs.md, "Dark data and
-- missing stripes"). `nsadmin pnfs-check` asks every data server for an
-- inventory of its stripe files (NSCTL_INVENTORY work, pnfs/nsctl.x); the
-- MDS writes the pages it gets into pnfs_inventory, and the check compares
-- them with pnfs_layouts.

-- One row per data server that was asked: which request it answers, how far
-- it got. A new request replaces the row and empties the data server's
-- pnfs_inventory rows.
CREATE TABLE pnfs_inventory_runs (
    ds             INTEGER PRIMARY KEY,
    work_id        INTEGER NOT NULL,
    requested_ns   INTEGER NOT NULL,
    started_ns     INTEGER NOT NULL DEFAULT 0,
    ds_started_ns  INTEGER NOT NULL DEFAULT 0,
    finished_ns    INTEGER NOT NULL DEFAULT 0,
    next_page      INTEGER NOT NULL DEFAULT 0,
    files          INTEGER NOT NULL DEFAULT 0
);

-- The stripe files of the data server's last inventory.
CREATE TABLE pnfs_inventory (
    ds        INTEGER NOT NULL,
    fileid    INTEGER NOT NULL,
    size      INTEGER NOT NULL,
    mtime_ns  INTEGER NOT NULL,
    PRIMARY KEY (ds, fileid)
) WITHOUT ROWID;
