#include "rpc/fuzz.h"

#include <algorithm>

#include "rpc/message.h"
#include "rpc/program.h"
#include "rpc/record.h"
#include "rpc/xdr_codec.h"

namespace rpc {
namespace {

// Small, so that oversize records are common in random input.
constexpr size_t kFuzzMaxRecord = 64 * 1024;

// The toy program: 0 NULL; 1 sums a list of opaque<64> lengths (variable
// arrays, bounds); 2 echoes an AUTH_SYS body given as an argument (nested
// decoding); 3 decodes a fixed struct of uint64s with exact length.
const Registry& FuzzRegistry() {
  static const Registry* registry = [] {
    auto* r = new Registry();
    r->Add(Program(kFuzzProgram, 1, 2)
               .WithNull()
               .On(1,
                   [](const CallContext&, std::span<const uint8_t> args) {
                     XdrDecoder dec(args);
                     std::optional<uint32_t> n = dec.GetUint32();
                     if (!n || *n > 1024) return Reply::GarbageArgs();
                     uint64_t total = 0;
                     for (uint32_t i = 0; i < *n; ++i) {
                       auto o = dec.GetOpaque(64);
                       if (!o) return Reply::GarbageArgs();
                       total += o->size();
                     }
                     XdrEncoder enc;
                     enc.PutUint64(total);
                     return Reply::Success(enc.Take());
                   })
               .On(2,
                   [](const CallContext&, std::span<const uint8_t> args) {
                     XdrDecoder dec(args);
                     auto body = dec.GetOpaque(kMaxAuthBytes);
                     if (!body) return Reply::GarbageArgs();
                     auto parms = DecodeAuthSys(*body);
                     if (!parms) return Reply::GarbageArgs();
                     return Reply::Success(EncodeAuthSys(*parms));
                   })
               .On(3, [](const CallContext&, std::span<const uint8_t> args) {
                 if (args.size() != 24) return Reply::GarbageArgs();
                 XdrDecoder dec(args);
                 uint64_t sum = 0;
                 for (int i = 0; i < 3; ++i) sum += dec.GetUint64().value_or(0);
                 XdrEncoder enc;
                 enc.PutUint64(sum);
                 return Reply::Success(enc.Take());
               }));
    return r;
  }();
  return *registry;
}

}  // namespace

size_t FuzzServerInput(std::span<const uint8_t> data) {
  const Registry& registry = FuzzRegistry();
  RecordReader reader(kFuzzMaxRecord);
  // The first byte picks how the stream is chopped into reads, so that
  // fragment headers and bodies get split at every possible point.
  size_t chunk = data.empty() ? 1 : (data[0] % 61) + 1;
  size_t records = 0;
  for (size_t pos = 0; pos < data.size(); pos += chunk) {
    size_t n = std::min(chunk, data.size() - pos);
    Status st = reader.Feed(data.subspan(pos, n));
    while (std::optional<std::vector<uint8_t>> rec = reader.Pop()) {
      ++records;
      std::optional<MessagePeek> peek = PeekMessage(*rec);
      if (!peek) continue;
      if (peek->msg_type == kReply) {
        Result<size_t> r = DecodeReply(*rec);
        if (r.ok() && *r > rec->size()) __builtin_trap();
        continue;
      }
      // The event loop's path first (NULL is answered inline), as a
      // connection would; what it declines goes the worker's way.
      InlineOutcome inl = TryProcessInline(registry, *rec, nullptr);
      std::optional<ReplyMessage> reply =
          inl.served ? std::move(inl.reply)
                     : ProcessCall(registry, *rec, nullptr, 0);
      if (reply) {
        // A reply must itself decode as a reply to the same xid.
        std::vector<uint8_t> whole(reply->header.view().begin(),
                                   reply->header.view().end());
        whole.insert(whole.end(), reply->results.begin(), reply->results.end());
        std::optional<MessagePeek> rp = PeekMessage(whole);
        if (!rp || rp->xid != peek->xid || rp->msg_type != kReply) {
          __builtin_trap();
        }
        (void)DecodeReply(whole);
      }
    }
    if (!st.ok()) break;  // a connection would be closed here
  }
  return records;
}

std::vector<uint8_t> FuzzSeedCall(uint32_t proc, uint32_t fragment) {
  XdrEncoder enc;
  AuthSysParms sys;
  sys.stamp = 7;
  sys.machine_name = "fuzzhost";
  sys.uid = 1000;
  sys.gid = 100;
  sys.gids = {100, 200};
  (void)EncodeCallHeader(enc, 0x1234 + proc, kFuzzProgram, 1, proc,
                         Credential::Sys(sys));
  switch (proc) {
    case 1:
      enc.PutUint32(2);
      enc.PutString("abc");
      enc.PutString("defgh");
      break;
    case 2:
      enc.PutOpaque(EncodeAuthSys(sys));
      break;
    case 3:
      enc.PutUint64(1);
      enc.PutUint64(2);
      enc.PutUint64(3);
      break;
    default:
      break;
  }
  std::vector<uint8_t> payload = enc.Take();
  return FrameRecord(payload, fragment);
}

}  // namespace rpc
