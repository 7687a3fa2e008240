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
# COMPARE_WORKLOADS (default "files-3901 dirs-shared bigdir") and
# COMPARE_PHASES (nfs-load phases of the first two, default
# create,stat,readdir,rename,remove) to run only part of it,
# COMPARE_DOCS=0 to leave docs/ alone (table and plot go to the results
# dir only).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${NFS_LOAD_BUILD:-$ROOT/build}
OUT=${COMPARE_OUT:-$BUILD/bench-results/compare-$(date +%Y%m%d-%H%M%S)}
QUICK=${COMPARE_QUICK:-0}
WORKLOADS=${COMPARE_WORKLOADS:-files-3901 dirs-shared bigdir}
DOCS=${COMPARE_DOCS:-1}
if [[ $QUICK == 1 ]]; then
  ROUNDS=1 FILES=50 DIRS=50 BIG=500 PHASE_SECS=20
else
  # Per thread, 2 threads. Chosen for ~6 minutes in all on 2 cores: the
  # slowest server's durable creates run at a few hundred per second.
  ROUNDS=2 FILES=600 DIRS=1000 BIG=10000 PHASE_SECS=60
fi
RUN_LIMIT=400

log() { printf '%s compare.sh: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

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
as_pg() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [[ $PG_STARTED == 1 ]]; then
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null ||
      as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m immediate -w -t 30 stop >/dev/null || true
  fi
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  local p
  for _ in $(seq 20); do
    p=$((20000 + RANDOM % 30000))
    [[ -z $(ss -Htln "sport = :$p") ]] && { echo "$p"; return; }
  done
  return 1
}
wait_listen() {  # port pid
  for _ in $(seq 100); do
    [[ -n $(ss -Htln "sport = :$1") ]] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

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
start_ganesha() {
  local g=$TMP/ganesha port pid
  mkdir -p "$g/export" "$g/recov"
  for attempt in 1 2 3; do
    port=$(free_port)
    cat >"$g/ganesha.conf" <<EOF
NFS_CORE_PARAM {
  NFS_Port = $port;
  Bind_addr = 127.0.0.1;
  Protocols = 4;
  Enable_NLM = false;
  Enable_RQUOTA = false;
}
NFSV4 {
  Minor_Versions = 1;
  Graceless = true;
  RecoveryBackend = fs;
  RecoveryRoot = "$g/recov";
}
EXPORT {
  Export_Id = 1;
  Path = "$g/export";
  Pseudo = "/";
  Protocols = 4;
  Access_Type = RW;
  Squash = No_Root_Squash;
  SecType = sys;
  FSAL { Name = VFS; }
}
LOG { Default_Log_Level = WARN; }
EOF
    ganesha.nfsd -F -f "$g/ganesha.conf" -L "$OUT/ganesha.log" -p "$g/ganesha.pid" \
      -N NIV_WARN &
    pid=$!
    if wait_listen "$port" "$pid"; then PIDS+=("$pid"); PORT[ganesha]=$port; return; fi
    kill "$pid" 2>/dev/null || true
    log "ganesha did not listen on $port (attempt $attempt)"
  done
  exit 1
}
start_nfs41d sqlite "sqlite://$TMP/sqlite/ns.db"
start_nfs41d postgresql "$PG_URI"
start_ganesha
log "servers: sqlite ${PORT[sqlite]}, postgresql ${PORT[postgresql]} (pg $PG_PORT), ganesha ${PORT[ganesha]}"

{
  echo "date: $(date -Is)"
  echo "host: $(nproc) CPUs, $(awk '/MemTotal/ {print $2/1024/1024 " GiB"}' /proc/meminfo)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "ganesha: $(dpkg-query -W -f '${Version}' nfs-ganesha)"
  echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
} | tee "$OUT/machine.txt" >&2

# Runs nfs-load against one server; appends {"server", "workload", "round",
# "load1", "result"} to $RESULTS.
run() {
  local server=$1 workload=$2 round=$3
  shift 3
  local out=$OUT/$workload-$server-$round
  log "$workload round $round on $server"
  if ! timeout "$RUN_LIMIT" "$LOAD" --server "127.0.0.1:${PORT[$server]}" --json \
      --phase-seconds "$PHASE_SECS" "$@" >"$out.json" 2>"$out.err"; then
    log "$workload on $server FAILED: $(tail -n 3 "$out.err")"
  fi
  [[ -s $out.json ]] || return 0
  printf '{"server": "%s", "workload": "%s", "round": %s, "load1": %s, "result": %s}\n' \
    "$server" "$workload" "$round" "$(cut -d' ' -f1 /proc/loadavg)" "$(cat "$out.json")" \
    >>"$RESULTS"
}
SERVERS=(sqlite postgresql ganesha)
PHASES=${COMPARE_PHASES:-create,stat,readdir,rename,remove}
wants() { [[ " $WORKLOADS " == *" $1 "* ]]; }
for round in $(seq "$ROUNDS"); do
  if wants files-3901; then
    for s in "${SERVERS[@]}"; do
      run "$s" files-3901 "$round" --threads 2 --files "$FILES" --size 3901 --phases "$PHASES"
    done
  fi
  if wants dirs-shared; then
    for s in "${SERVERS[@]}"; do
      run "$s" dirs-shared "$round" --threads 2 --files "$DIRS" --dirs --shared-dir --phases "$PHASES"
    done
  fi
done
# One big shared directory, empty files, kept (the servers are thrown away).
if wants bigdir; then
  for s in "${SERVERS[@]}"; do
    run "$s" bigdir 1 --threads 2 --files "$BIG" --shared-dir --keep --phases create,readdir,stat
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
