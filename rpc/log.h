#pragma once

// A tiny leveled logger writing one line per message to stderr.
//
// Levels follow the house rule "log by cause": a server fault is an Error, a
// faulty or hostile client is a Warning, lost client state is Info, protocol
// chatter is Debug. Each line is written with a single write(2) so lines from
// different threads never interleave. Warnings are rate-limited (200 a
// second, the excess counted and reported) because they mostly describe
// misbehaving clients, which must not be able to flood the log.
//
// Thread safety: all functions may be called from any thread.

#include <fmt/format.h>

#include <functional>
#include <string>
#include <string_view>
#include <utility>

namespace rpc::log {

enum class Level { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Messages below `level` are dropped. Default: kInfo.
void SetLevel(Level level);
Level GetLevel();
inline bool Enabled(Level level) { return level >= GetLevel(); }

// Parses "debug", "info", "warning"/"warn", "error"; false if unknown.
bool ParseLevel(std::string_view text, Level* level);

// Replaces the output (tests capture lines with this); nullptr restores
// stderr. The sink receives the formatted line without a trailing newline.
void SetSink(std::function<void(Level, std::string_view)> sink);

// Writes `message` at `level` (no format processing).
void Write(Level level, std::string_view message);

template <typename... Args>
void Debug(fmt::format_string<Args...> f, Args&&... args) {
  if (Enabled(Level::kDebug)) {
    Write(Level::kDebug, fmt::format(f, std::forward<Args>(args)...));
  }
}
template <typename... Args>
void Info(fmt::format_string<Args...> f, Args&&... args) {
  if (Enabled(Level::kInfo)) {
    Write(Level::kInfo, fmt::format(f, std::forward<Args>(args)...));
  }
}
template <typename... Args>
void Warning(fmt::format_string<Args...> f, Args&&... args) {
  if (Enabled(Level::kWarning)) {
    Write(Level::kWarning, fmt::format(f, std::forward<Args>(args)...));
  }
}
template <typename... Args>
void Error(fmt::format_string<Args...> f, Args&&... args) {
  if (Enabled(Level::kError)) {
    Write(Level::kError, fmt::format(f, std::forward<Args>(args)...));
  }
}

}  // namespace rpc::log
