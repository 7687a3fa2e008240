#pragma once

// Sources: anything that yields the canonical Entry stream (dump.h) in
// depth-first order, parents before children, each directory's entries
// contiguous after it. The importer keeps only the current directory stack,
// so this order is what keeps its memory bounded (docs/dump-format.md).
//
// URIs:
//   dump:FILE                  a canonical dump
//   posix:/path                a local tree (lstat/statx, xattrs, POSIX ACLs)
//   chimera:postgresql://...   a dCache Chimera database (chimera_source.cc)
//   dpm:mysql://...            a DPM/LFC Cns_* database (dpm_source.cc)
//   sqlite:///x.db, postgresql://...   a namespace (for --export, --verify)
//
// Thread safety: none; one source per thread.

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "libnamespace/include/namespace/status.h"
#include "migrate/dump.h"

namespace nsmigrate {

// Where a source is: enough to come back there after a crash. For a dump
// `offset` is the byte offset of the next line and `line` its number; for a
// tree walk both are the number of entries already returned.
struct SourcePos {
  uint64_t offset = 0;
  uint64_t line = 0;
};

// The log of what was skipped and why ("skipped: WHERE: WHY" lines).
class SkipLog {
 public:
  explicit SkipLog(std::FILE* out) : out_(out) {}
  void Skip(std::string_view where, std::string_view why);
  uint64_t count() const { return count_; }

 private:
  std::FILE* out_;
  uint64_t count_ = 0;
};

class Source {
 public:
  virtual ~Source() = default;
  // The next entry; nullopt at the end. Errors name the line, row or path.
  virtual ns::Result<std::optional<Entry>> Next() = 0;
  // The position after the last entry returned.
  virtual SourcePos Position() const = 0;
  // Continues after `pos` (a Position() of an earlier run on the same
  // input). Errors: Invalid when the input cannot be positioned there.
  virtual ns::Status Seek(const SourcePos& pos) = 0;
  // Fraction of the input read, when the size is known (for the ETA).
  virtual std::optional<double> Fraction() const { return std::nullopt; }
  // The source's URI, as recorded in checkpoints and dump headers.
  virtual const std::string& Uri() const = 0;
};

// A source read in one deterministic order (a database walk in one
// snapshot): Seek replays entries up to the position, which also rebuilds
// any state that depends on earlier rows (inherited tag sets), and Fraction
// comes from a row count taken up front. Subclasses implement Read() and set
// total_.
class ReplaySource : public Source {
 public:
  ns::Result<std::optional<Entry>> Next() final {
    auto e = Read();
    if (e.ok() && *e) ++returned_;
    return e;
  }
  SourcePos Position() const override { return {returned_, returned_}; }
  ns::Status Seek(const SourcePos& pos) override {
    if (pos.line < returned_) {
      return ns::Status::Invalid(Uri(), "cannot go back");
    }
    while (returned_ < pos.line) {
      NS_ASSIGN_OR_RETURN(std::optional<Entry> e, Next());
      if (!e) {
        return ns::Status::Invalid(Uri(), "fewer rows than the checkpoint");
      }
    }
    return ns::Status::Ok();
  }
  std::optional<double> Fraction() const override {
    if (total_ == 0) return std::nullopt;
    return static_cast<double>(returned_) / static_cast<double>(total_);
  }

 protected:
  // The next entry in the walk's order; nullopt at the end.
  virtual ns::Result<std::optional<Entry>> Read() = 0;
  uint64_t total_ = 0;  // entries in the source, 0 while unknown

 private:
  uint64_t returned_ = 0;
};

struct SourceOptions {
  SkipLog* skips = nullptr;  // required for posix:
};

// Errors: Invalid (unknown scheme), Unavailable / NotFound (cannot open).
ns::Result<std::unique_ptr<Source>> OpenSource(const std::string& uri,
                                               const SourceOptions& options);

// The individual sources (OpenSource picks one by scheme).
ns::Result<std::unique_ptr<Source>> OpenDumpSource(const std::string& path);
ns::Result<std::unique_ptr<Source>> OpenPosixSource(const std::string& root,
                                                    SkipLog* skips);
ns::Result<std::unique_ptr<Source>> OpenNamespaceSource(const std::string& uri);
// `uri` is the whole "chimera:postgresql://..." (its libpq part after
// "chimera:"). Errors: Unavailable (cannot connect), Invalid naming the
// t_dirs row at fault (dangling parent, cycle, duplicate name, ...).
ns::Result<std::unique_ptr<Source>> OpenChimeraSource(const std::string& uri);
// "dpm:mysql://user:password@host:port/db". Errors as OpenChimeraSource,
// naming the Cns_file_metadata row.
ns::Result<std::unique_ptr<Source>> OpenDpmSource(const std::string& uri);

// The file type in a POSIX mode's S_IFMT bits (0170000): DPM's filemode
// is a whole mode, Chimera's itype those bits alone. Errors: Invalid,
// naming `what` and the value in octal.
ns::Result<ns::FileType> FileTypeOfMode(uint32_t mode, std::string_view what);

// `uri` with the password of a "scheme://user:password@..." part hidden.
std::string RedactUri(const std::string& uri);

}  // namespace nsmigrate
