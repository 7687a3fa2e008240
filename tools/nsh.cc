// nsh: a shell user's commands, run straight against the namespace database.
// Output and error messages follow coreutils so that they read the same as
// on a mounted file system:
//   nsh --db URI [--as UID:GID[,GID...]] ls [-l] [-a] [-R] [-n] PATH...
//   mkdir [-p] | touch | stat | rm [-r] [-f] | rmdir | mv | ln [-s] | chmod |
//   chown | readlink | df [-i]
//   getfacl | setfacl (-a ACL [--index N] | -x ACE|N | -s ACL | -m OLD NEW)
//   getxattr | setxattr [--create|--replace] | listxattr | rmxattr
//   lstag | readtag | writetag | rmtag | pushtag | checksum get|set|rm

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "libnamespace/include/namespace/namespace.h"
#include "tools/cli_common.h"

namespace {

using ns::Attr;
using ns::FileType;
using ns::Result;
using ns::Status;

// Everything a command needs: the namespace, who is asking, and the exit
// status so far (coreutils goes on after a failed operand and exits 1).
struct Shell {
  ns::Namespace* fs = nullptr;
  ns::Credentials cred;
  bool numeric_ids = false;
  int exit_code = 0;

  void Error(const std::string& what, const Status& s) {
    fmt::print(stderr, "nsh: {}: {}\n", what, s.Reason());
    exit_code = 1;
  }
};

// nsh has no working directory: relative paths start at the root.
std::string Absolute(const std::string& p) {
  return !p.empty() && p[0] == '/' ? p : "/" + p;
}

// Splits "/a/b/c" into ("/a/b", "c"); trailing slashes ignored.
std::pair<std::string, std::string> SplitParent(const std::string& path) {
  std::string p = Absolute(path);
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t slash = p.rfind('/');
  std::string dir = slash == 0 ? "/" : p.substr(0, slash);
  return {dir, p.substr(slash + 1)};
}

std::string Join(const std::string& dir, const std::string& name) {
  return dir == "/" ? "/" + name : dir + "/" + name;
}

std::string ModeString(const Attr& a) {
  std::string s(10, '-');
  s[0] = ns::FileTypeLetter(a.type);
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) {
    if (a.mode & (0400 >> i)) s[i + 1] = rwx[i];
  }
  auto special = [&](int pos, uint32_t bit, char set_x, char set_nox) {
    if (a.mode & bit) s[pos] = s[pos] == '-' ? set_nox : set_x;
  };
  special(3, S_ISUID, 's', 'S');
  special(6, S_ISGID, 's', 'S');
  special(9, S_ISVTX, 't', 'T');
  return s;
}

std::string UserName(uint32_t uid, bool numeric) {
  if (!numeric) {
    if (struct passwd* pw = getpwuid(uid)) return pw->pw_name;
  }
  return std::to_string(uid);
}

std::string GroupName(uint32_t gid, bool numeric) {
  if (!numeric) {
    if (struct group* gr = getgrgid(gid)) return gr->gr_name;
  }
  return std::to_string(gid);
}

// ls -l's date column: "Nov 23 08:02" within six months, else "Nov 23  2025".
std::string LsTime(ns::TimeNs t) {
  time_t secs = static_cast<time_t>(t / 1000000000);
  struct tm tm;
  localtime_r(&secs, &tm);
  char buf[64];
  const time_t six_months = 15778476;
  time_t now = time(nullptr);
  bool recent = secs <= now + 60 && now - secs < six_months;
  strftime(buf, sizeof buf, recent ? "%b %e %H:%M" : "%b %e  %Y", &tm);
  return buf;
}

// stat's "2026-11-23 08:02:00.123456789 +0000".
std::string StatTime(ns::TimeNs t) {
  time_t secs = static_cast<time_t>(t / 1000000000);
  long nanos = static_cast<long>(t % 1000000000);
  if (nanos < 0) {
    nanos += 1000000000;
    --secs;
  }
  struct tm tm;
  localtime_r(&secs, &tm);
  char date[64], zone[16];
  strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm);
  strftime(zone, sizeof zone, "%z", &tm);
  return fmt::format("{}.{:09d} {}", date, nanos, zone);
}

std::string TypeDescription(const Attr& a) {
  switch (a.type) {
    case FileType::kRegular:
      return a.size == 0 ? "regular empty file" : "regular file";
    case FileType::kDirectory: return "directory";
    case FileType::kSymlink: return "symbolic link";
    case FileType::kBlockDevice: return "block special file";
    case FileType::kCharDevice: return "character special file";
    case FileType::kFifo: return "fifo";
    case FileType::kSocket: return "socket";
  }
  return "unknown";
}

Result<std::vector<ns::DirEntry>> ListAll(Shell& sh, ns::InodeId dir) {
  std::vector<ns::DirEntry> all;
  ns::ReadDirRequest req;
  req.max_entries = 1024;
  req.with_attrs = true;
  while (true) {
    auto page = sh.fs->ReadDir(sh.cred, dir, req);
    if (!page.ok()) return page.status();
    for (auto& e : page->entries) all.push_back(std::move(e));
    if (page->eof || all.empty()) break;
    req.cookie = all.back().cookie;
    req.verifier = page->verifier;
  }
  return all;
}

struct LsFlags {
  bool long_format = false;
  bool all = false;
  bool recursive = false;
};

// One `ls -l` line, split in columns so a listing can align them.
struct LongRow {
  std::string mode, links, user, group, size, time, name;
};

LongRow MakeLongRow(Shell& sh, const Attr& a, const std::string& name) {
  LongRow r;
  r.mode = ModeString(a);
  r.links = std::to_string(a.nlink);
  r.user = UserName(a.uid, sh.numeric_ids);
  r.group = GroupName(a.gid, sh.numeric_ids);
  r.size = (a.type == FileType::kBlockDevice || a.type == FileType::kCharDevice)
               ? fmt::format("{}, {}", a.rdev_major, a.rdev_minor)
               : std::to_string(a.size);
  r.time = LsTime(a.mtime);
  r.name = name;
  if (a.type == FileType::kSymlink) {
    auto target = sh.fs->ReadLink(sh.cred, a.ino);
    if (target.ok()) r.name += " -> " + *target;
  }
  return r;
}

// Prints rows as coreutils does: numbers right-aligned, names left-aligned,
// each column as wide as its widest cell.
void PrintLongRows(const std::vector<LongRow>& rows) {
  size_t w[4] = {0, 0, 0, 0};
  for (const auto& r : rows) {
    w[0] = std::max(w[0], r.links.size());
    w[1] = std::max(w[1], r.user.size());
    w[2] = std::max(w[2], r.group.size());
    w[3] = std::max(w[3], r.size.size());
  }
  for (const auto& r : rows) {
    fmt::print("{} {:>{}} {:<{}} {:<{}} {:>{}} {} {}\n", r.mode, r.links, w[0],
               r.user, w[1], r.group, w[2], r.size, w[3], r.time, r.name);
  }
}

void ListDir(Shell& sh, const std::string& path, const Attr& dir,
             const LsFlags& f, bool header) {
  auto entries = ListAll(sh, dir.ino);
  if (!entries.ok()) {
    sh.Error(fmt::format("cannot open directory '{}'", path), entries.status());
    return;
  }
  std::sort(entries->begin(), entries->end(),
            [](const ns::DirEntry& x, const ns::DirEntry& y) {
              return x.name < y.name;
            });
  if (header) fmt::print("{}:\n", path);
  if (f.long_format) {
    uint64_t blocks = 0;
    for (const auto& e : *entries) blocks += (e.attr->size + 1023) / 1024;
    fmt::print("total {}\n", blocks);
  }
  std::vector<LongRow> rows;
  auto show = [&](const Attr& a, const std::string& name) {
    if (f.long_format) {
      rows.push_back(MakeLongRow(sh, a, name));
    } else {
      fmt::print("{}\n", name);
    }
  };
  if (f.all) {
    show(dir, ".");
    auto up = sh.fs->GetAttr(sh.cred, dir.parent);
    show(up.ok() ? *up : dir, "..");
  }
  for (const auto& e : *entries) {
    if (!f.all && e.name[0] == '.') continue;
    show(*e.attr, e.name);
  }
  PrintLongRows(rows);
  if (f.recursive) {
    for (const auto& e : *entries) {
      if (e.type != FileType::kDirectory) continue;
      if (!f.all && e.name[0] == '.') continue;
      fmt::print("\n");
      ListDir(sh, Join(path, e.name), *e.attr, f, true);
    }
  }
}

void CmdLs(Shell& sh, std::vector<std::string> paths, const LsFlags& f) {
  if (paths.empty()) paths.push_back("/");
  bool header = paths.size() > 1 || f.recursive;
  bool first = true;
  for (const auto& p : paths) {
    auto a = sh.fs->Resolve(sh.cred, Absolute(p), !f.long_format);
    if (!a.ok()) {
      sh.Error(fmt::format("cannot access '{}'", p), a.status());
      continue;
    }
    if (a->type != FileType::kDirectory) {
      if (f.long_format) {
        PrintLongRows({MakeLongRow(sh, *a, p)});
      } else {
        fmt::print("{}\n", p);
      }
      continue;
    }
    if (!first) fmt::print("\n");
    first = false;
    ListDir(sh, p, *a, f, header);
  }
}

// Resolves the parent directory of `path`; reports failures as `what`.
std::optional<std::pair<Attr, std::string>> Parent(Shell& sh,
                                                   const std::string& path,
                                                   const std::string& what) {
  auto [dir, name] = SplitParent(path);
  if (name.empty()) {
    sh.Error(fmt::format("{} '{}'", what, path), Status::Exists(path));
    return std::nullopt;
  }
  auto d = sh.fs->Resolve(sh.cred, dir);
  if (!d.ok()) {
    sh.Error(fmt::format("{} '{}'", what, path), d.status());
    return std::nullopt;
  }
  return std::make_pair(*d, name);
}

void CmdMkdir(Shell& sh, const std::vector<std::string>& paths, bool parents,
              uint32_t mode) {
  for (const auto& p : paths) {
    const std::string what = fmt::format("cannot create directory '{}'", p);
    if (parents) {
      ns::InodeId cur = sh.fs->Root();
      std::string sofar;
      std::string abs = Absolute(p);
      size_t i = 1;
      bool failed = false;
      while (i <= abs.size() && !failed) {
        size_t j = abs.find('/', i);
        if (j == std::string::npos) j = abs.size();
        std::string comp = abs.substr(i, j - i);
        i = j + 1;
        if (comp.empty() || comp == ".") continue;
        sofar += "/" + comp;
        auto made = sh.fs->Mkdir(sh.cred, cur, comp, mode);
        if (made.ok()) {
          cur = made->ino;
          continue;
        }
        auto existing = sh.fs->Lookup(sh.cred, cur, comp);
        if (made.status().IsExists() && existing.ok() &&
            existing->type == FileType::kDirectory) {
          cur = existing->ino;
          continue;
        }
        auto via = sh.fs->Resolve(sh.cred, sofar);  // ".." or a symlink
        if (made.status().IsInvalid() && via.ok() &&
            via->type == FileType::kDirectory) {
          cur = via->ino;
          continue;
        }
        sh.Error(fmt::format("cannot create directory '{}'", sofar),
                 made.status().IsExists() ? Status::NotDir(sofar)
                                          : made.status());
        failed = true;
      }
      continue;
    }
    auto parent = Parent(sh, p, "cannot create directory");
    if (!parent) continue;
    auto made = sh.fs->Mkdir(sh.cred, parent->first.ino, parent->second, mode);
    if (!made.ok()) sh.Error(what, made.status());
  }
}

void CmdTouch(Shell& sh, const std::vector<std::string>& paths) {
  for (const auto& p : paths) {
    const std::string what = fmt::format("cannot touch '{}'", p);
    auto a = sh.fs->Resolve(sh.cred, Absolute(p));
    if (a.ok()) {
      ns::SetAttrRequest req;
      req.atime_now = req.mtime_now = true;
      auto r = sh.fs->SetAttr(sh.cred, a->ino, req);
      if (!r.ok()) sh.Error(what, r.status());
      continue;
    }
    if (!a.status().IsNotFound()) {
      sh.Error(what, a.status());
      continue;
    }
    auto parent = Parent(sh, p, "cannot touch");
    if (!parent) continue;
    auto made = sh.fs->Create(sh.cred, parent->first.ino, parent->second, 0644);
    if (!made.ok()) sh.Error(what, made.status());
  }
}

void CmdStat(Shell& sh, const std::vector<std::string>& paths) {
  for (const auto& p : paths) {
    auto a = sh.fs->Resolve(sh.cred, Absolute(p), false);
    if (!a.ok()) {
      sh.Error(fmt::format("cannot statx '{}'", p), a.status());
      continue;
    }
    std::string file = p;
    if (a->type == FileType::kSymlink) {
      auto t = sh.fs->ReadLink(sh.cred, a->ino);
      if (t.ok()) file += " -> " + *t;
    }
    fmt::print("  File: {}\n", file);
    fmt::print("  Size: {:<15} Blocks: {:<10} IO Block: 4096   {}\n", a->size,
               (a->size + 511) / 512, TypeDescription(*a));
    std::string dev = "Device: 0h/0d";
    if (a->type == FileType::kBlockDevice || a->type == FileType::kCharDevice) {
      dev += fmt::format("\tInode: {:<11} Links: {:<5} Device type: {},{}",
                         a->ino, a->nlink, a->rdev_major, a->rdev_minor);
    } else {
      dev += fmt::format("\tInode: {:<11} Links: {}", a->ino, a->nlink);
    }
    fmt::print("{}\n", dev);
    fmt::print("Access: ({:04o}/{})  Uid: ({:>5}/{:>8})   Gid: ({:>5}/{:>8})\n",
               a->mode, ModeString(*a), a->uid, UserName(a->uid, sh.numeric_ids),
               a->gid, GroupName(a->gid, sh.numeric_ids));
    fmt::print("Access: {}\nModify: {}\nChange: {}\n Birth: {}\n",
               StatTime(a->atime), StatTime(a->mtime), StatTime(a->ctime),
               StatTime(a->btime));
  }
}

// Removes everything below directory `dir` (depth first, in pages).
Status RemoveTree(Shell& sh, ns::InodeId dir) {
  while (true) {
    ns::ReadDirRequest req;
    req.max_entries = 512;
    auto page = sh.fs->ReadDir(sh.cred, dir, req);
    if (!page.ok()) return page.status();
    if (page->entries.empty()) return Status::Ok();
    for (const auto& e : page->entries) {
      if (e.type == FileType::kDirectory) {
        NS_RETURN_IF_ERROR(RemoveTree(sh, e.ino));
        NS_RETURN_IF_ERROR(sh.fs->Rmdir(sh.cred, dir, e.name));
      } else {
        auto r = sh.fs->Unlink(sh.cred, dir, e.name);
        if (!r.ok() && !r.status().IsNotFound()) return r.status();
      }
    }
  }
}

void CmdRm(Shell& sh, const std::vector<std::string>& paths, bool recursive,
           bool force) {
  for (const auto& p : paths) {
    const std::string what = fmt::format("cannot remove '{}'", p);
    auto parent = Parent(sh, p, "cannot remove");
    if (!parent) continue;
    auto a = sh.fs->Lookup(sh.cred, parent->first.ino, parent->second);
    if (!a.ok()) {
      if (!(force && a.status().IsNotFound())) sh.Error(what, a.status());
      continue;
    }
    if (a->type == FileType::kDirectory) {
      if (!recursive) {
        sh.Error(what, Status::IsDir(p));
        continue;
      }
      Status s = RemoveTree(sh, a->ino);
      if (s.ok()) s = sh.fs->Rmdir(sh.cred, parent->first.ino, parent->second);
      if (!s.ok()) sh.Error(what, s);
      continue;
    }
    auto r = sh.fs->Unlink(sh.cred, parent->first.ino, parent->second);
    if (!r.ok() && !(force && r.status().IsNotFound())) {
      sh.Error(what, r.status());
    }
  }
}

void CmdRmdir(Shell& sh, const std::vector<std::string>& paths) {
  for (const auto& p : paths) {
    auto parent = Parent(sh, p, "failed to remove");
    if (!parent) continue;
    Status s = sh.fs->Rmdir(sh.cred, parent->first.ino, parent->second);
    if (!s.ok()) sh.Error(fmt::format("failed to remove '{}'", p), s);
  }
}

// mv and ln put the new name inside DEST when DEST is a directory.
std::optional<std::pair<Attr, std::string>> Destination(
    Shell& sh, const std::string& src, const std::string& dst,
    const std::string& what) {
  auto d = sh.fs->Resolve(sh.cred, Absolute(dst));
  if (d.ok() && d->type == FileType::kDirectory) {
    return std::make_pair(*d, SplitParent(src).second);
  }
  return Parent(sh, dst, what);
}

void CmdMv(Shell& sh, const std::vector<std::string>& args) {
  if (args.size() < 2) {
    fmt::print(stderr, "nsh: mv: missing destination file operand\n");
    sh.exit_code = 1;
    return;
  }
  const std::string& dst = args.back();
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    const std::string& src = args[i];
    const std::string what = fmt::format("cannot move '{}' to '{}'", src, dst);
    auto from = Parent(sh, src, "cannot stat");
    if (!from) continue;
    auto to = Destination(sh, src, dst, "cannot move");
    if (!to) continue;
    auto r = sh.fs->Rename(sh.cred, from->first.ino, from->second,
                           to->first.ino, to->second);
    if (!r.ok()) sh.Error(what, r.status());
  }
}

void CmdLn(Shell& sh, const std::string& target, const std::string& link,
           bool symbolic) {
  if (symbolic) {
    const std::string what =
        fmt::format("failed to create symbolic link '{}'", link);
    auto where = Destination(sh, target, link, "failed to create symbolic link");
    if (!where) return;
    auto r = sh.fs->Symlink(sh.cred, where->first.ino, where->second, target);
    if (!r.ok()) sh.Error(what, r.status());
    return;
  }
  const std::string what =
      fmt::format("failed to create hard link '{}' => '{}'", link, target);
  auto t = sh.fs->Resolve(sh.cred, Absolute(target), false);
  if (!t.ok()) {
    sh.Error(fmt::format("failed to access '{}'", target), t.status());
    return;
  }
  if (t->type == FileType::kDirectory) {
    fmt::print(stderr, "nsh: {}: hard link not allowed for directory\n", target);
    sh.exit_code = 1;
    return;
  }
  auto where = Destination(sh, target, link, "failed to create hard link");
  if (!where) return;
  auto r = sh.fs->Link(sh.cred, t->ino, where->first.ino, where->second);
  if (!r.ok()) sh.Error(what, r.status());
}

// Applies a chmod mode argument: octal ("755") or symbolic ("u+x,go-w",
// "a=r"). Returns nullopt on a malformed mode.
std::optional<uint32_t> ApplyModeSpec(const std::string& spec, uint32_t mode,
                                      bool is_dir) {
  if (!spec.empty() && spec.find_first_not_of("01234567") == std::string::npos) {
    if (spec.size() > 4) return std::nullopt;
    return static_cast<uint32_t>(std::stoul(spec, nullptr, 8));
  }
  size_t i = 0;
  while (i < spec.size()) {
    uint32_t who = 0;
    for (; i < spec.size() && std::string("ugoa").find(spec[i]) != std::string::npos; ++i) {
      switch (spec[i]) {
        case 'u': who |= 04700; break;
        case 'g': who |= 02070; break;
        case 'o': who |= 01007; break;
        case 'a': who |= 07777; break;
      }
    }
    if (who == 0) who = 07777;
    if (i >= spec.size()) return std::nullopt;
    while (i < spec.size() && spec[i] != ',') {
      char op = spec[i++];
      if (op != '+' && op != '-' && op != '=') return std::nullopt;
      uint32_t bits = 0;
      for (; i < spec.size() && std::string("rwxXst").find(spec[i]) != std::string::npos; ++i) {
        switch (spec[i]) {
          case 'r': bits |= 0444; break;
          case 'w': bits |= 0222; break;
          case 'x': bits |= 0111; break;
          case 'X': if (is_dir || (mode & 0111)) bits |= 0111; break;
          case 's': bits |= 06000; break;
          case 't': bits |= 01000; break;
        }
      }
      bits &= who;
      if (op == '+') mode |= bits;
      if (op == '-') mode &= ~bits;
      if (op == '=') mode = (mode & ~(who & 0777)) | bits;
    }
    if (i < spec.size()) ++i;  // ','
  }
  return mode & 07777;
}

void CmdChmod(Shell& sh, const std::string& spec,
              const std::vector<std::string>& paths) {
  for (const auto& p : paths) {
    auto a = sh.fs->Resolve(sh.cred, Absolute(p));
    if (!a.ok()) {
      sh.Error(fmt::format("cannot access '{}'", p), a.status());
      continue;
    }
    auto mode = ApplyModeSpec(spec, a->mode, a->type == FileType::kDirectory);
    if (!mode) {
      fmt::print(stderr, "nsh: invalid mode: '{}'\n", spec);
      sh.exit_code = 1;
      return;
    }
    ns::SetAttrRequest req;
    req.mode = *mode;
    auto r = sh.fs->SetAttr(sh.cred, a->ino, req);
    if (!r.ok()) {
      sh.Error(fmt::format("changing permissions of '{}'", p), r.status());
    }
  }
}

std::optional<uint32_t> ParseOwner(const std::string& s, bool group) {
  if (s.empty()) return std::nullopt;
  if (s.find_first_not_of("0123456789") == std::string::npos) {
    return static_cast<uint32_t>(std::stoul(s));
  }
  if (group) {
    if (struct group* gr = getgrnam(s.c_str())) return gr->gr_gid;
  } else {
    if (struct passwd* pw = getpwnam(s.c_str())) return pw->pw_uid;
  }
  return std::nullopt;
}

void CmdChown(Shell& sh, const std::string& spec,
              const std::vector<std::string>& paths) {
  ns::SetAttrRequest req;
  size_t colon = spec.find(':');
  std::string user = spec.substr(0, colon);
  if (!user.empty()) {
    req.uid = ParseOwner(user, false);
    if (!req.uid) {
      fmt::print(stderr, "nsh: invalid user: '{}'\n", spec);
      sh.exit_code = 1;
      return;
    }
  }
  if (colon != std::string::npos && colon + 1 < spec.size()) {
    req.gid = ParseOwner(spec.substr(colon + 1), true);
    if (!req.gid) {
      fmt::print(stderr, "nsh: invalid group: '{}'\n", spec);
      sh.exit_code = 1;
      return;
    }
  }
  for (const auto& p : paths) {
    auto a = sh.fs->Resolve(sh.cred, Absolute(p));
    if (!a.ok()) {
      sh.Error(fmt::format("cannot access '{}'", p), a.status());
      continue;
    }
    auto r = sh.fs->SetAttr(sh.cred, a->ino, req);
    if (!r.ok()) sh.Error(fmt::format("changing ownership of '{}'", p), r.status());
  }
}

void CmdReadlink(Shell& sh, const std::vector<std::string>& paths) {
  for (const auto& p : paths) {
    auto a = sh.fs->Resolve(sh.cred, Absolute(p), false);
    if (!a.ok() || a->type != FileType::kSymlink) {
      sh.exit_code = 1;  // coreutils readlink prints nothing here
      continue;
    }
    auto t = sh.fs->ReadLink(sh.cred, a->ino);
    if (!t.ok()) {
      sh.exit_code = 1;
      continue;
    }
    fmt::print("{}\n", *t);
  }
}

void CmdDf(Shell& sh, const std::string& uri, bool inodes) {
  auto st = sh.fs->StatFs(sh.cred);
  if (!st.ok()) {
    sh.Error("cannot read file system information for '/'", st.status());
    return;
  }
  const std::string name = ns::tools::RedactUri(uri);
  if (inodes) {
    uint64_t total = st->files + st->files_free;
    fmt::print("{:<40} {:>12} {:>12} {:>12} {:>5} {}\n", "Filesystem", "Inodes",
               "IUsed", "IFree", "IUse%", "Mounted on");
    fmt::print("{:<40} {:>12} {:>12} {:>12} {:>4}% /\n", name, total, st->files,
               st->files_free, total ? (st->files * 100 + total - 1) / total : 0);
    return;
  }
  uint64_t used = (st->bytes + 1023) / 1024;
  uint64_t avail = st->bytes_free / 1024;
  uint64_t total = std::max(st->bytes_total / 1024, used + avail);
  fmt::print("{:<40} {:>12} {:>12} {:>12} {:>4} {}\n", "Filesystem",
             "1K-blocks", "Used", "Available", "Use%", "Mounted on");
  fmt::print("{:<40} {:>12} {:>12} {:>12} {:>3}% /\n", name, total, used, avail,
             total ? (used * 100 + total - 1) / total : 0);
}

// --- NFSv4 ACLs, xattrs, tags, checksums (nfs4_getfacl / attr style) ---

std::optional<Attr> ResolveOrReport(Shell& sh, const std::string& p) {
  auto a = sh.fs->Resolve(sh.cred, Absolute(p));
  if (!a.ok()) {
    sh.Error(fmt::format("{}", p), a.status());
    return std::nullopt;
  }
  return *a;
}

void CmdGetfacl(Shell& sh, const std::vector<std::string>& paths) {
  for (const auto& p : paths) {
    auto a = ResolveOrReport(sh, p);
    if (!a) continue;
    auto acl = sh.fs->GetAcl(sh.cred, a->ino);
    if (!acl.ok()) {
      sh.Error(p, acl.status());
      continue;
    }
    if (paths.size() > 1) fmt::print("# file: {}\n", p);
    for (const ns::Ace& ace : *acl) fmt::print("{}\n", ns::FormatAce(ace));
  }
}

// nfs4_setfacl's actions: add at a 1-based index, remove by entry or
// index, set the whole ACL, modify one entry into another.
struct FaclAction {
  std::string add, remove, set;
  std::vector<std::string> modify;  // OLD NEW
  size_t index = 1;
};

void CmdSetfacl(Shell& sh, const FaclAction& act,
                const std::vector<std::string>& paths) {
  const int actions = !act.add.empty() + !act.remove.empty() +
                      !act.set.empty() + !act.modify.empty();
  if (actions != 1) {
    fmt::print(stderr, "nsh: setfacl: give exactly one of -a, -x, -s, -m\n");
    sh.exit_code = 1;
    return;
  }
  auto parse = [&](const std::string& text) -> std::optional<ns::Acl> {
    auto acl = ns::ParseAcl(text);
    if (!acl.ok() || acl->empty()) {
      fmt::print(stderr, "nsh: setfacl: {}\n",
                 acl.ok() ? "empty ACL" : acl.status().ToString());
      sh.exit_code = 1;
      return std::nullopt;
    }
    return *acl;
  };
  std::optional<ns::Acl> arg;
  std::optional<ns::Ace> from;
  size_t remove_index = 0;
  if (!act.add.empty() && !(arg = parse(act.add))) return;
  if (!act.set.empty() && !(arg = parse(act.set))) return;
  if (!act.remove.empty()) {
    if (act.remove.find_first_not_of("0123456789") == std::string::npos) {
      remove_index = std::stoul(act.remove);
      if (remove_index == 0) {
        fmt::print(stderr, "nsh: setfacl: indexes start at 1\n");
        sh.exit_code = 1;
        return;
      }
    } else if (!(arg = parse(act.remove))) {
      return;
    }
  }
  if (!act.modify.empty()) {
    auto f = parse(act.modify[0]);
    if (!f) return;
    if (!(arg = parse(act.modify[1]))) return;
    from = f->front();
  }
  for (const auto& p : paths) {
    auto a = ResolveOrReport(sh, p);
    if (!a) continue;
    ns::Acl acl;
    if (act.set.empty()) {  // -s needs no READ_ACL: nothing is kept
      auto cur = sh.fs->GetAcl(sh.cred, a->ino);
      if (!cur.ok()) {
        sh.Error(p, cur.status());
        continue;
      }
      acl = *cur;
    }
    if (!act.set.empty()) {
      acl = *arg;
    } else if (!act.add.empty()) {
      const size_t at = std::min(act.index == 0 ? 0 : act.index - 1, acl.size());
      acl.insert(acl.begin() + static_cast<std::ptrdiff_t>(at), arg->begin(),
                 arg->end());
    } else if (!act.remove.empty()) {
      if (remove_index > 0) {
        if (remove_index > acl.size()) {
          fmt::print(stderr, "nsh: setfacl: {}: no entry {}\n", p, remove_index);
          sh.exit_code = 1;
          continue;
        }
        acl.erase(acl.begin() + static_cast<std::ptrdiff_t>(remove_index - 1));
      } else {
        for (const ns::Ace& x : *arg) {
          auto it = std::find(acl.begin(), acl.end(), x);
          if (it == acl.end()) {
            fmt::print(stderr, "nsh: setfacl: {}: no entry {}\n", p,
                       ns::FormatAce(x));
            sh.exit_code = 1;
            continue;
          }
          acl.erase(it);
        }
      }
    } else {
      auto it = std::find(acl.begin(), acl.end(), *from);
      if (it == acl.end()) {
        fmt::print(stderr, "nsh: setfacl: {}: no entry {}\n", p,
                   ns::FormatAce(*from));
        sh.exit_code = 1;
        continue;
      }
      *it = arg->front();
    }
    auto r = sh.fs->SetAcl(sh.cred, a->ino, acl);
    if (!r.ok()) sh.Error(p, r.status());
  }
}

void CmdXattr(Shell& sh, const std::string& op, const std::string& path,
              const std::string& name, const std::string& value,
              ns::XattrMode mode) {
  auto a = ResolveOrReport(sh, path);
  if (!a) return;
  if (op == "getxattr") {
    auto v = sh.fs->GetXattr(sh.cred, a->ino, name);
    if (!v.ok()) return sh.Error(fmt::format("{}: {}", path, name), v.status());
    fmt::print("{}\n", *v);
  } else if (op == "setxattr") {
    Status st = sh.fs->SetXattr(sh.cred, a->ino, name, value, mode);
    if (!st.ok()) sh.Error(fmt::format("{}: {}", path, name), st);
  } else if (op == "listxattr") {
    auto names = sh.fs->ListXattrs(sh.cred, a->ino);
    if (!names.ok()) return sh.Error(path, names.status());
    for (const auto& n : *names) fmt::print("{}\n", n.name);
  } else {
    Status st = sh.fs->RemoveXattr(sh.cred, a->ino, name);
    if (!st.ok()) sh.Error(fmt::format("{}: {}", path, name), st);
  }
}

void CmdTag(Shell& sh, const std::string& op, const std::string& path,
            const std::string& name, const std::string& value) {
  auto a = ResolveOrReport(sh, path);
  if (!a) return;
  const std::string what = name.empty() ? path : path + ": " + name;
  if (op == "lstag") {
    auto tags = sh.fs->ListTags(sh.cred, a->ino);
    if (!tags.ok()) return sh.Error(what, tags.status());
    for (const auto& t : *tags) {
      fmt::print("{}{}\n", t.name, t.own ? "" : " (inherited)");
    }
  } else if (op == "readtag") {
    auto v = sh.fs->ReadTag(sh.cred, a->ino, name);
    if (!v.ok()) return sh.Error(what, v.status());
    fmt::print("{}\n", *v);
  } else if (op == "writetag") {
    Status st = sh.fs->WriteTag(sh.cred, a->ino, name, value);
    if (!st.ok()) sh.Error(what, st);
  } else if (op == "rmtag") {
    Status st = sh.fs->RemoveTag(sh.cred, a->ino, name);
    if (!st.ok()) sh.Error(what, st);
  } else {
    auto n = sh.fs->PushTag(sh.cred, a->ino, name, value);
    if (!n.ok()) return sh.Error(what, n.status());
    fmt::print("{} directories\n", *n);
  }
}

void CmdChecksum(Shell& sh, const std::vector<std::string>& args) {
  auto usage = [&] {
    fmt::print(stderr,
               "nsh: checksum get PATH | set PATH TYPE HEX | rm PATH TYPE\n");
    sh.exit_code = 1;
  };
  if (args.size() < 2) return usage();
  const std::string& op = args[0];
  auto a = ResolveOrReport(sh, args[1]);
  if (!a) return;
  if (op == "get" && args.size() == 2) {
    auto sums = sh.fs->GetChecksums(sh.cred, a->ino);
    if (!sums.ok()) return sh.Error(args[1], sums.status());
    for (const auto& c : *sums) {
      fmt::print("{}:{}\n", ns::ChecksumTypeName(c.type), c.value);
    }
    return;
  }
  if ((op == "set" && args.size() == 4) || (op == "rm" && args.size() == 3)) {
    auto type = ns::ParseChecksumType(args[2]);
    if (!type.ok()) {
      fmt::print(stderr, "nsh: {}\n", type.status().ToString());
      sh.exit_code = 1;
      return;
    }
    Status st = op == "set"
                    ? sh.fs->SetChecksum(sh.cred, a->ino, {*type, args[3]})
                    : sh.fs->RemoveChecksum(sh.cred, a->ino, *type);
    if (!st.ok()) sh.Error(args[1], st);
    return;
  }
  usage();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"nsh: shell commands run directly against a namespace database"};
  app.require_subcommand(1);
  std::string db_flag, as_flag;
  app.add_option("--db", db_flag,
                 "database URI: sqlite:///path/ns.db or "
                 "postgresql://user@host/db (default $NS_DB)");
  app.add_option("--as", as_flag, "act as UID:GID[,GID...] (default 0:0)");
  bool numeric = false;
  std::vector<std::string> paths;
  LsFlags ls_flags;

  auto* ls = app.add_subcommand("ls", "list directory contents");
  ls->add_flag("-l", ls_flags.long_format, "long listing");
  ls->add_flag("-a", ls_flags.all, "include . and .. and dot files");
  ls->add_flag("-R", ls_flags.recursive, "list subdirectories recursively");
  ls->add_flag("-n", numeric, "numeric user and group ids");
  ls->add_option("path", paths);

  bool parents = false;
  std::string mode_text = "755";
  auto* mkdir = app.add_subcommand("mkdir", "make directories");
  mkdir->add_flag("-p", parents, "make parents as needed, no error if existing");
  mkdir->add_option("-m", mode_text, "mode (octal)");
  mkdir->add_option("path", paths)->required();

  auto* touch = app.add_subcommand("touch", "create files or update their times");
  touch->add_option("path", paths)->required();

  auto* stat = app.add_subcommand("stat", "display file status");
  stat->add_flag("-n", numeric, "numeric user and group ids");
  stat->add_option("path", paths)->required();

  bool recursive = false, force = false;
  auto* rm = app.add_subcommand("rm", "remove files or directories");
  rm->add_flag("-r,-R", recursive, "remove directories and their contents");
  rm->add_flag("-f", force, "ignore nonexistent files");
  rm->add_option("path", paths)->required();

  auto* rmdir = app.add_subcommand("rmdir", "remove empty directories");
  rmdir->add_option("path", paths)->required();

  auto* mv = app.add_subcommand("mv", "move (rename) files");
  mv->add_option("path", paths)->required()->expected(2, -1);

  bool symbolic = false;
  auto* ln = app.add_subcommand("ln", "make links between files");
  ln->add_flag("-s", symbolic, "make a symbolic link");
  ln->add_option("path", paths)->required()->expected(2);

  std::string spec;
  auto* chmod = app.add_subcommand("chmod", "change file mode bits");
  chmod->add_option("mode", spec)->required();
  chmod->add_option("path", paths)->required();

  auto* chown = app.add_subcommand("chown", "change file owner and group");
  chown->add_option("owner", spec)->required();
  chown->add_option("path", paths)->required();

  auto* readlink = app.add_subcommand("readlink", "print a symbolic link's target");
  readlink->add_option("path", paths)->required();

  bool df_inodes = false;
  auto* df = app.add_subcommand("df", "report namespace usage");
  df->add_flag("-i", df_inodes, "inode figures");

  auto* getfacl = app.add_subcommand("getfacl", "print NFSv4 ACLs (nfs4_getfacl)");
  getfacl->add_option("path", paths)->required();
  FaclAction facl;
  auto* setfacl = app.add_subcommand("setfacl", "change NFSv4 ACLs (nfs4_setfacl)");
  setfacl->add_option("-a", facl.add, "add ACEs (at --index, default 1)");
  setfacl->add_option("--index", facl.index, "1-based position for -a");
  setfacl->add_option("-x", facl.remove, "remove ACEs, or the ACE at an index");
  setfacl->add_option("-s", facl.set, "set the whole ACL");
  setfacl->add_option("-m", facl.modify, "replace ACE OLD by NEW")->expected(2);
  setfacl->add_option("path", paths)->required();

  std::string xname, xvalue;
  bool xcreate = false, xreplace = false;
  std::vector<CLI::App*> xcmds;
  for (const char* c : {"getxattr", "setxattr", "listxattr", "rmxattr"}) {
    auto* x = app.add_subcommand(c, "extended attributes");
    x->add_option("path", spec)->required();
    if (std::string(c) != "listxattr") x->add_option("name", xname)->required();
    if (std::string(c) == "setxattr") {
      x->add_option("value", xvalue)->required();
      x->add_flag("--create", xcreate, "fail if it exists");
      x->add_flag("--replace", xreplace, "fail unless it exists");
    }
    xcmds.push_back(x);
  }
  std::vector<CLI::App*> tcmds;
  for (const char* c : {"lstag", "readtag", "writetag", "rmtag", "pushtag"}) {
    auto* x = app.add_subcommand(c, "directory tags");
    x->add_option("dir", spec)->required();
    if (std::string(c) != "lstag") x->add_option("name", xname)->required();
    if (std::string(c) == "writetag" || std::string(c) == "pushtag") {
      x->add_option("value", xvalue)->required();
    }
    tcmds.push_back(x);
  }
  auto* checksum = app.add_subcommand("checksum", "file checksums: get|set|rm");
  checksum->add_option("args", paths)->required();

  CLI11_PARSE(app, argc, argv);

  auto uri = ns::tools::DatabaseUri(db_flag);
  if (!uri.ok()) {
    fmt::print(stderr, "nsh: {}\n", uri.status().ToString());
    return 2;
  }
  Shell sh;
  if (!as_flag.empty()) {
    auto cred = ns::tools::ParseCredentials(as_flag);
    if (!cred.ok()) {
      fmt::print(stderr, "nsh: {}\n", cred.status().ToString());
      return 2;
    }
    sh.cred = *cred;
  }
  sh.numeric_ids = numeric;
  auto fs = ns::Namespace::Open(*uri);
  if (!fs.ok()) {
    fmt::print(stderr, "nsh: {}\n", fs.status().ToString());
    return 2;
  }
  sh.fs = fs->get();

  if (ls->parsed()) CmdLs(sh, paths, ls_flags);
  if (mkdir->parsed()) {
    auto mode = ApplyModeSpec(mode_text, 0, true);
    if (!mode) {
      fmt::print(stderr, "nsh: invalid mode '{}'\n", mode_text);
      return 1;
    }
    CmdMkdir(sh, paths, parents, *mode);
  }
  if (touch->parsed()) CmdTouch(sh, paths);
  if (stat->parsed()) CmdStat(sh, paths);
  if (rm->parsed()) CmdRm(sh, paths, recursive, force);
  if (rmdir->parsed()) CmdRmdir(sh, paths);
  if (mv->parsed()) CmdMv(sh, paths);
  if (ln->parsed()) CmdLn(sh, paths[0], paths[1], symbolic);
  if (chmod->parsed()) CmdChmod(sh, spec, paths);
  if (chown->parsed()) CmdChown(sh, spec, paths);
  if (readlink->parsed()) CmdReadlink(sh, paths);
  if (df->parsed()) CmdDf(sh, *uri, df_inodes);
  if (getfacl->parsed()) CmdGetfacl(sh, paths);
  if (setfacl->parsed()) CmdSetfacl(sh, facl, paths);
  for (CLI::App* x : xcmds) {
    if (!x->parsed()) continue;
    if (xcreate && xreplace) {
      fmt::print(stderr, "nsh: --create and --replace exclude each other\n");
      return 1;
    }
    CmdXattr(sh, x->get_name(), spec, xname, xvalue,
             xcreate    ? ns::XattrMode::kCreate
             : xreplace ? ns::XattrMode::kReplace
                        : ns::XattrMode::kEither);
  }
  for (CLI::App* x : tcmds) {
    if (x->parsed()) CmdTag(sh, x->get_name(), spec, xname, xvalue);
  }
  if (checksum->parsed()) CmdChecksum(sh, paths);
  return sh.exit_code;
}
