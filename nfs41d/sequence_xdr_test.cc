// The hand-written SEQUENCE codec (sequence_xdr.h) against the rpcgen
// routines it replaces on the COMPOUND path: same accept/reject decisions,
// same decoded fields, same encoded bytes.

#include "nfs41d/sequence_xdr.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

namespace nfs41d {
namespace {

// What rpcgen's xdr_SEQUENCE4args makes of `in`; nullopt if it fails.
std::optional<SEQUENCE4args> RpcgenDecode(std::span<const uint8_t> in) {
  rpc::XdrDecoder dec(in);
  SEQUENCE4args a{};
  if (!dec.Decode(xdr_SEQUENCE4args, &a)) return std::nullopt;
  EXPECT_EQ(dec.position(), kSequenceArgsSize);
  return a;
}

void ExpectSame(std::span<const uint8_t> in) {
  std::optional<SEQUENCE4args> ours = DecodeSequenceArgs(in);
  std::optional<SEQUENCE4args> theirs = RpcgenDecode(in);
  ASSERT_EQ(ours.has_value(), theirs.has_value()) << "input of " << in.size()
                                                  << " bytes";
  if (!ours) return;
  EXPECT_EQ(0, std::memcmp(ours->sa_sessionid, theirs->sa_sessionid,
                           NFS4_SESSIONID_SIZE));
  EXPECT_EQ(ours->sa_sequenceid, theirs->sa_sequenceid);
  EXPECT_EQ(ours->sa_slotid, theirs->sa_slotid);
  EXPECT_EQ(ours->sa_highest_slotid, theirs->sa_highest_slotid);
  EXPECT_EQ(ours->sa_cachethis != 0, theirs->sa_cachethis != 0);
}

TEST(SequenceXdrTest, DecodeAgreesWithRpcgenOnRandomAndMutatedInput) {
  std::mt19937 gen(4012);
  std::uniform_int_distribution<int> byte(0, 255);
  // A valid encoding as a client sends it.
  std::vector<uint8_t> valid(kSequenceArgsSize);
  for (auto& b : valid) b = static_cast<uint8_t>(byte(gen));
  std::memset(valid.data() + kSequenceArgsSize - 4, 0, 4);
  valid.back() = 1;  // sa_cachethis TRUE
  ExpectSame(valid);
  // Every truncation, including the empty input.
  for (size_t n = 0; n <= kSequenceArgsSize; ++n) {
    ExpectSame(std::span<const uint8_t>(valid).first(n));
  }
  // Trailing bytes are the next op's: both read only their own.
  std::vector<uint8_t> longer = valid;
  longer.resize(kSequenceArgsSize + 12, 0xab);
  ExpectSame(longer);
  // sa_cachethis values other than 0 and 1.
  for (uint32_t v : {0u, 1u, 2u, 0x80000000u, 0xffffffffu, 0x100u}) {
    std::vector<uint8_t> b = valid;
    for (int i = 0; i < 4; ++i) {
      b[kSequenceArgsSize - 4 + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
    }
    ExpectSame(b);
  }
  // Random inputs of random length and single-byte mutations of the valid
  // one (bounded).
  std::uniform_int_distribution<size_t> len(0, 2 * kSequenceArgsSize);
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> b(len(gen));
    for (auto& x : b) x = static_cast<uint8_t>(byte(gen));
    ExpectSame(b);
    std::vector<uint8_t> m = valid;
    m[static_cast<size_t>(i) % m.size()] = static_cast<uint8_t>(byte(gen));
    ExpectSame(m);
  }
}

TEST(SequenceXdrTest, EncodeMatchesRpcgenByteForByte) {
  std::mt19937 gen(4013);
  std::uniform_int_distribution<uint32_t> word;
  for (int i = 0; i < 500; ++i) {
    nfs_resop4 res{};
    res.resop = OP_SEQUENCE;
    SEQUENCE4res& r = res.nfs_resop4_u.opsequence;
    // Successes and the errors SEQUENCE returns (no resok then).
    const nfsstat4 statuses[] = {NFS4_OK, NFS4ERR_BADSESSION,
                                 NFS4ERR_SEQ_MISORDERED, NFS4ERR_BADSLOT,
                                 NFS4ERR_DELAY, NFS4ERR_SEQ_FALSE_RETRY};
    r.sr_status = statuses[i % 6];
    SEQUENCE4resok& ok = r.SEQUENCE4res_u.sr_resok4;
    for (auto& b : ok.sr_sessionid) b = static_cast<char>(word(gen));
    ok.sr_sequenceid = word(gen);
    ok.sr_slotid = word(gen);
    ok.sr_highest_slotid = word(gen);
    ok.sr_target_highest_slotid = word(gen);
    ok.sr_status_flags = word(gen);
    rpc::XdrEncoder ours, theirs;
    EncodeSequenceResult(ours, r);
    ASSERT_TRUE(theirs.Encode(xdr_nfs_resop4, res));
    ASSERT_EQ(ours.size(), theirs.size()) << "status " << r.sr_status;
    EXPECT_EQ(0, std::memcmp(ours.data(), theirs.data(), ours.size()));
  }
}

}  // namespace
}  // namespace nfs41d
