// PgTxn, part 2: ACLs, xattrs, inline data, tags, checksums, pNFS
// locations, grace and NFSv4 client records.

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "libnamespace/src/backend.h"
#include "libnamespace/src/pg_backend_internal.h"
#include "libnamespace/src/pg_commit_token.h"
#include "libnamespace/src/pg_connection.h"
#include "libnamespace/src/pg_errors.h"
#include "libnamespace/src/pg_statements.h"

namespace ns {
namespace pg_internal {

Result<GraceRow> PgTxn::GetGrace() {
  return Run("pg get grace", [&]() -> Result<GraceRow> {
    const pqxx::result r = Exec(writable_ ? kGetGraceUpdate : kGetGrace);
    if (r.empty()) {
      return Status::Corruption("pg get grace",
                                "the nfs_grace row is missing");
    }
    GraceRow row;
    row.current_epoch = r[0][0].as<int64_t>();
    if (!r[0][1].is_null()) row.recovery_epoch = r[0][1].as<int64_t>();
    row.started_ns = r[0][2].as<int64_t>();
    return row;
  });
}

Status PgTxn::PutGrace(const GraceRow& row) {
  return RunWrite("pg put grace", [&]() -> Status {
    Defer(kPutGrace, row.current_epoch,
          row.recovery_epoch ? *row.recovery_epoch : int64_t{-1},
          row.started_ns);
    return Status::Ok();
  });
}

Result<ClientRecord> PgTxn::GetClientRecord(std::string_view owner) {
  return Run("pg get client", [&]() -> Result<ClientRecord> {
    const pqxx::result r = Exec(kGetClient, HexOf(owner));
    if (r.empty()) return Status::NotFound("client record");
    return RowToClient(r[0]);
  });
}

Result<std::vector<ClientRecord>> PgTxn::ListClientRecords() {
  return Run("pg list clients",
             [&]() -> Result<std::vector<ClientRecord>> {
               const pqxx::result r = Exec(kListClients);
               std::vector<ClientRecord> out;
               out.reserve(r.size());
               for (const pqxx::row& row : r) {
                 NS_ASSIGN_OR_RETURN(ClientRecord c, RowToClient(row));
                 out.push_back(std::move(c));
               }
               return out;
             });
}

Status PgTxn::PutClientRecord(const ClientRecord& rec) {
  return RunWrite("pg put client", [&]() -> Status {
    Defer(kPutClient, HexOf(rec.owner), rec.principal,
          static_cast<int64_t>(rec.verifier),
          static_cast<int64_t>(rec.clientid), rec.confirmed_ns,
          rec.confirmed_epoch,
          rec.reclaim_epoch ? *rec.reclaim_epoch : int64_t{-1});
    return Status::Ok();
  });
}

Status PgTxn::DeleteClientRecord(std::string_view owner) {
  return RunWrite("pg delete client", [&]() -> Status {
    Defer(kDeleteClient, HexOf(owner));
    return Status::Ok();
  });
}

Result<Acl> PgTxn::GetAcl(InodeId ino) {
  if (auto it = prefetched_acl_.find(ino); it != prefetched_acl_.end()) {
    return it->second;
  }
  return Run("pg get acl", [&]() -> Result<Acl> {
    const pqxx::result r = Exec(kGetAcl, ino);
    Acl acl;
    for (const pqxx::row& row : r) {
      Ace ace;
      ace.type = Get<uint32_t>(row[0]);
      ace.flags = Get<uint32_t>(row[1]);
      ace.mask = Get<uint32_t>(row[2]);
      const int kind = Get<int>(row[3]);
      if (kind < 0 || kind > static_cast<int>(AceWho::kNamedGroup)) {
        return Status::Corruption("pg get acl",
                                  "bad who kind on inode " +
                                      std::to_string(ino));
      }
      ace.who = static_cast<AceWho>(kind);
      ace.id = Get<uint32_t>(row[4]);
      acl.push_back(ace);
    }
    return acl;
  });
}

Status PgTxn::SetAcl(InodeId ino, const Acl& acl) {
  prefetched_acl_.erase(ino);
  return RunWrite("pg set acl", [&]() -> Status {
    Defer(kDeleteAcl, ino);
    if (acl.empty()) return Status::Ok();
    std::string t = "{", f = "{", m = "{", k = "{", i = "{";
    for (size_t n = 0; n < acl.size(); ++n) {
      const char* sep = n == 0 ? "" : ",";
      t += sep + std::to_string(acl[n].type);
      f += sep + std::to_string(acl[n].flags);
      m += sep + std::to_string(acl[n].mask);
      k += sep + std::to_string(static_cast<int>(acl[n].who));
      i += sep + std::to_string(acl[n].id);
    }
    Defer(kInsertAces, ino, t + "}", f + "}", m + "}", k + "}", i + "}");
    return Status::Ok();
  });
}

Result<std::optional<std::string>> PgTxn::GetXattr(InodeId ino,
                                                   std::string_view name) {
  using Out = std::optional<std::string>;
  return Run("pg get xattr", [&]() -> Result<Out> {
    const pqxx::result r = Exec(kGetXattr, ino, std::string(name));
    if (r.empty()) return Out();
    return Out(FromHex(r[0][0]));
  });
}

Result<std::vector<XattrName>> PgTxn::ListXattrs(InodeId ino) {
  using Out = std::vector<XattrName>;
  return Run("pg list xattrs", [&]() -> Result<Out> {
    const pqxx::result r = Exec(kListXattrs, ino);
    Out out;
    for (const pqxx::row& row : r) {
      out.push_back({Text(row[0]), Get<uint64_t>(row[1])});
    }
    return out;
  });
}

Status PgTxn::PutXattr(InodeId ino, std::string_view name,
                       std::string_view value) {
  return RunWrite("pg put xattr", [&]() -> Status {
    Defer(kPutXattr, ino, std::string(name), ToHex(value));
    return Status::Ok();
  });
}

Result<bool> PgTxn::DeleteXattr(InodeId ino, std::string_view name) {
  return RunWrite("pg delete xattr", [&]() -> Result<bool> {
    return Exec(kDeleteXattr, ino, std::string(name)).affected_rows() > 0;
  });
}

Result<std::optional<std::string>> PgTxn::GetInlineData(InodeId ino) {
  using Out = std::optional<std::string>;
  return Run("pg get inline data", [&]() -> Result<Out> {
    const pqxx::result r = Exec(kGetInlineData, ino);
    if (r.empty()) return Out();
    return Out(FromHex(r[0][0]));
  });
}

Status PgTxn::PutInlineData(InodeId ino, std::string_view bytes) {
  return RunWrite("pg put inline data", [&]() -> Status {
    Defer(kPutInlineData, ino, ToHex(bytes));
    return Status::Ok();
  });
}

Result<bool> PgTxn::DeleteInlineData(InodeId ino) {
  return RunWrite("pg delete inline data", [&]() -> Result<bool> {
    return Exec(kDeleteInlineData, ino).affected_rows() > 0;
  });
}

Result<bool> PgTxn::HasLayout(InodeId ino) {
  return Run("pg has layout", [&]() -> Result<bool> {
    return !Exec(kHasLayout, ino).empty();
  });
}

Result<std::optional<InodeId>> PgTxn::GetTagOrigin(InodeId ino) {
  using Out = std::optional<InodeId>;
  return Run("pg get tag origin", [&]() -> Result<Out> {
    const pqxx::result r = Exec(kGetTagOrigin, ino);
    if (r.empty()) return Out();
    return Out(Get<InodeId>(r[0][0]));
  });
}

Status PgTxn::SetTagOrigin(InodeId ino, InodeId origin) {
  return RunWrite("pg set tag origin", [&]() -> Status {
    Defer(kSetTagOrigin, ino, origin);
    return Status::Ok();
  });
}

Status PgTxn::InheritTags(InodeId child, InodeId parent) {
  return RunWrite("pg inherit tags", [&]() -> Status {
    Defer(kInheritTags, child, parent);
    return Status::Ok();
  });
}

Result<std::vector<Tag>> PgTxn::ListTags(InodeId origin) {
  using Out = std::vector<Tag>;
  return Run("pg list tags", [&]() -> Result<Out> {
    const pqxx::result r = Exec(kListTags, origin);
    Out out;
    for (const pqxx::row& row : r) {
      Tag t;
      t.name = Text(row[0]);
      t.value = FromHex(row[1]);
      out.push_back(std::move(t));
    }
    return out;
  });
}

Status PgTxn::CopyTags(InodeId from, InodeId to) {
  return RunWrite("pg copy tags", [&]() -> Status {
    Defer(kCopyTags, from, to);
    return Status::Ok();
  });
}

Status PgTxn::PutTag(InodeId origin, std::string_view name,
                     std::string_view value) {
  return RunWrite("pg put tag", [&]() -> Status {
    Defer(kPutTag, origin, std::string(name), ToHex(value));
    return Status::Ok();
  });
}

Result<bool> PgTxn::DeleteTag(InodeId origin, std::string_view name) {
  return RunWrite("pg delete tag", [&]() -> Result<bool> {
    return Exec(kDeleteTag, origin, std::string(name)).affected_rows() > 0;
  });
}

Result<uint64_t> PgTxn::CollectTags() {
  return RunWrite("pg collect tags", [&]() -> Result<uint64_t> {
    return Get<uint64_t>(Exec(kCollectTags)[0][0]);
  });
}

Result<std::vector<Checksum>> PgTxn::ListChecksums(InodeId ino) {
  using Out = std::vector<Checksum>;
  return Run("pg list checksums", [&]() -> Result<Out> {
    const pqxx::result r = Exec(kListChecksums, ino);
    Out out;
    for (const pqxx::row& row : r) {
      out.push_back({static_cast<ChecksumType>(Get<int>(row[0])),
                     Text(row[1])});
    }
    return out;
  });
}

Status PgTxn::PutChecksum(InodeId ino, const Checksum& c) {
  return RunWrite("pg put checksum", [&]() -> Status {
    Defer(kPutChecksum, ino, static_cast<int>(c.type), c.value);
    return Status::Ok();
  });
}

Result<bool> PgTxn::DeleteChecksum(InodeId ino, ChecksumType type) {
  return RunWrite("pg delete checksum", [&]() -> Result<bool> {
    return Exec(kDeleteChecksum, ino, static_cast<int>(type))
               .affected_rows() > 0;
  });
}

Result<std::vector<Location>> PgTxn::ListLocations(InodeId ino) {
  using Out = std::vector<Location>;
  return Run("pg list locations", [&]() -> Result<Out> {
    const pqxx::result r = Exec(kListLocations, ino);
    Out out;
    for (const pqxx::row& row : r) {
      out.push_back({static_cast<LocationType>(Get<int>(row[0])),
                     Text(row[1]), Get<int64_t>(row[2])});
    }
    return out;
  });
}

Status PgTxn::AddLocation(InodeId ino, const Location& l) {
  return RunWrite("pg add location", [&]() -> Status {
    const pqxx::result r =
        Exec(kAddLocation, ino, static_cast<int>(l.type), l.location,
             l.added_ns);
    if (r.affected_rows() == 0) {
      return Status::Exists("pg add location", l.location);
    }
    return Status::Ok();
  });
}

Result<bool> PgTxn::DeleteLocation(InodeId ino, LocationType type,
                                   std::string_view location) {
  return RunWrite("pg delete location", [&]() -> Result<bool> {
    return Exec(kDeleteLocation, ino, static_cast<int>(type),
                std::string(location))
               .affected_rows() > 0;
  });
}

std::string PgTxn::ToHex(std::string_view v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(v.size() * 2);
  for (unsigned char c : v) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::string PgTxn::FromHex(const pqxx::field& f) {
  const char* p = f.c_str();
  const size_t n = f.size() / 2;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return c - 'A' + 10;
  };
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    out[i] = static_cast<char>((nibble(p[2 * i]) << 4) | nibble(p[2 * i + 1]));
  }
  return out;
}

std::string PgTxn::HexOf(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

Result<ClientRecord> PgTxn::RowToClient(const pqxx::row& row) {
  const std::string hex = Text(row[0]);
  if (hex.size() % 2 != 0) {
    return Status::Corruption("pg client record", "odd hex owner");
  }
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  ClientRecord r;
  r.owner.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) {
      return Status::Corruption("pg client record", "bad hex owner");
    }
    r.owner += static_cast<char>(hi * 16 + lo);
  }
  r.principal = Text(row[1]);
  r.verifier = static_cast<uint64_t>(row[2].as<int64_t>());
  r.clientid = static_cast<uint64_t>(row[3].as<int64_t>());
  r.confirmed_ns = row[4].as<int64_t>();
  r.confirmed_epoch = row[5].as<int64_t>();
  if (!row[6].is_null()) r.reclaim_epoch = row[6].as<int64_t>();
  return r;
}

}  // namespace pg_internal
}  // namespace ns
