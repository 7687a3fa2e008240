#include "rpc/xdr_codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace rpc {
namespace {

// A hand-written routine shaped like rpcgen output: fixed words through
// XDR_INLINE when the stream offers it, a variable opaque libtirpc allocates
// on decode.
struct Sample {
  uint32_t a;
  uint64_t b;
  struct {
    u_int len;
    char* val;
  } blob;
};

bool_t xdr_Sample(XDR* xdrs, Sample* s) {
  if (xdrs->x_op == XDR_ENCODE) {
    int32_t* buf = XDR_INLINE(xdrs, 4);
    if (buf != nullptr) {
      IXDR_PUT_U_INT32(buf, s->a);
    } else if (!xdr_uint32_t(xdrs, &s->a)) {
      return FALSE;
    }
  } else if (!xdr_uint32_t(xdrs, &s->a)) {
    return FALSE;
  }
  return xdr_uint64_t(xdrs, &s->b) &&
         xdr_bytes(xdrs, &s->blob.val, &s->blob.len, 1 << 20);
}

TEST(XdrTest, EncoderGrowsAndRoundTripsThroughLibtirpc) {
  std::string payload(5000, 'q');  // far past the initial capacity
  Sample in{};
  in.a = 0xdeadbeef;
  in.b = 0x0102030405060708ull;
  in.blob.len = static_cast<u_int>(payload.size());
  in.blob.val = payload.data();

  XdrEncoder enc(16);
  ASSERT_TRUE(enc.Encode(xdr_Sample, in));
  std::vector<uint8_t> bytes = enc.Take();
  ASSERT_EQ(bytes.size(), 4u + 8u + 4u + 5000u);
  EXPECT_EQ(bytes[0], 0xde);
  EXPECT_EQ(bytes[4], 0x01);

  XdrOwned<Sample> out(xdr_Sample);
  ASSERT_TRUE(out.DecodeAll(bytes));
  EXPECT_EQ(out->a, in.a);
  EXPECT_EQ(out->b, in.b);
  ASSERT_EQ(out->blob.len, payload.size());
  EXPECT_EQ(std::memcmp(out->blob.val, payload.data(), payload.size()), 0);

  // Trailing bytes and truncation are both refused.
  std::vector<uint8_t> longer = bytes;
  longer.push_back(0);
  EXPECT_FALSE(out.DecodeAll(longer));
  EXPECT_FALSE(out.DecodeAll({bytes.data(), bytes.size() - 4}));
}

TEST(XdrTest, PrimitivesPadAndBound) {
  XdrEncoder enc;
  enc.PutString("abcde");  // 4 + 5 + 3 padding
  enc.PutUint64(7);
  std::vector<uint8_t> bytes = enc.Take();
  ASSERT_EQ(bytes.size(), 20u);
  XdrDecoder dec(bytes);
  auto s = dec.GetOpaque(5);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(std::string(s->begin(), s->end()), "abcde");
  EXPECT_EQ(dec.GetUint64(), 7u);
  EXPECT_EQ(dec.remaining(), 0u);
  EXPECT_FALSE(dec.GetUint32().has_value());

  XdrDecoder bounded(bytes);
  EXPECT_FALSE(bounded.GetOpaque(4).has_value());  // over the bound
}

// The encoder reserves capacity without zero-filling it: what it hands out
// must still be exactly what was put, padding zeroed, whatever the reserve,
// and an encoder reused after Take() starts empty.
TEST(XdrTest, LargeReserveAndOpaquesGiveExactlyThePutBytes) {
  XdrEncoder enc(1 << 20);
  EXPECT_EQ(enc.size(), 0u) << "reserving is not encoding";
  std::vector<uint8_t> big((1 << 20) + 3);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 7 + 1);
  enc.PutUint32(0xa1b2c3d4);
  enc.PutOpaque(big);       // past the reserve: grows, copied once
  enc.PutUint32(0x01020304);  // right after the padding
  std::vector<uint8_t> out = enc.Take();
  ASSERT_EQ(out.size(), 4 + 4 + big.size() + 1 + 4);
  XdrDecoder dec(out);
  EXPECT_EQ(dec.GetUint32(), 0xa1b2c3d4u);
  auto got = dec.GetOpaque(1 << 21);
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(std::equal(got->begin(), got->end(), big.begin(), big.end()));
  EXPECT_EQ(out[8 + big.size()], 0) << "XDR padding is zero";
  EXPECT_EQ(dec.GetUint32(), 0x01020304u);
  EXPECT_EQ(dec.remaining(), 0u);

  // Reused: nothing of the first encoding comes back.
  EXPECT_EQ(enc.size(), 0u);
  const uint8_t three[3] = {9, 9, 9};
  enc.PutFixedOpaque(three);
  std::vector<uint8_t> again = enc.Take();
  EXPECT_EQ(again, (std::vector<uint8_t>{9, 9, 9, 0}));
}

TEST(XdrTest, OpaqueLengthBeyondInputIsRefused) {
  XdrEncoder enc;
  enc.PutUint32(1000);
  enc.PutUint32(0);
  std::vector<uint8_t> bytes = enc.Take();
  XdrDecoder dec(bytes);
  EXPECT_FALSE(dec.GetOpaque(1u << 20).has_value());
}

// GetUint32 and position() read xdrmem's cursor in place: interleaved with
// libtirpc's own routines and xdr_setpos they must see one position, and a
// word cut short must fail without moving it.
TEST(XdrTest, InlineWordsAndTheStreamShareOneCursor) {
  const std::vector<uint8_t> in = {0, 0, 0, 1, 0, 0, 0, 2, 0, 0,
                                   0, 3, 0, 0, 0, 4, 9, 9};
  XdrDecoder dec(in);
  EXPECT_EQ(dec.position(), 0u);
  EXPECT_EQ(dec.GetUint32(), 1u);
  EXPECT_EQ(dec.position(), 4u);
  uint32_t v = 0;
  ASSERT_TRUE(xdr_uint32_t(dec.xdr(), &v));  // libtirpc after ours
  EXPECT_EQ(v, 2u);
  EXPECT_EQ(dec.position(), 8u);
  EXPECT_EQ(xdr_getpos(dec.xdr()), 8u);
  EXPECT_EQ(dec.GetUint32(), 3u);  // ours after libtirpc
  ASSERT_TRUE(xdr_setpos(dec.xdr(), 4));
  EXPECT_EQ(dec.GetUint32(), 2u);  // after a seek
  ASSERT_TRUE(xdr_setpos(dec.xdr(), 12));
  EXPECT_EQ(dec.GetUint32(), 4u);
  EXPECT_EQ(dec.remaining(), 2u);
  EXPECT_FALSE(dec.GetUint32().has_value()) << "2 bytes are not a word";
  EXPECT_EQ(dec.position(), 16u) << "a failed read does not move";
  EXPECT_FALSE(xdr_uint32_t(dec.xdr(), &v)) << "libtirpc agrees on what is left";

  XdrDecoder empty(std::span<const uint8_t>{});
  EXPECT_FALSE(empty.GetUint32().has_value());
  EXPECT_EQ(empty.position(), 0u);
}

}  // namespace
}  // namespace rpc
