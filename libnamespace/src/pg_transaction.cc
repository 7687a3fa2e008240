// PgTxn, part 1: BEGIN and COMMIT (with the commit token), inodes,
// directory entries, symlinks, orphans, the topology lock, statfs and the
// Query escape hatch.

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

Status PgTxn::Commit() {
  // Nothing ran and nothing is queued: there is no transaction.
  if (!begin_sent_ && pending_ == "BEGIN;") return Status::Ok();
  // A connection the server closed while this transaction sat idle
  // (a restart terminates idle sessions) shows up here without sending
  // anything; then COMMIT was certainly never seen and the whole
  // transaction can be retried.
  const Status alive = PgGuard("pg commit", [&] {
    t_.conn().get_notifs();
    return t_.conn().is_open()
               ? Status::Ok()
               : Status::Unavailable("pg commit", "connection lost");
  });
  if (!alive.ok()) return alive;
  token_.reset();
  const bool with_token = tokens_ && wrote_;
  if (with_token) {
    // Once per connection: a round trip before COMMIT, nothing after.
    const Status prepared = PgGuard("pg commit", [&] {
      t_.conn().prepare_now(kCommitTokenStatement);
      return Status::Ok();
    });
    if (!prepared.ok()) {
      Rollback();
      return prepared;
    }
  }
  std::string sql;
  sql.swap(pending_);
  if (with_token) {
    token_ = NewCommitToken();
    AppendExecute(sql, kCommitTokenStatement, *token_);
    sql += ';';
  }
  sql += "COMMIT";
  begin_sent_ = true;
  try {
    (void)RunPgCommitHook(CommitPoint::kBeforeSend, t_.conn());
    t_.exec(sql);
    begin_sent_ = false;
    if (RunPgCommitHook(CommitPoint::kAfterAnswer, t_.conn())) {
      t_.conn().disconnect();
      throw pqxx::broken_connection("answer to COMMIT dropped by a test");
    }
    return Status::Ok();
  } catch (const std::exception& e) {
    if (!t_.conn().is_open()) {
      begin_sent_ = false;
      if (!wrote_) return Status::Ok();
      in_doubt_ = true;
      return Status::IOError(
          "pg commit",
          "commit outcome unknown: connection lost during COMMIT: " +
              PgMessage(e));
    }
    const auto* sql_error = dynamic_cast<const pqxx::sql_error*>(&e);
    const Status s =
        sql_error != nullptr && IsCommitTokenClash(*sql_error)
            ? Status::Retry("pg commit", "commit token clash")
            : PgStatus(e, "pg commit");
    Rollback();
    return s;
  }
}

void PgTxn::Rollback() {
  pending_.clear();
  if (!begin_sent_) return;
  begin_sent_ = false;
  try {
    t_.exec("ROLLBACK");
  } catch (const std::exception&) {
  }
}

Result<Attr> PgTxn::GetInode(InodeId ino, LockMode lock) {
  return Run("pg get inode", [&]() -> Result<Attr> {
    // Row locks only mean something inside a Write; in a Read each
    // statement commits on its own, and a lock would only dirty the row.
    if (!writable_ || lock == LockMode::kNone) return PlainGet(ino);
    const pqxx::result r =
        Exec(lock == LockMode::kShared ? kGetKeyShare : kGetUpdate, ino);
    if (r.empty()) return NoInode(ino);
    if (!r[0][19].as<bool>()) return PlainGet(ino);
    Attr a = RowToAttr(r[0], 0, 16);
    // The row is locked now, so its ACL cannot change before commit
    // (SetAcl holds FOR UPDATE): keep the ACEs for GetAcl.
    if (a.has_acl && !r[0][20].is_null()) {
      std::optional<Acl> acl = ParseAceList(r[0][20].c_str());
      if (acl) prefetched_acl_[ino] = std::move(*acl);
    }
    return a;
  });
}

Result<std::pair<Attr, std::optional<Attr>>> PgTxn::LookupWithParent(
    InodeId parent, std::string_view name) {
  using Pair = std::pair<Attr, std::optional<Attr>>;
  return Run("pg lookup", [&]() -> Result<Pair> {
    const pqxx::result r = Exec(kLookupWithParent, parent, std::string(name));
    if (r.empty()) return NoInode(parent);
    Pair out{RowToAttr(r[0], 0, 33), std::nullopt};
    if (!r[0][16].is_null()) {
      if (r[0][17].is_null()) {
        return Status::Corruption(
            "pg lookup", "entry " + std::string(name) + " in " +
                             std::to_string(parent) +
                             " names missing inode " + r[0][16].c_str());
      }
      out.second = RowToAttr(r[0], 17, 36);
    }
    return out;
  });
}

Result<InodeId> PgTxn::InsertInode(const Attr& a) {
  return RunWrite("pg insert inode", [&]() -> Result<InodeId> {
    std::optional<InodeId> ino = inos_->Take();
    if (!ino) {
      const pqxx::result r = Exec(kNextInos, kInoBatch);
      std::vector<InodeId> got;
      got.reserve(r.size());
      for (const pqxx::row& row : r) got.push_back(Get<InodeId>(row[0]));
      ino = got.front();
      got.erase(got.begin());
      inos_->Add(std::move(got));
    }
    Defer(kInsertInode, *ino, TypeCode(a.type), StoredMode(a), a.nlink, a.uid, a.gid,
          a.size, a.rdev_major, a.rdev_minor, a.atime, a.mtime, a.ctime,
          a.btime, std::max<uint64_t>(a.change, 1), a.generation, a.parent);
    return *ino;
  });
}

Status PgTxn::UpdateInode(const Attr& a) {
  return RunWrite("pg update inode", [&]() -> Status {
    Defer(kUpdateInode, a.ino, StoredMode(a), a.uid, a.gid, a.size, a.rdev_major,
          a.rdev_minor, a.atime, a.mtime, a.ctime, a.parent, a.nlink);
    return Status::Ok();
  });
}

Status PgTxn::DeleteInode(InodeId ino) {
  return RunWrite("pg delete inode", [&]() -> Status {
    Defer(kDeleteInode, ino);
    return Status::Ok();
  });
}

Result<std::optional<EntryRow>> PgTxn::LookupEntry(InodeId parent,
                                                   std::string_view name) {
  using Out = std::optional<EntryRow>;
  return Run("pg lookup entry", [&]() -> Result<Out> {
    const pqxx::result r = Exec(kLookupEntry, parent, std::string(name));
    if (r.empty()) return Out();
    EntryRow e;
    e.child = Get<InodeId>(r[0][0]);
    e.type = static_cast<FileType>(Get<int>(r[0][1]));
    e.cookie = Get<uint64_t>(r[0][2]);
    return Out(e);
  });
}

Status PgTxn::InsertEntry(InodeId parent, std::string_view name, InodeId child,
                          FileType type) {
  return RunWrite("pg insert entry", [&]() -> Status {
    const pqxx::result r =
        Exec(kInsertEntry, parent, std::string(name), child, TypeCode(type));
    if (r.affected_rows() == 0) {
      return Status::Exists("pg insert entry", std::string(name));
    }
    return Status::Ok();
  });
}

Status PgTxn::DeleteEntry(InodeId parent, std::string_view name) {
  return RunWrite("pg delete entry", [&]() -> Status {
    const pqxx::result r = Exec(kDeleteEntry, parent, std::string(name));
    if (r.affected_rows() == 0) {
      return Status::NotFound("pg delete entry", std::string(name));
    }
    return Status::Ok();
  });
}

Result<bool> PgTxn::HasEntries(InodeId dir) {
  return Run("pg has entries", [&]() -> Result<bool> {
    return Exec(kHasEntries, dir)[0][0].as<bool>();
  });
}

Result<std::vector<DirEntry>> PgTxn::ListEntries(InodeId dir,
                                                 uint64_t after_cookie,
                                                 uint32_t limit,
                                                 bool with_attrs) {
  using Out = std::vector<DirEntry>;
  return Run("pg list entries", [&]() -> Result<Out> {
    // Cookies are bigint: nothing lies beyond the largest one.
    if (after_cookie >
        static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Out();
    }
    const pqxx::result r =
        Exec(with_attrs ? kListAttrs : kList, dir, after_cookie, limit);
    Out out;
    out.reserve(r.size());
    for (const pqxx::row& row : r) {
      DirEntry e;
      e.name = Text(row[0]);
      e.ino = Get<InodeId>(row[1]);
      e.type = static_cast<FileType>(Get<int>(row[2]));
      e.cookie = Get<uint64_t>(row[3]);
      if (with_attrs) {
        if (row[4].is_null()) {
          return Status::Corruption(
              "pg list entries",
              "entry " + e.name + " in " + std::to_string(dir) +
                  " names missing inode " + std::to_string(e.ino));
        }
        e.attr = RowToAttr(row, 4, 20);
      }
      out.push_back(std::move(e));
    }
    return out;
  });
}

Result<std::optional<Attr>> PgTxn::DirChanged(InodeId dir, int nlink_delta,
                                              TimeNs now) {
  NS_RETURN_IF_ERROR(RunWrite("pg dir changed", [&]() -> Status {
    Defer(kDirChanged, dir, nlink_delta, now);
    return Status::Ok();
  }));
  // A dir_deltas record: the row's values are known only once folded.
  return std::optional<Attr>();
}

Status PgTxn::InsertSymlink(InodeId ino, std::string_view target) {
  return RunWrite("pg insert symlink", [&]() -> Status {
    Defer(kInsertSymlink, ino, std::string(target));
    return Status::Ok();
  });
}

Result<std::string> PgTxn::ReadSymlink(InodeId ino) {
  return Run("pg read symlink", [&]() -> Result<std::string> {
    const pqxx::result r = Exec(kReadSymlink, ino);
    if (r.empty()) {
      return Status::Corruption("pg read symlink",
                                "no target for inode " + std::to_string(ino));
    }
    return Text(r[0][0]);
  });
}

Status PgTxn::AddOrphan(InodeId ino, TimeNs now) {
  return RunWrite("pg add orphan", [&]() -> Status {
    Defer(kAddOrphan, ino, now);
    return Status::Ok();
  });
}

Status PgTxn::RemoveOrphan(InodeId ino) {
  return RunWrite("pg remove orphan", [&]() -> Status {
    Defer(kRemoveOrphan, ino);
    return Status::Ok();
  });
}

Status PgTxn::LockTopology() {
  return RunWrite("pg lock topology", [&]() -> Status {
    Defer(kLockTopology);
    return Status::Ok();
  });
}

Result<FsStats> PgTxn::Stats() {
  return Run("pg stats", [&]() -> Result<FsStats> {
    const pqxx::result meta = Exec(kStatsMeta);
    const double reltuples = meta[0][0].as<double>();
    const int64_t pages = meta[0][1].as<int64_t>();
    const int64_t last_ino = meta[0][2].as<int64_t>();
    FsStats st;
    st.files_free =
        static_cast<uint64_t>(std::numeric_limits<int64_t>::max() - last_ino);
    // reltuples is -1 until the first VACUUM/ANALYZE; then the table's
    // size on disk decides (8192 pages of 8 kB hold some 400,000 inode
    // rows at fillfactor 80).
    const bool small =
        reltuples >= 0 ? reltuples < kExactStatsRows : pages < 8192;
    if (small) {
      // A full scan: with enable_seqscan off (see PgConn) the planner
      // still takes the seq scan, having nothing else to offer.
      const pqxx::result r = Exec(kStatsExact);
      st.files = Get<uint64_t>(r[0][0]);
      st.bytes = Get<uint64_t>(r[0][1]);
      return st;
    }
    // Big table: count from the planner's statistics, and scale the
    // byte total of a block sample of about kStatsSampleRows rows.
    const double percent =
        reltuples > 0
            ? std::clamp(100.0 * kStatsSampleRows / reltuples, 0.001, 100.0)
            : 1.0;
    const pqxx::result r = Exec(kStatsSample, percent);
    const double sample_rows = r[0][0].as<double>();
    const double sample_bytes = r[0][1].as<double>();
    const double files =
        reltuples > 0 ? reltuples : sample_rows * 100.0 / percent;
    st.files = static_cast<uint64_t>(files);
    st.bytes = sample_rows > 0
                   ? static_cast<uint64_t>(sample_bytes * files / sample_rows)
                   : 0;
    return st;
  });
}

std::optional<Acl> PgTxn::ParseAceList(std::string_view text) {
  Acl acl;
  while (!text.empty()) {
    const size_t semi = text.find(';');
    std::string_view one = text.substr(0, semi);
    text = semi == std::string_view::npos ? std::string_view()
                                          : text.substr(semi + 1);
    int64_t v[5];
    for (int k = 0; k < 5; ++k) {
      const size_t comma = one.find(',');
      if ((k < 4) == (comma == std::string_view::npos)) return std::nullopt;
      const std::string_view num = one.substr(0, comma);
      const auto [p, ec] =
          std::from_chars(num.data(), num.data() + num.size(), v[k]);
      if (ec != std::errc() || p != num.data() + num.size()) {
        return std::nullopt;
      }
      one = k < 4 ? one.substr(comma + 1) : std::string_view();
    }
    if (v[3] < 0 || v[3] > static_cast<int64_t>(AceWho::kNamedGroup)) {
      return std::nullopt;
    }
    acl.push_back(Ace{static_cast<uint32_t>(v[0]), static_cast<uint32_t>(v[1]),
                      static_cast<uint32_t>(v[2]), static_cast<AceWho>(v[3]),
                      static_cast<uint32_t>(v[4])});
  }
  return acl;
}

Result<std::vector<SqlRow>> PgTxn::Query(std::string_view sql,
                                         std::span<const int64_t> params) {
  return RunQuery(sql, [&](pqxx::transaction_base& t) {
    return t.exec_params(
        std::string(sql),
        pqxx::prepare::make_dynamic_params(params.begin(), params.end()));
  });
}

Result<std::vector<SqlRow>> PgTxn::QueryValues(
    std::string_view sql, std::span<const SqlValue> params) {
  // Every parameter as text: PostgreSQL types each from the statement.
  std::vector<std::string> text;
  text.reserve(params.size());
  for (const SqlValue& v : params) {
    if (const int64_t* i = std::get_if<int64_t>(&v)) {
      text.push_back(std::to_string(*i));
    } else {
      text.push_back(std::get<std::string>(v));
    }
  }
  return RunQuery(sql, [&](pqxx::transaction_base& t) {
    return t.exec_params(
        std::string(sql),
        pqxx::prepare::make_dynamic_params(text.begin(), text.end()));
  });
}

}  // namespace pg_internal
}  // namespace ns
