// dpm: source. The DPM/LFC name server tables (our own DDL, written from
// the lcgdm schema: Cns_file_metadata and friends) are created in a real
// MariaDB server this binary starts (tests/mariadb_harness.h), filled with a
// small tree that uses every feature, imported by the real ns-migrate binary
// into SQLite and PostgreSQL, and read back through the Namespace API and
// as a dump.

#include <fmt/core.h>
#include <gtest/gtest.h>
#include <soci/mysql/soci-mysql.h>
#include <soci/soci.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <memory>
#include <string>
#include <vector>

#include "libnamespace/include/namespace/acl.h"
#include "libnamespace/include/namespace/metadata.h"
#include "libnamespace/include/namespace/namespace.h"
#include "migrate/dump.h"
#include "migrate/migrate_test_util.h"
#include "tests/mariadb_harness.h"
#include "tests/test_util.h"

namespace nsmigrate {
namespace {

using ns::testing::FreshUri;
using testing::ReadDump;
using testing::RunTool;

std::string NewPath(const std::string& what) {
  return testing::NewPath("dpm", what);
}

constexpr const char* kSchema = R"sql(
CREATE TABLE Cns_file_metadata (
  rowid BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  fileid BIGINT UNSIGNED NOT NULL, parent_fileid BIGINT UNSIGNED,
  guid CHAR(36) BINARY, name VARCHAR(255) BINARY, filemode INT UNSIGNED,
  nlink INT, owner_uid INT UNSIGNED, gid INT UNSIGNED,
  filesize BIGINT UNSIGNED, atime INT, mtime INT, ctime INT,
  fileclass SMALLINT, status CHAR(1) BINARY, csumtype VARCHAR(2) BINARY,
  csumvalue VARCHAR(32) BINARY, acl BLOB, xattr TEXT,
  UNIQUE KEY pk_fileid (fileid), UNIQUE KEY pk_fullname (parent_fileid, name))
  ENGINE = InnoDB;
CREATE TABLE Cns_file_replica (
  rowid BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  fileid BIGINT UNSIGNED, nbaccesses BIGINT UNSIGNED, ctime INT, atime INT,
  ptime INT, ltime INT, r_type CHAR(1) BINARY, status CHAR(1) BINARY,
  f_type CHAR(1) BINARY, poolname VARCHAR(15) BINARY, host VARCHAR(63) BINARY,
  fs VARCHAR(79) BINARY, sfn BLOB, setname VARCHAR(36) BINARY, xattr TEXT,
  INDEX (fileid)) ENGINE = InnoDB;
CREATE TABLE Cns_symlinks (rowid BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  fileid BIGINT UNSIGNED, linkname BLOB, UNIQUE KEY (fileid)) ENGINE = InnoDB;
CREATE TABLE Cns_user_metadata (
  rowid BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, u_fileid BIGINT UNSIGNED,
  comments VARCHAR(255) BINARY, UNIQUE KEY (u_fileid)) ENGINE = InnoDB;
CREATE TABLE Cns_userinfo (rowid INT AUTO_INCREMENT PRIMARY KEY, userid INT,
  username VARCHAR(255) BINARY, user_ca VARCHAR(255) BINARY, banned INT,
  xattr TEXT, UNIQUE KEY (username)) ENGINE = InnoDB;
CREATE TABLE Cns_groupinfo (rowid INT AUTO_INCREMENT PRIMARY KEY, gid INT,
  groupname VARCHAR(255) BINARY, banned INT, xattr TEXT,
  UNIQUE KEY (groupname)) ENGINE = InnoDB;
INSERT INTO Cns_userinfo (userid, username, banned) VALUES
  (101, '/DC=org/CN=alice', 0), (103, '/DC=org/CN=bob', 0);
INSERT INTO Cns_groupinfo (gid, groupname, banned) VALUES
  (102, 'atlas', 0), (104, 'cms', 0);
INSERT INTO Cns_file_metadata (fileid, parent_fileid, guid, name, filemode,
  nlink, owner_uid, gid, filesize, atime, mtime, ctime, fileclass, status,
  csumtype, csumvalue, acl, xattr) VALUES
  (1, 0, NULL, '/', 16877, 1, 0, 0, 0, 1500000000, 1500000000, 1500000000, 0,
   '-', '', '', '', NULL),
  (2, 1, NULL, 'dpm', 16893, 1, 0, 0, 0, 1500000001, 1500000001, 1500000001,
   0, '-', '', '', '', NULL),
  (3, 2, NULL, 'home', 16893, 3, 101, 102, 0, 1500000002, 1500000002,
   1500000002, 0, '-', '', '', 'A7101,B7103,C5102,D5104,E70,F50,a7101,c5102,f50',
   NULL),
  (4, 3, 'a0b1c2d3-0000-0000-0000-000000000004', 'f', 33188, 1, 101, 102,
   2048, 1600000000, 1600000001, 1600000002, 0, '-', 'AD', '0A1B2C3D', '',
   '{"checksum.md5":"D41D8CD98F00B204E9800998ECF8427E","user.project":"lhc"}'),
  (5, 3, NULL, 'l', 41471, 1, 101, 102, 11, 1600000003, 1600000003,
   1600000003, 0, '-', '', '', '', NULL),
  (6, 3, NULL, 'c', 33184, 1, 103, 104, 10, 1600000004, 1600000004,
   1600000004, 2, 'm', 'CS', '12345678', '', NULL);
INSERT INTO Cns_symlinks (fileid, linkname) VALUES (5, '/dpm/home/f');
INSERT INTO Cns_user_metadata (u_fileid, comments) VALUES
  (4, 'calibration run');
INSERT INTO Cns_file_replica (fileid, nbaccesses, ctime, atime, ptime, ltime,
  r_type, status, f_type, poolname, host, fs, sfn) VALUES
  (4, 0, 1600000000, 1600000000, 0, 0, 'P', '-', 'P', 'pool1',
   'disk01.example.org', '/srv/dpm/01', 'disk01.example.org:/srv/dpm/01/home/f.1'),
  (4, 0, 1600000000, 1600000000, 0, 0, 'S', '-', 'P', 'pool2',
   'disk02.example.org', '/srv/dpm/02', 'disk02.example.org:/srv/dpm/02/home/f.2')
)sql";

class DpmTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    std::string error;
    server_ = ns::testing::MariaDbServer::Create(&error).release();
    error_ = error;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  // Runs `sql` (statements separated by ";\n") on database `db`.
  static void Exec(const std::string& db, const std::string& sql) {
    try {
      soci::session s(*soci::factory_mysql(),
                      fmt::format("db='{}' host='127.0.0.1' port={} "
                                  "user='root'",
                                  db, server_->port()));
      size_t pos = 0;
      while (pos < sql.size()) {
        size_t end = sql.find(";\n", pos);
        if (end == std::string::npos) end = sql.size();
        const std::string stmt = sql.substr(pos, end - pos);
        pos = end + 2;
        if (stmt.find_first_not_of(" \n") == std::string::npos) continue;
        s << stmt;
      }
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
  }

  // A database with the Cns tree; its dpm: URI, or "" (failure recorded).
  std::string MakeDpm() {
    if (!server_) {
      ADD_FAILURE() << "MariaDB for the DPM fixture: " << error_;
      return "";
    }
    const std::string db = fmt::format("cns{}", next_db_++);
    Exec("mysql", "CREATE DATABASE " + db);
    Exec(db, kSchema);
    return "dpm:" + server_->UriFor(db);
  }

  std::string Target() {
    std::string uri = FreshUri(GetParam());
    EXPECT_FALSE(uri.empty());
    return uri;
  }

  static inline ns::testing::MariaDbServer* server_ = nullptr;
  static inline std::string error_;
  static inline int next_db_ = 0;
  ns::Credentials root_ = ns::Credentials::Root();
};

TEST_P(DpmTest, ImportKeepsIdsAclsChecksumsReplicas) {
  const std::string dpm = MakeDpm();
  ASSERT_FALSE(dpm.empty());
  const std::string target = Target();
  const std::string log = NewPath("skips.log");
  auto [rc, err] =
      RunTool({"--from", dpm, "--to", target, "--verify", "--log", log});
  ASSERT_EQ(rc, 0) << err;
  const std::string skipped = ns::testing::ReadFileBytes(log);
  EXPECT_NE(skipped.find("crc32"), std::string::npos) << skipped;

  ns::Result<std::unique_ptr<ns::Namespace>> nr =
      ns::Namespace::Open(target, ns::testing::TestOptions());
  ASSERT_TRUE(nr.ok()) << nr.status().ToString();
  ns::Namespace& n = **nr;
  ASSERT_OK_AND_ASSIGN(ns::Attr f, n.Resolve(root_, "/dpm/home/f"));
  EXPECT_EQ(f.mode, 0644u);
  EXPECT_EQ(f.uid, 101u);
  EXPECT_EQ(f.gid, 102u);
  EXPECT_EQ(f.size, 2048u);
  EXPECT_EQ(f.atime, 1600000000 * ns::TimeNs{1000000000});
  EXPECT_EQ(f.mtime, 1600000001 * ns::TimeNs{1000000000});
  EXPECT_EQ(f.ctime, 1600000002 * ns::TimeNs{1000000000});
  // AD from the columns, md5 from dmlite's xattr JSON.
  ASSERT_OK_AND_ASSIGN(std::vector<ns::Checksum> sums,
                       n.GetChecksums(root_, f.ino));
  ASSERT_EQ(sums.size(), 2u);
  EXPECT_EQ(sums[0].type, ns::ChecksumType::kAdler32);
  EXPECT_EQ(sums[0].value, "0a1b2c3d");
  EXPECT_EQ(sums[1].type, ns::ChecksumType::kMd5);
  EXPECT_EQ(sums[1].value, "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(*n.GetXattr(root_, f.ino, "user.project"), "lhc");
  EXPECT_EQ(*n.GetXattr(root_, f.ino, "dpm.comment"), "calibration run");
  ASSERT_OK_AND_ASSIGN(std::vector<ns::Location> locs,
                       n.GetLocations(root_, f.ino));
  ASSERT_EQ(locs.size(), 2u);
  EXPECT_EQ(locs[0].location, "dpm://disk01.example.org/srv/dpm/01/home/f.1");
  EXPECT_EQ(locs[1].location, "dpm://disk02.example.org/srv/dpm/02/home/f.2");

  // CS (crc32) has no counterpart: no checksum, logged above.
  ASSERT_OK_AND_ASSIGN(ns::Attr c, n.Resolve(root_, "/dpm/home/c"));
  ASSERT_OK_AND_ASSIGN(sums, n.GetChecksums(root_, c.ino));
  EXPECT_TRUE(sums.empty());
  EXPECT_EQ(*n.GetXattr(root_, c.ino, "dpm.status"), "m");
  EXPECT_EQ(*n.GetXattr(root_, c.ino, "dpm.fileclass"), "2");

  // The DPM ACL of /dpm/home, as NFSv4 ACEs: the named user 103 may add
  // files (rwx, mask rwx), the named group 104 only read; someone else
  // (other: r-x) may not add; default entries became inherit-only ACEs.
  ASSERT_OK_AND_ASSIGN(ns::Attr home, n.Resolve(root_, "/dpm/home"));
  EXPECT_TRUE(home.has_acl);
  ASSERT_OK_AND_ASSIGN(ns::Acl acl, n.GetAcl(root_, home.ino));
  bool named_user = false, inherit_only = false;
  for (const ns::Ace& a : acl) {
    named_user = named_user || (a.who == ns::AceWho::kUser && a.id == 103 &&
                                a.type == ns::kAceAllow);
    inherit_only = inherit_only || (a.flags & ns::kAceInheritOnly);
  }
  EXPECT_TRUE(named_user);
  EXPECT_TRUE(inherit_only);
  ASSERT_OK_AND_ASSIGN(uint32_t r103, n.Access(ns::Credentials{103, 500, {}},
                                               home.ino, ns::kAceAddFile));
  EXPECT_EQ(r103, ns::kAceAddFile);
  ASSERT_OK_AND_ASSIGN(uint32_t r104, n.Access(ns::Credentials{300, 104, {}},
                                               home.ino, ns::kAceAddFile));
  EXPECT_EQ(r104, 0u);
  ASSERT_OK_AND_ASSIGN(uint32_t r999,
                       n.Access(ns::Credentials{999, 999, {}}, home.ino,
                                ns::kAceAddFile | ns::kAceListDirectory));
  EXPECT_EQ(r999, ns::kAceListDirectory);

  ASSERT_OK_AND_ASSIGN(ns::Attr l, n.Resolve(root_, "/dpm/home/l", false));
  EXPECT_EQ(*n.ReadLink(root_, l.ino), "/dpm/home/f");
  nr->reset();

  // Source as a dump vs namespace as a dump (fileids as ext_id).
  const std::string a = NewPath("source") + ".dump";
  const std::string b = NewPath("target") + ".dump";
  ASSERT_EQ(RunTool({"--export", "--from", dpm, "--to", "dump:" + a}).first, 0);
  ASSERT_EQ(RunTool({"--export", "--from", target, "--to", "dump:" + b}).first,
            0);
  std::vector<Entry> src = ReadDump(a), dst = ReadDump(b);
  ASSERT_EQ(src.size(), 6u);
  ASSERT_EQ(dst.size(), src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    std::erase_if(src[i].checksums,
                  [](const auto& x) { return x.first == "crc32"; });
    NormalizeMetadata(src[i]);
    NormalizeMetadata(dst[i]);
    if (src[i].path == "/") dst[i].size = src[i].size;
    EXPECT_EQ(FormatEntry(src[i]), FormatEntry(dst[i]));
  }
  EXPECT_NE(ns::testing::ReadFileBytes(b).find("\"ext_id\":\"4\""),
            std::string::npos);
}

TEST_P(DpmTest, DryRunAndResumeWorkUnchanged) {
  const std::string dpm = MakeDpm();
  ASSERT_FALSE(dpm.empty());
  const std::string dry = NewPath("dry") + ".db";
  auto [rc, err] =
      RunTool({"--from", dpm, "--to", "sqlite://" + dry, "--dry-run"});
  ASSERT_EQ(rc, 0) << err;
  struct stat st {};
  EXPECT_NE(::stat(dry.c_str(), &st), 0);
  // kill -9 after the first batch of 3 rows, then resume: verify passes.
  const std::string target = Target();
  auto [rc1, err1] = RunTool({"--from", dpm, "--to", target, "--batch-rows",
                              "3", "--crash-after-batches", "1"});
  EXPECT_NE(rc1, 0) << err1;
  auto [rc2, err2] = RunTool({"--from", dpm, "--to", target, "--batch-rows",
                              "3", "--resume", "--verify"});
  EXPECT_EQ(rc2, 0) << err2;
}

TEST_P(DpmTest, BadInputNamesTheRowAndImportsNothing) {
  struct Case {
    const char* what;
    const char* sql;
    const char* expect;
  };
  const Case cases[] = {
      {"dangling parent",
       "INSERT INTO Cns_file_metadata (fileid, parent_fileid, name, filemode, "
       "owner_uid, gid) VALUES (50, 999, 'orphan', 33188, 0, 0)",
       "fileid 50, parent_fileid 999, name 'orphan'): Invalid argument "
       "(dangling parent"},
      {"cycle",
       "INSERT INTO Cns_file_metadata (fileid, parent_fileid, name, filemode, "
       "owner_uid, gid) VALUES (60, 61, 'a', 16877, 0, 0), "
       "(61, 60, 'b', 16877, 0, 0)",
       "fileid 60, parent_fileid 61, name 'a'): Invalid argument (not "
       "reachable from the root"},
      {"duplicate name",
       "ALTER TABLE Cns_file_metadata DROP INDEX pk_fullname;\n"
       "INSERT INTO Cns_file_metadata (fileid, parent_fileid, name, filemode, "
       "owner_uid, gid) VALUES (70, 3, 'f', 33188, 0, 0)",
       "name 'f'): Invalid argument (duplicate name"},
      {"unknown uid",
       "INSERT INTO Cns_file_metadata (fileid, parent_fileid, name, filemode, "
       "owner_uid, gid) VALUES (80, 3, 'x', 33188, 555, 0)",
       "fileid 80, parent_fileid 3, name 'x'): Invalid argument (unknown uid"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string dpm = MakeDpm();
    ASSERT_FALSE(dpm.empty());
    Exec(dpm.substr(dpm.rfind('/') + 1), c.sql);
    const std::string target = Target();
    auto [rc, err] = RunTool({"--from", dpm, "--to", target});
    EXPECT_EQ(rc, 1) << err;
    EXPECT_NE(err.find(c.expect), std::string::npos) << err;
    if (GetParam() == "sqlite") {
      struct stat st {};
      EXPECT_NE(::stat(ns::testing::SqlitePath(target).c_str(), &st), 0);
    } else {
      ns::Result<std::unique_ptr<ns::Namespace>> n =
          ns::Namespace::Open(target, ns::testing::TestOptions());
      ASSERT_TRUE(n.ok());
      ASSERT_OK_AND_ASSIGN(std::vector<std::string> names,
                           ns::testing::ListNames(**n, ns::kRootInode));
      EXPECT_TRUE(names.empty());
    }
  }
  auto [rc, err] =
      RunTool({"--from",
               fmt::format("dpm:mysql://nobody:secret@127.0.0.1:{}/cns",
                           ns::testing::FreeLocalPort()),
               "--to", Target()});
  EXPECT_EQ(rc, 1) << err;
  EXPECT_NE(err.find("dpm:mysql://nobody:***@127.0.0.1"), std::string::npos)
      << err;
  EXPECT_EQ(err.find("secret"), std::string::npos) << err;
}

INSTANTIATE_TEST_SUITE_P(Dialects, DpmTest,
                         ::testing::ValuesIn(ns::testing::Dialects()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace nsmigrate
