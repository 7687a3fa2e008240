// A namespace as a source (--export, --verify, namespace to namespace):
// walked depth first through the library's own reads (ReadDir with
// attributes, ReadLink), so what comes out is what clients would see.
// Entries come in cookie order, which for an imported tree is the order of
// the source. Memory: one readdir page per open directory. The external
// ids, which the API does not show, come from one query per directory.
// ACLs, xattrs, tags (a directory's own set only: inherited ones come back
// by inheritance on import), checksums and locations likewise: one query
// per table and directory (Writer::MetadataIn), since through the API each
// would cost a transaction per entry (a round trip each on PostgreSQL); the
// root's come through the API.

#include <fmt/core.h>

#include <unordered_map>
#include <vector>

#include "libnamespace/include/namespace/acl.h"
#include "libnamespace/include/namespace/metadata.h"
#include "libnamespace/include/namespace/namespace.h"
#include "migrate/source.h"
#include "migrate/writer.h"

namespace nsmigrate {
namespace {

constexpr uint32_t kPage = 1000;

class NamespaceSource final : public Source {
 public:
  NamespaceSource(std::string uri, std::unique_ptr<ns::Namespace> ns,
                  std::unique_ptr<Writer> ids, bool any_ext)
      : uri_(std::move(uri)),
        ns_(std::move(ns)),
        ids_(std::move(ids)),
        any_ext_(any_ext) {}

  ns::Result<std::optional<Entry>> Next() override {
    if (!started_) {
      started_ = true;
      NS_ASSIGN_OR_RETURN(ns::Attr root, ns_->GetAttr(cred_, ns::kRootInode));
      Entry e = FromAttr("/", root);
      if (any_ext_) {
        NS_ASSIGN_OR_RETURN(e.ext_id, ids_->ExtIdOf(ns::kRootInode));
      }
      NS_RETURN_IF_ERROR(AddMetadata(e, root));
      NS_RETURN_IF_ERROR(Push(ns::kRootInode, "/"));
      ++returned_;
      return std::optional<Entry>(std::move(e));
    }
    while (!stack_.empty()) {
      Level& top = stack_.back();
      if (top.next < top.page.size()) {
        ns::DirEntry& d = top.page[top.next++];
        if (!d.attr)
          return ns::Status::Corruption(uri_, "entry without attributes");
        const std::string path =
            top.path == "/" ? "/" + d.name : top.path + "/" + d.name;
        Entry e = FromAttr(path, *d.attr);
        if (auto it = top.ext_ids.find(d.name); it != top.ext_ids.end()) {
          e.ext_id = it->second;
        }
        if (e.type == ns::FileType::kSymlink) {
          NS_ASSIGN_OR_RETURN(e.target, ns_->ReadLink(cred_, d.ino));
        }
        if (auto it = top.meta.find(d.ino); it != top.meta.end()) {
          Take(e, it->second);
        }
        if (e.type == ns::FileType::kDirectory) {
          NS_RETURN_IF_ERROR(Push(d.ino, path));
        }
        ++returned_;
        return std::optional<Entry>(std::move(e));
      }
      if (!top.eof) {
        NS_RETURN_IF_ERROR(ReadPage(top));
        continue;
      }
      stack_.pop_back();
    }
    return std::optional<Entry>();
  }

  SourcePos Position() const override { return {returned_, returned_}; }

  ns::Status Seek(const SourcePos& pos) override {
    for (uint64_t i = returned_; i < pos.line; ++i) {
      NS_ASSIGN_OR_RETURN(std::optional<Entry> e, Next());
      if (!e)
        return ns::Status::Invalid(uri_, "fewer entries than the checkpoint");
    }
    return ns::Status::Ok();
  }

  const std::string& Uri() const override { return uri_; }

 private:
  struct Level {
    ns::InodeId ino = 0;
    std::string path;
    std::vector<ns::DirEntry> page;
    size_t next = 0;
    uint64_t cookie = 0, verifier = 0;
    bool eof = false;
    std::unordered_map<std::string, std::string> ext_ids;
    std::unordered_map<ns::InodeId, Entry> meta;  // extras of the entries
  };

  // The rows of MetadataIn as each inode's Entry extras.
  static std::unordered_map<ns::InodeId, Entry> Group(Batch&& b) {
    std::unordered_map<ns::InodeId, Entry> m;
    for (const AceRow& a : b.aces) {
      Ace ace{a.type, a.flags, a.mask, {}};
      switch (a.who_kind) {
        case 0:
          ace.who = "OWNER@";
          break;
        case 1:
          ace.who = "GROUP@";
          break;
        case 2:
          ace.who = "EVERYONE@";
          break;
        default:
          ace.who = std::to_string(a.who_id);
      }
      m[a.ino].acl.push_back(std::move(ace));
    }
    for (XattrRow& x : b.xattrs) {
      m[x.ino].xattrs.emplace_back(std::move(x.name), std::move(x.value));
    }
    for (TagRow& t : b.tags) {
      m[t.origin].tags.emplace_back(std::move(t.name), std::move(t.value));
    }
    for (ChecksumRow& c : b.checksums) {
      m[c.ino].checksums.emplace_back(
          std::string(
              ns::ChecksumTypeName(static_cast<ns::ChecksumType>(c.type))),
          std::move(c.value));
    }
    for (LocationRow& l : b.locations) {
      m[l.ino].locations.push_back(Location{
          std::string(LocationTypeName(static_cast<ns::LocationType>(l.type))),
          std::move(l.location)});
    }
    return m;
  }

  static void Take(Entry& e, Entry& from) {
    // A hard link's second name in the same directory finds the rows
    // again: copy, do not move.
    e.acl = from.acl;
    e.xattrs = from.xattrs;
    e.tags = from.tags;
    e.checksums = from.checksums;
    e.locations = from.locations;
  }

  static Entry FromAttr(std::string path, const ns::Attr& a) {
    Entry e;
    e.path = std::move(path);
    e.type = a.type;
    e.mode = a.mode;
    e.uid = a.uid;
    e.gid = a.gid;
    e.size = a.size;
    e.rdev_major = a.rdev_major;
    e.rdev_minor = a.rdev_minor;
    e.atime = a.atime;
    e.mtime = a.mtime;
    e.ctime = a.ctime;
    e.btime = a.btime;
    if (a.type != ns::FileType::kDirectory && a.nlink > 1) {
      e.link_key = std::to_string(a.ino);
      e.nlink = a.nlink;
    }
    return e;
  }

  ns::Status AddMetadata(Entry& e, const ns::Attr& a) {
    if (a.has_acl) {
      NS_ASSIGN_OR_RETURN(ns::Acl acl, ns_->GetAcl(cred_, a.ino));
      for (const ns::Ace& x : acl) {
        Ace ace{x.type, x.flags, x.mask, {}};
        switch (x.who) {
          case ns::AceWho::kOwner:
            ace.who = "OWNER@";
            break;
          case ns::AceWho::kGroup:
            ace.who = "GROUP@";
            break;
          case ns::AceWho::kEveryone:
            ace.who = "EVERYONE@";
            break;
          default:
            ace.who = std::to_string(x.id);
        }
        e.acl.push_back(std::move(ace));
      }
    }
    NS_ASSIGN_OR_RETURN(std::vector<ns::XattrName> names,
                        ns_->ListXattrs(cred_, a.ino));
    for (const ns::XattrName& n : names) {
      NS_ASSIGN_OR_RETURN(std::string v, ns_->GetXattr(cred_, a.ino, n.name));
      e.xattrs.emplace_back(n.name, std::move(v));
    }
    if (a.type == ns::FileType::kDirectory) {
      NS_ASSIGN_OR_RETURN(std::vector<ns::Tag> tags,
                          ns_->ListTags(cred_, a.ino));
      for (ns::Tag& t : tags) {
        if (t.own) e.tags.emplace_back(std::move(t.name), std::move(t.value));
      }
    }
    if (a.type == ns::FileType::kRegular) {
      NS_ASSIGN_OR_RETURN(std::vector<ns::Checksum> sums,
                          ns_->GetChecksums(cred_, a.ino));
      for (ns::Checksum& c : sums) {
        e.checksums.emplace_back(std::string(ns::ChecksumTypeName(c.type)),
                                 std::move(c.value));
      }
      NS_ASSIGN_OR_RETURN(std::vector<ns::Location> locs,
                          ns_->GetLocations(cred_, a.ino));
      for (ns::Location& l : locs) {
        e.locations.push_back(Location{std::string(LocationTypeName(l.type)),
                                       std::move(l.location)});
      }
    }
    return ns::Status::Ok();
  }

  ns::Status ReadPage(Level& l) {
    ns::ReadDirRequest req;
    req.cookie = l.cookie;
    req.verifier = l.verifier;
    req.max_entries = kPage;
    req.with_attrs = true;
    NS_ASSIGN_OR_RETURN(ns::DirPage page, ns_->ReadDir(cred_, l.ino, req));
    l.page = std::move(page.entries);
    l.next = 0;
    l.eof = page.eof;
    l.verifier = page.verifier;
    if (!l.page.empty()) l.cookie = l.page.back().cookie;
    return ns::Status::Ok();
  }

  ns::Status Push(ns::InodeId ino, std::string path) {
    Level l;
    l.ino = ino;
    l.path = std::move(path);
    if (any_ext_) {
      NS_ASSIGN_OR_RETURN(auto ids, ids_->ExtIdsIn(ino));
      for (auto& [n, id] : ids) l.ext_ids.emplace(std::move(n), std::move(id));
    }
    NS_ASSIGN_OR_RETURN(Batch meta, ids_->MetadataIn(ino));
    l.meta = Group(std::move(meta));
    stack_.push_back(std::move(l));
    return ns::Status::Ok();
  }

  std::string uri_;
  std::unique_ptr<ns::Namespace> ns_;
  std::unique_ptr<Writer> ids_;  // opened read-only (dry run): ext ids only
  bool any_ext_;
  const ns::Credentials cred_ = ns::Credentials::Root();
  std::vector<Level> stack_;
  bool started_ = false;
  uint64_t returned_ = 0;
};

}  // namespace

ns::Result<std::unique_ptr<Source>> OpenNamespaceSource(
    const std::string& uri) {
  ns::NamespaceOptions opts;
  opts.pool_size = 1;
  NS_ASSIGN_OR_RETURN(std::unique_ptr<ns::Namespace> nspace,
                      ns::Namespace::Open(uri, opts));
  NS_ASSIGN_OR_RETURN(std::unique_ptr<Writer> ids, Writer::Open(uri, true));
  NS_ASSIGN_OR_RETURN(bool has_state, ids->HasTable("ns_migrate_state"));
  if (has_state) {
    return ns::Status::Invalid(uri,
                               "an import into it is unfinished "
                               "(ns-migrate --resume first)");
  }
  NS_ASSIGN_OR_RETURN(bool any_ext, ids->AnyExtId());
  return std::unique_ptr<Source>(std::make_unique<NamespaceSource>(
      uri, std::move(nspace), std::move(ids), any_ext));
}

}  // namespace nsmigrate
