#!/usr/bin/env bash
# pNFS throughput (docs/performance.md, "pNFS throughput (issue 6, item 6)"):
#
#   bash bench/pnfs-bench.sh        # as root, ~6 min per round on 2 cores
#
# Starts side by side on 127.0.0.1 and free ports, every data directory
# under /var/tmp (one disk): nfs41d alone (bytes in its own data store),
# nfs41d with 1, 2 and 4 dataservers (1 MiB stripe unit, every data server
# in each layout), and NFS-Ganesha VFS (bench/servers.sh). Then ROUNDS
# times, configuration after configuration, `pnfs-bench` writes a 1 GiB
# file (1 MiB UNSTABLE4 WRITEs, 4 in flight per server, COMMIT), drops the
# page cache (sync; echo 3 > /proc/sys/vm/drop_caches), reads it back on a
# new session and compares every byte. Prints each run with the load
# average at its start, then the medians and the ratio to Ganesha as a
# markdown table (also in $OUT/table.md), and each run's CPU seconds per
# process and for the machine, write and read apart ($OUT/cpu.txt,
# pnfs-bench --cpu-pids). Servers are stopped by pid and the data
# directories removed.
#
# Environment: BENCH_BUILD (build dir, default build/), PNFS_BENCH_OUT
# (results dir), PNFS_BENCH_ROUNDS (default 3), PNFS_BENCH_SIZE (bytes,
# default 1 GiB), PNFS_BENCH_INFLIGHT (default 4), PNFS_BENCH_CONFIGS
# (default "mds ds1 ds2 ds4 ganesha").
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BENCH_BUILD:-$ROOT/build}
OUT=${PNFS_BENCH_OUT:-$BUILD/bench-results/pnfs-$(date +%Y%m%d-%H%M%S)}
ROUNDS=${PNFS_BENCH_ROUNDS:-3}
SIZE=${PNFS_BENCH_SIZE:-1073741824}
INFLIGHT=${PNFS_BENCH_INFLIGHT:-4}
read -r -a CONFIGS <<<"${PNFS_BENCH_CONFIGS:-mds ds1 ds2 ds4 ganesha}"
RUN_LIMIT=600

log() { printf '%s pnfs-bench.sh: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
[[ $(id -u) == 0 ]] || { echo "pnfs-bench.sh: run as root (drop_caches, Ganesha)" >&2; exit 1; }

if [[ ! -f $BUILD/CMakeCache.txt ]]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD" -j2 --target pnfs-bench nfs41d dataserver >/dev/null
BENCH=$BUILD/bench/pnfs-bench NFS41D=$BUILD/nfs41d/nfs41d DS=$BUILD/dataserver/dataserver
if [[ " ${CONFIGS[*]} " == *" ganesha "* ]]; then
  need=()
  command -v ganesha.nfsd >/dev/null || need+=(nfs-ganesha)
  dpkg -s nfs-ganesha-vfs >/dev/null 2>&1 || need+=(nfs-ganesha-vfs)
  if ((${#need[@]})); then
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

source "$ROOT/bench/servers.sh"
mkdir -p "$OUT"
RESULTS=$OUT/results.txt
: >"$RESULTS"
TMP=$(mktemp -d /var/tmp/pnfsbench.XXXXXX)
PIDS=()
cleanup() {
  local rc=$?
  stop_pids "${PIDS[@]}"
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

declare -A PORT NDS CPIDS
# start_nfs41d NAME N: nfs41d on its own data directory, then N data
# servers with the MDS's pNFS key (docs/pnfs.md, "The shared key").
start_nfs41d() {
  local name=$1 n=$2 port pid dsport i
  mkdir -p "$TMP/$name"
  for attempt in 1 2 3; do
    port=$(free_port)
    "$NFS41D" --listen "127.0.0.1:$port" --data-dir "$TMP/$name/mds" \
      --log-level warning >"$OUT/$name-mds.log" 2>&1 &
    pid=$!
    if wait_listen "$port" "$pid"; then break; fi
    kill "$pid" 2>/dev/null || true
    log "nfs41d $name did not listen on $port (attempt $attempt)"
    pid=
  done
  [[ -n $pid ]] || exit 1
  PIDS+=("$pid") PORT[$name]=$port NDS[$name]=$n CPIDS[$name]=$pid
  for ((i = 0; i < n; i++)); do
    mkdir -p "$TMP/$name/ds$i"
    cp "$TMP/$name/mds/pnfs.key" "$TMP/$name/ds$i/pnfs.key"
    for attempt in 1 2 3; do
      dsport=$(free_port)
      "$DS" --listen "127.0.0.1:$dsport" --mds "127.0.0.1:$port" \
        --data-dir "$TMP/$name/ds$i" --log-level warning \
        >"$OUT/$name-ds$i.log" 2>&1 &
      pid=$!
      if wait_listen "$dsport" "$pid"; then
        PIDS+=("$pid") CPIDS[$name]+=",$pid"
        continue 2
      fi
      kill "$pid" 2>/dev/null || true
      log "dataserver $name/ds$i did not listen on $dsport (attempt $attempt)"
    done
    exit 1
  done
}

for c in "${CONFIGS[@]}"; do
  case $c in
    mds) start_nfs41d mds 0 ;;
    ds[0-9]*) start_nfs41d "$c" "${c#ds}" ;;
    ganesha)
      ganesha_start "$TMP/ganesha" "$OUT/ganesha.log" || exit 1
      PIDS+=("$GANESHA_PID") PORT[ganesha]=$GANESHA_PORT NDS[ganesha]=0
      CPIDS[ganesha]=$GANESHA_PID ;;
    *) echo "pnfs-bench.sh: unknown configuration $c" >&2; exit 2 ;;
  esac
done

{
  echo "date: $(date -Is)"
  echo "host: $(nproc) CPUs, $(awk '/MemTotal/ {print $2/1024/1024 " GiB"}' /proc/meminfo), /var/tmp on $(df --output=source /var/tmp | tail -n1)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "ganesha: $(dpkg-query -W -f '${Version}' nfs-ganesha 2>/dev/null || echo '-')"
  echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "size: $SIZE bytes, 1 MiB requests, $INFLIGHT in flight per server, $ROUNDS rounds"
} | tee "$OUT/machine.txt" >&2

for round in $(seq "$ROUNDS"); do
  for c in "${CONFIGS[@]}"; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    log "round $round: $c (load $load)"
    if line=$(timeout "$RUN_LIMIT" "$BENCH" --server "127.0.0.1:${PORT[$c]}" \
        --size "$SIZE" --inflight "$INFLIGHT" --expect-ds "${NDS[$c]}" \
        --drop-caches --label "$c" --cpu-pids "${CPIDS[$c]}" \
        2>"$OUT/$c-$round.err"); then
      echo "$(head -n1 <<<"$line") round=$round load1=$load" | tee -a "$RESULTS" >&2
      tail -n +2 <<<"$line" | sed "s/\$/ round=$round/" | tee -a "$OUT/cpu.txt" >&2
    else
      log "$c round $round FAILED: $(tail -n 3 "$OUT/$c-$round.err")"
    fi
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2

# Medians per configuration and the ratio to Ganesha's median.
python3 - "$RESULTS" <<'PY' | tee "$OUT/table.md"
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    kv = dict(x.split("=", 1) for x in f[1:])
    rows.setdefault(f[0], []).append(kv)
names = {"mds": "nfs41d alone (MDS I/O)", "ds1": "nfs41d + 1 data server",
         "ds2": "nfs41d + 2 data servers", "ds4": "nfs41d + 4 data servers",
         "ganesha": "NFS-Ganesha VFS"}
med = {c: (statistics.median(float(r["write_MBps"]) for r in rs),
           statistics.median(float(r["read_MBps"]) for r in rs))
       for c, rs in rows.items()}
g = med.get("ganesha")
print("| configuration | write MB/s | read MB/s | write / Ganesha | read / Ganesha | runs | load1 at starts |")
print("|---|---:|---:|---:|---:|---:|---|")
for c, rs in rows.items():
    w, r = med[c]
    rw = f"{w / g[0]:.2f}x" if g else "-"
    rr = f"{r / g[1]:.2f}x" if g else "-"
    loads = ", ".join(x["load1"] for x in rs)
    print(f"| {names.get(c, c)} | {w:.0f} | {r:.0f} | {rw} | {rr} | {len(rs)} | {loads} |")
PY
log "results in $OUT"
