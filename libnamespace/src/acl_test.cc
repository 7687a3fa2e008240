// Unit tests of the pure ACL functions: text form, evaluation order, mode
// derivation, chmod rewriting and inheritance (RFC 8881 §6).

#include <gtest/gtest.h>

#include "libnamespace/include/namespace/acl.h"
#include "libnamespace/include/namespace/metadata.h"

namespace ns {
namespace {

Acl MustParse(std::string_view text) {
  Result<Acl> r = ParseAcl(text);
  EXPECT_TRUE(r.ok()) << text << ": " << r.status().ToString();
  return r.ok() ? *r : Acl{};
}

Attr File(uint32_t uid, uint32_t gid, uint32_t mode) {
  Attr a;
  a.ino = 10;
  a.type = FileType::kRegular;
  a.uid = uid;
  a.gid = gid;
  a.mode = mode;
  return a;
}

TEST(AclText, RoundTripsEveryLetter) {
  for (const char* text :
       {"A::OWNER@:rwaxdDtTnNcCoy", "D:g:1000:w", "A:g:GROUP@:rxtncy",
        "A:fdni:EVERYONE@:r", "U:SF:42:x", "L:O:7:c"}) {
    Result<Ace> ace = ParseAce(text);
    ASSERT_TRUE(ace.ok()) << text << ": " << ace.status().ToString();
    EXPECT_EQ(FormatAce(*ace), text);
  }
  // GROUP@ always carries the group flag, written or not.
  EXPECT_EQ(FormatAce(*ParseAce("A::GROUP@:r")), "A:g:GROUP@:r");
  Acl acl = MustParse("A::OWNER@:rw, D:g:1000:w\n# comment\nA::EVERYONE@:r");
  ASSERT_EQ(acl.size(), 3u);
  EXPECT_EQ(acl[1].who, AceWho::kNamedGroup);
  EXPECT_EQ(acl[1].id, 1000u);
  EXPECT_EQ(acl[1].type, kAceDeny);
}

TEST(AclText, MalformedEntriesAreInvalid) {
  for (const char* text :
       {"", "A", "A::OWNER@", "X::OWNER@:r", "A:z:OWNER@:r", "A::OWNER@:rq",
        "A::alice@example.com:r", "A::-1:r", "A::OWNER@:r:extra",
        "A:i:OWNER@:r", "A:g:OWNER@:r", "AA::OWNER@:r", "A::99999999999:r"}) {
    EXPECT_TRUE(ParseAce(text).status().IsInvalid()) << text;
  }
  EXPECT_TRUE(ParseAcl("A::OWNER@:r, bogus").status().IsInvalid());
}

TEST(AclEval, FirstAceToMentionABitDecides) {
  const Attr f = File(1000, 100, 0);
  const Credentials user{1000, 100, {}};
  // DENY before ALLOW: denied.
  Acl deny_first = MustParse("D::1000:w A::EVERYONE@:rw");
  EXPECT_EQ(AccessFromAcl(user, f, deny_first, kAceReadData | kAceWriteData),
            kAceReadData);
  // ALLOW before DENY: allowed.
  Acl allow_first = MustParse("A::EVERYONE@:rw D::1000:w");
  EXPECT_EQ(AccessFromAcl(user, f, allow_first, kAceReadData | kAceWriteData),
            kAceReadData | kAceWriteData);
  // Bits nobody mentions are denied; inherit-only ACEs do not apply.
  Acl inherit_only = MustParse("A:fi:EVERYONE@:rw");
  const Credentials other{2000, 200, {}};
  EXPECT_EQ(AccessFromAcl(other, f, inherit_only, kAceReadData), 0u);
  // Named group through a supplementary group.
  Acl grp = MustParse("A:g:300:x");
  EXPECT_EQ(AccessFromAcl(Credentials{2000, 200, {300}}, f, grp, kAceExecute),
            kAceExecute);
  EXPECT_EQ(AccessFromAcl(other, f, grp, kAceExecute), 0u);
  // The owner keeps WRITE_ACL whatever the ACL says.
  Acl deny_all = MustParse("D::OWNER@:rwaxdDtTnNcCoy");
  EXPECT_EQ(AccessFromAcl(user, f, deny_all, kAceWriteAcl), kAceWriteAcl);
}

TEST(AclMode, ModeFollowsTheAclAndChmodRewritesIt) {
  EXPECT_EQ(ModeFromAcl(MustParse("A::OWNER@:rwax A:g:GROUP@:rx A::EVERYONE@:r")),
            0754u);
  EXPECT_EQ(ModeFromAcl(MustParse("D::EVERYONE@:w A::EVERYONE@:rwax")), 0555u);
  // Write needs WRITE_DATA and APPEND_DATA both.
  EXPECT_EQ(ModeFromAcl(MustParse("A::OWNER@:rw")), 0400u);
  for (uint32_t mode : {0u, 0640u, 0755u, 0777u, 0501u, 0070u}) {
    Acl acl = AclAfterChmod(MustParse("A::EVERYONE@:rwax A::1234:rwaxc"), mode);
    EXPECT_EQ(ModeFromAcl(acl), mode) << std::oct << mode;
  }
  // Named ALLOWs keep only what the group class allows.
  Acl acl = AclAfterChmod(MustParse("A::1234:rwaxc"), 0750);
  ASSERT_FALSE(acl.empty());
  EXPECT_EQ(acl[0].who, AceWho::kUser);
  EXPECT_EQ(acl[0].mask, kAceReadData | kAceExecute | kAceReadAcl);
}

TEST(AclInherit, FlagsPropagateAsRfc8881Says) {
  Acl parent = MustParse(
      "A:f:1:r A:d:2:r A:fd:3:r A:fdn:4:r A:fn:5:r A:dn:6:r A:fdi:7:r A::8:r");
  Acl file = InheritAcl(parent, false);
  ASSERT_EQ(file.size(), 5u);  // 1, 3, 4, 5, 7
  for (const Ace& a : file) {
    EXPECT_EQ(a.flags, kAceInherited) << FormatAce(a);
  }
  Acl dir = InheritAcl(parent, true);
  // 1 (inherit-only, for files), 2, 3, 4 (stopped), 6 (stopped), 7.
  ASSERT_EQ(dir.size(), 6u);
  EXPECT_EQ(FormatAce(dir[0]), "A:fiO:1:r");
  EXPECT_EQ(FormatAce(dir[1]), "A:dO:2:r");
  EXPECT_EQ(FormatAce(dir[2]), "A:fdO:3:r");
  EXPECT_EQ(FormatAce(dir[3]), "A:O:4:r");
  EXPECT_EQ(FormatAce(dir[4]), "A:O:6:r");
  EXPECT_EQ(FormatAce(dir[5]), "A:fdO:7:r");
}

TEST(Checksums, KnownValues) {
  EXPECT_EQ(ComputeChecksum(ChecksumType::kAdler32, "Wikipedia"), "11e60398");
  EXPECT_EQ(ComputeChecksum(ChecksumType::kMd5, ""),
            "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(ComputeChecksum(ChecksumType::kSha1, "abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(ComputeChecksum(ChecksumType::kSha256, "abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_TRUE(ParseChecksumType("crc64").status().IsInvalid());
  EXPECT_EQ(*ParseChecksumType("sha256"), ChecksumType::kSha256);
}

}  // namespace
}  // namespace ns
