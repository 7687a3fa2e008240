#pragma once

// RPC programs and the server side of one call.
//
// A Program is a program number, a range of versions and a handler per
// procedure. A Registry holds the programs a server (or a client's
// backchannel) answers. ProcessCall() turns one received CALL record into
// the reply to send, applying RFC 5531 §9's rules in one place:
//
//   rpcvers != 2                      -> MSG_DENIED RPC_MISMATCH (2, 2)
//   credential/verifier malformed     -> MSG_DENIED AUTH_ERROR AUTH_BADCRED/
//                                        AUTH_BADVERF
//   flavor not accepted               -> MSG_DENIED AUTH_ERROR (see
//                                        Authenticate() in rpc/message.h)
//   program not registered            -> PROG_UNAVAIL
//   version outside every range       -> PROG_MISMATCH (lowest, highest)
//   procedure not registered          -> PROC_UNAVAIL
//   handler could not decode its args -> GARBAGE_ARGS (the handler says so)
//   handler failed unexpectedly       -> SYSTEM_ERR
//
// Handlers only decode their arguments, do their work and encode results.
//
// Inline handlers (Program::OnInline): a procedure may also offer a cheap
// handler that the event-loop thread tries first, before handing the call to
// a worker. It answers calls it can serve from memory without blocking (no
// database, no disk, no waiting on another thread) and declines the rest
// (nullopt), which then go to a worker exactly as without it. This saves the
// loop -> worker -> socket hand-off (an eventfd/futex wake-up and two
// context switches), which costs more than a trivial call itself.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "rpc/message.h"

namespace rpc {

class Connection;

// What a handler knows about the call it serves.
struct CallContext {
  uint32_t xid = 0;
  uint32_t prog = 0;
  uint32_t vers = 0;
  uint32_t proc = 0;
  // Size of the whole call record (RPC header and arguments): what
  // NFSv4.1 compares with the session's ca_maxrequestsize (RFC 8881
  // §2.10.6.4, §18.36.3).
  size_t record_size = 0;
  // The authenticated caller (AUTH_NONE or AUTH_SYS).
  Credentials cred;
  // The connection the call arrived on: for session binding, the peer
  // address, and backchannel calls (RFC 8881 §2.10.3.1). Null when a call is
  // processed without a socket (unit tests, fuzzing).
  std::shared_ptr<Connection> connection;
  // Index of the worker thread running the handler, in [0, worker_threads):
  // lets a handler use per-thread resources such as a database connection
  // set up by the server's on_worker_start hook. Meaningless (0) when
  // `on_loop_thread`.
  size_t worker_index = 0;
  // The call is being tried by an inline handler on the event-loop thread,
  // which must not block.
  bool on_loop_thread = false;
};

// A handler's answer.
class Reply {
 public:
  // SUCCESS with XDR-encoded results (moved, never copied).
  static Reply Success(std::vector<uint8_t> results);
  // SUCCESS with no results, e.g. the NULL procedure.
  static Reply Void() { return Success({}); }
  // The arguments did not decode (RFC 5531 GARBAGE_ARGS).
  static Reply GarbageArgs();
  // The server failed in a way that is not the caller's fault (SYSTEM_ERR).
  static Reply SystemErr();
  // The procedure is not offered, decided by the handler (PROC_UNAVAIL).
  static Reply ProcUnavail();
  // MSG_DENIED AUTH_ERROR, e.g. AUTH_TOOWEAK when a program requires a
  // stronger flavor than the call carries.
  static Reply AuthError(uint32_t auth_stat);
  // Send nothing. RFC 5531 allows a server to drop a call (the client
  // retransmits), e.g. a duplicate of a call still in progress.
  static Reply Drop();

  // Holds the reply back: instead of sending it, the connection calls
  // `hold` with a function that sends it, which `hold` runs later on any
  // thread (or never, to drop it), e.g. once what the reply acknowledges
  // is on disk. Not for inline handlers.
  using Hold = std::function<void(std::function<void()> send)>;
  Reply& SendAfter(Hold hold) {
    hold_ = std::move(hold);
    return *this;
  }
  Hold TakeHold() { return std::move(hold_); }

  bool dropped() const { return kind_ == Kind::kDrop; }
  bool is_auth_error() const { return kind_ == Kind::kAuthError; }
  // accept_stat for an accepted reply; auth_stat for an auth error.
  uint32_t stat() const { return stat_; }
  const std::vector<uint8_t>& results() const { return results_; }
  std::vector<uint8_t> TakeResults() { return std::move(results_); }

 private:
  enum class Kind { kAccepted, kAuthError, kDrop };
  Reply(Kind kind, uint32_t stat) : kind_(kind), stat_(stat) {}
  Kind kind_;
  uint32_t stat_;
  std::vector<uint8_t> results_;
  Hold hold_;
};

// Runs one procedure. `args` are the XDR-encoded arguments (the rest of the
// call record). Must be thread-safe: handlers run concurrently on workers.
using Handler =
    std::function<Reply(const CallContext& ctx, std::span<const uint8_t> args)>;

// Tries a procedure on the event-loop thread: the answer, or nullopt to
// have the call served by the procedure's Handler on a worker. Must not
// block and must be thread-safe (it runs concurrently with workers). A
// declined call must have left no trace: the worker serves it from scratch.
using InlineHandler = std::function<std::optional<Reply>(
    const CallContext& ctx, std::span<const uint8_t> args)>;

// One program: a number, a version range and its procedures.
class Program {
 public:
  Program(uint32_t number, uint32_t low_version, uint32_t high_version);

  // Answers procedure 0 with an empty SUCCESS (inline: it never blocks).
  // By ONC RPC convention every program's procedure 0 takes no arguments and
  // returns nothing; clients use it to probe that the server is up
  // (NFSPROC4_NULL, CB_NULL).
  Program& WithNull();
  // Registers `handler` for `proc` in every version of the range.
  Program& On(uint32_t proc, Handler handler);
  // Registers an inline handler for `proc`, tried before `On`'s handler
  // (see the top of this file). REQUIRES: `proc` also has an On handler.
  Program& OnInline(uint32_t proc, InlineHandler handler);
  // Runs `finish` on the reply of every worker handler registered so far
  // (not the inline ones), e.g. to hold it back with Reply::SendAfter.
  Program& Finally(std::function<void(const CallContext&, Reply&)> finish);
  bool has_inline() const { return !inline_procs_.empty(); }

  uint32_t number() const { return number_; }
  uint32_t low_version() const { return low_; }
  uint32_t high_version() const { return high_; }

  // Runs the procedure, or answers PROC_UNAVAIL.
  Reply Dispatch(const CallContext& ctx, std::span<const uint8_t> args) const;
  // Runs the procedure's inline handler: nullopt if it has none or it
  // declined.
  std::optional<Reply> DispatchInline(const CallContext& ctx,
                                      std::span<const uint8_t> args) const;

 private:
  uint32_t number_;
  uint32_t low_;
  uint32_t high_;
  std::map<uint32_t, Handler> procs_;
  std::map<uint32_t, InlineHandler> inline_procs_;
};

// The programs one endpoint answers.
//
// Thread safety: all methods may be called concurrently; a program added or
// removed while calls are in flight affects calls that arrive afterwards.
class Registry {
 public:
  // Adds `program`, replacing any registration with the same number whose
  // version range overlaps it.
  void Add(Program program);
  // Removes every version range of `number`.
  void Remove(uint32_t number);

  // Looks up the program serving (prog, vers). On a miss, `*low`/`*high`
  // receive the version range registered for `prog` (for PROG_MISMATCH) and
  // `*known` whether `prog` is registered at all.
  std::shared_ptr<const Program> Find(uint32_t prog, uint32_t vers, bool* known,
                                      uint32_t* low, uint32_t* high) const;
  // Whether any program registered has an inline handler: if none, the
  // event loop hands every call to a worker without looking at it.
  bool has_inline() const {
    return has_inline_.load(std::memory_order_acquire);
  }

 private:
  void UpdateHasInlineLocked();
  mutable std::shared_mutex mu_;
  std::multimap<uint32_t, std::shared_ptr<const Program>> programs_;
  std::atomic<bool> has_inline_{false};
};

// A reply as two buffers: the RPC reply header (inline, no allocation) and
// the procedure's results. They are written with one sendmsg, so results are
// never copied to prepend the header.
struct ReplyMessage {
  ReplyHeader header;
  std::vector<uint8_t> results;
  Reply::Hold hold;  // see Reply::SendAfter
};

// Serves one received CALL record (without record marking): decode the
// header, authenticate, find the program and run its handler. Returns the
// reply, or nullopt when nothing can or must be sent (an undecodable header,
// a handler's Drop). `connection` may be null; it is passed to the handler
// and used to name the peer in logs.
std::optional<ReplyMessage> ProcessCall(const Registry& registry,
                                        std::span<const uint8_t> record,
                                        std::shared_ptr<Connection> connection,
                                        size_t worker_index);

// ProcessCall on the event-loop thread, for calls an inline handler
// answers. `served` false: nothing was done, give the call to a worker
// (ProcessCall). Otherwise `reply` is what ProcessCall would have returned.
// Calls whose header is refused (RPC_MISMATCH, AUTH_ERROR, PROG_UNAVAIL,
// ...) are answered here too: that costs no more than handing them over.
struct InlineOutcome {
  bool served = false;
  std::optional<ReplyMessage> reply;
};
InlineOutcome TryProcessInline(const Registry& registry,
                               std::span<const uint8_t> record,
                               std::shared_ptr<Connection> connection);

}  // namespace rpc
