#include "migrate/importer.h"

#include <fmt/core.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <future>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "libnamespace/include/namespace/acl.h"
#include "libnamespace/include/namespace/metadata.h"
#include "libnamespace/include/namespace/namespace.h"

namespace nsmigrate {
namespace {

// inodes.mode bit 0x10000: the inode has rows in aces (docs/schema.md).
constexpr uint32_t kModeHasAcl = 0x10000;

// CPU seconds of the calling thread.
double ThreadCpu() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double Now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

InodeRow RowOf(const Entry& e, ns::InodeId ino) {
  InodeRow r;
  r.ino = ino;
  r.ext_id = e.ext_id;
  r.type = e.type;
  r.mode = e.mode;
  r.nlink = e.nlink;
  r.uid = e.uid;
  r.gid = e.gid;
  r.size = e.size;
  r.rdev_major = e.rdev_major;
  r.rdev_minor = e.rdev_minor;
  r.atime = e.atime;
  r.mtime = e.mtime;
  r.ctime = e.ctime;
  r.btime = e.btime;
  return r;
}

// One open directory of the depth-first walk.
struct Level {
  std::string path;
  ns::InodeId ino = 0;
  ns::InodeId parent = 0;
  Entry dir;          // its own attributes, written when it closes
  bool given = true;  // false: the root without a "/" line
  uint32_t subdirs = 0;
  std::unordered_set<std::string> names;
  // Whose tag set this directory sees: itself when its entry carries tags,
  // else its parent's (Chimera's inheritance); 0 for none.
  ns::InodeId tag_origin = 0;
};

// The tag set a directory sees, from its entry and its parent's.
ns::InodeId TagOrigin(const Entry& dir, ns::InodeId ino,
                      ns::InodeId parent_origin) {
  return dir.tags.empty() ? parent_origin : ino;
}

// What of an entry's ACL, xattrs, tags, checksums and locations the
// namespace can hold, as rows for inode `ino`; the rest is logged as
// skipped with the reason (never dropped silently). Returns whether the
// inode got ACEs (the mode bit). `added_ns`: the locations' timestamp.
bool AddMetadata(const Entry& e, ns::InodeId ino, Batch& b, SkipLog* skips,
                 int64_t added_ns) {
  auto skip = [&](const std::string& why) {
    if (skips) skips->Skip(e.path, why);
  };
  ns::Acl acl;
  for (const Ace& a : e.acl) {
    ns::Ace x;
    x.type = a.type;
    x.flags = a.flags;
    x.mask = a.mask;
    if (a.who == "OWNER@") {
      x.who = ns::AceWho::kOwner;
    } else if (a.who == "GROUP@") {
      x.who = ns::AceWho::kGroup;
    } else if (a.who == "EVERYONE@") {
      x.who = ns::AceWho::kEveryone;
    } else if (!a.who.empty() &&
               a.who.find_first_not_of("0123456789") == std::string::npos &&
               a.who.size() <= 10 && std::stoull(a.who) <= 0xfffffffeULL) {
      x.who = (a.flags & ns::kAceIdentifierGroup) ? ns::AceWho::kNamedGroup
                                                  : ns::AceWho::kUser;
      x.id = static_cast<uint32_t>(std::stoull(a.who));
    } else {
      // ANONYMOUS@, AUTHENTICATED@ and the like: no such principal here.
      skip(
          fmt::format("ACE {} of type {} for '{}' dropped: the namespace "
                      "has no such principal",
                      acl.size(), a.type, a.who));
      continue;
    }
    acl.push_back(x);
  }
  if (!acl.empty()) {
    if (ns::Status st = ns::ValidateAcl(acl); !st.ok()) {
      skip("ACL not stored: " + st.ToString());
      acl.clear();
    }
  }
  for (size_t i = 0; i < acl.size(); ++i) {
    const ns::Ace& a = acl[i];
    b.aces.push_back(AceRow{ino, static_cast<uint32_t>(i), a.type, a.flags,
                            a.mask, static_cast<uint32_t>(a.who), a.id});
  }
  size_t xattr_bytes = 0;
  for (const auto& [name, value] : e.xattrs) {
    xattr_bytes += name.size() + value.size();
    if (name.empty() || name.size() > ns::kMaxXattrNameBytes ||
        name.find('\0') != std::string::npos ||
        value.size() > ns::kMaxXattrValueBytes ||
        xattr_bytes > ns::kMaxXattrTotalBytes) {
      skip(
          fmt::format("xattr '{}' not stored: beyond the namespace's limits "
                      "(name 1..255 bytes, value 64 KiB, 1 MiB per inode)",
                      name.substr(0, 64)));
      continue;
    }
    b.xattrs.push_back(XattrRow{ino, name, value});
  }
  if (!e.tags.empty()) {
    if (e.type != ns::FileType::kDirectory) {
      skip("tags on a non-directory not stored");
    } else {
      for (const auto& [name, value] : e.tags) {
        if (!ns::ValidateName(name).ok() ||
            value.size() > ns::kMaxTagValueBytes) {
          skip(
              fmt::format("tag '{}' not stored: not a valid name, or value "
                          "over 64 KiB",
                          name.substr(0, 64)));
          continue;
        }
        b.tags.push_back(TagRow{ino, name, value});
      }
    }
  }
  for (const auto& [type, value] : e.checksums) {
    ns::Result<ns::ChecksumType> t = ns::ParseChecksumType(type);
    if (!t.ok()) {
      skip(
          fmt::format("checksum {}:{} not stored: the namespace has no {} "
                      "checksums (adler32, md5, sha1, sha256, sha512)",
                      type, value, type));
      continue;
    }
    if (value.size() != ns::ChecksumHexDigits(*t) ||
        value.find_first_not_of("0123456789abcdef") != std::string::npos) {
      skip(
          fmt::format("checksum {}:{} not stored: not {} lower-case hex "
                      "digits",
                      type, value, ns::ChecksumHexDigits(*t)));
      continue;
    }
    b.checksums.push_back(ChecksumRow{ino, static_cast<uint32_t>(*t), value});
  }
  for (const Location& l : e.locations) {
    if (l.uri.empty() || l.uri.size() > ns::kMaxLocationBytes) {
      skip("location not stored: empty or over 4096 bytes");
      continue;
    }
    b.locations.push_back(LocationRow{
        ino, static_cast<uint32_t>(LocationTypeOf(l.type)), l.uri, added_ns});
  }
  return !acl.empty();
}

// The stack in a checkpoint: one line per level, "ino parent subdirs given
// <dump line>"; names are reloaded from the target on resume.
std::string SaveStack(const std::vector<Level>& stack) {
  std::string out;
  for (const Level& l : stack) {
    out += fmt::format("{} {} {} {} ", l.ino, l.parent, l.subdirs,
                       l.given ? 1 : 0);
    out += FormatEntry(l.dir);
    out.push_back('\n');
  }
  return out;
}

ns::Result<std::vector<Level>> LoadStack(const std::string& text,
                                         Writer& writer) {
  std::vector<Level> stack;
  DumpParser parser;
  size_t pos = 0;
  uint64_t n = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string_view line(text.data() + pos, nl - pos);
    pos = nl + 1;
    ++n;
    Level l;
    unsigned long long ino = 0, parent = 0;
    unsigned subdirs = 0, given = 0;
    int used = 0;
    const std::string head(line.substr(0, std::min<size_t>(line.size(), 80)));
    if (std::sscanf(head.c_str(), "%llu %llu %u %u %n", &ino, &parent, &subdirs,
                    &given, &used) != 4) {
      return ns::Status::Corruption("checkpoint", "bad directory stack");
    }
    NS_ASSIGN_OR_RETURN(l.dir, parser.ParseEntry(line.substr(used), n));
    l.path = l.dir.path;
    l.ino = ino;
    l.parent = parent;
    l.subdirs = subdirs;
    l.given = given != 0;
    NS_ASSIGN_OR_RETURN(std::vector<std::string> names, writer.NamesIn(l.ino));
    for (auto& name : names) l.names.insert(std::move(name));
    l.tag_origin =
        TagOrigin(l.dir, l.ino, stack.empty() ? 0 : stack.back().tag_origin);
    stack.push_back(std::move(l));
  }
  return stack;
}

ns::Status At(const Source& src, const std::string& path,
              std::string_view why) {
  return ns::Status::Invalid(
      fmt::format("{} line {}", src.Uri(), src.Position().line),
      fmt::format("{}: {}", path, why));
}

class Importer {
 public:
  Importer(Source& src, Writer& w, const ImportOptions& o)
      : src_(src), w_(w), o_(o) {}

  bool NothingCommitted() const {
    return began_ && !stats_.resumed && stats_.batches == 0;
  }

  ns::Result<ImportStats> Run() {
    ns::Result<ImportStats> r = Walk();
    // A failed import still lands its batch in flight: whether anything
    // was committed decides what Import() leaves behind.
    if (!r.ok()) (void)Land();
    return r;
  }

 private:
  ns::Result<ImportStats> Walk() {
    NS_ASSIGN_OR_RETURN(cp_, w_.Begin(src_.Uri(), o_.resume));
    began_ = true;
    if (cp_.entries > 0 || !cp_.stack.empty()) {
      stats_.resumed = true;
      stats_.resumed_at = cp_.entries;
      NS_RETURN_IF_ERROR(src_.Seek(SourcePos{cp_.offset, cp_.line}));
      NS_ASSIGN_OR_RETURN(stack_, LoadStack(cp_.stack, w_));
      NS_ASSIGN_OR_RETURN(std::vector<LinkRow> links, w_.LoadLinks());
      for (LinkRow& l : links) links_.emplace(l.key, l);
    }
    stats_.entries = cp_.entries;
    // Bounded by the source: each iteration consumes one entry.
    while (true) {
      NS_ASSIGN_OR_RETURN(std::optional<Entry> e, src_.Next());
      if (!e) break;
      NS_RETURN_IF_ERROR(Add(std::move(*e)));
      if (o_.progress) o_.progress->Tick(stats_.entries, src_.Fraction());
      if (batch_.rows() >= o_.batch_rows) {
        NS_RETURN_IF_ERROR(CommitBatch());
      }
    }
    return Finish();
  }

  ns::Status Add(Entry e) {
    if (e.path == "/") {
      if (stats_.entries != 0 || !stack_.empty()) {
        return At(src_, e.path, "the root must be the first entry");
      }
      if (e.type != ns::FileType::kDirectory) {
        return At(src_, e.path, "the root must be a directory");
      }
      if (!e.link_key.empty()) return At(src_, e.path, "the root has one name");
      const ns::InodeId origin = TagOrigin(e, ns::kRootInode, 0);
      stack_.push_back(Level{"/",
                             ns::kRootInode,
                             ns::kRootInode,
                             std::move(e),
                             true,
                             0,
                             {},
                             origin});
      ++stats_.entries;
      ++stats_.directories;
      return ns::Status::Ok();
    }
    if (stack_.empty()) {
      // No "/" line: the root keeps its attributes, only its link count is
      // set at the end.
      Entry root;
      root.path = "/";
      root.type = ns::FileType::kDirectory;
      stack_.push_back(
          Level{"/", ns::kRootInode, ns::kRootInode, root, false, 0, {}});
    }
    const auto [parent, name] = SplitPath(e.path);
    // Close the directories this entry is not in. Bounded by the depth.
    while (stack_.size() > 1 && stack_.back().path != parent) {
      Close();
    }
    Level& dir = stack_.back();
    if (dir.path != parent) {
      return At(src_, e.path,
                fmt::format("parent directory '{}' does not precede it (no "
                            "such directory, or the input is not in "
                            "depth-first order: docs/dump-format.md)",
                            parent));
    }
    std::string nm(name);
    if (!dir.names.insert(nm).second) {
      return At(src_, e.path, "duplicate name in its directory");
    }
    ++stats_.entries;
    if (!e.link_key.empty()) {
      auto it = links_.find(e.link_key);
      if (it != links_.end()) {
        LinkRow& l = it->second;
        if (l.seen >= ns::kMaxLinks) {
          return At(src_, e.path, "too many hard links");
        }
        ++l.seen;
        ++stats_.extra_names;
        batch_.dirents.push_back(DirentRow{dir.ino, std::move(nm), l.ino,
                                           e.type, cp_.next_cookie++});
        batch_.links.push_back(l);
        return ns::Status::Ok();
      }
    }
    const ns::InodeId ino = cp_.next_ino++;
    batch_.dirents.push_back(
        DirentRow{dir.ino, std::move(nm), ino, e.type, cp_.next_cookie++});
    if (!e.link_key.empty()) {
      LinkRow l{e.link_key, ino, 1, e.nlink};
      batch_.links.push_back(l);
      links_.emplace(e.link_key, std::move(l));
    }
    switch (e.type) {
      case ns::FileType::kDirectory: {
        ++stats_.directories;
        ++dir.subdirs;
        const ns::InodeId parent_ino = dir.ino;
        const ns::InodeId origin = TagOrigin(e, ino, dir.tag_origin);
        std::string path = e.path;
        stack_.push_back(Level{std::move(path),
                               ino,
                               parent_ino,
                               std::move(e),
                               true,
                               0,
                               {},
                               origin});
        return ns::Status::Ok();
      }
      case ns::FileType::kSymlink:
        ++stats_.symlinks;
        batch_.symlinks.push_back(SymlinkRow{ino, e.target});
        break;
      case ns::FileType::kRegular:
        ++stats_.files;
        break;
      default:
        ++stats_.others;
    }
    InodeRow row = RowOf(e, ino);
    if (Metadata(e, ino)) row.mode |= kModeHasAcl;
    batch_.inodes.push_back(std::move(row));
    return ns::Status::Ok();
  }

  // The metadata rows of inode `ino`; whether it got an ACL.
  bool Metadata(const Entry& e, ns::InodeId ino) {
    if (!e.HasExtras()) return false;
    const size_t before = batch_.rows();
    const uint64_t skipped = o_.skips ? o_.skips->count() : 0;
    const bool acl = AddMetadata(e, ino, batch_, o_.skips, start_ns_);
    if (batch_.rows() > before) ++stats_.with_metadata;
    if (o_.skips && o_.skips->count() > skipped) ++stats_.extras_skipped;
    return acl;
  }

  // Writes the top directory's row, now that its subdirectories are known.
  void Close() {
    Level& l = stack_.back();
    InodeRow r = RowOf(l.dir, l.ino);
    r.nlink = 2 + l.subdirs;
    r.parent = l.parent;
    if (Metadata(l.dir, l.ino)) r.mode |= kModeHasAcl;
    if (l.tag_origin != 0) batch_.dir_tags.push_back({l.ino, l.tag_origin});
    batch_.inodes.push_back(std::move(r));
    stack_.pop_back();
  }

  Checkpoint Snapshot() {
    const SourcePos pos = src_.Position();
    cp_.offset = pos.offset;
    cp_.line = pos.line;
    cp_.entries = stats_.entries;
    cp_.stack = SaveStack(stack_);
    return cp_;
  }

  // Hands the batch to the writer on a thread of its own and goes on
  // reading: the source and the database (SQLite's B-trees, or the
  // PostgreSQL server's COPY) then work at the same time, on two cores.
  // One batch in flight at most, so memory stays two batches. The writer
  // is used by one thread at a time: the flight is awaited before the
  // next one starts and before Finish.
  ns::Status CommitBatch() {
    NS_RETURN_IF_ERROR(Land());
    std::swap(batch_, flying_);
    auto job = [this, cp = Snapshot()] {
      const double cpu = ThreadCpu();
      ns::Status s = w_.Commit(flying_, cp);
      flight_cpu_ = ThreadCpu() - cpu;
      return s;
    };
    try {
      inflight_ = std::async(std::launch::async, job);
    } catch (const std::system_error&) {
      // No thread to be had: the batch is written by Land(), here.
      inflight_ = std::async(std::launch::deferred, job);
    }
    return ns::Status::Ok();
  }

  // Waits for the batch in flight; its error, if any, ends the import
  // (the checkpoint of the last batch that did commit stays for --resume).
  ns::Status Land() {
    if (!inflight_.valid()) return ns::Status::Ok();
    NS_RETURN_IF_ERROR(inflight_.get());
    stats_.write_cpu_s += flight_cpu_;
    flying_.clear();
    ++stats_.batches;
    if (o_.crash_after_batches && stats_.batches >= o_.crash_after_batches) {
      ::kill(::getpid(), SIGKILL);  // the test's kill -9, at a known point
    }
    return ns::Status::Ok();
  }

  ns::Result<ImportStats> Finish() {
    InodeRow root;
    if (stack_.empty()) {
      root.ino = 0;  // nothing at all: the root keeps everything
      root.nlink = 2;
    } else {
      while (stack_.size() > 1) Close();
      const Level& l = stack_.back();
      root = RowOf(l.dir, ns::kRootInode);
      root.nlink = 2 + l.subdirs;
      if (!l.given) {
        root.ino = 0;
      } else {
        if (Metadata(l.dir, ns::kRootInode)) root.mode |= kModeHasAcl;
        if (l.tag_origin != 0) {
          batch_.dir_tags.push_back({ns::kRootInode, l.tag_origin});
        }
      }
    }
    std::vector<std::pair<ns::InodeId, uint32_t>> nlinks;
    for (const auto& [key, l] : links_) {
      if (l.seen != l.nlink) {
        nlinks.emplace_back(l.ino, l.seen);
        ++stats_.nlink_fixed;
        if (o_.skips) {
          o_.skips->Skip(
              fmt::format("hard-link group '{}'", key),
              fmt::format("declared nlink {}, {} names imported: nlink set "
                          "to {}",
                          l.nlink, l.seen, l.seen));
        }
      }
    }
    NS_RETURN_IF_ERROR(Land());
    const double cpu = ThreadCpu();
    NS_RETURN_IF_ERROR(w_.Finish(batch_, Snapshot(), nlinks, root));
    stats_.write_cpu_s += ThreadCpu() - cpu;
    stats_.read_cpu_s = cpu - start_cpu_;
    batch_.clear();
    if (o_.progress) o_.progress->Done();
    return stats_;
  }

  Source& src_;
  Writer& w_;
  const ImportOptions& o_;
  Checkpoint cp_;
  ImportStats stats_;
  Batch batch_;
  Batch flying_;  // the batch in flight (inflight_), else empty
  std::future<ns::Status> inflight_;
  double flight_cpu_ = 0;  // the flight's CPU seconds, read after get()
  const double start_cpu_ = ThreadCpu();
  std::vector<Level> stack_;
  std::unordered_map<std::string, LinkRow> links_;
  bool began_ = false;
  // When this run started: the recorded time of the locations it stores.
  const int64_t start_ns_ =
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count();
};

std::string Describe(const Entry& a, const Entry& b) {
  std::string d;
  auto field = [&](const char* name, auto x, auto y) {
    if (x != y) d += fmt::format(" {}: {} != {};", name, x, y);
  };
  field("type", TypeLetter(a.type), TypeLetter(b.type));
  field("mode", a.mode, b.mode);
  field("uid", a.uid, b.uid);
  field("gid", a.gid, b.gid);
  field("size", a.size, b.size);
  field("mtime", a.mtime, b.mtime);
  field("ctime", a.ctime, b.ctime);
  field("btime", a.btime, b.btime);
  field("nlink", a.nlink, b.nlink);
  field("rdev_major", a.rdev_major, b.rdev_major);
  field("rdev_minor", a.rdev_minor, b.rdev_minor);
  field("target", a.target, b.target);
  field("ext_id", a.ext_id, b.ext_id);
  if (a.HasExtras() || b.HasExtras()) {
    auto extras = [](const Entry& e) {
      Entry x;
      x.path = e.path;
      x.type = e.type;
      x.checksums = e.checksums;
      x.xattrs = e.xattrs;
      x.acl = e.acl;
      x.tags = e.tags;
      x.locations = e.locations;
      std::string line = FormatEntry(x);
      // Only the extras: cut what FormatEntry always writes before them.
      const size_t at = line.find(",\"checksums\"") != std::string::npos
                            ? line.find(",\"checksums\"")
                            : line.find(",\"", line.find("\"mtime\""));
      return at == std::string::npos ? line : line.substr(at + 1);
    };
    const std::string xa = extras(a), xb = extras(b);
    if (xa != xb) {
      d += fmt::format(" metadata: {} != {};", xa.substr(0, 300),
                       xb.substr(0, 300));
    }
  }
  return d;
}

}  // namespace

Progress::Progress(bool enabled) : enabled_(enabled), start_(Now()) {}

void Progress::Tick(uint64_t entries, std::optional<double> fraction) {
  if (!enabled_ || (entries & 1023) != 0) return;
  const double now = Now();
  if (now - last_ < 0.5) return;
  last_ = now;
  const double rate = entries / std::max(now - start_, 1e-9);
  std::string eta;
  if (fraction && *fraction > 0.001) {
    const double left = (now - start_) * (1 - *fraction) / *fraction;
    eta = fmt::format(", {:.0f}% done, ETA {:.0f}s", *fraction * 100, left);
  }
  fmt::print(stderr, "\r{} entries, {:.0f}/s{}\033[K", entries, rate, eta);
  std::fflush(stderr);
}

void Progress::Done() {
  if (enabled_ && last_ > 0) fmt::print(stderr, "\n");
}

ns::Result<ImportStats> Import(Source& source, Writer& writer,
                               const ImportOptions& options) {
  Importer imp(source, writer, options);
  ns::Result<ImportStats> r = imp.Run();
  if (!r.ok()) {
    if (options.progress) options.progress->Done();
    // Nothing committed yet: leave the target as fresh as it was, not
    // "interrupted" (an Exists from Begin means it was not ours to touch).
    if (imp.NothingCommitted() && !r.status().IsExists()) {
      (void)writer.Discard();
    }
  }
  return r;
}

ns::Result<VerifyReport> Verify(Source& source, Source& target,
                                bool ignore_extras, std::FILE* out,
                                uint64_t max_report) {
  VerifyReport rep;
  uint64_t reported = 0;
  auto report = [&](const std::string& line) {
    if (reported++ < max_report && out) fmt::print(out, "verify: {}\n", line);
  };
  // Hard links: the source's link keys and the target's inodes must pair
  // up one to one.
  std::unordered_map<std::string, std::string> key_map;
  NS_ASSIGN_OR_RETURN(std::optional<Entry> a, source.Next());
  NS_ASSIGN_OR_RETURN(std::optional<Entry> b, target.Next());
  // A source without a "/" line says nothing about the root.
  if (a && b && a->path != "/" && b->path == "/") {
    NS_ASSIGN_OR_RETURN(b, target.Next());
  }
  while (a || b) {
    if (!b || (a && a->path != b->path)) {
      // The streams are in the same order when the trees agree; at the first
      // divergence everything after is unverifiable by zipping, so count
      // the rest of each side as missing/unexpected.
      if (a) {
        ++rep.missing;
        report(
            fmt::format("{}: missing in the target{}", a->path,
                        b ? fmt::format(" (found {} instead)", b->path) : ""));
      }
      while (a) {
        NS_ASSIGN_OR_RETURN(a, source.Next());
        if (a) ++rep.missing;
      }
      while (b) {
        ++rep.unexpected;
        NS_ASSIGN_OR_RETURN(b, target.Next());
      }
      break;
    }
    if (!a) {
      ++rep.unexpected;
      report(fmt::format("{}: in the target only", b->path));
      NS_ASSIGN_OR_RETURN(b, target.Next());
      continue;
    }
    ++rep.compared;
    if (ignore_extras) {
      if (a->HasExtras()) ++rep.extras_ignored;
      for (Entry* e : {&*a, &*b}) {
        e->checksums.clear();
        e->xattrs.clear();
        e->acl.clear();
        e->tags.clear();
        e->locations.clear();
      }
    }
    bool same = true;
    if (!a->link_key.empty() || !b->link_key.empty()) {
      auto [it, fresh] = key_map.emplace(a->link_key, b->link_key);
      if (a->link_key.empty() || b->link_key.empty() ||
          (!fresh && it->second != b->link_key)) {
        same = false;
        report(fmt::format("{}: hard links differ", a->path));
      }
    }
    Entry x = *a, y = *b;
    // Metadata is compared as the rows the namespace holds, so what an
    // import maps (location types, case of hex) or leaves out (checksum
    // types and principals the namespace lacks, logged at import) counts
    // as equal.
    NormalizeMetadata(x);
    NormalizeMetadata(y);
    Batch mx, my;
    AddMetadata(x, 0, mx, nullptr, 0);
    AddMetadata(y, 0, my, nullptr, 0);
    const bool same_meta = mx.aces == my.aces && mx.xattrs == my.xattrs &&
                           mx.tags == my.tags && mx.checksums == my.checksums &&
                           mx.locations == my.locations;
    for (Entry* e : {&x, &y}) {
      e->checksums.clear();
      e->xattrs.clear();
      e->acl.clear();
      e->tags.clear();
      e->locations.clear();
    }
    if (!same_meta) {
      same = false;
      report(fmt::format("{}:{}", a->path, Describe(*a, *b)));
    }
    x.link_key.clear();
    y.link_key.clear();
    // Reading a tree (the import, this very pass) moves its atimes.
    x.atime = y.atime = 0;
    if (same_meta && x != y) {
      same = false;
      report(fmt::format("{}:{}", a->path, Describe(x, y)));
    }
    if (same) {
      ++rep.equal;
    } else {
      ++rep.differing;
    }
    NS_ASSIGN_OR_RETURN(a, source.Next());
    NS_ASSIGN_OR_RETURN(b, target.Next());
  }
  if (reported > max_report && out) {
    fmt::print(out, "verify: ... and {} more\n", reported - max_report);
  }
  return rep;
}

ns::Result<uint64_t> ExportDump(Source& source, const std::string& path,
                                Progress* progress) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "we");
  if (!f) return ns::Status::IOError("create " + tmp, std::strerror(errno));
  std::vector<char> buf(1 << 20);
  std::setvbuf(f, buf.data(), _IOFBF, buf.size());
  uint64_t n = 0;
  auto run = [&]() -> ns::Status {
    const std::string header =
        FormatHeader(DumpHeader{kDumpVersion, source.Uri()});
    std::fwrite(header.data(), 1, header.size(), f);
    std::fputc('\n', f);
    while (true) {
      NS_ASSIGN_OR_RETURN(std::optional<Entry> e, source.Next());
      if (!e) break;
      const std::string line = FormatEntry(*e);
      std::fwrite(line.data(), 1, line.size(), f);
      std::fputc('\n', f);
      ++n;
      if (progress) progress->Tick(n, std::nullopt);
    }
    if (std::fflush(f) != 0 || ::fsync(fileno(f)) != 0) {
      return ns::Status::IOError("write " + tmp, std::strerror(errno));
    }
    return ns::Status::Ok();
  };
  ns::Status s = run();
  if (std::fclose(f) != 0 && s.ok()) {
    s = ns::Status::IOError("close " + tmp, std::strerror(errno));
  }
  if (s.ok() && std::rename(tmp.c_str(), path.c_str()) != 0) {
    s = ns::Status::IOError("rename " + tmp, std::strerror(errno));
  }
  if (!s.ok()) {
    std::remove(tmp.c_str());
    return s;
  }
  if (progress) progress->Done();
  return n;
}

uint64_t PeakRssBytes() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;
}

}  // namespace nsmigrate
