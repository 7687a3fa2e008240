// Runs the real nsh and nsadmin binaries against both backends and checks
// what a shell user sees: coreutils-shaped output, coreutils-shaped errors,
// exit codes, and --as honoured.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace ns {
using namespace ns::testing;  // NOLINT: test helpers
namespace {

struct Ran {
  int code = -1;
  std::string out;
  std::string err;
};

std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

Ran RunTool(const std::string& binary, const std::vector<std::string>& args) {
  static int counter = 0;
  std::string err_path = ScratchDir() + "/stderr-" + std::to_string(++counter);
  std::string cmd = ShellQuote(binary);
  for (const auto& a : args) cmd += " " + ShellQuote(a);
  cmd += " 2>" + ShellQuote(err_path);
  Ran r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(err_path);
  std::stringstream ss;
  ss << in.rdbuf();
  r.err = ss.str();
  return r;
}

class NshTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    uri_ = FreshUri(GetParam());
    ASSERT_FALSE(uri_.empty());
    Ran init = RunTool(NS_NSADMIN, {"--db", uri_, "init"});
    ASSERT_EQ(init.code, 0) << init.err;
    EXPECT_NE(init.out.find("at schema version"), std::string::npos);
  }

  Ran Nsh(std::vector<std::string> args, const std::string& as = "") {
    std::vector<std::string> full = {"--db", uri_};
    if (!as.empty()) {
      full.push_back("--as");
      full.push_back(as);
    }
    full.insert(full.end(), args.begin(), args.end());
    return RunTool(NS_NSH, full);
  }

  std::string uri_;
};

TEST_P(NshTest, NsadminReportsVersionAndRefusesSecondInit) {
  Ran v = RunTool(NS_NSADMIN, {"--db", uri_, "version"});
  EXPECT_EQ(v.code, 0);
  EXPECT_NE(v.out.find("database schema version: "), std::string::npos);
  Ran again = RunTool(NS_NSADMIN, {"--db", uri_, "init"});
  EXPECT_NE(again.code, 0);
  EXPECT_NE(again.err.find("already initialised"), std::string::npos) << again.err;
  Ran up = RunTool(NS_NSADMIN, {"--db", uri_, "upgrade"});
  EXPECT_EQ(up.code, 0);
  EXPECT_NE(up.out.find("already at schema version"), std::string::npos);
}

TEST_P(NshTest, NsadminFsckAndStats) {
  ASSERT_EQ(Nsh({"mkdir", "-p", "/a/b"}).code, 0);
  ASSERT_EQ(Nsh({"touch", "/a/f"}).code, 0);
  Ran clean = RunTool(NS_NSADMIN, {"--db", uri_, "fsck"});
  EXPECT_EQ(clean.code, 0) << clean.out << clean.err;
  EXPECT_NE(clean.out.find("0 problem(s)"), std::string::npos) << clean.out;
  std::string error;
  std::unique_ptr<RawDb> raw = RawDb::Open(uri_, &error);
  ASSERT_NE(raw, nullptr) << error;
  ASSERT_TRUE(raw->Exec("UPDATE inodes SET nlink = 5 WHERE type = 1", &error))
      << error;
  // e2fsck's exit codes: 4 = problems left, 1 = all repaired.
  Ran found = RunTool(NS_NSADMIN, {"--db", uri_, "fsck"});
  EXPECT_EQ(found.code, 4);
  EXPECT_NE(found.out.find("file-nlink: inode"), std::string::npos) << found.out;
  EXPECT_NE(found.out.find("[repairable]"), std::string::npos) << found.out;
  Ran repaired = RunTool(NS_NSADMIN, {"--db", uri_, "fsck", "--repair"});
  EXPECT_EQ(repaired.code, 1) << repaired.out;
  EXPECT_NE(repaired.out.find("[repaired]"), std::string::npos);
  EXPECT_EQ(RunTool(NS_NSADMIN, {"--db", uri_, "fsck"}).code, 0);
  Ran stats = RunTool(NS_NSADMIN, {"--db", uri_, "stats", "--top", "3"});
  EXPECT_EQ(stats.code, 0) << stats.err;
  EXPECT_NE(stats.out.find("files 1  directories 3"), std::string::npos)
      << stats.out;
  EXPECT_NE(stats.out.find("/a "), std::string::npos) << stats.out;
}

TEST_P(NshTest, MkdirLsAndCoreutilsErrors) {
  EXPECT_EQ(Nsh({"mkdir", "-p", "/a/b/c"}).code, 0);
  EXPECT_EQ(Nsh({"mkdir", "-p", "/a/b/c"}).code, 0);  // -p: existing is fine
  Ran ls = Nsh({"ls", "/a"});
  EXPECT_EQ(ls.code, 0);
  EXPECT_EQ(ls.out, "b\n");
  Ran dup = Nsh({"mkdir", "/a/b"});
  EXPECT_EQ(dup.code, 1);
  EXPECT_EQ(dup.err, "nsh: cannot create directory '/a/b': File exists\n");
  Ran missing = Nsh({"ls", "/nope"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_EQ(missing.err,
            "nsh: cannot access '/nope': No such file or directory\n");
  Ran notempty = Nsh({"rmdir", "/a"});
  EXPECT_EQ(notempty.code, 1);
  EXPECT_EQ(notempty.err, "nsh: failed to remove '/a': Directory not empty\n");
}

TEST_P(NshTest, LinksStatAndLongListing) {
  ASSERT_EQ(Nsh({"mkdir", "/d"}).code, 0);
  ASSERT_EQ(Nsh({"touch", "/d/f"}).code, 0);
  ASSERT_EQ(Nsh({"ln", "/d/f", "/d/h"}).code, 0);
  ASSERT_EQ(Nsh({"ln", "-s", "/d/f", "/d/l"}).code, 0);
  Ran st = Nsh({"stat", "/d/f"});
  EXPECT_EQ(st.code, 0);
  EXPECT_NE(st.out.find("Links: 2"), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("regular empty file"), std::string::npos);
  EXPECT_NE(st.out.find(" Birth: "), std::string::npos);
  Ran ls = Nsh({"ls", "-l", "-n", "/d"});
  EXPECT_EQ(ls.code, 0);
  EXPECT_NE(ls.out.find("l -> /d/f\n"), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find("-rw-r--r-- 2 0 0 0 "), std::string::npos) << ls.out;
  EXPECT_EQ(ls.out.substr(0, 6), "total ");
  EXPECT_EQ(Nsh({"readlink", "/d/l"}).out, "/d/f\n");
  EXPECT_EQ(Nsh({"readlink", "/d/f"}).code, 1);
  Ran dstat = Nsh({"stat", "/d"});
  EXPECT_NE(dstat.out.find("Links: 2"), std::string::npos);
  EXPECT_NE(dstat.out.find("directory"), std::string::npos);
}

TEST_P(NshTest, MvRmAndRecursiveListing) {
  ASSERT_EQ(Nsh({"mkdir", "-p", "/x/y", "/z"}).code, 0);
  ASSERT_EQ(Nsh({"touch", "/x/y/f"}).code, 0);
  ASSERT_EQ(Nsh({"mv", "/x/y", "/z"}).code, 0);  // into an existing dir
  EXPECT_EQ(Nsh({"ls", "-R", "/z"}).out, "/z:\ny\n\n/z/y:\nf\n");
  Ran into_self = Nsh({"mv", "/z", "/z/y"});
  EXPECT_EQ(into_self.code, 1);
  EXPECT_EQ(into_self.err,
            "nsh: cannot move '/z' to '/z/y': Invalid argument\n");
  Ran rm_dir = Nsh({"rm", "/z"});
  EXPECT_EQ(rm_dir.code, 1);
  EXPECT_EQ(rm_dir.err, "nsh: cannot remove '/z': Is a directory\n");
  EXPECT_EQ(Nsh({"rm", "-r", "/z"}).code, 0);
  EXPECT_EQ(Nsh({"ls", "/"}).out, "x\n");
  EXPECT_EQ(Nsh({"rm", "-f", "/nothing"}).code, 0);
}

TEST_P(NshTest, ChmodChownAndAsCredentials) {
  ASSERT_EQ(Nsh({"touch", "/f"}).code, 0);
  ASSERT_EQ(Nsh({"chmod", "u=rw,go=", "/f"}).code, 0);
  EXPECT_EQ(Nsh({"ls", "-l", "-n", "/f"}).out.substr(0, 10), "-rw-------");
  ASSERT_EQ(Nsh({"chown", "1000:1000", "/f"}).code, 0);
  EXPECT_EQ(Nsh({"chmod", "640", "/f"}, "1000:1000").code, 0);
  Ran other = Nsh({"chmod", "777", "/f"}, "1001:1001");
  EXPECT_EQ(other.code, 1);
  EXPECT_EQ(other.err,
            "nsh: changing permissions of '/f': Operation not permitted\n");
  Ran steal = Nsh({"chown", "1001", "/f"}, "1000:1000");
  EXPECT_EQ(steal.code, 1);
  EXPECT_NE(steal.err.find("changing ownership of '/f'"), std::string::npos);
  Ran denied = Nsh({"mkdir", "/nope"}, "1000:1000");  // / is 0755 root
  EXPECT_EQ(denied.code, 1);
  EXPECT_EQ(denied.err,
            "nsh: cannot create directory '/nope': Permission denied\n");
  Ran bad_as = Nsh({"ls", "/"}, "alice");
  EXPECT_EQ(bad_as.code, 2);
  EXPECT_NE(bad_as.err.find("expected UID:GID"), std::string::npos);
}

TEST_P(NshTest, DfShowsUsage) {
  ASSERT_EQ(Nsh({"touch", "/a", "/b"}).code, 0);
  Ran df = Nsh({"df", "-i"});
  EXPECT_EQ(df.code, 0);
  EXPECT_EQ(df.out.rfind("Filesystem", 0), 0u);
  EXPECT_NE(df.out.find(" 3 "), std::string::npos) << df.out;  // root + 2
}

TEST_P(NshTest, GetfaclSetfaclInNfs4AclTextAndAs) {
  ASSERT_EQ(Nsh({"mkdir", "-m", "777", "/d"}).code, 0);
  ASSERT_EQ(Nsh({"touch", "/d/f"}, "1000:1000").code, 0);
  // Without an ACL the mode's equivalent is shown.
  Ran g = Nsh({"getfacl", "/d/f"});
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_NE(g.out.find("A::OWNER@:rw"), std::string::npos) << g.out;
  // -s sets, -a adds at an index, -x removes, -m modifies.
  Ran s = Nsh({"setfacl", "-s", "A::OWNER@:rwatTnNcCy, A::EVERYONE@:rn", "/d/f"},
              "1000:1000");
  ASSERT_EQ(s.code, 0) << s.err;
  ASSERT_EQ(Nsh({"setfacl", "-a", "D:g:2000:r", "/d/f"}, "1000:1000").code, 0);
  g = Nsh({"getfacl", "/d/f"});
  EXPECT_EQ(g.out, "D:g:2000:r\nA::OWNER@:rwatTnNcCy\nA::EVERYONE@:rn\n");
  // Group 2000 is denied reading (n: READ_NAMED_ATTRS) by the first
  // entry; --as is honoured.
  ASSERT_EQ(Nsh({"setfacl", "-a", "D:g:2000:n", "/d/f"}, "1000:1000").code, 0);
  ASSERT_EQ(Nsh({"setfacl", "-x", "D:g:2000:r", "/d/f"}, "1000:1000").code, 0);
  ASSERT_EQ(Nsh({"setxattr", "/d/f", "user.k", "v"}, "1000:1000").code, 0);
  Ran denied = Nsh({"getxattr", "/d/f", "user.k"}, "3000:2000");
  EXPECT_EQ(denied.code, 1);
  EXPECT_NE(denied.err.find("Permission denied"), std::string::npos) << denied.err;
  EXPECT_EQ(Nsh({"getxattr", "/d/f", "user.k"}, "3000:3000").out, "v\n");
  ASSERT_EQ(Nsh({"setfacl", "-m", "A::EVERYONE@:rn", "A::EVERYONE@:rwa", "/d/f"},
                "1000:1000").code, 0);
  ASSERT_EQ(Nsh({"setfacl", "-x", "1", "/d/f"}, "1000:1000").code, 0);
  g = Nsh({"getfacl", "/d/f"});
  EXPECT_EQ(g.out, "A::OWNER@:rwatTnNcCy\nA::EVERYONE@:rwa\n");
  // Only the owner may change it; malformed text is refused, nothing changes.
  Ran other = Nsh({"setfacl", "-s", "A::EVERYONE@:rwx", "/d/f"}, "3000:3000");
  EXPECT_EQ(other.code, 1);
  EXPECT_NE(other.err.find("Operation not permitted"), std::string::npos) << other.err;
  Ran bad = Nsh({"setfacl", "-s", "A::nobody@nowhere:r", "/d/f"}, "1000:1000");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("unknown principal"), std::string::npos) << bad.err;
  bad = Nsh({"setfacl", "-a", "Q::OWNER@:r", "/d/f"}, "1000:1000");
  EXPECT_EQ(bad.code, 1);
  EXPECT_EQ(Nsh({"getfacl", "/d/f"}).out, g.out);
  Ran st = Nsh({"stat", "/d/f"});
  EXPECT_NE(st.out.find("-rw-rw-rw-"), std::string::npos) << st.out;
}

TEST_P(NshTest, XattrsTagsAndChecksums) {
  ASSERT_EQ(Nsh({"mkdir", "-p", "/top/a"}).code, 0);
  ASSERT_EQ(Nsh({"touch", "/top/a/f"}).code, 0);
  ASSERT_EQ(Nsh({"setxattr", "/top/a/f", "user.b", "2"}).code, 0);
  ASSERT_EQ(Nsh({"setxattr", "/top/a/f", "user.a", "1"}).code, 0);
  EXPECT_EQ(Nsh({"listxattr", "/top/a/f"}).out, "user.a\nuser.b\n");
  Ran ex = Nsh({"setxattr", "--create", "/top/a/f", "user.a", "x"});
  EXPECT_EQ(ex.code, 1);
  EXPECT_NE(ex.err.find("File exists"), std::string::npos) << ex.err;
  ASSERT_EQ(Nsh({"rmxattr", "/top/a/f", "user.a"}).code, 0);
  EXPECT_EQ(Nsh({"getxattr", "/top/a/f", "user.a"}).code, 1);

  ASSERT_EQ(Nsh({"writetag", "/top", "sGroup", "raw"}).code, 0);
  ASSERT_EQ(Nsh({"mkdir", "/top/b"}).code, 0);
  EXPECT_EQ(Nsh({"lstag", "/top/b"}).out, "sGroup (inherited)\n");
  EXPECT_EQ(Nsh({"readtag", "/top/b", "sGroup"}).out, "raw\n");
  ASSERT_EQ(Nsh({"writetag", "/top/b", "sGroup", "mine"}).code, 0);
  EXPECT_EQ(Nsh({"readtag", "/top", "sGroup"}).out, "raw\n");
  EXPECT_EQ(Nsh({"lstag", "/top/b"}).out, "sGroup\n");
  Ran push = Nsh({"pushtag", "/top", "OSMTemplate", "tape"});
  ASSERT_EQ(push.code, 0) << push.err;
  EXPECT_EQ(push.out, "3 directories\n");
  EXPECT_EQ(Nsh({"readtag", "/top/a", "OSMTemplate"}).out, "tape\n");
  ASSERT_EQ(Nsh({"rmtag", "/top/a", "OSMTemplate"}).code, 0);
  EXPECT_EQ(Nsh({"readtag", "/top/a", "OSMTemplate"}).code, 1);
  EXPECT_EQ(Nsh({"pushtag", "/top", "x", "y"}, "1000:1000").code, 1);
  Ran badtag = Nsh({"writetag", "/top", "a/b", "v"});
  EXPECT_EQ(badtag.code, 1);
  EXPECT_NE(badtag.err.find("Invalid argument"), std::string::npos) << badtag.err;

  ASSERT_EQ(Nsh({"checksum", "set", "/top/a/f", "adler32", "11E60398"}).code, 0);
  ASSERT_EQ(Nsh({"checksum", "set", "/top/a/f", "md5",
                 "d41d8cd98f00b204e9800998ecf8427e"}).code, 0);
  EXPECT_EQ(Nsh({"checksum", "get", "/top/a/f"}).out,
            "adler32:11e60398\nmd5:d41d8cd98f00b204e9800998ecf8427e\n");
  Ran unk = Nsh({"checksum", "set", "/top/a/f", "crc64", "00"});
  EXPECT_EQ(unk.code, 1);
  EXPECT_NE(unk.err.find("unknown"), std::string::npos) << unk.err;
  EXPECT_EQ(Nsh({"checksum", "set", "/top/a/f", "md5", "00"}).code, 1);
  EXPECT_EQ(Nsh({"checksum", "set", "/top/a/f", "md5",
                 "d41d8cd98f00b204e9800998ecf8427e"}, "1000:1000").code, 1);
  ASSERT_EQ(Nsh({"checksum", "rm", "/top/a/f", "md5"}).code, 0);
  EXPECT_EQ(Nsh({"checksum", "get", "/top/a/f"}).out, "adler32:11e60398\n");
}

INSTANTIATE_TEST_SUITE_P(Backends, NshTest, ::testing::ValuesIn(Dialects()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST(NshNoDb, MissingDatabaseIsAClearError) {
  std::string path = ScratchDir() + "/never-made.db";
  Ran r = RunTool(NS_NSH, {"--db", "sqlite://" + path, "ls", "/"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("nsadmin init"), std::string::npos) << r.err;
  EXPECT_FALSE(std::ifstream(path).good());
}

// nsadmin's partition commands as an operator runs them (issue 9 item 1).
TEST(NsadminPartitions, InitRepartitionAndReport) {
  const std::string sqlite = "sqlite://" + ScratchDir() + "/parts.db";
  Ran r = RunTool(NS_NSADMIN, {"--db", sqlite, "init", "--partitions", "4"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("SQLite has no partitioning"), std::string::npos)
      << r.err;
  EXPECT_FALSE(std::ifstream(ScratchDir() + "/parts.db").good());

  const std::string uri = FreshUri("postgresql");
  ASSERT_FALSE(uri.empty());
  r = RunTool(NS_NSADMIN, {"--db", uri, "init", "--partitions", "0"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("partition count 0"), std::string::npos) << r.err;
  r = RunTool(NS_NSADMIN, {"--db", uri, "init", "--partitions", "4"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("4 partition(s)"), std::string::npos) << r.out;
  ASSERT_EQ(RunTool(NS_NSH, {"--db", uri, "mkdir", "/a"}).code, 0);
  ASSERT_EQ(RunTool(NS_NSH, {"--db", uri, "touch", "/a/f"}).code, 0);

  r = RunTool(NS_NSADMIN, {"--db", uri, "partitions", "--exact"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("dirents: 4 hash partitions on parent"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("inodes_p3"), std::string::npos) << r.out;

  r = RunTool(NS_NSADMIN, {"--db", uri, "partition", "--count", "2000"});
  EXPECT_NE(r.code, 0);
  r = RunTool(NS_NSADMIN, {"--db", uri, "partition", "--count", "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  r = RunTool(NS_NSADMIN, {"--db", uri, "partitions"});
  EXPECT_NE(r.out.find("inodes: 2 hash partitions on ino"), std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("inodes_p3"), std::string::npos) << r.out;
  r = RunTool(NS_NSH, {"--db", uri, "ls", "/a"});
  EXPECT_EQ(r.out, "f\n");
  r = RunTool(NS_NSADMIN, {"--db", uri, "fsck"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  r = RunTool(NS_NSADMIN, {"--db", uri, "version"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("2 hash partitions per big table"), std::string::npos)
      << r.out;
}

}  // namespace
}  // namespace ns
