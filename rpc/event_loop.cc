#include "rpc/event_loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <limits>
#include <optional>

#include "rpc/log.h"
#include "rpc/net.h"
#include "rpc/uring.h"

namespace rpc {
namespace {

// epoll tags: connection ids count up from 1 and never reach these.
constexpr uint64_t kWakeTag = 0;
constexpr uint64_t kListenerTag = uint64_t{1} << 63;

// io_uring user_data: a kind in the low 3 bits, above it a Connection*
// (aligned to at least 8) or a listener index.
enum RingKind : uint64_t {
  kRingWake = 1,
  kRingListener = 2,
  kRingRecv = 3,
  kRingSend = 4,     // posts only on failure or a short send
  kRingPollOut = 5,
  kRingNotice = 6,   // in the notice ring: the send of this connection is done
  kRingIgnore = 7,   // a send's link cut short by its failure
};
constexpr uint64_t kKindMask = 7;
uint64_t RingTag(const void* p, RingKind kind) {
  return reinterpret_cast<uintptr_t>(p) | kind;
}
Connection* RingConn(uint64_t tag) {
  return reinterpret_cast<Connection*>(tag & ~kKindMask);
}

constexpr size_t kScratchBytes = 256 * 1024;
constexpr int kMaxEvents = 256;
constexpr int kAcceptsPerEvent = 64;
// How long accepting pauses when the process is out of descriptors.
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

std::atomic<uint64_t> g_next_connection_id{1};

}  // namespace

EventLoop::EventLoop(EndpointOptions options, const Registry* registry,
                     WorkerPool* pool)
    : options_(std::move(options)),
      registry_(registry),
      pool_(pool) {
  wakefd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  // Listeners are always watched by epoll, with the io_uring backend too
  // (the ring then polls the epoll descriptor): a request in the ring holds
  // its file, so a listener polled there directly would outlive a killed
  // process by the ring's teardown, and a server restarted at once could
  // not bind its port while clients were queued on the dead one. epoll
  // holds no reference; the listener closes with the process.
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (wakefd_ >= 0 && options_.backend != Backend::kEpoll) {
    Result<std::unique_ptr<Uring>> u = Uring::Create(wakefd_);
    if (u.ok()) {
      uring_ = std::move(*u);
      return;
    }
    uring_error_ = u.status().ToString();
  }
  scratch_.resize(kScratchBytes);
  if (epfd_ >= 0 && wakefd_ >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kWakeTag;
    ::epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev);
  }
}

EventLoop::~EventLoop() {
  Stop();
  for (Listener& l : listeners_) {
    if (l.fd >= 0) ::close(l.fd);
  }
  uring_.reset();  // before the eventfd it signals
  if (wakefd_ >= 0) ::close(wakefd_);
  if (epfd_ >= 0) ::close(epfd_);
}

Result<uint16_t> EventLoop::Listen(const std::string& host, uint16_t port) {
  if (epfd_ < 0 || wakefd_ < 0) {
    return Status::IoError("epoll unavailable");
  }
  if (started_) return Status::InvalidArgument("Listen after Start");
  Result<int> fd = ListenTcp(host, port);
  if (!fd.ok()) return fd.status();
  Result<uint16_t> bound = LocalPort(*fd);
  if (!bound.ok()) {
    ::close(*fd);
    return bound.status();
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenerTag | listeners_.size();
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, *fd, &ev) != 0) {
    int err = errno;
    ::close(*fd);
    return Status::IoError(std::string("epoll_ctl: ") + std::strerror(err));
  }
  listeners_.push_back(Listener{*fd, false});
  return *bound;
}

Status EventLoop::Start() {
  if (started_) return Status::Ok();
  if (!uring_ && options_.backend == Backend::kIoUring) {
    return Status::IoError("io_uring unavailable: " + uring_error_);
  }
  if ((epfd_ < 0 && !uring_) || wakefd_ < 0) {
    return Status::IoError("epoll unavailable");
  }
  // One line per server (listeners); clients, which come and go by the
  // dozen in some programs, say it at debug level.
  std::string why = uring_ || options_.backend == Backend::kEpoll
                        ? std::string()
                        : " (io_uring unusable: " + uring_error_ + ")";
  const char* which = BackendName(backend());
  if (listeners_.empty()) {
    log::Debug("rpc: {}: event loop backend: {}{}", options_.name, which, why);
  } else {
    log::Info("rpc: {}: event loop backend: {}{}", options_.name, which, why);
  }
  started_ = true;
  thread_ = std::thread([this] { Run(); });
  std::string tname = (options_.name + "-loop").substr(0, 15);
  pthread_setname_np(thread_.native_handle(), tname.c_str());
  return Status::Ok();
}

void EventLoop::Stop() {
  if (started_) {
    stopping_ = true;
    Wake();
    if (thread_.joinable()) thread_.join();
    started_ = false;
    return;
  }
  // Never started: close what Adopt may have registered.
  {
    std::lock_guard<std::mutex> lock(conns_mu_);
    closed_for_new_ = true;
  }
  CloseAll();
  RunPosted();
}

LoopStats EventLoop::stats() const {
  LoopStats s;
  s.busy_ns = busy_ns_.load(std::memory_order_relaxed);
  s.wakeups = wakeups_.load(std::memory_order_relaxed);
  s.calls = calls_.load(std::memory_order_relaxed);
  s.inline_calls = inline_calls_.load(std::memory_order_relaxed);
  return s;
}

bool EventLoop::InLoopThread() const {
  return loop_thread_id_.load() == std::this_thread::get_id();
}

void EventLoop::Wake() {
  uint64_t one = 1;
  // A full eventfd counter still wakes the loop; nothing to handle.
  [[maybe_unused]] ssize_t n = ::write(wakefd_, &one, sizeof one);
}

void EventLoop::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    posted_.push_back(std::move(fn));
    has_posted_.store(true, std::memory_order_release);
  }
  Wake();
}

void EventLoop::RunPosted() {
  if (!has_posted_.load(std::memory_order_acquire)) return;
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    tasks.swap(posted_);
    has_posted_.store(false, std::memory_order_relaxed);
  }
  for (auto& t : tasks) t();
}

void EventLoop::Run() {
  loop_thread_id_ = std::this_thread::get_id();
  if (uring_) {
    RunUring();
  } else {
    RunEpoll();
  }

  // Shutdown: no new connections, close every open one (failing their
  // pending calls), run the on-close hooks.
  {
    std::lock_guard<std::mutex> lock(conns_mu_);
    closed_for_new_ = true;
  }
  for (Listener& l : listeners_) {
    if (l.fd < 0) continue;
    ::epoll_ctl(epfd_, EPOLL_CTL_DEL, l.fd, nullptr);
    ::close(l.fd);
    l.fd = -1;
  }
  CloseAll();
  RunPosted();
  if (uring_) DrainRing();
  loop_thread_id_ = std::thread::id();
}

void EventLoop::RunEpoll() {
  epoll_event events[kMaxEvents];
  // Two clock reads per wake-up: when it woke, and when its work was done,
  // which is also "now" for the timers and the next wait.
  auto now = std::chrono::steady_clock::now();
  while (!stopping_) {
    int n = ::epoll_wait(epfd_, events, kMaxEvents, NextTimeoutMs(now));
    if (n < 0) {
      if (errno == EINTR) continue;
      log::Error("rpc: {}: epoll_wait: {}", options_.name,
                 std::strerror(errno));
      break;
    }
    const auto woke = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
      uint64_t tag = events[i].data.u64;
      uint32_t ev = events[i].events;
      if (tag == kWakeTag) {
        uint64_t v;
        [[maybe_unused]] ssize_t r = ::read(wakefd_, &v, sizeof v);
        continue;
      }
      if (tag & kListenerTag) {
        AcceptReady(static_cast<size_t>(tag & ~kListenerTag));
        continue;
      }
      std::shared_ptr<Connection> conn = Lookup(tag);
      if (!conn) continue;
      if (ev & (EPOLLHUP | EPOLLERR)) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(conn->fd_, SOL_SOCKET, SO_ERROR, &err, &len);
        conn->CloseWithReason(err ? std::strerror(err) : "connection hung up",
                              false);
        continue;
      }
      if (ev & EPOLLOUT) conn->HandleWritable();
      if (ev & (EPOLLIN | EPOLLRDHUP)) conn->HandleReadable();
    }
    now = AfterWake(woke);
  }
}

void EventLoop::RunUring() {
  io_uring* ring = uring_->ring();
  if (Status st = uring_->Enable(); !st.ok()) {
    // Nothing was submitted: the loop ends and Run closes every connection.
    log::Error("rpc: {}: {}", options_.name, st.ToString());
    return;
  }
  // A registered ring descriptor spares each io_uring_enter the file
  // lookup (per thread: done here, on the only thread that enters). An
  // optimization only; a refusal changes nothing else.
  io_uring_register_ring_fd(ring);
  ArmWake();
  if (!listeners_.empty()) ArmListeners();
  auto now = std::chrono::steady_clock::now();
  while (!stopping_) {
    // One io_uring_enter: submits what the last turn queued (the inline
    // replies, re-armed receives) and waits for the next completion, with
    // the timers' timeout in the same call (IORING_ENTER_EXT_ARG).
    // Sends that did not finish inside the io_uring_enter that submitted
    // them (full socket buffers) are noticed at the next wake-up; when
    // something waits for one, its notice must itself wake the loop. After
    // turning that on, read once more in case it landed just before.
    if (uring_->SetNoticeWake(!notice_waiters_.empty()) &&
        !notice_waiters_.empty()) {
      ReapNotices();
    }
    int ms = NextTimeoutMs(now);
    __kernel_timespec ts{};
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = static_cast<long long>(ms % 1000) * 1000000;
    io_uring_cqe* first = nullptr;
    int rc = io_uring_submit_and_wait_timeout(ring, &first, 1,
                                              ms < 0 ? nullptr : &ts, nullptr);
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN &&
        rc != -EBUSY) {
      log::Error("rpc: {}: io_uring_enter: {}", options_.name,
                 std::strerror(-rc));
      break;
    }
    const auto woke = std::chrono::steady_clock::now();
    HandleCompletions();
    now = AfterWake(woke);
  }
}

std::chrono::steady_clock::time_point EventLoop::AfterWake(
    std::chrono::steady_clock::time_point woke) {
  RunPosted();
  auto now = std::chrono::steady_clock::now();
  ExpireTimers(now);
  if (listeners_resume_at_ != std::chrono::steady_clock::time_point{} &&
      now >= listeners_resume_at_) {
    listeners_resume_at_ = {};
    for (size_t i = 0; i < listeners_.size(); ++i) {
      if (!listeners_[i].paused) continue;
      listeners_[i].paused = false;
      epoll_event e{};
      e.events = EPOLLIN;
      e.data.u64 = kListenerTag | i;
      ::epoll_ctl(epfd_, EPOLL_CTL_MOD, listeners_[i].fd, &e);
      // io_uring: what waited during the pause, now (not only on the next
      // wake-up of the epoll descriptor).
      if (uring_) AcceptReady(i);
    }
  }
  busy_ns_.fetch_add(
      static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - woke)
              .count()),
      std::memory_order_relaxed);
  wakeups_.fetch_add(1, std::memory_order_relaxed);
  return now;
}

void EventLoop::PauseListener(size_t index) {
  listeners_[index].paused = true;
  listeners_resume_at_ = std::chrono::steady_clock::now() + kAcceptBackoff;
  epoll_event e{};
  e.events = 0;
  e.data.u64 = kListenerTag | index;
  ::epoll_ctl(epfd_, EPOLL_CTL_MOD, listeners_[index].fd, &e);
}

void EventLoop::HandleCqe(const io_uring_cqe& cqe) {
  const uint64_t kind = cqe.user_data & kKindMask;
  const int res = cqe.res;
  switch (kind) {
    case kRingWake:
      ArmWake();
      return;
    case kRingListener: {
      // Which listeners: epoll says (paused ones are not in its set).
      epoll_event events[16];
      const int n = ::epoll_wait(epfd_, events, 16, 0);
      for (int i = 0; i < n; ++i) {
        const size_t index =
            static_cast<size_t>(events[i].data.u64 & ~kListenerTag);
        if (index < listeners_.size() && listeners_[index].fd >= 0 &&
            !listeners_[index].paused) {
          AcceptReady(index);
        }
      }
      if (!stopping_) ArmListeners();
      return;
    }
    case kRingRecv: {
      Connection* c = RingConn(cqe.user_data);
      if (res > 0) {
        unsigned bid = cqe.flags >> IORING_CQE_BUFFER_SHIFT;
        c->HandleReceived(uring_->Buffer(bid), res);
        uring_->ReturnBuffer(bid);
      } else {
        c->HandleReceived(nullptr, res);
      }
      ReleaseOp(c);
      return;
    }
    case kRingSend: {
      Connection* c = RingConn(cqe.user_data);
      c->RingSendDone(res);
      ReleaseOp(c);
      return;
    }
    case kRingPollOut: {
      Connection* c = RingConn(cqe.user_data);
      c->HandlePollOut();
      ReleaseOp(c);
      return;
    }
    default:
      return;  // kRingIgnore
  }
}

void EventLoop::HandleCompletions() {
  ReapNotices();
  io_uring* ring = uring_->ring();
  io_uring_cqe* cqe;
  unsigned head, seen = 0;
  io_uring_for_each_cqe(ring, head, cqe) {
    HandleCqe(*cqe);
    ++seen;
  }
  io_uring_cq_advance(ring, seen);
}

void EventLoop::ReapNotices() {
  uring_->ReapNotices([this](uint64_t tag) {
    Connection* c = RingConn(tag);
    c->RingSendDone(std::nullopt);
    ReleaseOp(c);
  });
}

void EventLoop::ArmWake() {
  io_uring_sqe* sqe = uring_->Sqe();
  io_uring_prep_read(sqe, wakefd_, &wake_value_, sizeof wake_value_, 0);
  io_uring_sqe_set_data64(sqe, kRingWake);
}

void EventLoop::ArmListeners() {
  // One-shot, re-armed after each accept round: a poll armed while the
  // epoll set is still ready completes at once, so nothing is missed.
  io_uring_sqe* sqe = uring_->Sqe();
  io_uring_prep_poll_add(sqe, epfd_, POLLIN);
  io_uring_sqe_set_data64(sqe, kRingListener);
}

// A connection with requests in the ring is kept alive by a reference of
// its own until the last of them completes: the kernel may still write
// into its buffers.
void EventLoop::HoldOp(Connection* c) {
  if (c->ring_ops_++ == 0) c->ring_self_ = c->shared_from_this();
  ++ring_ops_;
}

void EventLoop::ReleaseOp(Connection* c) {
  --ring_ops_;
  if (--c->ring_ops_ == 0) {
    std::shared_ptr<Connection> last = std::move(c->ring_self_);
  }
}

void EventLoop::PrepRecv(Connection* c) {
  io_uring_sqe* sqe = uring_->Sqe();
  io_uring_prep_recv(sqe, c->fd_, nullptr, Uring::kBufferBytes, 0);
  // Armed right after the last bytes were taken, so the socket is nearly
  // always empty now: wait for data first instead of trying a receive that
  // would only say EAGAIN (a wasted pass through the socket per request).
  sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = Uring::kBufferGroup;
  io_uring_sqe_set_data64(sqe, RingTag(c, kRingRecv));
  HoldOp(c);
}

void EventLoop::PrepPollOut(Connection* c) {
  io_uring_sqe* sqe = uring_->Sqe();
  io_uring_prep_poll_add(sqe, c->fd_, POLLOUT);
  io_uring_sqe_set_data64(sqe, RingTag(c, kRingPollOut));
  HoldOp(c);
}

void EventLoop::PrepSend(Connection* c) {
  // The pair must go in one submission, or the link would end between them.
  io_uring_sqe* send = uring_->Sqe(2);
  // MSG_WAITALL: the ring retries a partial send itself (stream sockets),
  // so success means every byte is queued; MSG_NOSIGNAL: EPIPE, not SIGPIPE.
  io_uring_prep_sendmsg(send, c->fd_, &c->ring_msg_,
                        MSG_NOSIGNAL | MSG_WAITALL);
  send->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
  io_uring_sqe_set_data64(send, RingTag(c, kRingSend));
  io_uring_sqe* notice = io_uring_get_sqe(uring_->ring());
  io_uring_prep_msg_ring(notice, uring_->notice_fd(), 0,
                         RingTag(c, kRingNotice), 0);
  notice->flags |= IOSQE_CQE_SKIP_SUCCESS;
  io_uring_sqe_set_data64(notice, kRingIgnore);
  HoldOp(c);
}

void EventLoop::DrainRing() {
  // Every connection is shut down: its receive, poll and send requests end
  // promptly (EOF, POLLHUP, EPIPE). Wait for them, bounded, so no buffer or
  // connection is freed under the kernel.
  io_uring* ring = uring_->ring();
  for (int round = 0; round < 500 && ring_ops_ > 0; ++round) {
    __kernel_timespec ts{.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
    io_uring_cqe* first = nullptr;
    io_uring_submit_and_wait_timeout(ring, &first, 1, &ts, nullptr);
    HandleCompletions();
    RunPosted();
  }
  if (ring_ops_ > 0) {
    log::Error("rpc: {}: {} io_uring requests did not finish at stop",
               options_.name, ring_ops_);
  }
}

void EventLoop::CloseAll() {
  std::vector<std::shared_ptr<Connection>> all = Connections();
  for (auto& c : all) c->CloseWithReason("endpoint stopping", false);
  // Connections closed by other threads whose finalization was posted too
  // late to run: finalize them here so every on-close hook runs once.
  RunPosted();
  std::vector<uint64_t> ids;
  {
    std::lock_guard<std::mutex> lock(conns_mu_);
    for (auto& [id, c] : conns_) ids.push_back(id);
  }
  for (uint64_t id : ids) Finalize(id);
}

void EventLoop::AcceptReady(size_t index) {
  if (index >= listeners_.size() || listeners_[index].fd < 0) return;
  int lfd = listeners_[index].fd;
  for (int i = 0; i < kAcceptsPerEvent; ++i) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd = ::accept4(lfd, reinterpret_cast<sockaddr*>(&ss), &len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      // Out of descriptors or memory: a server fault. Level-triggered epoll
      // would report the pending connection again at once, so stop
      // accepting for a moment instead of spinning.
      log::Error("rpc: {}: accept: {}; pausing accepts for {} ms",
                 options_.name, std::strerror(errno), kAcceptBackoff.count());
      PauseListener(index);
      return;
    }
    std::string peer = FormatSockaddr(reinterpret_cast<const sockaddr*>(&ss));
    size_t open;
    {
      std::lock_guard<std::mutex> lock(conns_mu_);
      open = conns_.size();
    }
    if (open >= options_.max_connections) {
      log::Warning("rpc: {}: refusing connection from {}: {} connections open",
                   options_.name, peer, open);
      ::close(fd);
      continue;
    }
    SetTcpOptions(fd);
    Status error;
    std::shared_ptr<Connection> conn = Register(fd, peer, &error);
    if (!conn) {
      log::Error("rpc: {}: cannot serve {}: {}", options_.name, peer,
                 error.ToString());
      continue;
    }
    log::Debug("rpc: {}: accepted {} as connection {}", options_.name, peer,
               conn->id());
    if (options_.on_open) options_.on_open(conn);
  }
}

Result<std::shared_ptr<Connection>> EventLoop::Adopt(int fd, std::string peer) {
  Status error;
  std::shared_ptr<Connection> conn = Register(fd, std::move(peer), &error);
  if (!conn) return error;
  return conn;
}

std::shared_ptr<Connection> EventLoop::Register(int fd, std::string peer,
                                                Status* error) {
  // The connection owns fd from here on: its destructor closes it.
  std::shared_ptr<Connection> conn(
      new Connection(this, fd, g_next_connection_id.fetch_add(1),
                     std::move(peer), options_.max_record_size));
  {
    std::lock_guard<std::mutex> lock(conns_mu_);
    if (closed_for_new_) {
      *error = Status::Closed("endpoint stopping");
      return nullptr;
    }
    conns_.emplace(conn->id(), conn);
  }
  std::lock_guard<std::mutex> lock(conn->mu_);
  if (uring_) {
    conn->UpdateInterestLocked();  // arms its receive on the loop thread
    return conn;
  }
  conn->interest_ = EPOLLIN | EPOLLRDHUP;
  epoll_event ev{};
  ev.events = conn->interest_;
  ev.data.u64 = conn->id();
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    *error = Status::IoError(std::string("epoll_ctl: ") + std::strerror(errno));
    conn->closed_ = true;
    std::lock_guard<std::mutex> l2(conns_mu_);
    conns_.erase(conn->id());
    return nullptr;
  }
  return conn;
}

std::shared_ptr<Connection> EventLoop::Lookup(uint64_t id) const {
  std::lock_guard<std::mutex> lock(conns_mu_);
  auto it = conns_.find(id);
  return it == conns_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<Connection>> EventLoop::Connections() const {
  std::lock_guard<std::mutex> lock(conns_mu_);
  std::vector<std::shared_ptr<Connection>> out;
  out.reserve(conns_.size());
  for (const auto& [id, c] : conns_) out.push_back(c);
  return out;
}

void EventLoop::Finalize(uint64_t id) {
  std::shared_ptr<Connection> conn;
  {
    std::lock_guard<std::mutex> lock(conns_mu_);
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    conn = std::move(it->second);
    conns_.erase(it);
  }
  if (!options_.on_close) return;
  try {
    options_.on_close(conn);
  } catch (const std::exception& e) {
    log::Error("rpc: {}: on-close hook threw: {}", options_.name, e.what());
  } catch (...) {
    log::Error("rpc: {}: on-close hook threw", options_.name);
  }
}

int EventLoop::NextTimeoutMs(std::chrono::steady_clock::time_point now) {
  // Nothing due: wait without a timeout. A finite one arms and cancels an
  // hrtimer in every epoll_wait, kernel work an idle-between-requests loop
  // pays per request (docs/performance.md, issue 4 item 12). Whatever
  // could become due later is covered: AddTimer from another thread and
  // Stop() wake the loop; accept pauses and timers added on the loop
  // thread are seen here before the next wait.
  std::optional<std::chrono::milliseconds> wait;
  auto earliest = [&](std::chrono::steady_clock::time_point at) {
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(at - now);
    if (!wait || ms < *wait) wait = ms;
  };
  if (listeners_resume_at_ != std::chrono::steady_clock::time_point{}) {
    earliest(listeners_resume_at_);
  }
  if (earliest_timer_.load(std::memory_order_acquire) != kNoTimer) {
    std::lock_guard<std::mutex> lock(timers_mu_);
    if (!timers_.empty()) earliest(timers_.begin()->first);
  }
  if (!wait) return -1;
  // epoll_wait takes an int of milliseconds.
  return static_cast<int>(
      std::clamp<int64_t>(wait->count(), 0, std::numeric_limits<int>::max()));
}

void EventLoop::ExpireTimers(std::chrono::steady_clock::time_point now) {
  if (now.time_since_epoch().count() <
      earliest_timer_.load(std::memory_order_acquire)) {
    return;  // nothing due (see earliest_timer_)
  }
  std::vector<std::pair<uint64_t, uint32_t>> expired;
  {
    std::lock_guard<std::mutex> lock(timers_mu_);
    while (!timers_.empty() && timers_.begin()->first <= now) {
      expired.push_back(timers_.begin()->second);
      timers_.erase(timers_.begin());
    }
    NoteEarliestLocked();
  }
  // Connection locks are taken only after timers_mu_ is released: the
  // connection side takes them in the opposite order.
  for (auto [id, xid] : expired) {
    if (std::shared_ptr<Connection> c = Lookup(id)) c->ExpireCall(xid);
  }
}

void EventLoop::AddTimer(std::chrono::steady_clock::time_point deadline,
                         uint64_t id, uint32_t xid) {
  bool earliest;
  {
    std::lock_guard<std::mutex> lock(timers_mu_);
    earliest = timers_.empty() || deadline < timers_.begin()->first;
    timers_.emplace(deadline, std::make_pair(id, xid));
    NoteEarliestLocked();
  }
  if (earliest && !InLoopThread()) Wake();
}

void EventLoop::CancelTimer(std::chrono::steady_clock::time_point deadline,
                            uint64_t id, uint32_t xid) {
  std::lock_guard<std::mutex> lock(timers_mu_);
  auto [begin, end] = timers_.equal_range(deadline);
  for (auto it = begin; it != end; ++it) {
    if (it->second == std::make_pair(id, xid)) {
      timers_.erase(it);
      NoteEarliestLocked();
      return;
    }
  }
}

void EventLoop::NoteEarliestLocked() {
  earliest_timer_.store(
      timers_.empty() ? kNoTimer
                      : timers_.begin()->first.time_since_epoch().count(),
      std::memory_order_release);
}

std::optional<Backend> ParseBackend(std::string_view text) {
  if (text == "auto") return Backend::kAuto;
  if (text == "epoll") return Backend::kEpoll;
  if (text == "io_uring") return Backend::kIoUring;
  return std::nullopt;
}

const char* BackendName(Backend backend) {
  switch (backend) {
    case Backend::kAuto:
      return "auto";
    case Backend::kEpoll:
      return "epoll";
    case Backend::kIoUring:
      return "io_uring";
  }
  return "?";
}

void EventLoop::SetInterest(int fd, uint64_t id, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = id;
  ::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev);
}

void EventLoop::Unregister(int fd) {
  // io_uring: the caller's shutdown(2) ends the connection's requests.
  if (uring_) return;
  ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
}

}  // namespace rpc
