#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "libnamespace/include/namespace/namespace.h"
#include "libnamespace/src/perm.h"

namespace ns {
namespace {

TEST(ValidateNameTest, AcceptsOrdinaryNames) {
  EXPECT_TRUE(ValidateName("a").ok());
  EXPECT_TRUE(ValidateName("...").ok());
  EXPECT_TRUE(ValidateName("caf\xc3\xa9").ok());
  EXPECT_TRUE(ValidateName(std::string(255, 'x')).ok());
}

TEST(ValidateNameTest, RejectsBadNames) {
  EXPECT_TRUE(ValidateName("").IsInvalid());
  EXPECT_TRUE(ValidateName(".").IsInvalid());
  EXPECT_TRUE(ValidateName("..").IsInvalid());
  EXPECT_TRUE(ValidateName("a/b").IsInvalid());
  EXPECT_TRUE(ValidateName(std::string("a\0b", 3)).IsInvalid());
  EXPECT_TRUE(ValidateName(std::string(256, 'x')).IsNameTooLong());
  EXPECT_TRUE(ValidateName("\xff").IsInvalid());
  EXPECT_TRUE(ValidateName("\xc3").IsInvalid());          // truncated
  EXPECT_TRUE(ValidateName("\xc0\xaf").IsInvalid());      // overlong '/'
  EXPECT_TRUE(ValidateName("\xed\xa0\x80").IsInvalid());  // surrogate
}

Attr File(uint32_t uid, uint32_t gid, uint32_t mode,
          FileType type = FileType::kRegular) {
  Attr a;
  a.uid = uid;
  a.gid = gid;
  a.mode = mode;
  a.type = type;
  return a;
}

TEST(PermTest, OwnerGroupOtherBits) {
  Attr a = File(100, 200, 0640);
  Credentials owner{100, 1, {}};
  Credentials member{300, 1, {200}};
  Credentials other{300, 300, {}};
  EXPECT_TRUE(CheckAccess(owner, a, kMayRead | kMayWrite, "x").ok());
  EXPECT_TRUE(CheckAccess(member, a, kMayRead, "x").ok());
  EXPECT_TRUE(CheckAccess(member, a, kMayWrite, "x").IsAccessDenied());
  EXPECT_TRUE(CheckAccess(other, a, kMayRead, "x").IsAccessDenied());
  EXPECT_TRUE(CheckAccess(Credentials::Root(), a, kMayWrite, "x").ok());
  EXPECT_TRUE(CheckAccess(Credentials::Root(), a, kMayExec, "x").IsAccessDenied());
}

TEST(PermTest, StickyDirectory) {
  Attr dir = File(0, 0, 01777, FileType::kDirectory);
  Attr mine = File(100, 100, 0644);
  EXPECT_TRUE(CheckSticky({100, 100, {}}, dir, mine, "x").ok());
  EXPECT_TRUE(CheckSticky({101, 100, {}}, dir, mine, "x").IsNotPermitted());
}

TEST(PermTest, SetgidDirectoryInheritance) {
  Attr dir = File(0, 500, 02775, FileType::kDirectory);
  Credentials c{100, 100, {}};
  EXPECT_EQ(GidForNewInode(c, dir), 500u);
  EXPECT_EQ(ModeForNewInode(c, dir, FileType::kDirectory, 500, 0755),
            static_cast<uint32_t>(02755));
  EXPECT_EQ(ModeForNewInode(c, dir, FileType::kRegular, 500, 02644), 0644u);
}

TEST(PermTest, ChownRules) {
  Attr a = File(100, 100, 06755);
  Credentials owner{100, 100, {200}};
  SetAttrRequest to_root;
  to_root.uid = 0;
  EXPECT_TRUE(CheckSetAttr(owner, a, to_root, 0, "x").IsNotPermitted());
  SetAttrRequest to_200;
  to_200.gid = 200;
  EXPECT_TRUE(CheckSetAttr(owner, a, to_200, 0, "x").ok());
  SetAttrRequest to_300;
  to_300.gid = 300;
  EXPECT_TRUE(CheckSetAttr(owner, a, to_300, 0, "x").IsNotPermitted());
  EXPECT_EQ(ModeAfterChown(a), 0755u);
}

}  // namespace
}  // namespace ns
