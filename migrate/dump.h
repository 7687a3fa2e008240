#pragma once

// The canonical dump (docs/dump-format.md): JSON lines, a header line and
// then one entry per line, parents before children in depth-first order.
// Every source is turned into a stream of Entry values; the importer, the
// exporter and --verify only ever see Entry.
//
// Thread safety: DumpParser holds a parser's buffers; one per thread.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "libnamespace/include/namespace/metadata.h"
#include "libnamespace/include/namespace/status.h"
#include "libnamespace/include/namespace/types.h"

namespace nsmigrate {

inline constexpr int kDumpVersion = 1;

// One NFSv4 ACE (RFC 8881 §6.2.1): type, flag and mask bits as on the wire.
struct Ace {
  uint32_t type = 0;   // 0 allow, 1 deny, 2 audit, 3 alarm
  uint32_t flags = 0;  // ACE4_*_INHERIT_ACE, ACE4_IDENTIFIER_GROUP (0x40), ...
  uint32_t mask = 0;   // ACE4_READ_DATA (0x1), ...
  std::string who;     // "OWNER@", "GROUP@", "EVERYONE@" or a numeric id
  bool operator==(const Ace&) const = default;
};

// Where a file's data lives (Chimera t_locationinfo, DPM replicas).
struct Location {
  std::string type;  // "disk" or "tape" (or another storage class name)
  std::string uri;   // e.g. "osm://store/...", "dpm://host/fs/path"
  bool operator==(const Location&) const = default;
};

using KeyValues = std::vector<std::pair<std::string, std::string>>;

struct Entry {
  std::string path;  // absolute, normalized; "/" is the root
  ns::FileType type = ns::FileType::kRegular;
  uint32_t mode = 0;  // permission bits (07777)
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  uint32_t rdev_major = 0;
  uint32_t rdev_minor = 0;
  ns::TimeNs atime = 0, mtime = 0, ctime = 0, btime = 0;
  // Hard links: every name of one inode carries the same key and the
  // inode's link count. Empty for an inode with one name.
  std::string link_key;
  uint32_t nlink = 1;
  std::string target;   // symlinks
  std::string ext_id;   // stable external id (pnfsid, DPM fileid); "" = none
  KeyValues checksums;  // type name ("adler32", "md5", ...) -> lowercase hex
  KeyValues xattrs;     // name -> raw value bytes (base64 in the dump)
  std::vector<Ace> acl;
  KeyValues tags;  // directory tags set here (not inherited ones)
  std::vector<Location> locations;

  bool HasExtras() const {
    return !checksums.empty() || !xattrs.empty() || !acl.empty() ||
           !tags.empty() || !locations.empty();
  }
  bool operator==(const Entry&) const = default;
};

// The first line of every dump.
struct DumpHeader {
  int version = kDumpVersion;
  std::string source;  // the URI the dump was made from
};

// Parses dump lines. Errors: Invalid naming the line number and the problem.
class DumpParser {
 public:
  DumpParser();
  ~DumpParser();
  DumpParser(const DumpParser&) = delete;
  DumpParser& operator=(const DumpParser&) = delete;

  ns::Result<DumpHeader> ParseHeader(std::string_view line, uint64_t lineno);
  ns::Result<Entry> ParseEntry(std::string_view line, uint64_t lineno);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One line, without the newline. Keys in a fixed order and optional ones
// only when set, so equal entries give byte-identical lines.
std::string FormatEntry(const Entry& e);
std::string FormatHeader(const DumpHeader& h);

// "/a/b" -> {"/a", "b"}; "/a" -> {"/", "a"}. REQUIRES: path != "/".
std::pair<std::string_view, std::string_view> SplitPath(std::string_view path);

// The letter a dump uses for a type ('f' for a regular file, else as ls).
char TypeLetter(ns::FileType t);

// The namespace keeps two kinds of location (docs/schema.md, locations):
// "stripe" (a data-server stripe) and everything else, an external URI
// whose scheme says where it is ("osm://...", "dcache-pool:pool1"). So
// "disk", "tape" or "external" all become kExternal, exported as
// "external"; --verify compares locations through this mapping.
ns::LocationType LocationTypeOf(std::string_view type);
std::string_view LocationTypeName(ns::LocationType type);

// An entry as the namespace gives it back: location types mapped as above,
// checksums, xattrs, tags and locations in the namespace's order (sorted);
// ACEs keep their order, which is their meaning.
void NormalizeMetadata(Entry& e);

std::string Base64Encode(std::string_view bytes);
ns::Result<std::string> Base64Decode(std::string_view text);

}  // namespace nsmigrate
