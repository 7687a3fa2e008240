// Hostile XDR lengths (xdr_bounded.h): a length field that asks for more
// than the record holds is refused before anything is allocated. calloc is
// interposed in this test binary (libtirpc allocates with calloc) so the
// test sees the largest allocation a decode asked for.

#include "nfs41d/proto/xdr_bounded.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <vector>

#include "nfs41d/proto/nfs4_prot.h"
#include "rpc/xdr_codec.h"

extern "C" void* __libc_calloc(size_t n, size_t size);  // glibc

namespace {
std::atomic<size_t> g_largest_calloc{0};
}  // namespace

extern "C" void* calloc(size_t n, size_t size) {
  size_t total = n * size;
  size_t prev = g_largest_calloc.load(std::memory_order_relaxed);
  while (total > prev &&
         !g_largest_calloc.compare_exchange_weak(prev, total)) {
  }
  return __libc_calloc(n, size);
}

namespace {

std::vector<uint8_t> Words(std::initializer_list<uint32_t> ws) {
  rpc::XdrEncoder e;
  for (uint32_t w : ws) e.PutUint32(w);
  return e.Take();
}

template <typename T>
bool Decode(rpc::XdrFn<T> fn, const std::vector<uint8_t>& bytes) {
  rpc::XdrOwned<T> v(fn);
  return v.DecodeAll(bytes);
}

class XdrBoundedTest : public ::testing::Test {
 protected:
  void SetUp() override { g_largest_calloc = 0; }
};

TEST_F(XdrBoundedTest, HugeArrayCountIsRefusedWithoutAllocating) {
  // GETATTR4args: bitmap4 (uint32<>) with 0x3FFFFFF0 words -- 4 GiB.
  unsigned long before = nfs4xdr_refused();
  EXPECT_FALSE(Decode(xdr_GETATTR4args, Words({0x3FFFFFF0u, 1, 2})));
  EXPECT_LT(g_largest_calloc.load(), 4096u);
  EXPECT_EQ(nfs4xdr_refused(), before + 1);
}

TEST_F(XdrBoundedTest, HugeOpaqueLengthIsRefusedWithoutAllocating) {
  // PUTFH4args: nfs_fh4 is opaque<NFS4_FHSIZE>: over the .x bound.
  EXPECT_FALSE(Decode(xdr_PUTFH4args, Words({0xFFFFFFF0u, 0})));
  // LOOKUP4args: component4 is utf8string, opaque<> without bound.
  EXPECT_FALSE(Decode(xdr_LOOKUP4args, Words({0xFFFFFFF0u, 0x41414141})));
  EXPECT_FALSE(Decode(xdr_LOOKUP4args, Words({0x00100000u, 0x41414141})));
  EXPECT_LT(g_largest_calloc.load(), 4096u);
}

TEST_F(XdrBoundedTest, HugeCompoundOpArrayIsRefusedWithoutAllocating) {
  // COMPOUND4args decoded whole by the generated routine (as nfs41client
  // does with replies): tag "", minorversion 1, 0xFFFFFFF0 ops.
  EXPECT_FALSE(Decode(xdr_COMPOUND4args, Words({0, 1, 0xFFFFFFF0u, 24})));
  EXPECT_FALSE(Decode(xdr_COMPOUND4res, Words({0, 0, 0x7FFFFFFFu})));
  EXPECT_LT(g_largest_calloc.load(), 4096u);
}

TEST_F(XdrBoundedTest, LengthsThatFitStillDecode) {
  // The bound is the bytes present: exact fits are accepted.
  EXPECT_TRUE(Decode(xdr_GETATTR4args, Words({2, 0x11, 0x22})));
  EXPECT_TRUE(Decode(xdr_LOOKUP4args, Words({4, 0x41424344})));
  EXPECT_TRUE(Decode(xdr_LOOKUP4args, Words({0})));
  // One element short / one byte short.
  EXPECT_FALSE(Decode(xdr_GETATTR4args, Words({3, 0x11, 0x22})));
  EXPECT_FALSE(Decode(xdr_LOOKUP4args, Words({5, 0x41424344})));
}

TEST_F(XdrBoundedTest, InterpositionSeesLibtirpcAllocations) {
  // The calloc hook works: a 2000-byte name that is present is allocated.
  rpc::XdrEncoder e;
  e.PutOpaque(std::vector<uint8_t>(2000, 'a'));
  EXPECT_TRUE(Decode(xdr_LOOKUP4args, e.Take()));
  EXPECT_GE(g_largest_calloc.load(), 2000u);
}

TEST_F(XdrBoundedTest, EveryPrefixLengthOfARealArgumentIsSafe) {
  // Overwrite the first length word of SETATTR4args' fattr4 with large
  // values: never decodes, never allocates in proportion.
  for (uint32_t len : {0x7FFFFFFFu, 0xFFFFFFFFu, 0x40000000u, 0x01000000u}) {
    std::vector<uint8_t> b = Words({0, 0, 0, 0, len, 1, 2, 3});
    EXPECT_FALSE(Decode(xdr_SETATTR4args, b)) << len;
  }
  EXPECT_LT(g_largest_calloc.load(), 4096u);
}

}  // namespace
