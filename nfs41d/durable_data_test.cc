// Protocol tests of how file bytes and the namespace database meet: small
// files' bytes in the database (InlineDataTest), and a durable SQLite
// namespace whose replies and data removals wait for the WAL's sync
// (DurableDataTest).

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <string>

#include "libnamespace/src/sqlite_backend_internal.h"
#include "nfs41d/data_test_fixture.h"

namespace nfs41d {
namespace {

using namespace testing_data;  // NOLINT: the fixture and its helpers

// Durable SQLite, as nfs41d runs by default (NamespaceOptions::defer_sync):
// a reply is sent only once its change is on disk, and a removed file's
// bytes go only after that (else a crash could bring back the name without
// its data).
class DurableDataTest : public DataTest {
 protected:
  void SetUp() override {
    durable_ = true;
    DataTest::SetUp();
  }
};

TEST_F(DurableDataTest, RemoveIsAnsweredOnlyOnceOnDiskAndThenItsDataGoes) {
  Client::Opened g = Open("g", kWrite);
  ASSERT_NFS(client_->WriteFile(g.fh, g.stateid, 0, "gone").status, NFS4_OK);
  ASSERT_NFS(client_->CloseFile(g.fh, g.stateid).status, NFS4_OK);
  Client::Opened k = Open("kept", kWrite);
  ASSERT_NFS(client_->CloseFile(k.fh, k.stateid).status, NFS4_OK);
  auto ino = client_->GetAttr(g.fh, Bits({FATTR4_FILEID}));
  ASSERT_NFS(ino.status, NFS4_OK);
  const std::string data_file =
      dir_ + "/data/" + data::LocalDataPath(ino.value.fileid);
  ASSERT_TRUE(std::filesystem::exists(data_file));

  auto* backend = dynamic_cast<ns::sqlite_internal::SqliteBackend*>(
      &server_->ns().backend());
  ASSERT_NE(backend, nullptr);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  backend->SetSyncForTest([released](int fd) {
    released.wait();
    return ::fdatasync(fd);
  });
  std::future<nfsstat4> removed = std::async(std::launch::async, [&] {
    return client_->Remove(Root(), "g").status;
  });
  EXPECT_EQ(removed.wait_for(std::chrono::milliseconds(300)),
            std::future_status::timeout)
      << "REMOVE answered before its commit was synced";
  EXPECT_TRUE(std::filesystem::exists(data_file))
      << "data removed before the unlink was on disk";
  release.set_value();
  EXPECT_NFS(removed.get(), NFS4_OK);
  EXPECT_FALSE(std::filesystem::exists(data_file));

  Restart();
  EXPECT_NFS(client_->LookupPath("/g").status, NFS4ERR_NOENT);
  EXPECT_NFS(client_->LookupPath("/kept").status, NFS4_OK);
}

// Files up to inline_max bytes keep them in the namespace database
// (ops_io.cc, "Small files"), with the server's default bound.
class InlineDataTest : public DataTest {
 protected:
  void SetUp() override {
    inline_max_ = ServerOptions().inline_max;
    DataTest::SetUp();
  }
  ns::InodeId Ino(const Fh& fh) {
    auto a = client_->GetAttr(fh, Bits({FATTR4_FILEID}));
    EXPECT_NFS(a.status, NFS4_OK);
    return a.value.fileid;
  }
  std::string DataFile(const Fh& fh) {
    return dir_ + "/data/" + data::LocalDataPath(Ino(fh));
  }
  // The bytes the database holds for the file, or nullopt.
  std::optional<std::string> InDb(const Fh& fh) {
    auto r = server_->ns().ReadInline(Ino(fh));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::nullopt;
  }
  std::string ReadAll(const Fh& fh, uint32_t count = 1 << 16) {
    auto r = client_->ReadFile(fh, Anonymous(), 0, count);
    EXPECT_NFS(r.status, NFS4_OK);
    return r.value.data;
  }
};

TEST_F(InlineDataTest, SmallWriteGoesToTheDatabaseWithItsSize) {
  ASSERT_EQ(inline_max_, 4096u);
  Client::Opened f = Open("small", kBoth);
  const std::string bytes(3901, 'q');
  auto w = client_->WriteFile(f.fh, f.stateid, 0, bytes, FILE_SYNC4);
  ASSERT_NFS(w.status, NFS4_OK);
  EXPECT_EQ(w.value.committed, FILE_SYNC4);
  EXPECT_EQ(w.value.count, 3901u);
  EXPECT_EQ(InDb(f.fh), bytes);
  EXPECT_FALSE(std::filesystem::exists(DataFile(f.fh)));
  auto db = server_->ns().Resolve(ns::Credentials::Root(), "/small");
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(db->size, 3901u);
  nfs41client::Attrs a = Attrs(f.fh);
  EXPECT_EQ(a.size, 3901u);
  EXPECT_GE(a.space_used, 3901u);
  // An unstable write is as stable as its size: committed in the database.
  auto u = client_->WriteFile(f.fh, f.stateid, 0, "Q", UNSTABLE4);
  ASSERT_NFS(u.status, NFS4_OK);
  EXPECT_EQ(u.value.committed, FILE_SYNC4);
  EXPECT_EQ(f.stateid.seqid, 1u);
  EXPECT_EQ(client_->ReadFile(f.fh, f.stateid, 0, 3).value.data, "Qqq");
  auto tail = client_->ReadFile(f.fh, f.stateid, 3899, 100);
  EXPECT_EQ(tail.value.data, "qq");
  EXPECT_TRUE(tail.value.eof);
  // COMMIT has nothing left to do and answers the WRITE's verifier.
  auto v = client_->CommitFile(f.fh);
  ASSERT_NFS(v.status, NFS4_OK);
  EXPECT_EQ(v.value, w.value.verf);
  // The WRITE's commit was the write-back: the CLOSE changes nothing.
  const uint64_t change = Attrs(f.fh).change;
  ASSERT_NFS(client_->CloseFile(f.fh, f.stateid).status, NFS4_OK);
  EXPECT_EQ(Attrs(f.fh).change, change);
  EXPECT_FALSE(std::filesystem::exists(DataFile(f.fh)));
}

TEST_F(InlineDataTest, BytesSurviveRestartAndTheVerifierChanges) {
  Client::Opened f = Open("keep", kWrite);
  auto w1 = client_->WriteFile(f.fh, f.stateid, 0, "durable bytes", FILE_SYNC4);
  ASSERT_NFS(w1.status, NFS4_OK);
  ASSERT_NFS(client_->CloseFile(f.fh, f.stateid).status, NFS4_OK);
  const nfs41client::Attrs before = Attrs(f.fh);
  Restart();
  EXPECT_EQ(ReadAll(f.fh), "durable bytes");
  const nfs41client::Attrs after = Attrs(f.fh);
  EXPECT_EQ(after.size, before.size);
  EXPECT_EQ(after.change, before.change);
  EXPECT_EQ(after.mtime_nsec, before.mtime_nsec);
  Client::Opened g = Open("keep", kWrite);
  auto w2 = client_->WriteFile(g.fh, g.stateid, 0, "D");
  ASSERT_NFS(w2.status, NFS4_OK);
  EXPECT_NE(w1.value.verf, w2.value.verf);
  EXPECT_EQ(ReadAll(g.fh), "Durable bytes");
}

TEST_F(InlineDataTest, GrowingPastTheBoundMovesTheBytesToTheDataStore) {
  Client::Opened f = Open("grow", kBoth);
  const std::string head(3000, 'h');
  ASSERT_NFS(client_->WriteFile(f.fh, f.stateid, 0, head, FILE_SYNC4).status,
             NFS4_OK);
  ASSERT_TRUE(InDb(f.fh).has_value());
  // Past 4096: the first 3000 bytes move, then the write lands.
  const std::string more(2000, 'm');
  auto w = client_->WriteFile(f.fh, f.stateid, 3000, more, UNSTABLE4);
  ASSERT_NFS(w.status, NFS4_OK);
  EXPECT_EQ(w.value.committed, UNSTABLE4);
  EXPECT_FALSE(InDb(f.fh).has_value());
  EXPECT_TRUE(std::filesystem::exists(DataFile(f.fh)));
  EXPECT_EQ(Attrs(f.fh).size, 5000u);
  EXPECT_EQ(ReadAll(f.fh), head + more);
  ASSERT_NFS(client_->CommitFile(f.fh).status, NFS4_OK);
  ASSERT_NFS(client_->CloseFile(f.fh, f.stateid).status, NFS4_OK);
  // Not empty and in the data store: small writes stay there now.
  Client::Opened g = Open("grow", kWrite);
  ASSERT_NFS(client_->WriteFile(g.fh, g.stateid, 0, "H", FILE_SYNC4).status,
             NFS4_OK);
  EXPECT_FALSE(InDb(g.fh).has_value());
  ASSERT_NFS(client_->CloseFile(g.fh, g.stateid).status, NFS4_OK);
  Restart();
  EXPECT_EQ(ReadAll(f.fh), "H" + head.substr(1) + more);
}

TEST_F(InlineDataTest, SetattrSizeCutsOrMovesInlineBytes) {
  Client::Opened f = Open("t", kBoth);
  ASSERT_NFS(client_->WriteFile(f.fh, f.stateid, 0, std::string(100, 'x'),
                                FILE_SYNC4)
                 .status,
             NFS4_OK);
  // Down, and up within the bound: in the database, no data file.
  EXPECT_NFS(Run(Compound().PutFh(f.fh).SetSize(f.stateid, 10)), NFS4_OK);
  EXPECT_EQ(InDb(f.fh), std::string(10, 'x'));
  EXPECT_NFS(Run(Compound().PutFh(f.fh).SetSize(f.stateid, 20)), NFS4_OK);
  EXPECT_EQ(ReadAll(f.fh), std::string(10, 'x') + std::string(10, '\0'));
  EXPECT_FALSE(std::filesystem::exists(DataFile(f.fh)));
  // Up past it: the bytes go to the data store first.
  EXPECT_NFS(Run(Compound().PutFh(f.fh).SetSize(f.stateid, 10000)), NFS4_OK);
  EXPECT_FALSE(InDb(f.fh).has_value());
  EXPECT_TRUE(std::filesystem::exists(DataFile(f.fh)));
  EXPECT_EQ(Attrs(f.fh).size, 10000u);
  EXPECT_EQ(ReadAll(f.fh), std::string(10, 'x') + std::string(9990, '\0'));
  // OPEN's truncate to 0: the file may be inline again.
  Compound c;
  c.PutRootFh().Open("t", kWrite, 0, "trunc", true, UNCHECKED4, 0644, 0,
                     uint64_t{0});
  EXPECT_NFS(Run(c), NFS4_OK);
  EXPECT_EQ(Attrs(f.fh).size, 0u);
  ASSERT_NFS(client_->WriteFile(f.fh, f.stateid, 0, "new").status, NFS4_OK);
  EXPECT_EQ(InDb(f.fh), "new");
  EXPECT_EQ(ReadAll(f.fh), "new");
}

TEST_F(InlineDataTest, SparseWriteKeepsZerosBeforeIt) {
  Client::Opened f = Open("sparse", kBoth);
  ASSERT_NFS(client_->WriteFile(f.fh, f.stateid, 1000, "z").status, NFS4_OK);
  EXPECT_EQ(Attrs(f.fh).size, 1001u);
  EXPECT_EQ(ReadAll(f.fh), std::string(1000, '\0') + "z");
  ASSERT_TRUE(InDb(f.fh).has_value());
  // One byte past the bound, far from the data: moved, holes kept.
  ASSERT_NFS(client_->WriteFile(f.fh, f.stateid, 4096, "y").status, NFS4_OK);
  EXPECT_FALSE(InDb(f.fh).has_value());
  EXPECT_EQ(ReadAll(f.fh),
            std::string(1000, '\0') + "z" + std::string(3095, '\0') + "y");
}

TEST_F(InlineDataTest, UnlinkedWhileOpenThenReleased) {
  Client::Opened f = Open("u", kBoth);
  ASSERT_NFS(client_->WriteFile(f.fh, f.stateid, 0, "still here").status,
             NFS4_OK);
  const ns::InodeId ino = Ino(f.fh);
  ASSERT_NFS(client_->Remove(Root(), "u").status, NFS4_OK);
  EXPECT_EQ(client_->ReadFile(f.fh, f.stateid, 0, 100).value.data,
            "still here");
  ASSERT_NFS(client_->WriteFile(f.fh, f.stateid, 10, "!").status, NFS4_OK);
  EXPECT_EQ(client_->ReadFile(f.fh, f.stateid, 0, 100).value.data,
            "still here!");
  ASSERT_NFS(client_->CloseFile(f.fh, f.stateid).status, NFS4_OK);
  EXPECT_NFS(client_->GetAttr(f.fh, Bits({FATTR4_SIZE})).status,
             NFS4ERR_STALE);
  EXPECT_TRUE(server_->ns().ReadInline(ino).status().IsStale());

  // A client whose lease ran out: the flusher releases its orphan.
  auto b = Second();
  auto bo = b->OpenFile(Root(), "e", kBoth, 0, true);
  ASSERT_NFS(bo.status, NFS4_OK);
  ASSERT_NFS(b->WriteFile(bo.value.fh, bo.value.stateid, 0, "orphan").status,
             NFS4_OK);
  const ns::InodeId orphan = Ino(bo.value.fh);
  ASSERT_NFS(client_->Remove(Root(), "e").status, NFS4_OK);
  ASSERT_TRUE(server_->ns().ReadInline(orphan).ok());
  server_->state().ReapExpired(state::Clock::now() + std::chrono::hours(1));
  bool gone = false;
  for (int i = 0; i < 1000 && !gone; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    gone = server_->ns().ReadInline(orphan).status().IsStale();
  }
  EXPECT_TRUE(gone) << "the orphan and its bytes are released";
}

TEST_F(InlineDataTest, AnonymousWriteAndReadOfAClosedFile) {
  Client::Opened f = Open("anon", kWrite);
  ASSERT_NFS(client_->CloseFile(f.fh, f.stateid).status, NFS4_OK);
  auto w = client_->WriteFile(f.fh, Anonymous(), 0, "no open", UNSTABLE4);
  ASSERT_NFS(w.status, NFS4_OK);
  EXPECT_EQ(w.value.committed, FILE_SYNC4);
  auto db = server_->ns().Resolve(ns::Credentials::Root(), "/anon");
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(db->size, 7u);
  EXPECT_EQ(ReadAll(f.fh), "no open");
}

}  // namespace
}  // namespace nfs41d
