#pragma once

// Test helpers shared by the database-source tests (chimera_test.cc,
// dpm_test.cc): running the ns-migrate binary (NS_MIGRATE_BIN, set by
// CMake) and reading a dump back as entries.

#include <fmt/core.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "migrate/dump.h"
#include "tests/test_util.h"

namespace nsmigrate::testing {

// A new path under the scratch directory: "<scratch>/<prefix>-<what>-<n>".
inline std::string NewPath(std::string_view prefix, std::string_view what) {
  static int n = 0;
  return fmt::format("{}/{}-{}-{}", ns::testing::ScratchDir(), prefix, what,
                     n++);
}

// Runs ns-migrate with `args` (no progress line); returns its exit status
// (-1: killed) and its stderr.
inline std::pair<int, std::string>
RunTool(const std::vector<std::string> &args) {
  const std::string err = NewPath("ns-migrate", "stderr");
  std::string cmd = NS_MIGRATE_BIN;
  for (const auto &a : args)
    cmd += " '" + a + "'";
  cmd += " --no-progress >/dev/null 2>" + err;
  const int st = std::system(cmd.c_str());
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1,
          ns::testing::ReadFileBytes(err)};
}

// The entries of a dump file (its header line skipped); a line that does
// not parse is a test failure.
inline std::vector<Entry> ReadDump(const std::string &path) {
  std::vector<Entry> out;
  const std::string all = ns::testing::ReadFileBytes(path);
  DumpParser p;
  size_t pos = all.find('\n') + 1;
  uint64_t line = 1;
  while (pos < all.size()) {
    const size_t nl = all.find('\n', pos);
    ns::Result<Entry> e =
        p.ParseEntry(std::string_view(all).substr(pos, nl - pos), ++line);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    if (!e.ok())
      break;
    out.push_back(std::move(*e));
    pos = nl + 1;
  }
  return out;
}

} // namespace nsmigrate::testing
