#!/usr/bin/env bash
# nfs41d vs NFS-Ganesha in one run (docs/performance.md, "nfs41d vs
# NFS-Ganesha"):
#
#   bash bench/compare.sh          # as root, ~6 min on 2 cores
#
# Starts, side by side on 127.0.0.1 and free ports: nfs41d on SQLite,
# nfs41d on a throwaway durable PostgreSQL cluster (as bench/run.sh), and
# NFS-Ganesha (Debian's nfs-ganesha + nfs-ganesha-vfs, installed here if
# missing) with the VFS FSAL over a directory on the same disk, NFSv4.1
# only. Every data directory is under /var/tmp (a real disk, not tmpfs).
# Runs the same nfs-load workloads against the three, alternating server by
# server, ROUNDS times, then writes the ratio table between the markers in
# docs/performance.md and docs/compare-ganesha.png (gnuplot). Every server
# is stopped by its pid; temporary files are removed at the end.
#
# Environment: NFS_LOAD_BUILD (build dir, default build/), COMPARE_OUT
# (results dir), COMPARE_QUICK=1 (tiny counts, for trying the script),
# COMPARE_THREADS (client thread counts, default "2 8 16"), COMPARE_SYNC=0
# (no "equally durable" Ganesha), COMPARE_WORKLOADS (default "files-3901 dirs-shared bigdir") and
# COMPARE_PHASES (nfs-load phases of the first two, default
# create,stat,readdir,rename,remove) to run only part of it,
# COMPARE_DOCS=0 to leave docs/ alone (table and plot go to the results
# dir only).
#
# The fourth server, "ganesha-sync", is the same Ganesha over ext4 (with a
# journal) on a loop device over a file on the same disk, mounted
# -o sync,dirsync: every namespace change is on stable storage before the
# syscall returns (a journal commit with a cache flush, which the loop
# device passes to the disk as an fsync of its file), as nfs41d's commits
# are before it replies.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${NFS_LOAD_BUILD:-$ROOT/build}
OUT=${COMPARE_OUT:-$BUILD/bench-results/compare-$(date +%Y%m%d-%H%M%S)}
QUICK=${COMPARE_QUICK:-0}
# THREADS: client threads (each its own session, as mdtest's ranks) of the
# files and dirs workloads; per thread FILES and DIRS are divided so that
# every thread count makes about the same number in all. Chosen for ~10
# minutes on 2 cores: the slowest server's durable creates run at a few
# hundred per second.
THREADS=${COMPARE_THREADS:-2 8 16}
SYNC=${COMPARE_SYNC:-1}
WORKLOADS=${COMPARE_WORKLOADS:-files-3901 dirs-shared bigdir}
DOCS=${COMPARE_DOCS:-1}
if [[ $QUICK == 1 ]]; then
  ROUNDS=1 FILES=100 DIRS=100 BIG=500 PHASE_SECS=20
else
  ROUNDS=2 FILES=1600 DIRS=2000 BIG=10000 PHASE_SECS=60
fi
RUN_LIMIT=400

log() { printf '%s compare.sh: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# free_port, wait_listen, ganesha_start, stop_pids.
source "$ROOT/bench/servers.sh"

# --- build and packages -----------------------------------------------------
if [[ ! -f $BUILD/CMakeCache.txt ]]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD" -j2 --target nfs-load nfs41d nsadmin >/dev/null
LOAD=$BUILD/bench/nfs-load NFS41D=$BUILD/nfs41d/nfs41d NSADMIN=$BUILD/tools/nsadmin
need=()
command -v ganesha.nfsd >/dev/null || need+=(nfs-ganesha)
dpkg -s nfs-ganesha-vfs >/dev/null 2>&1 || need+=(nfs-ganesha-vfs)
command -v gnuplot >/dev/null || need+=(gnuplot-nox)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
fi

mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
TMP=$(mktemp -d /var/tmp/nfscompare.XXXXXX)
PIDS=()
PGBIN=/usr/lib/postgresql/15/bin
[[ -x $PGBIN/initdb ]] || PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
PGDATA_DIR=$TMP/pg
PG_STARTED=0
SYNC_LOOP= SYNC_MNT=
cleanup() {
  local rc=$?
  stop_pids "${PIDS[@]}"
  if [[ -n $SYNC_MNT ]]; then umount "$SYNC_MNT" || umount -l "$SYNC_MNT" || true; fi
  if [[ -n $SYNC_LOOP ]]; then losetup -d "$SYNC_LOOP" || true; fi
  if [[ $PG_STARTED == 1 ]]; then
    pg_stop "$PGBIN" "$PGDATA_DIR"
  fi
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- PostgreSQL ---------------------------------------------------------------
if [[ $(id -u) == 0 ]]; then chown postgres: "$TMP"; fi
chmod 711 "$TMP"
as_pg "$PGBIN/initdb" -D "$PGDATA_DIR" -U nsbench -A trust -E UTF8 \
  --locale=C --no-sync >"$OUT/initdb.log" 2>&1
cat >>"$PGDATA_DIR/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$TMP'
fsync = on
synchronous_commit = on
full_page_writes = on
max_connections = 100
shared_buffers = 256MB
EOF
PG_PORT=
for attempt in 1 2 3; do
  candidate=$(free_port)
  if as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$TMP/postgres.log" -w -t 60 \
      -o "-p $candidate" start >/dev/null; then
    PG_PORT=$candidate PG_STARTED=1
    break
  fi
  log "PostgreSQL did not start on $candidate (attempt $attempt)"
done
[[ -n $PG_PORT ]] || { tail -n 30 "$TMP/postgres.log" >&2; exit 1; }
psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U nsbench -d postgres -c "CREATE DATABASE ns"
PG_URI="postgresql://nsbench@127.0.0.1:$PG_PORT/ns"

# --- the three servers -------------------------------------------------------
declare -A PORT
start_nfs41d() {  # name db-uri
  local name=$1 db=$2 port pid
  mkdir -p "$TMP/$name"
  "$NSADMIN" --db "$db" init >/dev/null
  for attempt in 1 2 3; do
    port=$(free_port)
    "$NFS41D" --listen "127.0.0.1:$port" --db "$db" --data-dir "$TMP/$name/data" \
      --log-level warning >"$OUT/$name.log" 2>&1 &
    pid=$!
    if wait_listen "$port" "$pid"; then PIDS+=("$pid"); PORT[$name]=$port; return; fi
    kill "$pid" 2>/dev/null || true
    log "nfs41d $name did not listen on $port (attempt $attempt)"
  done
  exit 1
}
start_ganesha() {  # name export-dir
  ganesha_start "$TMP/$1" "$OUT/$1.log" "$2" || exit 1
  PIDS+=("$GANESHA_PID")
  PORT[$1]=$GANESHA_PORT
}
start_nfs41d sqlite "sqlite://$TMP/sqlite/ns.db"
start_nfs41d postgresql "$PG_URI"
start_ganesha ganesha "$TMP/ganesha/export"
SERVERS=(sqlite postgresql ganesha)
if [[ $SYNC == 1 ]]; then
  truncate -s 2G "$TMP/sync.img"
  SYNC_LOOP=$(losetup -f --show --direct-io=on "$TMP/sync.img" 2>/dev/null ||
    losetup -f --show "$TMP/sync.img")
  mkfs.ext4 -q "$SYNC_LOOP"
  SYNC_MNT=$TMP/sync-mnt
  mkdir -p "$SYNC_MNT"
  mount -o sync,dirsync "$SYNC_LOOP" "$SYNC_MNT"
  start_ganesha ganesha-sync "$SYNC_MNT/export"
  SERVERS+=(ganesha-sync)
fi
log "servers: sqlite ${PORT[sqlite]}, postgresql ${PORT[postgresql]} (pg $PG_PORT), ganesha ${PORT[ganesha]}, ganesha-sync ${PORT[ganesha-sync]:-none}"

{
  echo "date: $(date -Is)"
  echo "host: $(nproc) CPUs, $(awk '/MemTotal/ {print $2/1024/1024 " GiB"}' /proc/meminfo)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "ganesha: $(dpkg-query -W -f '${Version}' nfs-ganesha)"
  [[ -z $SYNC_MNT ]] || echo "ganesha-sync: $(findmnt -n -o FSTYPE,OPTIONS "$SYNC_MNT") on $SYNC_LOOP (direct-io $(cat /sys/block/${SYNC_LOOP#/dev/}/loop/dio 2>/dev/null || echo ?))"
  echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
} | tee "$OUT/machine.txt" >&2

# Runs nfs-load against one server (server workload round threads args...);
# appends {"server", "workload", "round", "load1", "result"} to $RESULTS.
run() {
  local server=$1 workload=$2 round=$3 threads=$4
  shift 4
  local out=$OUT/$workload-t$threads-$server-$round
  log "$workload, $threads threads, round $round on $server"
  if ! timeout "$RUN_LIMIT" "$LOAD" --server "127.0.0.1:${PORT[$server]}" --json \
      --phase-seconds "$PHASE_SECS" --threads "$threads" "$@" >"$out.json" 2>"$out.err"; then
    log "$workload on $server FAILED: $(tail -n 3 "$out.err")"
  fi
  [[ -s $out.json ]] || return 0
  printf '{"server": "%s", "workload": "%s", "round": %s, "load1": %s, "result": %s}\n' \
    "$server" "$workload" "$round" "$(cut -d' ' -f1 /proc/loadavg)" "$(cat "$out.json")" \
    >>"$RESULTS"
}
PHASES=${COMPARE_PHASES:-create,stat,readdir,rename,remove}
wants() { [[ " $WORKLOADS " == *" $1 "* ]]; }
for round in $(seq "$ROUNDS"); do
  for t in $THREADS; do
    if wants files-3901; then
      for s in "${SERVERS[@]}"; do
        run "$s" files-3901 "$round" "$t" --files $((FILES / t)) --size 3901 \
          --phases "$PHASES"
      done
    fi
    if wants dirs-shared; then
      for s in "${SERVERS[@]}"; do
        run "$s" dirs-shared "$round" "$t" --files $((DIRS / t)) --dirs --shared-dir \
          --phases "$PHASES"
      done
    fi
  done
done
# One big shared directory, empty files, kept (the servers are thrown away).
if wants bigdir; then
  for s in "${SERVERS[@]}"; do
    run "$s" bigdir 1 2 --files "$BIG" --shared-dir --keep --phases create,readdir,stat
  done
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2

# --- table and plot ------------------------------------------------------------
DOC=$ROOT/docs/performance.md PLOT=$ROOT/docs/compare-ganesha.png
if [[ $DOCS == 0 ]]; then
  cp "$DOC" "$OUT/performance.md"
  DOC=$OUT/performance.md PLOT=$OUT/compare-ganesha.png
fi
python3 "$ROOT/bench/compare_report.py" "$RESULTS" "$OUT/machine.txt" \
  "$DOC" "$OUT/ratios.dat" | tee "$OUT/summary.md"
gnuplot -e "datafile='$OUT/ratios.dat'; outfile='$PLOT'" \
  "$ROOT/bench/compare.gp"
log "results in $OUT; table in $DOC, plot $PLOT"
