// ns-migrate: brings an old namespace in (see migrate/README.md).
//
//   ns-migrate --from SOURCE-URI --to DB-URI [--dry-run] [--resume] [--verify]
//   ns-migrate --export --from SOURCE-OR-DB-URI --to dump:FILE
//
// Sources: dump:FILE, posix:/path, chimera:postgresql://...,
// dpm:mysql://..., or a namespace (sqlite:..., postgresql://...).
//
// Exit status: 0 done (and verified), 1 error, 2 --verify found differences.

#include <fmt/core.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "migrate/importer.h"
#include "migrate/source.h"
#include "migrate/writer.h"

namespace {

using nsmigrate::Progress;
using nsmigrate::SkipLog;

std::string Redact(const std::string& uri) { return nsmigrate::RedactUri(uri); }

int Fail(const ns::Status& s, const std::string& what) {
  fmt::print(stderr, "ns-migrate: {}: {}\n", what, s.ToString());
  return 1;
}

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
      .count();
}

int RunVerify(const std::string& from, const std::string& to, SkipLog& skips) {
  nsmigrate::SourceOptions so{&skips};
  SkipLog quiet(nullptr);  // the import already logged the skips
  so.skips = &quiet;
  ns::Result<std::unique_ptr<nsmigrate::Source>> src =
      nsmigrate::OpenSource(from, so);
  if (!src.ok()) return Fail(src.status(), "verify: source " + Redact(from));
  ns::Result<std::unique_ptr<nsmigrate::Source>> dst =
      nsmigrate::OpenNamespaceSource(to);
  if (!dst.ok()) return Fail(dst.status(), "verify: target " + Redact(to));
  ns::Result<nsmigrate::VerifyReport> rep =
      nsmigrate::Verify(**src, **dst, false, stderr);
  if (!rep.ok()) return Fail(rep.status(), "verify");
  fmt::print(
      "verify: {} entries compared, {} equal, {} differing, {} missing "
      "in the target, {} only in the target{}\n",
      rep->compared, rep->equal, rep->differing, rep->missing, rep->unexpected,
      rep->extras_ignored
          ? fmt::format(" ({} with ACL/xattrs/tags/checksums/locations "
                        "not compared: not stored yet)",
                        rep->extras_ignored)
          : "");
  return rep->ok() ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "ns-migrate: bring an old namespace (a dump, a POSIX tree, dCache "
      "Chimera, DPM/LFC, another namespace) into a namespace database"};
  std::string from, to, log_path;
  bool dry_run = false, resume = false, verify = false, verify_only = false;
  bool export_mode = false, no_progress = false;
  uint64_t batch_rows = 200000, crash_after = 0;
  app.add_option("--from", from,
                 "source: dump:FILE, posix:/path, chimera:postgresql://..., "
                 "dpm:mysql://user:pw@host:port/db, sqlite:///x.db, "
                 "postgresql://...")
      ->required();
  app.add_option("--to", to,
                 "target namespace (sqlite:///x.db, "
                 "postgresql://...), or dump:FILE with --export")
      ->required();
  app.add_flag("--dry-run", dry_run,
               "read and validate everything, write nothing");
  app.add_flag("--resume", resume, "continue an interrupted import");
  app.add_flag("--verify", verify,
               "after importing, compare source and target entry by entry");
  app.add_flag("--verify-only", verify_only,
               "only compare source and an already imported target");
  app.add_flag("--export", export_mode,
               "write --from (a namespace or any source) as a dump to --to "
               "dump:FILE");
  app.add_option("--log", log_path,
                 "file for the log of skipped entries (default: stderr)");
  app.add_option("--batch-rows", batch_rows,
                 "rows per transaction (default 200000)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{100000000}));
  app.add_flag("--no-progress", no_progress, "no progress line on stderr");
  // Tests only: SIGKILL ourselves after N committed batches.
  app.add_option("--crash-after-batches", crash_after)->group("");
  CLI11_PARSE(app, argc, argv);

  std::FILE* log = stderr;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> log_file(nullptr,
                                                           &std::fclose);
  if (!log_path.empty()) {
    log_file.reset(std::fopen(log_path.c_str(), "ae"));
    if (!log_file) {
      fmt::print(stderr, "ns-migrate: --log {}: {}\n", log_path,
                 std::strerror(errno));
      return 1;
    }
    std::setvbuf(log_file.get(), nullptr, _IOLBF, 0);
    log = log_file.get();
  }
  SkipLog skips(log);
  Progress progress(!no_progress && ::isatty(STDERR_FILENO));
  const auto t0 = std::chrono::steady_clock::now();

  if (export_mode) {
    if (!to.starts_with("dump:")) {
      fmt::print(stderr, "ns-migrate: --export writes --to dump:FILE\n");
      return 1;
    }
    // Any source can be written as a dump (a namespace, or chimera:/...
    // to see what an import would bring in).
    nsmigrate::SourceOptions eo;
    eo.skips = &skips;
    ns::Result<std::unique_ptr<nsmigrate::Source>> src =
        nsmigrate::OpenSource(from, eo);
    if (!src.ok()) return Fail(src.status(), "source " + Redact(from));
    ns::Result<uint64_t> n =
        nsmigrate::ExportDump(**src, to.substr(5), &progress);
    if (!n.ok()) return Fail(n.status(), "export");
    const double secs = Since(t0);
    fmt::print(
        "exported {} entries to {} in {:.1f}s ({:.0f} entries/s), peak "
        "memory {} MiB\n",
        *n, to.substr(5), secs, *n / std::max(secs, 1e-9),
        nsmigrate::PeakRssBytes() >> 20);
    return 0;
  }
  if (verify_only) return RunVerify(from, to, skips);

  nsmigrate::SourceOptions so;
  so.skips = &skips;
  ns::Result<std::unique_ptr<nsmigrate::Source>> src =
      nsmigrate::OpenSource(from, so);
  if (!src.ok()) return Fail(src.status(), "source " + Redact(from));
  ns::Result<std::unique_ptr<nsmigrate::Writer>> writer =
      nsmigrate::Writer::Open(to, dry_run);
  if (!writer.ok()) return Fail(writer.status(), "target " + Redact(to));

  nsmigrate::ImportOptions opts;
  opts.resume = resume;
  opts.batch_rows = batch_rows;
  opts.progress = &progress;
  opts.skips = &skips;
  opts.crash_after_batches = crash_after;
  ns::Result<nsmigrate::ImportStats> st =
      nsmigrate::Import(**src, **writer, opts);
  if (!st.ok()) {
    fmt::print(stderr, "ns-migrate: {}\n", st.status().ToString());
    if (!dry_run && !st.status().IsExists()) {
      fmt::print(stderr,
                 "ns-migrate: nothing after the last committed batch was "
                 "written; fix the input and run again with --resume (same "
                 "--from and --to), or start over with a fresh database\n");
    }
    return 1;
  }
  const double secs = Since(t0);
  const uint64_t done = st->entries - st->resumed_at;
  fmt::print(
      "{} {} entries (this run: {} directories, {} files, {} "
      "symlinks, {} other, {} extra hard-link names){} in {:.1f}s: {:.0f} "
      "entries/s, peak "
      "memory {} MiB, CPU {:.1f}s reading + {:.1f}s writing; {} skipped{}\n",
      dry_run ? "validated" : "imported", st->entries, st->directories,
      st->files, st->symlinks, st->others, st->extra_names,
      st->resumed ? fmt::format(" (resumed after {})", st->resumed_at) : "",
      secs, done / std::max(secs, 1e-9), nsmigrate::PeakRssBytes() >> 20,
      st->read_cpu_s, st->write_cpu_s, skips.count(),
      skips.count() ? " (see the log)" : "");
  if (verify && !dry_run) {
    writer->reset();  // the verify pass opens the target through the library
    return RunVerify(from, to, skips);
  }
  return 0;
}
