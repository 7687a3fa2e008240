#include "nfs41d/metrics.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "nfs41d/compound.h"
#include "nfs41d/status_map.h"
#include "rpc/log.h"
#include "rpc/net.h"
#include "rpc/server.h"

namespace nfs41d {
namespace {

// Upper bounds in seconds: 10us .. 5s.
constexpr std::array<double, Metrics::kBuckets> kBounds = {
    0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
    0.005,   0.01,    0.025,  0.05,    0.1,    0.5,   5.0};

}  // namespace

int Metrics::StatusSlot(uint32_t s) {
  if (s < 100) return static_cast<int>(s);
  if (s >= 10000 && s < 10100) return static_cast<int>(s - 10000 + 100);
  return -1;
}

void Metrics::OpDone(uint32_t opnum, uint32_t status, uint64_t nanos) {
  if (opnum >= kMaxOp) opnum = 0;  // OP_ILLEGAL and the like: slot 0
  OpStats& o = ops_[opnum];
  o.count.fetch_add(1, std::memory_order_relaxed);
  o.sum_ns.fetch_add(nanos, std::memory_order_relaxed);
  double sec = static_cast<double>(nanos) * 1e-9;
  size_t b = 0;
  while (b < kBuckets && sec > kBounds[b]) ++b;
  if (b < kBuckets) o.buckets[b].fetch_add(1, std::memory_order_relaxed);
  if (status != 0) {
    int slot = StatusSlot(status);
    if (slot >= 0) {
      errors_[opnum * kStatusSlots + slot].fetch_add(
          1, std::memory_order_relaxed);
    }
  }
}

uint64_t Metrics::op_count(uint32_t opnum) const {
  return opnum < kMaxOp ? ops_[opnum].count.load() : 0;
}

uint64_t Metrics::error_count(uint32_t opnum, uint32_t status) const {
  int slot = StatusSlot(status);
  if (opnum >= kMaxOp || slot < 0) return 0;
  return errors_[opnum * kStatusSlots + slot].load();
}

std::string Metrics::Render() const {
  std::string out;
  out.reserve(16384);
  auto line = [&](const std::string& s) {
    out += s;
    out += '\n';
  };
  auto opname = [](uint32_t op) {
    return op == 0 ? std::string("ILLEGAL") : std::string(OpName(op));
  };
  line("# HELP nfs41d_ops_total NFSv4.1 operations processed, by operation.");
  line("# TYPE nfs41d_ops_total counter");
  for (uint32_t op = 0; op < kMaxOp; ++op) {
    uint64_t n = ops_[op].count.load(std::memory_order_relaxed);
    if (n) line("nfs41d_ops_total{op=\"" + opname(op) + "\"} " + std::to_string(n));
  }
  line("# HELP nfs41d_op_duration_seconds Time spent in each operation.");
  line("# TYPE nfs41d_op_duration_seconds histogram");
  for (uint32_t op = 0; op < kMaxOp; ++op) {
    const OpStats& o = ops_[op];
    uint64_t n = o.count.load(std::memory_order_relaxed);
    if (!n) continue;
    std::string lbl = "op=\"" + opname(op) + "\"";
    uint64_t cum = 0;
    for (size_t b = 0; b < kBuckets; ++b) {
      cum += o.buckets[b].load(std::memory_order_relaxed);
      char le[32];
      std::snprintf(le, sizeof le, "%g", kBounds[b]);
      line("nfs41d_op_duration_seconds_bucket{" + lbl + ",le=\"" + le +
           "\"} " + std::to_string(cum));
    }
    line("nfs41d_op_duration_seconds_bucket{" + lbl + ",le=\"+Inf\"} " +
         std::to_string(n));
    char sum[64];
    std::snprintf(sum, sizeof sum, "%.9f",
                  static_cast<double>(o.sum_ns.load()) * 1e-9);
    line("nfs41d_op_duration_seconds_sum{" + lbl + "} " + sum);
    line("nfs41d_op_duration_seconds_count{" + lbl + "} " + std::to_string(n));
  }
  line("# HELP nfs41d_op_errors_total Operations that failed, by nfsstat4.");
  line("# TYPE nfs41d_op_errors_total counter");
  for (uint32_t op = 0; op < kMaxOp; ++op) {
    for (size_t slot = 0; slot < kStatusSlots; ++slot) {
      uint64_t n = errors_[op * kStatusSlots + slot].load(
          std::memory_order_relaxed);
      if (!n) continue;
      uint32_t st = slot < 100 ? static_cast<uint32_t>(slot)
                               : static_cast<uint32_t>(slot - 100 + 10000);
      line("nfs41d_op_errors_total{op=\"" + opname(op) + "\",status=\"" +
           NfsStatName(static_cast<nfsstat4>(st)) + "\"} " +
           std::to_string(n));
    }
  }
  line("# HELP nfs41d_compounds_total COMPOUND procedures processed.");
  line("# TYPE nfs41d_compounds_total counter");
  line("nfs41d_compounds_total " + std::to_string(compounds_.load()));
  line("# HELP nfs41d_inline_compounds_total COMPOUNDs served on the "
       "event-loop thread.");
  line("# TYPE nfs41d_inline_compounds_total counter");
  line("nfs41d_inline_compounds_total " +
       std::to_string(inline_compounds_.load()));
  line("# HELP nfs41d_rpc_connections Open RPC connections.");
  line("# TYPE nfs41d_rpc_connections gauge");
  line("nfs41d_rpc_connections " + std::to_string(connections_.load()));
  line("# HELP nfs41d_export_reloads_total Export reloads (SIGHUP).");
  line("# TYPE nfs41d_export_reloads_total counter");
  line("nfs41d_export_reloads_total{result=\"ok\"} " +
       std::to_string(reloads_ok_.load()));
  line("nfs41d_export_reloads_total{result=\"failed\"} " +
       std::to_string(reloads_failed_.load()));
  if (extra) extra(&out);
  return out;
}

// ---------------------------------------------------------- MetricsServer

MetricsServer::~MetricsServer() { Stop(); }

std::string MetricsServer::Start(const std::string& host, uint16_t port) {
  rpc::Result<int> fd = rpc::ListenTcp(host, port);
  if (!fd.ok()) return "metrics: " + fd.status().ToString();
  listen_fd_ = *fd;
  rpc::Result<uint16_t> p = rpc::LocalPort(listen_fd_);
  port_ = p.ok() ? *p : port;
  if (pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
    return std::string("metrics: pipe: ") + std::strerror(errno);
  }
  thread_ = std::thread([this] { Run(); });
  return "";
}

void MetricsServer::Stop() {
  if (thread_.joinable()) {
    char c = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_[1], &c, 1);
    thread_.join();
  }
  for (int* fd : {&listen_fd_, &wake_[0], &wake_[1]}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

void MetricsServer::Run() {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    int rc = ::poll(p, 2, -1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0 || (p[1].revents & POLLIN)) return;
    if (p[0].revents & POLLIN) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        Serve(fd);
        ::close(fd);
      }
    }
  }
}

void MetricsServer::Serve(int fd) {
  // The request head, read for at most 2 s and 8 KiB: a scraper sends a few
  // hundred bytes; anything slower or larger is not one.
  std::string req;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (req.find("\r\n\r\n") == std::string::npos && req.size() < 8192) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return;
    char buf[2048];
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) return;
    req.append(buf, static_cast<size_t>(n));
  }
  std::string status = "200 OK", body, type = "text/plain; version=0.0.4";
  size_t eol = req.find("\r\n");
  std::string first = eol == std::string::npos ? "" : req.substr(0, eol);
  if (first.rfind("GET ", 0) != 0 || first.find(" HTTP/1.") == std::string::npos) {
    status = "400 Bad Request";
    body = "bad request\n";
    type = "text/plain";
  } else {
    std::string path = first.substr(4, first.find(' ', 4) - 4);
    if (path == "/metrics" || path.rfind("/metrics?", 0) == 0) {
      body = metrics_->Render();
    } else {
      status = "404 Not Found";
      body = "try /metrics\n";
      type = "text/plain";
    }
  }
  std::string resp = "HTTP/1.1 " + status + "\r\nContent-Type: " + type +
                     "\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\nConnection: close\r\n\r\n" + body;
  size_t off = 0;
  while (off < resp.size()) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 2000) <= 0) return;
    ssize_t n = ::send(fd, resp.data() + off, resp.size() - off,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n <= 0 && errno != EAGAIN) return;
    if (n > 0) off += static_cast<size_t>(n);
  }
}

std::string StartRpcAndMetrics(std::unique_ptr<rpc::Server>& rpc,
                               const std::string& host, uint16_t port,
                               std::unique_ptr<MetricsServer>& metrics_server,
                               const Metrics* metrics,
                               const std::string& metrics_host,
                               uint16_t metrics_port, std::string_view who) {
  if (rpc::Status s = rpc->Start(); !s.ok()) {
    rpc.reset();
    return "cannot listen on " + host + ":" + std::to_string(port) + ": " +
           s.ToString();
  }
  if (metrics_host.empty()) return "";
  metrics_server = std::make_unique<MetricsServer>(metrics);
  if (std::string e = metrics_server->Start(metrics_host, metrics_port);
      !e.empty()) {
    rpc->Stop();
    rpc.reset();
    metrics_server.reset();
    return e;
  }
  rpc::log::Info("{} metrics on http://{}:{}/metrics", who, metrics_host,
                 metrics_server->port());
  return "";
}

}  // namespace nfs41d
