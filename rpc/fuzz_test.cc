#include "rpc/fuzz.h"

#include <gtest/gtest.h>

#include <random>

#include "rpc/log.h"
#include "rpc/record.h"

namespace rpc {
namespace {

class FuzzTest : public ::testing::Test {
 protected:
  void SetUp() override { log::SetLevel(log::Level::kError); }
  void TearDown() override { log::SetLevel(log::Level::kInfo); }
};

TEST_F(FuzzTest, SeedsAreValidCalls) {
  for (uint32_t proc = 0; proc <= 3; ++proc) {
    for (uint32_t frag : {1u, 7u, 1000u}) {
      EXPECT_EQ(FuzzServerInput(FuzzSeedCall(proc, frag)), 1u);
    }
  }
}

TEST_F(FuzzTest, RandomBytesNeverCrash) {
  std::mt19937 rng(12345);  // fixed: failures must reproduce
  for (int i = 0; i < 3000; ++i) {
    std::vector<uint8_t> data(rng() % 512);
    for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
    FuzzServerInput(data);
  }
}

TEST_F(FuzzTest, RandomRecordsWithValidFramingNeverCrash) {
  // Valid record marks around random payloads reach the header decoder far
  // more often than raw random bytes do.
  std::mt19937 rng(777);
  for (int i = 0; i < 3000; ++i) {
    std::vector<uint8_t> payload(rng() % 200);
    for (uint8_t& b : payload) b = static_cast<uint8_t>(rng());
    if (payload.size() >= 12 && rng() % 2) {
      // Make it look like a call more often: msg_type CALL, rpcvers 2.
      payload[4] = payload[5] = payload[6] = payload[7] = 0;
      payload[8] = payload[9] = payload[10] = 0;
      payload[11] = 2;
    }
    std::vector<uint8_t> stream = FrameRecord(payload, 1 + rng() % 64);
    FuzzServerInput(stream);
  }
}

TEST_F(FuzzTest, MutatedValidCallsNeverCrash) {
  std::mt19937 rng(4242);
  for (int i = 0; i < 5000; ++i) {
    std::vector<uint8_t> data = FuzzSeedCall(rng() % 4, 1 + rng() % 128);
    int flips = 1 + rng() % 8;
    for (int f = 0; f < flips; ++f) {
      size_t at = rng() % data.size();
      switch (rng() % 4) {
        case 0:
          data[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
          break;
        case 1:
          data[at] = static_cast<uint8_t>(rng());
          break;
        case 2:
          data.resize(at);
          break;  // truncate
        case 3:
          data.insert(data.begin() + at, static_cast<uint8_t>(rng()));
          break;
      }
      if (data.empty()) break;
    }
    FuzzServerInput(data);
  }
}

TEST_F(FuzzTest, HostileLengthFieldsAreRefusedWithoutHarm) {
  // Every 4-byte-aligned word of valid calls replaced, one at a time, by a
  // huge length: record marks, credential and verifier lengths, AUTH_SYS
  // machine name and gid counts, argument opaques. None may crash or
  // allocate what it claims (the record reader and XdrDecoder::GetOpaque
  // check the bytes are there first; nfs4xdr does the same through
  // nfs41d/proto/xdr_bounded.h).
  size_t records = 0;
  for (uint32_t proc = 1; proc <= 2; ++proc) {
    std::vector<uint8_t> seed = FuzzSeedCall(proc, 4096);
    for (size_t at = 0; at + 4 <= seed.size(); at += 4) {
      for (uint32_t huge : {0xFFFFFFF0u, 0x7FFFFFFFu, 0x00FFFFFFu}) {
        std::vector<uint8_t> d = seed;
        d[at] = huge >> 24;
        d[at + 1] = huge >> 16;
        d[at + 2] = huge >> 8;
        d[at + 3] = huge;
        records += FuzzServerInput(d);
      }
    }
  }
  // Most mutations leave a well-framed record (only the mark's own word
  // breaks the framing), so the decoders after it were exercised.
  EXPECT_GT(records, 0u);
}

}  // namespace
}  // namespace rpc
