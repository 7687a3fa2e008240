// The POSIX logic of the namespace, written once over the Transaction
// interface of backend.h. Every operation is one transaction; row locks are
// taken in ascending inode order (LockInodes) so transactions never wait on
// each other in a cycle.

#include "libnamespace/include/namespace/namespace.h"

#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <deque>
#include <future>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "libnamespace/src/access.h"
#include "libnamespace/src/backend.h"
#include "libnamespace/src/perm.h"
#include "libnamespace/src/schema_check.h"

namespace ns {
namespace {

bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (size_t k = 1; k <= n; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
        (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

std::string Quote(std::string_view name) {
  std::string q = "'";
  for (char c : name.substr(0, 64)) q += (c == '\0') ? '?' : c;
  if (name.size() > 64) q += "...";
  return q + "'";
}

struct LockSpec {
  InodeId ino;
  LockMode mode;
  // The id came from a directory entry read before the lock: if the inode
  // is gone by the time we lock it, a concurrent transaction removed it and
  // the whole operation must start over (and will then see the entry gone),
  // rather than report a stale id the caller never gave.
  bool from_entry = false;
};

// Locks (and reads) the given inodes in ascending id order; an id named
// twice gets the stronger of its modes.
Result<std::map<InodeId, Attr>> LockInodes(Transaction& t,
                                           std::vector<LockSpec> specs) {
  std::sort(specs.begin(), specs.end(),
            [](const LockSpec& a, const LockSpec& b) { return a.ino < b.ino; });
  std::map<InodeId, Attr> out;
  for (size_t i = 0; i < specs.size(); ++i) {
    LockMode mode = specs[i].mode;
    bool from_entry = specs[i].from_entry;
    while (i + 1 < specs.size() && specs[i + 1].ino == specs[i].ino) {
      ++i;
      mode = std::max(mode, specs[i].mode);
      from_entry = from_entry && specs[i].from_entry;
    }
    Result<Attr> a = t.GetInode(specs[i].ino, mode);
    if (!a.ok()) {
      if (a.status().IsStale() && from_entry) {
        return Status::Retry("inode " + std::to_string(specs[i].ino),
                             "removed concurrently");
      }
      return a.status();
    }
    out[a->ino] = *a;
  }
  return out;
}

// The most entries one ReadDir page returns, whatever the caller asks.
constexpr uint32_t kMaxPageEntries = 1 << 16;

// Inode ids are stored as signed 64-bit integers: larger ones cannot exist.
Status CheckIds(std::initializer_list<InodeId> ids) {
  for (InodeId id : ids) {
    if (id == 0 || id > static_cast<InodeId>(INT64_MAX)) {
      return Status::Stale("inode " + std::to_string(id), "no such inode");
    }
  }
  return Status::Ok();
}

// A new size for a file whose bytes may be inline (WriteInline): bytes
// past it go in the same transaction, all of them at 0 (so a file with
// inline bytes is never empty, and an empty file may get a pNFS layout).
// Growing needs nothing (the gap reads as zeros) up to kMaxInlineBytes; past
// it the caller must move the bytes to its data store first (DropInline).
Status CutInlineBytes(Transaction& t, const Attr& a, uint64_t size,
                      const std::string& ctx) {
  // No row without bytes: an empty file has none, and a size the file
  // already has or grows to within the inline bound changes nothing.
  if (a.size == 0 || (size >= a.size && size <= kMaxInlineBytes)) {
    return Status::Ok();
  }
  NS_ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                      t.GetInlineData(a.ino));
  if (!bytes) return Status::Ok();
  if (size == 0) return t.DeleteInlineData(a.ino).status();
  if (size > kMaxInlineBytes) {
    return Status::NotSupported(
        ctx, "its bytes are kept in the database, which holds at most " +
                 std::to_string(kMaxInlineBytes) +
                 "; move them to a data store first");
  }
  if (size < bytes->size()) {
    return t.PutInlineData(a.ino, std::string_view(*bytes).substr(0, size));
  }
  return Status::Ok();
}

Status RequireDir(const Attr& a, std::string_view ctx) {
  if (a.type != FileType::kDirectory) {
    return Status::NotDir(ctx, "inode " + std::to_string(a.ino));
  }
  return Status::Ok();
}

// Drops one link of `child` (already locked kExclusive) whose entry the
// caller removed: deletes the inode with its last link, or keeps it as an
// orphan when the caller asked.
Result<UnlinkResult> DropLink(Transaction& t, Attr child, TimeNs now,
                              const UnlinkOptions& opts) {
  UnlinkResult r;
  r.ino = child.ino;
  child.nlink = child.nlink > 0 ? child.nlink - 1 : 0;
  child.ctime = now;
  r.nlink_left = child.nlink;
  if (child.nlink == 0 && !opts.retain_if_last) {
    NS_RETURN_IF_ERROR(t.DeleteInode(child.ino));
    return r;
  }
  NS_RETURN_IF_ERROR(t.UpdateInode(child));
  if (child.nlink == 0) {
    NS_RETURN_IF_ERROR(t.AddOrphan(child.ino, now));
    r.retained = true;
  }
  return r;
}

// What a removal accepts at the name.
enum class Removable { kNonDir, kDir, kAny };

// Finds `name` in `parent` for unlink (kNonDir), rmdir (kDir) or either
// (kAny), locks parent (shared) and child (exclusive) in inode order, and
// checks the caller may remove it. Returns (parent, child) as locked.
Result<std::pair<Attr, Attr>> LockForRemoval(Transaction& t,
                                             const Credentials& cred,
                                             InodeId parent,
                                             std::string_view name,
                                             Removable want,
                                             const std::string& ctx) {
  NS_ASSIGN_OR_RETURN(auto entry, t.LookupEntry(parent, name));
  if (!entry) {
    NS_ASSIGN_OR_RETURN(Attr p, t.GetInode(parent, LockMode::kNone));
    NS_RETURN_IF_ERROR(RequireDir(p, ctx));
    return Status::NotFound(ctx);
  }
  const bool is_dir = entry->type == FileType::kDirectory;
  if (is_dir && want == Removable::kNonDir) return Status::IsDir(ctx);
  if (!is_dir && want == Removable::kDir) return Status::NotDir(ctx);
  NS_ASSIGN_OR_RETURN(auto locked,
                      LockInodes(t, {{parent, LockMode::kShared},
                                     {entry->child, LockMode::kExclusive, true}}));
  // The entry was read before the locks: make sure it still names the inode
  // we locked, else start over.
  NS_ASSIGN_OR_RETURN(auto again, t.LookupEntry(parent, name));
  if (!again || again->child != entry->child) return Status::Retry(ctx);
  const Attr& p = locked[parent];
  const Attr& child = locked[entry->child];
  NS_RETURN_IF_ERROR(RequireDelete(t, cred, p, child, ctx));
  return std::make_pair(p, child);
}

// Removes the entry `name` of `parent` that names the directory `dir`
// (locked kExclusive by LockForRemoval), and `dir` itself if it is empty.
// Returns the parent's attributes after it, where the backend has them.
Result<std::optional<Attr>> RemoveEmptyDir(Transaction& t, InodeId parent,
                                           std::string_view name,
                                           const Attr& dir,
                                           const std::string& ctx) {
  // Creates in `dir` hold a kShared lock on it until they commit, and we
  // hold kExclusive: this check sees every entry that will ever exist.
  NS_ASSIGN_OR_RETURN(bool has_entries, t.HasEntries(dir.ino));
  if (has_entries) return Status::NotEmpty(ctx);
  NS_RETURN_IF_ERROR(t.DeleteEntry(parent, name));
  NS_RETURN_IF_ERROR(t.DeleteInode(dir.ino));
  return t.DirChanged(parent, -1, NowNs());
}

}  // namespace

Status ValidateName(std::string_view name) {
  if (name.empty()) return Status::Invalid("name", "empty");
  if (name == "." || name == "..") {
    return Status::Invalid("name " + Quote(name), "reserved");
  }
  if (name.size() > kMaxNameBytes) {
    return Status::NameTooLong(
        "name " + Quote(name),
        std::to_string(name.size()) + " bytes, at most 255");
  }
  if (name.find('\0') != std::string_view::npos) {
    return Status::Invalid("name " + Quote(name), "contains NUL");
  }
  if (name.find('/') != std::string_view::npos) {
    return Status::Invalid("name " + Quote(name), "contains '/'");
  }
  if (!ValidUtf8(name)) {
    // NFSv4 names are UTF-8 (RFC 8881 §14.1); we store only what every
    // client can show.
    return Status::Invalid("name " + Quote(name), "not valid UTF-8");
  }
  return Status::Ok();
}

Result<std::unique_ptr<Namespace>> Namespace::Open(
    const std::string& uri, const NamespaceOptions& options) {
  NS_ASSIGN_OR_RETURN(auto backend, OpenAtCurrentSchema(uri, options));
  return std::make_unique<Namespace>(std::move(backend));
}

Namespace::Namespace(std::unique_ptr<Backend> backend)
    : backend_(std::move(backend)) {}

Namespace::~Namespace() = default;

uint64_t Namespace::TakeCommitTicket() { return backend_->TakeCommitTicket(); }

uint64_t Namespace::LatestCommitTicket() {
  return backend_->LatestCommitTicket();
}

void Namespace::WhenDurable(uint64_t ticket,
                            std::function<void(bool durable)> fn) {
  backend_->WhenDurable(ticket, std::move(fn));
}

bool Namespace::AwaitDurable(uint64_t ticket) {
  return ns::AwaitDurable(*backend_, ticket);
}

bool AwaitDurable(Backend& backend, uint64_t ticket) {
  std::promise<bool> done;
  std::future<bool> durable = done.get_future();
  backend.WhenDurable(ticket, [&done](bool ok) { done.set_value(ok); });
  return durable.get();
}

Result<Attr> Namespace::Lookup(const Credentials& cred, InodeId parent,
                               std::string_view name) {
  NS_RETURN_IF_ERROR(CheckIds({parent}));
  bool dot = name == ".";
  bool dotdot = name == "..";
  if (!dot && !dotdot) NS_RETURN_IF_ERROR(ValidateName(name));
  Attr out;
  Status s = backend_->Read([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(auto pc, t.LookupWithParent(parent, dot || dotdot ? "" : name));
    const Attr& p = pc.first;
    NS_RETURN_IF_ERROR(RequireDir(p, "lookup " + Quote(name)));
    NS_RETURN_IF_ERROR(
        RequireAccess(t, cred, p, kAceExecute, "lookup " + Quote(name)));
    if (dot) {
      out = p;
    } else if (dotdot) {
      NS_ASSIGN_OR_RETURN(out, t.GetInode(p.parent, LockMode::kNone));
    } else if (!pc.second) {
      return Status::NotFound(Quote(name));
    } else {
      out = *pc.second;
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Result<Attr> Namespace::GetAttr(const Credentials& /*cred*/, InodeId ino) {
  NS_RETURN_IF_ERROR(CheckIds({ino}));
  Attr out;
  Status s = backend_->Read([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(out, t.GetInode(ino, LockMode::kNone));
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Result<Attr> Namespace::SetAttr(const Credentials& cred, InodeId ino,
                                const SetAttrRequest& req) {
  NS_RETURN_IF_ERROR(CheckIds({ino}));
  Attr out;
  Status s = backend_->Write([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(Attr a, t.GetInode(ino, LockMode::kExclusive));
    const std::string ctx = "setattr inode " + std::to_string(ino);
    NS_ASSIGN_OR_RETURN(
        uint32_t granted,
        Granted(t, cred, a, kAceWriteAcl | kAceWriteAttributes | kAceWriteData));
    NS_RETURN_IF_ERROR(CheckSetAttr(cred, a, req, granted, ctx));
    TimeNs now = NowNs();
    bool changed = false;
    if (req.mode) {
      a.mode = ModeAfterChmod(cred, a, *req.mode);
      if (a.has_acl) {
        // RFC 8881 §6.4.1.1: chmod rewrites what the ACL says for OWNER@,
        // GROUP@ and EVERYONE@ so that the two agree.
        NS_ASSIGN_OR_RETURN(Acl acl, t.GetAcl(ino));
        NS_RETURN_IF_ERROR(t.SetAcl(ino, AclAfterChmod(acl, a.mode)));
      }
      changed = true;
    }
    if (req.uid || req.gid) {
      if (req.uid) a.uid = *req.uid;
      if (req.gid) a.gid = *req.gid;
      a.mode = ModeAfterChown(a);
      changed = true;
    }
    if (req.size) {
      if (a.type == FileType::kDirectory) return Status::IsDir(ctx);
      if (a.type != FileType::kRegular) {
        return Status::Invalid(ctx, "size applies to regular files only");
      }
      NS_RETURN_IF_ERROR(CutInlineBytes(t, a, *req.size, ctx));
      a.size = *req.size;
      a.mode = ModeAfterWrite(cred, a);
      if (!req.mtime && !req.mtime_now) a.mtime = now;
      changed = true;
    }
    if (req.atime_now) a.atime = now;
    if (req.atime) a.atime = *req.atime;
    if (req.mtime_now) a.mtime = now;
    if (req.mtime) a.mtime = *req.mtime;
    changed = changed || req.atime_now || req.atime || req.mtime_now || req.mtime;
    if (changed) {
      a.ctime = now;
      NS_RETURN_IF_ERROR(t.UpdateInode(a));
      NS_ASSIGN_OR_RETURN(a, t.GetInode(ino, LockMode::kNone));
    }
    out = a;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

// Creates an inode of any type under `parent`: the one path for create,
// mkdir, mknod and symlink.
class Namespace::Ops {
 public:
  static Result<Attr> MakeNode(Namespace& ns, const Credentials& cred,
                               InodeId parent, std::string_view name,
                               FileType type, uint32_t mode, uint32_t major,
                               uint32_t minor, std::string_view target,
                               const CreateOptions& options = {},
                               std::optional<Attr>* parent_after = nullptr) {
    NS_RETURN_IF_ERROR(CheckIds({parent}));
    NS_RETURN_IF_ERROR(ValidateName(name));
    const std::string ctx = "create " + Quote(name);
    Attr out;
    Status s = ns.backend_->Write([&](Transaction& t) -> Status {
      NS_ASSIGN_OR_RETURN(Attr p, t.GetInode(parent, LockMode::kShared));
      NS_RETURN_IF_ERROR(RequireDir(p, ctx));
      const bool is_dir = type == FileType::kDirectory;
      // One read of the parent's ACL serves the check and inheritance.
      NS_ASSIGN_OR_RETURN(Acl parent_acl, AclOf(t, p));
      const uint32_t want =
          kAceExecute | (is_dir ? kAceAddSubdirectory : kAceAddFile);
      if ((AccessFromAcl(cred, p, parent_acl, want) & want) != want) {
        return Status::AccessDenied(ctx);
      }
      TimeNs now = NowNs();
      Attr a;
      a.type = type;
      a.uid = cred.uid;
      a.gid = GidForNewInode(cred, p);
      a.mode = ModeForNewInode(cred, p, type, a.gid, mode);
      // RFC 8881 §6.4.3: inheritable ACEs of the parent become the new
      // object's ACL, and the mode follows from it; when none of them
      // applies to the object itself, the requested mode is added.
      Acl acl = InheritAcl(parent_acl, is_dir);
      if (!acl.empty()) {
        bool effective = false;
        for (const Ace& ace : acl) {
          effective = effective || !(ace.flags & kAceInheritOnly);
        }
        if (!effective) acl = AclAfterChmod(acl, a.mode);
        a.mode = (a.mode & 07000) | ModeFromAcl(acl);
        a.has_acl = true;
      }
      a.nlink = type == FileType::kDirectory ? 2 : 1;
      a.size = type == FileType::kSymlink ? target.size() : 0;
      a.rdev_major = major;
      a.rdev_minor = minor;
      a.atime = a.mtime = a.ctime = a.btime = now;
      if (options.atime) a.atime = *options.atime;
      a.change = 1;
      a.parent = type == FileType::kDirectory ? parent : 0;
      NS_ASSIGN_OR_RETURN(a.ino, t.InsertInode(a));
      NS_RETURN_IF_ERROR(t.InsertEntry(parent, name, a.ino, type));
      if (a.has_acl) NS_RETURN_IF_ERROR(t.SetAcl(a.ino, acl));
      // Tags by reference (Chimera): one row, made by the database from the
      // parent's, and none when the parent has no tags.
      if (is_dir) NS_RETURN_IF_ERROR(t.InheritTags(a.ino, parent));
      if (type == FileType::kSymlink) {
        NS_RETURN_IF_ERROR(t.InsertSymlink(a.ino, target));
      }
      NS_ASSIGN_OR_RETURN(
          std::optional<Attr> p_after,
          t.DirChanged(parent, type == FileType::kDirectory ? 1 : 0, now));
      if (parent_after) *parent_after = std::move(p_after);
      out = a;
      return Status::Ok();
    });
    if (!s.ok()) return s;
    return out;
  }
};

Result<Attr> Namespace::Create(const Credentials& cred, InodeId parent,
                               std::string_view name, uint32_t mode,
                               const CreateOptions& options,
                               std::optional<Attr>* parent_after) {
  return Ops::MakeNode(*this, cred, parent, name, FileType::kRegular, mode, 0,
                       0, {}, options, parent_after);
}

Result<Attr> Namespace::Mkdir(const Credentials& cred, InodeId parent,
                              std::string_view name, uint32_t mode,
                              std::optional<Attr>* parent_after) {
  return Ops::MakeNode(*this, cred, parent, name, FileType::kDirectory, mode,
                       0, 0, {}, {}, parent_after);
}

Result<Attr> Namespace::Mknod(const Credentials& cred, InodeId parent,
                              std::string_view name, FileType type,
                              uint32_t mode, uint32_t rdev_major,
                              uint32_t rdev_minor) {
  switch (type) {
    case FileType::kFifo:
    case FileType::kSocket:
      rdev_major = rdev_minor = 0;
      break;
    case FileType::kBlockDevice:
    case FileType::kCharDevice:
      if (!cred.IsRoot()) {
        return Status::NotPermitted("mknod " + Quote(name),
                                    "device nodes need root");
      }
      break;
    default:
      return Status::Invalid("mknod " + Quote(name),
                             "type must be fifo, socket, block or char");
  }
  return Ops::MakeNode(*this, cred, parent, name, type, mode, rdev_major,
                       rdev_minor, {});
}

Result<Attr> Namespace::Symlink(const Credentials& cred, InodeId parent,
                                std::string_view name,
                                std::string_view target) {
  const std::string ctx = "symlink " + Quote(name);
  if (target.empty()) return Status::NotFound(ctx, "empty target");
  if (target.size() > kMaxPathBytes) {
    return Status::NameTooLong(ctx, "target longer than 4096 bytes");
  }
  if (target.find('\0') != std::string_view::npos) {
    return Status::Invalid(ctx, "target contains NUL");
  }
  return Ops::MakeNode(*this, cred, parent, name, FileType::kSymlink, 0777, 0,
                       0, target);
}

Result<std::string> Namespace::ReadLink(const Credentials& /*cred*/,
                                        InodeId ino) {
  NS_RETURN_IF_ERROR(CheckIds({ino}));
  std::string out;
  Status s = backend_->Read([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(Attr a, t.GetInode(ino, LockMode::kNone));
    if (a.type != FileType::kSymlink) {
      return Status::Invalid("readlink inode " + std::to_string(ino),
                             "not a symbolic link");
    }
    NS_ASSIGN_OR_RETURN(out, t.ReadSymlink(ino));
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Result<Attr> Namespace::Link(const Credentials& cred, InodeId ino,
                             InodeId new_parent, std::string_view new_name) {
  NS_RETURN_IF_ERROR(CheckIds({ino, new_parent}));
  NS_RETURN_IF_ERROR(ValidateName(new_name));
  const std::string ctx = "link " + Quote(new_name);
  Attr out;
  Status s = backend_->Write([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(auto locked,
                        LockInodes(t, {{new_parent, LockMode::kShared},
                                       {ino, LockMode::kExclusive}}));
    const Attr& p = locked[new_parent];
    Attr a = locked[ino];
    NS_RETURN_IF_ERROR(RequireDir(p, ctx));
    if (a.type == FileType::kDirectory) {
      return Status::NotPermitted(ctx, "hard links to directories");
    }
    if (a.nlink == 0) return Status::NotFound(ctx, "the file was removed");
    if (a.nlink >= kMaxLinks) return Status::TooManyLinks(ctx);
    NS_RETURN_IF_ERROR(
        RequireAccess(t, cred, p, kAceExecute | kAceAddFile, ctx));
    TimeNs now = NowNs();
    NS_RETURN_IF_ERROR(t.InsertEntry(new_parent, new_name, ino, a.type));
    a.nlink += 1;
    a.ctime = now;
    NS_RETURN_IF_ERROR(t.UpdateInode(a));
    NS_RETURN_IF_ERROR(t.DirChanged(new_parent, 0, now).status());
    a.change += 1;
    out = a;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Result<UnlinkResult> Namespace::Unlink(const Credentials& cred, InodeId parent,
                                       std::string_view name,
                                       const UnlinkOptions& options) {
  NS_RETURN_IF_ERROR(CheckIds({parent}));
  NS_RETURN_IF_ERROR(ValidateName(name));
  const std::string ctx = "unlink " + Quote(name);
  UnlinkResult out;
  Status s = backend_->Write([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(
        auto victim,
        LockForRemoval(t, cred, parent, name,
                       options.directories ? Removable::kAny
                                           : Removable::kNonDir,
                       ctx));
    const Attr& child = victim.second;
    if (child.type == FileType::kDirectory) {
      out = UnlinkResult{};
      out.ino = child.ino;
      out.type = child.type;
      NS_ASSIGN_OR_RETURN(out.parent_after,
                          RemoveEmptyDir(t, parent, name, child, ctx));
      return Status::Ok();
    }
    TimeNs now = NowNs();
    NS_RETURN_IF_ERROR(t.DeleteEntry(parent, name));
    NS_ASSIGN_OR_RETURN(out, DropLink(t, child, now, options));
    out.type = child.type;
    NS_ASSIGN_OR_RETURN(out.parent_after, t.DirChanged(parent, 0, now));
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Status Namespace::Rmdir(const Credentials& cred, InodeId parent,
                        std::string_view name) {
  NS_RETURN_IF_ERROR(CheckIds({parent}));
  NS_RETURN_IF_ERROR(ValidateName(name));
  const std::string ctx = "rmdir " + Quote(name);
  return backend_->Write([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(auto victim, LockForRemoval(t, cred, parent, name,
                                                    Removable::kDir, ctx));
    return RemoveEmptyDir(t, parent, name, victim.second, ctx).status();
  });
}

Result<RenameResult> Namespace::Rename(const Credentials& cred,
                                       InodeId src_parent,
                                       std::string_view src_name,
                                       InodeId dst_parent,
                                       std::string_view dst_name,
                                       const UnlinkOptions& options) {
  NS_RETURN_IF_ERROR(CheckIds({src_parent, dst_parent}));
  NS_RETURN_IF_ERROR(ValidateName(src_name));
  NS_RETURN_IF_ERROR(ValidateName(dst_name));
  const std::string ctx =
      "rename " + Quote(src_name) + " to " + Quote(dst_name);
  RenameResult out;
  Status s = backend_->Write([&](Transaction& t) -> Status {
    out = RenameResult{};
    NS_ASSIGN_OR_RETURN(auto src, t.LookupEntry(src_parent, src_name));
    if (!src) {
      NS_ASSIGN_OR_RETURN(Attr p, t.GetInode(src_parent, LockMode::kNone));
      NS_RETURN_IF_ERROR(RequireDir(p, ctx));
      return Status::NotFound(ctx);
    }
    NS_ASSIGN_OR_RETURN(auto dst, t.LookupEntry(dst_parent, dst_name));
    // rename(2): when both names are links to the same inode, do nothing.
    if (dst && dst->child == src->child) return Status::Ok();
    const bool src_is_dir = src->type == FileType::kDirectory;
    if (dst) {
      const bool dst_is_dir = dst->type == FileType::kDirectory;
      if (src_is_dir && !dst_is_dir) return Status::NotDir(ctx);
      if (!src_is_dir && dst_is_dir) return Status::IsDir(ctx);
    }
    const bool moves_dir = src_is_dir && src_parent != dst_parent;
    if (moves_dir) {
      NS_RETURN_IF_ERROR(t.LockTopology());
      // The new parent must not be the moved directory or below it. With
      // the topology lock held no other directory move runs, so the chain
      // of parents we walk is stable.
      InodeId cur = dst_parent;
      for (int depth = 0;; ++depth) {
        if (cur == src->child) {
          return Status::Invalid(ctx, "a directory cannot move into itself");
        }
        if (cur == kRootInode) break;
        if (depth > 100000) return Status::Corruption(ctx, "parent cycle");
        NS_ASSIGN_OR_RETURN(Attr a, t.GetInode(cur, LockMode::kNone));
        NS_RETURN_IF_ERROR(RequireDir(a, ctx));
        cur = a.parent;
      }
    }
    std::vector<LockSpec> specs = {{src_parent, LockMode::kShared},
                                   {dst_parent, LockMode::kShared},
                                   {src->child, LockMode::kExclusive, true}};
    if (dst) specs.push_back({dst->child, LockMode::kExclusive, true});
    NS_ASSIGN_OR_RETURN(auto locked, LockInodes(t, specs));
    NS_ASSIGN_OR_RETURN(auto src2, t.LookupEntry(src_parent, src_name));
    NS_ASSIGN_OR_RETURN(auto dst2, t.LookupEntry(dst_parent, dst_name));
    if (!src2 || src2->child != src->child || dst2.has_value() != dst.has_value() ||
        (dst && dst2->child != dst->child)) {
      return Status::Retry(ctx);
    }
    const Attr& sp = locked[src_parent];
    const Attr& dp = locked[dst_parent];
    Attr moved = locked[src->child];
    NS_RETURN_IF_ERROR(RequireDir(sp, ctx));
    NS_RETURN_IF_ERROR(RequireDir(dp, ctx));
    NS_RETURN_IF_ERROR(RequireDelete(t, cred, sp, moved, ctx));
    NS_RETURN_IF_ERROR(RequireAccess(
        t, cred, dp,
        kAceExecute | (src_is_dir ? kAceAddSubdirectory : kAceAddFile), ctx));
    if (moves_dir) {
      // Its ".." entry changes.
      NS_RETURN_IF_ERROR(RequireAccess(t, cred, moved, kAceWriteData, ctx));
    }
    TimeNs now = NowNs();
    int dst_nlink_delta = 0;
    if (dst) {
      const Attr& victim = locked[dst->child];
      NS_RETURN_IF_ERROR(RequireDelete(t, cred, dp, victim, ctx));
      NS_RETURN_IF_ERROR(t.DeleteEntry(dst_parent, dst_name));
      if (victim.type == FileType::kDirectory) {
        NS_ASSIGN_OR_RETURN(bool has_entries, t.HasEntries(victim.ino));
        if (has_entries) return Status::NotEmpty(ctx);
        NS_RETURN_IF_ERROR(t.DeleteInode(victim.ino));
        out.replaced = UnlinkResult{};
        out.replaced->ino = victim.ino;
        dst_nlink_delta -= 1;
      } else {
        NS_ASSIGN_OR_RETURN(out.replaced, DropLink(t, victim, now, options));
      }
    }
    NS_RETURN_IF_ERROR(t.DeleteEntry(src_parent, src_name));
    Status inserted = t.InsertEntry(dst_parent, dst_name, moved.ino, moved.type);
    // The target name was free when we looked but a concurrent create took
    // it: rename(2) replaces, so start over and replace it this time.
    if (inserted.IsExists()) return Status::Retry(ctx, "target appeared");
    NS_RETURN_IF_ERROR(inserted);
    moved.ctime = now;
    if (moves_dir) moved.parent = dst_parent;
    NS_RETURN_IF_ERROR(t.UpdateInode(moved));
    if (src_parent == dst_parent) {
      return t.DirChanged(src_parent, dst_nlink_delta, now).status();
    }
    NS_RETURN_IF_ERROR(
        t.DirChanged(src_parent, src_is_dir ? -1 : 0, now).status());
    return t.DirChanged(dst_parent, dst_nlink_delta + (src_is_dir ? 1 : 0), now)
        .status();
  });
  if (!s.ok()) return s;
  return out;
}

Result<DirPage> Namespace::ReadDir(const Credentials& cred, InodeId dir,
                                   const ReadDirRequest& req) {
  NS_RETURN_IF_ERROR(CheckIds({dir}));
  const std::string ctx = "readdir inode " + std::to_string(dir);
  if (req.max_entries == 0) return Status::Invalid(ctx, "page of 0 entries");
  if (req.cookie == 1 || req.cookie == 2) {
    return Status::Invalid(ctx, "cookies 1 and 2 are reserved");
  }
  const uint64_t verifier = backend_->CookieVerifier();
  if (req.cookie != 0 && req.verifier != 0 && req.verifier != verifier) {
    return Status::Invalid(ctx, "cookie verifier does not match");
  }
  DirPage page;
  Status s = backend_->Read([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(Attr d, t.GetInode(dir, LockMode::kNone));
    NS_RETURN_IF_ERROR(RequireDir(d, ctx));
    NS_RETURN_IF_ERROR(RequireAccess(t, cred, d, kAceListDirectory, ctx));
    // One more than asked tells whether this page is the last. A page is
    // bounded so that a huge request cannot pull a whole directory into
    // memory at once (the caller simply gets a shorter page, eof false).
    const uint32_t limit = std::min<uint32_t>(req.max_entries, kMaxPageEntries);
    NS_ASSIGN_OR_RETURN(page.entries, t.ListEntries(dir, req.cookie, limit + 1,
                                                    req.with_attrs));
    page.eof = page.entries.size() <= limit;
    if (!page.eof) page.entries.resize(limit);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  page.verifier = verifier;
  return page;
}

Result<Attr> Namespace::Resolve(const Credentials& cred, std::string_view path,
                                bool follow_last) {
  const std::string ctx = "path '" + std::string(path.substr(0, 256)) + "'";
  if (path.size() > kMaxPathBytes) {
    return Status::NameTooLong(ctx, "longer than 4096 bytes");
  }
  if (path.find('\0') != std::string_view::npos) {
    return Status::Invalid(ctx, "contains NUL");
  }
  if (path.empty() || path[0] != '/') {
    return Status::Invalid(ctx, "not an absolute path");
  }
  auto split = [](std::string_view p, std::deque<std::string>& out) {
    std::deque<std::string> comps;
    size_t i = 0;
    while (i < p.size()) {
      size_t j = p.find('/', i);
      if (j == std::string_view::npos) j = p.size();
      if (j > i) comps.emplace_back(p.substr(i, j - i));
      i = j + 1;
    }
    out.insert(out.begin(), comps.begin(), comps.end());
  };
  Attr out;
  Status s = backend_->Read([&](Transaction& t) -> Status {
    std::deque<std::string> todo;
    split(path, todo);
    NS_ASSIGN_OR_RETURN(Attr cur, t.GetInode(kRootInode, LockMode::kNone));
    int follows = 0;
    while (!todo.empty()) {
      std::string comp = std::move(todo.front());
      todo.pop_front();
      if (comp == ".") continue;
      NS_RETURN_IF_ERROR(RequireDir(cur, ctx));
      NS_RETURN_IF_ERROR(RequireAccess(t, cred, cur, kAceExecute, ctx));
      if (comp == "..") {
        NS_ASSIGN_OR_RETURN(cur, t.GetInode(cur.parent, LockMode::kNone));
        continue;
      }
      if (comp.size() > kMaxNameBytes) {
        return Status::NameTooLong(ctx, "a component is over 255 bytes");
      }
      NS_ASSIGN_OR_RETURN(auto pc, t.LookupWithParent(cur.ino, comp));
      if (!pc.second) return Status::NotFound(ctx);
      Attr next = *pc.second;
      if (next.type == FileType::kSymlink && (!todo.empty() || follow_last)) {
        if (++follows > kMaxSymlinkFollows) return Status::Loop(ctx);
        NS_ASSIGN_OR_RETURN(std::string target, t.ReadSymlink(next.ino));
        split(target, todo);
        if (!target.empty() && target[0] == '/') {
          NS_ASSIGN_OR_RETURN(cur, t.GetInode(kRootInode, LockMode::kNone));
        }
        continue;  // relative targets resolve from `cur`, the link's parent
      }
      cur = next;
    }
    out = cur;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Result<FsStats> Namespace::StatFs(const Credentials& /*cred*/) {
  FsStats out;
  Status s = backend_->Read([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(out, t.Stats());
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Status Namespace::ReleaseOrphan(InodeId ino) {
  NS_RETURN_IF_ERROR(CheckIds({ino}));
  return backend_->Write([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(Attr a, t.GetInode(ino, LockMode::kExclusive));
    if (a.nlink != 0) {
      return Status::Invalid("release inode " + std::to_string(ino),
                             "it still has links");
    }
    NS_RETURN_IF_ERROR(t.RemoveOrphan(ino));
    return t.DeleteInode(ino);
  });
}

Result<std::vector<InodeId>> Namespace::ListOrphans(InodeId after,
                                                    uint32_t limit) {
  if (limit == 0 || limit > 100000) {
    return Status::Invalid("list orphans",
                           "limit " + std::to_string(limit) +
                               " outside 1..100000");
  }
  if (after > static_cast<InodeId>(INT64_MAX)) return std::vector<InodeId>{};
  std::vector<InodeId> out;
  NS_RETURN_IF_ERROR(backend_->Read([&](Transaction& t) -> Status {
    out.clear();
    // The orphans table's primary key is ino: an index range scan on
    // both dialects. The same text runs on both ($n is bound by Query).
    const int64_t params[] = {static_cast<int64_t>(after),
                              static_cast<int64_t>(limit)};
    NS_ASSIGN_OR_RETURN(
        std::vector<SqlRow> rows,
        t.Query("SELECT ino FROM orphans WHERE ino > $1 ORDER BY ino "
                "LIMIT $2",
                params));
    for (const SqlRow& r : rows) {
      if (!r.empty() && r[0]) out.push_back(std::stoull(*r[0]));
    }
    return Status::Ok();
  }));
  return out;
}

}  // namespace ns
