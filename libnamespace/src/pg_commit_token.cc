// Commit tokens (see pg_commit_token.h for the idea and the contract).
//
// Why a token row and not the transaction id: txid_status() answers for
// an id, but a server that lost the end of the WAL (a promoted standby, or
// a crash-restarted primary with asynchronous commit) assigns the lost ids
// again, so "committed" may describe someone else's transaction. A random
// token is never reissued, and its row travels in the same WAL record
// stream as the rest of the transaction.

#include "libnamespace/src/pg_commit_token.h"

#include <atomic>
#include <mutex>
#include <random>
#include <utility>

#include "libnamespace/src/pg_errors.h"

namespace ns {
namespace {

// How long the fence waits for a transaction that still holds the token
// (its server has not yet noticed the client is gone) before the caller is
// told to ask again; short, so that the caller's own time budget decides.
constexpr char kFenceTimeout[] = "2s";
// Tokens live this long. A writer looks its token up within its time
// budget for riding out an outage (two budgets of 20 s at most, see
// pg_connection.h); the margin covers clock differences between an old
// primary, which stamped the row, and a new one, which expires it.
constexpr char kTokenLifetime[] = "2 minutes";

std::mutex hook_mu;
PgCommitHook hook;  // guarded by hook_mu
std::atomic<bool> hook_set{false};

}  // namespace

int64_t NewCommitToken() {
  // One generator per thread, seeded from the OS: no lock on the hot path.
  thread_local std::mt19937_64 rng{[] {
    std::random_device rd;
    return (uint64_t{rd()} << 32) ^ rd();
  }()};
  return static_cast<int64_t>(rng() >> 1);
}

const char* CommitTokenInsertSql() {
  return "INSERT INTO commit_tokens (token) VALUES ($1)";
}

bool IsCommitTokenClash(const pqxx::sql_error& e) {
  return e.sqlstate() == "23505" &&
         std::string(e.what()).find("commit_tokens_pkey") != std::string::npos;
}

Result<bool> FenceCommitToken(pqxx::nontransaction& t, int64_t token) {
  try {
    // Both statements run in autocommit: after the first one returns, a
    // row for the token is committed (the original's, or our fence), and
    // the second one reads it. Running both again is harmless, so an
    // answer lost here too is simply asked again.
    t.exec(std::string("SET statement_timeout = '") + kFenceTimeout + "'");
    try {
      t.exec_params(
          "INSERT INTO commit_tokens (token, fenced) VALUES ($1, true) "
          "ON CONFLICT (token) DO NOTHING",
          token);
    } catch (const pqxx::sql_error& e) {
      if (e.sqlstate() != "57014") throw;  // query_canceled: the timeout
      t.exec("RESET statement_timeout");
      return Status::Retry("pg commit token",
                           "the transaction still holds its token");
    }
    t.exec("RESET statement_timeout");
    const pqxx::result r = t.exec_params(
        "SELECT fenced FROM commit_tokens WHERE token = $1", token);
    if (r.empty()) {
      // Only the expiry deletes rows, minutes after they were made.
      return Status::IOError("pg commit token",
                             "token " + std::to_string(token) +
                                 " vanished right after it was fenced");
    }
    return !r[0][0].as<bool>();
  } catch (const std::exception& e) {
    return PgStatus(e, "pg commit token");
  }
}

int64_t ExpireCommitTokens(pqxx::nontransaction& t) {
  // No index on created_at: every write would pay for it. This runs every
  // few seconds and reads a table that holds a few minutes of writes.
  return static_cast<int64_t>(
      t.exec(std::string("DELETE FROM commit_tokens WHERE created_at < "
                         "now() - interval '") +
             kTokenLifetime + "'")
          .affected_rows());
}

void SetPgCommitHookForTesting(PgCommitHook h) {
  std::lock_guard<std::mutex> lock(hook_mu);
  hook = std::move(h);
  hook_set = static_cast<bool>(hook);
}

bool RunPgCommitHook(CommitPoint point, pqxx::connection_base& c) {
  if (!hook_set.load(std::memory_order_relaxed)) return false;
  std::lock_guard<std::mutex> lock(hook_mu);
  return hook ? hook(point, c) : false;
}

}  // namespace ns
