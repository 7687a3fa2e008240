// ns-migrate on both backends: round trips (POSIX tree -> namespace -> dump,
// dump -> namespace -> dump), the namespace read back through the library,
// resume after kill -9, dry run, and every kind of bad input.

#include <acl/libacl.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <gtest/gtest.h>
#include <sys/acl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "libnamespace/include/namespace/admin.h"
#include "migrate/importer.h"
#include "migrate/posix_acl.h"
#include "tests/test_util.h"

namespace nsmigrate {
namespace {

using ns::testing::FreshUri;
using ns::testing::ScratchDir;

std::string NewPath(const std::string& what) {
  static int n = 0;
  return fmt::format("{}/{}-{}", ScratchDir(), what, n++);
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// The dump without its header line (which names the source).
std::string Body(const std::string& path) {
  const std::string all = ns::testing::ReadFileBytes(path);
  const size_t nl = all.find('\n');
  return nl == std::string::npos ? std::string() : all.substr(nl + 1);
}

ns::Result<ImportStats> ImportUri(const std::string& from,
                                  const std::string& to,
                                  uint64_t batch_rows = 200000,
                                  bool dry_run = false) {
  SkipLog skips(nullptr);
  NS_ASSIGN_OR_RETURN(std::unique_ptr<Source> src,
                      OpenSource(from, SourceOptions{&skips}));
  NS_ASSIGN_OR_RETURN(std::unique_ptr<Writer> w, Writer::Open(to, dry_run));
  ImportOptions o;
  o.batch_rows = batch_rows;
  o.skips = &skips;
  return Import(*src, *w, o);
}

// Exports `uri` and returns the dump's path.
std::string ExportOrFail(const std::string& uri) {
  const std::string path = NewPath("export") + ".dump";
  ns::Result<std::unique_ptr<Source>> src = OpenNamespaceSource(uri);
  EXPECT_TRUE(src.ok()) << src.status().ToString();
  if (!src.ok()) return path;
  ns::Result<uint64_t> n = ExportDump(**src, path, nullptr);
  EXPECT_TRUE(n.ok()) << n.status().ToString();
  return path;
}

ns::Result<VerifyReport> VerifyUri(const std::string& from,
                                   const std::string& to) {
  SkipLog skips(nullptr);
  NS_ASSIGN_OR_RETURN(std::unique_ptr<Source> a,
                      OpenSource(from, SourceOptions{&skips}));
  NS_ASSIGN_OR_RETURN(std::unique_ptr<Source> b, OpenNamespaceSource(to));
  return Verify(*a, *b, false, stderr);
}

std::unique_ptr<ns::Namespace> OpenNs(const std::string& uri) {
  ns::Result<std::unique_ptr<ns::Namespace>> n =
      ns::Namespace::Open(uri, ns::testing::TestOptions());
  EXPECT_TRUE(n.ok()) << n.status().ToString();
  return n.ok() ? std::move(n).value() : nullptr;
}

std::vector<int64_t> Ints(const std::string& uri, const std::string& sql) {
  std::string err;
  std::unique_ptr<ns::testing::RawDb> db = ns::testing::RawDb::Open(uri, &err);
  EXPECT_TRUE(db) << err;
  if (!db) return {};
  std::vector<int64_t> v = db->QueryInts(sql, &err);
  EXPECT_TRUE(err.empty()) << sql << ": " << err;
  return v;
}

bool HasStateTable(const std::string& uri) {
  std::unique_ptr<Writer> w = std::move(Writer::Open(uri, true)).value();
  return w->HasTable("ns_migrate_state").value();
}

// A fresh namespace: only the root, no import state.
void ExpectFresh(const std::string& uri) {
  EXPECT_EQ(Ints(uri, "SELECT count(*) FROM inodes"), std::vector<int64_t>{1});
  EXPECT_EQ(Ints(uri, "SELECT count(*) FROM dirents"), std::vector<int64_t>{0});
  if (uri.starts_with("postgres")) {
    EXPECT_EQ(Ints(uri, "SELECT count(*) FROM symlinks"),
              std::vector<int64_t>{0});
  }
  EXPECT_FALSE(HasStateTable(uri));
}

constexpr const char* kHeader =
    "{\"format\":\"nsnfs-dump\",\"version\":1,\"source\":\"test\"}\n";

// A canonical dump with every core feature: devices, fifo, socket, hard
// links across directories, ext ids, names that need escaping.
std::string FeatureDump() {
  std::string d = kHeader;
  auto line = [&](const std::string& s) { d += s + "\n"; };
  line(
      R"({"path":"/","type":"d","mode":"0755","uid":0,"gid":0,"size":0,"atime":1600000000000000001,"mtime":1600000000000000002,"ctime":1600000000000000003,"btime":1600000000000000000})");
  line(
      R"({"path":"/dir","type":"d","mode":"2775","uid":1000,"gid":100,"size":0,"atime":1,"mtime":2,"ctime":3,"btime":1,"ext_id":"000000000000000000000000000000000001"})");
  line(
      R"({"path":"/dir/file","type":"f","mode":"0640","uid":1000,"gid":100,"size":12345,"atime":11,"mtime":12,"ctime":13,"btime":10,"ino":"L1","nlink":3,"ext_id":"0000A1B2C3D4E5F600000000000000000002"})");
  line(
      R"({"path":"/dir/sub","type":"d","mode":"0700","uid":1000,"gid":100,"size":0,"atime":1,"mtime":2,"ctime":3,"btime":1})");
  line(
      R"({"path":"/dir/sub/tab\tname \"q\" \\ é","type":"f","mode":"0644","uid":1,"gid":2,"size":0,"atime":1,"mtime":2,"ctime":3,"btime":1})");
  line(
      R"({"path":"/dir/sub/link2","type":"f","mode":"0640","uid":1000,"gid":100,"size":12345,"atime":11,"mtime":12,"ctime":13,"btime":10,"ino":"L1","nlink":3,"ext_id":"0000A1B2C3D4E5F600000000000000000002"})");
  line(
      R"({"path":"/dev","type":"d","mode":"0755","uid":0,"gid":0,"size":0,"atime":1,"mtime":2,"ctime":3,"btime":1})");
  line(
      R"({"path":"/dev/sda","type":"b","mode":"0660","uid":0,"gid":6,"size":0,"atime":1,"mtime":2,"ctime":3,"btime":1,"rdev":[8,0]})");
  line(
      R"({"path":"/dev/null","type":"c","mode":"0666","uid":0,"gid":0,"size":0,"atime":1,"mtime":2,"ctime":3,"btime":1,"rdev":[1,3]})");
  line(
      R"({"path":"/dev/fifo","type":"p","mode":"0600","uid":0,"gid":0,"size":0,"atime":1,"mtime":2,"ctime":3,"btime":1})");
  line(
      R"({"path":"/dev/sock","type":"s","mode":"0755","uid":0,"gid":0,"size":0,"atime":1,"mtime":2,"ctime":3,"btime":1})");
  line(
      R"({"path":"/link3","type":"f","mode":"0640","uid":1000,"gid":100,"size":12345,"atime":11,"mtime":12,"ctime":13,"btime":10,"ino":"L1","nlink":3,"ext_id":"0000A1B2C3D4E5F600000000000000000002"})");
  line(
      R"({"path":"/sym","type":"l","mode":"0777","uid":0,"gid":0,"size":8,"atime":1,"mtime":2,"ctime":3,"btime":1,"target":"dir/file"})");
  line(
      R"({"path":"/日本語","type":"d","mode":"0755","uid":0,"gid":0,"size":0,"atime":1,"mtime":2,"ctime":3,"btime":1})");
  return d;
}

// `dirs` directories of `files` files each, a few symlinks and hard links,
// in depth-first order: big enough for several batches.
std::string GeneratedDump(int dirs, int files) {
  std::string d = kHeader;
  d += R"({"path":"/","type":"d","mode":"0755","uid":0,"gid":0,"mtime":77})"
       "\n";
  for (int i = 0; i < dirs; ++i) {
    d += fmt::format(
        R"({{"path":"/d{}","type":"d","mode":"0755","uid":{},"gid":{},"mtime":{}}})"
        "\n",
        i, i, i, 1000 + i);
    for (int j = 0; j < files; ++j) {
      if (j % 50 == 7) {
        d += fmt::format(
            R"({{"path":"/d{}/s{}","type":"l","mode":"0777","uid":0,"gid":0,"mtime":5,"target":"f{}"}})"
            "\n",
            i, j, j - 1);
      } else if (j % 100 == 3) {
        // the same inode named once in every directory
        d += fmt::format(
            R"({{"path":"/d{}/h{}","type":"f","mode":"0644","uid":0,"gid":0,"size":7,"mtime":9,"ino":"H{}","nlink":{}}})"
            "\n",
            i, j, j, dirs);
      } else {
        d += fmt::format(
            R"({{"path":"/d{}/f{}","type":"f","mode":"0644","uid":{},"gid":0,"size":{},"mtime":{}}})"
            "\n",
            i, j, j, j * 10, 2000 + j);
      }
    }
  }
  return d;
}

class MigrateTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::string Fresh() {
    std::string uri = FreshUri(GetParam());
    EXPECT_FALSE(uri.empty());
    return uri;
  }
  const ns::Credentials root_ = ns::Credentials::Root();
};

TEST_P(MigrateTest, DumpRoundTripIsIdenticalAndReadableByTheLibrary) {
  const std::string dump0 = NewPath("features") + ".dump";
  WriteFile(dump0, FeatureDump());
  const std::string uri1 = Fresh();
  ns::Result<ImportStats> st = ImportUri("dump:" + dump0, uri1);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->entries, 14u);
  EXPECT_EQ(st->extra_names, 2u);

  // What the library reads.
  std::unique_ptr<ns::Namespace> n = OpenNs(uri1);
  ASSERT_TRUE(n);
  ASSERT_OK_AND_ASSIGN(ns::Attr f, n->Resolve(root_, "/dir/file"));
  EXPECT_EQ(f.nlink, 3u);
  EXPECT_EQ(f.mode, 0640u);
  EXPECT_EQ(f.uid, 1000u);
  EXPECT_EQ(f.size, 12345u);
  EXPECT_EQ(f.mtime, 12);
  EXPECT_EQ(f.btime, 10);
  ASSERT_OK_AND_ASSIGN(ns::Attr l2, n->Resolve(root_, "/dir/sub/link2"));
  ASSERT_OK_AND_ASSIGN(ns::Attr l3, n->Lookup(root_, ns::kRootInode, "link3"));
  EXPECT_EQ(l2.ino, f.ino);
  EXPECT_EQ(l3.ino, f.ino);
  ASSERT_OK_AND_ASSIGN(ns::Attr root, n->GetAttr(root_, ns::kRootInode));
  EXPECT_EQ(root.nlink, 5u);  // dir, dev, 日本語
  EXPECT_EQ(root.mtime, 1600000000000000002);
  ASSERT_OK_AND_ASSIGN(ns::Attr dir, n->Resolve(root_, "/dir"));
  EXPECT_EQ(dir.nlink, 3u);
  EXPECT_EQ(dir.mode, 02775u);
  EXPECT_EQ(dir.parent, ns::kRootInode);
  ASSERT_OK_AND_ASSIGN(ns::Attr sub, n->Resolve(root_, "/dir/sub"));
  EXPECT_EQ(sub.parent, dir.ino);
  ASSERT_OK_AND_ASSIGN(ns::Attr dotdot, n->Lookup(root_, sub.ino, ".."));
  EXPECT_EQ(dotdot.ino, dir.ino);
  ASSERT_OK_AND_ASSIGN(ns::Attr sda, n->Resolve(root_, "/dev/sda"));
  EXPECT_EQ(sda.type, ns::FileType::kBlockDevice);
  EXPECT_EQ(sda.rdev_major, 8u);
  ASSERT_OK_AND_ASSIGN(ns::Attr sym, n->Resolve(root_, "/sym", false));
  ASSERT_OK_AND_ASSIGN(std::string target, n->ReadLink(root_, sym.ino));
  EXPECT_EQ(target, "dir/file");
  ASSERT_OK_AND_ASSIGN(ns::Attr through, n->Resolve(root_, "/sym"));
  EXPECT_EQ(through.ino, f.ino);
  // readdir: the dump's order is the cookie order.
  ASSERT_OK_AND_ASSIGN(std::vector<ns::DirEntry> ents,
                       ns::testing::ListAll(*n, ns::kRootInode));
  std::vector<std::string> names;
  for (const auto& e : ents) names.push_back(e.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"dir", "dev", "link3", "sym", "日本語"}));
  // fsck finds nothing wrong.
  ASSERT_OK_AND_ASSIGN(ns::FsckReport rep, ns::Fsck(*n));
  for (const auto& fi : rep.findings)
    ADD_FAILURE() << fi.check << ": " << fi.detail;
  n.reset();

  // Verify against the source; export; again; identical.
  ASSERT_OK_AND_ASSIGN(VerifyReport v, VerifyUri("dump:" + dump0, uri1));
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(v.compared, 14u);
  const std::string a = ExportOrFail(uri1);
  const std::string uri2 = Fresh();
  ASSERT_OK(ImportUri("dump:" + a, uri2));
  const std::string b = ExportOrFail(uri2);
  EXPECT_FALSE(Body(a).empty());
  EXPECT_EQ(Body(a), Body(b));
  // Everything but the hard-link keys is as in the hand-written dump.
  EXPECT_NE(Body(a).find("\"ext_id\":\"0000A1B2C3D4E5F600000000000000000002\""),
            std::string::npos);

  // The library goes on from here: new ids and cookies above the imported.
  n = OpenNs(uri2);
  ASSERT_TRUE(n);
  ASSERT_OK_AND_ASSIGN(ns::Attr created,
                       n->Create(root_, ns::kRootInode, "new", 0644));
  EXPECT_GT(created.ino, 12u);
  ASSERT_OK_AND_ASSIGN(ns::Attr made,
                       n->Mkdir(root_, ns::kRootInode, "newdir", 0755));
  EXPECT_GT(made.ino, created.ino);
  ASSERT_OK_AND_ASSIGN(ents, ns::testing::ListAll(*n, ns::kRootInode));
  ASSERT_EQ(ents.size(), 7u);
  EXPECT_EQ(ents[5].name, "new");
  EXPECT_EQ(ents[6].name, "newdir");
  ASSERT_OK_AND_ASSIGN(root, n->GetAttr(root_, ns::kRootInode));
  EXPECT_EQ(root.nlink, 6u);
}

// The bulk path (batches stored on the writer thread while the next is
// read, dirents' indexes dropped for the load and rebuilt by Finish) gives
// the namespace a single batch gives, metadata, hard links and symlinks
// included, with the schema's indexes back in place.
TEST_P(MigrateTest, PipelinedBatchesGiveTheSameNamespaceAsOneBatch) {
  std::string d = GeneratedDump(12, 60);
  // Metadata on some entries of a few directories.
  d += R"({"path":"/m","type":"d","mode":"0755","uid":0,"gid":0,"mtime":3,"tags":{"OSMTemplate":"StoreName x"}})"
       "\n";
  for (int i = 0; i < 40; ++i) {
    d += fmt::format(
        R"({{"path":"/m/f{}","type":"f","mode":"0640","uid":5,"gid":6,"size":{},"mtime":4,"checksums":{{"adler32":"0a0b0c{:02x}"}},"xattrs":{{"user.k":"dmFsdWU="}},"acl":[{{"type":0,"flags":0,"mask":7,"who":"OWNER@"}},{{"type":0,"flags":0,"mask":2,"who":"1000"}}],"locations":[{{"type":"tape","uri":"osm://s/{}"}}]}})"
        "\n",
        i, i, i, i);
  }
  d += R"({"path":"/m/sub","type":"d","mode":"0700","uid":0,"gid":0,"mtime":3})"
       "\n";
  d += R"({"path":"/m/sub/x","type":"l","mode":"0777","uid":0,"gid":0,"mtime":3,"target":"../f1"})"
       "\n";
  const std::string dump = NewPath("pipelined") + ".dump";
  WriteFile(dump, d);
  const std::string many = Fresh(), one = Fresh();
  ASSERT_OK_AND_ASSIGN(ImportStats a, ImportUri("dump:" + dump, many, 37));
  EXPECT_GT(a.batches, 20u);
  ASSERT_OK_AND_ASSIGN(ImportStats b,
                       ImportUri("dump:" + dump, one, 100000000));
  EXPECT_EQ(b.batches, 0u);  // everything in Finish
  EXPECT_EQ(a.entries, b.entries);
  EXPECT_EQ(a.with_metadata, 41u);
  const std::string ea = ExportOrFail(many), eb = ExportOrFail(one);
  EXPECT_FALSE(Body(ea).empty());
  EXPECT_TRUE(Body(ea) == Body(eb)) << "diff " << ea << " " << eb;
  for (const char* sql :
       {"SELECT sum(cookie * 7 + child * 3 + parent) FROM dirents",
        "SELECT sum(ino * 5 + nlink * 3 + mode) FROM inodes",
        "SELECT count(*) FROM aces", "SELECT count(*) FROM dir_tags"}) {
    EXPECT_EQ(Ints(many, sql), Ints(one, sql)) << sql;
  }
  // dirents' two indexes ((parent, name) and (parent, cookie)) back; none
  // of the import's own tables left.
  const char* indexes =
      GetParam() == "sqlite"
          ? "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND "
            "tbl_name = 'dirents' AND sql IS NOT NULL"
          : "SELECT count(*) FROM pg_indexes WHERE tablename = 'dirents'";
  EXPECT_EQ(Ints(many, indexes), std::vector<int64_t>{2});
  EXPECT_EQ(Ints(one, indexes), std::vector<int64_t>{2});
  EXPECT_FALSE(HasStateTable(many));
  ASSERT_OK_AND_ASSIGN(VerifyReport v, VerifyUri("dump:" + dump, many));
  EXPECT_TRUE(v.ok());
  std::unique_ptr<ns::Namespace> n = OpenNs(many);
  ASSERT_TRUE(n);
  ASSERT_OK_AND_ASSIGN(ns::FsckReport rep, ns::Fsck(*n));
  for (const auto& fi : rep.findings)
    ADD_FAILURE() << fi.check << ": " << fi.detail;
}

TEST_P(MigrateTest, PosixTreeRoundTrip) {
  const std::string tree = NewPath("tree");
  ASSERT_EQ(::mkdir(tree.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((tree + "/a").c_str(), 0750), 0);
  ASSERT_EQ(::mkdir((tree + "/a/b").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((tree + "/c").c_str(), 0755), 0);
  WriteFile(tree + "/a/f", "hello");
  const bool root = ::geteuid() == 0;
  if (root) {  // before the chmod: chown clears setuid
    ASSERT_EQ(::lchown((tree + "/a/f").c_str(), 1234, 5678), 0);
  }
  ASSERT_EQ(::chmod((tree + "/a/f").c_str(), 04751), 0);
  ASSERT_EQ(::link((tree + "/a/f").c_str(), (tree + "/c/g").c_str()), 0);
  ASSERT_EQ(::symlink("../a/f", (tree + "/c/l").c_str()), 0);
  ASSERT_EQ(::mkfifo((tree + "/p").c_str(), 0600), 0);
  const struct timespec times[2] = {{1500000000, 123456789},
                                    {1600000000, 987654321}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (tree + "/a/f").c_str(), times, 0), 0);
  const bool have_xattr =
      ::lsetxattr((tree + "/a/b").c_str(), "user.k", "v\0x", 3, 0) == 0;
  acl_t acl = acl_from_text("u::rwx,u:1000:r-x,g::r-x,m::r-x,o::---");
  ASSERT_NE(acl, nullptr);
  const bool have_acl =
      acl_set_file((tree + "/c").c_str(), ACL_TYPE_ACCESS, acl) == 0;
  acl_free(acl);

  // The posix source as the dump shows it: xattrs and the ACL as ACEs.
  {
    SkipLog skips(nullptr);
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Source> src,
                         OpenSource("posix:" + tree, SourceOptions{&skips}));
    std::map<std::string, Entry> seen;
    for (int i = 0; i < 100; ++i) {
      ASSERT_OK_AND_ASSIGN(std::optional<Entry> e, src->Next());
      if (!e) break;
      seen[e->path] = *e;
    }
    ASSERT_EQ(seen.size(), 8u);
    EXPECT_EQ(seen["/a/f"].link_key, seen["/c/g"].link_key);
    EXPECT_EQ(seen["/a/f"].mtime, 1600000000987654321);
    EXPECT_EQ(seen["/a/f"].atime, 1500000000123456789);
    if (have_xattr) {
      ASSERT_EQ(seen["/a/b"].xattrs.size(), 1u);
      EXPECT_EQ(seen["/a/b"].xattrs[0].second, std::string("v\0x", 3));
    }
    if (have_acl) {
      ASSERT_OK_AND_ASSIGN(
          std::vector<Ace> want,
          PosixAclTextToNfs4("u::rwx,u:1000:r-x,g::r-x,m::r-x,o::---", true,
                             false));
      EXPECT_EQ(seen["/c"].acl, want);
    }
    std::cerr << "xattrs " << (have_xattr ? "tested" : "not supported here")
              << ", ACLs " << (have_acl ? "tested" : "not supported here")
              << "\n";
  }

  const std::string uri1 = Fresh();
  ASSERT_OK_AND_ASSIGN(ImportStats st, ImportUri("posix:" + tree, uri1));
  EXPECT_EQ(st.entries, 8u);
  {
    std::unique_ptr<ns::Namespace> n = OpenNs(uri1);
    ASSERT_TRUE(n);
    ASSERT_OK_AND_ASSIGN(ns::Attr f, n->Resolve(root_, "/a/f"));
    EXPECT_EQ(f.mode, 04751u);
    EXPECT_EQ(f.size, 5u);
    EXPECT_EQ(f.nlink, 2u);
    EXPECT_EQ(f.mtime, 1600000000987654321);
    if (root) {
      EXPECT_EQ(f.uid, 1234u);
    }
    ASSERT_OK_AND_ASSIGN(ns::Attr g, n->Resolve(root_, "/c/g"));
    EXPECT_EQ(g.ino, f.ino);
    ASSERT_OK_AND_ASSIGN(ns::Attr l, n->Resolve(root_, "/c/l"));
    EXPECT_EQ(l.ino, f.ino);  // ../a/f followed
    ASSERT_OK_AND_ASSIGN(ns::Attr a, n->Resolve(root_, "/a"));
    EXPECT_EQ(a.nlink, 3u);
    EXPECT_EQ(a.mode, 0750u);
    ASSERT_OK_AND_ASSIGN(ns::Attr p, n->Resolve(root_, "/p"));
    EXPECT_EQ(p.type, ns::FileType::kFifo);
    ASSERT_OK_AND_ASSIGN(std::vector<std::string> names,
                         ns::testing::ListNames(*n, ns::kRootInode));
    EXPECT_EQ(names, (std::vector<std::string>{"a", "c", "p"}));
  }
  ASSERT_OK_AND_ASSIGN(VerifyReport v, VerifyUri("posix:" + tree, uri1));
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(v.compared, 8u);
  // Changing the tree makes verify fail.
  ASSERT_EQ(::chmod((tree + "/a/b").c_str(), 0700), 0);
  ASSERT_OK_AND_ASSIGN(v, VerifyUri("posix:" + tree, uri1));
  EXPECT_EQ(v.differing, 1u);
  ASSERT_EQ(::chmod((tree + "/a/b").c_str(), 0755), 0);

  const std::string d1 = ExportOrFail(uri1);
  const std::string uri2 = Fresh();
  ASSERT_OK(ImportUri("dump:" + d1, uri2));
  const std::string d2 = ExportOrFail(uri2);
  EXPECT_EQ(Body(d1), Body(d2));
  EXPECT_NE(Body(d1).find("\"mtime\":1600000000987654321"), std::string::npos);
}

// Runs the real binary; returns its wait status and its stderr.
std::pair<int, std::string> RunTool(const std::vector<std::string>& args) {
  const std::string err = NewPath("stderr");
  std::string cmd = NS_MIGRATE_BIN;
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " >/dev/null 2>" + err;
  const int status = std::system(cmd.c_str());
  return {status, ns::testing::ReadFileBytes(err)};
}

TEST_P(MigrateTest, ResumeAfterKillIsIdenticalToAnUninterruptedRun) {
  const std::string dump = NewPath("gen") + ".dump";
  WriteFile(dump, GeneratedDump(20, 150));  // 3,020 entries
  const std::string uri = Fresh();
  // kill -9 right after the third of ~13 batches.
  auto [st1, err1] =
      RunTool({"--from", "dump:" + dump, "--to", uri, "--batch-rows", "500",
               "--crash-after-batches", "3", "--no-progress"});
  ASSERT_TRUE(WIFSIGNALED(st1) || (WIFEXITED(st1) && WEXITSTATUS(st1) == 137))
      << st1 << " " << err1;
  EXPECT_TRUE(HasStateTable(uri));
  EXPECT_EQ(Ints(uri,
                 "SELECT CASE WHEN entries > 0 AND entries < 3021 THEN 1 ELSE "
                 "0 END FROM ns_migrate_state"),
            std::vector<int64_t>{1});
  if (GetParam() != "sqlite") {
    // What a kill between the side connection's commit and the main one's
    // leaves (pg_writer.cc, WriteSide): rows past the checkpoint, which the
    // resume must delete before it writes them again.
    std::string err;
    std::unique_ptr<ns::testing::RawDb> db =
        ns::testing::RawDb::Open(uri, &err);
    ASSERT_TRUE(db) << err;
    ASSERT_TRUE(db->Exec(
        "INSERT INTO dirents (parent, name, child, type, cookie) SELECT 1, "
        "'d7', next_ino, 2, next_cookie FROM ns_migrate_state; INSERT INTO "
        "symlinks (ino, target) SELECT next_ino, 'stray' FROM "
        "ns_migrate_state",
        &err))
        << err;
  }
  // Without --resume it refuses and says what to do.
  auto [st2, err2] =
      RunTool({"--from", "dump:" + dump, "--to", uri, "--no-progress"});
  EXPECT_EQ(WEXITSTATUS(st2), 1);
  EXPECT_NE(err2.find("--resume"), std::string::npos) << err2;
  // A different source cannot resume it.
  auto [st3, err3] = RunTool({"--from", "dump:" + dump + "x", "--to", uri,
                              "--resume", "--no-progress"});
  EXPECT_EQ(WEXITSTATUS(st3), 1);
  auto [st4, err4] =
      RunTool({"--from", "dump:" + dump, "--to", uri, "--batch-rows", "700",
               "--resume", "--verify", "--no-progress"});
  ASSERT_EQ(WEXITSTATUS(st4), 0) << err4;
  EXPECT_FALSE(HasStateTable(uri));

  const std::string uri2 = Fresh();
  ASSERT_OK(ImportUri("dump:" + dump, uri2));
  const std::string resumed = ExportOrFail(uri);
  const std::string straight = ExportOrFail(uri2);
  const std::string body = Body(straight);
  EXPECT_EQ(std::count(body.begin(), body.end(), '\n'), 3021);
  EXPECT_TRUE(Body(resumed) == body) << "diff " << resumed << " " << straight;
  // Same rows, ids and cookies included.
  EXPECT_EQ(
      Ints(uri, "SELECT sum(cookie * 7 + child * 3 + parent) FROM dirents"),
      Ints(uri2, "SELECT sum(cookie * 7 + child * 3 + parent) FROM dirents"));
  if (GetParam() != "sqlite") {
    EXPECT_EQ(Ints(uri, "SELECT count(*) FROM symlinks"),
              Ints(uri2, "SELECT count(*) FROM symlinks"));
  }
  std::unique_ptr<ns::Namespace> n = OpenNs(uri);
  ASSERT_TRUE(n);
  ASSERT_OK_AND_ASSIGN(ns::Attr h, n->Resolve(root_, "/d7/h103"));
  EXPECT_EQ(h.nlink, 20u);
  ASSERT_OK_AND_ASSIGN(ns::FsckReport rep, ns::Fsck(*n));
  for (const auto& fi : rep.findings)
    ADD_FAILURE() << fi.check << ": " << fi.detail;
}

TEST_P(MigrateTest, PosixResumeAfterKill) {
  const std::string tree = NewPath("rtree");
  ASSERT_EQ(::mkdir(tree.c_str(), 0755), 0);
  for (int d = 0; d < 6; ++d) {
    const std::string dir = fmt::format("{}/d{}", tree, d);
    ASSERT_EQ(::mkdir(dir.c_str(), 0700 + d), 0);
    for (int f = 0; f < 60; ++f) WriteFile(fmt::format("{}/f{}", dir, f), "x");
  }
  ASSERT_EQ(::link((tree + "/d0/f1").c_str(), (tree + "/d5/h").c_str()), 0);
  const std::string uri = Fresh();
  auto [st1, err1] =
      RunTool({"--from", "posix:" + tree, "--to", uri, "--batch-rows", "100",
               "--crash-after-batches", "2", "--no-progress"});
  ASSERT_TRUE(WIFSIGNALED(st1) || (WIFEXITED(st1) && WEXITSTATUS(st1) == 137))
      << st1 << " " << err1;
  EXPECT_TRUE(HasStateTable(uri));
  auto [st2, err2] = RunTool({"--from", "posix:" + tree, "--to", uri,
                              "--resume", "--verify", "--no-progress"});
  ASSERT_EQ(WEXITSTATUS(st2), 0) << err2;
  const std::string uri2 = Fresh();
  ASSERT_OK(ImportUri("posix:" + tree, uri2));
  // Everything but the root's and directories' atimes (reading moves them).
  ASSERT_OK_AND_ASSIGN(VerifyReport v, VerifyUri("posix:" + tree, uri));
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(v.compared, 368u);
  EXPECT_EQ(
      Ints(uri, "SELECT sum(cookie * 7 + child * 3 + parent) FROM dirents"),
      Ints(uri2, "SELECT sum(cookie * 7 + child * 3 + parent) FROM dirents"));
  std::unique_ptr<ns::Namespace> n = OpenNs(uri);
  ASSERT_TRUE(n);
  ASSERT_OK_AND_ASSIGN(ns::Attr h, n->Resolve(root_, "/d5/h"));
  ASSERT_OK_AND_ASSIGN(ns::Attr f1, n->Resolve(root_, "/d0/f1"));
  EXPECT_EQ(h.ino, f1.ino);
  EXPECT_EQ(h.nlink, 2u);
}

struct BadCase {
  const char* name;
  std::string lines;  // after the header
  const char* want;   // in the error
};

TEST_P(MigrateTest, BadInputIsRefusedWithTheLineAndChangesNothing) {
  const std::string ok_dir =
      R"({"path":"/a","type":"d","mode":"0755","uid":0,"gid":0,"mtime":1})";
  const std::vector<BadCase> cases = {
      {"malformed", ok_dir + "\n{\"path\":\"/a/x\",\"type\":\"f\",\n",
       "dump line 3"},
      {"unknown field",
       ok_dir + "\n" +
           R"({"path":"/b","type":"f","mode":"0644","uid":0,"gid":0,"mtime":1,"colour":"red"})"
           "\n",
       "unknown field 'colour'"},
      {"dangling parent",
       ok_dir + "\n" +
           R"({"path":"/nope/x","type":"f","mode":"0644","uid":0,"gid":0,"mtime":1})"
           "\n",
       "parent directory '/nope' does not precede"},
      {"out of order",
       ok_dir + "\n" +
           R"({"path":"/b","type":"d","mode":"0755","uid":0,"gid":0,"mtime":1})"
           "\n" +
           R"({"path":"/a/late","type":"f","mode":"0644","uid":0,"gid":0,"mtime":1})"
           "\n",
       "line 4"},
      {"cycle",
       ok_dir + "\n" +
           R"({"path":"/a/b","type":"d","mode":"0755","uid":0,"gid":0,"mtime":1,"ino":"7","nlink":2})"
           "\n",
       "cannot be hard-linked"},
      {"duplicate", ok_dir + "\n" + ok_dir + "\n", "duplicate name"},
      {"unknown user",
       ok_dir + "\n" +
           R"({"path":"/a/x","type":"f","mode":"0644","user":"no-such-user-nsmigrate","gid":0,"mtime":1})"
           "\n",
       "unknown user 'no-such-user-nsmigrate'"},
      {"bad mode",
       R"({"path":"/a","type":"d","mode":"0999","uid":0,"gid":0,"mtime":1})"
       "\n",
       "not octal"},
      {"dot-dot",
       R"({"path":"/a/../b","type":"d","mode":"0755","uid":0,"gid":0,"mtime":1})"
       "\n",
       "reserved"},
      {"missing field",
       R"({"path":"/a","type":"d","mode":"0755","uid":0,"mtime":1})"
       "\n",
       "needs path, type"},
      {"late root",
       ok_dir + "\n" +
           R"({"path":"/","type":"d","mode":"0755","uid":0,"gid":0,"mtime":1})"
           "\n",
       "root must be the first"},
      {"uid range",
       R"({"path":"/a","type":"d","mode":"0755","uid":4294967295,"gid":0,"mtime":1})"
       "\n",
       "out of range"},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string dump = NewPath("bad") + ".dump";
    WriteFile(dump, kHeader + c.lines);
    const std::string uri = Fresh();
    ns::Result<ImportStats> st = ImportUri("dump:" + dump, uri);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.status().ToString().find(c.want), std::string::npos)
        << st.status().ToString();
    EXPECT_NE(st.status().ToString().find("line"), std::string::npos)
        << st.status().ToString();
    ExpectFresh(uri);
    // The dry run finds the same.
    ns::Result<ImportStats> dry =
        ImportUri("dump:" + dump, Fresh(), 200000, true);
    EXPECT_FALSE(dry.ok());
  }
  // Not a dump at all.
  const std::string junk = NewPath("junk");
  WriteFile(junk, "path,type\n/a,d\n");
  ns::Result<ImportStats> st = ImportUri("dump:" + junk, Fresh());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().ToString().find("dump line 1"), std::string::npos);

  // A bad line after batches were committed: the error names it and the
  // target is left resumable; resuming meets the same line again.
  const std::string big = NewPath("bigbad") + ".dump";
  WriteFile(big, GeneratedDump(3, 100) + "{broken\n");
  const std::string uri = Fresh();
  st = ImportUri("dump:" + big, uri, 50);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().ToString().find("dump line 306"), std::string::npos)
      << st.status().ToString();
  EXPECT_TRUE(HasStateTable(uri));
  auto [status, err] = RunTool(
      {"--from", "dump:" + big, "--to", uri, "--resume", "--no-progress"});
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(err.find("dump line 306"), std::string::npos) << err;
  EXPECT_NE(err.find("--resume"), std::string::npos) << err;
}

TEST_P(MigrateTest, DryRunWritesNothingAndTargetsMustBeFresh) {
  const std::string dump = NewPath("dry") + ".dump";
  WriteFile(dump, FeatureDump());
  const std::string uri = Fresh();
  if (GetParam() == "sqlite") {
    ASSERT_OK_AND_ASSIGN(ImportStats st,
                         ImportUri("dump:" + dump, uri, 200000, true));
    EXPECT_EQ(st.entries, 14u);
    EXPECT_FALSE(std::filesystem::exists(ns::testing::SqlitePath(uri)));
    // An existing fresh namespace stays untouched too.
    ASSERT_TRUE(OpenNs(uri));
  } else {
    ASSERT_TRUE(OpenNs(uri));  // the schema, so a dry run can check it
  }
  ASSERT_OK_AND_ASSIGN(ImportStats st,
                       ImportUri("dump:" + dump, uri, 200000, true));
  EXPECT_EQ(st.entries, 14u);
  ExpectFresh(uri);
  // A real import, then any other import is refused: not fresh.
  ASSERT_OK(ImportUri("dump:" + dump, uri));
  ns::Result<ImportStats> again = ImportUri("dump:" + dump, uri);
  EXPECT_TRUE(again.status().IsExists()) << again.status().ToString();
  EXPECT_EQ(Ints(uri, "SELECT count(*) FROM inodes"), std::vector<int64_t>{12});
}

TEST_P(MigrateTest, UnreachableSourcesAndTargetsSayWhy) {
  ns::Result<ImportStats> st = ImportUri("dump:/nonexistent/x.dump", Fresh());
  EXPECT_TRUE(st.status().IsNotFound()) << st.status().ToString();
  st = ImportUri("posix:/nonexistent/tree", Fresh());
  EXPECT_TRUE(st.status().IsNotFound()) << st.status().ToString();
  st = ImportUri("chimera:postgresql://x/y", Fresh());
  EXPECT_TRUE(st.status().IsUnavailable()) << st.status().ToString();
  EXPECT_NE(st.status().ToString().find("chimera:postgresql://x/y"),
            std::string::npos);
  st = ImportUri("nosuch:/x", Fresh());
  EXPECT_TRUE(st.status().IsInvalid()) << st.status().ToString();
  const int port = ns::testing::FreeLocalPort();
  const std::string dead =
      GetParam() == "sqlite"
          ? "sqlite:///nonexistent-dir/ns.db"
          : fmt::format("postgresql://nobody@127.0.0.1:{}/x?connect_timeout=2",
                        port);
  const std::string dump = NewPath("ok") + ".dump";
  WriteFile(dump, FeatureDump());
  st = ImportUri("dump:" + dump, dead);
  EXPECT_FALSE(st.ok());
  auto [status, err] = RunTool({"--from", "dump:" + dump, "--to", dead});
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(err.find("target"), std::string::npos) << err;
  auto [s2, e2] =
      RunTool({"--export", "--from", dead, "--to", "dump:" + NewPath("x")});
  EXPECT_EQ(WEXITSTATUS(s2), 1);
  EXPECT_NE(e2.find("source"), std::string::npos) << e2;
}

INSTANTIATE_TEST_SUITE_P(Dialects, MigrateTest,
                         ::testing::ValuesIn(ns::testing::DialectsWithPartitions()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// A SQLite file ns-migrate makes itself gets 16 KiB pages
// (sqlite_writer.cc: kNewFilePageSize) and is an ordinary namespace.
TEST(SqliteTarget, NewFileGetsLargePages) {
  const std::string dump = NewPath("pages") + ".dump";
  WriteFile(dump, FeatureDump());
  const std::string uri = "sqlite://" + NewPath("pages") + ".db";
  ns::Result<ImportStats> r = ImportUri("dump:" + dump, uri);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Ints(uri, "PRAGMA page_size"), std::vector<int64_t>{16384});
  ns::Result<VerifyReport> v = VerifyUri("dump:" + dump, uri);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->differing + v->missing + v->unexpected, 0u);
  EXPECT_GT(v->equal, 0u);
}

TEST(DumpFormat, ExtrasRoundTripAndBase64) {
  Entry e;
  e.path = "/x";
  e.type = ns::FileType::kRegular;
  e.mode = 0640;
  e.mtime = e.atime = e.ctime = e.btime = 5;
  e.checksums = {{"adler32", "0a0b0c0d"},
                 {"md5", "d41d8cd98f00b204e9800998ecf8427e"}};
  e.xattrs = {{"user.bin", std::string("\0\xff\x01", 3)}, {"user.t", "text"}};
  e.acl = {Ace{0, 0x40, 0x7, "GROUP@"}, Ace{1, 0, 0x2, "1000"}};
  e.tags = {{"OSMTemplate", "StoreName x"}};
  e.locations = {{"tape", "osm://a/b"}, {"disk", "dcache://pool1"}};
  e.ext_id = "000012345678901234567890";
  DumpParser p;
  const std::string line = FormatEntry(e);
  ASSERT_OK_AND_ASSIGN(Entry back, p.ParseEntry(line, 2));
  EXPECT_EQ(back, e);
  EXPECT_EQ(FormatEntry(back), line);
  for (const std::string& s : std::vector<std::string>{
           "", "a", "ab", "abc", "abcd", std::string("\0\0", 2)}) {
    ASSERT_OK_AND_ASSIGN(std::string d, Base64Decode(Base64Encode(s)));
    EXPECT_EQ(d, s);
  }
  EXPECT_FALSE(Base64Decode("a=bc").ok());
  EXPECT_FALSE(p.ParseEntry(line + "x", 9).ok());
  EXPECT_FALSE(
      p.ParseEntry(
           R"({"path":"/x","type":"f","mode":"0644","uid":0,"gid":0,"mtime":1,"xattrs":{"a":"!!"}})",
           3)
          .ok());
}

TEST(PosixAcl, MapsMaskNamedEntriesAndDefaults) {
  ASSERT_OK_AND_ASSIGN(
      std::vector<Ace> aces,
      PosixAclTextToNfs4("u::rw-,u:1000:rwx,g::r--,g:50:rw-,m::r-x,o::---",
                         false, false));
  // owner allow+deny, user 1000 (masked to r-x) allow+deny, group@ and
  // group 50 allows, then their denies, everyone allow.
  ASSERT_EQ(aces.size(), 9u);
  EXPECT_EQ(aces[0].who, "OWNER@");
  EXPECT_EQ(aces[0].type, kAceAllow);
  EXPECT_TRUE(aces[0].mask & kAceWriteData);
  EXPECT_EQ(aces[2].who, "1000");
  EXPECT_EQ(aces[2].mask & (kAceReadData | kAceWriteData | kAceExecute),
            kAceReadData | kAceExecute);
  EXPECT_EQ(aces[3].type, kAceDeny);
  EXPECT_EQ(aces[3].mask & kAceWriteData, kAceWriteData);
  EXPECT_EQ(aces[4].who, "GROUP@");
  EXPECT_EQ(aces[5].who, "50");
  EXPECT_EQ(aces[5].flags, kAceIdentifierGroup);
  EXPECT_EQ(aces[5].mask & kAceWriteData, 0u);  // masked away
  EXPECT_EQ(aces[6].type, kAceDeny);
  EXPECT_EQ(aces[8].who, "EVERYONE@");
  ASSERT_OK_AND_ASSIGN(std::vector<Ace> def,
                       PosixAclTextToNfs4("u::rwx,g::r-x,o::r-x", true, true));
  for (const Ace& a : def) {
    EXPECT_EQ(
        a.flags & (kAceFileInherit | kAceDirectoryInherit | kAceInheritOnly),
        kAceFileInherit | kAceDirectoryInherit | kAceInheritOnly);
  }
}

}  // namespace
}  // namespace nsmigrate
