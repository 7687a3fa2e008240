#include "migrate/posix_acl.h"

#include <acl/libacl.h>
#include <sys/acl.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

namespace nsmigrate {
namespace {

struct AclFree {
  void operator()(void* p) const { acl_free(p); }
};
using AclPtr = std::unique_ptr<std::remove_pointer_t<acl_t>, AclFree>;

struct PosixEntry {
  acl_tag_t tag;
  unsigned id;
  unsigned perm;  // 4 r, 2 w, 1 x
};

uint32_t MaskOf(unsigned perm, bool is_dir) {
  uint32_t m = 0;
  if (perm & 4) m |= kAceReadData;
  if (perm & 2)
    m |= kAceWriteData | kAceAppendData | (is_dir ? kAceDeleteChild : 0);
  if (perm & 1) m |= kAceExecute;
  return m;
}

std::vector<PosixEntry> Entries(acl_t acl) {
  std::vector<PosixEntry> out;
  acl_entry_t entry;
  for (int which = ACL_FIRST_ENTRY; acl_get_entry(acl, which, &entry) == 1;
       which = ACL_NEXT_ENTRY) {
    PosixEntry e{};
    acl_get_tag_type(entry, &e.tag);
    if (e.tag == ACL_USER || e.tag == ACL_GROUP) {
      void* q = acl_get_qualifier(entry);
      if (q) {
        e.id = *static_cast<unsigned*>(q);
        acl_free(q);
      }
    }
    acl_permset_t ps;
    acl_get_permset(entry, &ps);
    e.perm = (acl_get_perm(ps, ACL_READ) == 1 ? 4 : 0) |
             (acl_get_perm(ps, ACL_WRITE) == 1 ? 2 : 0) |
             (acl_get_perm(ps, ACL_EXECUTE) == 1 ? 1 : 0);
    out.push_back(e);
  }
  return out;
}

void Map(const std::vector<PosixEntry>& entries, bool is_dir, bool is_default,
         std::vector<Ace>* out) {
  const uint32_t base =
      is_default ? (kAceFileInherit | kAceDirectoryInherit | kAceInheritOnly)
                 : 0;
  const uint32_t all = MaskOf(7, is_dir);
  const uint32_t always = kAceReadAttributes | kAceReadAcl | kAceSynchronize;
  unsigned mask = 7;
  for (const auto& e : entries) {
    if (e.tag == ACL_MASK) mask = e.perm;
  }
  auto add = [&](uint32_t type, uint32_t flags, uint32_t m, std::string who) {
    out->push_back(Ace{type, base | flags, m, std::move(who)});
  };
  for (const auto& e : entries) {
    if (e.tag != ACL_USER_OBJ) continue;
    const uint32_t m = MaskOf(e.perm, is_dir);
    add(kAceAllow, 0,
        m | always | kAceWriteAttributes | kAceWriteAcl | kAceWriteOwner,
        "OWNER@");
    if (all & ~m) add(kAceDeny, 0, all & ~m, "OWNER@");
  }
  for (const auto& e : entries) {
    if (e.tag != ACL_USER) continue;
    const uint32_t m = MaskOf(e.perm & mask, is_dir);
    add(kAceAllow, 0, m | always, std::to_string(e.id));
    if (all & ~m) add(kAceDeny, 0, all & ~m, std::to_string(e.id));
  }
  // Every group allow before any group deny: a member of two groups gets
  // the union, as in POSIX.
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& e : entries) {
      if (e.tag != ACL_GROUP_OBJ && e.tag != ACL_GROUP) continue;
      const uint32_t m = MaskOf(e.perm & mask, is_dir);
      const std::string who =
          e.tag == ACL_GROUP_OBJ ? "GROUP@" : std::to_string(e.id);
      if (pass == 0) {
        add(kAceAllow, kAceIdentifierGroup, m | always, who);
      } else if (all & ~m) {
        add(kAceDeny, kAceIdentifierGroup, all & ~m, who);
      }
    }
  }
  for (const auto& e : entries) {
    if (e.tag != ACL_OTHER) continue;
    add(kAceAllow, 0, MaskOf(e.perm, is_dir) | always, "EVERYONE@");
  }
}

}  // namespace

ns::Result<std::vector<Ace>> ReadPosixAclAsNfs4(const std::string& path,
                                                bool is_dir) {
  std::vector<Ace> out;
  const int ext = acl_extended_file_nofollow(path.c_str());
  if (ext < 0) {
    if (errno == ENOTSUP || errno == ENOSYS) return out;
    return ns::Status::IOError("acl " + path, std::strerror(errno));
  }
  if (ext == 0) return out;  // the mode bits say it all
  AclPtr access(acl_get_file(path.c_str(), ACL_TYPE_ACCESS));
  if (!access) return ns::Status::IOError("acl " + path, std::strerror(errno));
  std::vector<PosixEntry> entries = Entries(access.get());
  if (entries.size() > 3) Map(entries, is_dir, false, &out);
  if (is_dir) {
    AclPtr def(acl_get_file(path.c_str(), ACL_TYPE_DEFAULT));
    if (!def) return ns::Status::IOError("acl " + path, std::strerror(errno));
    std::vector<PosixEntry> d = Entries(def.get());
    if (!d.empty()) {
      // A default ACL without an access ACL of its own: state the access
      // rights explicitly too, so the ACL alone describes the file.
      if (out.empty()) Map(entries, is_dir, false, &out);
      Map(d, is_dir, true, &out);
    }
  }
  return out;
}

ns::Result<std::vector<Ace>> PosixAclTextToNfs4(const std::string& text,
                                                bool is_dir, bool is_default) {
  AclPtr acl(acl_from_text(text.c_str()));
  if (!acl) return ns::Status::Invalid("acl '" + text + "'", "not a POSIX ACL");
  std::vector<Ace> out;
  Map(Entries(acl.get()), is_dir, is_default, &out);
  return out;
}

}  // namespace nsmigrate
