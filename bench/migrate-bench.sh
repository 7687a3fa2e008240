#!/usr/bin/env bash
# ns-migrate scale benchmark (issue 7 §6): Debian's Contents indexes (every
# path of every package of bookworm/main, amd64 + all: ~7.3 M paths) turned
# into a dump and imported into a fresh SQLite namespace and into a fresh
# durable PostgreSQL 15 cluster; prints entries/s, wall and CPU time, peak
# RSS of ns-migrate and of the PostgreSQL server, and the --verify-only
# result. A benchmark, not a test: it prints figures (docs/performance.md).
#
#   bash bench/migrate-bench.sh                  # the whole index, ~10 min
#   bash bench/migrate-bench.sh --lines 1000000  # a prefix, for iterating
#   bash bench/migrate-bench.sh --only sqlite    # or --only postgresql
#   bash bench/migrate-bench.sh --pg-verify      # also verify PostgreSQL
#                                                # above 1 M entries (slow)
#   bash bench/migrate-bench.sh --no-sqlite-verify  # SQLite import only
#                                                # (repeated runs: ~3 min less)
#   bash bench/migrate-bench.sh --no-pg-verify   # PostgreSQL import only
#
# The Contents files are fetched the way a user would: apt-file's lists
# (`apt-get install apt-file && apt-file update` puts them under
# /var/lib/apt/lists/) when present, else curl from the mirror this
# machine's apt sources name; kept in $CACHE (default
# /var/tmp/ns-migrate-bench) with the dumps made from them. Delete that
# directory to fetch again. Needs root (the throwaway cluster runs as the
# postgres user), PostgreSQL 15 server binaries, curl, python3.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-main}
CACHE=${CACHE:-/var/tmp/ns-migrate-bench}
LINES=0
ONLY=
PG_VERIFY=0
SQLITE_VERIFY=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --lines) LINES=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --pg-verify) PG_VERIFY=1; shift ;;
    --no-sqlite-verify) SQLITE_VERIFY=0; shift ;;
    --no-pg-verify) PG_VERIFY=-1; shift ;;
    *) echo "usage: $0 [--lines N] [--only sqlite|postgresql] [--pg-verify|--no-pg-verify] [--no-sqlite-verify]" >&2; exit 2 ;;
  esac
done
[[ $LINES =~ ^[0-9]+$ ]] || { echo "--lines wants a number" >&2; exit 2; }
log() { echo "[migrate-bench] $*" >&2; }

cmake --build "$BUILD" -j2 --target ns-migrate >/dev/null
MIGRATE=$BUILD/migrate/ns-migrate
mkdir -p "$CACHE"

# --- the Contents files ------------------------------------------------------
SUITE=bookworm
MIRROR=
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [[ -r $f ]] || continue
  MIRROR=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}
                /^deb / && $2 !~ /security/ {print $2; exit}' "$f")
  [[ -n $MIRROR ]] && break
done
MIRROR=${MIRROR:-http://deb.debian.org/debian}
INPUTS=()
for arch in amd64 all; do
  lists=/var/lib/apt/lists/$(echo "${MIRROR#*://}" | tr / _)_dists_${SUITE}_main_Contents-$arch.lz4
  cached=$CACHE/Contents-$arch.gz
  if [[ -r $lists ]]; then
    log "Contents-$arch: apt-file's list $lists"
    INPUTS+=("$lists")
  elif [[ -s $cached ]]; then
    log "Contents-$arch: cached $cached ($(stat -c %y "$cached" | cut -d. -f1); delete it to fetch again)"
    INPUTS+=("$cached")
  else
    url=$MIRROR/dists/$SUITE/main/Contents-$arch.gz
    log "Contents-$arch: fetching $url"
    curl -fsSL --retry 3 -o "$cached.part" "$url"
    mv "$cached.part" "$cached"
    INPUTS+=("$cached")
  fi
done

# --- the dump ----------------------------------------------------------------
FULL=$CACHE/contents.dump
if [[ ! -s $FULL || $FULL -ot $ROOT/bench/contents_to_dump.py || $FULL -ot ${INPUTS[0]} ]]; then
  log "converting ${INPUTS[*]} into $FULL"
  /usr/bin/time -f "%e s wall, %U s user, %S s system, children's peak RSS %M KiB" \
    -o "$CACHE/convert.time" \
    env TMPDIR="$CACHE" python3 "$ROOT/bench/contents_to_dump.py" "${INPUTS[@]}" \
    >"$FULL.part" 2>"$CACHE/convert.log"
  mv "$FULL.part" "$FULL"
  cat "$CACHE/convert.log" "$CACHE/convert.time" >&2
else
  log "cached dump $FULL (made $(stat -c %y "$FULL" | cut -d. -f1))"
  cat "$CACHE/convert.log" "$CACHE/convert.time" 2>/dev/null >&2 || true
fi
DUMP=$FULL
if [[ $LINES != 0 ]]; then
  DUMP=$CACHE/contents-$LINES.dump
  # The header plus LINES entries: a prefix of a depth-first dump is one.
  [[ -s $DUMP && ! $DUMP -ot $FULL ]] || head -n $((LINES + 1)) "$FULL" >"$DUMP"
fi
ENTRIES=$(($(wc -l <"$DUMP") - 1))
log "dump $DUMP: $ENTRIES entries, $(du -h "$DUMP" | cut -f1)"

TMP=$(mktemp -d /var/tmp/ns-migrate-bench.XXXXXX)
PGBIN=/usr/lib/postgresql/15/bin
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

echo "date $(date -u +%FT%TZ), $(nproc) CPUs, load before $(cut -d' ' -f1-3 /proc/loadavg), git $(git -C "$ROOT" rev-parse --short HEAD)"

# Runs ns-migrate under /usr/bin/time; prints its summary line and the
# wall/CPU/peak-RSS line.
run_migrate() {
  local name=$1
  shift
  /usr/bin/time -f "$name: %e s wall, %U s user + %S s system CPU, peak RSS %M KiB" \
    -o "$TMP/$name.time" "$MIGRATE" "$@" --no-progress >"$TMP/$name.out" 2>"$TMP/$name.err" ||
    { cat "$TMP/$name.out" "$TMP/$name.err" >&2; return 1; }
  echo "$name: $(tail -n 1 "$TMP/$name.out")"
  cat "$TMP/$name.time"
  if [[ -s $TMP/$name.err ]]; then head -n 5 "$TMP/$name.err"; fi
}

# --- SQLite ------------------------------------------------------------------
if [[ -z $ONLY || $ONLY == sqlite ]]; then
  DB=$TMP/ns.db
  echo "== SQLite ($DB, load average $(cut -d' ' -f1 /proc/loadavg))"
  run_migrate sqlite-import --from "dump:$DUMP" --to "sqlite://$DB"
  echo "sqlite file: $(du -h "$DB" | cut -f1)"
  if [[ $SQLITE_VERIFY == 1 ]]; then
    run_migrate sqlite-verify --verify-only --from "dump:$DUMP" --to "sqlite://$DB"
  fi
  rm -f "$DB" "$DB"-*
fi

# --- PostgreSQL: a durable throwaway cluster ----------------------------------
# CPU seconds of the cluster: the postmaster with its reaped children
# (backends that ended) plus the living children.
pg_cpu() {
  local ticks
  ticks=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$PG_PID/stat")
  for c in $(pgrep -P "$PG_PID"); do
    ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || echo 0)))
  done
  echo "$ticks $(getconf CLK_TCK)" | awk '{printf "%.1f", $1 / $2}'
}
# Largest VmHWM of any server process while pid $1 runs, every 0.5 s
# (shared_buffers pages a process touched count in its RSS).
pg_peak() {
  local watched=$1 peak=0 kb
  while kill -0 "$watched" 2>/dev/null; do
    for c in $(pgrep -P "$PG_PID"); do
      kb=$(awk '/^VmHWM/ {print $2}' "/proc/$c/status" 2>/dev/null || echo 0)
      [[ ${kb:-0} -gt $peak ]] && peak=$kb
    done
    sleep 0.5
  done
  echo "$peak"
}
if [[ -z $ONLY || $ONLY == postgresql ]]; then
  [[ -x $PGBIN/initdb ]] || { echo "no PostgreSQL 15 server in $PGBIN" >&2; exit 1; }
  if [[ $(id -u) == 0 ]]; then chown postgres: "$TMP"; fi
  chmod 700 "$TMP"
  as_pg "$PGBIN/initdb" -D "$PGDATA_DIR" -U nsbench -A trust -E UTF8 \
    --locale=C --no-sync >"$TMP/initdb.log" 2>&1
  # Durable (fsync, synchronous_commit, full_page_writes as shipped);
  # room for the WAL of big COPY batches between checkpoints
  # (docs/dba.md, "Bulk imports").
  cat >>"$PGDATA_DIR/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$TMP'
fsync = on
synchronous_commit = on
full_page_writes = on
shared_buffers = 256MB
maintenance_work_mem = 256MB
max_wal_size = 4GB
log_min_duration_statement = 2000
log_temp_files = 0
EOF
  PORT=
  for attempt in 1 2 3 4 5; do
    candidate=$((20000 + RANDOM % 30000))
    [[ -n $(ss -Htln "sport = :$candidate") ]] && continue
    if as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$TMP/postgres.log" -w -t 60 \
        -o "-p $candidate" start >/dev/null; then
      PORT=$candidate PG_STARTED=1
      break
    fi
    log "PostgreSQL did not start on port $candidate (attempt $attempt)"
  done
  [[ -n $PORT ]] || { tail -n 30 "$TMP/postgres.log" >&2; exit 1; }
  PG_PID=$(head -n1 "$PGDATA_DIR/postmaster.pid")
  as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$PORT" -U nsbench ns
  URI="postgresql://nsbench@127.0.0.1:$PORT/ns"
  echo "== PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT, data in $PGDATA_DIR (load average $(cut -d' ' -f1 /proc/loadavg))"
  cpu0=$(pg_cpu)
  run_migrate pg-import --from "dump:$DUMP" --to "$URI" &
  job=$!
  peak=$(pg_peak "$job")
  wait "$job"
  cpu1=$(pg_cpu)
  echo "pg server: $(echo "$cpu0 $cpu1" | awk '{printf "%.1f", $2 - $1}') s CPU during the import, largest server process peak RSS $((peak / 1024)) MiB, database $(psql -X -At -h 127.0.0.1 -p "$PORT" -U nsbench -d ns -c "SELECT pg_size_pretty(pg_database_size('ns'))")"
  # Statements over 2 s (the final VACUUM, COPYs that waited), and whether
  # any sort spilled to temporary files.
  grep -o 'duration: .*' "$TMP/postgres.log" | cut -c1-110 | sed 's/^/pg slow: /' || true
  echo "pg temporary files: $(grep -c 'temporary file:' "$TMP/postgres.log" || true)"
  # --verify-only reads the namespace back through Namespace::ReadDir, a
  # few round trips per directory: ~10 min for the whole index
  # (docs/performance.md), so only on request above 1 M entries.
  if [[ $PG_VERIFY == -1 ]]; then
    echo "pg-verify: not run (--no-pg-verify)"
  elif [[ $ENTRIES -le 1000000 || $PG_VERIFY == 1 ]]; then
    run_migrate pg-verify --verify-only --from "dump:$DUMP" --to "$URI"
  else
    echo "pg-verify: skipped above 1,000,000 entries (~10 min through ReadDir); --pg-verify runs it"
  fi
fi
echo "load after $(cut -d' ' -f1-3 /proc/loadavg)"
