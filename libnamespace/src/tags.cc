// Directory tags with dCache Chimera's semantics (see namespace.h).
//
// Storage (docs/schema.md, version 3): dir_tags(ino -> origin) says whose
// tag set a directory sees; tags(origin, name, value) holds the sets. mkdir
// copies the parent's dir_tags row (one insert, done by the database, no
// counter anywhere); a write on a directory that sees someone else's set
// first copies that set to itself (copy-on-write) and points its own row at
// it. A set goes with its last referrer (DeleteInode); sets left behind
// (two last referrers removed concurrently, or a copy-on-write by the last
// referrer of a set whose owner is gone) are deleted by CollectTags.

#include <algorithm>
#include <deque>
#include <set>
#include <string>

#include "libnamespace/include/namespace/namespace.h"
#include "libnamespace/src/access.h"
#include "libnamespace/src/backend.h"

namespace ns {
namespace {

std::string Ctx(std::string_view op, InodeId dir, std::string_view name) {
  std::string c = std::string(op) + " inode " + std::to_string(dir);
  if (!name.empty()) {
    c += " tag '" + std::string(name.substr(0, 64)) +
         (name.size() > 64 ? "...'" : "'");
  }
  return c;
}

Status RequireDirectory(const Attr& a, const std::string& ctx) {
  if (a.type != FileType::kDirectory) return Status::NotDir(ctx);
  return Status::Ok();
}

Status RequireOwner(const Credentials& cred, const Attr& a,
                    const std::string& ctx) {
  if (!cred.IsRoot() && cred.uid != a.uid) {
    return Status::NotPermitted(ctx, "only the owner may change tags");
  }
  return Status::Ok();
}

Status ValidateTag(std::string_view name, std::string_view value,
                   const std::string& ctx) {
  Status s = ValidateName(name);
  if (!s.ok()) {
    return s.IsNameTooLong() ? Status::NameTooLong(ctx, s.ToString())
                             : Status::Invalid(ctx, s.ToString());
  }
  if (value.size() > kMaxTagValueBytes) {
    return Status::TooBig(ctx, "value of " + std::to_string(value.size()) +
                                   " bytes, at most 65536");
  }
  return Status::Ok();
}

// Gives `dir` a set of its own, a copy of what it sees now, unless it has
// one already. Returns the origin (== dir).
Status OwnSet(Transaction& t, InodeId dir) {
  NS_ASSIGN_OR_RETURN(std::optional<InodeId> origin, t.GetTagOrigin(dir));
  if (origin && *origin == dir) return Status::Ok();
  if (origin) NS_RETURN_IF_ERROR(t.CopyTags(*origin, dir));
  return t.SetTagOrigin(dir, dir);
}

Result<std::vector<Tag>> TagsOf(Transaction& t, InodeId dir) {
  NS_ASSIGN_OR_RETURN(std::optional<InodeId> origin, t.GetTagOrigin(dir));
  if (!origin) return std::vector<Tag>{};
  NS_ASSIGN_OR_RETURN(std::vector<Tag> tags, t.ListTags(*origin));
  for (Tag& tag : tags) tag.own = *origin == dir;
  return tags;
}

}  // namespace

Result<std::vector<Tag>> Namespace::ListTags(const Credentials& cred,
                                             InodeId dir) {
  const std::string ctx = Ctx("lstag", dir, {});
  NS_RETURN_IF_ERROR(CheckInodeId(dir));
  std::vector<Tag> out;
  Status s = backend_->Read([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(Attr a, t.GetInode(dir, LockMode::kNone));
    NS_RETURN_IF_ERROR(RequireDirectory(a, ctx));
    NS_RETURN_IF_ERROR(RequireAccess(t, cred, a, kAceExecute, ctx));
    NS_ASSIGN_OR_RETURN(out, TagsOf(t, dir));
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Result<std::string> Namespace::ReadTag(const Credentials& cred, InodeId dir,
                                       std::string_view name) {
  NS_ASSIGN_OR_RETURN(std::vector<Tag> tags, ListTags(cred, dir));
  for (Tag& tag : tags) {
    if (tag.name == name) return std::move(tag.value);
  }
  return Status::NotFound(Ctx("readtag", dir, name), "no such tag");
}

Status Namespace::WriteTag(const Credentials& cred, InodeId dir,
                           std::string_view name, std::string_view value) {
  const std::string ctx = Ctx("writetag", dir, name);
  NS_RETURN_IF_ERROR(CheckInodeId(dir));
  NS_RETURN_IF_ERROR(ValidateTag(name, value, ctx));
  return backend_->Write([&](Transaction& t) -> Status {
    // Exclusive: a concurrent mkdir in `dir` (kShared) copies either the
    // old or the new reference, never half of a change.
    NS_ASSIGN_OR_RETURN(Attr a, t.GetInode(dir, LockMode::kExclusive));
    NS_RETURN_IF_ERROR(RequireDirectory(a, ctx));
    NS_RETURN_IF_ERROR(RequireOwner(cred, a, ctx));
    NS_RETURN_IF_ERROR(OwnSet(t, dir));
    return t.PutTag(dir, name, value);
  });
}

Status Namespace::RemoveTag(const Credentials& cred, InodeId dir,
                            std::string_view name) {
  const std::string ctx = Ctx("rmtag", dir, name);
  NS_RETURN_IF_ERROR(CheckInodeId(dir));
  NS_RETURN_IF_ERROR(ValidateTag(name, {}, ctx));
  return backend_->Write([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(Attr a, t.GetInode(dir, LockMode::kExclusive));
    NS_RETURN_IF_ERROR(RequireDirectory(a, ctx));
    NS_RETURN_IF_ERROR(RequireOwner(cred, a, ctx));
    NS_ASSIGN_OR_RETURN(std::vector<Tag> tags, TagsOf(t, dir));
    const bool present =
        std::any_of(tags.begin(), tags.end(),
                    [&](const Tag& tag) { return tag.name == name; });
    if (!present) return Status::NotFound(ctx, "no such tag");
    NS_RETURN_IF_ERROR(OwnSet(t, dir));
    NS_ASSIGN_OR_RETURN(bool gone, t.DeleteTag(dir, name));
    if (!gone) return Status::Corruption(ctx, "copied tag set lost the tag");
    return Status::Ok();
  });
}

Result<uint64_t> Namespace::PushTag(const Credentials& cred, InodeId dir,
                                    std::string_view name,
                                    std::string_view value, uint64_t max_dirs) {
  const std::string ctx = Ctx("pushtag", dir, name);
  NS_RETURN_IF_ERROR(CheckInodeId(dir));
  NS_RETURN_IF_ERROR(ValidateTag(name, value, ctx));
  if (!cred.IsRoot()) return Status::NotPermitted(ctx, "root only");
  uint64_t changed = 0;
  Status s = backend_->Write([&](Transaction& t) -> Status {
    changed = 0;
    NS_ASSIGN_OR_RETURN(Attr top, t.GetInode(dir, LockMode::kNone));
    NS_RETURN_IF_ERROR(RequireDirectory(top, ctx));
    // The subtree's directories, top-down (breadth first).
    auto subtree = [&]() -> Result<std::vector<InodeId>> {
      std::vector<InodeId> dirs{dir};
      for (size_t i = 0; i < dirs.size(); ++i) {
        uint64_t cookie = 0;
        for (;;) {
          NS_ASSIGN_OR_RETURN(std::vector<DirEntry> page,
                              t.ListEntries(dirs[i], cookie, 4096, false));
          for (const DirEntry& e : page) {
            if (e.type != FileType::kDirectory) continue;
            if (dirs.size() >= max_dirs) {
              return Status::Invalid(ctx, "more than " +
                                              std::to_string(max_dirs) +
                                              " directories below");
            }
            dirs.push_back(e.ino);
          }
          if (page.size() < 4096) break;
          cookie = page.back().cookie;
        }
      }
      return dirs;
    };
    NS_ASSIGN_OR_RETURN(std::vector<InodeId> dirs, subtree());
    // Lock them all in inode order (never a cycle with other writers), so
    // no mkdir below copies a reference while we change it.
    std::vector<InodeId> sorted = dirs;
    std::sort(sorted.begin(), sorted.end());
    for (InodeId ino : sorted) {
      Result<Attr> a = t.GetInode(ino, LockMode::kExclusive);
      if (!a.ok()) {
        // Removed since we listed it: list again.
        if (a.status().IsStale()) return Status::Retry(ctx, "tree changed");
        return a.status();
      }
    }
    // A directory made between the listing and the locks: start over.
    NS_ASSIGN_OR_RETURN(std::vector<InodeId> again, subtree());
    if (again != dirs) return Status::Retry(ctx, "tree changed");
    // Top-down: a directory that sees a set already written here has the
    // value already; every other one gets (or has) its own set.
    std::set<InodeId> written;
    for (InodeId ino : dirs) {
      NS_ASSIGN_OR_RETURN(std::optional<InodeId> origin, t.GetTagOrigin(ino));
      ++changed;
      if (origin && written.count(*origin)) continue;
      if (!origin || *origin != ino) {
        if (origin) NS_RETURN_IF_ERROR(t.CopyTags(*origin, ino));
        NS_RETURN_IF_ERROR(t.SetTagOrigin(ino, ino));
      }
      NS_RETURN_IF_ERROR(t.PutTag(ino, name, value));
      written.insert(ino);
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return changed;
}

Result<uint64_t> Namespace::CollectTags() {
  uint64_t out = 0;
  Status s = backend_->Write([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(out, t.CollectTags());
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace ns
