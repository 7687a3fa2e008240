// The pNFS registry (pnfs.h) over Transaction::QueryValues: the tables are
// small and off the POSIX hot path, and the SQL below is the same on both
// dialects (INSERT ... ON CONFLICT ... RETURNING exists in SQLite >= 3.35
// and PostgreSQL).

#include "libnamespace/include/namespace/pnfs.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <optional>
#include <set>
#include <utility>

#include "libnamespace/include/namespace/namespace.h"
#include "libnamespace/src/backend.h"

namespace ns {
namespace {

constexpr char kDsColumns[] =
    "id, uuid, advertise, listen, heartbeat_ns, state, bytes_total, "
    "bytes_free, registered_ns";
constexpr char kWorkColumns[] = "id, ds, op, fileid, size, queued_ns";

// Ids and sizes are unsigned 64-bit values stored in signed bigint columns
// (same bits).
int64_t S(uint64_t v) { return static_cast<int64_t>(v); }

Result<int64_t> Int(const std::optional<std::string>& col) {
  int64_t v = 0;
  if (!col) return Status::Corruption("pnfs", "unexpected NULL");
  auto [p, ec] = std::from_chars(col->data(), col->data() + col->size(), v);
  if (ec != std::errc() || p != col->data() + col->size()) {
    return Status::Corruption("pnfs", "not an integer: " + *col);
  }
  return v;
}

Result<DataServer> DsFromRow(const SqlRow& r) {
  if (r.size() != 9) return Status::Corruption("pnfs", "data server row");
  DataServer d;
  NS_ASSIGN_OR_RETURN(int64_t id, Int(r[0]));
  d.id = static_cast<uint64_t>(id);
  d.uuid = r[1].value_or("");
  d.advertise = r[2].value_or("");
  d.listen = r[3].value_or("");
  NS_ASSIGN_OR_RETURN(d.heartbeat_ns, Int(r[4]));
  NS_ASSIGN_OR_RETURN(int64_t state, Int(r[5]));
  d.state = state == 1 ? DataServerState::kUp : DataServerState::kDown;
  NS_ASSIGN_OR_RETURN(int64_t total, Int(r[6]));
  NS_ASSIGN_OR_RETURN(int64_t free, Int(r[7]));
  d.bytes_total = static_cast<uint64_t>(total);
  d.bytes_free = static_cast<uint64_t>(free);
  NS_ASSIGN_OR_RETURN(d.registered_ns, Int(r[8]));
  return d;
}

Result<PnfsWork> WorkFromRow(const SqlRow& r) {
  if (r.size() != 6) return Status::Corruption("pnfs", "work row");
  PnfsWork w;
  NS_ASSIGN_OR_RETURN(int64_t id, Int(r[0]));
  NS_ASSIGN_OR_RETURN(int64_t ds, Int(r[1]));
  NS_ASSIGN_OR_RETURN(int64_t op, Int(r[2]));
  NS_ASSIGN_OR_RETURN(int64_t fileid, Int(r[3]));
  NS_ASSIGN_OR_RETURN(int64_t size, Int(r[4]));
  NS_ASSIGN_OR_RETURN(w.queued_ns, Int(r[5]));
  if (op < 1 || op > 3) return Status::Corruption("pnfs", "work op");
  w.id = static_cast<uint64_t>(id);
  w.data_server = static_cast<uint64_t>(ds);
  w.op = static_cast<PnfsWorkOp>(op);
  w.fileid = static_cast<InodeId>(fileid);
  w.size = static_cast<uint64_t>(size);
  return w;
}

Result<std::vector<PnfsWork>> WorkRows(const std::vector<SqlRow>& rows) {
  std::vector<PnfsWork> out;
  out.reserve(rows.size());
  for (const SqlRow& r : rows) {
    NS_ASSIGN_OR_RETURN(PnfsWork w, WorkFromRow(r));
    out.push_back(w);
  }
  return out;
}

Status CheckText(std::string_view what, std::string_view s, size_t max) {
  if (s.empty() || s.size() > max) {
    return Status::Invalid(what,
                           "must be 1.." + std::to_string(max) + " bytes");
  }
  return Status::Ok();
}

Status CheckUuid(std::string_view uuid) {
  NS_RETURN_IF_ERROR(
      CheckText("data server uuid", uuid, kMaxDataServerUuidBytes));
  for (char c : uuid) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return Status::Invalid("data server uuid", "must be lowercase hex");
    }
  }
  return Status::Ok();
}

Result<PnfsDevice> LoadDevice(Transaction& t, uint64_t id) {
  const std::vector<SqlValue> p = {S(id)};
  NS_ASSIGN_OR_RETURN(
      auto rows,
      t.QueryValues("SELECT ds FROM pnfs_device_members WHERE device = $1 "
                    "ORDER BY pos",
                    p));
  if (rows.empty()) {
    return Status::NotFound("pnfs device", std::to_string(id));
  }
  PnfsDevice d;
  d.id = id;
  for (const SqlRow& r : rows) {
    NS_ASSIGN_OR_RETURN(int64_t ds, Int(r.at(0)));
    d.data_servers.push_back(static_cast<uint64_t>(ds));
  }
  return d;
}

// Runs `fn` (Transaction& -> Result<T>) as one read or write transaction of
// the backend and hands back its value; a retried transaction simply runs
// `fn` again and the last value wins.
template <typename Fn>
auto InTransaction(Backend& b, bool write, Fn&& fn)
    -> decltype(fn(std::declval<Transaction&>())) {
  using R = decltype(fn(std::declval<Transaction&>()));
  std::optional<R> out;
  const TxnFn body = [&](Transaction& t) -> Status {
    out.emplace(fn(t));
    return out->status();
  };
  Status s = write ? b.Write(body) : b.Read(body);
  if (!s.ok()) return s;
  return std::move(*out);
}

Result<std::vector<DataServer>> DsRows(const std::vector<SqlRow>& rows) {
  std::vector<DataServer> out;
  out.reserve(rows.size());
  for (const SqlRow& r : rows) {
    NS_ASSIGN_OR_RETURN(DataServer d, DsFromRow(r));
    out.push_back(std::move(d));
  }
  return out;
}

// Queued work matching `where` (an SQL condition over $N parameters `p`).
Result<std::vector<PnfsWork>> SelectWork(Transaction& t, std::string_view where,
                                         const std::vector<SqlValue>& p) {
  NS_ASSIGN_OR_RETURN(auto rows,
                      t.QueryValues(std::string("SELECT ") + kWorkColumns +
                                        " FROM pnfs_work " + std::string(where),
                                    p));
  return WorkRows(rows);
}

Result<std::optional<PnfsLayout>> SelectLayout(Transaction& t, InodeId ino) {
  const std::vector<SqlValue> p = {S(ino)};
  NS_ASSIGN_OR_RETURN(auto rows,
                      t.QueryValues("SELECT device, stripe_unit "
                                    "FROM pnfs_layouts WHERE ino = $1",
                                    p));
  if (rows.empty()) return std::optional<PnfsLayout>();
  NS_ASSIGN_OR_RETURN(int64_t dev, Int(rows[0].at(0)));
  NS_ASSIGN_OR_RETURN(int64_t unit, Int(rows[0].at(1)));
  return std::optional<PnfsLayout>(
      PnfsLayout{ino, static_cast<uint64_t>(dev), static_cast<uint64_t>(unit)});
}

}  // namespace

Result<DataServer> PnfsRegistry::Register(std::string_view uuid,
                                          std::string_view advertise,
                                          std::string_view listen,
                                          uint64_t bytes_total,
                                          uint64_t bytes_free, TimeNs now) {
  NS_RETURN_IF_ERROR(CheckUuid(uuid));
  NS_RETURN_IF_ERROR(
      CheckText("advertise address", advertise, kMaxDataServerAddrBytes));
  NS_RETURN_IF_ERROR(
      CheckText("listen address", listen, kMaxDataServerAddrBytes));
  return InTransaction(
      ns_->backend(), true, [&](Transaction& t) -> Result<DataServer> {
        const std::vector<SqlValue> p = {
            std::string(uuid), std::string(advertise), std::string(listen),
            S(bytes_total),    S(bytes_free),          int64_t{now}};
        NS_ASSIGN_OR_RETURN(
            auto rows,
            t.QueryValues(
                std::string(
                    "INSERT INTO pnfs_data_servers (uuid, advertise, "
                    "listen, heartbeat_ns, state, bytes_total, bytes_free, "
                    "registered_ns) VALUES ($1, $2, $3, $6, 1, $4, $5, $6) "
                    "ON CONFLICT (uuid) DO UPDATE SET advertise = "
                    "excluded.advertise, listen = excluded.listen, "
                    "heartbeat_ns = excluded.heartbeat_ns, state = 1, "
                    "bytes_total = excluded.bytes_total, bytes_free = "
                    "excluded.bytes_free, registered_ns = "
                    "excluded.registered_ns RETURNING ") +
                    kDsColumns,
                p));
        if (rows.size() != 1) return Status::Corruption("pnfs", "register");
        return DsFromRow(rows[0]);
      });
}

Result<std::vector<PnfsWork>> PnfsRegistry::Heartbeat(
    uint64_t id, std::string_view uuid, uint64_t bytes_total,
    uint64_t bytes_free, std::span<const uint64_t> done, size_t max_work,
    TimeNs now) {
  NS_RETURN_IF_ERROR(CheckUuid(uuid));
  return InTransaction(
      ns_->backend(), true,
      [&](Transaction& t) -> Result<std::vector<PnfsWork>> {
        const std::vector<SqlValue> p = {S(id), std::string(uuid),
                                         S(bytes_total), S(bytes_free),
                                         int64_t{now}};
        NS_ASSIGN_OR_RETURN(
            auto rows,
            t.QueryValues("UPDATE pnfs_data_servers SET heartbeat_ns = $5, "
                          "state = 1, bytes_total = $3, bytes_free = $4 "
                          "WHERE id = $1 AND uuid = $2 RETURNING id",
                          p));
        if (rows.empty()) {
          return Status::NotFound("pnfs data server", std::to_string(id));
        }
        // Only this data server's rows: a confused or replayed report
        // cannot delete another's work.
        for (uint64_t w : done) {
          const std::vector<SqlValue> d = {S(w), S(id)};
          NS_RETURN_IF_ERROR(
              t.QueryValues("DELETE FROM pnfs_work WHERE id = $1 AND ds = $2",
                            d)
                  .status());
        }
        return SelectWork(t, "WHERE ds = $1 ORDER BY id LIMIT $2",
                          {S(id), static_cast<int64_t>(max_work)});
      });
}

Result<std::vector<DataServer>> PnfsRegistry::ExpireSilent(TimeNs cutoff) {
  return InTransaction(
      ns_->backend(), true,
      [&](Transaction& t) -> Result<std::vector<DataServer>> {
        const std::vector<SqlValue> p = {int64_t{cutoff}};
        NS_ASSIGN_OR_RETURN(
            auto rows,
            t.QueryValues(std::string("UPDATE pnfs_data_servers SET state = "
                                      "2 WHERE state = 1 AND heartbeat_ns < "
                                      "$1 RETURNING ") +
                              kDsColumns,
                          p));
        return DsRows(rows);
      });
}

Result<std::vector<DataServer>> PnfsRegistry::ListDataServers(bool only_up) {
  return InTransaction(
      ns_->backend(), false,
      [&](Transaction& t) -> Result<std::vector<DataServer>> {
        NS_ASSIGN_OR_RETURN(
            auto rows, t.QueryValues(std::string("SELECT ") + kDsColumns +
                                         " FROM pnfs_data_servers" +
                                         (only_up ? " WHERE state = 1" : "") +
                                         " ORDER BY id",
                                     {}));
        return DsRows(rows);
      });
}

Result<DataServer> PnfsRegistry::GetDataServer(uint64_t id) {
  return InTransaction(
      ns_->backend(), false, [&](Transaction& t) -> Result<DataServer> {
        const std::vector<SqlValue> p = {S(id)};
        NS_ASSIGN_OR_RETURN(
            auto rows,
            t.QueryValues(std::string("SELECT ") + kDsColumns +
                              " FROM pnfs_data_servers WHERE id = $1",
                          p));
        if (rows.empty()) {
          return Status::NotFound("pnfs data server", std::to_string(id));
        }
        return DsFromRow(rows[0]);
      });
}

Result<PnfsDevice> PnfsRegistry::DeviceFor(
    std::span<const uint64_t> data_servers) {
  if (data_servers.empty()) {
    return Status::Invalid("pnfs device", "no data servers");
  }
  std::set<uint64_t> seen;
  std::string members;
  for (uint64_t ds : data_servers) {
    if (!seen.insert(ds).second) {
      return Status::Invalid("pnfs device", "a data server twice");
    }
    if (!members.empty()) members += ',';
    members += std::to_string(ds);
  }
  return InTransaction(
      ns_->backend(), true, [&](Transaction& t) -> Result<PnfsDevice> {
        const std::vector<SqlValue> p = {members, int64_t{NowNs()}};
        // DO UPDATE (a no-op change) rather than DO NOTHING so RETURNING gives
        // the existing row's id too.
        NS_ASSIGN_OR_RETURN(
            auto rows,
            t.QueryValues(
                "INSERT INTO pnfs_devices (members, created_ns) VALUES "
                "($1, $2) ON CONFLICT (members) DO UPDATE SET members "
                "= excluded.members RETURNING id",
                p));
        if (rows.size() != 1) return Status::Corruption("pnfs", "device");
        NS_ASSIGN_OR_RETURN(int64_t id, Int(rows[0].at(0)));
        PnfsDevice out{static_cast<uint64_t>(id), {}};
        for (size_t i = 0; i < data_servers.size(); ++i) {
          const std::vector<SqlValue> m = {id, static_cast<int64_t>(i),
                                           S(data_servers[i])};
          NS_RETURN_IF_ERROR(
              t.QueryValues("INSERT INTO pnfs_device_members (device, pos, ds) "
                            "VALUES ($1, $2, $3) ON CONFLICT (device, pos) DO "
                            "NOTHING",
                            m)
                  .status());
          out.data_servers.push_back(data_servers[i]);
        }
        return out;
      });
}

Result<PnfsDevice> PnfsRegistry::GetDevice(uint64_t id) {
  return InTransaction(ns_->backend(), false,
                       [&](Transaction& t) { return LoadDevice(t, id); });
}

Result<std::vector<PnfsDevice>> PnfsRegistry::ListDevices() {
  return InTransaction(
      ns_->backend(), false,
      [&](Transaction& t) -> Result<std::vector<PnfsDevice>> {
        std::vector<PnfsDevice> out;
        NS_ASSIGN_OR_RETURN(
            auto rows,
            t.QueryValues("SELECT device, ds FROM pnfs_device_members ORDER BY "
                          "device, pos",
                          {}));
        for (const SqlRow& r : rows) {
          NS_ASSIGN_OR_RETURN(int64_t dev, Int(r.at(0)));
          NS_ASSIGN_OR_RETURN(int64_t ds, Int(r.at(1)));
          if (out.empty() || out.back().id != static_cast<uint64_t>(dev)) {
            out.push_back(PnfsDevice{static_cast<uint64_t>(dev), {}});
          }
          out.back().data_servers.push_back(static_cast<uint64_t>(ds));
        }
        return out;
      });
}

Result<std::optional<PnfsLayout>> PnfsRegistry::GetLayout(InodeId ino) {
  return InTransaction(ns_->backend(), false,
                       [&](Transaction& t) { return SelectLayout(t, ino); });
}

Result<PnfsLayout> PnfsRegistry::SetLayoutIfAbsent(const PnfsLayout& layout) {
  if (layout.stripe_unit == 0) {
    return Status::Invalid("pnfs layout", "stripe unit 0");
  }
  return InTransaction(
      ns_->backend(), true, [&](Transaction& t) -> Result<PnfsLayout> {
        // Locked against the inode's deletion, whose trigger reads the
        // layout.
        NS_RETURN_IF_ERROR(
            t.GetInode(layout.ino, LockMode::kExclusive).status());
        // Bytes kept in the database (Namespace::WriteInline) would be
        // invisible to clients reading through the layout. Under the same
        // lock as the write that put them there, so one of the two loses.
        NS_ASSIGN_OR_RETURN(std::optional<std::string> inl,
                            t.GetInlineData(layout.ino));
        if (inl) {
          return Status::Unavailable("pnfs layout",
                                     "the file's bytes are in the database");
        }
        const std::vector<SqlValue> p = {S(layout.ino), S(layout.device),
                                         S(layout.stripe_unit)};
        NS_RETURN_IF_ERROR(
            t.QueryValues("INSERT INTO pnfs_layouts (ino, device, "
                          "stripe_unit) VALUES ($1, $2, $3) ON CONFLICT "
                          "(ino) DO NOTHING",
                          p)
                .status());
        NS_ASSIGN_OR_RETURN(std::optional<PnfsLayout> l,
                            SelectLayout(t, layout.ino));
        if (!l) return Status::Corruption("pnfs", "layout");
        return *l;
      });
}

Result<std::vector<PnfsWork>> PnfsRegistry::ListWork() {
  return InTransaction(ns_->backend(), false, [&](Transaction& t) {
    return SelectWork(t, "ORDER BY id", {});
  });
}

Result<std::vector<PnfsWork>> PnfsRegistry::WorkForFile(InodeId fileid) {
  return InTransaction(ns_->backend(), false, [&](Transaction& t) {
    return SelectWork(t, "WHERE fileid = $1 ORDER BY id", {S(fileid)});
  });
}

Result<uint64_t> PnfsRegistry::QueueWork(uint64_t data_server, PnfsWorkOp op,
                                         InodeId fileid, uint64_t size,
                                         TimeNs now) {
  return InTransaction(
      ns_->backend(), true, [&](Transaction& t) -> Result<uint64_t> {
        const std::vector<SqlValue> p = {S(data_server),
                                         static_cast<int64_t>(op), S(fileid),
                                         S(size), int64_t{now}};
        NS_ASSIGN_OR_RETURN(
            auto rows,
            t.QueryValues("INSERT INTO pnfs_work (ds, op, fileid, size, "
                          "queued_ns) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                          p));
        if (rows.size() != 1) return Status::Corruption("pnfs", "queue");
        NS_ASSIGN_OR_RETURN(int64_t id, Int(rows[0].at(0)));
        return static_cast<uint64_t>(id);
      });
}

namespace {

constexpr char kRunColumns[] =
    "ds, work_id, requested_ns, started_ns, ds_started_ns, finished_ns, files";

// The N integer columns of a row.
template <size_t N>
Result<std::array<int64_t, N>> Ints(const SqlRow& r, std::string_view what) {
  if (r.size() != N) return Status::Corruption("pnfs", std::string(what));
  std::array<int64_t, N> v{};
  for (size_t i = 0; i < N; ++i) {
    NS_ASSIGN_OR_RETURN(v[i], Int(r[i]));
  }
  return v;
}

Result<PnfsInventoryRun> RunFromRow(const SqlRow& r) {
  NS_ASSIGN_OR_RETURN(auto v, Ints<7>(r, "inventory run row"));
  return PnfsInventoryRun{static_cast<uint64_t>(v[0]),
                          static_cast<uint64_t>(v[1]),
                          v[2],
                          v[3],
                          v[4],
                          v[5],
                          static_cast<uint64_t>(v[6])};
}

// Ties an NSCTL_INVENTORY caller (it proved it holds the key) to its row,
// and counts the page as a heartbeat: a data server scanning a large disk
// sends no heartbeat until it is done, and must not be declared down.
Status InventoryHeartbeat(Transaction& t, uint64_t id, std::string_view uuid,
                          TimeNs now) {
  const std::vector<SqlValue> p = {S(id), std::string(uuid), int64_t{now}};
  NS_ASSIGN_OR_RETURN(
      auto rows,
      t.QueryValues("UPDATE pnfs_data_servers SET heartbeat_ns = $3, state = "
                    "1 WHERE id = $1 AND uuid = $2 RETURNING id",
                    p));
  if (rows.empty()) {
    return Status::NotFound("pnfs data server", std::to_string(id));
  }
  return Status::Ok();
}

// Rows per multi-row INSERT of inventory entries: 4 parameters each, well
// under both dialects' parameter limits.
constexpr size_t kInsertBatch = 250;

// The layout of `fileid` names data server `ds` (SQL condition over v.ds,
// v.fileid), or its removal from `ds` is queued.
constexpr char kReferenced[] =
    "(EXISTS (SELECT 1 FROM pnfs_layouts l JOIN pnfs_device_members m ON "
    "m.device = l.device WHERE l.ino = v.fileid AND m.ds = v.ds) OR EXISTS "
    "(SELECT 1 FROM pnfs_work w WHERE w.ds = v.ds AND w.fileid = v.fileid "
    "AND w.op = 1))";

}  // namespace

Result<uint64_t> PnfsRegistry::RequestInventory(uint64_t data_server,
                                                TimeNs now) {
  return InTransaction(
      ns_->backend(), true, [&](Transaction& t) -> Result<uint64_t> {
        const std::vector<SqlValue> d = {S(data_server)};
        NS_ASSIGN_OR_RETURN(
            auto ds, t.QueryValues("SELECT id FROM pnfs_data_servers WHERE "
                                   "id = $1",
                                   d));
        if (ds.empty()) {
          return Status::NotFound("pnfs data server",
                                  std::to_string(data_server));
        }
        // One request in force per data server: an older one still queued
        // would only scan again for nothing.
        NS_RETURN_IF_ERROR(
            t.QueryValues("DELETE FROM pnfs_work WHERE ds = $1 AND op = 3", d)
                .status());
        NS_RETURN_IF_ERROR(
            t.QueryValues("DELETE FROM pnfs_inventory WHERE ds = $1", d)
                .status());
        const std::vector<SqlValue> q = {S(data_server), int64_t{now}};
        NS_ASSIGN_OR_RETURN(
            auto rows,
            t.QueryValues("INSERT INTO pnfs_work (ds, op, fileid, size, "
                          "queued_ns) VALUES ($1, 3, 0, 0, $2) RETURNING id",
                          q));
        if (rows.size() != 1) return Status::Corruption("pnfs", "queue");
        NS_ASSIGN_OR_RETURN(int64_t work, Int(rows[0].at(0)));
        const std::vector<SqlValue> r = {S(data_server), work, int64_t{now}};
        NS_RETURN_IF_ERROR(
            t.QueryValues(
                 "INSERT INTO pnfs_inventory_runs (ds, work_id, requested_ns, "
                 "started_ns, ds_started_ns, finished_ns, next_page, files) "
                 "VALUES ($1, $2, $3, 0, 0, 0, 0, 0) ON CONFLICT (ds) DO "
                 "UPDATE SET work_id = excluded.work_id, requested_ns = "
                 "excluded.requested_ns, started_ns = 0, ds_started_ns = 0, "
                 "finished_ns = 0, next_page = 0, files = 0",
                 r)
                .status());
        return static_cast<uint64_t>(work);
      });
}

Status PnfsRegistry::InventoryPage(uint64_t id, std::string_view uuid,
                                   uint64_t work_id, uint32_t page,
                                   TimeNs ds_started_ns, bool eof,
                                   std::span<const PnfsStripe> stripes,
                                   TimeNs now) {
  NS_RETURN_IF_ERROR(CheckUuid(uuid));
  // One row per stripe file: PostgreSQL refuses a multi-row upsert that
  // names a key twice, and a data server lists each file once anyway.
  std::vector<PnfsStripe> rows(stripes.begin(), stripes.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& x, const auto& y) { return x.fileid < y.fileid; });
  rows.erase(std::unique(rows.begin(), rows.end(),
                         [](const auto& x, const auto& y) {
                           return x.fileid == y.fileid;
                         }),
             rows.end());
  stripes = rows;
  return InTransaction(
             ns_->backend(), true,
             [&](Transaction& t) -> Result<bool> {
               NS_RETURN_IF_ERROR(InventoryHeartbeat(t, id, uuid, now));
               const std::vector<SqlValue> d = {S(id)};
               NS_ASSIGN_OR_RETURN(
                   auto runs,
                   t.QueryValues("SELECT work_id, next_page FROM "
                                 "pnfs_inventory_runs WHERE ds = $1",
                                 d));
               if (runs.empty()) {
                 return Status::Invalid("pnfs inventory", "none requested");
               }
               NS_ASSIGN_OR_RETURN(int64_t want_work, Int(runs[0].at(0)));
               NS_ASSIGN_OR_RETURN(int64_t want_page, Int(runs[0].at(1)));
               if (static_cast<uint64_t>(want_work) != work_id) {
                 return Status::Invalid("pnfs inventory",
                                        "work " + std::to_string(work_id) +
                                            " is not the request in force");
               }
               // Page 0 may come again: the data server starts over after a
               // failed page.
               if (page != 0 && page != want_page) {
                 return Status::Invalid(
                     "pnfs inventory",
                     "page " + std::to_string(page) + ", expected " +
                         std::to_string(want_page));
               }
               if (page == 0) {
                 NS_RETURN_IF_ERROR(
                     t.QueryValues("DELETE FROM pnfs_inventory WHERE ds = $1",
                                   d)
                         .status());
                 const std::vector<SqlValue> p = {S(id), int64_t{now},
                                                  int64_t{ds_started_ns}};
                 NS_RETURN_IF_ERROR(
                     t.QueryValues("UPDATE pnfs_inventory_runs SET "
                                   "started_ns = $2, ds_started_ns = $3, "
                                   "finished_ns = 0, next_page = 0, files = 0 "
                                   "WHERE ds = $1",
                                   p)
                         .status());
               }
               for (size_t at = 0; at < stripes.size(); at += kInsertBatch) {
                 const size_t n = std::min(kInsertBatch, stripes.size() - at);
                 std::string sql =
                     "INSERT INTO pnfs_inventory (ds, fileid, size, mtime_ns) "
                     "VALUES ";
                 std::vector<SqlValue> p;
                 p.reserve(4 * n);
                 for (size_t i = 0; i < n; ++i) {
                   const PnfsStripe& e = stripes[at + i];
                   const size_t b = 4 * i;
                   sql += (i ? ", ($" : "($") + std::to_string(b + 1) + ", $" +
                          std::to_string(b + 2) + ", $" +
                          std::to_string(b + 3) + ", $" +
                          std::to_string(b + 4) + ")";
                   p.insert(p.end(), {S(id), S(e.fileid), S(e.size),
                                      int64_t{e.mtime_ns}});
                 }
                 sql +=
                     " ON CONFLICT (ds, fileid) DO UPDATE SET size = "
                     "excluded.size, mtime_ns = excluded.mtime_ns";
                 NS_RETURN_IF_ERROR(t.QueryValues(sql, p).status());
               }
               const std::vector<SqlValue> u = {
                   S(id), static_cast<int64_t>(page) + 1,
                   static_cast<int64_t>(stripes.size()),
                   eof ? int64_t{now} : int64_t{0}};
               NS_RETURN_IF_ERROR(
                   t.QueryValues("UPDATE pnfs_inventory_runs SET next_page = "
                                 "$2, files = files + $3, finished_ns = $4 "
                                 "WHERE ds = $1",
                                 u)
                       .status());
               return true;
             })
      .status();
}

Result<std::vector<PnfsInventoryRun>> PnfsRegistry::ListInventoryRuns() {
  return InTransaction(
      ns_->backend(), false,
      [&](Transaction& t) -> Result<std::vector<PnfsInventoryRun>> {
        NS_ASSIGN_OR_RETURN(
            auto rows, t.QueryValues(std::string("SELECT ") + kRunColumns +
                                         " FROM pnfs_inventory_runs ORDER "
                                         "BY ds",
                                     {}));
        std::vector<PnfsInventoryRun> out;
        for (const SqlRow& r : rows) {
          NS_ASSIGN_OR_RETURN(PnfsInventoryRun run, RunFromRow(r));
          out.push_back(run);
        }
        return out;
      });
}

Result<std::vector<PnfsDarkStripe>> PnfsRegistry::DarkStripes(
    uint64_t after_ds, InodeId after_fileid, size_t limit) {
  return InTransaction(
      ns_->backend(), false,
      [&](Transaction& t) -> Result<std::vector<PnfsDarkStripe>> {
        const std::vector<SqlValue> p = {S(after_ds), S(after_fileid),
                                         static_cast<int64_t>(limit)};
        NS_ASSIGN_OR_RETURN(
            auto rows,
            t.QueryValues(
                std::string(
                    "SELECT v.ds, v.fileid, v.size, v.mtime_ns, CASE WHEN "
                    "v.mtime_ns < r.ds_started_ns THEN 1 ELSE 0 END FROM "
                    "pnfs_inventory v JOIN pnfs_inventory_runs r ON r.ds = "
                    "v.ds AND r.finished_ns <> 0 WHERE (v.ds > $1 OR (v.ds = "
                    "$1 AND v.fileid > $2)) AND NOT ") +
                    kReferenced + " ORDER BY v.ds, v.fileid LIMIT $3",
                p));
        std::vector<PnfsDarkStripe> out;
        for (const SqlRow& r : rows) {
          NS_ASSIGN_OR_RETURN(auto v, Ints<5>(r, "dark stripe row"));
          out.push_back({static_cast<uint64_t>(v[0]),
                         static_cast<InodeId>(v[1]),
                         static_cast<uint64_t>(v[2]), v[3], v[4] != 0});
        }
        return out;
      });
}

Result<std::vector<PnfsMissingStripe>> PnfsRegistry::MissingStripes(
    InodeId after_ino, uint32_t after_index, size_t limit) {
  return InTransaction(
      ns_->backend(), false,
      [&](Transaction& t) -> Result<std::vector<PnfsMissingStripe>> {
        const std::vector<SqlValue> p = {S(after_ino),
                                         static_cast<int64_t>(after_index),
                                         static_cast<int64_t>(limit)};
        NS_ASSIGN_OR_RETURN(
            auto rows,
            t.QueryValues(
                "SELECT l.ino, m.ds, m.pos, i.size FROM pnfs_layouts l JOIN "
                "pnfs_device_members m ON m.device = l.device JOIN inodes i "
                "ON i.ino = l.ino JOIN pnfs_inventory_runs r ON r.ds = m.ds "
                "AND r.finished_ns <> 0 WHERE (l.ino > $1 OR (l.ino = $1 AND "
                "m.pos > $2)) AND i.size > m.pos * l.stripe_unit AND "
                "i.mtime_ns < r.started_ns AND NOT EXISTS (SELECT 1 FROM "
                "pnfs_inventory v WHERE v.ds = m.ds AND v.fileid = l.ino) "
                "ORDER BY l.ino, m.pos LIMIT $3",
                p));
        std::vector<PnfsMissingStripe> out;
        for (const SqlRow& r : rows) {
          NS_ASSIGN_OR_RETURN(auto v, Ints<4>(r, "missing stripe row"));
          out.push_back({static_cast<InodeId>(v[0]),
                         static_cast<uint64_t>(v[1]),
                         static_cast<uint32_t>(v[2]),
                         static_cast<uint64_t>(v[3])});
        }
        return out;
      });
}

Result<bool> PnfsRegistry::QueueDarkRemoval(uint64_t data_server,
                                            InodeId fileid, TimeNs now) {
  return InTransaction(
      ns_->backend(), true, [&](Transaction& t) -> Result<bool> {
        const std::vector<SqlValue> p = {S(data_server), S(fileid),
                                         int64_t{now}};
        // The check and the insert in one statement: a layout made since
        // the report keeps its stripe file.
        NS_ASSIGN_OR_RETURN(
            auto rows,
            t.QueryValues(
                std::string(
                    "INSERT INTO pnfs_work (ds, op, fileid, size, queued_ns) "
                    "SELECT v.ds, 1, v.fileid, 0, CAST($3 AS bigint) FROM "
                    "(SELECT CAST($1 AS bigint) AS ds, CAST($2 AS bigint) AS "
                    "fileid) v WHERE NOT ") +
                    kReferenced + " RETURNING id",
                p));
        return !rows.empty();
      });
}

Result<PnfsCheckReport> PnfsCheck(PnfsRegistry& registry,
                                  const PnfsCheckOptions& options,
                                  TimeNs now) {
  PnfsCheckReport report;
  NS_ASSIGN_OR_RETURN(std::vector<PnfsInventoryRun> runs,
                      registry.ListInventoryRuns());
  NS_ASSIGN_OR_RETURN(std::vector<DataServer> servers,
                      registry.ListDataServers());
  for (const DataServer& d : servers) {
    auto it = std::find_if(runs.begin(), runs.end(), [&](const auto& r) {
      return r.data_server == d.id;
    });
    if (it != runs.end() && it->complete()) {
      report.inventoried.push_back(*it);
    } else {
      report.not_inventoried.push_back(d);
    }
  }
  // Pages of the database, so memory stays at max_findings plus one page.
  constexpr size_t kPage = 1000;
  uint64_t after_ds = 0;
  InodeId after_fileid = 0;
  for (;;) {
    NS_ASSIGN_OR_RETURN(auto page,
                        registry.DarkStripes(after_ds, after_fileid, kPage));
    for (const PnfsDarkStripe& d : page) {
      if (options.repair && d.before_inventory) {
        NS_ASSIGN_OR_RETURN(bool queued, registry.QueueDarkRemoval(
                                             d.data_server, d.fileid, now));
        if (queued) ++report.removals_queued;
      }
      if (report.dark.size() < options.max_findings) {
        report.dark.push_back(d);
      } else {
        report.dark_truncated = true;
      }
    }
    if (page.size() < kPage) break;
    after_ds = page.back().data_server;
    after_fileid = page.back().fileid;
  }
  InodeId after_ino = 0;
  uint32_t after_index = 0;
  for (;;) {
    NS_ASSIGN_OR_RETURN(auto page, registry.MissingStripes(
                                       after_ino, after_index, kPage));
    for (const PnfsMissingStripe& m : page) {
      if (report.missing.size() < options.max_findings) {
        report.missing.push_back(m);
      } else {
        report.missing_truncated = true;
      }
    }
    if (page.size() < kPage || report.missing_truncated) break;
    after_ino = page.back().ino;
    after_index = page.back().index;
  }
  return report;
}

}  // namespace ns
