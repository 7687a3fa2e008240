#include "rpc/record.h"

#include <gtest/gtest.h>

#include <numeric>

namespace rpc {
namespace {

std::vector<uint8_t> Bytes(size_t n, uint8_t start = 0) {
  std::vector<uint8_t> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

uint32_t HeaderAt(const std::vector<uint8_t>& v, size_t pos) {
  return (uint32_t{v[pos]} << 24) | (uint32_t{v[pos + 1]} << 16) |
         (uint32_t{v[pos + 2]} << 8) | v[pos + 3];
}

TEST(RecordTest, SingleFragmentHeader) {
  std::vector<uint8_t> framed = FrameRecord(Bytes(5));
  ASSERT_EQ(framed.size(), 9u);
  EXPECT_EQ(HeaderAt(framed, 0), kLastFragmentBit | 5);
}

TEST(RecordTest, EncodesMultipleFragments) {
  // 10 bytes in fragments of 3: 3, 3, 3, 1; only the last has the high bit.
  std::vector<uint8_t> payload = Bytes(10);
  std::vector<uint8_t> framed = FrameRecord(payload, 3);
  ASSERT_EQ(framed.size(), 10u + 4 * 4);
  EXPECT_EQ(HeaderAt(framed, 0), 3u);
  EXPECT_EQ(HeaderAt(framed, 7), 3u);
  EXPECT_EQ(HeaderAt(framed, 14), 3u);
  EXPECT_EQ(HeaderAt(framed, 21), kLastFragmentBit | 1);
  EXPECT_EQ(framed[25], 9);
}

TEST(RecordTest, EmptyRecordIsOneEmptyLastFragment) {
  std::vector<uint8_t> framed = FrameRecord({});
  ASSERT_EQ(framed.size(), 4u);
  EXPECT_EQ(HeaderAt(framed, 0), kLastFragmentBit);
  RecordReader r(100);
  ASSERT_TRUE(r.Feed(framed).ok());
  auto rec = r.Pop();
  ASSERT_TRUE(rec.has_value());
  EXPECT_TRUE(rec->empty());
}

TEST(RecordTest, DecodesMultiFragmentRecordFedByteByByte) {
  std::vector<uint8_t> payload = Bytes(1000, 7);
  std::vector<uint8_t> framed = FrameRecord(payload, 97);
  RecordReader r(4096);
  for (size_t i = 0; i < framed.size(); ++i) {
    ASSERT_TRUE(r.Feed({&framed[i], 1}).ok());
    if (i + 1 < framed.size()) {
      EXPECT_EQ(r.ready(), 0u);
      EXPECT_TRUE(r.mid_record());
    }
  }
  auto rec = r.Pop();
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(*rec, payload);
  EXPECT_FALSE(r.mid_record());
  EXPECT_FALSE(r.Pop().has_value());
}

// A recycled record's buffer takes the next record, which still holds
// exactly its own bytes; it is not taken while part of a record is held
// (that record's bytes are kept), nor when it is large.
TEST(RecordTest, RecycledBufferHoldsTheNextRecordOnly) {
  RecordReader r(1 << 20);
  ASSERT_TRUE(r.Feed(FrameRecord(Bytes(40, 1), 100)).ok());
  std::vector<uint8_t> first = *r.Pop();
  const uint8_t* buffer = first.data();
  r.Recycle(std::move(first));
  ASSERT_TRUE(r.Feed(FrameRecord(Bytes(12, 7), 100)).ok());
  std::vector<uint8_t> second = *r.Pop();
  EXPECT_EQ(second, Bytes(12, 7)) << "nothing of the first record is left";
  EXPECT_EQ(second.data(), buffer) << "the recycled buffer was reused";

  // Half of the next record is buffered: its bytes stay, the gift is freed.
  std::vector<uint8_t> framed = FrameRecord(Bytes(30, 3), 100);
  ASSERT_TRUE(r.Feed(std::span(framed).first(10)).ok());
  r.Recycle(std::move(second));
  ASSERT_TRUE(r.Feed(std::span(framed).subspan(10)).ok());
  EXPECT_EQ(*r.Pop(), Bytes(30, 3));

  // A buffer above 64 KiB is not kept for small records.
  std::vector<uint8_t> big;
  big.reserve(1 << 17);
  r.Recycle(std::move(big));
  ASSERT_TRUE(r.Feed(FrameRecord(Bytes(8, 5), 100)).ok());
  std::vector<uint8_t> third = *r.Pop();
  EXPECT_EQ(third, Bytes(8, 5));
  EXPECT_LT(third.capacity(), size_t{1} << 17) << "the big buffer was kept";
}

TEST(RecordTest, SeveralRecordsInOneFeedKeepTheirOrder) {
  std::vector<uint8_t> stream;
  for (int i = 0; i < 5; ++i) {
    auto f = FrameRecord(Bytes(10 + i, static_cast<uint8_t>(i)), 4);
    stream.insert(stream.end(), f.begin(), f.end());
  }
  RecordReader r(1000);
  ASSERT_TRUE(r.Feed(stream).ok());
  ASSERT_EQ(r.ready(), 5u);
  for (int i = 0; i < 5; ++i) {
    auto rec = r.Pop();
    ASSERT_TRUE(rec.has_value());
    EXPECT_EQ(*rec, Bytes(10 + i, static_cast<uint8_t>(i)));
  }
}

TEST(RecordTest, EmptyNonLastFragmentsAreAllowed) {
  std::vector<uint8_t> stream;
  auto h = FragmentHeader(0, false);
  stream.insert(stream.end(), h.begin(), h.end());
  stream.insert(stream.end(), h.begin(), h.end());
  auto f = FrameRecord(Bytes(3));
  stream.insert(stream.end(), f.begin(), f.end());
  RecordReader r(10);
  ASSERT_TRUE(r.Feed(stream).ok());
  auto rec = r.Pop();
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(*rec, Bytes(3));
}

TEST(RecordTest, RecordOfExactlyTheMaximumIsAccepted) {
  RecordReader r(64);
  ASSERT_TRUE(r.Feed(FrameRecord(Bytes(64), 10)).ok());
  EXPECT_EQ(r.ready(), 1u);
}

TEST(RecordTest, OversizeFragmentIsRefusedBeforeBuffering) {
  RecordReader r(1024);
  auto h = FragmentHeader(0x7fffffff, true);
  Status st = r.Feed(h);
  EXPECT_TRUE(st.IsMalformed()) << st.ToString();
  EXPECT_EQ(r.partial_bytes(), 0u);
  // Poisoned: nothing more is accepted.
  EXPECT_FALSE(r.Feed(FrameRecord(Bytes(1))).ok());
}

TEST(RecordTest, OversizeAcrossFragmentsIsRefused) {
  RecordReader r(100);
  // 60 + 60 bytes: each fragment fits, the record does not.
  std::vector<uint8_t> stream = FrameRecord(Bytes(120), 60);
  EXPECT_FALSE(r.Feed(stream).ok());
  EXPECT_EQ(r.ready(), 0u);
}

TEST(RecordTest, RecordsBeforeAnOversizeOneCanStillBePopped) {
  RecordReader r(100);
  std::vector<uint8_t> stream = FrameRecord(Bytes(10));
  auto big = FragmentHeader(1000, true);
  stream.insert(stream.end(), big.begin(), big.end());
  EXPECT_FALSE(r.Feed(stream).ok());
  EXPECT_EQ(r.ready(), 1u);
}

TEST(RecordTest, TruncatedRecordIsVisibleAsMidRecord) {
  std::vector<uint8_t> framed = FrameRecord(Bytes(50));
  RecordReader r(100);
  ASSERT_TRUE(r.Feed({framed.data(), 20}).ok());
  EXPECT_TRUE(r.mid_record());
  EXPECT_EQ(r.partial_bytes(), 16u);
  EXPECT_EQ(r.ready(), 0u);
  // Half a header is also "inside a record".
  RecordReader r2(100);
  ASSERT_TRUE(r2.Feed({framed.data(), 2}).ok());
  EXPECT_TRUE(r2.mid_record());
}

}  // namespace
}  // namespace rpc
