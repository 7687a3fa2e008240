#include "rpc/connection.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <random>

#include "rpc/event_loop.h"
#include "rpc/log.h"

namespace rpc {
namespace {

// Records from one writev: 3 segments each (mark, header, body).
constexpr size_t kMaxIov = 96;
// Read rounds per readiness event before yielding to other connections.
constexpr int kReadRounds = 4;
// Calls queued behind a full in-flight window while reading continues for
// backchannel replies, per in-flight slot.
constexpr size_t kReadyCapFactor = 4;

uint32_t RandomXidSeed() {
  // Random initial xids make a reconnecting peer's old replies unlikely to
  // match new calls.
  static thread_local std::mt19937 gen{std::random_device{}()};
  return static_cast<uint32_t>(gen());
}

std::string ErrnoText(int err) {
  char buf[128];
  return std::string(strerror_r(err, buf, sizeof buf));
}

// Fills `iov` (kMaxIov entries) with the unwritten bytes of whole records
// from `recs`, `skip` bytes of the first already written. Returns the
// number of entries.
template <typename Records>
size_t GatherIov(const Records& recs, size_t skip, iovec* iov) {
  size_t count = 0;
  auto add = [&](const uint8_t* p, size_t len) {
    if (skip >= len) {
      skip -= len;
      return;
    }
    iov[count].iov_base = const_cast<uint8_t*>(p + skip);
    iov[count].iov_len = len - skip;
    skip = 0;
    ++count;
  };
  for (const auto& r : recs) {
    if (count + 3 > kMaxIov) break;
    add(r.head.data(), r.head_len);
    if (!r.header.empty()) add(r.header.data(), r.header.size());
    if (!r.body.empty()) add(r.body.data(), r.body.size());
  }
  return count;
}

}  // namespace

Connection::Connection(EventLoop* loop, int fd, uint64_t id, std::string peer,
                       size_t max_record_size)
    : loop_(loop),
      fd_(fd),
      id_(id),
      peer_(std::move(peer)),
      next_xid_(RandomXidSeed()),
      reader_(max_record_size) {
  socklen_t len = sizeof peer_addr_;
  ::getpeername(fd_, reinterpret_cast<sockaddr*>(&peer_addr_), &len);
  len = sizeof local_addr_;
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&local_addr_), &len);
}

// The descriptor is closed only here, when no thread can still use it, so a
// worker writing to a connection that another thread just closed can never
// hit a reused descriptor number.
Connection::~Connection() { ::close(fd_); }

bool Connection::IsOpen() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !closed_;
}

size_t Connection::calls_in_flight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return inflight_ + ready_.size();
}

size_t Connection::outgoing_pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_.size();
}

void Connection::Close() { CloseWithReason("closed locally", false); }

void Connection::CloseWithReason(const std::string& reason, bool warn) {
  std::unordered_map<uint32_t, Pending> pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = true;
    // The loop is alive while any of its connections is open; everything
    // touching it happens under mu_ so that Stop() (which closes every
    // connection under its mu_) cannot finish underneath us.
    loop_->Unregister(fd_);
    // Ends whatever the ring has pending on the socket; a ring send's
    // records (ring_out_) stay until its completion says the kernel let go.
    ::shutdown(fd_, SHUT_RDWR);
    out_.clear();
    out_bytes_ = 0;
    ready_.clear();
    pending.swap(pending_);
    for (const auto& [xid, p] : pending)
      loop_->CancelTimer(p.deadline, id_, xid);
    loop_->Post([loop = loop_, id = id_] { loop->Finalize(id); });
  }
  if (warn) {
    log::Warning("rpc: {}: closing connection: {}", peer_, reason);
  } else {
    log::Debug("rpc: {}: connection closed: {}", peer_, reason);
  }
  for (auto& [xid, p] : pending) p.done(Status::Closed(reason));
}

bool Connection::WantReadLocked() const {
  if (read_eof_ || closed_) return false;
  const EndpointOptions& o = loop_->options();
  if (ready_.size() >= kReadyCapFactor * o.max_inflight_per_connection) {
    return false;
  }
  // Our own calls wait for replies on this connection: keep reading even
  // when the window is full, or the workers waiting for those replies would
  // deadlock against the pause.
  if (!pending_.empty()) return true;
  return inflight_ < o.max_inflight_per_connection &&
         out_bytes_ < o.max_output_bytes_per_connection;
}

void Connection::UpdateInterestLocked() {
  if (closed_) return;
  uint32_t want = 0;
  if (WantReadLocked()) want |= EPOLLIN | EPOLLRDHUP;
  if (!out_.empty()) want |= EPOLLOUT;
  if (loop_->uring_) {
    interest_ = want;
    if (loop_->InLoopThread()) {
      // Something waits for the ring send to finish (bytes queued behind
      // it, reading paused on output, EOF to close after): its completion
      // must wake the loop even if it comes late (event_loop.h).
      if (ring_send_ && (!out_.empty() || !(want & EPOLLIN))) {
        loop_->notice_waiters_.insert(this);
      }
      ArmRingLocked();
      return;
    }
    bool missing = ((want & EPOLLIN) && !recv_armed_) ||
                   ((want & EPOLLOUT) && !pollout_armed_ && !ring_send_);
    if (missing && !arm_posted_) {
      arm_posted_ = true;
      loop_->Post([self = shared_from_this()] {
        std::lock_guard<std::mutex> lock(self->mu_);
        self->arm_posted_ = false;
        self->ArmRingLocked();
      });
    }
    return;
  }
  if (want != interest_) {
    loop_->SetInterest(fd_, id_, want);
    interest_ = want;
  }
}

void Connection::ArmRingLocked() {
  if (closed_) return;
  // A receive is armed only while reading is wanted; one already armed when
  // backpressure sets in still completes (its bytes are parsed, at most one
  // buffer more than epoll would take) and is then not re-armed.
  if ((interest_ & EPOLLIN) && !recv_armed_) {
    loop_->PrepRecv(this);
    recv_armed_ = true;
  }
  // While the ring sends, its completion flushes what queued behind it.
  if ((interest_ & EPOLLOUT) && !pollout_armed_ && !ring_send_) {
    loop_->PrepPollOut(this);
    pollout_armed_ = true;
  }
}

bool Connection::DrainedAfterEofLocked() const {
  return read_eof_ && !closed_ && inflight_ == 0 && ready_.empty() &&
         out_.empty() && !ring_send_;
}

void Connection::HandleReadable() {
  std::vector<uint8_t>& buf = loop_->scratch_;
  for (int round = 0; round < kReadRounds; ++round) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!WantReadLocked()) {
        UpdateInterestLocked();
        return;
      }
    }
    ssize_t n = ::read(fd_, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      n = -errno;
    }
    if (!OnRead(buf.data(), n)) return;
    if (static_cast<size_t>(n) < buf.size()) return;
  }
}

void Connection::HandleReceived(const uint8_t* data, int res) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    recv_armed_ = false;
    if (closed_) return;
  }
  // No buffer was free (a burst of receives): simply ask again.
  if (res != -ENOBUFS && res != -EAGAIN && res != -EINTR) OnRead(data, res);
  std::lock_guard<std::mutex> lock(mu_);
  UpdateInterestLocked();
}

void Connection::HandlePollOut() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pollout_armed_ = false;
  }
  HandleWritable();
}

bool Connection::OnRead(const uint8_t* data, ssize_t n) {
  if (n > 0) {
    Status st = reader_.Feed({data, static_cast<size_t>(n)});
    DispatchRecords();  // records completed before a bad header still count
    if (!st.ok()) {
      // RFC 5531 §11 gives no way to skip an oversize record: the stream
      // cannot be resynchronized, so the connection goes.
      CloseWithReason(st.ToString(), true);
      return false;
    }
    return true;
  }
  if (n == 0) {
    if (reader_.mid_record()) {
      log::Warning(
          "rpc: {}: stream ended inside a record ({} bytes of it "
          "received); the record is dropped",
          peer_, reader_.partial_bytes());
    }
    bool close_now;
    {
      std::lock_guard<std::mutex> lock(mu_);
      read_eof_ = true;
      // Calls already received are still answered (a client may shut down
      // its sending side and wait for replies); close once they are out.
      close_now = DrainedAfterEofLocked();
      UpdateInterestLocked();
    }
    if (close_now) CloseWithReason("peer closed the connection", false);
    return false;
  }
  CloseWithReason(ErrnoText(static_cast<int>(-n)), false);
  return false;
}

void Connection::DispatchRecords() {
  const Registry& registry = *loop_->registry_;
  std::vector<OutRecord>& inline_replies = inline_out_;
  inline_replies.clear();
  while (std::optional<std::vector<uint8_t>> rec = reader_.Pop()) {
    std::optional<MessagePeek> peek = PeekMessage(*rec);
    if (!peek) {
      log::Warning(
          "rpc: {}: dropped a {}-byte record: too short for an RPC "
          "message",
          peer_, rec->size());
      continue;
    }
    if (peek->msg_type == kReply) {
      CompletePending(peek->xid, std::move(*rec));
      continue;
    }
    if (peek->msg_type != kCall) {
      log::Warning("rpc: {}: dropped a record with msg_type {}", peer_,
                   peek->msg_type);
      continue;
    }
    loop_->calls_.fetch_add(1, std::memory_order_relaxed);
    if (registry.has_inline()) {
      // Served right here when a program's inline handler takes it; its
      // reply may overtake calls still on workers (RPC replies are matched
      // by xid, RFC 5531 §9), and counts against the output limit like any
      // other once queued.
      InlineOutcome done = TryProcessInline(registry, *rec, shared_from_this());
      if (done.served) {
        loop_->inline_calls_.fetch_add(1, std::memory_order_relaxed);
        if (done.reply) {
          inline_replies.push_back(ReplyRecord(std::move(*done.reply), *rec));
        }
        reader_.Recycle(std::move(*rec));  // its buffer takes the next one
        continue;
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    if (inflight_ < loop_->options().max_inflight_per_connection) {
      SubmitLocked(std::move(*rec));
    } else {
      ready_.push_back(std::move(*rec));
    }
  }
  if (!inline_replies.empty()) {
    // Updates the interest mask itself.
    SendAll(inline_replies, /*from_loop=*/true);
    inline_replies.clear();
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  UpdateInterestLocked();
}

bool Connection::SubmitLocked(std::vector<uint8_t> record) {
  ++inflight_;
  bool ok = loop_->pool_->Submit(
      [self = shared_from_this(), r = std::move(record)](
          size_t worker) mutable { self->ServeCall(std::move(r), worker); });
  if (!ok) --inflight_;
  return ok;
}

void Connection::ServeCall(std::vector<uint8_t> record, size_t worker_index) {
  bool open;
  {
    std::lock_guard<std::mutex> lock(mu_);
    open = !closed_;
  }
  if (open) {
    // The registry is owned by the endpoint, which stops its workers before
    // it goes away.
    std::optional<ReplyMessage> reply = ProcessCall(
        *loop_->registry_, record, shared_from_this(), worker_index);
    if (reply && reply->hold) {
      // Sent by whoever releases it; the worker and the call's in-flight
      // slot are free now. Closed meanwhile: Send does nothing.
      Reply::Hold hold = std::move(reply->hold);
      hold([self = shared_from_this(),
            out = std::make_shared<OutRecord>(
                ReplyRecord(std::move(*reply), record))] {
        self->Send(std::move(*out));
      });
    } else if (reply) {
      Send(ReplyRecord(std::move(*reply), record));
    }
  }
  FinishCall();
}

Connection::OutRecord Connection::ReplyRecord(ReplyMessage reply,
                                              std::span<const uint8_t> call) {
  OutRecord out;
  size_t payload = reply.header.size + reply.results.size();
  if (payload > kMaxFragmentLength) {
    // Larger than one fragment can say; never produced by sane handlers.
    log::Error("rpc: {}: reply of {} bytes is too large; answering SYSTEM_ERR",
               peer_, payload);
    std::optional<MessagePeek> peek = PeekMessage(call);
    reply.header = AcceptedReplyHeader(peek ? peek->xid : 0, kSystemErr);
    reply.results.clear();
    payload = reply.header.size;
  }
  const std::array<uint8_t, 4> mark =
      FragmentHeader(static_cast<uint32_t>(payload), true);
  std::memcpy(out.head.data(), mark.data(), mark.size());
  std::memcpy(out.head.data() + mark.size(), reply.header.bytes.data(),
              reply.header.size);
  out.head_len = static_cast<uint8_t>(mark.size() + reply.header.size);
  out.body = std::move(reply.results);
  return out;
}

void Connection::FinishCall() {
  bool close_now = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    --inflight_;
    if (closed_) return;
    while (!ready_.empty() &&
           inflight_ < loop_->options().max_inflight_per_connection) {
      std::vector<uint8_t> rec = std::move(ready_.front());
      ready_.pop_front();
      if (!SubmitLocked(std::move(rec))) break;
    }
    close_now = DrainedAfterEofLocked();
    UpdateInterestLocked();
  }
  if (close_now) CloseWithReason("peer closed the connection", false);
}

bool Connection::SendAll(std::span<OutRecord> recs, bool from_loop) {
  std::string error;
  bool failed = false;
  bool drained_eof = false;
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return false;
    bool was_empty = out_.empty();
    for (OutRecord& rec : recs) {
      out_bytes_ += rec.size();
      out_.push_back(std::move(rec));
    }
    if (ring_send_) {
      // Behind a ring send (never two writers on one socket): the loop
      // flushes when it learns the send is done; tell it to watch for that.
      wake = !loop_->InLoopThread();
    } else if (was_empty && from_loop && loop_->uring_) {
      StartRingSendLocked();
    } else if (was_empty && !FlushLocked(&error)) {
      // Written from this thread when nothing is queued: no hop to the
      // loop. Otherwise the loop already waits for POLLOUT and will flush.
      failed = true;
    }
    if (!failed) {
      drained_eof = DrainedAfterEofLocked();
      UpdateInterestLocked();
    }
  }
  if (wake) {
    loop_->Post([self = shared_from_this()] {
      std::lock_guard<std::mutex> lock(self->mu_);
      self->UpdateInterestLocked();
    });
  }
  AfterFlush(failed, error, drained_eof);
  return !failed;
}

void Connection::AfterFlush(bool failed, const std::string& error,
                            bool drained_eof) {
  if (failed) {
    CloseWithReason(error, false);
  } else if (drained_eof) {
    CloseWithReason("peer closed the connection", false);
  }
}

void Connection::HandleWritable() {
  std::string error;
  bool failed = false;
  bool drained_eof = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    if (!FlushLocked(&error)) {
      failed = true;
    } else {
      drained_eof = DrainedAfterEofLocked();
      UpdateInterestLocked();
    }
  }
  AfterFlush(failed, error, drained_eof);
}

void Connection::StartRingSendLocked() {
  ring_out_.clear();
  ring_bytes_ = 0;
  while (!out_.empty() && 3 * (ring_out_.size() + 1) <= kMaxIov) {
    ring_bytes_ += out_.front().size();
    ring_out_.push_back(std::move(out_.front()));
    out_.pop_front();
  }
  ring_iov_.resize(kMaxIov);
  ring_msg_ = msghdr{};
  ring_msg_.msg_iov = ring_iov_.data();
  ring_msg_.msg_iovlen = GatherIov(ring_out_, 0, ring_iov_.data());
  ring_send_ = true;
  loop_->PrepSend(this);
}

void Connection::RingSendDone(std::optional<int> failure) {
  std::string error;
  bool failed = false;
  bool drained_eof = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ring_send_ = false;
    loop_->notice_waiters_.erase(this);
    if (closed_) {
      ring_out_.clear();
      return;
    }
    size_t sent = ring_bytes_;
    if (failure && *failure < 0) {
      error = ErrnoText(-*failure);
      failed = true;
    } else if (failure) {
      // Cut short after some bytes: the rest goes out first, as usual.
      sent = static_cast<size_t>(*failure);
      for (auto it = ring_out_.rbegin(); it != ring_out_.rend(); ++it) {
        out_.push_front(std::move(*it));
      }
      out_offset_ = 0;
      ConsumeSentLocked(sent);
    } else {
      out_bytes_ -= sent;
    }
    ring_out_.clear();
    if (!failed && !out_.empty()) {
      if (failure) {
        failed = !FlushLocked(&error);
      } else {
        StartRingSendLocked();  // what queued behind, with the next enter
      }
    }
    if (!failed) {
      drained_eof = DrainedAfterEofLocked();
      UpdateInterestLocked();
    }
  }
  AfterFlush(failed, error, drained_eof);
}

bool Connection::FlushLocked(std::string* error) {
  while (!out_.empty() && !ring_send_) {
    iovec iov[kMaxIov];
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = GatherIov(out_, out_offset_, iov);
    // MSG_NOSIGNAL: a peer that went away must cost an EPIPE, not a SIGPIPE.
    ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      *error = ErrnoText(errno);
      return false;
    }
    ConsumeSentLocked(static_cast<size_t>(n));
  }
  return true;
}

void Connection::ConsumeSentLocked(size_t n) {
  out_bytes_ -= n;
  while (n > 0) {
    size_t rest = out_.front().size() - out_offset_;
    if (n >= rest) {
      n -= rest;
      out_.pop_front();
      out_offset_ = 0;
    } else {
      out_offset_ += n;
      n = 0;
    }
  }
}

void Connection::CompletePending(uint32_t xid, std::vector<uint8_t> record) {
  Pending p;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pending_.find(xid);
    if (it == pending_.end()) {
      // A reply after its call timed out, or one we never asked for.
      log::Debug("rpc: {}: REPLY with unknown xid {:#x} dropped", peer_, xid);
      return;
    }
    p = std::move(it->second);
    pending_.erase(it);
    loop_->CancelTimer(p.deadline, id_, xid);
    UpdateInterestLocked();
  }
  Result<size_t> offset = DecodeReply(record);
  if (offset.ok()) {
    p.done(ReplyBody(std::move(record), *offset));
  } else {
    p.done(offset.status());
  }
}

void Connection::ExpireCall(uint32_t xid) {
  Pending p;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pending_.find(xid);
    if (it == pending_.end()) return;
    p = std::move(it->second);
    pending_.erase(it);
    UpdateInterestLocked();
  }
  p.done(Status::Timeout(
      fmt::format("no reply from {} to xid {:#x}", peer_, xid)));
}

void Connection::StartCall(const CallOptions& options,
                           std::vector<uint8_t> args,
                           std::function<void(Result<ReplyBody>)> done) {
  uint32_t xid = next_xid_.fetch_add(1);
  XdrEncoder enc(64 + options.cred.body.size());
  Status st = EncodeCallHeader(enc, xid, options.prog, options.vers,
                               options.proc, options.cred);
  if (!st.ok()) {
    done(st);
    return;
  }
  OutRecord rec;
  rec.header = enc.Take();
  rec.body = std::move(args);
  size_t payload = rec.header.size() + rec.body.size();
  if (payload > kMaxFragmentLength) {
    done(Status::InvalidArgument("call larger than one RPC fragment"));
    return;
  }
  const std::array<uint8_t, 4> mark =
      FragmentHeader(static_cast<uint32_t>(payload), true);
  std::memcpy(rec.head.data(), mark.data(), mark.size());
  auto deadline = std::chrono::steady_clock::now() + options.timeout;
  bool registered = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // A clash needs 2^32 calls outstanding on one connection; refuse it
    // rather than misroute a reply.
    if (!closed_ && pending_.count(xid) == 0) {
      pending_.emplace(xid, Pending{std::move(done), deadline});
      loop_->AddTimer(deadline, id_, xid);
      UpdateInterestLocked();
      registered = true;
    }
  }
  if (!registered) {
    done(Status::Closed("connection is closed"));
    return;
  }
  // If the send fails the connection closes, which fails the pending call.
  Send(std::move(rec));
}

Result<ReplyBody> Connection::Call(const CallOptions& options,
                                   std::vector<uint8_t> args) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return Status::Closed("connection is closed");
    if (loop_->InLoopThread()) {
      return Status::InvalidArgument(
          "Connection::Call on the event-loop thread would wait for itself");
    }
  }
  struct Waiter {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Result<ReplyBody>> result;
  };
  auto w = std::make_shared<Waiter>();
  StartCall(options, std::move(args), [w](Result<ReplyBody> r) {
    {
      std::lock_guard<std::mutex> lock(w->mu);
      w->result.emplace(std::move(r));
    }
    w->cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(w->mu);
  // The loop's timer completes the call at its deadline; the margin only
  // matters if the loop itself is wedged.
  if (!w->cv.wait_for(lock, options.timeout + std::chrono::seconds(5),
                      [&] { return w->result.has_value(); })) {
    return Status::Timeout("no completion from the event loop");
  }
  return std::move(*w->result);
}

void Connection::CallAsync(const CallOptions& options,
                           std::vector<uint8_t> args, ReplyCallback done) {
  WorkerPool* pool;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) {
      pool = nullptr;
    } else {
      pool = loop_->pool_;
    }
  }
  if (pool == nullptr) {
    done(Status::Closed("connection is closed"));
    return;
  }
  // Completions arrive on the event-loop thread; user code runs on a worker
  // so that it may block or make further calls.
  StartCall(options, std::move(args),
            [pool, done = std::move(done)](Result<ReplyBody> r) {
              auto shared = std::make_shared<Result<ReplyBody>>(std::move(r));
              if (!pool->Submit(
                      [done, shared](size_t) { done(std::move(*shared)); })) {
                done(std::move(*shared));
              }
            });
}

}  // namespace rpc
