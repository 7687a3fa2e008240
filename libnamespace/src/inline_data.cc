// Small files' bytes in the database (namespace.h, "Small files' bytes in
// the database"; table inode_data, schema version 8).
//
// Why: a durable write of a new small file through a data store costs the
// file's create and fsync (data block, inode, directory: ~1.4 ms on one
// virtio disk, shared with nobody) on top of the commit of its size. Kept
// here, the bytes ride in that commit, which the backend groups with other
// sessions' (SQLite's group-commit writer, PostgreSQL's WAL flush).

#include <algorithm>
#include <string>

#include "libnamespace/include/namespace/namespace.h"
#include "libnamespace/src/access.h"
#include "libnamespace/src/backend.h"
#include "libnamespace/src/perm.h"

namespace ns {

Result<std::optional<std::string>> Namespace::ReadInline(InodeId ino) {
  NS_RETURN_IF_ERROR(CheckInodeId(ino));
  std::optional<std::string> out;
  Status s = backend_->Read([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(out, t.GetInlineData(ino));
    if (!out) {
      // No row: tell a missing inode (Stale) from a file kept elsewhere.
      NS_RETURN_IF_ERROR(t.GetInode(ino, LockMode::kNone).status());
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Result<Attr> Namespace::WriteInline(const Credentials& cred, InodeId ino,
                                    uint64_t offset, std::string_view data,
                                    TimeNs mtime, uint64_t limit) {
  NS_RETURN_IF_ERROR(CheckInodeId(ino));
  const std::string ctx = "inline write of inode " + std::to_string(ino);
  if (data.empty()) return Status::Invalid(ctx, "no bytes");
  limit = std::min(limit, kMaxInlineBytes);
  if (offset > limit || data.size() > limit - offset) {
    return Status::TooBig(ctx, "past the inline limit of " +
                                   std::to_string(limit) + " bytes");
  }
  const uint64_t end = offset + data.size();
  Attr out;
  Status s = backend_->Write([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(Attr a, t.GetInode(ino, LockMode::kExclusive));
    if (a.type != FileType::kRegular) {
      return Status::Invalid(ctx, "not a regular file");
    }
    NS_ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                        t.GetInlineData(ino));
    if (!bytes) {
      // Only an empty file starts inline: a non-empty one has its bytes in
      // the data store, and those of a file with a layout are on the data
      // servers (RFC 8881 §13: the client reads them there).
      if (a.size != 0) return Status::NotFound(ctx, "bytes in a data store");
      NS_ASSIGN_OR_RETURN(bool layout, t.HasLayout(ino));
      if (layout) return Status::NotFound(ctx, "the file has a pNFS layout");
      bytes.emplace();
    }
    if (std::max(a.size, end) > limit) {
      return Status::TooBig(ctx, "the file would pass the inline limit");
    }
    if (bytes->size() < end) bytes->resize(end, '\0');
    bytes->replace(offset, data.size(), data);
    NS_RETURN_IF_ERROR(t.PutInlineData(ino, *bytes));
    a.size = std::max(a.size, end);
    a.mode = ModeAfterWrite(cred, a);
    a.mtime = mtime;
    a.ctime = std::max(mtime, NowNs());
    NS_RETURN_IF_ERROR(t.UpdateInode(a));
    NS_ASSIGN_OR_RETURN(out, t.GetInode(ino, LockMode::kNone));
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Status Namespace::DropInline(InodeId ino, std::string_view bytes) {
  NS_RETURN_IF_ERROR(CheckInodeId(ino));
  return backend_->Write([&](Transaction& t) -> Status {
    NS_RETURN_IF_ERROR(t.GetInode(ino, LockMode::kExclusive).status());
    NS_ASSIGN_OR_RETURN(std::optional<std::string> now, t.GetInlineData(ino));
    if (!now) return Status::Ok();
    if (*now != bytes) {
      return Status::Unavailable(
          "moving the bytes of inode " + std::to_string(ino),
          "they changed while being copied to the data store; try again");
    }
    return t.DeleteInlineData(ino).status();
  });
}

}  // namespace ns
