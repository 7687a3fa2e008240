// Permissions, NFSv4 ACLs, xattrs, directory tags, checksums and locations
// (issue 3, item 7): the same tests against SQLite and PostgreSQL.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "libnamespace/include/namespace/acl.h"
#include "libnamespace/include/namespace/metadata.h"
#include "tests/test_util.h"

namespace ns::testing {
namespace {

using MetadataTest = DialectTest;

const Credentials kOwner{1000, 1000, {}};
const Credentials kMember{1001, 1002, {1000}};  // in group 1000 (supplementary)
const Credentials kOther{1003, 1003, {}};

Acl MustParse(std::string_view text) {
  Result<Acl> r = ParseAcl(text);
  EXPECT_TRUE(r.ok()) << text << ": " << r.status().ToString();
  return r.ok() ? *r : Acl{};
}

// ---- permission matrix ------------------------------------------------------

// Who may do what on mode bits alone: owner, group member, other, root x
// read, write, search, create, delete in a sticky dir, chmod, chown, times.
TEST_P(MetadataTest, PermissionMatrix) {
  const Credentials root = root_;
  // /d (0775 owner:1000) holds f (0640), /s is sticky 01777.
  InodeId d = MkdirOrFail(ns_->Root(), "d", 0775);
  SetAttrRequest own;
  own.uid = 1000;
  own.gid = 1000;
  ASSERT_OK(ns_->SetAttr(root, d, own));
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(kOwner, d, "f", 0640));
  InodeId s = MkdirOrFail(ns_->Root(), "s", 01777);

  struct Row {
    const char* who;
    Credentials cred;
    bool read, write, search, create, sticky_delete_other, chmod, chown, times;
  };
  const Row rows[] = {
      {"owner", kOwner, true, true, true, true, false, true, false, true},
      {"member", kMember, true, false, true, true, false, false, false, false},
      {"other", kOther, false, false, true, false, false, false, false, false},
      {"root", root, true, true, true, true, true, true, true, true},
  };
  int n = 0;
  for (const Row& r : rows) {
    SCOPED_TRACE(r.who);
    const std::string tag = std::to_string(n++);
    // read: READ_DATA on f, and a listing of d needs r on d (0775: all).
    ASSERT_OK_AND_ASSIGN(uint32_t rd, ns_->Access(r.cred, f.ino, kAceReadData));
    EXPECT_EQ(rd == kAceReadData, r.read);
    // write: truncate.
    SetAttrRequest trunc;
    trunc.size = 0;
    EXPECT_EQ(ns_->SetAttr(r.cred, f.ino, trunc).ok(), r.write);
    // search: lookup in d.
    EXPECT_EQ(ns_->Lookup(r.cred, d, "f").ok(), r.search);
    // create in d (0775: owner and group).
    Result<Attr> c = ns_->Create(r.cred, d, "c" + tag, 0644);
    EXPECT_EQ(c.ok(), r.create);
    if (!c.ok()) {
      EXPECT_TRUE(c.status().IsAccessDenied());
    }
    // delete someone else's file in the sticky dir: only root (or owners).
    ASSERT_OK_AND_ASSIGN(Attr victim, ns_->Create(Credentials{4242, 4242, {}}, s,
                                                  "v" + tag, 0666));
    Result<UnlinkResult> u = ns_->Unlink(r.cred, s, "v" + tag);
    EXPECT_EQ(u.ok(), r.sticky_delete_other);
    if (!u.ok()) {
      EXPECT_TRUE(u.status().IsNotPermitted()) << u.status().ToString();
    }
    // ... while their own file there they may delete.
    if (r.cred.uid != 0) {
      ASSERT_OK(ns_->Create(r.cred, s, "own" + tag, 0600));
      EXPECT_OK(ns_->Unlink(r.cred, s, "own" + tag));
    }
    (void)victim;
    // chmod f.
    SetAttrRequest chmod;
    chmod.mode = 0640;
    EXPECT_EQ(ns_->SetAttr(r.cred, f.ino, chmod).ok(), r.chmod);
    // chown f to someone else.
    SetAttrRequest chown;
    chown.uid = 1000;  // the same owner: only root may even name a uid...
    chown.uid = 7;
    Result<Attr> co = ns_->SetAttr(r.cred, f.ino, chown);
    EXPECT_EQ(co.ok(), r.chown);
    if (co.ok()) {
      chown.uid = 1000;  // give it back
      ASSERT_OK(ns_->SetAttr(root, f.ino, chown));
    }
    // explicit times.
    SetAttrRequest times;
    times.mtime = 1'000'000'000;
    EXPECT_EQ(ns_->SetAttr(r.cred, f.ino, times).ok(), r.times);
  }
  // The owner may change the group to one of its groups only.
  SetAttrRequest grp;
  grp.gid = 1003;
  EXPECT_STATUS(ns_->SetAttr(kOwner, f.ino, grp), NotPermitted);
}

// ---- ACL evaluation and mode interplay -----------------------------------

TEST_P(MetadataTest, AclOrderDecidesDenyBeforeAllowAndTheReverse) {
  InodeId d = MkdirOrFail(ns_->Root(), "d", 0777);
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(kOwner, d, "f", 0666));
  // DENY first: user 1003 may not write, everyone else may.
  ASSERT_OK(ns_->SetAcl(kOwner, f.ino, MustParse("D::1003:wa A::EVERYONE@:rwa")));
  ASSERT_OK_AND_ASSIGN(uint32_t g, ns_->Access(kOther, f.ino, kAceReadData | kAceWriteData));
  EXPECT_EQ(g, kAceReadData);
  ASSERT_OK_AND_ASSIGN(g, ns_->Access(kMember, f.ino, kAceReadData | kAceWriteData));
  EXPECT_EQ(g, kAceReadData | kAceWriteData);
  SetAttrRequest trunc;
  trunc.size = 0;
  EXPECT_STATUS(ns_->SetAttr(kOther, f.ino, trunc), AccessDenied);
  EXPECT_OK(ns_->SetAttr(kMember, f.ino, trunc));
  // ALLOW first: the same entries the other way round let 1003 write.
  ASSERT_OK(ns_->SetAcl(kOwner, f.ino, MustParse("A::EVERYONE@:rwa D::1003:wa")));
  ASSERT_OK_AND_ASSIGN(g, ns_->Access(kOther, f.ino, kAceReadData | kAceWriteData));
  EXPECT_EQ(g, kAceReadData | kAceWriteData);
  EXPECT_OK(ns_->SetAttr(kOther, f.ino, trunc));

  // Directory ACLs decide search, listing, create and delete.
  InodeId e = MkdirOrFail(d, "e", 0777);
  ASSERT_OK(ns_->Create(root_, e, "x", 0644));
  ASSERT_OK(ns_->SetAcl(root_, e, MustParse("D::1003:x A::EVERYONE@:rwaxD")));
  EXPECT_STATUS(ns_->Lookup(kOther, e, "x"), AccessDenied);
  EXPECT_OK(ns_->Lookup(kMember, e, "x"));
  ASSERT_OK(ns_->SetAcl(root_, e, MustParse("A::EVERYONE@:rx A::1003:wD")));
  EXPECT_STATUS(ns_->Create(kMember, e, "y", 0644), AccessDenied);
  EXPECT_OK(ns_->Create(kOther, e, "y", 0644));
  EXPECT_STATUS(ns_->Unlink(kMember, e, "x"), AccessDenied);
  EXPECT_OK(ns_->Unlink(kOther, e, "x"));
  // DELETE on the file itself is enough without DELETE_CHILD (§6.2.1.3.2).
  ASSERT_OK_AND_ASSIGN(Attr z, ns_->Create(root_, e, "z", 0644));
  ASSERT_OK(ns_->SetAcl(root_, z.ino, MustParse("A::1001:d A::EVERYONE@:r")));
  EXPECT_OK(ns_->Unlink(kMember, e, "z"));
}

TEST_P(MetadataTest, ModeIsDerivedFromTheAclAndChmodRewritesIt) {
  InodeId w = MkdirOrFail(ns_->Root(), "w", 0777);
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(kOwner, w, "f", 0600));
  ASSERT_OK_AND_ASSIGN(
      Attr a, ns_->SetAcl(kOwner, f.ino,
                          MustParse("A::OWNER@:rwax A:g:GROUP@:rx A::EVERYONE@:r "
                                    "A::1003:rwa")));
  EXPECT_EQ(a.mode, 0754u);
  EXPECT_TRUE(a.has_acl);
  EXPECT_EQ(GetAttrOrFail(f.ino).mode, 0754u);
  // 1003 writes through its named ACE.
  ASSERT_OK_AND_ASSIGN(uint32_t g, ns_->Access(kOther, f.ino, kAceWriteData));
  EXPECT_EQ(g, kAceWriteData);
  // chmod 0640: OWNER@/GROUP@/EVERYONE@ follow, the named ALLOW is capped
  // by the group class (r only), and the mode read back is 0640.
  SetAttrRequest chmod;
  chmod.mode = 0640;
  ASSERT_OK(ns_->SetAttr(kOwner, f.ino, chmod));
  EXPECT_EQ(GetAttrOrFail(f.ino).mode, 0640u);
  ASSERT_OK_AND_ASSIGN(Acl acl, ns_->GetAcl(kOwner, f.ino));
  EXPECT_EQ(ModeFromAcl(acl), 0640u);
  ASSERT_OK_AND_ASSIGN(g, ns_->Access(kOther, f.ino, kAceReadData | kAceWriteData));
  EXPECT_EQ(g, kAceReadData);
  ASSERT_OK_AND_ASSIGN(g, ns_->Access(kMember, f.ino, kAceReadData | kAceWriteData));
  EXPECT_EQ(g, kAceReadData);
  // Only the owner (or a WRITE_ACL holder) sets the ACL; bad ACLs change
  // nothing.
  EXPECT_STATUS(ns_->SetAcl(kOther, f.ino, MustParse("A::EVERYONE@:rwax")), NotPermitted);
  Acl bad = {Ace{kAceAllow, kAceInheritOnly, kAceReadData, AceWho::kEveryone, 0}};
  EXPECT_STATUS(ns_->SetAcl(kOwner, f.ino, bad), Invalid);
  bad = {Ace{9, 0, kAceReadData, AceWho::kEveryone, 0}};
  EXPECT_STATUS(ns_->SetAcl(kOwner, f.ino, bad), Invalid);
  bad = {Ace{kAceAllow, 0, 0x80000000u, AceWho::kEveryone, 0}};
  EXPECT_STATUS(ns_->SetAcl(kOwner, f.ino, bad), Invalid);
  ASSERT_OK_AND_ASSIGN(Acl after, ns_->GetAcl(kOwner, f.ino));
  EXPECT_EQ(after, acl);
  // An inode without an ACL shows the one its mode stands for; removing
  // the ACL keeps the mode.
  ASSERT_OK_AND_ASSIGN(a, ns_->SetAcl(kOwner, f.ino, {}));
  EXPECT_FALSE(a.has_acl);
  EXPECT_EQ(a.mode, 0640u);
  ASSERT_OK_AND_ASSIGN(after, ns_->GetAcl(kOwner, f.ino));
  EXPECT_EQ(ModeFromAcl(after), 0640u);
}

// Every combination of the four inheritance flags on a directory ACE,
// three levels down, for files and directories (RFC 8881 §6.2.1.4).
TEST_P(MetadataTest, InheritanceThreeLevelsDeepEveryFlagCombination) {
  InodeId top = MkdirOrFail(ns_->Root(), "top", 0755);
  Acl acl;
  std::vector<uint32_t> combos;
  for (uint32_t f = 0; f < 16; ++f) {
    Ace ace{kAceAllow, f, kAceReadData, AceWho::kUser, 5000 + f};
    if (!ValidateAcl({ace}).ok()) continue;  // i or n without f or d
    combos.push_back(f);
    acl.push_back(ace);
  }
  acl.push_back(*ParseAce("A::OWNER@:rwaxDtTcC"));
  ASSERT_OK(ns_->SetAcl(root_, top, acl));
  InodeId l1 = MkdirOrFail(top, "l1");
  InodeId l2 = MkdirOrFail(l1, "l2");
  InodeId l3 = MkdirOrFail(l2, "l3");
  InodeId files[4] = {CreateOrFail(top, "f"), CreateOrFail(l1, "f"),
                      CreateOrFail(l2, "f"), CreateOrFail(l3, "f")};
  const InodeId dirs[3] = {l1, l2, l3};
  // Expected: does user 5000+f get READ_DATA on a directory at depth
  // `depth` (1..3) / a file at depth 0..3 (0 = in top itself)?
  auto expect_dir = [](uint32_t f, int depth) {
    const bool di = f & kAceDirectoryInherit;
    const bool np = f & kAceNoPropagateInherit;
    if (!di) return false;  // only files inherit it
    if (np) return depth == 1;  // stops after one level
    return true;
  };
  auto expect_file = [](uint32_t f, int depth) {
    const bool fi = f & kAceFileInherit, di = f & kAceDirectoryInherit;
    const bool np = f & kAceNoPropagateInherit;
    if (!fi) return false;
    if (depth == 0) return true;
    if (np) return false;  // never reaches a subdirectory's files
    (void)di;
    return true;  // carried down (effective or inherit-only)
  };
  for (uint32_t f : combos) {
    const Credentials user{5000 + f, 5000 + f, {}};
    for (int depth = 1; depth <= 3; ++depth) {
      ASSERT_OK_AND_ASSIGN(uint32_t g, ns_->Access(user, dirs[depth - 1], kAceReadData));
      EXPECT_EQ(g == kAceReadData, expect_dir(f, depth))
          << "flags " << f << " dir depth " << depth;
    }
    for (int depth = 0; depth <= 3; ++depth) {
      ASSERT_OK_AND_ASSIGN(uint32_t g, ns_->Access(user, files[depth], kAceReadData));
      EXPECT_EQ(g == kAceReadData, expect_file(f, depth))
          << "flags " << f << " file depth " << depth;
    }
  }
  // Inherited ACEs are marked, and files carry no inherit flags.
  ASSERT_OK_AND_ASSIGN(Acl fa, ns_->GetAcl(root_, files[3]));
  for (const Ace& a : fa) {
    EXPECT_EQ(a.flags & (kAceFileInherit | kAceDirectoryInherit | kAceInheritOnly), 0u);
  }
  EXPECT_TRUE(GetAttrOrFail(files[3]).has_acl);
  // A directory without an ACL gives nothing to inherit.
  InodeId plain = MkdirOrFail(ns_->Root(), "plain", 0755);
  EXPECT_FALSE(GetAttrOrFail(CreateOrFail(plain, "f")).has_acl);
}

// ---- xattrs ---------------------------------------------------------------

TEST_P(MetadataTest, XattrsSetGetListRemoveWithLimits) {
  InodeId w = MkdirOrFail(ns_->Root(), "w", 0777);
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(kOwner, w, "f", 0644));
  const std::string bin("\0\x01\xff value", 9);
  ASSERT_OK(ns_->SetXattr(kOwner, f.ino, "user.a", bin, XattrMode::kCreate));
  EXPECT_STATUS(ns_->SetXattr(kOwner, f.ino, "user.a", "x", XattrMode::kCreate), Exists);
  EXPECT_STATUS(ns_->SetXattr(kOwner, f.ino, "user.b", "x", XattrMode::kReplace), NotFound);
  ASSERT_OK(ns_->SetXattr(kOwner, f.ino, "user.b", "", XattrMode::kEither));
  ASSERT_OK_AND_ASSIGN(std::string v, ns_->GetXattr(kOther, f.ino, "user.a"));
  EXPECT_EQ(v, bin);
  ASSERT_OK_AND_ASSIGN(auto names, ns_->ListXattrs(kOwner, f.ino));
  ASSERT_EQ(names.size(), 2u);
  EXPECT_EQ(names[0].name, "user.a");
  EXPECT_EQ(names[0].size, bin.size());
  EXPECT_EQ(names[1].name, "user.b");
  // Permissions: r reads, w writes (0644: others read only).
  EXPECT_STATUS(ns_->SetXattr(kOther, f.ino, "user.c", "x"), AccessDenied);
  EXPECT_STATUS(ns_->RemoveXattr(kOther, f.ino, "user.a"), AccessDenied);
  // Limits: nothing changes when refused.
  EXPECT_STATUS(ns_->SetXattr(kOwner, f.ino, std::string(256, 'n'), "x"), NameTooLong);
  EXPECT_STATUS(ns_->SetXattr(kOwner, f.ino, "", "x"), Invalid);
  EXPECT_STATUS(ns_->SetXattr(kOwner, f.ino, std::string("a\0b", 3), "x"), Invalid);
  EXPECT_STATUS(ns_->SetXattr(kOwner, f.ino, "user.big",
                              std::string(kMaxXattrValueBytes + 1, 'v')), TooBig);
  ASSERT_OK(ns_->SetXattr(kOwner, f.ino, "user.max", std::string(kMaxXattrValueBytes, 'v')));
  // Fill up to the per-file total, then one more is refused.
  Status st;
  int i = 0;
  for (; i < 64; ++i) {
    st = ns_->SetXattr(kOwner, f.ino, "user.fill" + std::to_string(i),
                       std::string(kMaxXattrValueBytes, 'f'));
    if (!st.ok()) break;
  }
  EXPECT_TRUE(st.IsNoSpace()) << st.ToString();
  EXPECT_LT(i, 64);
  ASSERT_OK_AND_ASSIGN(names, ns_->ListXattrs(kOwner, f.ino));
  uint64_t total = 0;
  for (const auto& n : names) total += n.name.size() + n.size;
  EXPECT_LE(total, kMaxXattrTotalBytes);
  EXPECT_STATUS(ns_->GetXattr(kOwner, f.ino, "user.big"), NotFound);
  ASSERT_OK(ns_->RemoveXattr(kOwner, f.ino, "user.a"));
  EXPECT_STATUS(ns_->RemoveXattr(kOwner, f.ino, "user.a"), NotFound);
  EXPECT_STATUS(ns_->GetXattr(kOwner, f.ino, "user.a"), NotFound);
}

TEST_P(MetadataTest, ConcurrentXattrWritersOnOneFile) {
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(root_, ns_->Root(), "f", 0666));
  constexpr int kThreads = 6, kPerThread = 40;
  std::atomic<int> failures{0};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread && std::chrono::steady_clock::now() < deadline; ++i) {
        // Every thread rewrites the shared name and adds its own.
        if (!ns_->SetXattr(kOther, f.ino, "user.shared", std::to_string(t)).ok()) ++failures;
        if (!ns_->SetXattr(kOther, f.ino, "user.t" + std::to_string(t) + "." + std::to_string(i),
                           std::string(100, 'a' + t), XattrMode::kCreate).ok()) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_OK_AND_ASSIGN(auto names, ns_->ListXattrs(root_, f.ino));
  EXPECT_EQ(names.size(), static_cast<size_t>(kThreads * kPerThread + 1));
  ASSERT_OK_AND_ASSIGN(std::string v, ns_->GetXattr(root_, f.ino, "user.shared"));
  EXPECT_EQ(v.size(), 1u);
  // Each change bumped the file's change attribute exactly once.
  EXPECT_EQ(GetAttrOrFail(f.ino).change, f.change + 2 * kThreads * kPerThread);
}

// ---- tags -------------------------------------------------------------------

TEST_P(MetadataTest, TagsInheritByReferenceAndCopyOnWrite) {
  InodeId top = MkdirOrFail(ns_->Root(), "top");
  ASSERT_OK(ns_->WriteTag(root_, top, "OSMTemplate", "StoreName tape"));
  ASSERT_OK(ns_->WriteTag(root_, top, "sGroup", "raw"));
  InodeId a = MkdirOrFail(top, "a");
  InodeId b = MkdirOrFail(top, "b");
  InodeId a1 = MkdirOrFail(a, "a1");
  ASSERT_OK_AND_ASSIGN(auto tags, ns_->ListTags(kOther, a1));
  ASSERT_EQ(tags.size(), 2u);
  EXPECT_EQ(tags[0].name, "OSMTemplate");
  EXPECT_FALSE(tags[0].own);
  // Write on a: a gets its own copy; top and b keep theirs.
  ASSERT_OK(ns_->WriteTag(root_, a, "sGroup", "processed"));
  ASSERT_OK_AND_ASSIGN(std::string v, ns_->ReadTag(root_, a, "sGroup"));
  EXPECT_EQ(v, "processed");
  ASSERT_OK_AND_ASSIGN(v, ns_->ReadTag(root_, top, "sGroup"));
  EXPECT_EQ(v, "raw");
  ASSERT_OK_AND_ASSIGN(v, ns_->ReadTag(root_, b, "sGroup"));
  EXPECT_EQ(v, "raw");
  ASSERT_OK_AND_ASSIGN(v, ns_->ReadTag(root_, a, "OSMTemplate"));
  EXPECT_EQ(v, "StoreName tape");
  // a1 was made before a diverged: it still sees top's set.
  ASSERT_OK_AND_ASSIGN(v, ns_->ReadTag(root_, a1, "sGroup"));
  EXPECT_EQ(v, "raw");
  // Remove on b: copy-on-write too.
  ASSERT_OK(ns_->RemoveTag(root_, b, "sGroup"));
  EXPECT_STATUS(ns_->ReadTag(root_, b, "sGroup"), NotFound);
  EXPECT_OK(ns_->ReadTag(root_, top, "sGroup"));
  EXPECT_STATUS(ns_->RemoveTag(root_, b, "sGroup"), NotFound);
  // pushtag: the whole subtree sees the new value, siblings of top not.
  InodeId other = MkdirOrFail(ns_->Root(), "other");
  ASSERT_OK(ns_->WriteTag(root_, other, "sGroup", "untouched"));
  ASSERT_OK_AND_ASSIGN(uint64_t n, ns_->PushTag(root_, top, "sGroup", "pushed"));
  EXPECT_EQ(n, 4u);
  for (InodeId d : {top, a, b, a1}) {
    ASSERT_OK_AND_ASSIGN(v, ns_->ReadTag(kOther, d, "sGroup"));
    EXPECT_EQ(v, "pushed");
  }
  ASSERT_OK_AND_ASSIGN(v, ns_->ReadTag(root_, other, "sGroup"));
  EXPECT_EQ(v, "untouched");
  EXPECT_STATUS(ns_->PushTag(kOwner, top, "x", "y"), NotPermitted);
  // Bad input changes nothing.
  EXPECT_STATUS(ns_->WriteTag(root_, top, "", "v"), Invalid);
  EXPECT_STATUS(ns_->WriteTag(root_, top, "a/b", "v"), Invalid);
  EXPECT_STATUS(ns_->WriteTag(root_, top, std::string(256, 't'), "v"), NameTooLong);
  EXPECT_STATUS(ns_->WriteTag(root_, top, "t", std::string(kMaxTagValueBytes + 1, 'v')), TooBig);
  EXPECT_STATUS(ns_->WriteTag(kOther, top, "t", "v"), NotPermitted);
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(root_, top, "file", 0644));
  EXPECT_STATUS(ns_->WriteTag(root_, f.ino, "t", "v"), NotDir);
  ASSERT_OK_AND_ASSIGN(tags, ns_->ListTags(root_, top));
  EXPECT_EQ(tags.size(), 2u);
}

// 10,000 directories share one tag by reference; writing it on one of them
// changes that one only, and no shared row was written by the mkdirs.
TEST_P(MetadataTest, TagCopyOnWriteUnderTenThousandDirectories) {
  InodeId top = MkdirOrFail(ns_->Root(), "top");
  ASSERT_OK(ns_->WriteTag(root_, top, "sGroup", "shared"));
  constexpr int kDirs = 10000;
  std::vector<InodeId> dirs(kDirs);
  std::atomic<int> next{0};
  std::atomic<int> failures{0};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(400);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i; (i = next++) < kDirs && std::chrono::steady_clock::now() < deadline;) {
        Result<Attr> d = ns_->Mkdir(root_, top, "d" + std::to_string(i), 0755);
        if (d.ok()) {
          dirs[i] = d->ino;
        } else {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(failures.load(), 0);
  ASSERT_GE(next.load(), kDirs) << "deadline hit";
  ASSERT_OK(ns_->WriteTag(root_, dirs[4321], "sGroup", "mine"));
  std::string error;
  std::unique_ptr<RawDb> db = RawDb::Open(uri_, &error);
  ASSERT_TRUE(db) << error;
  // Two sets exist (top's and d4321's): nothing was copied for the others.
  std::vector<int64_t> sets = db->QueryInts("SELECT count(DISTINCT origin) FROM tags", &error);
  ASSERT_EQ(sets.size(), 1u) << error;
  EXPECT_EQ(sets[0], 2);
  std::vector<int64_t> refs =
      db->QueryInts("SELECT count(*) FROM dir_tags WHERE origin = " + std::to_string(top), &error);
  ASSERT_EQ(refs.size(), 1u) << error;
  EXPECT_EQ(refs[0], kDirs);  // top itself + 9,999 others
  for (int i : {0, 4320, 4322, kDirs - 1}) {
    ASSERT_OK_AND_ASSIGN(std::string v, ns_->ReadTag(root_, dirs[i], "sGroup"));
    EXPECT_EQ(v, "shared");
  }
  ASSERT_OK_AND_ASSIGN(std::string v, ns_->ReadTag(root_, dirs[4321], "sGroup"));
  EXPECT_EQ(v, "mine");
  ASSERT_OK_AND_ASSIGN(v, ns_->ReadTag(root_, top, "sGroup"));
  EXPECT_EQ(v, "shared");
  // rmdir releases references; the own set goes with its owner.
  ASSERT_OK(ns_->Rmdir(root_, top, "d4321"));
  ASSERT_OK(ns_->Rmdir(root_, top, "d0"));
  sets = db->QueryInts("SELECT count(DISTINCT origin) FROM tags", &error);
  EXPECT_EQ(sets[0], 1);
  refs = db->QueryInts("SELECT count(*) FROM dir_tags", &error);
  EXPECT_EQ(refs[0], kDirs - 2 + 1);
}

TEST_P(MetadataTest, TagSetOutlivesItsOwnerWhileReferenced) {
  InodeId a = MkdirOrFail(ns_->Root(), "a");
  ASSERT_OK(ns_->WriteTag(root_, a, "t", "v"));
  InodeId sub = MkdirOrFail(a, "sub");
  // Move sub out, remove a: sub still sees a's set.
  ASSERT_OK(ns_->Rename(root_, a, "sub", ns_->Root(), "sub"));
  ASSERT_OK(ns_->Rmdir(root_, ns_->Root(), "a"));
  ASSERT_OK_AND_ASSIGN(std::string v, ns_->ReadTag(root_, sub, "t"));
  EXPECT_EQ(v, "v");
  ASSERT_OK(ns_->Rmdir(root_, ns_->Root(), "sub"));
  std::string error;
  auto db = RawDb::Open(uri_, &error);
  ASSERT_TRUE(db) << error;
  // The last referrer took the set with it: nothing left to collect.
  EXPECT_EQ(db->QueryInts("SELECT count(*) FROM tags", &error)[0], 0);
  ASSERT_OK_AND_ASSIGN(uint64_t collected, ns_->CollectTags());
  EXPECT_EQ(collected, 0u);
  // A set left behind (as two concurrent rmdirs can leave one) is
  // collected later, and only that one.
  InodeId b = MkdirOrFail(ns_->Root(), "b");
  InodeId c = MkdirOrFail(ns_->Root(), "c");
  ASSERT_OK(ns_->WriteTag(root_, b, "t", "b"));
  ASSERT_OK(ns_->WriteTag(root_, c, "t", "c"));
  ASSERT_TRUE(db->Exec("DELETE FROM dir_tags WHERE ino = " + std::to_string(b), &error))
      << error;
  ASSERT_OK_AND_ASSIGN(collected, ns_->CollectTags());
  EXPECT_EQ(collected, 1u);
  EXPECT_EQ(db->QueryInts("SELECT count(*) FROM tags", &error)[0], 1);
  ASSERT_OK_AND_ASSIGN(std::string cv, ns_->ReadTag(root_, c, "t"));
  EXPECT_EQ(cv, "c");
}

// ---- checksums, locations, cleanup -------------------------------------------

TEST_P(MetadataTest, ChecksumsAndLocationsGoWithTheInode) {
  InodeId w = MkdirOrFail(ns_->Root(), "w", 0777);
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(kOwner, w, "f", 0644));
  const std::string adler = ComputeChecksum(ChecksumType::kAdler32, "data");
  const std::string sha = ComputeChecksum(ChecksumType::kSha256, "data");
  ASSERT_OK(ns_->SetChecksum(kOwner, f.ino, {ChecksumType::kSha256, sha}));
  ASSERT_OK(ns_->SetChecksum(kOwner, f.ino, {ChecksumType::kAdler32, adler}));
  ASSERT_OK(ns_->SetChecksum(kOwner, f.ino,
                             {ChecksumType::kMd5, ComputeChecksum(ChecksumType::kMd5, "data")}));
  ASSERT_OK(ns_->SetChecksum(kOwner, f.ino,
                             {ChecksumType::kSha1, ComputeChecksum(ChecksumType::kSha1, "data")}));
  ASSERT_OK_AND_ASSIGN(auto sums, ns_->GetChecksums(kOther, f.ino));
  ASSERT_EQ(sums.size(), 4u);
  EXPECT_EQ(sums[0].type, ChecksumType::kAdler32);
  EXPECT_EQ(sums[0].value, adler);
  EXPECT_EQ(sums[3].value, sha);
  // Bad input: wrong length, not hex, unknown type, not the owner.
  EXPECT_STATUS(ns_->SetChecksum(kOwner, f.ino, {ChecksumType::kAdler32, "123"}), Invalid);
  EXPECT_STATUS(ns_->SetChecksum(kOwner, f.ino, {ChecksumType::kAdler32, "1234567g"}), Invalid);
  EXPECT_STATUS(ns_->SetChecksum(kOwner, f.ino, {static_cast<ChecksumType>(77), "00"}), Invalid);
  EXPECT_STATUS(ns_->SetChecksum(kOther, f.ino, {ChecksumType::kAdler32, adler}), NotPermitted);
  ASSERT_OK(ns_->RemoveChecksum(kOwner, f.ino, ChecksumType::kMd5));
  EXPECT_STATUS(ns_->RemoveChecksum(kOwner, f.ino, ChecksumType::kMd5), NotFound);
  ASSERT_OK_AND_ASSIGN(sums, ns_->GetChecksums(kOwner, f.ino));
  EXPECT_EQ(sums.size(), 3u);
  EXPECT_STATUS(ns_->GetChecksums(root_, ns_->Root()), Invalid);

  ASSERT_OK(ns_->AddLocation(kOwner, f.ino, LocationType::kStripe, "ds://dev1/0/fh1"));
  ASSERT_OK(ns_->AddLocation(kOwner, f.ino, LocationType::kStripe, "ds://dev2/1/fh2"));
  ASSERT_OK(ns_->AddLocation(kOwner, f.ino, LocationType::kExternal, "osm://tape/42"));
  EXPECT_STATUS(ns_->AddLocation(kOwner, f.ino, LocationType::kExternal, "osm://tape/42"), Exists);
  EXPECT_STATUS(ns_->AddLocation(kOwner, f.ino, LocationType::kExternal, ""), Invalid);
  ASSERT_OK_AND_ASSIGN(auto locs, ns_->GetLocations(kOther, f.ino));
  ASSERT_EQ(locs.size(), 3u);
  EXPECT_EQ(locs[0].location, "ds://dev1/0/fh1");
  EXPECT_EQ(locs[2].type, LocationType::kExternal);
  ASSERT_OK(ns_->RemoveLocation(kOwner, f.ino, LocationType::kStripe, "ds://dev2/1/fh2"));
  EXPECT_STATUS(ns_->RemoveLocation(kOwner, f.ino, LocationType::kStripe, "ds://dev2/1/fh2"),
                NotFound);

  ASSERT_OK(ns_->SetXattr(kOwner, f.ino, "user.x", "y"));
  ASSERT_OK(ns_->SetAcl(kOwner, f.ino, MustParse("A::OWNER@:rwa A::EVERYONE@:r")));
  ASSERT_OK(ns_->Unlink(kOwner, w, "f"));
  std::string error;
  auto db = RawDb::Open(uri_, &error);
  ASSERT_TRUE(db) << error;
  for (const char* table : {"aces", "xattrs", "checksums", "locations"}) {
    std::vector<int64_t> n = db->QueryInts(
        std::string("SELECT count(*) FROM ") + table + " WHERE ino = " + std::to_string(f.ino),
        &error);
    ASSERT_EQ(n.size(), 1u) << error;
    EXPECT_EQ(n[0], 0) << table;
  }
}

TEST_P(MetadataTest, BadInputChangesNothing) {
  InodeId d = MkdirOrFail(ns_->Root(), "d");
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(root_, d, "f", 0644));
  ASSERT_OK(ns_->WriteTag(root_, d, "t", "v"));
  ASSERT_OK_AND_ASSIGN(std::string before, Snapshot(*ns_));
  Acl too_many(kMaxAces + 1, Ace{kAceAllow, 0, kAceReadData, AceWho::kEveryone, 0});
  EXPECT_STATUS(ns_->SetAcl(root_, f.ino, too_many), Invalid);
  Acl id_on_special = {Ace{kAceAllow, 0, kAceReadData, AceWho::kOwner, 5}};
  EXPECT_STATUS(ns_->SetAcl(root_, f.ino, id_on_special), Invalid);
  Acl group_without_flag = {Ace{kAceAllow, 0, kAceReadData, AceWho::kNamedGroup, 5}};
  EXPECT_STATUS(ns_->SetAcl(root_, f.ino, group_without_flag), Invalid);
  EXPECT_STATUS(ns_->SetXattr(root_, f.ino, "user.v", std::string(kMaxXattrValueBytes + 1, 'x')),
                TooBig);
  EXPECT_STATUS(ns_->WriteTag(root_, d, "..", "v"), Invalid);
  EXPECT_STATUS(ns_->SetChecksum(root_, f.ino, {ChecksumType::kSha256, "abc"}), Invalid);
  EXPECT_STATUS(ns_->SetAcl(root_, 999999, {}), Stale);
  EXPECT_STATUS(ns_->Access(root_, 0, kAceReadData), Stale);
  ASSERT_OK_AND_ASSIGN(std::string after, Snapshot(*ns_));
  EXPECT_EQ(before, after);
  ASSERT_OK_AND_ASSIGN(auto names, ns_->ListXattrs(root_, f.ino));
  EXPECT_TRUE(names.empty());
  EXPECT_FALSE(GetAttrOrFail(f.ino).has_acl);
}

INSTANTIATE_TEST_SUITE_P(Backends, MetadataTest, ::testing::ValuesIn(DialectsWithPartitions()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace ns::testing
