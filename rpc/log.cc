#include "rpc/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <mutex>

namespace rpc::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};

// Warnings mostly describe misbehaving clients; one client sending garbage
// in a loop must not turn the log into the bottleneck. Beyond this many per
// second they are counted and summarized in the next second's first line.
constexpr int kWarningsPerSecond = 200;
std::mutex g_rate_mu;
int64_t g_rate_second = -1;  // guarded by g_rate_mu
int g_rate_count = 0;        // guarded by g_rate_mu
int g_rate_dropped = 0;      // guarded by g_rate_mu

// True if the warning may be written; `*dropped` receives the number of
// warnings suppressed in the previous window, to be reported first.
bool AdmitWarning(int* dropped) {
  int64_t sec = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count();
  std::lock_guard<std::mutex> lock(g_rate_mu);
  *dropped = 0;
  if (sec != g_rate_second) {
    *dropped = g_rate_dropped;
    g_rate_dropped = 0;
    g_rate_second = sec;
    g_rate_count = 0;
  }
  if (++g_rate_count > kWarningsPerSecond) {
    ++g_rate_dropped;
    return false;
  }
  return true;
}

std::mutex& SinkMutex() {
  static std::mutex mu;
  return mu;
}
std::function<void(Level, std::string_view)>& Sink() {
  static std::function<void(Level, std::string_view)> sink;
  return sink;
}

char LevelLetter(Level level) {
  switch (level) {
    case Level::kDebug:
      return 'D';
    case Level::kInfo:
      return 'I';
    case Level::kWarning:
      return 'W';
    case Level::kError:
      return 'E';
  }
  return '?';
}

}  // namespace

void SetLevel(Level level) { g_level.store(static_cast<int>(level)); }
Level GetLevel() { return static_cast<Level>(g_level.load()); }

bool ParseLevel(std::string_view text, Level* level) {
  if (text == "debug")
    *level = Level::kDebug;
  else if (text == "info")
    *level = Level::kInfo;
  else if (text == "warning" || text == "warn")
    *level = Level::kWarning;
  else if (text == "error")
    *level = Level::kError;
  else
    return false;
  return true;
}

void SetSink(std::function<void(Level, std::string_view)> sink) {
  std::lock_guard<std::mutex> lock(SinkMutex());
  Sink() = std::move(sink);
}

namespace {

void WriteLine(Level level, std::string_view message) {
  {
    std::lock_guard<std::mutex> lock(SinkMutex());
    if (Sink()) {
      Sink()(level, message);
      return;
    }
  }
  auto now = std::chrono::system_clock::now();
  std::time_t secs = std::chrono::system_clock::to_time_t(now);
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(
                    now.time_since_epoch())
                    .count() %
                1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  std::string line =
      fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z {} {}\n",
                  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                  tm.tm_min, tm.tm_sec, millis, LevelLetter(level), message);
  // One write(2) per line: lines from different threads do not interleave.
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) break;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace

void Write(Level level, std::string_view message) {
  if (level == Level::kWarning) {
    int dropped;
    if (!AdmitWarning(&dropped)) return;
    if (dropped > 0) {
      WriteLine(
          Level::kWarning,
          fmt::format("{} warnings suppressed in the last second (rate limit)",
                      dropped));
    }
  }
  WriteLine(level, message);
}

}  // namespace rpc::log
