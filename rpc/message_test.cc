#include "rpc/message.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "rpc/log.h"
#include "rpc/program.h"

namespace rpc {
namespace {

constexpr uint32_t kProg = 0x20000123;

AuthSysParms SampleSys() {
  AuthSysParms p;
  p.stamp = 42;
  p.machine_name = "client.example.org";
  p.uid = 1000;
  p.gid = 100;
  p.gids = {100, 4, 27};
  return p;
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

// Words of a record, for hand-made headers.
std::vector<uint8_t> Words(std::initializer_list<uint32_t> words) {
  XdrEncoder enc;
  for (uint32_t w : words) enc.PutUint32(w);
  return enc.Take();
}

class QuietLogs : public ::testing::Test {
 protected:
  void SetUp() override { log::SetLevel(log::Level::kError); }
  void TearDown() override { log::SetLevel(log::Level::kInfo); }
};

TEST(MessageTest, CallHeaderRoundTrip) {
  std::vector<uint8_t> args = {0, 0, 0, 9};
  std::vector<uint8_t> rec =
      CallRecord(0xabcdef01, kProg, 3, 7, Credential::Sys(SampleSys()), args);
  CallHeaderDecode d = DecodeCallHeader(rec);
  ASSERT_EQ(d.outcome, CallHeaderDecode::Outcome::kOk) << d.reason;
  EXPECT_EQ(d.header.xid, 0xabcdef01u);
  EXPECT_EQ(d.header.rpcvers, 2u);
  EXPECT_EQ(d.header.prog, kProg);
  EXPECT_EQ(d.header.vers, 3u);
  EXPECT_EQ(d.header.proc, 7u);
  EXPECT_EQ(d.header.cred.flavor, kAuthSys);
  EXPECT_EQ(d.header.verf.flavor, kAuthNone);
  EXPECT_TRUE(d.header.verf.body.empty());
  EXPECT_EQ(rec.size() - d.header.args_offset, 4u);
  EXPECT_EQ(rec[d.header.args_offset + 3], 9);

  AuthCheck auth = Authenticate(d.header);
  ASSERT_TRUE(auth.ok());
  ASSERT_TRUE(auth.creds.sys.has_value());
  EXPECT_EQ(*auth.creds.sys, SampleSys());
}

TEST(MessageTest, AuthSysBoundsAndShape) {
  AuthSysParms p = SampleSys();
  EXPECT_EQ(DecodeAuthSys(EncodeAuthSys(p)), p);

  AuthSysParms long_name = p;
  long_name.machine_name.assign(256, 'x');  // RFC 5531: at most 255
  EXPECT_FALSE(DecodeAuthSys(EncodeAuthSys(long_name)).has_value());
  long_name.machine_name.assign(255, 'x');
  EXPECT_TRUE(DecodeAuthSys(EncodeAuthSys(long_name)).has_value());

  AuthSysParms many = p;
  many.gids.assign(17, 5);  // RFC 5531: at most 16
  EXPECT_FALSE(DecodeAuthSys(EncodeAuthSys(many)).has_value());
  many.gids.assign(16, 5);
  EXPECT_TRUE(DecodeAuthSys(EncodeAuthSys(many)).has_value());

  std::vector<uint8_t> body = EncodeAuthSys(p);
  std::vector<uint8_t> trailing = body;
  trailing.insert(trailing.end(), {0, 0, 0, 0});
  EXPECT_FALSE(DecodeAuthSys(trailing).has_value());
  for (size_t cut = 0; cut < body.size(); cut += 4) {
    EXPECT_FALSE(DecodeAuthSys({body.data(), cut}).has_value()) << cut;
  }
}

TEST(MessageTest, AuthSysDecodedIntoAReusedValueHoldsOnlyTheNewOne) {
  // DecodeAuthSysInto keeps the string's and vector's capacity: nothing of
  // a longer credential decoded before may remain.
  AuthSysParms reused;
  ASSERT_TRUE(DecodeAuthSysInto(EncodeAuthSys(SampleSys()), &reused));
  EXPECT_EQ(reused, SampleSys());
  AuthSysParms small;
  small.stamp = 1;
  small.machine_name = "h";
  small.uid = 7;
  small.gid = 8;
  ASSERT_TRUE(DecodeAuthSysInto(EncodeAuthSys(small), &reused));
  EXPECT_EQ(reused, small);
  std::vector<uint8_t> body = EncodeAuthSys(SampleSys());
  EXPECT_FALSE(DecodeAuthSysInto({body.data(), body.size() - 4}, &reused));
  ASSERT_TRUE(DecodeAuthSysInto(EncodeAuthSys(small), &reused));
  EXPECT_EQ(reused, small);
}

TEST(MessageTest, InlineReplyHeadersHoldTheLongestOne) {
  // MSG_ACCEPTED PROG_MISMATCH is the longest header: 8 words, all inline.
  ReplyHeader pm = AcceptedReplyHeader(9, kProgMismatch, 2, 4);
  EXPECT_EQ(pm.size, 32u);
  EXPECT_EQ(std::vector<uint8_t>(pm.view().begin(), pm.view().end()),
            Words({9, kReply, 0, kAuthNone, 0, kProgMismatch, 2, 4}));
  EXPECT_EQ(AcceptedReplyHeader(9, kSuccess).size, 24u);
  EXPECT_EQ(AuthErrorReplyHeader(9, kAuthTooWeak).size, 20u);
  EXPECT_EQ(RpcMismatchReplyHeader(9, 2, 2).size, 24u);
}

TEST(MessageTest, AuthenticationPolicy) {
  auto check = [](uint32_t flavor, std::vector<uint8_t> body) {
    std::vector<uint8_t> rec =
        CallRecord(1, kProg, 1, 0, Credential{flavor, body});
    CallHeaderDecode d = DecodeCallHeader(rec);
    EXPECT_EQ(d.outcome, CallHeaderDecode::Outcome::kOk);
    return Authenticate(d.header).auth_stat;
  };
  EXPECT_EQ(check(kAuthNone, {}), kAuthOk);
  EXPECT_EQ(check(kAuthSys, EncodeAuthSys(SampleSys())), kAuthOk);
  EXPECT_EQ(check(kAuthSys, {1, 2, 3, 4}), kAuthBadCred);
  EXPECT_EQ(check(kAuthShort, {1, 2, 3, 4}), kAuthRejectedCred);
  EXPECT_EQ(check(kAuthDh, {}), kAuthTooWeak);
  EXPECT_EQ(check(kRpcsecGss, {}), kAuthTooWeak);
  EXPECT_EQ(check(12345, {}), kAuthTooWeak);
}

TEST(MessageTest, MalformedHeaders) {
  // Too short for xid + msg_type: nothing to answer.
  EXPECT_EQ(DecodeCallHeader(Words({1})).outcome,
            CallHeaderDecode::Outcome::kDrop);
  // A REPLY is not a call.
  EXPECT_EQ(DecodeCallHeader(Words({1, kReply, 0})).outcome,
            CallHeaderDecode::Outcome::kDrop);
  // RPC version 3: RPC_MISMATCH, whatever follows.
  CallHeaderDecode v3 = DecodeCallHeader(Words({77, kCall, 3}));
  EXPECT_EQ(v3.outcome, CallHeaderDecode::Outcome::kRpcMismatch);
  EXPECT_EQ(v3.header.xid, 77u);
  // Truncated before the credential.
  EXPECT_EQ(DecodeCallHeader(Words({1, kCall, 2, kProg, 1})).outcome,
            CallHeaderDecode::Outcome::kDrop);
  // Credential longer than 400 bytes.
  CallHeaderDecode big =
      DecodeCallHeader(Words({1, kCall, 2, kProg, 1, 0, kAuthSys, 404}));
  EXPECT_EQ(big.outcome, CallHeaderDecode::Outcome::kAuthError);
  EXPECT_EQ(big.auth_stat, kAuthBadCred);
  // Credential claims more bytes than the record has.
  CallHeaderDecode cut =
      DecodeCallHeader(Words({1, kCall, 2, kProg, 1, 0, kAuthSys, 40, 0}));
  EXPECT_EQ(cut.auth_stat, kAuthBadCred);
  // Verifier missing.
  CallHeaderDecode noverf =
      DecodeCallHeader(Words({1, kCall, 2, kProg, 1, 0, kAuthNone, 0}));
  EXPECT_EQ(noverf.outcome, CallHeaderDecode::Outcome::kAuthError);
  EXPECT_EQ(noverf.auth_stat, kAuthBadVerf);
}

TEST(MessageTest, ReplyEncodingsDecode) {
  std::vector<uint8_t> ok = EncodeAcceptedReply(5, kSuccess);
  ok.insert(ok.end(), {0, 0, 0, 1});
  Result<size_t> off = DecodeReply(ok);
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(ok.size() - *off, 4u);

  Result<size_t> pm = DecodeReply(EncodeAcceptedReply(5, kProgMismatch, 2, 4));
  ASSERT_TRUE(pm.status().IsProgMismatch());
  EXPECT_EQ(pm.status().mismatch_low(), 2u);
  EXPECT_EQ(pm.status().mismatch_high(), 4u);

  EXPECT_TRUE(DecodeReply(EncodeAcceptedReply(5, kProgUnavail))
                  .status()
                  .IsProgUnavail());
  EXPECT_TRUE(DecodeReply(EncodeAcceptedReply(5, kProcUnavail))
                  .status()
                  .IsProcUnavail());
  EXPECT_TRUE(DecodeReply(EncodeAcceptedReply(5, kGarbageArgs))
                  .status()
                  .IsGarbageArgs());
  EXPECT_TRUE(
      DecodeReply(EncodeAcceptedReply(5, kSystemErr)).status().IsSystemErr());

  Status rm = DecodeReply(EncodeRpcMismatchReply(5, 2, 2)).status();
  ASSERT_TRUE(rm.IsRpcMismatch());
  EXPECT_EQ(rm.mismatch_low(), 2u);

  Status ae = DecodeReply(EncodeAuthErrorReply(5, kAuthTooWeak)).status();
  ASSERT_TRUE(ae.IsAuthError());
  EXPECT_EQ(ae.auth_stat(), kAuthTooWeak);

  EXPECT_TRUE(DecodeReply(Words({5, kReply})).status().IsMalformed());
  EXPECT_TRUE(DecodeReply(Words({5, kReply, 9})).status().IsMalformed());
}

class ProcessCallTest : public QuietLogs {
 protected:
  ProcessCallTest() {
    registry_.Add(
        Program(kProg, 2, 3)
            .WithNull()
            .On(1,
                [](const CallContext& ctx, std::span<const uint8_t> args) {
                  if (args.size() != 4) return Reply::GarbageArgs();
                  XdrEncoder enc;
                  enc.PutUint32(ctx.cred.sys ? ctx.cred.sys->uid : 0xffffffff);
                  return Reply::Success(enc.Take());
                })
            .On(2,
                [](const CallContext&, std::span<const uint8_t>) -> Reply {
                  throw std::runtime_error("bug");
                })
            .On(3, [](const CallContext&, std::span<const uint8_t>) {
              return Reply::Drop();
            }));
  }

  Result<size_t> Run(const std::vector<uint8_t>& rec,
                     std::vector<uint8_t>* whole) {
    std::optional<ReplyMessage> reply = ProcessCall(registry_, rec, nullptr, 0);
    if (!reply) return Status::Closed("dropped");
    whole->assign(reply->header.view().begin(), reply->header.view().end());
    whole->insert(whole->end(), reply->results.begin(), reply->results.end());
    return DecodeReply(*whole);
  }

  Registry registry_;
};

TEST_F(ProcessCallTest, DispatchRules) {
  std::vector<uint8_t> whole;
  Credential sys = Credential::Sys(SampleSys());
  // NULL.
  Result<size_t> r = Run(CallRecord(1, kProg, 2, 0, {}), &whole);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, whole.size());
  // A real procedure sees the AUTH_SYS credential.
  r = Run(CallRecord(2, kProg, 3, 1, sys, {0, 0, 0, 1}), &whole);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(whole[*r + 2], 1000 >> 8);
  // PROG_UNAVAIL, PROG_MISMATCH (2..3), PROC_UNAVAIL, GARBAGE_ARGS.
  EXPECT_TRUE(
      Run(CallRecord(3, kProg + 1, 2, 0, {}), &whole).status().IsProgUnavail());
  Status pm = Run(CallRecord(4, kProg, 9, 0, {}), &whole).status();
  ASSERT_TRUE(pm.IsProgMismatch());
  EXPECT_EQ(pm.mismatch_low(), 2u);
  EXPECT_EQ(pm.mismatch_high(), 3u);
  EXPECT_TRUE(
      Run(CallRecord(5, kProg, 2, 77, {}), &whole).status().IsProcUnavail());
  EXPECT_TRUE(Run(CallRecord(6, kProg, 2, 1, {}, {1, 2}), &whole)
                  .status()
                  .IsGarbageArgs());
  // A handler that throws is a server fault: SYSTEM_ERR.
  EXPECT_TRUE(
      Run(CallRecord(7, kProg, 2, 2, {}), &whole).status().IsSystemErr());
  // Drop sends nothing.
  EXPECT_TRUE(Run(CallRecord(8, kProg, 2, 3, {}), &whole).status().IsClosed());
  // Header errors answered before dispatch.
  EXPECT_TRUE(Run(Words({9, kCall, 3}), &whole).status().IsRpcMismatch());
  Status weak =
      Run(CallRecord(10, kProg, 2, 0, Credential{kRpcsecGss, {}}), &whole)
          .status();
  EXPECT_EQ(weak.auth_stat(), kAuthTooWeak);
  Status bad =
      Run(CallRecord(11, kProg, 2, 0, Credential{kAuthSys, {0, 0}}), &whole)
          .status();
  EXPECT_EQ(bad.auth_stat(), kAuthBadCred);
}

TEST_F(ProcessCallTest, RegistryReplacesOverlappingRanges) {
  registry_.Add(Program(kProg, 3, 5).WithNull());
  bool known;
  uint32_t low, high;
  EXPECT_EQ(registry_.Find(kProg, 2, &known, &low, &high), nullptr);
  EXPECT_TRUE(known);
  EXPECT_EQ(low, 3u);
  EXPECT_EQ(high, 5u);
  EXPECT_NE(registry_.Find(kProg, 4, &known, &low, &high), nullptr);
  registry_.Add(Program(kProg, 1, 1).WithNull());  // disjoint: both kept
  EXPECT_NE(registry_.Find(kProg, 1, &known, &low, &high), nullptr);
  EXPECT_NE(registry_.Find(kProg, 5, &known, &low, &high), nullptr);
  registry_.Remove(kProg);
  EXPECT_EQ(registry_.Find(kProg, 1, &known, &low, &high), nullptr);
  EXPECT_FALSE(known);
}

}  // namespace
}  // namespace rpc
