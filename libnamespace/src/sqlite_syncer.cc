// SqliteBackend's deferred durability (NamespaceOptions::defer_sync;
// described atop sqlite_backend.cc): commit tickets, the syncer thread that
// fdatasyncs the WAL behind the writer, and the WhenDurable callbacks.

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <iterator>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "libnamespace/src/sqlite_backend_internal.h"

namespace ns {
namespace sqlite_internal {

namespace {

// defer_sync: the latest commit of this thread's Write()s not yet taken by
// TakeCommitTicket, for the backend that made it.
struct TicketSlot {
  const void* backend = nullptr;
  uint64_t ticket = 0;
};
thread_local TicketSlot t_ticket;

}  // namespace

void SqliteBackend::NoteTicket(uint64_t ticket) {
  if (ticket == 0) return;
  if (t_ticket.backend != this) t_ticket = TicketSlot{this, 0};
  t_ticket.ticket = std::max(t_ticket.ticket, ticket);
}

uint64_t SqliteBackend::TakeCommitTicket() {
  if (t_ticket.backend != this) return 0;
  return std::exchange(t_ticket.ticket, 0);
}

uint64_t SqliteBackend::LatestCommitTicket() {
  std::lock_guard<std::mutex> lock(sync_mu_);
  return committed_ > durable_to_ ? committed_ : 0;
}

void SqliteBackend::WhenDurable(uint64_t ticket,
                                std::function<void(bool durable)> fn) {
  bool durable = true;
  if (ticket != 0) {
    std::unique_lock<std::mutex> lock(sync_mu_);
    if (SyncHasFailed()) {
      durable = false;
    } else if (ticket > durable_to_) {
      // A ticket never exceeds committed_ unless it came from another
      // backend that lived at this address; it is then as durable as ours.
      sync_waiters_.emplace_back(std::min(ticket, committed_), std::move(fn));
      return;
    }
  }
  fn(durable);
}

uint64_t SqliteBackend::NoteCommitForSync() {
  uint64_t ticket;
  {
    std::lock_guard<std::mutex> lock(sync_mu_);
    ticket = ++committed_;
  }
  // Wakes the syncer only if it sleeps (it usually is in an fdatasync).
  sync_cv_.notify_one();
  return ticket;
}

// A thread of its own, not the first waiter syncing for everyone: a waiter
// may be a worker in the middle of a COMPOUND (a removed file's data waits
// for its unlink), and under steady load the waiter that syncs would keep
// syncing for the others and never finish its own call. The price is one
// hand-off per sync when commits come one at a time.
void SqliteBackend::RunSyncer() {
  std::unique_lock<std::mutex> lock(sync_mu_);
  std::vector<std::pair<uint64_t, std::function<void(bool)>>> ready;
  for (;;) {
    // After a failure WhenDurable answers at once and no sync is tried.
    sync_cv_.wait(lock, [this] {
      return sync_stopping_ || (committed_ > durable_to_ && !SyncHasFailed());
    });
    if (committed_ > durable_to_ && !SyncHasFailed()) {
      // Everything committed so far is in the WAL file (the commit frame's
      // write flushed it): one fdatasync covers all of it, and the commits
      // made during it wait for the next.
      const uint64_t target = committed_;
      lock.unlock();
      std::string error = SyncWal();
      lock.lock();
      ++syncs_done_;
      if (error.empty()) {
        durable_to_ = target;
      } else {
        sync_error_ = std::move(error);
        sync_failed_.store(true, std::memory_order_release);
      }
    }
    // Answer, in ticket order, everyone whose commit is now on disk (or,
    // after a failure, everyone: none of theirs will be).
    // Stable: callbacks for one ticket run in the order they were given.
    std::stable_sort(
        sync_waiters_.begin(), sync_waiters_.end(),
        [](const auto& a, const auto& b) { return a.first < b.first; });
    auto first_left = SyncHasFailed()
                          ? sync_waiters_.end()
                          : std::find_if(sync_waiters_.begin(),
                                         sync_waiters_.end(),
                                         [this](const auto& w) {
                                           return w.first > durable_to_;
                                         });
    ready.assign(std::make_move_iterator(sync_waiters_.begin()),
                 std::make_move_iterator(first_left));
    sync_waiters_.erase(sync_waiters_.begin(), first_left);
    const bool durable = !SyncHasFailed();
    const bool done = sync_stopping_ && (committed_ <= durable_to_ ||
                                         SyncHasFailed());
    lock.unlock();
    for (auto& [ticket, fn] : ready) {
      // The syncer must outlive a callback that throws (out of memory).
      try {
        fn(durable);
      } catch (...) {
      }
    }
    ready.clear();
    lock.lock();
    if (done && sync_waiters_.empty()) break;
  }
}

std::string SqliteBackend::SyncWal() {
  const std::string wal = path_ + "-wal";
  if (wal_fd_ < 0) {
    // The WAL exists once a commit was made, and stays the same file while
    // the writer connection is open (SQLite deletes it only when the last
    // connection closes). fdatasync syncs the file's data whichever
    // descriptor wrote it.
    wal_fd_ = ::open(wal.c_str(), O_RDONLY | O_CLOEXEC);
    if (wal_fd_ < 0) {
      return fmt::format("cannot open {}: {}", wal, std::strerror(errno));
    }
  }
  std::function<int(int)> sync = ::fdatasync;
  {
    std::lock_guard<std::mutex> lock(sync_mu_);
    if (sync_for_test_) sync = sync_for_test_;
  }
  // On failure the kernel may have dropped the pages it could not write:
  // nothing committed since the last good sync can be promised any more.
  if (sync(wal_fd_) != 0) {
    return fmt::format("fdatasync of {} failed: {}", wal,
                       std::strerror(errno));
  }
  return {};
}

Status SqliteBackend::SyncFailed() {
  std::lock_guard<std::mutex> lock(sync_mu_);
  return Status::IOError(
      "the WAL could not be made durable",
      sync_error_ + "; writes are refused: restart to recover from what is "
                    "on disk");
}

void SqliteBackend::StartSyncer() {
  if (defer_sync_) syncer_ = std::thread([this] { RunSyncer(); });
}

void SqliteBackend::StopSyncer() {
  if (!syncer_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(sync_mu_);
    sync_stopping_ = true;
  }
  sync_cv_.notify_one();
  syncer_.join();
  if (wal_fd_ >= 0) ::close(wal_fd_);
}

Status SqliteBackend::WaitDurable(uint64_t ticket) {
  if (AwaitDurable(*this, ticket)) return Status::Ok();
  return SyncFailed();
}

}  // namespace sqlite_internal
}  // namespace ns
