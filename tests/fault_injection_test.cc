// Fault injection through BackendWrapper: a write transaction that fails at
// any of its steps leaves nothing half-done, the error reaches the caller
// unchanged, and a transient conflict (Retry) is retried invisibly.

#include <functional>
#include <string>
#include <vector>

#include "libnamespace/include/namespace/schema.h"
#include "libnamespace/src/backend.h"
#include "tests/test_util.h"

namespace ns::testing {
namespace {

// Which call fails and how.
struct FaultPlan {
  int fail_at = 0;  // the n-th mutating call of a write transaction (0: none)
  Status status;    // what that call returns instead of doing its work
  bool once = true; // disarm after firing (else every attempt fails)
  int fired = 0;
  int calls = 0;    // mutating calls in the current attempt
  Status read_status;  // if not OK, the next Read fails with it (once)
};

// Forwards to the real transaction; mutating calls may fail per the plan.
class FaultTxn : public Transaction {
 public:
  FaultTxn(Transaction& t, FaultPlan& plan) : t_(t), plan_(plan) {}

  Result<Attr> GetInode(InodeId ino, LockMode lock) override { return t_.GetInode(ino, lock); }
  Result<std::pair<Attr, std::optional<Attr>>> LookupWithParent(
      InodeId parent, std::string_view name) override {
    return t_.LookupWithParent(parent, name);
  }
  Result<InodeId> InsertInode(const Attr& attr) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.InsertInode(attr);
  }
  Status UpdateInode(const Attr& attr) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.UpdateInode(attr);
  }
  Status DeleteInode(InodeId ino) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.DeleteInode(ino);
  }
  Result<std::optional<EntryRow>> LookupEntry(InodeId parent, std::string_view name) override {
    return t_.LookupEntry(parent, name);
  }
  Status InsertEntry(InodeId parent, std::string_view name, InodeId child,
                     FileType type) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.InsertEntry(parent, name, child, type);
  }
  Status DeleteEntry(InodeId parent, std::string_view name) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.DeleteEntry(parent, name);
  }
  Result<bool> HasEntries(InodeId dir) override { return t_.HasEntries(dir); }
  Result<std::vector<DirEntry>> ListEntries(InodeId dir, uint64_t after_cookie, uint32_t limit,
                                            bool with_attrs) override {
    return t_.ListEntries(dir, after_cookie, limit, with_attrs);
  }
  Result<std::optional<Attr>> DirChanged(InodeId dir, int nlink_delta,
                                         TimeNs now) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.DirChanged(dir, nlink_delta, now);
  }
  Status InsertSymlink(InodeId ino, std::string_view target) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.InsertSymlink(ino, target);
  }
  Result<std::string> ReadSymlink(InodeId ino) override { return t_.ReadSymlink(ino); }
  Status AddOrphan(InodeId ino, TimeNs now) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.AddOrphan(ino, now);
  }
  Result<std::vector<SqlRow>> Query(std::string_view sql,
                                    std::span<const int64_t> params) override {
    return t_.Query(sql, params);
  }
  Status RemoveOrphan(InodeId ino) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.RemoveOrphan(ino);
  }
  Status LockTopology() override { return t_.LockTopology(); }
  Result<FsStats> Stats() override { return t_.Stats(); }
  Result<Acl> GetAcl(InodeId ino) override { return t_.GetAcl(ino); }
  Status SetAcl(InodeId ino, const Acl& acl) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.SetAcl(ino, acl);
  }
  Result<std::optional<std::string>> GetXattr(InodeId ino, std::string_view name) override {
    return t_.GetXattr(ino, name);
  }
  Result<std::vector<XattrName>> ListXattrs(InodeId ino) override { return t_.ListXattrs(ino); }
  Status PutXattr(InodeId ino, std::string_view name, std::string_view value) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.PutXattr(ino, name, value);
  }
  Result<bool> DeleteXattr(InodeId ino, std::string_view name) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.DeleteXattr(ino, name);
  }
  Result<std::optional<InodeId>> GetTagOrigin(InodeId ino) override { return t_.GetTagOrigin(ino); }
  Status SetTagOrigin(InodeId ino, InodeId origin) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.SetTagOrigin(ino, origin);
  }
  Status InheritTags(InodeId child, InodeId parent) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.InheritTags(child, parent);
  }
  Result<std::vector<Tag>> ListTags(InodeId origin) override { return t_.ListTags(origin); }
  Status CopyTags(InodeId from, InodeId to) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.CopyTags(from, to);
  }
  Status PutTag(InodeId origin, std::string_view name, std::string_view value) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.PutTag(origin, name, value);
  }
  Result<bool> DeleteTag(InodeId origin, std::string_view name) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.DeleteTag(origin, name);
  }
  Result<uint64_t> CollectTags() override { return t_.CollectTags(); }
  Result<std::vector<Checksum>> ListChecksums(InodeId ino) override {
    return t_.ListChecksums(ino);
  }
  Status PutChecksum(InodeId ino, const Checksum& c) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.PutChecksum(ino, c);
  }
  Result<bool> DeleteChecksum(InodeId ino, ChecksumType type) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.DeleteChecksum(ino, type);
  }
  Result<std::vector<Location>> ListLocations(InodeId ino) override {
    return t_.ListLocations(ino);
  }
  Status AddLocation(InodeId ino, const Location& l) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.AddLocation(ino, l);
  }
  Result<bool> DeleteLocation(InodeId ino, LocationType type,
                              std::string_view location) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.DeleteLocation(ino, type, location);
  }
  Result<std::optional<std::string>> GetInlineData(InodeId ino) override {
    return t_.GetInlineData(ino);
  }
  Status PutInlineData(InodeId ino, std::string_view bytes) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.PutInlineData(ino, bytes);
  }
  Result<bool> DeleteInlineData(InodeId ino) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.DeleteInlineData(ino);
  }
  Result<bool> HasLayout(InodeId ino) override { return t_.HasLayout(ino); }
  Result<GraceRow> GetGrace() override { return t_.GetGrace(); }
  Status PutGrace(const GraceRow& row) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.PutGrace(row);
  }
  Result<ClientRecord> GetClientRecord(std::string_view owner) override {
    return t_.GetClientRecord(owner);
  }
  Result<std::vector<ClientRecord>> ListClientRecords() override {
    return t_.ListClientRecords();
  }
  Status PutClientRecord(const ClientRecord& rec) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.PutClientRecord(rec);
  }
  Status DeleteClientRecord(std::string_view owner) override {
    NS_RETURN_IF_ERROR(Inject());
    return t_.DeleteClientRecord(owner);
  }

 private:
  Status Inject() {
    if (++plan_.calls != plan_.fail_at) return Status::Ok();
    ++plan_.fired;
    if (plan_.once) plan_.fail_at = 0;
    return plan_.status;
  }
  Transaction& t_;
  FaultPlan& plan_;
};

class FaultBackend : public BackendWrapper {
 public:
  using BackendWrapper::BackendWrapper;
  Status Write(const TxnFn& fn) override {
    return BackendWrapper::Write([&](Transaction& t) -> Status {
      plan.calls = 0;
      FaultTxn ft(t, plan);
      return fn(ft);
    });
  }
  Status Read(const TxnFn& fn) override {
    if (!plan.read_status.ok()) {
      Status s = plan.read_status;
      plan.read_status = Status::Ok();
      ++plan.fired;
      return s;
    }
    return BackendWrapper::Read(fn);
  }
  FaultPlan plan;
};

class FaultInjectionTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    uri_ = FreshUri(GetParam());
    ASSERT_FALSE(uri_.empty());
    {
      Result<std::unique_ptr<Namespace>> created = Namespace::Open(uri_, TestOptions());
      ASSERT_TRUE(created.ok()) << created.status().ToString();
    }
    Result<std::unique_ptr<Backend>> be = OpenBackend(uri_, TestOptions());
    ASSERT_TRUE(be.ok()) << be.status().ToString();
    auto fb = std::make_unique<FaultBackend>(std::move(be).value());
    ASSERT_OK_AND_ASSIGN(int version, fb->SchemaVersion());
    ASSERT_EQ(version, LatestSchemaVersion());
    ASSERT_OK(fb->Start());
    fault_ = fb.get();
    ns_ = std::make_unique<Namespace>(std::move(fb));
  }

  InodeId Ino(InodeId dir, const std::string& name) {
    Result<Attr> a = ns_->Lookup(root_, dir, name);
    return a.ok() ? a->ino : 987654321;
  }

  std::string uri_;
  std::unique_ptr<Namespace> ns_;
  FaultBackend* fault_ = nullptr;
  const Credentials root_ = Credentials::Root();
};

TEST_P(FaultInjectionTest, AFailingStepLeavesNothingHalfDone) {
  ASSERT_OK_AND_ASSIGN(Attr d, ns_->Mkdir(root_, ns_->Root(), "d", 0755));
  ASSERT_OK_AND_ASSIGN(Attr e, ns_->Mkdir(root_, ns_->Root(), "e", 0755));
  Namespace& ns = *ns_;
  const Credentials root = root_;
  InodeId orphan = 0;
  UnlinkOptions retain;
  retain.retain_if_last = true;
  // Applied in order, each to the tree the previous ones left.
  const std::vector<std::pair<std::string, std::function<Status()>>> ops = {
      {"create", [&] { return ns.Create(root, d.ino, "f", 0644).status(); }},
      {"mkdir", [&] { return ns.Mkdir(root, d.ino, "sub", 0755).status(); }},
      {"symlink", [&] { return ns.Symlink(root, d.ino, "l", "f").status(); }},
      {"mknod", [&] { return ns.Mknod(root, d.ino, "p", FileType::kFifo, 0644).status(); }},
      {"link", [&] { return ns.Link(root, Ino(d.ino, "f"), e.ino, "f2").status(); }},
      {"truncate", [&] {
         SetAttrRequest r;
         r.size = 4096;
         return ns.SetAttr(root, Ino(d.ino, "f"), r).status();
       }},
      {"rename across", [&] { return ns.Rename(root, d.ino, "f", e.ino, "g").status(); }},
      {"create victim", [&] { return ns.Create(root, e.ino, "victim", 0644).status(); }},
      {"rename over file", [&] { return ns.Rename(root, e.ino, "g", e.ino, "victim").status(); }},
      {"rename dir across", [&] { return ns.Rename(root, d.ino, "sub", e.ino, "sub").status(); }},
      {"mkdir empty", [&] { return ns.Mkdir(root, d.ino, "empty", 0755).status(); }},
      {"rename dir over empty dir", [&] {
         return ns.Rename(root, e.ino, "sub", d.ino, "empty").status();
       }},
      {"rename symlink over fifo", [&] { return ns.Rename(root, d.ino, "l", d.ino, "p").status(); }},
      {"unlink not last", [&] { return ns.Unlink(root, e.ino, "f2").status(); }},
      {"unlink last", [&] { return ns.Unlink(root, e.ino, "victim").status(); }},
      {"rmdir", [&] { return ns.Rmdir(root, d.ino, "empty"); }},
      {"create h", [&] {
         Result<Attr> a = ns.Create(root, d.ino, "h", 0644);
         if (a.ok()) orphan = a->ino;
         return a.status();
       }},
      {"unlink retain", [&] { return ns.Unlink(root, d.ino, "h", retain).status(); }},
      {"release orphan", [&] { return ns.ReleaseOrphan(orphan); }},
  };
  for (const auto& [what, op] : ops) {
    SCOPED_TRACE(what);
    bool done = false;
    for (int k = 1; k <= 40 && !done; ++k) {
      ASSERT_OK_AND_ASSIGN(std::string before, Snapshot(*ns_));
      fault_->plan = FaultPlan{};
      fault_->plan.fail_at = k;
      fault_->plan.status = Status::IOError("injected fault", "step " + std::to_string(k));
      fault_->plan.once = false;
      Status s = op();
      const int fired = fault_->plan.fired;
      fault_->plan = FaultPlan{};
      if (fired == 0) {
        // Fewer than k mutating steps: the operation ran through.
        ASSERT_TRUE(s.ok()) << "without a fault: " << s.ToString();
        EXPECT_GT(k, 1) << "the operation wrote nothing";
        done = true;
        break;
      }
      EXPECT_TRUE(s.IsIOError()) << "step " << k << ": "
                                 << (s.ok() ? std::string("OK") : s.ToString());
      EXPECT_NE(s.ToString().find("injected fault"), std::string::npos)
          << "the error should reach the caller as it was: " << s.ToString();
      ASSERT_OK_AND_ASSIGN(std::string after, Snapshot(*ns_));
      EXPECT_EQ(before, after) << "a failure at step " << k << " left changes behind";
    }
    ASSERT_TRUE(done) << "did not finish within 40 steps";
  }
  EXPECT_STATUS(ns_->GetAttr(root_, orphan), Stale);
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> dn, ListNames(*ns_, d.ino));
  EXPECT_EQ(dn, std::vector<std::string>{"p"});
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> en, ListNames(*ns_, e.ino));
  EXPECT_TRUE(en.empty());
  ASSERT_OK_AND_ASSIGN(FsStats st, ns_->StatFs(root_));
  EXPECT_EQ(st.files, 4u);  // root, d, e, d/p (the symlink l)
}

TEST_P(FaultInjectionTest, TransientConflictsAreRetriedInvisibly) {
  ASSERT_OK_AND_ASSIGN(Attr d, ns_->Mkdir(root_, ns_->Root(), "d", 0755));
  for (int k = 1; k <= 3; ++k) {
    SCOPED_TRACE("retry at step " + std::to_string(k));
    const std::string name = "f" + std::to_string(k);
    ASSERT_OK_AND_ASSIGN(FsStats s0, ns_->StatFs(root_));
    ASSERT_OK_AND_ASSIGN(Attr d0, ns_->GetAttr(root_, d.ino));
    fault_->plan = FaultPlan{};
    fault_->plan.fail_at = k;
    fault_->plan.status = Status::Retry("injected conflict", "40001");
    Result<Attr> f = ns_->Create(root_, d.ino, name, 0644);
    const int fired = fault_->plan.fired;
    fault_->plan = FaultPlan{};
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    EXPECT_EQ(fired, 1);
    ASSERT_OK_AND_ASSIGN(FsStats s1, ns_->StatFs(root_));
    EXPECT_EQ(s1.files, s0.files + 1) << "the retried attempt left an inode behind";
    ASSERT_OK_AND_ASSIGN(Attr d1, ns_->GetAttr(root_, d.ino));
    EXPECT_EQ(d1.change, d0.change + 1) << "the directory counted the change twice";
  }
  // Link, rename and unlink too.
  const InodeId f1 = Ino(d.ino, "f1");
  const std::vector<std::pair<std::string, std::function<Status()>>> ops = {
      {"link", [&] { return ns_->Link(root_, f1, d.ino, "l").status(); }},
      {"rename", [&] { return ns_->Rename(root_, d.ino, "l", ns_->Root(), "m").status(); }},
      {"unlink", [&] { return ns_->Unlink(root_, ns_->Root(), "m").status(); }},
  };
  uint32_t want_nlink[] = {2, 2, 1};
  int i = 0;
  for (const auto& [what, op] : ops) {
    SCOPED_TRACE(what);
    fault_->plan = FaultPlan{};
    fault_->plan.fail_at = 1;
    fault_->plan.status = Status::Retry("injected conflict", "40P01");
    Status s = op();
    EXPECT_EQ(fault_->plan.fired, 1);
    fault_->plan = FaultPlan{};
    EXPECT_TRUE(s.ok()) << s.ToString();
    Result<Attr> fa = ns_->GetAttr(root_, f1);
    ASSERT_TRUE(fa.ok()) << fa.status().ToString();
    EXPECT_EQ(fa->nlink, want_nlink[i++]);
  }
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, ListNames(*ns_, d.ino));
  EXPECT_EQ(names, (std::vector<std::string>{"f1", "f2", "f3"}));
}

TEST_P(FaultInjectionTest, ReadErrorsReachTheCallerUnchanged) {
  ASSERT_OK(ns_->Create(root_, ns_->Root(), "f", 0644));
  fault_->plan.read_status = Status::IOError("injected read fault");
  Result<Attr> r = ns_->Lookup(root_, ns_->Root(), "f");
  EXPECT_STATUS(r, IOError);
  EXPECT_NE(r.status().ToString().find("injected read fault"), std::string::npos);
  fault_->plan.read_status = Status::Unavailable("injected outage");
  EXPECT_STATUS(ns_->GetAttr(root_, ns_->Root()), Unavailable);
  // The next calls work again.
  EXPECT_OK(ns_->Lookup(root_, ns_->Root(), "f"));
  EXPECT_OK(ns_->GetAttr(root_, ns_->Root()));
}

INSTANTIATE_TEST_SUITE_P(Backends, FaultInjectionTest, ::testing::ValuesIn(Dialects()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace ns::testing
