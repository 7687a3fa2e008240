#pragma once

// Writer: the rows of the documented core tables (docs/schema.md: inodes,
// dirents, symlinks, the sequences) and of the metadata tables (aces,
// xattrs, dir_tags, tags, checksums, locations) written straight to a namespace
// database, one implementation per backend. The importer decides every
// value (inode numbers, cookies, link counts); a writer only stores rows, in
// batches, each batch in ONE transaction together with the import's
// checkpoint, so a crash leaves either the batch and its checkpoint or
// neither (the basis of --resume). (pg_writer.cc splits a batch over two
// connections and, on resume, deletes what one committed past the
// checkpoint: the same result.)
//
// While an import runs the target carries two tables of its own,
// ns_migrate_state (one row: the checkpoint) and ns_migrate_links (hard-link
// groups seen so far); Finish() drops them in the last transaction. The
// namespace must not be used by anyone else until Finish().
//
// Thread safety: none; one writer per import.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "libnamespace/include/namespace/status.h"
#include "libnamespace/include/namespace/types.h"

namespace nsmigrate {

struct InodeRow {
  ns::InodeId ino = 0;
  std::string ext_id;  // "" = NULL
  ns::FileType type = ns::FileType::kRegular;
  uint32_t mode = 0, nlink = 1, uid = 0, gid = 0;
  uint64_t size = 0;
  uint32_t rdev_major = 0, rdev_minor = 0;
  ns::TimeNs atime = 0, mtime = 0, ctime = 0, btime = 0;
  ns::InodeId parent = 0;  // directories only
};

struct DirentRow {
  ns::InodeId parent = 0;
  std::string name;
  ns::InodeId child = 0;
  ns::FileType type = ns::FileType::kRegular;
  uint64_t cookie = 0;
};

struct SymlinkRow {
  ns::InodeId ino = 0;
  std::string target;
};

// A hard-link group: every name that carries `key` names inode `ino`.
struct LinkRow {
  std::string key;
  ns::InodeId ino = 0;
  uint32_t seen = 0;   // names imported so far
  uint32_t nlink = 0;  // link count the source declared
};

// The metadata tables of docs/schema.md ("Metadata (version 3)"), one row
// each, values as the library stores them.
struct AceRow {
  ns::InodeId ino = 0;
  uint32_t pos = 0, type = 0, flags = 0, mask = 0;
  uint32_t who_kind = 0;  // 0 OWNER@, 1 GROUP@, 2 EVERYONE@, 3 uid, 4 gid
  uint32_t who_id = 0;
  bool operator==(const AceRow&) const = default;
};

struct XattrRow {
  ns::InodeId ino = 0;
  std::string name, value;
  bool operator==(const XattrRow&) const = default;
};

// A directory that sees the tag set made by `origin` (itself when it owns
// one); TagRows hold the sets.
struct DirTagRow {
  ns::InodeId ino = 0, origin = 0;
  bool operator==(const DirTagRow&) const = default;
};

struct TagRow {
  ns::InodeId origin = 0;
  std::string name, value;
  bool operator==(const TagRow&) const = default;
};

struct ChecksumRow {
  ns::InodeId ino = 0;
  uint32_t type = 0;  // ns::ChecksumType
  std::string value;
  bool operator==(const ChecksumRow&) const = default;
};

struct LocationRow {
  ns::InodeId ino = 0;
  uint32_t type = 0;  // ns::LocationType
  std::string location;
  int64_t added_ns = 0;
  bool operator==(const LocationRow&) const = default;
};

// Where an import stands, stored with every batch.
struct Checkpoint {
  std::string source;   // the source URI
  uint64_t offset = 0;  // SourcePos of the next entry
  uint64_t line = 0;
  uint64_t entries = 0;      // entries imported
  uint64_t next_ino = 0;     // next inode number to give
  uint64_t next_cookie = 0;  // next readdir cookie to give
  std::string stack;         // the open directories (importer's format)
};

struct Batch {
  std::vector<InodeRow> inodes;
  std::vector<DirentRow> dirents;
  std::vector<SymlinkRow> symlinks;
  std::vector<LinkRow> links;  // new or changed groups
  std::vector<AceRow> aces;
  std::vector<XattrRow> xattrs;
  std::vector<DirTagRow> dir_tags;
  std::vector<TagRow> tags;
  std::vector<ChecksumRow> checksums;
  std::vector<LocationRow> locations;
  // Rows of every table, for the batch size.
  size_t rows() const {
    return inodes.size() + dirents.size() + symlinks.size() + aces.size() +
           xattrs.size() + dir_tags.size() + tags.size() + checksums.size() +
           locations.size();
  }
  bool empty() const { return rows() == 0 && links.empty(); }
  void clear() {
    inodes.clear();
    dirents.clear();
    symlinks.clear();
    links.clear();
    aces.clear();
    xattrs.clear();
    dir_tags.clear();
    tags.clear();
    checksums.clear();
    locations.clear();
  }
};

class Writer {
 public:
  // `uri` names the target namespace (sqlite:... or postgresql://...). A
  // SQLite file that does not exist yet is created with the current schema
  // (unless dry_run). Errors: Invalid, Unavailable, SchemaTooOld/New.
  static ns::Result<std::unique_ptr<Writer>> Open(const std::string& uri,
                                                  bool dry_run);
  virtual ~Writer() = default;

  // Starts an import, or with `resume` takes up an interrupted one.
  // Fresh: the target must hold only the root and no import state; returns
  // a checkpoint with next_ino/next_cookie set. Resume: returns the stored
  // checkpoint, or a fresh one if no import was ever started. Errors:
  // Exists (target not empty, or an interrupted import without --resume),
  // Invalid (resuming from a different source).
  virtual ns::Result<Checkpoint> Begin(const std::string& source,
                                       bool resume) = 0;
  // The hard-link groups of the interrupted import.
  virtual ns::Result<std::vector<LinkRow>> LoadLinks() = 0;
  // The names in directory `dir` (for duplicate checks after a resume).
  virtual ns::Result<std::vector<std::string>> NamesIn(ns::InodeId dir) = 0;
  // Stores the batch and the checkpoint in one transaction.
  virtual ns::Status Commit(const Batch& batch, const Checkpoint& cp) = 0;
  // The last batch, then: link counts fixed (`nlinks`: ino -> names), the
  // root's row (ino 1) updated from `root`, the sequences set past the
  // highest ids given, the state tables dropped — one transaction.
  virtual ns::Status Finish(
      const Batch& batch, const Checkpoint& cp,
      const std::vector<std::pair<ns::InodeId, uint32_t>>& nlinks,
      const InodeRow& root) = 0;
  // Drops the import state again: for an import that failed before its
  // first batch was committed, so the target is as fresh as before.
  virtual ns::Status Discard() = 0;
  // Whether the target has a table (for the optional metadata tables).
  virtual ns::Result<bool> HasTable(const std::string& name) = 0;
  // ext_id of every entry of `dir` that has one: name -> ext_id.
  virtual ns::Result<std::vector<std::pair<std::string, std::string>>> ExtIdsIn(
      ns::InodeId dir) = 0;
  // The metadata rows of the inodes named in directory `dir` (each inode
  // once; tags: the sets the child directories own), ordered by inode and
  // then as the library lists them. For readers: one query per table
  // instead of a round trip per entry and table.
  virtual ns::Result<Batch> MetadataIn(ns::InodeId dir) = 0;
  // The ext_id of inode `ino` ("" if none).
  virtual ns::Result<std::string> ExtIdOf(ns::InodeId ino) = 0;
  // Whether any inode has an ext_id (so readers skip ExtIdsIn otherwise).
  virtual ns::Result<bool> AnyExtId() = 0;
};

// The backends (Writer::Open picks one by scheme).
ns::Result<std::unique_ptr<Writer>> OpenSqliteWriter(const std::string& path,
                                                     bool dry_run);
ns::Result<std::unique_ptr<Writer>> OpenPgWriter(const std::string& uri,
                                                 bool dry_run);

}  // namespace nsmigrate
