// chimera: source. A Chimera schema (our own DDL, written from dCache's
// Liquibase changelogs: inodes keyed by inumber, the pnfsid as a column) is
// created in the test's real PostgreSQL cluster (tests/pg_harness.h) and
// filled with a small tree that uses every feature; the real ns-migrate
// binary imports it into SQLite and PostgreSQL, then the result is read back
// through the Namespace API and compared with a dump of the source.

#include <fmt/core.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
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
#include "tests/test_util.h"

namespace nsmigrate {
namespace {

using ns::testing::FreshUri;
using testing::ReadDump;
using testing::RunTool;

std::string NewPath(const std::string& what) {
  return testing::NewPath("chimera", what);
}

// Executes SQL on `uri`; records a failure with the server's message.
void Sql(const std::string& uri, const std::string& sql) {
  std::unique_ptr<PGconn, void (*)(PGconn*)> c(PQconnectdb(uri.c_str()),
                                               &PQfinish);
  ASSERT_EQ(PQstatus(c.get()), CONNECTION_OK) << PQerrorMessage(c.get());
  PGresult* r = PQexec(c.get(), sql.c_str());
  const ExecStatusType st = PQresultStatus(r);
  EXPECT_TRUE(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
      << PQresultErrorMessage(r);
  PQclear(r);
}

// The tables ns-migrate reads, as in a current Chimera (dCache 9/10).
constexpr const char* kSchema = R"sql(
CREATE TABLE t_inodes (
  inumber bigint PRIMARY KEY, ipnfsid varchar(36) NOT NULL UNIQUE,
  itype integer NOT NULL, imode integer NOT NULL, inlink integer NOT NULL,
  iuid integer NOT NULL, igid integer NOT NULL, isize bigint NOT NULL,
  iio integer NOT NULL, ictime timestamptz NOT NULL,
  iatime timestamptz NOT NULL, imtime timestamptz NOT NULL,
  icrtime timestamptz, igeneration bigint NOT NULL DEFAULT 0,
  iaccess_latency smallint, iretention_policy smallint);
CREATE TABLE t_dirs (iparent bigint NOT NULL, iname varchar(255) NOT NULL,
  ichild bigint NOT NULL, CONSTRAINT t_dirs_pkey PRIMARY KEY (iparent, iname));
CREATE TABLE t_inodes_data (inumber bigint PRIMARY KEY, ifiledata bytea);
CREATE TABLE t_inodes_checksum (inumber bigint NOT NULL, itype integer NOT NULL,
  isum varchar(128) NOT NULL, PRIMARY KEY (inumber, itype));
CREATE TABLE t_acl (inumber bigint NOT NULL, rs_type integer NOT NULL,
  type integer NOT NULL, flags integer NOT NULL, access_msk integer NOT NULL,
  who integer NOT NULL, who_id integer, ace_order integer NOT NULL,
  PRIMARY KEY (inumber, ace_order));
CREATE TABLE t_tags_inodes (itagid varchar(36) PRIMARY KEY,
  imode integer NOT NULL, inlink integer NOT NULL, iuid integer NOT NULL,
  igid integer NOT NULL, isize bigint NOT NULL, ictime timestamptz NOT NULL,
  iatime timestamptz NOT NULL, imtime timestamptz NOT NULL, ivalue bytea);
CREATE TABLE t_tags (inumber bigint NOT NULL, itagid varchar(36) NOT NULL,
  isorign integer NOT NULL, itagname varchar(255) NOT NULL,
  PRIMARY KEY (inumber, itagname));
CREATE TABLE t_xattr (inumber bigint NOT NULL, ikey varchar(256) NOT NULL,
  ivalue bytea NOT NULL, PRIMARY KEY (inumber, ikey));
CREATE TABLE t_locationinfo (inumber bigint NOT NULL, itype integer NOT NULL,
  ilocation varchar(1024) NOT NULL, ipriority integer NOT NULL,
  ictime timestamptz NOT NULL, iatime timestamptz NOT NULL,
  istate integer NOT NULL, PRIMARY KEY (inumber, itype, ilocation));
CREATE TABLE t_storageinfo (inumber bigint PRIMARY KEY,
  ihsmname varchar(64) NOT NULL, istoragegroup varchar(64) NOT NULL,
  istoragesubgroup varchar(64) NOT NULL);
)sql";

std::string Levels() {
  std::string s;
  for (int i = 1; i <= 7; ++i) {
    s += fmt::format(
        "CREATE TABLE t_level_{} (inumber bigint PRIMARY KEY, imode integer "
        "NOT NULL, inlink integer NOT NULL, iuid integer NOT NULL, igid "
        "integer NOT NULL, isize bigint NOT NULL, ictime timestamptz NOT "
        "NULL, iatime timestamptz NOT NULL, imtime timestamptz NOT NULL, "
        "ifiledata bytea);\n",
        i);
  }
  return s;
}

constexpr const char* kRoot = "000000000000000000000000000000000000";
constexpr const char* kF1 = "0000A1B2C3D4E5F60718293A4B5C6D7E8F90";
constexpr const char* kLegacy = "000100000000000000001060";  // 24-hex PNFS id

// 1 /  2 /data  3 /data/raw  4 /data/raw/sub  5 /data/f1 (= /data/raw/f1link)
// 6 /data/legacy  7 /data/ln -> f1  8 /empty
constexpr const char* kData = R"sql(
INSERT INTO t_inodes VALUES
 (1, '000000000000000000000000000000000000', 16384, 493, 4, 0, 0, 512, 0,
  '2020-01-01 00:00:00+00', '2020-01-01 00:00:00+00', '2020-01-01 00:00:00+00',
  '2019-01-01 00:00:00+00', 0, NULL, NULL),
 (2, '0000D1000000000000000000000000000002', 16384, 488, 4, 1000, 100, 512, 0,
  '2021-02-03 04:05:06.123456+00', '2021-02-03 04:05:06.123456+00',
  '2021-02-03 04:05:06.123456+00', NULL, 0, NULL, NULL),
 (3, '0000D1000000000000000000000000000003', 16384, 493, 3, 1000, 100, 512, 0,
  '2021-02-03 04:05:07+00', '2021-02-03 04:05:07+00', '2021-02-03 04:05:07+00',
  '2021-02-03 04:05:07+00', 0, NULL, NULL),
 (4, '0000D1000000000000000000000000000004', 16384, 493, 3, 1000, 100, 512, 0,
  '2021-02-03 04:05:08+00', '2021-02-03 04:05:08+00', '2021-02-03 04:05:08+00',
  '2021-02-03 04:05:08+00', 0, NULL, NULL),
 (5, '0000A1B2C3D4E5F60718293A4B5C6D7E8F90', 32768, 420, 2, 1000, 100, 1234, 0,
  '2022-05-06 07:08:09.654321+00', '2022-05-06 07:08:09.000001+00',
  '2022-05-06 07:08:09.5+00', '2022-05-06 07:08:00+00', 0, 1, 0),
 (6, '000100000000000000001060', 32768, 384, 1, 0, 0, 77, 0,
  '2003-01-01 00:00:00+00', '2003-01-01 00:00:00+00', '2003-01-01 00:00:00+00',
  NULL, 0, 0, 0),
 (7, '0000D1000000000000000000000000000007', 40960, 511, 1, 1000, 100, 2, 0,
  '2021-02-03 04:05:09+00', '2021-02-03 04:05:09+00', '2021-02-03 04:05:09+00',
  '2021-02-03 04:05:09+00', 0, NULL, NULL),
 (8, '0000D1000000000000000000000000000008', 16384, 448, 2, 0, 0, 512, 0,
  '2021-02-03 04:05:10+00', '2021-02-03 04:05:10+00', '2021-02-03 04:05:10+00',
  '2021-02-03 04:05:10+00', 0, NULL, NULL);
INSERT INTO t_dirs VALUES (1, 'data', 2), (2, 'raw', 3), (3, 'sub', 4),
  (2, 'f1', 5), (3, 'f1link', 5), (2, 'legacy', 6), (2, 'ln', 7),
  (1, 'empty', 8);
INSERT INTO t_inodes_data VALUES (7, 'f1');
INSERT INTO t_inodes_checksum VALUES (5, 1, '0A1B2C3D'),
  (5, 2, 'd41d8cd98f00b204e9800998ecf8427e'),
  (5, 3, '31d6cfe0d16ae931b73c59d7e0c089c0'),
  (5, 4, 'da39a3ee5e6b4b0d3255bfef95601890afd80709'),
  (6, 5, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'),
  (6, 6, 'cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e');
-- f1: owner rwx-ish, deny uid 1001 write, allow gid 200 read, GROUP@ read,
-- EVERYONE@ read, ANONYMOUS@ (no equivalent: dropped and logged).
INSERT INTO t_acl VALUES
  (5, 1, 0, 0, 1180063, 2, NULL, 0),
  (5, 1, 1, 0, 6, 0, 1001, 1),
  (5, 1, 0, 0, 1, 1, 200, 2),
  (5, 1, 0, 0, 129, 3, NULL, 3),
  (5, 1, 0, 0, 129, 4, NULL, 4),
  (5, 1, 0, 0, 1, 5, NULL, 5),
  (2, 0, 0, 3, 1, 4, NULL, 0);
INSERT INTO t_tags_inodes VALUES
  ('T1', 33188, 3, 0, 0, 14, now(), now(), now(), 'StoreName test'),
  ('T2', 33188, 2, 0, 0, 4, now(), now(), now(), 'disk'),
  ('T3', 33188, 2, 0, 0, 4, now(), now(), now(), 'tape');
INSERT INTO t_tags VALUES
  (1, 'T1', 1, 'OSMTemplate'), (1, 'T2', 1, 'sGroup'),
  (2, 'T1', 0, 'OSMTemplate'), (2, 'T2', 0, 'sGroup'),
  (3, 'T1', 0, 'OSMTemplate'), (3, 'T3', 1, 'sGroup'),
  (4, 'T1', 0, 'OSMTemplate'), (4, 'T3', 0, 'sGroup'),
  (8, 'T1', 0, 'OSMTemplate'), (8, 'T2', 0, 'sGroup');
INSERT INTO t_xattr VALUES (5, 'user.project', 'alice'),
  (2, 'user.bin', '\x00ff01'::bytea);
INSERT INTO t_locationinfo VALUES
  (5, 0, 'osm://osm/?store=test&group=raw&bfid=0001', 10, now(), now(), 1),
  (5, 1, 'pool1', 10, now(), now(), 1),
  (6, 0, 'enstore://enstore/?volume=VOL001&location_cookie=0000_000000000_0000001', 10, now(), now(), 1);
INSERT INTO t_storageinfo VALUES (5, 'osm', 'test', 'raw');
INSERT INTO t_level_2 VALUES (6, 420, 1, 0, 0, 11, now(), now(), now(),
  'l=1;c=7:abc;');
)sql";

// 2022-05-06 07:08:09 UTC
constexpr ns::TimeNs kF1Sec = 1651820889;

class ChimeraTest : public ::testing::TestWithParam<std::string> {
 protected:
  // A Chimera database with the tree above; "" on failure (recorded).
  std::string MakeChimera() {
    std::string error;
    ns::testing::PgCluster* pg = ns::testing::SharedPg(&error);
    if (!pg) {
      ADD_FAILURE() << "PostgreSQL for the Chimera fixture: " << error;
      return "";
    }
    const std::string uri = pg->NewDatabaseUri();
    if (uri.empty()) return "";
    Sql(uri, std::string(kSchema) + Levels() + kData);
    return uri;
  }

  std::string Target() {
    std::string uri = FreshUri(GetParam());
    EXPECT_FALSE(uri.empty());
    return uri;
  }

  ns::Credentials root_ = ns::Credentials::Root();
};

TEST_P(ChimeraTest, ImportKeepsIdsAclsTagsChecksumsLocations) {
  const std::string chimera = MakeChimera();
  ASSERT_FALSE(chimera.empty());
  const std::string target = Target();
  const std::string log = NewPath("skips.log");
  auto [rc, err] = RunTool({"--from", "chimera:" + chimera, "--to", target,
                            "--verify", "--log", log});
  ASSERT_EQ(rc, 0) << err;
  // What the namespace cannot hold is logged, not dropped silently.
  const std::string skipped = ns::testing::ReadFileBytes(log);
  EXPECT_NE(skipped.find("md4"), std::string::npos) << skipped;
  EXPECT_NE(skipped.find("ANONYMOUS@"), std::string::npos) << skipped;

  ns::Result<std::unique_ptr<ns::Namespace>> nr =
      ns::Namespace::Open(target, ns::testing::TestOptions());
  ASSERT_TRUE(nr.ok()) << nr.status().ToString();
  ns::Namespace& n = **nr;
  ASSERT_OK_AND_ASSIGN(ns::Attr f1, n.Resolve(root_, "/data/f1"));
  EXPECT_EQ(f1.type, ns::FileType::kRegular);
  EXPECT_EQ(f1.mode, 0644u);
  EXPECT_EQ(f1.uid, 1000u);
  EXPECT_EQ(f1.gid, 100u);
  EXPECT_EQ(f1.size, 1234u);
  EXPECT_EQ(f1.nlink, 2u);
  EXPECT_EQ(f1.ctime, kF1Sec * 1000000000 + 654321000);
  EXPECT_EQ(f1.atime, kF1Sec * 1000000000 + 1000);
  EXPECT_EQ(f1.mtime, kF1Sec * 1000000000 + 500000000);
  EXPECT_EQ(f1.btime, (kF1Sec - 9) * 1000000000);
  EXPECT_TRUE(f1.has_acl);
  ASSERT_OK_AND_ASSIGN(ns::Attr link, n.Resolve(root_, "/data/raw/f1link"));
  EXPECT_EQ(link.ino, f1.ino);  // a hard link stays one inode

  // Checksums: Chimera types 1 adler32, 2 md5, 4 sha1 (3 md4 has no
  // counterpart); 5 sha256 and 6 sha512 on the legacy file.
  ASSERT_OK_AND_ASSIGN(std::vector<ns::Checksum> sums,
                       n.GetChecksums(root_, f1.ino));
  ASSERT_EQ(sums.size(), 3u);
  EXPECT_EQ(sums[0].type, ns::ChecksumType::kAdler32);
  EXPECT_EQ(sums[0].value, "0a1b2c3d");  // lower-cased
  EXPECT_EQ(sums[1].type, ns::ChecksumType::kMd5);
  EXPECT_EQ(sums[2].type, ns::ChecksumType::kSha1);
  ASSERT_OK_AND_ASSIGN(ns::Attr legacy, n.Resolve(root_, "/data/legacy"));
  ASSERT_OK_AND_ASSIGN(sums, n.GetChecksums(root_, legacy.ino));
  ASSERT_EQ(sums.size(), 2u);
  EXPECT_EQ(sums[0].type, ns::ChecksumType::kSha256);
  EXPECT_EQ(sums[1].type, ns::ChecksumType::kSha512);

  // The ACL, in order, ANONYMOUS@ left out.
  ASSERT_OK_AND_ASSIGN(ns::Acl acl, n.GetAcl(root_, f1.ino));
  ASSERT_EQ(acl.size(), 5u);
  EXPECT_EQ(acl[0],
            (ns::Ace{ns::kAceAllow, 0, 1180063, ns::AceWho::kOwner, 0}));
  EXPECT_EQ(acl[1], (ns::Ace{ns::kAceDeny, 0, 6, ns::AceWho::kUser, 1001}));
  EXPECT_EQ(acl[2], (ns::Ace{ns::kAceAllow, ns::kAceIdentifierGroup, 1,
                             ns::AceWho::kNamedGroup, 200}));
  EXPECT_EQ(acl[3], (ns::Ace{ns::kAceAllow, ns::kAceIdentifierGroup, 129,
                             ns::AceWho::kGroup, 0}));
  EXPECT_EQ(acl[4], (ns::Ace{ns::kAceAllow, 0, 129, ns::AceWho::kEveryone, 0}));
  // The ACL is what decides: uid 1001 (group 100, GROUP@) may read but not
  // write; uid 2000 reads through the named group 200.
  ns::Credentials u1001{1001, 100, {}};
  ASSERT_OK_AND_ASSIGN(
      uint32_t rights,
      n.Access(u1001, f1.ino, ns::kAceReadData | ns::kAceWriteData));
  EXPECT_EQ(rights, ns::kAceReadData);
  ns::Credentials u2000{2000, 300, {200}};
  ASSERT_OK_AND_ASSIGN(rights, n.Access(u2000, f1.ino, ns::kAceReadData));
  EXPECT_EQ(rights, ns::kAceReadData);

  // Tags: / owns OSMTemplate and sGroup=disk; /data and /empty inherit
  // them (by reference); /data/raw owns sGroup=tape (and a copy of
  // OSMTemplate); /data/raw/sub inherits raw's.
  auto tags = [&](const char* path) {
    std::vector<ns::Tag> out;
    ns::Result<ns::Attr> d = n.Resolve(root_, path);
    EXPECT_TRUE(d.ok()) << path;
    if (!d.ok()) return out;
    ns::Result<std::vector<ns::Tag>> t = n.ListTags(root_, d->ino);
    EXPECT_TRUE(t.ok()) << path;
    return t.ok() ? *t : out;
  };
  auto describe = [](const std::vector<ns::Tag>& ts) {
    std::string s;
    for (const ns::Tag& t : ts) {
      s += fmt::format("{}={}{} ", t.name, t.value, t.own ? "(own)" : "");
    }
    return s;
  };
  EXPECT_EQ(describe(tags("/")),
            "OSMTemplate=StoreName test(own) sGroup=disk(own) ");
  EXPECT_EQ(describe(tags("/data")), "OSMTemplate=StoreName test sGroup=disk ");
  EXPECT_EQ(describe(tags("/empty")),
            "OSMTemplate=StoreName test sGroup=disk ");
  EXPECT_EQ(describe(tags("/data/raw")),
            "OSMTemplate=StoreName test(own) sGroup=tape(own) ");
  EXPECT_EQ(describe(tags("/data/raw/sub")),
            "OSMTemplate=StoreName test sGroup=tape ");
  // A tag written on / after the import reaches the directories that
  // inherit from it, as in Chimera.
  ASSERT_OK(n.WriteTag(root_, ns::kRootInode, "sGroup", "disk2"));
  EXPECT_EQ(describe(tags("/data")),
            "OSMTemplate=StoreName test sGroup=disk2 ");
  EXPECT_EQ(describe(tags("/data/raw")),
            "OSMTemplate=StoreName test(own) sGroup=tape(own) ");
  ASSERT_OK(n.WriteTag(root_, ns::kRootInode, "sGroup", "disk"));

  // Locations: tape as its HSM URI, disk as the pool.
  ASSERT_OK_AND_ASSIGN(std::vector<ns::Location> locs,
                       n.GetLocations(root_, f1.ino));
  ASSERT_EQ(locs.size(), 2u);
  EXPECT_EQ(locs[0].location, "dcache-pool:pool1");
  EXPECT_EQ(locs[1].location, "osm://osm/?store=test&group=raw&bfid=0001");
  EXPECT_EQ(locs[0].type, ns::LocationType::kExternal);

  // xattrs: Chimera's own, storage info, access latency, PNFS levels.
  EXPECT_EQ(*n.GetXattr(root_, f1.ino, "user.project"), "alice");
  EXPECT_EQ(*n.GetXattr(root_, f1.ino, "chimera.storage_info"), "osm:test:raw");
  EXPECT_EQ(*n.GetXattr(root_, f1.ino, "chimera.access_latency"), "ONLINE");
  EXPECT_EQ(*n.GetXattr(root_, legacy.ino, "chimera.level.2"), "l=1;c=7:abc;");
  ASSERT_OK_AND_ASSIGN(ns::Attr data, n.Resolve(root_, "/data"));
  EXPECT_EQ(*n.GetXattr(root_, data.ino, "user.bin"),
            std::string("\0\xff\x01", 3));
  EXPECT_TRUE(data.has_acl);
  EXPECT_EQ(data.mode, 0750u);
  EXPECT_EQ(data.nlink, 3u);

  ASSERT_OK_AND_ASSIGN(ns::Attr ln, n.Resolve(root_, "/data/ln", false));
  EXPECT_EQ(ln.type, ns::FileType::kSymlink);
  EXPECT_EQ(*n.ReadLink(root_, ln.ino), "f1");
  nr->reset();

  // The round trip: the source as a dump and the namespace as a dump hold
  // the same entries, pnfsids as ext_id, once the namespace's mappings are
  // applied (location types, md4 and ANONYMOUS@ dropped).
  const std::string a = NewPath("source") + ".dump";
  const std::string b = NewPath("target") + ".dump";
  ASSERT_EQ(
      RunTool({"--export", "--from", "chimera:" + chimera, "--to", "dump:" + a})
          .first,
      0);
  ASSERT_EQ(RunTool({"--export", "--from", target, "--to", "dump:" + b}).first,
            0);
  std::vector<Entry> src = ReadDump(a), dst = ReadDump(b);
  ASSERT_EQ(src.size(), 9u);
  ASSERT_EQ(dst.size(), src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    Entry& x = src[i];
    Entry& y = dst[i];
    std::erase_if(x.checksums, [](const auto& c) { return c.first == "md4"; });
    std::erase_if(x.acl, [](const Ace& c) { return c.who == "ANONYMOUS@"; });
    NormalizeMetadata(x);
    NormalizeMetadata(y);
    EXPECT_EQ(x.link_key.empty(), y.link_key.empty()) << x.path;
    x.link_key.clear();
    y.link_key.clear();
    if (x.path == "/") y.size = x.size;  // the root's size is the target's
    EXPECT_EQ(FormatEntry(x), FormatEntry(y));
  }
  const std::string dump = ns::testing::ReadFileBytes(b);
  EXPECT_NE(dump.find(fmt::format("\"ext_id\":\"{}\"", kF1)),
            std::string::npos);
  EXPECT_NE(dump.find(fmt::format("\"ext_id\":\"{}\"", kLegacy)),
            std::string::npos);
  EXPECT_NE(dump.find(fmt::format("\"ext_id\":\"{}\"", kRoot)),
            std::string::npos);
}

TEST_P(ChimeraTest, DryRunAndResumeWorkUnchanged) {
  const std::string chimera = MakeChimera();
  ASSERT_FALSE(chimera.empty());
  const std::string target = Target();
  // A dry run reads and checks everything and writes nothing, not even
  // the SQLite file it would make.
  const std::string dry = NewPath("dry") + ".db";
  auto [rc, err] = RunTool(
      {"--from", "chimera:" + chimera, "--to", "sqlite://" + dry, "--dry-run"});
  ASSERT_EQ(rc, 0) << err;
  struct stat st {};
  EXPECT_NE(::stat(dry.c_str(), &st), 0);
  // kill -9 after the first batch of 3 rows, then resume: verify passes.
  auto [rc1, err1] =
      RunTool({"--from", "chimera:" + chimera, "--to", target, "--batch-rows",
               "3", "--crash-after-batches", "1"});
  EXPECT_NE(rc1, 0) << err1;
  auto [rc2, err2] = RunTool({"--from", "chimera:" + chimera, "--to", target,
                              "--batch-rows", "3", "--resume", "--verify"});
  EXPECT_EQ(rc2, 0) << err2;
}

// Bad input: the error names the t_dirs row, nothing is imported.
TEST_P(ChimeraTest, BadInputNamesTheRowAndImportsNothing) {
  struct Case {
    const char* what;
    const char* sql;
    const char* expect;
  };
  const Case cases[] = {
      {"dangling parent", "INSERT INTO t_dirs VALUES (999, 'orphan', 6)",
       "iparent 999, iname 'orphan'"},
      {"cycle",
       "INSERT INTO t_inodes SELECT 20 + g, 'CYC' || g, 16384, 493, 2, 0, 0, "
       "512, 0, now(), now(), now(), now(), 0, NULL, NULL FROM "
       "generate_series(1, 2) g; INSERT INTO t_dirs VALUES (21, 'b', 22), "
       "(22, 'a', 21)",
       "not reachable from the root"},
      {"directory loop", "INSERT INTO t_dirs VALUES (4, 'up', 2)",
       "(iparent 1, iname 'data'), (iparent 4, iname 'up')"},
      {"duplicate name",
       "ALTER TABLE t_dirs DROP CONSTRAINT t_dirs_pkey; INSERT INTO t_dirs "
       "VALUES (2, 'legacy', 7)",
       "iname 'legacy'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string chimera = MakeChimera();
    ASSERT_FALSE(chimera.empty());
    Sql(chimera, c.sql);
    const std::string target = Target();
    auto [rc, err] = RunTool({"--from", "chimera:" + chimera, "--to", target});
    EXPECT_EQ(rc, 1) << err;
    EXPECT_NE(err.find(c.expect), std::string::npos) << err;
    // Nothing written: the target was never even opened.
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
  // An unreachable server.
  auto [rc, err] =
      RunTool({"--from",
               fmt::format("chimera:postgresql://nobody@127.0.0.1:{}/chimera",
                           ns::testing::FreeLocalPort()),
               "--to", Target()});
  EXPECT_EQ(rc, 1) << err;
  EXPECT_NE(err.find("chimera:postgresql://nobody@127.0.0.1"),
            std::string::npos)
      << err;
}

INSTANTIATE_TEST_SUITE_P(Dialects, ChimeraTest,
                         ::testing::ValuesIn(ns::testing::Dialects()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace nsmigrate
