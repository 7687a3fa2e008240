#include "rpc/program.h"

#include <exception>
#include <mutex>
#include <string>

#include "rpc/connection.h"
#include "rpc/log.h"

namespace rpc {

Reply Reply::Success(std::vector<uint8_t> results) {
  Reply r(Kind::kAccepted, kSuccess);
  r.results_ = std::move(results);
  return r;
}
Reply Reply::GarbageArgs() { return Reply(Kind::kAccepted, kGarbageArgs); }
Reply Reply::SystemErr() { return Reply(Kind::kAccepted, kSystemErr); }
Reply Reply::ProcUnavail() { return Reply(Kind::kAccepted, kProcUnavail); }
Reply Reply::AuthError(uint32_t auth_stat) {
  return Reply(Kind::kAuthError, auth_stat);
}
Reply Reply::Drop() { return Reply(Kind::kDrop, 0); }

Program::Program(uint32_t number, uint32_t low_version, uint32_t high_version)
    : number_(number), low_(low_version), high_(high_version) {}

Program& Program::WithNull() {
  On(0, [](const CallContext&, std::span<const uint8_t>) {
    return Reply::Void();
  });
  return OnInline(0, [](const CallContext&, std::span<const uint8_t>) {
    return std::optional<Reply>(Reply::Void());
  });
}

Program& Program::On(uint32_t proc, Handler handler) {
  procs_[proc] = std::move(handler);
  return *this;
}

Program& Program::OnInline(uint32_t proc, InlineHandler handler) {
  inline_procs_[proc] = std::move(handler);
  return *this;
}

Program& Program::Finally(
    std::function<void(const CallContext&, Reply&)> finish) {
  for (auto& [proc, handler] : procs_) {
    handler = [inner = std::move(handler), finish](
                  const CallContext& ctx, std::span<const uint8_t> args) {
      Reply reply = inner(ctx, args);
      finish(ctx, reply);
      return reply;
    };
  }
  return *this;
}

Reply Program::Dispatch(const CallContext& ctx,
                        std::span<const uint8_t> args) const {
  auto it = procs_.find(ctx.proc);
  if (it == procs_.end()) return Reply::ProcUnavail();
  return it->second(ctx, args);
}

std::optional<Reply> Program::DispatchInline(
    const CallContext& ctx, std::span<const uint8_t> args) const {
  auto it = inline_procs_.find(ctx.proc);
  if (it == inline_procs_.end()) return std::nullopt;
  return it->second(ctx, args);
}

void Registry::UpdateHasInlineLocked() {
  bool any = false;
  for (const auto& [number, p] : programs_) any = any || p->has_inline();
  has_inline_.store(any, std::memory_order_release);
}

void Registry::Add(Program program) {
  auto p = std::make_shared<const Program>(std::move(program));
  std::unique_lock lock(mu_);
  auto [begin, end] = programs_.equal_range(p->number());
  for (auto it = begin; it != end;) {
    const Program& old = *it->second;
    bool overlaps = old.low_version() <= p->high_version() &&
                    p->low_version() <= old.high_version();
    it = overlaps ? programs_.erase(it) : std::next(it);
  }
  programs_.emplace(p->number(), std::move(p));
  UpdateHasInlineLocked();
}

void Registry::Remove(uint32_t number) {
  std::unique_lock lock(mu_);
  programs_.erase(number);
  UpdateHasInlineLocked();
}

std::shared_ptr<const Program> Registry::Find(uint32_t prog, uint32_t vers,
                                              bool* known, uint32_t* low,
                                              uint32_t* high) const {
  std::shared_lock lock(mu_);
  auto [begin, end] = programs_.equal_range(prog);
  *known = begin != end;
  *low = UINT32_MAX;
  *high = 0;
  for (auto it = begin; it != end; ++it) {
    const Program& p = *it->second;
    if (vers >= p.low_version() && vers <= p.high_version()) return it->second;
    *low = std::min(*low, p.low_version());
    *high = std::max(*high, p.high_version());
  }
  if (!*known) *low = 0;
  return nullptr;
}

namespace {

std::string PeerOf(const std::shared_ptr<Connection>& c) {
  return c ? c->peer() : std::string("(no connection)");
}

InlineOutcome Send(const ReplyHeader& header,
                   std::vector<uint8_t> results = {}) {
  return {true, ReplyMessage{header, std::move(results), {}}};
}

InlineOutcome Accepted(uint32_t xid, uint32_t stat, uint32_t low = 0,
                       uint32_t high = 0) {
  return Send(AcceptedReplyHeader(xid, stat, low, high));
}

// ProcessCall and TryProcessInline: one path, so that both apply RFC 5531's
// rules the same way. `on_loop` runs the inline handler instead of the
// worker's; `served` false means it declined.
InlineOutcome Serve(const Registry& registry, std::span<const uint8_t> record,
                    std::shared_ptr<Connection> connection,
                    size_t worker_index, bool on_loop) {
  CallHeaderDecode d = DecodeCallHeader(record);
  const CallHeader& h = d.header;
  switch (d.outcome) {
    case CallHeaderDecode::Outcome::kDrop:
      log::Warning("rpc: {}: dropped a {}-byte call: {}", PeerOf(connection),
                   record.size(), d.reason);
      return {true, std::nullopt};
    case CallHeaderDecode::Outcome::kRpcMismatch:
      log::Warning("rpc: {}: xid {:#x}: RPC version {} (only 2 is spoken)",
                   PeerOf(connection), h.xid, h.rpcvers);
      return Send(RpcMismatchReplyHeader(h.xid, kRpcVersion, kRpcVersion));
    case CallHeaderDecode::Outcome::kAuthError:
      log::Warning("rpc: {}: xid {:#x}: {}", PeerOf(connection), h.xid,
                   d.reason);
      return Send(AuthErrorReplyHeader(h.xid, d.auth_stat));
    case CallHeaderDecode::Outcome::kOk:
      break;
  }

  AuthCheck auth = Authenticate(h);
  if (!auth.ok()) {
    log::Warning(
        "rpc: {}: xid {:#x}: credential flavor {} refused (auth_stat {})",
        PeerOf(connection), h.xid, h.cred.flavor, auth.auth_stat);
    return Send(AuthErrorReplyHeader(h.xid, auth.auth_stat));
  }

  bool known;
  uint32_t low, high;
  std::shared_ptr<const Program> program =
      registry.Find(h.prog, h.vers, &known, &low, &high);
  if (!program) {
    if (!known) {
      log::Debug("rpc: {}: xid {:#x}: program {} not offered",
                 PeerOf(connection), h.xid, h.prog);
      return Accepted(h.xid, kProgUnavail);
    }
    log::Debug("rpc: {}: xid {:#x}: program {} version {} not offered",
               PeerOf(connection), h.xid, h.prog, h.vers);
    return Accepted(h.xid, kProgMismatch, low, high);
  }

  CallContext ctx;
  ctx.xid = h.xid;
  ctx.prog = h.prog;
  ctx.vers = h.vers;
  ctx.proc = h.proc;
  ctx.record_size = record.size();
  ctx.cred = std::move(auth.creds);
  ctx.connection = std::move(connection);
  ctx.worker_index = worker_index;
  ctx.on_loop_thread = on_loop;

  std::optional<Reply> reply;
  try {
    std::span<const uint8_t> args = record.subspan(h.args_offset);
    if (on_loop) {
      reply = program->DispatchInline(ctx, args);
      if (!reply) return {false, std::nullopt};
    } else {
      reply.emplace(program->Dispatch(ctx, args));
    }
  } catch (const std::exception& e) {
    // Handlers report errors as values; an exception is a server bug.
    log::Error("rpc: program {} proc {} threw: {}", h.prog, h.proc, e.what());
    return Accepted(h.xid, kSystemErr);
  } catch (...) {
    log::Error("rpc: program {} proc {} threw a non-exception", h.prog, h.proc);
    return Accepted(h.xid, kSystemErr);
  }
  if (reply->dropped()) return {true, std::nullopt};
  if (reply->is_auth_error()) {
    return Send(AuthErrorReplyHeader(h.xid, reply->stat()));
  }
  if (reply->stat() != kSuccess) {
    if (reply->stat() == kGarbageArgs) {
      log::Warning(
          "rpc: {}: xid {:#x}: program {} proc {}: arguments do not decode",
          PeerOf(ctx.connection), h.xid, h.prog, h.proc);
    }
    return Accepted(h.xid, reply->stat());
  }
  InlineOutcome out =
      Send(AcceptedReplyHeader(h.xid, kSuccess), reply->TakeResults());
  out.reply->hold = reply->TakeHold();
  return out;
}

}  // namespace

std::optional<ReplyMessage> ProcessCall(const Registry& registry,
                                        std::span<const uint8_t> record,
                                        std::shared_ptr<Connection> connection,
                                        size_t worker_index) {
  return Serve(registry, record, std::move(connection), worker_index, false)
      .reply;
}

InlineOutcome TryProcessInline(const Registry& registry,
                               std::span<const uint8_t> record,
                               std::shared_ptr<Connection> connection) {
  return Serve(registry, record, std::move(connection), 0, true);
}

}  // namespace rpc
