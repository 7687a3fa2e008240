#pragma once

// The three jobs of ns-migrate over the Entry stream: import (a source into
// a namespace through a Writer), verify (a source against a namespace,
// entry by entry) and export (anything into a dump file).
//
// Import keeps in memory only the open directory stack (each directory's
// attributes, subdirectory count and the names seen in it, for the
// duplicate check) and the hard-link groups (inodes with more than one
// name). Directory inode rows are written when the directory is closed,
// when its link count (2 + subdirectories) is known.

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

#include "libnamespace/include/namespace/status.h"
#include "migrate/source.h"
#include "migrate/writer.h"

namespace nsmigrate {

// Progress on a terminal: entries, entries/s and (when the source knows its
// size) an ETA, redrawn on one stderr line at most twice a second.
class Progress {
 public:
  explicit Progress(bool enabled);
  void Tick(uint64_t entries, std::optional<double> fraction);
  void Done();

 private:
  bool enabled_;
  double start_;
  double last_ = 0;
};

struct ImportOptions {
  bool resume = false;
  // Rows per transaction (inode and entry rows together). Big batches cost
  // memory (the rows are held until the commit), small ones commits.
  uint64_t batch_rows = 200000;
  Progress* progress = nullptr;
  SkipLog* skips = nullptr;
  // Testing: kill -9 ourselves right after this many batches committed.
  uint64_t crash_after_batches = 0;
};

struct ImportStats {
  uint64_t entries = 0, directories = 0, files = 0, symlinks = 0, others = 0;
  uint64_t extra_names = 0;     // hard links beyond an inode's first name
  uint64_t nlink_fixed = 0;     // groups whose declared nlink was wrong
  uint64_t with_metadata = 0;   // entries with ACL/xattr/tag/... rows
  uint64_t extras_skipped = 0;  // entries with some of that not stored (logged)
  uint64_t batches = 0;
  // CPU seconds of the two threads: reading the source and building rows,
  // and storing the batches (the writer; a database server's own CPU is
  // not in it). The larger one bounds the import on an idle machine.
  double read_cpu_s = 0, write_cpu_s = 0;
  bool resumed = false;
  uint64_t resumed_at = 0;  // entries already imported before this run
};

// Reads `source` to the end and writes it through `writer` (a dry-run
// writer validates only). On error nothing after the last committed batch
// is kept and the target can be resumed (the error says so); the error
// names the line or path at fault.
ns::Result<ImportStats> Import(Source& source, Writer& writer,
                               const ImportOptions& options);

struct VerifyReport {
  uint64_t compared = 0;
  uint64_t equal = 0;
  uint64_t differing = 0;       // same path, different attributes
  uint64_t missing = 0;         // in the source, not in the target
  uint64_t unexpected = 0;      // in the target, not in the source
  uint64_t extras_ignored = 0;  // ACL/xattrs/... the target cannot hold yet
  bool ok() const { return differing == 0 && missing == 0 && unexpected == 0; }
};

// Compares the two streams entry by entry (both in depth-first order; a
// namespace lists in import order). Prints at most `max_report` differences
// to `out`. `ignore_extras`: the target has no tables for them yet.
ns::Result<VerifyReport> Verify(Source& source, Source& target,
                                bool ignore_extras, std::FILE* out,
                                uint64_t max_report = 20);

// Writes `source` as a dump to `path` (through a temporary file renamed at
// the end: a dump exists only when complete). Returns the entry count.
ns::Result<uint64_t> ExportDump(Source& source, const std::string& path,
                                Progress* progress);

// The current process's peak resident set, in bytes.
uint64_t PeakRssBytes();

}  // namespace nsmigrate
