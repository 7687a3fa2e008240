#include "rpc/log.h"

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace rpc::log {
namespace {

// Sleeps until just after the next whole second of the steady clock, the
// rate limiter's window.
void AlignToSecond() {
  auto now = std::chrono::steady_clock::now().time_since_epoch();
  auto next = std::chrono::ceil<std::chrono::seconds>(now);
  std::this_thread::sleep_for(next - now + std::chrono::milliseconds(20));
}

TEST(LogTest, WarningsAreRateLimitedAndSummarized) {
  std::mutex mu;
  std::vector<std::string> lines;
  SetSink([&](Level, std::string_view l) {
    std::lock_guard<std::mutex> lock(mu);
    lines.emplace_back(l);
  });
  AlignToSecond();
  for (int i = 0; i < 300; ++i) Warning("bad client {}", i);
  Error("errors are never limited");
  AlignToSecond();
  Warning("next second");
  SetSink(nullptr);

  ASSERT_EQ(lines.size(), 200u + 1 + 2);
  EXPECT_EQ(lines[199], "bad client 199");
  EXPECT_EQ(lines[200], "errors are never limited");
  EXPECT_EQ(lines[201],
            "100 warnings suppressed in the last second (rate limit)");
  EXPECT_EQ(lines[202], "next second");
}

TEST(LogTest, LevelsFilterAndParse) {
  Level l;
  EXPECT_TRUE(ParseLevel("warn", &l));
  EXPECT_EQ(l, Level::kWarning);
  EXPECT_FALSE(ParseLevel("loud", &l));
  std::vector<std::string> lines;
  SetSink([&](Level, std::string_view s) { lines.emplace_back(s); });
  SetLevel(Level::kError);
  Info("hidden");
  Error("shown");
  SetLevel(Level::kInfo);
  SetSink(nullptr);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "shown");
}

}  // namespace
}  // namespace rpc::log
