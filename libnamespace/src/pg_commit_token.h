#pragma once

// Commit tokens: how a PostgreSQL write whose COMMIT lost its answer (the
// connection broke while COMMIT was under way: a crash, a failover to a
// promoted standby, pg_terminate_backend) learns whether it committed.
//
// Every write transaction inserts one row into commit_tokens (schema
// version 6) with a random token, in the same round trip as its COMMIT
// (kCommitTokenStatement goes right before "COMMIT" in the batch). The row
// is part of the transaction, so it exists on a server exactly when that
// server has the commit: the old primary after a restart, or a promoted
// standby that received the commit record. Transaction ids cannot tell
// this: a promoted standby hands out again the ids that never reached it.
//
// FenceCommitToken() decides, on any server that is primary now: it
// inserts the same token marked `fenced` unless a row is there. If the
// original transaction is still running on this server, the insert waits
// for it (primary key); if it comes later, its own insert fails on the
// key, so it can never commit after we decided "not committed". Thread
// safety: all functions may be called from any thread.

#include <cstdint>
#include <functional>
#include <string>

#include <pqxx/pqxx>

#include "libnamespace/include/namespace/status.h"

namespace ns {

// A fresh random token (positive, 63 bits): two live tokens coincide with
// probability about n^2 / 2^64 for n rows in the table.
int64_t NewCommitToken();

// The statement that records a token ($1, bigint) in the transaction, and
// the name it is prepared under on every connection: a write sends
// "EXECUTE <name>(<token>);" right before its COMMIT, in the same round
// trip, and the server parses and plans the INSERT once per connection.
constexpr char kCommitTokenStatement[] = "ins_token";
const char* CommitTokenInsertSql();

// Whether `e`, thrown by a COMMIT batch, is the token's insert failing on
// the primary key: a fence beat this transaction (it was already given up
// as lost), or two random tokens coincided. Nothing committed; the
// transaction may run again with a new token.
bool IsCommitTokenClash(const pqxx::sql_error& e);

// Decides the outcome of the transaction that inserted `token`, on `t`'s
// connection (autocommit statements: the fence must be durable before the
// answer counts). Returns true if it committed, false if it did not and
// now never will. Returns Retry if the original transaction still held the
// token after a few seconds (the server has not yet noticed its client is
// gone): ask again. Other errors as PgStatus maps them.
Result<bool> FenceCommitToken(pqxx::nontransaction& t, int64_t token);

// Deletes tokens older than a few minutes (a token is only ever looked up
// within a minute of its COMMIT; see pg_commit_token.cc). Returns the
// number of rows deleted. Throws what libpqxx throws.
int64_t ExpireCommitTokens(pqxx::nontransaction& t);

// Test hook, for simulating a COMMIT whose answer is lost. Called with the
// connection right before a write's COMMIT batch is sent, and right after
// its answer arrived; returning true from kAfterAnswer makes the backend
// drop the connection and treat the answer as lost. Empty by default;
// REQUIRES: set only while no write is running.
enum class CommitPoint { kBeforeSend, kAfterAnswer };
using PgCommitHook = std::function<bool(CommitPoint, pqxx::connection_base&)>;
void SetPgCommitHookForTesting(PgCommitHook hook);
// Runs the hook if one is set; false otherwise.
bool RunPgCommitHook(CommitPoint point, pqxx::connection_base& c);

}  // namespace ns
