// SqliteBackend's group commit, run by whichever caller leads (described
// atop sqlite_backend.cc: BEGIN IMMEDIATE, one SAVEPOINT per caller, one
// COMMIT).

#include <linux/futex.h>
#include <sqlite3.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <string_view>
#include <utility>
#include <vector>

#include "libnamespace/src/sqlite_backend_internal.h"
#include "libnamespace/src/sqlite_errors.h"

namespace ns {
namespace sqlite_internal {

namespace {

// The backends whose transaction functions this thread is running as leader,
// innermost first (a function may write to another backend, which this
// thread may then lead too). On the leader's stack.
struct LeaderMark {
  const void* backend;
  const LeaderMark* outer;
};
thread_local const LeaderMark* t_leading = nullptr;

}  // namespace

bool SqliteBackend::LeadingHere() const {
  for (const LeaderMark* m = t_leading; m != nullptr; m = m->outer) {
    if (m->backend == this) return true;
  }
  return false;
}

Status SqliteBackend::Submit(Request* request) {
  if (defer_sync_ && SyncHasFailed()) {
    return SyncFailed();
  }
  bool lead = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      return Status::Unavailable("the SQLite backend is shutting down");
    }
    queue_.push_back(request);  // may throw: then nothing was queued
    if (!leader_active_) {
      leader_active_ = true;
      lead = true;
    } else if (leader_waiting_) {
      more_cv_.notify_one();
    }
  }
  if (!lead) {
    // Answered, or made leader by the leader before us.
    lead = Await(request) == kLead;
  }
  if (lead) Lead(request);
  return std::move(request->status);
}

void SqliteBackend::Lead(Request* own) noexcept {
  const LeaderMark mark{this, t_leading};
  t_leading = &mark;
  // Only this thread answers `own` now, so a relaxed load sees it.
  while (own->state.load(std::memory_order_relaxed) != kAnswered) {
    Request* job = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // Not empty: `own` stays queued until a group or job takes it, and
      // everything taken is answered before the next turn of this loop.
      if (queue_.front()->job) {
        job = queue_.front();
        queue_.pop_front();
      } else {
        while (!queue_.empty() && batch_.size() < kMaxGroup &&
               !queue_.front()->job) {
          batch_.push_back(queue_.front());  // capacity reserved: no throw
          queue_.pop_front();
        }
      }
    }
    if (job != nullptr) {
      RunJob(job);
    } else {
      RunGroup();
    }
    batch_.clear();
  }
  t_leading = mark.outer;
  Request* next = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.empty()) {
      leader_active_ = false;
      // Under the lock: once it is released the destructor may return.
      if (stopping_) idle_cv_.notify_all();
      return;
    }
    // Its caller is blocked in Submit; waking exactly it (not the whole
    // queue) keeps one thread running the group commit.
    next = queue_.front();
  }
  // Outside mu_: the woken caller may need it at once. `next` stays queued
  // (and so alive) until a group it leads takes it.
  Signal(next, kLead);
}

// The futex calls below take the atomic's address as the kernel's int.
static_assert(sizeof(std::atomic<int>) == sizeof(int) &&
              std::atomic<int>::is_always_lock_free);

int SqliteBackend::Await(Request* r) noexcept {
  int state = r->state.load(std::memory_order_acquire);
  while (state == kWaiting || state == kSleeping) {
    if (state == kWaiting &&
        !r->state.compare_exchange_strong(state, kSleeping,
                                          std::memory_order_acquire)) {
      continue;  // answered meanwhile: `state` holds the answer
    }
    // Returns at once if the state is no longer kSleeping; EINTR and
    // spurious wake-ups just go round again.
    syscall(SYS_futex, reinterpret_cast<int*>(&r->state), FUTEX_WAIT_PRIVATE,
            kSleeping, nullptr, nullptr, 0);
    state = r->state.load(std::memory_order_acquire);
  }
  return state;
}

void SqliteBackend::Signal(Request* r, int state) noexcept {
  if (r->state.exchange(state, std::memory_order_acq_rel) == kSleeping) {
    syscall(SYS_futex, reinterpret_cast<int*>(&r->state), FUTEX_WAKE_PRIVATE,
            1, nullptr, nullptr, 0);
  }
}

void SqliteBackend::RunJob(Request* request) {
  Status status;
  try {
    status = request->job(*writer_);
  } catch (...) {
    writer_->RollbackQuietly();
    status = Status::IOError("sqlite writer job", ExceptionText());
  }
  if (defer_sync_ && status.ok()) request->ticket = NoteCommitForSync();
  Complete(request, std::move(status));
}

void SqliteBackend::RunGroup() {
  std::vector<Request*>& pending = batch_;
  std::vector<Status>& results = results_;
  try {
    Backoff backoff;
    while (!pending.empty()) {
      results.assign(pending.size(), Status::Ok());  // capacity reserved
      GroupOutcome outcome = CommitGroup(pending, results);
      if (outcome.status.ok()) {
        NoteCommitted(pending.size());
        const uint64_t ticket = defer_sync_ ? NoteCommitForSync() : 0;
        for (Request* r : pending) r->ticket = ticket;
        // Answer everyone whose function did not ask to be re-run; keep
        // the others (in place: no allocation) for the next round.
        size_t kept = 0;
        for (size_t i = 0; i < pending.size(); ++i) {
          if (results[i].IsRetry()) {
            pending[kept++] = pending[i];
          } else {
            Complete(pending[i], std::move(results[i]));
          }
        }
        pending.resize(kept);
        if (!pending.empty() && !backoff.Wait()) {
          FailAll(pending, GaveUp("sqlite Write"));
        }
      } else if (outcome.culprit.has_value() && !outcome.status.IsRetry()) {
        // SQLite abandoned the transaction because of one function's
        // statement: that caller gets the error, the rest run again in a
        // new transaction (their functions are re-runnable).
        const size_t culprit = *outcome.culprit;
        Complete(pending[culprit], std::move(outcome.status));
        pending.erase(pending.begin() + static_cast<ptrdiff_t>(culprit));
      } else if (outcome.status.IsRetry()) {
        // BEGIN or COMMIT met another process's lock: run the whole
        // group again.
        if (!backoff.Wait()) FailAll(pending, GaveUp("sqlite Write"));
      } else {
        // BEGIN or COMMIT failed for good (disk full, I/O error): nothing
        // was committed for anyone.
        FailAll(pending, outcome.status);
      }
    }
  } catch (...) {
    writer_->RollbackQuietly();
    FailAll(pending, Status::IOError("sqlite group commit", ExceptionText()));
  }
}

void SqliteBackend::FailAll(std::vector<Request*>& requests,
                            const Status& status) {
  for (Request* r : requests) Complete(r, status);
  requests.clear();
}

bool SqliteBackend::TakeMore(std::vector<Request*>& requests) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t before = requests.size();
  while (!queue_.empty() && requests.size() < kMaxGroup &&
         !queue_.front()->job) {
    requests.push_back(queue_.front());  // capacity reserved: no throw
    queue_.pop_front();
  }
  return requests.size() > before;
}

bool SqliteBackend::WaitForMore(size_t group_size,
                                Clock::time_point deadline) {
  // Only a COMMIT that syncs is worth waiting to share (with defer_sync the
  // syncer shares its fdatasyncs among whatever was committed meanwhile).
  if (!durable_ || defer_sync_) return false;
  std::unique_lock<std::mutex> lock(mu_);
  if (group_size >= writers_seen_ || group_size >= kMaxGroup) {
    return !queue_.empty();
  }
  leader_waiting_ = true;
  more_cv_.wait_until(lock, deadline,
                      [this] { return !queue_.empty() || stopping_; });
  leader_waiting_ = false;
  return !queue_.empty();
}

void SqliteBackend::NoteCommitted(size_t group_size) {
  std::lock_guard<std::mutex> lock(mu_);
  ++groups_committed_;
  // Callers queued now arrived during this COMMIT: they write alongside
  // this group, and would have joined it had it waited.
  const size_t together = std::min(group_size + queue_.size(), kMaxGroup);
  writers_seen_ = std::max(together, writers_seen_ > 1 ? writers_seen_ - 1
                                                       : size_t{1});
}

SqliteBackend::GroupOutcome SqliteBackend::CommitGroup(
    std::vector<Request*>& requests, std::vector<Status>& results) {
  Connection& conn = *writer_;
  // IMMEDIATE: take the write lock now, so that a conflict with another
  // process shows up here (and is retried) rather than halfway through.
  Status status = conn.Exec(Sql::kBeginImmediate);
  if (!status.ok()) {
    conn.RollbackQuietly();
    return {std::move(status), std::nullopt};
  }
  SqliteTransaction txn(conn, &acl_cache_, /*may_fill=*/false);
  const Clock::time_point deadline = Clock::now() + kCommitDelay;
  for (size_t i = 0;; ++i) {
    if (i == requests.size()) {
      if (!TakeMore(requests) &&
          !(WaitForMore(requests.size(), deadline) && TakeMore(requests))) {
        break;
      }
      results.resize(requests.size());  // capacity reserved: no throw
    }
    status = conn.Exec(Sql::kSavepoint);
    if (!status.ok()) {
      conn.RollbackQuietly();
      return {std::move(status), std::nullopt};
    }
    Status result = CallFn(*requests[i]->fn, txn);
    if (!conn.InTransaction()) {
      // The transaction is gone with everything earlier functions did.
      if (result.ok()) {
        result = Status::IOError("sqlite Write",
                                 "transaction ended inside the function");
      }
      return {std::move(result), i};
    }
    if (result.ok()) {
      status = conn.Exec(Sql::kRelease);
    } else {
      status = conn.Exec(Sql::kRollbackTo);
      if (status.ok()) status = conn.Exec(Sql::kRelease);
    }
    if (!status.ok()) {
      const bool lost = !conn.InTransaction();
      conn.RollbackQuietly();
      if (lost) return {std::move(status), i};
      return {std::move(status), std::nullopt};
    }
    results[i] = std::move(result);
  }
  // One COMMIT, one WAL fsync, for the whole group.
  status = conn.Exec(Sql::kCommit);
  if (!status.ok()) {
    conn.RollbackQuietly();
    return {std::move(status), std::nullopt};
  }
  return {Status::Ok(), std::nullopt};
}

Status SqliteBackend::RunMigration(Connection& conn, int version,
                                   std::string_view name,
                                   const std::string& script,
                                   const std::string& label) {
  Backoff backoff;
  while (true) {
    Status status = TryMigration(conn, version, name, script, label);
    if (!status.IsRetry()) return status;
    if (!backoff.Wait()) return GaveUp(label);
  }
}

Status SqliteBackend::TryMigration(Connection& conn, int version,
                                   std::string_view name,
                                   const std::string& script,
                                   const std::string& label) {
  // The first migration is the first write to a new database: switch it
  // to WAL now (cannot be done inside a transaction).
  NS_RETURN_IF_ERROR(conn.EnableWal());
  Status status = conn.Exec(Sql::kBeginImmediate);
  if (status.ok()) status = conn.ExecScript(script, label);
  if (status.ok() && !conn.InTransaction()) {
    // Whatever the script did before its own COMMIT is applied: tell the
    // operator rather than pretend it was atomic.
    return Status::Corruption(
        fmt::format("{} ended the transaction itself", label),
        "migration scripts must not contain BEGIN, COMMIT or ROLLBACK; "
        "check the database with `nsadmin fsck`");
  }
  if (status.ok()) {
    // Recorded in the same transaction: the version row and the tables it
    // describes appear together or not at all.
    Result<Stmt> stmt = conn.Prepare(Sql::kInsertSchemaVersion);
    if (stmt.ok()) {
      stmt->Bind(1, static_cast<int64_t>(version));
      stmt->Bind(2, name);
      stmt->Bind(3, NowNs());
      status = SqliteStatus(stmt->Step(), conn.db(), label);
    } else {
      status = stmt.status();
    }
  }
  if (status.ok()) status = conn.Exec(Sql::kCommit);
  if (!status.ok()) conn.RollbackQuietly();
  return status;
}

}  // namespace sqlite_internal
}  // namespace ns
