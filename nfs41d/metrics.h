#pragma once

// Prometheus metrics for nfs41d (text exposition format 0.0.4), served on
// --metrics HOST:PORT (or `metrics = "HOST:PORT"` in the config) at
// /metrics by a small HTTP/1.1 server: Debian 12 has no prometheus-cpp
// package, and the format is a few lines of text.
//
//   nfs41d_ops_total{op="GETATTR"}                       counter
//   nfs41d_op_duration_seconds_bucket{op=..,le=..}      histogram (+_sum, _count)
//   nfs41d_op_errors_total{op="LOOKUP",status="NFS4ERR_NOENT"}  counter
//   nfs41d_compounds_total                              counter
//   nfs41d_inline_compounds_total (on the event-loop thread) counter
//   nfs41d_sessions, nfs41d_clients, nfs41d_rpc_connections      gauges
//   nfs41d_attr_cache_{hits,misses,invalidations,evictions}_total, _entries
//   nfs41d_dir_cache_{hits,misses}_total, _entries
//   nfs41d_export_reloads_total{result="ok"|"failed"}   counter
//
// Hot path cost: OpDone is a few relaxed atomic increments on cache lines
// owned by the op (no lock, no allocation).
//
// Thread safety: every method may be called from any thread.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

namespace rpc {
class Server;
}  // namespace rpc

namespace nfs41d {

class Metrics {
 public:
  static constexpr size_t kMaxOp = 64;        // op numbers 0..63
  static constexpr size_t kBuckets = 14;      // + Inf
  static constexpr size_t kStatusSlots = 200; // nfsstat4 0..99, 10000..10099

  // One finished operation: its number, status and duration.
  void OpDone(uint32_t opnum, uint32_t status, uint64_t nanos);
  void CompoundDone() { compounds_.fetch_add(1, std::memory_order_relaxed); }
  // A COMPOUND served on the event-loop thread (compound.h).
  void InlineCompoundDone() {
    inline_compounds_.fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t inline_compounds() const { return inline_compounds_.load(); }
  void ConnectionOpened() { connections_.fetch_add(1); }
  void ConnectionClosed() { connections_.fetch_sub(1); }
  void ReloadDone(bool ok) { (ok ? reloads_ok_ : reloads_failed_).fetch_add(1); }

  // Gauges and counters read when rendering (sessions, attribute cache).
  std::function<void(std::string*)> extra;

  // The whole exposition.
  std::string Render() const;

  uint64_t op_count(uint32_t opnum) const;
  uint64_t error_count(uint32_t opnum, uint32_t status) const;

 private:
  struct alignas(64) OpStats {
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> sum_ns{0};
    std::array<std::atomic<uint64_t>, kBuckets> buckets{};
  };
  static int StatusSlot(uint32_t status);
  std::array<OpStats, kMaxOp> ops_;
  // errors_[op * kStatusSlots + slot]
  std::array<std::atomic<uint64_t>, kMaxOp * kStatusSlots> errors_{};
  std::atomic<uint64_t> compounds_{0};
  std::atomic<uint64_t> inline_compounds_{0};
  std::atomic<int64_t> connections_{0};
  std::atomic<uint64_t> reloads_ok_{0}, reloads_failed_{0};
};

// GET /metrics over HTTP/1.1 on one thread (one request per connection,
// Connection: close). Anything else is 404; malformed requests 400.
class MetricsServer {
 public:
  explicit MetricsServer(const Metrics* metrics) : metrics_(metrics) {}
  ~MetricsServer();  // Stop()
  // Binds host:port (0: a free port). "" or a message.
  std::string Start(const std::string& host, uint16_t port);
  void Stop();
  uint16_t port() const { return port_; }

 private:
  void Run();
  void Serve(int fd);
  const Metrics* metrics_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  uint16_t port_ = 0;
  std::thread thread_;
};

// A daemon's start (nfs41d, dataserver): starts `rpc`, then, when
// `metrics_host` is set, a MetricsServer for `metrics` into
// `metrics_server` (logged as "<who> metrics on http://..."). On any failure
// neither is left running and both pointers are reset. Returns "" or a
// message naming what failed.
std::string StartRpcAndMetrics(std::unique_ptr<rpc::Server>& rpc,
                               const std::string& host, uint16_t port,
                               std::unique_ptr<MetricsServer>& metrics_server,
                               const Metrics* metrics,
                               const std::string& metrics_host,
                               uint16_t metrics_port, std::string_view who);

}  // namespace nfs41d
