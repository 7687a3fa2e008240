// Unit tests of the embedded data store (LocalDataStore).

#include "nfs41d/data/data_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace nfs41d::data {
namespace {

class DataStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("nfs41d-data-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto s = OpenLocalDataStore(dir_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::vector<uint8_t> ReadAll(ns::InodeId ino, uint64_t off, size_t n) {
    std::vector<uint8_t> buf(n);
    auto r = store_->Read(ino, off, buf);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    buf.resize(r.ok() ? *r : 0);
    return buf;
  }
  std::string dir_;
  std::unique_ptr<DataStore> store_;
};

TEST_F(DataStoreTest, WriteReadRoundTrip) {
  std::vector<uint8_t> d = {'h', 'e', 'l', 'l', 'o'};
  ASSERT_TRUE(store_->Write(42, 0, d, Stability::kUnstable).ok());
  EXPECT_EQ(ReadAll(42, 0, 100), d);
  EXPECT_EQ(ReadAll(42, 1, 2), (std::vector<uint8_t>{'e', 'l'}));
  EXPECT_TRUE(ReadAll(42, 5, 10).empty());
  EXPECT_TRUE(ReadAll(42, 1000, 10).empty());
  EXPECT_TRUE(store_->Sync(42, Stability::kFileSync).ok());
}

TEST_F(DataStoreTest, FanOutPath) {
  EXPECT_EQ(LocalDataPath(0x1234567), "23/45/0000000001234567");
  ASSERT_TRUE(store_->Write(0x1234567, 0, std::vector<uint8_t>{1},
                            Stability::kDataSync)
                  .ok());
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/23/45/0000000001234567"));
  // 256 consecutive inodes share one leaf directory: one mkdir for them.
  EXPECT_EQ(LocalDataPath(0x100).substr(0, 6), LocalDataPath(0x1ff).substr(0, 6));
  EXPECT_NE(LocalDataPath(0x1ff).substr(0, 6), LocalDataPath(0x200).substr(0, 6));
}

// A store written in the first layout (low byte, second byte, no LAYOUT
// file) is moved at open and every file still reads.
TEST_F(DataStoreTest, OldLayoutIsMovedAndReadable) {
  store_.reset();
  std::filesystem::remove_all(dir_);
  const std::vector<ns::InodeId> inos = {1, 0x1234567, 0xabcdef12345, 0x100};
  for (ns::InodeId ino : inos) {
    char rel[48];
    std::snprintf(rel, sizeof rel, "%02x/%02x/%016llx",
                  static_cast<unsigned>(ino & 0xff),
                  static_cast<unsigned>((ino >> 8) & 0xff),
                  static_cast<unsigned long long>(ino));
    std::filesystem::create_directories(
        std::filesystem::path(dir_ + "/" + rel).parent_path());
    std::FILE* f = std::fopen((dir_ + "/" + rel).c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fprintf(f, "data of %llx", static_cast<unsigned long long>(ino));
    std::fclose(f);
  }
  auto s = OpenLocalDataStore(dir_);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  store_ = std::move(s).value();
  for (ns::InodeId ino : inos) {
    char want[32];
    std::snprintf(want, sizeof want, "data of %llx",
                  static_cast<unsigned long long>(ino));
    std::vector<uint8_t> got = ReadAll(ino, 0, 100);
    EXPECT_EQ(std::string(got.begin(), got.end()), want) << ino;
    EXPECT_TRUE(std::filesystem::exists(dir_ + "/" + LocalDataPath(ino)));
  }
  // The old leaf of inode 1 (01/00) held only it: removed.
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/01/00"));
  // Opening again finds LAYOUT and leaves everything where it is.
  store_.reset();
  s = OpenLocalDataStore(dir_);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  store_ = std::move(s).value();
  EXPECT_EQ(ReadAll(0x100, 0, 100).size(), 11u);
}

TEST_F(DataStoreTest, UnknownLayoutIsRefused) {
  store_.reset();
  std::FILE* f = std::fopen((dir_ + "/LAYOUT").c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("9\n", f);
  std::fclose(f);
  auto s = OpenLocalDataStore(dir_);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.status().IsInvalid()) << s.status().ToString();
}

TEST_F(DataStoreTest, MissingFileReadsEmptyAndUsesNoSpace) {
  EXPECT_TRUE(ReadAll(7, 0, 10).empty());
  auto used = store_->SpaceUsed(7);
  ASSERT_TRUE(used.ok());
  EXPECT_EQ(*used, 0u);
  EXPECT_TRUE(store_->Remove(7).ok());
  EXPECT_TRUE(store_->Sync(7, Stability::kFileSync).ok());
  EXPECT_TRUE(store_->Truncate(7, 0).ok());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/" + LocalDataPath(7)));
}

TEST_F(DataStoreTest, SparseWriteAtOneGiB) {
  std::vector<uint8_t> d(4096, 0xab);
  ASSERT_TRUE(store_->Write(9, 1ull << 30, d, Stability::kUnstable).ok());
  auto used = store_->SpaceUsed(9);
  ASSERT_TRUE(used.ok());
  EXPECT_LT(*used, 1u << 20);  // a hole, not a GiB of zeros
  EXPECT_GE(*used, 4096u);
  // The hole reads as zeros.
  std::vector<uint8_t> z = ReadAll(9, 1000, 16);
  EXPECT_EQ(z, std::vector<uint8_t>(16, 0));
  EXPECT_EQ(ReadAll(9, (1ull << 30) + 4090, 100),
            std::vector<uint8_t>(6, 0xab));
}

TEST_F(DataStoreTest, TruncateShrinksAndGrows) {
  ASSERT_TRUE(store_->Write(5, 0, std::vector<uint8_t>(100, 1),
                            Stability::kUnstable)
                  .ok());
  ASSERT_TRUE(store_->Truncate(5, 10).ok());
  EXPECT_EQ(ReadAll(5, 0, 100).size(), 10u);
  ASSERT_TRUE(store_->Truncate(5, 50).ok());
  std::vector<uint8_t> r = ReadAll(5, 0, 100);
  ASSERT_EQ(r.size(), 50u);
  EXPECT_EQ(r[9], 1);
  EXPECT_EQ(r[10], 0);
  ASSERT_TRUE(store_->Remove(5).ok());
  EXPECT_TRUE(ReadAll(5, 0, 100).empty());
}

TEST_F(DataStoreTest, BadOffsetsAreInvalid) {
  std::vector<uint8_t> d(10, 1);
  ns::Status s = store_->Write(3, ~uint64_t{0} - 4, d, Stability::kUnstable);
  EXPECT_TRUE(s.IsInvalid()) << s.ToString();
  EXPECT_TRUE(store_->Truncate(3, ~uint64_t{0}).IsInvalid());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/" + LocalDataPath(3)));
}

// The store keeps descriptors open between calls: after Remove, a write
// must make a new file, not land in the removed inode through a cached fd.
TEST_F(DataStoreTest, RemovedFileIsNotWrittenThroughACachedDescriptor) {
  const std::string path = dir_ + "/" + LocalDataPath(7);
  ASSERT_TRUE(store_->Write(7, 0, std::vector<uint8_t>{'o', 'l', 'd'},
                            Stability::kUnstable)
                  .ok());
  // A second name keeps the removed inode observable.
  const std::string keep = dir_ + "/kept";
  ASSERT_EQ(::link(path.c_str(), keep.c_str()), 0);
  ASSERT_TRUE(store_->Remove(7).ok());
  EXPECT_FALSE(std::filesystem::exists(path));
  ASSERT_TRUE(store_->Write(7, 1, std::vector<uint8_t>{'N'},
                            Stability::kUnstable)
                  .ok());
  EXPECT_EQ(ReadAll(7, 0, 10), (std::vector<uint8_t>{0, 'N'}));
  EXPECT_EQ(std::filesystem::file_size(keep), 3u);
  std::FILE* f = std::fopen(keep.c_str(), "rb");
  ASSERT_NE(f, nullptr);
  char buf[4] = {};
  EXPECT_EQ(std::fread(buf, 1, sizeof buf, f), 3u);
  std::fclose(f);
  EXPECT_EQ(std::string(buf, 3), "old");
  ASSERT_TRUE(store_->Remove(7).ok());
  EXPECT_TRUE(ReadAll(7, 0, 10).empty());
}

// Truncation keeps the inode: a cached descriptor stays right across it.
TEST_F(DataStoreTest, TruncateBetweenWritesOfAnOpenFile) {
  ASSERT_TRUE(store_->Write(8, 0, std::vector<uint8_t>(10, 'a'),
                            Stability::kUnstable)
                  .ok());
  ASSERT_TRUE(store_->Truncate(8, 0).ok());
  ASSERT_TRUE(store_->Write(8, 2, std::vector<uint8_t>{'b'},
                            Stability::kUnstable)
                  .ok());
  EXPECT_EQ(ReadAll(8, 0, 10), (std::vector<uint8_t>{0, 0, 'b'}));
  ASSERT_TRUE(store_->Truncate(8, 1).ok());
  EXPECT_EQ(ReadAll(8, 0, 10), (std::vector<uint8_t>{0}));
}

// More files than the store keeps open: each still reads back its bytes,
// written again after its descriptor was dropped.
TEST_F(DataStoreTest, MoreFilesThanTheOpenFileCacheHolds) {
  constexpr int kFiles = 150;
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < kFiles; ++i) {
      const uint8_t b = static_cast<uint8_t>(i + round);
      ASSERT_TRUE(store_->Write(1000 + i, round, std::vector<uint8_t>{b},
                                Stability::kUnstable)
                      .ok());
    }
  }
  for (int i = 0; i < kFiles; ++i) {
    EXPECT_EQ(ReadAll(1000 + i, 0, 4),
              (std::vector<uint8_t>{static_cast<uint8_t>(i),
                                    static_cast<uint8_t>(i + 1)}))
        << i;
    EXPECT_TRUE(store_->Sync(1000 + i, Stability::kFileSync).ok());
  }
}

// direct_write_min: whole aligned writes bypass the page cache (from an
// unaligned caller buffer, staged), others are buffered; both kinds of
// one file read back as one sequence of writes would leave them.
TEST_F(DataStoreTest, DirectWritesMixWithBufferedOnes) {
  LocalDataStoreOptions o;
  o.direct_write_min = 64 << 10;
  auto opened = OpenLocalDataStore(dir_ + "-direct", o);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::unique_ptr<DataStore> store = std::move(opened).value();
  constexpr size_t kMiB = 1 << 20;
  std::vector<uint8_t> model(3 * kMiB, 0);
  auto write = [&](uint64_t off, size_t n, uint8_t seed) {
    // One byte in: the data is not 4 KiB-aligned in memory.
    std::vector<uint8_t> buf(n + 1);
    for (size_t i = 0; i < n; ++i) buf[i + 1] = static_cast<uint8_t>(seed + i * 7);
    std::span<const uint8_t> d(buf.data() + 1, n);
    ASSERT_TRUE(store->Write(9, off, d, Stability::kUnstable).ok());
    std::copy(d.begin(), d.end(), model.begin() + off);
  };
  write(kMiB, kMiB, 1);             // direct
  write(kMiB + 100, 5000, 2);       // buffered, inside the direct range
  write(2 * kMiB, kMiB, 3);         // direct, after buffered dirty pages
  write(2 * kMiB + 8192, 8192, 4);  // aligned but short: buffered
  write(0, 64 << 10, 5);            // direct, the smallest
  ASSERT_TRUE(store->Sync(9, Stability::kFileSync).ok());
  std::vector<uint8_t> back(model.size() + 10);
  auto r = store->Read(9, 0, back);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(*r, model.size());
  back.resize(*r);
  EXPECT_TRUE(back == model);
  std::filesystem::remove_all(dir_ + "-direct");
}

TEST_F(DataStoreTest, UnwritableDirectoryIsAnError) {
  auto s = OpenLocalDataStore("/proc/nfs41d-cannot-exist");
  EXPECT_FALSE(s.ok());
}

}  // namespace
}  // namespace nfs41d::data
