#pragma once

// One TCP connection carrying ONC RPC records in both directions.
//
// A connection is symmetric: whichever side opened it, it can receive CALLs
// (served by the owning endpoint's Registry on its worker pool, replies
// written as workers finish, in any order) and can send CALLs of its own and
// receive their REPLYs (matched by xid). The second direction is what an
// NFSv4.1 server needs for callbacks over the fore channel's connection
// (RFC 8881 §2.10.3.1): a REPLY arriving on a server connection goes to the
// server's waiting caller, never to the registry.
//
// Connections are created by a Server (accepted) or a Client (connected) and
// handed out as std::shared_ptr; holding one never keeps the socket open once
// it is closed, and every method is safe on a closed connection (calls fail
// with Status::Closed) even after the Server or Client is gone.
//
// Thread safety: all public methods may be called from any thread, except
// that the blocking Call() must not be called from the event-loop thread
// (the thread that runs on-open/on-close hooks), which delivers its reply.

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "rpc/message.h"
#include "rpc/program.h"
#include "rpc/record.h"
#include "rpc/status.h"

namespace rpc {

class EventLoop;

// The results of a successful call: the reply record and where the
// procedure's results start in it (no copy is made to strip the header).
class ReplyBody {
 public:
  ReplyBody(std::vector<uint8_t> record, size_t results_offset)
      : record_(std::move(record)), offset_(results_offset) {}
  // XDR-encoded results of the procedure.
  std::span<const uint8_t> results() const {
    return std::span<const uint8_t>(record_).subspan(offset_);
  }

 private:
  std::vector<uint8_t> record_;
  size_t offset_;
};

// What to call.
struct CallOptions {
  uint32_t prog = 0;
  uint32_t vers = 0;
  uint32_t proc = 0;
  Credential cred;  // AUTH_NONE unless set
  // How long to wait for the reply.
  std::chrono::milliseconds timeout{30000};
};

// Receives the outcome of CallAsync: the results, or Timeout, Closed,
// RpcMismatch, AuthError, NotExecuted (PROG_UNAVAIL, ...), Malformed.
using ReplyCallback = std::function<void(Result<ReplyBody>)>;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Unique per process; stable for the connection's life.
  uint64_t id() const { return id_; }
  // The peer's address, "127.0.0.1:40512" or "[::1]:40512".
  const std::string& peer() const { return peer_; }
  // The peer's and our own socket address (export client-network checks,
  // which local address a multi-homed server was reached on).
  const sockaddr_storage& peer_address() const { return peer_addr_; }
  const sockaddr_storage& local_address() const { return local_addr_; }
  bool IsOpen() const;

  // Closes the connection: in-flight outgoing calls fail with Closed, replies
  // not yet written are dropped, and the owner's on-close hook runs (on the
  // event-loop thread). Idempotent.
  void Close();

  // Sends a CALL and waits for its REPLY. `args` are the XDR-encoded
  // procedure arguments. Returns the results, or the error (see
  // ReplyCallback). REQUIRES: not called on the event-loop thread.
  Result<ReplyBody> Call(const CallOptions& options, std::vector<uint8_t> args);

  // Sends a CALL; `done` runs exactly once, on a worker thread of the owning
  // endpoint (or inline if that pool is stopped), with the outcome.
  void CallAsync(const CallOptions& options, std::vector<uint8_t> args,
                 ReplyCallback done);

  // Counters for tests and metrics.
  size_t calls_in_flight() const;   // received CALLs being served
  size_t outgoing_pending() const;  // our CALLs awaiting a REPLY

 private:
  friend class EventLoop;

  // One record to write: record mark, RPC header, body (kept apart so a
  // large body is written in place by sendmsg). A reply's header is short
  // and sits inline after the mark in `head` (no allocation per reply); a
  // call's header, which carries a credential of up to 400 bytes, is in
  // `header`.
  struct OutRecord {
    std::array<uint8_t, 4 + sizeof(ReplyHeader::bytes)> head{};
    uint8_t head_len = 4;  // the mark, and a reply's header
    std::vector<uint8_t> header;
    std::vector<uint8_t> body;
    size_t size() const { return head_len + header.size() + body.size(); }
  };
  struct Pending {
    std::function<void(Result<ReplyBody>)> done;
    std::chrono::steady_clock::time_point deadline;
  };

  Connection(EventLoop* loop, int fd, uint64_t id, std::string peer,
             size_t max_record_size);

  // --- event-loop thread ---
  // epoll: reads what the socket has; feeds records to dispatch.
  void HandleReadable();
  void HandleWritable();
  // What one read brought, for both backends: n > 0 bytes at `data`, 0 for
  // EOF, -errno for an error. Returns whether reading may go on.
  bool OnRead(const uint8_t* data, ssize_t n);
  // io_uring: a receive completed (as OnRead); a POLLOUT fired; the ring
  // send finished (nullopt: every byte queued; else the failure's res).
  void HandleReceived(const uint8_t* data, int res);
  void HandlePollOut();
  void RingSendDone(std::optional<int> failure);
  // Routes complete records: CALLs to an inline handler (program.h) or to
  // workers, REPLYs to waiters. Inline replies of one batch of records are
  // written together (one sendmsg).
  void DispatchRecords();
  void CompletePending(uint32_t xid, std::vector<uint8_t> record);

  // --- any thread ---
  void ServeCall(std::vector<uint8_t> record, size_t worker_index);
  bool SubmitLocked(std::vector<uint8_t> record);  // REQUIRES: mu_ held
  void FinishCall();
  // Queues `recs` and writes what the socket takes now; `from_loop`: the
  // loop thread's inline replies, which the io_uring backend sends with its
  // next io_uring_enter.
  bool Send(OutRecord rec) { return SendAll({&rec, 1}); }
  bool SendAll(std::span<OutRecord> recs, bool from_loop = false);
  // The record carrying `reply` to the call `call` (SYSTEM_ERR if it is too
  // large for one fragment).
  OutRecord ReplyRecord(ReplyMessage reply, std::span<const uint8_t> call);
  void ExpireCall(uint32_t xid);
  void CloseWithReason(const std::string& reason, bool warn);
  void StartCall(const CallOptions& options, std::vector<uint8_t> args,
                 std::function<void(Result<ReplyBody>)> done);

  // REQUIRES: mu_ held.
  // Writes queued output until done or EAGAIN; false on a socket error.
  // Does nothing while a ring send is in flight (its completion flushes).
  bool FlushLocked(std::string* error);
  // Drops `n` written bytes from the front of out_.
  void ConsumeSentLocked(size_t n);
  // io_uring, loop thread: hands out_'s head to the ring.
  void StartRingSendLocked();
  bool WantReadLocked() const;
  void UpdateInterestLocked();
  // io_uring: arms the receive / POLLOUT that interest_ asks for (on the
  // loop thread; other threads post it there).
  void ArmRingLocked();
  bool DrainedAfterEofLocked() const;
  // After a flush: closes on `error`, or once drained after EOF.
  void AfterFlush(bool failed, const std::string& error, bool drained_eof);

  EventLoop* const loop_;  // valid while the connection is open
  const int fd_;
  const uint64_t id_;
  const std::string peer_;
  sockaddr_storage peer_addr_{};
  sockaddr_storage local_addr_{};
  std::atomic<uint32_t> next_xid_;

  // Event-loop thread only.
  RecordReader reader_;
  // Inline replies of one batch of records (DispatchRecords); kept to reuse
  // its capacity.
  std::vector<OutRecord> inline_out_;

  mutable std::mutex mu_;
  bool closed_ = false;                     // guarded by mu_
  bool read_eof_ = false;                   // guarded by mu_
  uint32_t interest_ = 0;                   // epoll mask; guarded by mu_
  // io_uring backend, guarded by mu_: what is armed in the ring; an arm
  // posted to the loop; the send in flight (its records, iovecs, header
  // and bytes stay put until the kernel is done with them).
  bool recv_armed_ = false;
  bool pollout_armed_ = false;
  bool arm_posted_ = false;
  bool ring_send_ = false;
  std::vector<OutRecord> ring_out_;
  std::vector<iovec> ring_iov_;
  msghdr ring_msg_{};
  size_t ring_bytes_ = 0;
  // io_uring, loop thread only: requests in the ring and the reference that
  // keeps this connection alive while there are any.
  size_t ring_ops_ = 0;
  std::shared_ptr<Connection> ring_self_;
  std::deque<OutRecord> out_;               // guarded by mu_
  size_t out_offset_ = 0;                   // of out_.front(); guarded by mu_
  size_t out_bytes_ = 0;                    // unwritten; guarded by mu_
  size_t inflight_ = 0;                     // guarded by mu_
  std::deque<std::vector<uint8_t>> ready_;  // guarded by mu_
  std::unordered_map<uint32_t, Pending> pending_;  // guarded by mu_
};

}  // namespace rpc
