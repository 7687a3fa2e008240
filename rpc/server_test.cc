// End-to-end tests of the RPC server, client and backchannel over real TCP
// connections on 127.0.0.1 (ephemeral ports, nothing leaves the host).

#include "rpc/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <condition_variable>
#include <future>
#include <mutex>
#include <random>
#include <map>
#include <set>
#include <stdexcept>
#include <thread>

#include "rpc/client.h"
#include "rpc/log.h"
#include "rpc/net.h"
#include "rpc/record.h"
#include "rpc/xdr_codec.h"

namespace rpc {
namespace {

using namespace std::chrono_literals;

constexpr uint32_t kToyProg = 0x20000100;
constexpr uint32_t kCbProg = 0x40000001;
constexpr uint32_t kHeldProg = 0x20000101;

std::vector<uint8_t> U32(uint32_t v) {
  XdrEncoder e;
  e.PutUint32(v);
  return e.Take();
}

uint32_t AsU32(std::span<const uint8_t> bytes) {
  XdrDecoder d(bytes);
  return d.GetUint32().value_or(0xffffffff);
}

std::vector<uint8_t> CallRecord(uint32_t xid, uint32_t prog, uint32_t vers,
                                uint32_t proc, const Credential& cred,
                                const std::vector<uint8_t>& args = {}) {
  XdrEncoder enc;
  EXPECT_TRUE(EncodeCallHeader(enc, xid, prog, vers, proc, cred).ok());
  std::vector<uint8_t> rec = enc.Take();
  rec.insert(rec.end(), args.begin(), args.end());
  return rec;
}

std::vector<uint8_t> Cat(std::vector<uint8_t> a,
                         const std::vector<uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A plain blocking socket for byte streams no well-behaved client would send.
class RawConn {
 public:
  explicit RawConn(uint16_t port) {
    Result<int> fd = ConnectTcp("127.0.0.1", port, 5s);
    EXPECT_TRUE(fd.ok()) << fd.status().ToString();
    fd_ = fd.ok() ? *fd : -1;
  }
  ~RawConn() {
    if (fd_ >= 0) ::close(fd_);
  }

  void Send(std::span<const uint8_t> bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, 5000);
      ssize_t n =
          ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) return;  // the server may have closed us; tests check that
      done += static_cast<size_t>(n);
    }
  }

  void ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }

  // The next complete record, or nullopt on EOF, error or timeout.
  std::optional<std::vector<uint8_t>> ReadRecord(
      std::chrono::milliseconds timeout = 5000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto r = reader_.Pop()) return r;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      uint8_t buf[65536];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) return std::nullopt;
      if (!reader_.Feed({buf, static_cast<size_t>(n)}).ok())
        return std::nullopt;
    }
  }

  // True once the server has closed the connection (EOF or reset).
  bool WaitClosed(std::chrono::milliseconds timeout = 5000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      uint8_t buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0) return true;
      if (n < 0 && errno != EAGAIN && errno != EINTR) return true;
    }
    return false;
  }

 private:
  int fd_ = -1;
  RecordReader reader_{1u << 24};
};

// Whether this kernel and process let the loop use io_uring.
bool UringUsable() {
  static const bool usable = [] {
    WorkerPool pool(1, "probe");
    Registry registry;
    EventLoop loop(EndpointOptions{}, &registry, &pool);
    return loop.backend() == Backend::kIoUring;
  }();
  return usable;
}

// Every test runs against both event-loop backends.
class ServerTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    // io_uring is the default backend: where the kernel or a seccomp
    // profile refuses it, that is a failure to see, not a test to skip
    // (the epoll instances still test the fallback).
    if (GetParam() == Backend::kIoUring) {
      ASSERT_TRUE(UringUsable())
          << "io_uring unusable here (io_uring_disabled sysctl, seccomp, or "
             "a kernel before 5.19): the io_uring backend cannot be tested";
    }
    log::SetLevel(log::Level::kWarning);
    log::SetSink([this](log::Level level, std::string_view line) {
      std::lock_guard<std::mutex> lock(mu_);
      if (level >= log::Level::kWarning) logs_.emplace_back(line);
    });
  }
  void TearDown() override {
    if (server_) server_->Stop();
    log::SetSink(nullptr);
    log::SetLevel(log::Level::kInfo);
  }

  void StartServer(ServerOptions opts = {}) {
    opts.host = "127.0.0.1";
    opts.port = 0;
    opts.endpoint.backend = GetParam();
    opts.on_worker_start = [this](size_t) { ++workers_started_; };
    opts.endpoint.on_close = [this](const std::shared_ptr<Connection>& c) {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ids_.insert(c->id());
      cv_.notify_all();
    };
    server_ = std::make_unique<Server>(opts);
    server_->Register(ToyProgram());
    Status st = server_->Start();
    ASSERT_TRUE(st.ok()) << st.ToString();
    ASSERT_NE(server_->port(), 0);
  }

  std::unique_ptr<Client> Connect(ClientOptions opts = {}) {
    opts.endpoint.backend = GetParam();
    Result<std::unique_ptr<Client>> c =
        Client::Connect("127.0.0.1", server_->port(), std::move(opts));
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  }

  CallOptions Opts(uint32_t proc, uint32_t vers = 1) {
    CallOptions o;
    o.prog = kToyProg;
    o.vers = vers;
    o.proc = proc;
    o.timeout = 10s;
    return o;
  }

  // The toy program: 0 NULL, 1 echo, 2 sleep(ms) and echo ms, 3 whoami,
  // 4 strict "one uint32 -> +1", 5 call the caller back, 6 worker index,
  // 7 record size and peer port, 8 inline for even arguments (v -> v + 1000
  // on the event-loop thread, v -> v on a worker; 99 throws inline).
  Program ToyProgram() {
    return Program(kToyProg, 1, 2)
        .WithNull()
        .On(1,
            [](const CallContext&, std::span<const uint8_t> args) {
              return Reply::Success({args.begin(), args.end()});
            })
        .On(2,
            [this](const CallContext&, std::span<const uint8_t> args) {
              uint32_t ms = AsU32(args);
              int now = ++concurrent_;
              int seen = max_concurrent_.load();
              while (now > seen &&
                     !max_concurrent_.compare_exchange_weak(seen, now)) {
              }
              std::this_thread::sleep_for(std::chrono::milliseconds(ms));
              --concurrent_;
              return Reply::Success(U32(ms));
            })
        .On(3,
            [](const CallContext& ctx, std::span<const uint8_t>) {
              XdrEncoder e;
              e.PutUint32(ctx.cred.flavor);
              if (ctx.cred.sys) {
                e.PutUint32(ctx.cred.sys->uid);
                e.PutUint32(ctx.cred.sys->gid);
                e.PutUint32(static_cast<uint32_t>(ctx.cred.sys->gids.size()));
                for (uint32_t g : ctx.cred.sys->gids) e.PutUint32(g);
                e.PutString(ctx.cred.sys->machine_name);
              }
              return Reply::Success(e.Take());
            })
        .On(4,
            [](const CallContext&, std::span<const uint8_t> args) {
              if (args.size() != 4) return Reply::GarbageArgs();
              return Reply::Success(U32(AsU32(args) + 1));
            })
        .On(5,
            [](const CallContext& ctx, std::span<const uint8_t> args) {
              CallOptions o;
              o.prog = kCbProg;
              o.vers = 1;
              o.proc = 1;
              o.timeout = 5s;
              Result<ReplyBody> r =
                  ctx.connection->Call(o, {args.begin(), args.end()});
              if (!r.ok()) return Reply::SystemErr();
              auto res = r->results();
              return Reply::Success({res.begin(), res.end()});
            })
        .On(6,
            [](const CallContext& ctx, std::span<const uint8_t>) {
              return Reply::Success(
                  U32(static_cast<uint32_t>(ctx.worker_index)));
            })
        .On(7, [](const CallContext& ctx, std::span<const uint8_t>) {
          // What a handler knows of the transport: record size, peer port.
          XdrEncoder e;
          e.PutUint32(static_cast<uint32_t>(ctx.record_size));
          const sockaddr_storage& peer = ctx.connection->peer_address();
          e.PutUint32(
              peer.ss_family == AF_INET
                  ? ntohs(reinterpret_cast<const sockaddr_in*>(&peer)->sin_port)
                  : 0);
          return Reply::Success(e.Take());
        })
        .On(8,
            [](const CallContext& ctx, std::span<const uint8_t> args) {
              if (ctx.on_loop_thread) return Reply::SystemErr();
              return Reply::Success(U32(AsU32(args)));
            })
        .OnInline(8, [](const CallContext& ctx, std::span<const uint8_t> args)
                      -> std::optional<Reply> {
          uint32_t v = AsU32(args);
          if (v == 99) throw std::runtime_error("inline handler bug");
          if (v % 2 != 0 || !ctx.on_loop_thread) return std::nullopt;
          return Reply::Success(U32(v + 1000));
        })
        // 9: inline, answers n bytes of the pattern (i & 0xff) (n = arg).
        .OnInline(9, [](const CallContext&, std::span<const uint8_t> args)
                      -> std::optional<Reply> {
          std::vector<uint8_t> out(AsU32(args));
          for (size_t i = 0; i < out.size(); ++i) out[i] = i & 0xff;
          return Reply::Success(std::move(out));
        });
  }

  bool WaitForClose(uint64_t id, std::chrono::milliseconds timeout = 5000ms) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout,
                        [&] { return closed_ids_.count(id) > 0; });
  }

  // Waits a little: the server logs right after it closes the socket.
  bool LogsContain(std::string_view text) {
    for (int i = 0; i < 200; ++i) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (std::any_of(logs_.begin(), logs_.end(), [&](const std::string& l) {
              return l.find(text) != std::string::npos;
            })) {
          return true;
        }
      }
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  std::unique_ptr<Server> server_;
  std::atomic<int> concurrent_{0};
  std::atomic<int> max_concurrent_{0};
  std::atomic<int> workers_started_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<uint64_t> closed_ids_;
  std::vector<std::string> logs_;
};

TEST_P(ServerTest, NullProcedure) {
  StartServer();
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  Result<ReplyBody> r = client->Call(kToyProg, 1, 0, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->results().empty());
  // Version 2 is in the registered range too.
  EXPECT_TRUE(client->Call(kToyProg, 2, 0, {}).ok());
}

TEST_P(ServerTest, WorkersRunStartHooksAndExposeTheirIndex) {
  ServerOptions opts;
  opts.worker_threads = 3;
  StartServer(opts);
  auto client = Connect();
  for (int i = 0; i < 20; ++i) {
    Result<ReplyBody> r = client->Call(kToyProg, 1, 6, {});
    ASSERT_TRUE(r.ok());
    EXPECT_LT(AsU32(r->results()), 3u);
  }
  EXPECT_EQ(workers_started_.load(), 3);
}

TEST_P(ServerTest, HandlersSeeRecordSizeAndPeerAddress) {
  StartServer();
  auto client = Connect();
  Result<ReplyBody> r = client->Call(Opts(7), std::vector<uint8_t>(12, 0));
  ASSERT_TRUE(r.ok());
  XdrDecoder d(r->results());
  // 40-byte header with AUTH_NONE credential and verifier, 12 argument bytes.
  EXPECT_EQ(d.GetUint32(), 52u);
  const sockaddr_storage& mine = client->connection()->local_address();
  ASSERT_EQ(mine.ss_family, AF_INET);
  EXPECT_EQ(d.GetUint32(),
            ntohs(reinterpret_cast<const sockaddr_in*>(&mine)->sin_port));
}

TEST_P(ServerTest, RepliesLeaveInCompletionOrder) {
  StartServer();
  RawConn c(server_->port());
  // A slow call then a fast one, in one write on one connection.
  c.Send(Cat(FrameRecord(CallRecord(100, kToyProg, 1, 2, {}, U32(400))),
             FrameRecord(CallRecord(101, kToyProg, 1, 2, {}, U32(0)))));
  auto first = c.ReadRecord();
  auto second = c.ReadRecord();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(PeekMessage(*first)->xid, 101u);  // the fast one overtook
  EXPECT_EQ(PeekMessage(*second)->xid, 100u);
  Result<size_t> off = DecodeReply(*second);
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(AsU32(std::span<const uint8_t>(*second).subspan(*off)), 400u);
}

// A reply held back with Reply::SendAfter (as nfs41d holds one until its
// commit is on disk) reaches the client only once released, from another
// thread; the worker serves other calls meanwhile. Program::Finally wraps
// every worker handler.
TEST_P(ServerTest, AHeldReplyIsSentWhenReleasedFromAnotherThread) {
  StartServer();
  std::mutex mu;
  std::vector<std::function<void()>> held;
  std::atomic<int> finished{0};
  server_->Register(
      Program(kHeldProg, 1, 1)
          .On(1,
              [](const CallContext&, std::span<const uint8_t> args) {
                return Reply::Success({args.begin(), args.end()});
              })
          .Finally([&](const CallContext&, Reply& reply) {
            ++finished;
            reply.SendAfter([&](std::function<void()> send) {
              std::lock_guard<std::mutex> lock(mu);
              held.push_back(std::move(send));
            });
          }));
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  CallOptions o = Opts(1);
  o.prog = kHeldProg;
  auto pending = std::async(std::launch::async,
                            [&] { return client->Call(o, U32(7)); });
  EXPECT_EQ(pending.wait_for(300ms), std::future_status::timeout)
      << "the held reply was sent";
  EXPECT_TRUE(client->Call(Opts(4), U32(1)).ok());
  std::function<void()> send;
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_EQ(held.size(), 1u);
    send = held.front();
  }
  std::thread([send] { send(); }).join();
  Result<ReplyBody> r = pending.get();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(AsU32(r->results()), 7u);
  EXPECT_EQ(finished.load(), 1);
}

// Inline handlers (Program::OnInline) answer on the event-loop thread; what
// they decline is served by the worker handler as before.
TEST_P(ServerTest, InlineHandlersAnswerOnTheLoopAndDeclineToWorkers) {
  StartServer();
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  const LoopStats before = server_->loop_stats();
  Result<ReplyBody> r = client->Call(Opts(8), U32(4));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(AsU32(r->results()), 1004u);  // inline
  r = client->Call(Opts(8), U32(5));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(AsU32(r->results()), 5u);  // declined: a worker served it
  // An inline handler that throws is a server bug: SYSTEM_ERR, and the
  // connection lives on.
  EXPECT_FALSE(client->Call(Opts(8), U32(99)).ok());
  EXPECT_TRUE(LogsContain("inline handler bug"));
  r = client->Call(Opts(8), U32(6));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(AsU32(r->results()), 1006u);
  // The NULL procedure is answered inline too (WithNull).
  EXPECT_TRUE(client->Call(kToyProg, 1, 0, {}).ok());
  // The loop counted every call, and which it answered itself: all but 5.
  const LoopStats after = server_->loop_stats();
  EXPECT_EQ(after.calls - before.calls, 5u);
  EXPECT_EQ(after.inline_calls - before.inline_calls, 4u);
  // The wake-up of the last call is counted after its reply left.
  EXPECT_GE(after.wakeups - before.wakeups, 4u);
  EXPECT_GT(after.busy_ns, before.busy_ns);
}

TEST_P(ServerTest, InlineRepliesOvertakeWorkersAndInterleave) {
  StartServer();
  RawConn c(server_->port());
  // A slow worker call, then an inline one, in one write: the inline reply
  // leaves first (out of order, matched by xid).
  c.Send(Cat(FrameRecord(CallRecord(200, kToyProg, 1, 2, {}, U32(300))),
             FrameRecord(CallRecord(201, kToyProg, 1, 8, {}, U32(2)))));
  auto first = c.ReadRecord();
  auto second = c.ReadRecord();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(PeekMessage(*first)->xid, 201u);
  EXPECT_EQ(PeekMessage(*second)->xid, 200u);
  // 200 pipelined calls, inline and worker alternating, in one write: every
  // reply comes back once, with its own result.
  std::vector<uint8_t> burst;
  for (uint32_t i = 0; i < 200; ++i) {
    burst = Cat(std::move(burst),
                FrameRecord(CallRecord(1000 + i, kToyProg, 1, 8, {}, U32(i))));
  }
  c.Send(burst);
  std::set<uint32_t> seen;
  for (int i = 0; i < 200; ++i) {
    auto rec = c.ReadRecord();
    ASSERT_TRUE(rec) << "reply " << i << " missing";
    uint32_t xid = PeekMessage(*rec)->xid;
    Result<size_t> off = DecodeReply(*rec);
    uint32_t v = xid - 1000;
    EXPECT_TRUE(seen.insert(xid).second) << "xid " << xid << " twice";
    if (v == 99) {  // the inline handler throws: SYSTEM_ERR
      EXPECT_FALSE(off.ok());
      continue;
    }
    ASSERT_TRUE(off.ok()) << "xid " << xid;
    EXPECT_EQ(AsU32(std::span<const uint8_t>(*rec).subspan(*off)),
              v % 2 == 0 ? v + 1000 : v);
  }
  EXPECT_EQ(seen.size(), 200u);
}

TEST_P(ServerTest, OutOfOrderThroughTheClient) {
  StartServer();
  auto client = Connect();
  auto slow = std::async(std::launch::async, [&] {
    auto r = client->Call(Opts(2), U32(500));
    return std::chrono::steady_clock::now();
  });
  std::this_thread::sleep_for(50ms);
  auto fast_start = std::chrono::steady_clock::now();
  ASSERT_TRUE(client->Call(Opts(2), U32(0)).ok());
  auto fast_done = std::chrono::steady_clock::now();
  auto slow_done = slow.get();
  EXPECT_LT(fast_done, slow_done);
  EXPECT_LT(fast_done - fast_start, 300ms);
}

TEST_P(ServerTest, HundredConcurrentCallsFromEightThreads) {
  StartServer();
  auto client = Connect();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 13;  // 104 calls
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        uint32_t tag = static_cast<uint32_t>(t * 1000 + i);
        // Mix echo and short sleeps so calls overlap on the server.
        if (i % 2 == 0) {
          std::vector<uint8_t> payload =
              Cat(U32(tag), std::vector<uint8_t>(4 * (i + 1), 7));
          Result<ReplyBody> r = client->Call(Opts(1), payload);
          if (r.ok() && std::equal(r->results().begin(), r->results().end(),
                                   payload.begin(), payload.end())) {
            ++ok;
          }
        } else {
          Result<ReplyBody> r = client->Call(Opts(2), U32(5));
          if (r.ok() && AsU32(r->results()) == 5) ++ok;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_GT(max_concurrent_.load(), 1);
}

TEST_P(ServerTest, ProgramVersionProcedureAndArgumentErrors) {
  StartServer();
  auto client = Connect();
  EXPECT_TRUE(client->Call(kToyProg + 7, 1, 0, {}).status().IsProgUnavail());

  Status mismatch = client->Call(kToyProg, 9, 0, {}).status();
  ASSERT_TRUE(mismatch.IsProgMismatch()) << mismatch.ToString();
  EXPECT_EQ(mismatch.mismatch_low(), 1u);
  EXPECT_EQ(mismatch.mismatch_high(), 2u);

  EXPECT_TRUE(client->Call(kToyProg, 1, 99, {}).status().IsProcUnavail());

  EXPECT_TRUE(
      client->Call(Opts(4), {1, 2, 3, 4, 5, 6, 7, 8}).status().IsGarbageArgs());
  Result<ReplyBody> good = client->Call(Opts(4), U32(41));
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(AsU32(good->results()), 42u);
}

TEST_P(ServerTest, RpcVersionMismatch) {
  StartServer();
  RawConn c(server_->port());
  XdrEncoder e;
  for (uint32_t w : {55u, kCall, 3u, kToyProg, 1u, 0u, 0u, 0u, 0u, 0u})
    e.PutUint32(w);
  c.Send(FrameRecord(e.Take()));
  auto reply = c.ReadRecord();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(PeekMessage(*reply)->xid, 55u);
  Status st = DecodeReply(*reply).status();
  ASSERT_TRUE(st.IsRpcMismatch()) << st.ToString();
  EXPECT_EQ(st.mismatch_low(), 2u);
  EXPECT_EQ(st.mismatch_high(), 2u);
}

TEST_P(ServerTest, AuthSysIsDecodedAndOtherFlavorsRefused) {
  StartServer();
  AuthSysParms sys;
  sys.stamp = 99;
  sys.machine_name = "tester";
  sys.uid = 1234;
  sys.gid = 567;
  sys.gids = {567, 10, 20};
  ClientOptions co;
  co.cred = Credential::Sys(sys);
  auto client = Connect(co);
  Result<ReplyBody> r = client->Call(kToyProg, 1, 3, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  XdrDecoder d(r->results());
  EXPECT_EQ(d.GetUint32(), kAuthSys);
  EXPECT_EQ(d.GetUint32(), 1234u);
  EXPECT_EQ(d.GetUint32(), 567u);
  EXPECT_EQ(d.GetUint32(), 3u);
  EXPECT_EQ(d.GetUint32(), 567u);
  EXPECT_EQ(d.GetUint32(), 10u);
  EXPECT_EQ(d.GetUint32(), 20u);
  auto name = d.GetOpaque(255);
  ASSERT_TRUE(name.has_value());
  EXPECT_EQ(std::string(name->begin(), name->end()), "tester");

  CallOptions o = Opts(3);
  o.cred = Credential::None();
  r = client->Call(o, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(AsU32(r->results()), kAuthNone);

  o.cred = Credential{kAuthSys, {0, 0, 0, 1}};  // malformed authsys_parms
  EXPECT_EQ(client->Call(o, {}).status().auth_stat(), kAuthBadCred);
  o.cred = Credential{kAuthShort, {1, 2, 3, 4}};
  EXPECT_EQ(client->Call(o, {}).status().auth_stat(), kAuthRejectedCred);
  o.cred = Credential{kRpcsecGss, {}};
  EXPECT_EQ(client->Call(o, {}).status().auth_stat(), kAuthTooWeak);
  // The connection survives every refusal.
  EXPECT_TRUE(client->Call(kToyProg, 1, 0, {}).ok());
}

TEST_P(ServerTest, OversizeRecordClosesOnlyThatConnection) {
  ServerOptions opts;
  opts.endpoint.max_record_size = 64 * 1024;
  StartServer(opts);
  auto good = Connect();
  ASSERT_TRUE(good->Call(kToyProg, 1, 0, {}).ok());

  RawConn bad(server_->port());
  auto header = FragmentHeader(1u << 20, true);  // announces 1 MiB
  bad.Send(header);
  bad.Send(std::vector<uint8_t>(1000, 0));
  EXPECT_TRUE(bad.WaitClosed());
  EXPECT_TRUE(LogsContain("exceeds the maximum"));

  // The other connection is served throughout, including a large record
  // under the limit.
  std::vector<uint8_t> big(60 * 1024, 3);
  Result<ReplyBody> r = good->Call(Opts(1), big);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->results().size(), big.size());

  // A well-framed call over the limit closes its own connection too.
  auto victim = Connect();
  uint64_t before = server_->Connections().size();
  EXPECT_TRUE(victim->Call(Opts(1), std::vector<uint8_t>(70 * 1024, 1))
                  .status()
                  .IsClosed());
  EXPECT_FALSE(victim->IsOpen());
  EXPECT_TRUE(good->Call(kToyProg, 1, 0, {}).ok());
  EXPECT_LE(server_->Connections().size(), before);
}

TEST_P(ServerTest, GarbageAndTruncatedRecordsKeepTheServerAlive) {
  StartServer();
  std::mt19937 rng(99);
  {
    // Well-framed garbage: each record is judged alone, the connection lives.
    RawConn c(server_->port());
    std::vector<uint8_t> stream;
    for (int i = 0; i < 20; ++i) {
      std::vector<uint8_t> junk(rng() % 100);
      for (auto& b : junk) b = static_cast<uint8_t>(rng());
      stream = Cat(stream, FrameRecord(junk));
    }
    stream =
        Cat(stream, FrameRecord(std::vector<uint8_t>{1, 2, 3}));  // too short
    XdrEncoder reply;  // a REPLY nobody asked for
    for (uint32_t w : {4242u, kReply, 0u, 0u, 0u, 0u}) reply.PutUint32(w);
    stream = Cat(stream, FrameRecord(reply.Take()));
    stream = Cat(stream, FrameRecord(CallRecord(777, kToyProg, 1, 0, {})));
    c.Send(stream);
    // Garbage that happened to parse may get answers; the NULL call must.
    bool answered = false;
    while (auto rec = c.ReadRecord(3000ms)) {
      if (PeekMessage(*rec)->xid == 777) {
        answered = DecodeReply(*rec).ok();
        break;
      }
    }
    EXPECT_TRUE(answered);
  }
  {
    // A stream that ends inside a record.
    RawConn c(server_->port());
    c.Send(FragmentHeader(100, true));
    c.Send(std::vector<uint8_t>(10, 0));
  }
  {
    // Unframed random bytes: most likely an absurd fragment length.
    RawConn c(server_->port());
    std::vector<uint8_t> junk(4096);
    for (auto& b : junk) b = static_cast<uint8_t>(rng());
    junk[0] |= 0x40;  // at least 1 GiB announced: over any sane limit
    c.Send(junk);
    EXPECT_TRUE(c.WaitClosed());
  }
  auto client = Connect();
  EXPECT_TRUE(client->Call(kToyProg, 1, 0, {}).ok());
}

TEST_P(ServerTest, MultiFragmentAndPipelinedCalls) {
  StartServer();
  RawConn c(server_->port());
  // One call in 3-byte fragments.
  c.Send(FrameRecord(CallRecord(1, kToyProg, 1, 4, {}, U32(9)), 3));
  auto r = c.ReadRecord();
  ASSERT_TRUE(r.has_value());
  Result<size_t> off = DecodeReply(*r);
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(AsU32(std::span<const uint8_t>(*r).subspan(*off)), 10u);

  // Fifty calls in one write.
  std::vector<uint8_t> stream;
  for (uint32_t x = 100; x < 150; ++x) {
    stream =
        Cat(stream, FrameRecord(CallRecord(x, kToyProg, 1, 4, {}, U32(x))));
  }
  c.Send(stream);
  std::set<uint32_t> xids;
  for (int i = 0; i < 50; ++i) {
    auto rec = c.ReadRecord();
    ASSERT_TRUE(rec.has_value()) << i;
    uint32_t xid = PeekMessage(*rec)->xid;
    Result<size_t> o = DecodeReply(*rec);
    ASSERT_TRUE(o.ok());
    EXPECT_EQ(AsU32(std::span<const uint8_t>(*rec).subspan(*o)), xid + 1);
    xids.insert(xid);
  }
  EXPECT_EQ(xids.size(), 50u);
}

TEST_P(ServerTest, HalfClosedClientStillGetsItsReplies) {
  StartServer();
  RawConn c(server_->port());
  c.Send(FrameRecord(CallRecord(5, kToyProg, 1, 2, {}, U32(200))));
  c.ShutdownWrite();
  auto r = c.ReadRecord();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(PeekMessage(*r)->xid, 5u);
  EXPECT_TRUE(c.WaitClosed());
}

TEST_P(ServerTest, InFlightWindowBoundsConcurrencyPerConnection) {
  ServerOptions opts;
  opts.endpoint.max_inflight_per_connection = 2;
  StartServer(opts);
  auto client = Connect();
  std::vector<std::future<bool>> calls;
  for (int i = 0; i < 10; ++i) {
    calls.push_back(std::async(std::launch::async, [&] {
      return client->Call(Opts(2), U32(30)).ok();
    }));
  }
  for (auto& f : calls) EXPECT_TRUE(f.get());
  EXPECT_LE(max_concurrent_.load(), 2);
}

TEST_P(ServerTest, CloseHookRunsWhenClientLeaves) {
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Call(kToyProg, 1, 0, {}).ok());
  auto conns = server_->Connections();
  ASSERT_EQ(conns.size(), 1u);
  uint64_t id = conns[0]->id();
  client->Close();
  EXPECT_TRUE(WaitForClose(id));
  EXPECT_FALSE(conns[0]->IsOpen());
}

TEST_P(ServerTest, StopFailsOutstandingCallsAndJoins) {
  StartServer();
  auto client = Connect();
  auto start = std::chrono::steady_clock::now();
  auto call = std::async(std::launch::async, [&] {
    return client->Call(Opts(2), U32(1000)).status();
  });
  std::this_thread::sleep_for(100ms);
  server_->Stop();
  Status st = call.get();
  EXPECT_TRUE(st.IsClosed()) << st.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  server_->Stop();  // idempotent
}

// --- Backchannel: the server calls the client on the client's connection.

Program CallbackProgram(std::atomic<int>* served,
                        std::chrono::milliseconds delay = 0ms) {
  return Program(kCbProg, 1, 1)
      .WithNull()
      .On(1,
          [served, delay](const CallContext&, std::span<const uint8_t> args) {
            std::this_thread::sleep_for(delay);
            ++*served;
            return Reply::Success(U32(AsU32(args) + 1));
          });
}

TEST_P(ServerTest, ServerCallsClientOnItsConnection) {
  StartServer();
  auto client = Connect();
  std::atomic<int> served{0};
  client->backchannel().Add(CallbackProgram(&served));
  ASSERT_TRUE(client->Call(kToyProg, 1, 0, {}).ok());
  auto conns = server_->Connections();
  ASSERT_EQ(conns.size(), 1u);

  CallOptions o;
  o.prog = kCbProg;
  o.vers = 1;
  o.proc = 1;
  o.timeout = 5s;
  Result<ReplyBody> r = conns[0]->Call(o, U32(41));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(AsU32(r->results()), 42u);
  o.proc = 0;
  EXPECT_TRUE(conns[0]->Call(o, {}).ok());  // CB_NULL-style probe
  EXPECT_EQ(served.load(), 1);

  // Asynchronous form.
  std::promise<uint32_t> got;
  o.proc = 1;
  conns[0]->CallAsync(o, U32(7), [&](Result<ReplyBody> res) {
    got.set_value(res.ok() ? AsU32(res->results()) : 0);
  });
  EXPECT_EQ(got.get_future().get(), 8u);
}

TEST_P(ServerTest, CallbackDuringAForeChannelCall) {
  StartServer();
  auto client = Connect();
  std::atomic<int> served{0};
  client->backchannel().Add(CallbackProgram(&served));
  // proc 5: the handler calls the client back and returns what it said.
  Result<ReplyBody> r = client->Call(Opts(5), U32(9));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(AsU32(r->results()), 10u);
  EXPECT_EQ(served.load(), 1);
}

TEST_P(ServerTest, BackchannelErrors) {
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Call(kToyProg, 1, 0, {}).ok());
  auto conn = server_->Connections().at(0);
  CallOptions o;
  o.prog = kCbProg;
  o.vers = 1;
  o.proc = 1;
  o.timeout = 200ms;
  // Nothing registered on the client: PROG_UNAVAIL comes back.
  EXPECT_TRUE(conn->Call(o, U32(1)).status().IsProgUnavail());

  // A slow client handler: the caller's deadline wins.
  std::atomic<int> served{0};
  client->backchannel().Add(CallbackProgram(&served, 600ms));
  auto start = std::chrono::steady_clock::now();
  Status st = conn->Call(o, U32(1)).status();
  EXPECT_TRUE(st.IsTimeout()) << st.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 550ms);
  EXPECT_EQ(conn->outgoing_pending(), 0u);

  // The connection goes away while a callback waits: Closed, not Timeout.
  o.timeout = 10s;
  auto pending = std::async(std::launch::async,
                            [&] { return conn->Call(o, U32(1)).status(); });
  std::this_thread::sleep_for(100ms);
  start = std::chrono::steady_clock::now();
  conn->Close();
  st = pending.get();
  EXPECT_TRUE(st.IsClosed()) << st.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_TRUE(conn->Call(o, U32(1)).status().IsClosed());
}

TEST_P(ServerTest, ClientCallsFailCleanlyAfterServerGoesAway) {
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Call(kToyProg, 1, 0, {}).ok());
  server_->Stop();
  Status st = client->Call(kToyProg, 1, 0, {}).status();
  EXPECT_TRUE(st.IsClosed()) << st.ToString();
  EXPECT_TRUE(
      Client::Connect("127.0.0.1", server_->port(), {}).status().IsIoError());
}

TEST_P(ServerTest, ServesWithTheBackendAsked) {
  StartServer();
  EXPECT_EQ(server_->backend(), GetParam());
  auto client = Connect();
  ASSERT_TRUE(client->Call(kToyProg, 1, 0, {}).ok());
}

TEST_P(ServerTest, PeerClosingWithAReceivePendingRunsOnCloseOnce) {
  StartServer();
  for (int round = 0; round < 20; ++round) {
    auto c = std::make_unique<RawConn>(server_->port());
    std::shared_ptr<Connection> conn;
    for (int i = 0; i < 500 && !conn; ++i) {
      for (auto& x : server_->Connections()) conn = x;
      if (!conn) std::this_thread::sleep_for(2ms);
    }
    ASSERT_NE(conn, nullptr);
    if (round % 2) c->Send(std::vector<uint8_t>{0x80, 0, 0});  // half a mark
    c.reset();
    ASSERT_TRUE(WaitForClose(conn->id()));
    EXPECT_FALSE(conn->IsOpen());
  }
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_EQ(closed_ids_.size(), 20u);
}

// A server killed with SIGKILL (a crash, the OOM killer) leaves its port
// to the next one at once. With the listener polled directly in the
// io_uring ring it outlived the process by the ring's teardown (6-10 ms
// here): a server restarted at once could not bind, and clients connected
// into the dead listener's queue.
TEST_P(ServerTest, AKilledServerFreesItsPortAtOnce) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(ready[0]);
    ServerOptions opts;
    opts.host = "127.0.0.1";
    opts.port = 0;
    opts.worker_threads = 1;
    opts.endpoint.backend = GetParam();
    Server s(opts);
    s.Register(ToyProgram());
    const uint16_t port = s.Start().ok() ? s.port() : 0;
    [[maybe_unused]] ssize_t n = ::write(ready[1], &port, sizeof port);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  uint16_t port = 0;
  ASSERT_EQ(::read(ready[0], &port, sizeof port),
            static_cast<ssize_t>(sizeof port));
  ::close(ready[0]);
  ASSERT_NE(port, 0);
  {
    RawConn c(port);  // served, as clients are when a server dies
    ::kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    Result<int> fd = ListenTcp("127.0.0.1", port);
    EXPECT_TRUE(fd.ok()) << fd.status().ToString();
    if (fd.ok()) ::close(*fd);
  }
}

TEST_P(ServerTest, StopWithManyConnectionsMidRequest) {
  StartServer();
  std::vector<std::unique_ptr<RawConn>> conns;
  for (uint32_t i = 0; i < 64; ++i) {
    conns.push_back(std::make_unique<RawConn>(server_->port()));
    std::vector<uint8_t> call =
        FrameRecord(CallRecord(i, kToyProg, 1, 2, {}, U32(50)));
    if (i % 2) call.resize(call.size() - 2);  // a record cut short
    conns.back()->Send(call);
  }
  for (int i = 0; i < 500 && server_->Connections().size() < 64; ++i) {
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_EQ(server_->Connections().size(), 64u);
  server_->Stop();
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_EQ(closed_ids_.size(), 64u);
}

TEST_P(ServerTest, InlineReplyLargerThanTheSocketBuffer) {
  StartServer();
  RawConn c(server_->port());
  // 8 MiB answered on the loop thread to a peer that does not read yet:
  // the send cannot finish at once (short sends, then completion later).
  constexpr uint32_t kBig = 8u << 20;
  c.Send(Cat(FrameRecord(CallRecord(1, kToyProg, 1, 9, {}, U32(kBig))),
             FrameRecord(CallRecord(2, kToyProg, 1, 9, {}, U32(100)))));
  std::this_thread::sleep_for(200ms);
  // A worker's reply queued behind it must not cut into it.
  c.Send(FrameRecord(CallRecord(3, kToyProg, 1, 1, {}, U32(7))));
  std::map<uint32_t, size_t> sizes;
  for (int i = 0; i < 3; ++i) {
    auto rec = c.ReadRecord(20000ms);
    ASSERT_TRUE(rec) << "reply " << i << " missing";
    Result<size_t> off = DecodeReply(*rec);
    ASSERT_TRUE(off.ok());
    auto body = std::span<const uint8_t>(*rec).subspan(*off);
    uint32_t xid = PeekMessage(*rec)->xid;
    sizes[xid] = body.size();
    if (xid != 3) {
      for (size_t j = 0; j < body.size(); j += 4093) {
        ASSERT_EQ(body[j], j & 0xff) << "xid " << xid << " byte " << j;
      }
    }
  }
  EXPECT_EQ(sizes[1], kBig);
  EXPECT_EQ(sizes[2], 100u);
  EXPECT_EQ(sizes[3], 4u);
}

TEST_P(ServerTest, LoopAndWorkersReplyingOnOneConnectionNeverInterleave) {
  StartServer();
  RawConn c(server_->port());
  // Inline replies (proc 9, loop thread) and worker replies (proc 1) on one
  // connection at once, in bursts: every reply decodes, once, whole.
  constexpr uint32_t kCalls = 3000;
  std::thread sender([&] {
    std::vector<uint8_t> burst;
    for (uint32_t i = 0; i < kCalls; ++i) {
      uint32_t proc = i % 3 == 0 ? 1 : 9;
      burst = Cat(std::move(burst),
                  FrameRecord(CallRecord(i, kToyProg, 1, proc, {},
                                         U32(proc == 1 ? i : 300 + i % 700))));
      if (burst.size() > 16384) {
        c.Send(burst);
        burst.clear();
      }
    }
    c.Send(burst);
  });
  std::set<uint32_t> seen;
  for (uint32_t i = 0; i < kCalls; ++i) {
    auto rec = c.ReadRecord(10000ms);
    if (!rec) break;
    uint32_t xid = PeekMessage(*rec)->xid;
    Result<size_t> off = DecodeReply(*rec);
    ASSERT_TRUE(off.ok()) << "xid " << xid;
    auto body = std::span<const uint8_t>(*rec).subspan(*off);
    if (xid % 3 == 0) {
      EXPECT_EQ(AsU32(body), xid);
    } else {
      EXPECT_EQ(body.size(), 300 + xid % 700) << "xid " << xid;
    }
    EXPECT_TRUE(seen.insert(xid).second) << "xid " << xid << " twice";
  }
  sender.join();
  EXPECT_EQ(seen.size(), kCalls);
}

TEST_P(ServerTest, OutputBackpressurePausesAndResumesReading) {
  ServerOptions opts;
  opts.endpoint.max_output_bytes_per_connection = 64 * 1024;
  StartServer(opts);
  RawConn c(server_->port());
  // 400 calls for 16 KiB each (6.4 MB) while not reading: the server must
  // stop reading (TCP pushes back on our writes), then resume as we read.
  constexpr uint32_t kCalls = 400;
  std::thread sender([&] {
    for (uint32_t i = 0; i < kCalls; ++i) {
      c.Send(FrameRecord(CallRecord(i, kToyProg, 1, 9, {}, U32(16384))));
    }
  });
  std::this_thread::sleep_for(300ms);
  std::set<uint32_t> seen;
  for (uint32_t i = 0; i < kCalls; ++i) {
    auto rec = c.ReadRecord(10000ms);
    if (!rec) break;
    Result<size_t> off = DecodeReply(*rec);
    ASSERT_TRUE(off.ok());
    EXPECT_EQ(rec->size() - *off, 16384u);
    seen.insert(PeekMessage(*rec)->xid);
  }
  sender.join();
  EXPECT_EQ(seen.size(), kCalls);
}

TEST(BackendTest, NamesParseBackAndBadOnesAreRefused) {
  for (Backend b : {Backend::kAuto, Backend::kEpoll, Backend::kIoUring}) {
    EXPECT_EQ(ParseBackend(BackendName(b)), b);
  }
  EXPECT_EQ(ParseBackend("uring"), std::nullopt);
  EXPECT_EQ(ParseBackend(""), std::nullopt);
}

TEST(BackendTest, AutoServesWithWhatTheKernelAllowsAndEpollIsForced) {
  WorkerPool pool(1, "probe");
  Registry registry;
  EndpointOptions auto_opts;
  EventLoop automatic(auto_opts, &registry, &pool);
  EXPECT_EQ(automatic.backend(),
            UringUsable() ? Backend::kIoUring : Backend::kEpoll);
  EndpointOptions epoll_opts;
  epoll_opts.backend = Backend::kEpoll;
  EventLoop forced(epoll_opts, &registry, &pool);
  EXPECT_EQ(forced.backend(), Backend::kEpoll);
  ASSERT_TRUE(forced.Start().ok());
  forced.Stop();
}

INSTANTIATE_TEST_SUITE_P(
    Backends, ServerTest,
    ::testing::Values(Backend::kEpoll, Backend::kIoUring),
    [](const ::testing::TestParamInfo<Backend>& info) {
      return std::string(info.param == Backend::kEpoll ? "epoll" : "io_uring");
    });

}  // namespace
}  // namespace rpc
