// The acl and aclsupport attributes (RFC 8881 §6) through the real server
// and the in-tree client, and the fattr4_acl codec on its own.

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "nfs41client/client.h"
#include "nfs41d/acl_attr.h"
#include "nfs41d/server.h"
#include "nfs41d/status_map.h"

namespace nfs41d {
namespace {

using nfs41client::Ace;
using nfs41client::Bits;
using nfs41client::Client;
using nfs41client::Compound;
using nfs41client::Fh;

#define EXPECT_NFS(expr, want) \
  EXPECT_STREQ(NfsStatName(expr), NfsStatName(want))
#define ASSERT_NFS(expr, want) \
  ASSERT_STREQ(NfsStatName(expr), NfsStatName(want))

constexpr uint32_t kAllow = ACE4_ACCESS_ALLOWED_ACE_TYPE;
constexpr uint32_t kDeny = ACE4_ACCESS_DENIED_ACE_TYPE;
constexpr uint32_t kRw = ACE4_READ_DATA | ACE4_WRITE_DATA | ACE4_APPEND_DATA;

class AclTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("nfs41d-acl-test-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    ServerOptions o;
    o.port = 0;
    o.data_dir = dir_;
    o.worker_threads = 2;
    o.durable = false;
    server_ = std::make_unique<Nfs41Server>(o);
    ASSERT_EQ(server_->Start(), "");
    root_ = As(0);
    ASSERT_TRUE(root_);
    auto rfh = root_->RootFh();
    ASSERT_NFS(rfh.status, NFS4_OK);
    // A world-writable directory where uid 1000 owns the file "f".
    auto d = root_->Create(rfh.value, NF4DIR, "d", 0777);
    ASSERT_NFS(d.status, NFS4_OK);
    dir_fh_ = d.value;
    owner_ = As(1000);
    auto f = owner_->OpenFile(dir_fh_, "f", OPEN4_SHARE_ACCESS_BOTH, 0, true);
    ASSERT_NFS(f.status, NFS4_OK);
    file_ = f.value.fh;
    ASSERT_NFS(owner_->CloseFile(f.value.fh, f.value.stateid).status,
               NFS4_OK);
  }
  void TearDown() override {
    owner_.reset();
    root_.reset();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<Client> As(uint32_t uid) {
    nfs41client::ClientOptions o;
    o.cred = rpc::Credential::Sys(
        {.stamp = 0, .machine_name = "t", .uid = uid, .gid = uid, .gids = {}});
    auto c = Client::Connect("127.0.0.1", server_->port(), o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    if (!c.ok()) return nullptr;
    EXPECT_EQ((*c)->EstablishSession(), NFS4_OK);
    return std::move(c).value();
  }
  nfsstat4 SetAcl(Client& c, const std::vector<Ace>& acl,
                  std::optional<uint32_t> mode = {}) {
    auto r = c.Call(Compound().PutFh(file_).SetAcl(acl, mode));
    EXPECT_TRUE(r.ok());
    return r.ok() ? r->status() : NFS4ERR_IO;
  }
  nfs41client::Attrs Get(Client& c) {
    auto a = c.GetAttr(file_, Bits({FATTR4_ACL, FATTR4_MODE}));
    EXPECT_NFS(a.status, NFS4_OK);
    return a.value;
  }
  // ACCESS4 bits granted to `c` on the file.
  uint32_t Access(Client& c, uint32_t bits) {
    auto r = c.Call(Compound().PutFh(file_).Access(bits));
    EXPECT_TRUE(r.ok());
    if (!r.ok() || r->status() != NFS4_OK) return 0;
    return r->op(2).nfs_resop4_u.opaccess.ACCESS4res_u.resok4.access;
  }
  nfsstat4 OpenRead(Client& c) {
    auto r = c.OpenFile(dir_fh_, "f", OPEN4_SHARE_ACCESS_READ, 0, false,
                        "reader");
    if (r.ok()) c.CloseFile(r.value.fh, r.value.stateid);
    return r.status;
  }

  std::string dir_;
  std::unique_ptr<Nfs41Server> server_;
  std::unique_ptr<Client> root_, owner_;
  Fh dir_fh_, file_;
};

// A DENY for uid 2000 before an ALLOW for everyone.
std::vector<Ace> DenyTwoThousand() {
  return {
      Ace{kAllow, 0, kRw | ACE4_READ_ACL | ACE4_WRITE_ACL, "OWNER@"},
      Ace{kDeny, 0, kRw, "2000"},
      Ace{kAllow, 0, ACE4_READ_DATA | ACE4_READ_ACL, "EVERYONE@"},
  };
}

TEST_F(AclTest, SupportedAndAclsupport) {
  auto a = root_->GetAttr(file_, Bits({FATTR4_SUPPORTED_ATTRS,
                                       FATTR4_ACLSUPPORT}));
  ASSERT_NFS(a.status, NFS4_OK);
  ASSERT_FALSE(a.value.supported.empty());
  EXPECT_TRUE(a.value.supported[0] & (1u << FATTR4_ACL));
  EXPECT_TRUE(a.value.supported[0] & (1u << FATTR4_ACLSUPPORT));
  EXPECT_EQ(a.value.aclsupport,
            uint32_t{ACL4_SUPPORT_ALLOW_ACL | ACL4_SUPPORT_DENY_ACL});
}

TEST_F(AclTest, NoAclAnswersTheModesAcl) {
  // §6.4.2: a file with mode bits only answers their ACL equivalent.
  ASSERT_NFS(owner_->Call(Compound().PutFh(file_).SetMode(0640))->status(),
             NFS4_OK);
  nfs41client::Attrs a = Get(*owner_);
  ASSERT_FALSE(a.acl.empty());
  bool owner_rw = false, everyone_r = false, group_r = false;
  for (const Ace& ace : a.acl) {
    const bool allow = ace.type == kAllow;
    if (ace.who == "OWNER@" && allow && (ace.mask & ACE4_WRITE_DATA)) {
      owner_rw = (ace.mask & ACE4_READ_DATA) != 0;
    }
    if (ace.who == "GROUP@" && allow && (ace.mask & ACE4_READ_DATA)) {
      group_r = true;
    }
    if (ace.who == "EVERYONE@" && allow && (ace.mask & ACE4_READ_DATA)) {
      everyone_r = true;
    }
  }
  EXPECT_TRUE(owner_rw);
  EXPECT_TRUE(group_r);
  EXPECT_FALSE(everyone_r);
  EXPECT_EQ(a.mode, 0640u);
}

TEST_F(AclTest, SetThenGetBackAndModeFollows) {
  ASSERT_NFS(SetAcl(*owner_, DenyTwoThousand()), NFS4_OK);
  nfs41client::Attrs a = Get(*owner_);
  EXPECT_EQ(a.acl, DenyTwoThousand());
  // §6.4.1.2: rwx bits from OWNER@ / GROUP@ / EVERYONE@ ALLOWs (EVERYONE@
  // also counts for owner and group).
  EXPECT_EQ(a.mode & 0777, 0644u);
}

TEST_F(AclTest, DenyAceDeniesAccessAndOpen) {
  ASSERT_NFS(SetAcl(*owner_, DenyTwoThousand()), NFS4_OK);
  auto denied = As(2000);
  auto other = As(3000);
  EXPECT_EQ(Access(*denied, ACCESS4_READ | ACCESS4_MODIFY), 0u);
  EXPECT_EQ(Access(*other, ACCESS4_READ | ACCESS4_MODIFY),
            uint32_t{ACCESS4_READ});
  EXPECT_EQ(Access(*owner_, ACCESS4_READ | ACCESS4_MODIFY),
            uint32_t{ACCESS4_READ | ACCESS4_MODIFY});
  EXPECT_NFS(OpenRead(*denied), NFS4ERR_ACCESS);
  EXPECT_NFS(OpenRead(*other), NFS4_OK);
  // Without the ACL the mode (0644 now) would let 2000 read.
  ASSERT_NFS(SetAcl(*owner_, {Ace{kAllow, 0, kRw, "OWNER@"},
                              Ace{kAllow, 0, ACE4_READ_DATA, "EVERYONE@"}}),
             NFS4_OK);
  EXPECT_NFS(OpenRead(*denied), NFS4_OK);
}

TEST_F(AclTest, ModeChangeAdjustsTheAcl) {
  ASSERT_NFS(SetAcl(*owner_, DenyTwoThousand()), NFS4_OK);
  auto other = As(3000);
  EXPECT_NFS(OpenRead(*other), NFS4_OK);
  // chmod 0600 (§6.4.1.1): EVERYONE@ loses READ_DATA, so 3000 may not read.
  ASSERT_NFS(owner_->Call(Compound().PutFh(file_).SetMode(0600))->status(),
             NFS4_OK);
  nfs41client::Attrs a = Get(*owner_);
  EXPECT_EQ(a.mode & 0777, 0600u);
  for (const Ace& ace : a.acl) {
    if (ace.who == "EVERYONE@" && ace.type == kAllow) {
      EXPECT_FALSE(ace.mask & ACE4_READ_DATA);
    }
  }
  EXPECT_NFS(OpenRead(*other), NFS4ERR_ACCESS);
  EXPECT_EQ(Access(*other, ACCESS4_READ), 0u);
}

TEST_F(AclTest, AclAndModeTogetherApplyModeThenAcl) {
  ASSERT_NFS(SetAcl(*owner_, DenyTwoThousand(), 0600), NFS4_OK);
  nfs41client::Attrs a = Get(*owner_);
  EXPECT_EQ(a.acl, DenyTwoThousand());
  EXPECT_EQ(a.mode & 0777, 0644u);
}

TEST_F(AclTest, BadInput) {
  // §6.2.1.5, §5.9: a who nobody knows.
  EXPECT_NFS(SetAcl(*owner_, {Ace{kAllow, 0, kRw, "nosuchuser@nowhere"}}),
             NFS4ERR_BADOWNER);
  EXPECT_NFS(SetAcl(*owner_, {Ace{kAllow, 0, kRw, ""}}), NFS4ERR_BADOWNER);
  EXPECT_NFS(SetAcl(*owner_, {Ace{kAllow, 0, kRw, "INTERACTIVE@"}}),
             NFS4ERR_BADOWNER);
  // Types aclsupport does not claim.
  EXPECT_NFS(SetAcl(*owner_, {Ace{ACE4_SYSTEM_AUDIT_ACE_TYPE,
                                  ACE4_SUCCESSFUL_ACCESS_ACE_FLAG, kRw,
                                  "OWNER@"}}),
             NFS4ERR_ATTRNOTSUPP);
  // Unknown mask bits, INHERIT_ONLY without an inherit flag.
  EXPECT_NFS(SetAcl(*owner_, {Ace{kAllow, 0, 0x80000000u, "OWNER@"}}),
             NFS4ERR_INVAL);
  EXPECT_NFS(SetAcl(*owner_, {Ace{kAllow, ACE4_INHERIT_ONLY_ACE, kRw,
                                  "OWNER@"}}),
             NFS4ERR_INVAL);
  // Only the owner (and root) hold WRITE_ACL by default.
  auto other = As(3000);
  EXPECT_NFS(SetAcl(*other, DenyTwoThousand()), NFS4ERR_PERM);
  // Nothing of the refused requests stuck: still the mode's ACL.
  EXPECT_NE(Get(*owner_).acl, DenyTwoThousand());
  // Too many ACEs.
  std::vector<Ace> many(ns::kMaxAces + 1, Ace{kAllow, 0, kRw, "OWNER@"});
  EXPECT_NFS(SetAcl(*owner_, many), NFS4ERR_INVAL);
}

TEST_F(AclTest, GroupWhoAndReadDir) {
  ASSERT_NFS(SetAcl(*owner_, {Ace{kAllow, 0, kRw, "OWNER@"},
                              Ace{kAllow, ACE4_IDENTIFIER_GROUP,
                                  ACE4_READ_DATA, "4000"},
                              Ace{kAllow, ACE4_IDENTIFIER_GROUP, 0,
                                  "GROUP@"}}),
             NFS4_OK);
  nfs41client::Attrs a = Get(*owner_);
  ASSERT_EQ(a.acl.size(), 3u);
  EXPECT_EQ(a.acl[1].who, "4000");
  EXPECT_EQ(a.acl[1].flags, uint32_t{ACE4_IDENTIFIER_GROUP});
  EXPECT_EQ(a.acl[2].who, "GROUP@");
  // A caller in group 4000 may read, uid 4000 (another group) may not.
  nfs41client::ClientOptions o;
  o.cred = rpc::Credential::Sys(
      {.stamp = 0, .machine_name = "t", .uid = 5000, .gid = 4000, .gids = {}});
  auto c = Client::Connect("127.0.0.1", server_->port(), o);
  ASSERT_TRUE(c.ok());
  ASSERT_EQ((*c)->EstablishSession(), NFS4_OK);
  EXPECT_NFS(OpenRead(**c), NFS4_OK);
  auto u = As(4100);
  EXPECT_NFS(OpenRead(*u), NFS4ERR_ACCESS);

  // READDIR with acl: the entry carries it.
  verifier4 v{};
  auto r = owner_->Call(Compound().PutFh(dir_fh_).ReadDir(
      0, v, 4096, 8192, Bits({FATTR4_ACL})));
  ASSERT_TRUE(r.ok());
  ASSERT_NFS(r->status(), NFS4_OK);
  const entry4* e =
      r->op(2).nfs_resop4_u.opreaddir.READDIR4res_u.resok4.reply.entries;
  ASSERT_NE(e, nullptr);
  nfs41client::Attrs ea;
  ASSERT_TRUE(nfs41client::DecodeAttrs(e->attrs, &ea));
  EXPECT_EQ(ea.acl, a.acl);
}

// --- The codec on its own -------------------------------------------------

class MapperForTest : public IdMapper {
 public:
  std::string UidToOwner(uint32_t uid) const override {
    return uid == 1000 ? "alice@example.org" : std::to_string(uid);
  }
  std::string GidToGroup(uint32_t gid) const override {
    return gid == 100 ? "staff@example.org" : std::to_string(gid);
  }
  std::optional<uint32_t> OwnerToUid(std::string_view s) const override {
    if (s == "alice@example.org") return 1000;
    return ParseNumericId(s);
  }
  std::optional<uint32_t> GroupToGid(std::string_view s) const override {
    if (s == "staff@example.org") return 100;
    return ParseNumericId(s);
  }
};

TEST(AclCodec, RoundTripThroughTheMapper) {
  MapperForTest m;
  ns::Acl acl = {
      {ns::kAceAllow, 0, ns::kAceReadData, ns::AceWho::kUser, 1000},
      {ns::kAceDeny, ns::kAceIdentifierGroup, ns::kAceWriteData,
       ns::AceWho::kNamedGroup, 100},
      {ns::kAceAllow, 0, ns::kAceReadAcl, ns::AceWho::kEveryone, 0},
  };
  rpc::XdrEncoder e;
  EncodeAcl(e, acl, &m);
  ns::Acl back;
  size_t used = 0;
  ASSERT_NFS(DecodeAcl(reinterpret_cast<const char*>(e.data()), e.size(),
                       &used, &back, &m),
             NFS4_OK);
  EXPECT_EQ(used, e.size());
  EXPECT_EQ(back, acl);
  // The names went on the wire, not the numbers.
  std::string wire(reinterpret_cast<const char*>(e.data()), e.size());
  EXPECT_NE(wire.find("alice@example.org"), std::string::npos);
  EXPECT_NE(wire.find("staff@example.org"), std::string::npos);
}

TEST(AclCodec, MalformedIsBadXdr) {
  ns::Acl out;
  size_t used = 0;
  // A count the bytes cannot hold (and that would be a huge allocation).
  const char huge[4] = {'\x7f', '\xff', '\xff', '\xff'};
  EXPECT_NFS(DecodeAcl(huge, 4, &used, &out, nullptr), NFS4ERR_BADXDR);
  // One ACE cut short in its who.
  rpc::XdrEncoder e;
  e.PutUint32(1);
  e.PutUint32(0);
  e.PutUint32(0);
  e.PutUint32(1);
  e.PutUint32(100);  // who length beyond the buffer
  e.PutUint32(0);
  e.PutUint32(0);
  e.PutUint32(0);
  EXPECT_NFS(DecodeAcl(reinterpret_cast<const char*>(e.data()), e.size(),
                       &used, &out, nullptr),
             NFS4ERR_BADXDR);
  EXPECT_NFS(DecodeAcl(huge, 0, &used, &out, nullptr), NFS4ERR_BADXDR);
}

}  // namespace
}  // namespace nfs41d
