// The pNFS registry (pnfs.h) over Transaction::QueryValues: the tables are
// small and off the POSIX hot path, and the SQL below is the same on both
// dialects (INSERT ... ON CONFLICT ... RETURNING exists in SQLite >= 3.35
// and PostgreSQL).

#include "libnamespace/include/namespace/pnfs.h"

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
  if (op != 1 && op != 2) return Status::Corruption("pnfs", "work op");
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

}  // namespace ns
