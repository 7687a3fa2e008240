#!/usr/bin/env bash
# READDIR of a big directory with the `ls -l` attributes: nfs41d on SQLite
# vs NFS-Ganesha VFS (docs/performance.md, "READDIR of 100,000 entries"):
#
#   flock /tmp/bench.lock bash bench/readdir-big.sh    # as root
#
# Both servers are configured as in compare.sh (servers.sh). Their data
# lives in READDIR_DIR (default /var/tmp/readdir-big) and is kept between
# runs: the first run creates READDIR_FILES entries per thread in one
# shared directory (nfs-load --keep --top big, ~2 min for 100,000); later
# runs restart both servers on what is there (so a new nfs41d binary is
# measured on the same tree) and only read. Each run then reads the whole
# directory READDIR_PASSES times per server, every client thread
# (READDIR_THREADS, default 2) reading all of it; the first pass meets
# cold server caches (a fresh process), later passes whatever the server
# keeps. The servers run one after the other, each stopped by its pid.
# The load average is printed with every figure, and each pass's CPU time
# per entry of the server process and of nfs-load (utime + stime). READDIR_CLEAN=1 removes
# READDIR_DIR first.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${NFS_LOAD_BUILD:-$ROOT/build}
DIR=${READDIR_DIR:-/var/tmp/readdir-big}
THREADS=${READDIR_THREADS:-2}
FILES=${READDIR_FILES:-50000}
PASSES=${READDIR_PASSES:-3}
SERVERS=${READDIR_SERVERS:-sqlite ganesha}
LOAD=$BUILD/bench/nfs-load NFS41D=$BUILD/nfs41d/nfs41d NSADMIN=$BUILD/tools/nsadmin
for b in "$LOAD" "$NFS41D" "$NSADMIN"; do
  [[ -x $b ]] || { echo "readdir-big.sh: build $b first" >&2; exit 1; }
done
command -v ganesha.nfsd >/dev/null || { echo "readdir-big.sh: needs nfs-ganesha-vfs" >&2; exit 1; }
source "$ROOT/bench/servers.sh"

log() { printf '%s readdir-big.sh: %s (load %s)\n' "$(date +%H:%M:%S)" "$*" \
  "$(cut -d' ' -f1-3 /proc/loadavg)" >&2; }
[[ ${READDIR_CLEAN:-0} == 1 ]] && rm -rf "$DIR"
mkdir -p "$DIR"
PID=
trap '[[ -z $PID ]] || stop_pids "$PID"' EXIT

start() {  # server; sets PORT and PID
  if [[ $1 == sqlite ]]; then
    [[ -e $DIR/sqlite/ns.db ]] || { mkdir -p "$DIR/sqlite"; "$NSADMIN" --db "sqlite://$DIR/sqlite/ns.db" init >/dev/null; }
    for _ in 1 2 3; do
      PORT=$(free_port)
      "$NFS41D" --listen "127.0.0.1:$PORT" --db "sqlite://$DIR/sqlite/ns.db" \
        --data-dir "$DIR/sqlite/data" --log-level warning >>"$DIR/sqlite.log" 2>&1 &
      PID=$!
      wait_listen "$PORT" "$PID" && return 0
      stop_pids "$PID"; PID=
    done
    return 1
  fi
  ganesha_start "$DIR/ganesha" "$DIR/ganesha.log" "$DIR/ganesha/export" || return 1
  PORT=$GANESHA_PORT PID=$GANESHA_PID
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime
# One nfs-load (phases) against the server at PORT/PID; with READDIR
# phases, prints each line with the load average and the server's and
# nfs-load's CPU µs per entry (all phases together).
run_load() {
  local out=$DIR/load.out s0 s1 c
  s0=$(cpu_ticks "$PID")
  /usr/bin/time -o "$DIR/load.time" -f '%U %S' "$LOAD" --server "127.0.0.1:$PORT" \
    --threads "$THREADS" --files "$FILES" --shared-dir --keep --top big \
    --phase-seconds 300 --phases "$1" >"$out" 2>"$DIR/load.err" || {
    log "nfs-load failed: $(tail -n 3 "$DIR/load.err")"; return 1; }
  s1=$(cpu_ticks "$PID")
  c=$(tail -n 1 "$DIR/load.time")
  awk -v la="$(cut -d' ' -f1 /proc/loadavg)" -v srv=$((s1 - s0)) -v cli="$c" '
    { print $0 "  load " la; if ($1 == "readdir") n += $2 }
    END { if (n > 0) { split(cli, u, " ");
      printf "  CPU per entry: server %.2f us, nfs-load %.2f us\n",
        srv * 1e4 / n, (u[1] + u[2]) * 1e6 / n } }' "$out"
}

echo "git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $THREADS threads x $FILES files, $PASSES passes"
for s in $SERVERS; do
  start "$s"
  echo "== $s (load before: $(cut -d' ' -f1-3 /proc/loadavg))"
  # No entries yet: create them first (same server process).
  if [[ ! -e $DIR/$s.created ]]; then
    log "$s: create"
    run_load create && touch "$DIR/$s.created"
  fi
  for pass in $(seq "$PASSES"); do
    log "$s: readdir pass $pass"
    run_load readdir || true
  done
  stop_pids "$PID"; PID=
done
