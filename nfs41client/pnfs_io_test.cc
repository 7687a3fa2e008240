// The file layout's stripe arithmetic (RFC 8881 §13.4), universal addresses
// (RFC 5665 §5.2.3) and the layout/device decoders, without a server.

#include "nfs41client/pnfs_io.h"

#include <gtest/gtest.h>

#include <cstring>

#include "rpc/xdr_codec.h"

namespace nfs41client {
namespace {

constexpr uint64_t kUnit = 65536;

FileLayout Layout(uint32_t flags, size_t fhs, uint32_t first = 0,
                  uint64_t pattern = 0) {
  FileLayout l;
  l.util = static_cast<uint32_t>(kUnit) | flags;
  l.first_stripe_index = first;
  l.pattern_offset = pattern;
  for (size_t i = 0; i < fhs; ++i) l.fhs.push_back(Fh{static_cast<uint8_t>(i)});
  return l;
}

// Three stripe indices mapped to data servers 2, 0, 1.
FileDevice Device() {
  FileDevice d;
  d.stripe_indices = {2, 0, 1};
  d.data_servers.resize(3);
  return d;
}

TEST(MapStripe, SparseKeepsFileOffsetsAndRotatesServers) {
  const FileLayout l = Layout(0, 1);
  const FileDevice d = Device();
  // Unit k goes to stripe index k mod 3, i.e. data server {2,0,1}[k mod 3].
  for (uint64_t k = 0; k < 7; ++k) {
    auto t = MapStripe(l, d, k * kUnit + 10, 1 << 20);
    ASSERT_TRUE(t);
    EXPECT_EQ(t->stripe_index, k % 3);
    EXPECT_EQ(t->data_server, d.stripe_indices[k % 3]);
    EXPECT_EQ(t->fh_index, 0u);
    EXPECT_EQ(t->ds_offset, k * kUnit + 10) << "sparse: file offset";
    EXPECT_EQ(t->length, kUnit - 10) << "cut at the unit's end";
  }
  auto small = MapStripe(l, d, 5, 100);
  ASSERT_TRUE(small);
  EXPECT_EQ(small->length, 100u);
}

TEST(MapStripe, DensePacksEachServersUnitsAndUsesPerIndexHandles) {
  const FileLayout l = Layout(NFL4_UFLG_DENSE, 3);
  const FileDevice d = Device();
  // Unit 7: stripe index 1, the third unit (7 / 3 = 2) of that server.
  auto t = MapStripe(l, d, 7 * kUnit + 123, kUnit);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->stripe_index, 1u);
  EXPECT_EQ(t->data_server, 0u);
  EXPECT_EQ(t->fh_index, 1u);
  EXPECT_EQ(t->ds_offset, 2 * kUnit + 123);
  EXPECT_EQ(t->length, kUnit - 123);
}

TEST(MapStripe, FirstStripeIndexAndPatternOffsetShiftTheMapping) {
  const FileLayout l = Layout(NFL4_UFLG_DENSE, 3, /*first=*/2,
                              /*pattern=*/1000);
  const FileDevice d = Device();
  // Relative offset 0 is stripe unit 0 at index (0 + 2) % 3 = 2.
  auto t = MapStripe(l, d, 1000, 1);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->stripe_index, 2u);
  EXPECT_EQ(t->ds_offset, 0u);
  // Relative unit 4: index (4 + 2) % 3 = 0, its second unit (4 / 3 = 1).
  t = MapStripe(l, d, 1000 + 4 * kUnit + 1, kUnit);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->stripe_index, 0u);
  EXPECT_EQ(t->data_server, 2u);
  EXPECT_EQ(t->ds_offset, kUnit + 1);
  EXPECT_EQ(t->length, kUnit - 1);
}

TEST(MapStripe, RefusesLayoutsThatDoNotFitTheDevice) {
  const FileDevice d = Device();
  EXPECT_FALSE(MapStripe(Layout(0, 2), d, 0, 1)) << "2 handles for 3 indices";
  EXPECT_FALSE(MapStripe(Layout(NFL4_UFLG_DENSE, 1), d, 0, 1))
      << "dense with one shared handle";
  EXPECT_FALSE(MapStripe(Layout(0, 1, /*first=*/3), d, 0, 1));
  EXPECT_FALSE(MapStripe(Layout(0, 1, 0, /*pattern=*/100), d, 99, 1));
  FileLayout zero = Layout(0, 1);
  zero.util = 0;
  EXPECT_FALSE(MapStripe(zero, d, 0, 1)) << "stripe unit 0";
  FileDevice bad = Device();
  bad.stripe_indices[1] = 3;  // no fourth data server
  EXPECT_FALSE(MapStripe(Layout(0, 1), bad, kUnit, 1));
  EXPECT_FALSE(MapStripe(Layout(0, 1), FileDevice{}, 0, 1));
}

TEST(UniversalAddress, ParsesIpv4AndIpv6AndRefusesJunk) {
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(ParseUniversalAddress("127.0.0.1.8.1", &host, &port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 8 * 256 + 1);
  ASSERT_TRUE(ParseUniversalAddress("::1.0.111", &host, &port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 111);
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1.256.1", "1.2.x.3",
                          ".1.2", "h.1.", "h..1"}) {
    EXPECT_FALSE(ParseUniversalAddress(bad, &host, &port)) << bad;
  }
}

TEST(Decoders, RoundTripFileLayoutAndDeviceAndRefuseGarbage) {
  nfsv4_1_file_layout4 in{};
  std::memset(in.nfl_deviceid, 7, sizeof in.nfl_deviceid);
  in.nfl_util = static_cast<uint32_t>(kUnit) | NFL4_UFLG_DENSE;
  in.nfl_first_stripe_index = 1;
  in.nfl_pattern_offset = 4096;
  char h0[] = "ab", h1[] = "cde";
  nfs_fh4 fhs[2] = {{2, h0}, {3, h1}};
  in.nfl_fh_list.nfl_fh_list_len = 2;
  in.nfl_fh_list.nfl_fh_list_val = fhs;
  auto bytes = rpc::XdrEncode(xdr_nfsv4_1_file_layout4, in);
  ASSERT_TRUE(bytes.ok());
  FileLayout l;
  ASSERT_TRUE(DecodeFileLayout(*bytes, &l));
  EXPECT_EQ(l.unit(), kUnit);
  EXPECT_TRUE(l.dense());
  EXPECT_EQ(l.first_stripe_index, 1u);
  EXPECT_EQ(l.pattern_offset, 4096u);
  ASSERT_EQ(l.fhs.size(), 2u);
  EXPECT_EQ(l.fhs[1], (Fh{'c', 'd', 'e'}));
  EXPECT_EQ(l.device_id[15], 7);
  bytes->pop_back();
  EXPECT_FALSE(DecodeFileLayout(*bytes, &l)) << "truncated";

  nfsv4_1_file_layout_ds_addr4 dev{};
  uint32_t idx[2] = {1, 0};
  char tcp[] = "tcp", a0[] = "127.0.0.1.4.1", a1[] = "127.0.0.2.4.2";
  netaddr4 n0{tcp, a0}, n1{tcp, a1};
  multipath_list4 m[2] = {{1, &n0}, {1, &n1}};
  dev.nflda_stripe_indices = {2, idx};
  dev.nflda_multipath_ds_list = {2, m};
  auto db = rpc::XdrEncode(xdr_nfsv4_1_file_layout_ds_addr4, dev);
  ASSERT_TRUE(db.ok());
  FileDevice d;
  ASSERT_TRUE(DecodeFileDevice(*db, &d));
  EXPECT_EQ(d.stripe_indices, (std::vector<uint32_t>{1, 0}));
  ASSERT_EQ(d.data_servers.size(), 2u);
  EXPECT_EQ(d.data_servers[1][0].uaddr, "127.0.0.2.4.2");
  EXPECT_EQ(d.data_servers[0][0].netid, "tcp");
  db->push_back(0);
  EXPECT_FALSE(DecodeFileDevice(*db, &d)) << "trailing bytes";
}

}  // namespace
}  // namespace nfs41client
