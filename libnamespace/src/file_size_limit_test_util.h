#pragma once

// Test-only: makes writes fail as on a full disk. While a FileSizeLimit
// lives, the process's RLIMIT_FSIZE soft limit is `bytes` and SIGXFSZ is
// ignored, so a write that would grow a file past the limit returns EFBIG
// (setrlimit(2), write(2)) instead of the signal ending the test binary.
// The destructor puts back the previous limit and signal disposition.
//
// Process-wide: every thread's writes are limited while it lives, so keep
// its scope to the writes meant to fail.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstdint>

namespace ns {

class FileSizeLimit {
 public:
  explicit FileSizeLimit(uint64_t bytes) {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    if (sigaction(SIGXFSZ, &ignore, &old_action_) != 0) {
      ADD_FAILURE() << "sigaction(SIGXFSZ) failed";
      return;
    }
    signal_set_ = true;
    if (getrlimit(RLIMIT_FSIZE, &old_limit_) != 0) {
      ADD_FAILURE() << "getrlimit(RLIMIT_FSIZE) failed";
      return;
    }
    rlimit small = old_limit_;
    small.rlim_cur = static_cast<rlim_t>(bytes);
    if (setrlimit(RLIMIT_FSIZE, &small) != 0) {
      ADD_FAILURE() << "setrlimit(RLIMIT_FSIZE, " << bytes << ") failed";
      return;
    }
    limit_set_ = true;
  }

  ~FileSizeLimit() {
    if (limit_set_) {
      EXPECT_EQ(setrlimit(RLIMIT_FSIZE, &old_limit_), 0);
    }
    if (signal_set_) {
      EXPECT_EQ(sigaction(SIGXFSZ, &old_action_, nullptr), 0);
    }
  }

  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

  // False if the limit could not be set (the failure is already reported);
  // the test should then stop: its writes would not fail.
  bool ok() const { return limit_set_; }

 private:
  struct sigaction old_action_ {};
  rlimit old_limit_{};
  bool signal_set_ = false;
  bool limit_set_ = false;
};

}  // namespace ns
