#!/usr/bin/env bash
# The whole benchmark in one command (docs/performance.md explains it):
#
#   bash bench/run.sh
#
# Builds ns-bench if needed, starts a throwaway durable PostgreSQL cluster on
# 127.0.0.1 (fsync and synchronous_commit on), runs ns-bench on SQLite and
# PostgreSQL (1 and 8 threads; shared directory vs one per thread; readdir of
# 1,000 and 1,000,000 entries) and, in the same run, the databases' own
# ceilings (pgbench with a pipelined 3-statement create; ns-bench --raw for
# SQLite). Stops the cluster by its data directory and removes every
# temporary file at the end. About 5 minutes on 2 quiet cores, 10 loaded.
#
# Environment: NS_BENCH_BUILD (build dir, default build/), NS_BENCH_OUT
# (results dir, default <build>/bench-results/<time>), NS_BENCH_QUICK=1 (a
# short smoke run: few ops, no million-entry directory).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${NS_BENCH_BUILD:-$ROOT/build}
OUT=${NS_BENCH_OUT:-$BUILD/bench-results/$(date +%Y%m%d-%H%M%S)}
QUICK=${NS_BENCH_QUICK:-0}
BIN=$BUILD/bench/ns-bench

if [[ $QUICK == 1 ]]; then
  OPS=200 READ_OPS=1000 BIG=20000 PGBENCH_SECS=5 RUN_LIMIT=120
else
  # Per thread. 2,000 creates per thread keeps each PostgreSQL phase near
  # 5 s at the target rate; reads are cheaper, so more of them.
  OPS=2000 READ_OPS=10000 BIG=1000000 PGBENCH_SECS=20 RUN_LIMIT=400
fi
PHASE_SECS=30  # ns-bench stops any phase at this, whatever its count

log() { printf '%s run.sh: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- build -----------------------------------------------------------------
if [[ ! -f $BUILD/CMakeCache.txt ]]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD" -j"$(nproc)" --target ns-bench >/dev/null

mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"

# --- a throwaway PostgreSQL cluster ----------------------------------------
PGBIN=/usr/lib/postgresql/15/bin
[[ -x $PGBIN/initdb ]] || PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
# /var/tmp, not /tmp: /tmp may be a tmpfs, where fsync costs nothing and the
# "durable" figures would mean nothing.
TMP=$(mktemp -d /var/tmp/nsbench.XXXXXX)
PGDATA_DIR=$TMP/pg
PG_STARTED=0
# as_pg, pg_stop.
source "$ROOT/bench/servers.sh"
cleanup() {
  local rc=$?
  if [[ $PG_STARTED == 1 ]]; then
    pg_stop "$PGBIN" "$PGDATA_DIR"
  fi
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ $(id -u) == 0 ]]; then chown postgres: "$TMP"; fi
chmod 700 "$TMP"
as_pg "$PGBIN/initdb" -D "$PGDATA_DIR" -U nsbench -A trust -E UTF8 \
  --locale=C --no-sync >"$OUT/initdb.log" 2>&1
cat >>"$PGDATA_DIR/postgresql.conf" <<EOF
# ns-bench: durable, loopback only.
listen_addresses = '127.0.0.1'
unix_socket_directories = '$TMP'
fsync = on
synchronous_commit = on
full_page_writes = on
max_connections = 100
shared_buffers = 256MB
EOF
PORT=
for attempt in 1 2 3 4 5; do
  candidate=$((20000 + RANDOM % 30000))
  if [[ -n $(ss -Htln "sport = :$candidate") ]]; then continue; fi
  if as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$TMP/postgres.log" -w -t 60 \
      -o "-p $candidate" start >/dev/null; then
    PORT=$candidate PG_STARTED=1
    break
  fi
  log "PostgreSQL did not start on port $candidate (attempt $attempt)"
done
if [[ -z $PORT ]]; then
  tail -n 30 "$TMP/postgres.log" >&2 || true
  exit 1
fi
PG="postgresql://nsbench@127.0.0.1:$PORT"
# ns-bench reads the server's CPU time from /proc through the postmaster.
PG_PID=$(head -n1 "$PGDATA_DIR/postmaster.pid")
psql_q() { psql -X -q -At -h 127.0.0.1 -p "$PORT" -U nsbench "$@"; }
log "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT, data in $PGDATA_DIR"

{
  echo "date: $(date -Is)"
  echo "host: $(nproc) CPUs, $(awk '/MemTotal/ {print $2/1024/1024 " GiB"}' /proc/meminfo)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') $(git -C "$ROOT" status --porcelain 2>/dev/null | grep -q . && echo '(with local changes)')"
} | tee "$OUT/machine.txt" >&2

# Runs ns-bench with a time limit, appending its JSON lines to $RESULTS and
# a readable copy to the log. A failing run is reported and the rest go on.
bench() {
  local label=$1
  shift
  log "ns-bench $label: $*"
  if ! timeout "$RUN_LIMIT" "$BIN" --json --label "$label" \
      --phase-seconds "$PHASE_SECS" "$@" >"$OUT/$label.jsonl" 2>"$OUT/$label.err"; then
    log "ns-bench $label FAILED (see $OUT/$label.err):"
    tail -n 5 "$OUT/$label.err" >&2 || true
  fi
  cat "$OUT/$label.jsonl" >>"$RESULTS"
}

# Issue 3 §8: ACL and tag costs (create/lookup under a 10-entry ACL,
# mkdir inheriting 5 tags, each against the plain operation), 1 thread.
# NS_BENCH_METACOST_ONLY=1 runs just these and stops.
for backend in sqlite postgresql; do
  if [[ $backend == sqlite ]]; then
    db="sqlite://$TMP/metacost.db" extra=()
  else
    psql_q -d postgres -c "CREATE DATABASE metacost"
    db="$PG/metacost" extra=(--pg-pid "$PG_PID")
  fi
  bench "$backend-metacost" --db "$db" --threads 1 --ops "$OPS" \
    --read-ops "$READ_OPS" --phases metacost "${extra[@]}"
done
if [[ ${NS_BENCH_METACOST_ONLY:-0} == 1 ]]; then exit 0; fi

OPS_PHASES=create,mkdir,lookup,getattr,rename,unlink
for backend in sqlite postgresql; do
  for run in t1 t8-shared t8-per-thread; do
    case $run in
      t1) threads=1 layout=shared ;;  # with one thread the layouts coincide
      t8-shared) threads=8 layout=shared ;;
      t8-per-thread) threads=8 layout=per-thread ;;
    esac
    if [[ $backend == sqlite ]]; then
      db="sqlite://$TMP/$run.db" extra=()
    else
      db_name="ops_${run//-/_}"
      psql_q -d postgres -c "CREATE DATABASE $db_name"
      db="$PG/$db_name" extra=(--pg-pid "$PG_PID")
    fi
    bench "$backend-$run" --db "$db" --threads "$threads" --layout "$layout" \
      --ops "$OPS" --read-ops "$READ_OPS" --phases "$OPS_PHASES" "${extra[@]}"
  done
done

# readdir: one database per backend holding both directories; the bulk fill
# happens on the first run of each size (see docs/performance.md).
psql_q -d postgres -c "CREATE DATABASE readdir"
for backend in sqlite postgresql; do
  if [[ $backend == sqlite ]]; then
    db="sqlite://$TMP/readdir.db" extra=()
  else
    db="$PG/readdir" extra=(--pg-pid "$PG_PID")
  fi
  for size in 1000 "$BIG"; do
    bench "$backend-readdir-$size" --db "$db" --threads 1 --phases readdir \
      --dir-size "$size" "${extra[@]}"
  done
done

# --- the databases' own ceilings ------------------------------------------
# SQLite: the rows of a create in a plain loop, one durable transaction per
# create, then all in one transaction.
bench sqlite-raw --db "sqlite://$TMP/raw.db" --raw --ops 100000

# PostgreSQL: pgbench, 3 pipelined inserts per transaction (inode, dirent,
# dir_deltas row), in the readdir database so the tables are not empty.
# The parents are ids no inode has: the raw inserts never read them.
NOW_NS=$(date +%s%N)
cat >"$TMP/create.sql" <<'EOF'
\set dir :dirbase + (1 - :shared) * :client_id
\startpipeline
INSERT INTO inodes (ino, type, mode, nlink, uid, gid, atime_ns, mtime_ns, ctime_ns, btime_ns) VALUES (nextval('inode_ino_seq'), 1, 420, 1, 0, 0, :now, :now, :now, :now);
INSERT INTO dirents (parent, name, child, type, cookie) VALUES (:dir, 'pgb' || currval('inode_ino_seq'), currval('inode_ino_seq'), 1, nextval('dirent_cookie_seq'));
INSERT INTO dir_deltas (parent, nlink_delta, time_ns) VALUES (:dir, 0, :now);
\endpipeline
EOF
# Lookup: the parent's row, the entry and the child's row in one query (what
# the library's LookupWithParent fetches, without the pending deltas).
BIG_DIR=$(psql_q -d readdir -c "SELECT child FROM dirents WHERE parent = 1 AND name = 'readdir-$BIG'")
cat >"$TMP/lookup.sql" <<EOF
\set i random(1, $BIG)
SELECT p.type, p.mode, p.uid, p.gid, c.* FROM inodes p LEFT JOIN dirents e ON e.parent = p.ino AND e.name = 'e' || :i LEFT JOIN inodes c ON c.ino = e.child WHERE p.ino = $BIG_DIR;
EOF

# CPU clock ticks the server has used: the postmaster with the children it
# has reaped, plus its live children (as ns-bench --pg-pid counts them).
server_ticks() {
  local t c
  t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$PG_PID/stat")
  for c in $(pgrep -P "$PG_PID"); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}

# Runs pgbench and records tps, mean latency and the server's CPU per
# transaction as a JSON line.
pgb() {
  local label=$1 clients=$2 layout=$3 phase=$4 script=$5
  shift 5
  log "pgbench $label: $clients clients, ${PGBENCH_SECS}s"
  local out=$OUT/$label.txt ticks0 ticks1
  ticks0=$(server_ticks)
  if ! timeout $((PGBENCH_SECS + 120)) pgbench -n -h 127.0.0.1 -p "$PORT" -U nsbench \
      -M prepared -c "$clients" -j "$(( clients < 2 ? 1 : 2 ))" -T "$PGBENCH_SECS" \
      -f "$script" "$@" readdir >"$out" 2>&1; then
    log "pgbench $label FAILED:"
    tail -n 5 "$out" >&2
    return 0
  fi
  # The backends exit after pgbench does; their CPU reaches the postmaster's
  # count once it has reaped them.
  sleep 1
  ticks1=$(server_ticks)
  local tps lat txns
  tps=$(awk '/^tps = / {print $3; exit}' "$out")
  lat=$(awk '/^latency average = / {print $4; exit}' "$out")
  txns=$(awk '/number of transactions actually processed:/ {print $NF; exit}' "$out")
  printf '{"label": "%s", "backend": "postgresql", "threads": %s, "layout": "%s", "phase": "%s", "ops": %s, "errors": 0, "seconds": %s, "ops_per_s": %s, "avg_us": %s, "server_cpu_us": %s}\n' \
    "$label" "$clients" "$layout" "$phase" "${txns:-0}" "$PGBENCH_SECS" "${tps:-0}" \
    "$(awk -v l="${lat:-0}" 'BEGIN {printf "%.1f", l * 1000}')" \
    "$(awk -v t=$((ticks1 - ticks0)) -v hz="$(getconf CLK_TCK)" -v n="${txns:-0}" \
        'BEGIN {printf "%.1f", (n > 0) ? t * 1e6 / hz / n : 0}')" >>"$RESULTS"
}
pgb pgbench-create-c1 1 shared raw_create_pgbench "$TMP/create.sql" \
  -D dirbase=8000000000000000000 -D shared=1 -D now="$NOW_NS"
pgb pgbench-create-c8-shared 8 shared raw_create_pgbench "$TMP/create.sql" \
  -D dirbase=8000000000000000000 -D shared=1 -D now="$NOW_NS"
pgb pgbench-create-c8-per-thread 8 per-thread raw_create_pgbench "$TMP/create.sql" \
  -D dirbase=8000000000000000000 -D shared=0 -D now="$NOW_NS"
pgb pgbench-lookup-c8 8 shared raw_lookup_pgbench "$TMP/lookup.sql"

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2

# --- summary -----------------------------------------------------------------
# The JSON lines are flat with fixed keys, so awk reads them without a JSON
# tool.
awk '
  function get(k,   m) {
    if (match($0, "\"" k "\": (\"[^\"]*\"|[-0-9.e+]+|true|false)")) {
      m = substr($0, RSTART + length(k) + 4, RLENGTH - length(k) - 4)
      gsub(/"/, "", m)
      return m
    }
    return ""
  }
  BEGIN {
    printf "%-30s %-11s %3s %-10s %-18s %12s %9s %9s %s\n", "run", "backend", "thr",
      "layout", "phase", "per second", "p50 us", "p99 us", "notes"
  }
  {
    phase = get("phase")
    rate = get("ops_per_s"); if (rate == "") rate = get("entries_per_s")
    p50 = get("p50_us"); p99 = get("p99_us"); note = ""
    if (get("client_cpu_us") != "") note = sprintf("cpu us/op %s+%s", get("client_cpu_us"), get("server_cpu_us"))
    if (get("avg_us") != "") { p50 = "avg " get("avg_us"); p99 = ""; note = sprintf("cpu us/op server %s", get("server_cpu_us")) }
    if (phase ~ /^readdir/) {
      p50 = get("page_p50_us"); p99 = get("page_p99_us")
      note = sprintf("dir %s, page us first %s last %s, cpu ns/entry %s+%s", get("dir_size"),
                     get("first_pages_us"), get("last_pages_us"),
                     get("client_cpu_ns_per_entry"), get("server_cpu_ns_per_entry"))
    }
    if (phase == "populate") { p50 = ""; p99 = ""; note = sprintf("dir %s by %s", get("dir_size"), get("method")) }
    if (get("errors") != "" && get("errors") != "0") note = note " ERRORS " get("errors")
    printf "%-30s %-11s %3s %-10s %-18s %12.0f %9s %9s %s\n", get("label"), get("backend"),
      get("threads"), get("layout"), phase, rate, p50, p99, note
  }' "$RESULTS" | tee "$OUT/summary.txt"
log "results in $OUT"
