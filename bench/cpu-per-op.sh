#!/usr/bin/env bash
# CPU per operation of the server and of the client, phase by phase: nfs41d
# on SQLite vs NFS-Ganesha VFS as shipped (docs/performance.md, "CPU per
# operation of both servers"):
#
#   flock /tmp/bench.lock bash bench/cpu-per-op.sh    # as root
#
# Both servers are started side by side (servers.sh, as compare.sh does).
# For each of CPU_ROUNDS rounds and each server, in turn: one nfs-load
# process per phase of CPU_PHASES (default create,remove; the tree is kept
# between phases with --keep/--top), CPU_THREADS threads (16) x CPU_FILES
# (300) files of CPU_SIZE bytes (3901; "dirs" for directories). Per phase
# it prints ops/s, the server's CPU per op (utime + stime of its process
# from /proc/PID/stat, 10 ms ticks, over the phase), its context switches
# per op (every thread's voluntary + involuntary), and the client's CPU and
# switches per op (/usr/bin/time), with the load average. Servers stop by
# their pids; data under a temporary directory in /var/tmp, removed at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${NFS_LOAD_BUILD:-$ROOT/build}
THREADS=${CPU_THREADS:-16} FILES=${CPU_FILES:-300} SIZE=${CPU_SIZE:-3901}
ROUNDS=${CPU_ROUNDS:-2} PHASES=${CPU_PHASES:-create,remove}
LOAD=$BUILD/bench/nfs-load NFS41D=$BUILD/nfs41d/nfs41d NSADMIN=$BUILD/tools/nsadmin
for b in "$LOAD" "$NFS41D" "$NSADMIN"; do
  [[ -x $b ]] || { echo "cpu-per-op.sh: build $b first" >&2; exit 1; }
done
need=()
command -v ganesha.nfsd >/dev/null || need+=(nfs-ganesha)
dpkg -s nfs-ganesha-vfs >/dev/null 2>&1 || need+=(nfs-ganesha-vfs)
[[ -x /usr/bin/time ]] || need+=(time)
if ((${#need[@]})); then
  echo "cpu-per-op.sh: installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
fi
source "$ROOT/bench/servers.sh"

TMP=$(mktemp -d /var/tmp/cpu-per-op.XXXXXX)
PIDS=()
cleanup() { stop_pids "${PIDS[@]}"; rm -rf "$TMP"; }
trap cleanup EXIT

"$NSADMIN" --db "sqlite://$TMP/ns.db" init >/dev/null
NPORT=$(free_port)
"$NFS41D" --listen "127.0.0.1:$NPORT" --db "sqlite://$TMP/ns.db" \
  --data-dir "$TMP/data" --log-level warning >"$TMP/nfs41d.log" 2>&1 &
NPID=$!
PIDS+=("$NPID")
wait_listen "$NPORT" "$NPID" || { echo "cpu-per-op.sh: nfs41d did not listen" >&2; cat "$TMP/nfs41d.log" >&2; exit 1; }
ganesha_start "$TMP/ganesha" "$TMP/ganesha.log"
PIDS+=("$GANESHA_PID")

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s}'; }
what=(--size "$SIZE"); [[ $SIZE == dirs ]] && what=(--dirs)
ops=$((THREADS * FILES))
echo "server   phase    ops/s  server CPU ms/op  switches/op | client CPU ms/op  switches/op  (threads $THREADS, files $FILES, size $SIZE)"
for round in $(seq "$ROUNDS"); do
  for server in nfs41d ganesha; do
    if [[ $server == nfs41d ]]; then port=$NPORT pid=$NPID; else port=$GANESHA_PORT pid=$GANESHA_PID; fi
    top=cpu$round$server
    IFS=, read -ra phases <<<"$PHASES"
    for i in "${!phases[@]}"; do
      phase=${phases[$i]}
      keep=(); (( i < ${#phases[@]} - 1 )) && keep=(--keep)
      c0=$(cpu_ticks "$pid") s0=$(switches "$pid")
      out=$(/usr/bin/time -f "TIME %U %S %w %c" "$LOAD" --server "127.0.0.1:$port" \
        --threads "$THREADS" --files "$FILES" --phases "$phase" --top "$top" \
        "${what[@]}" "${keep[@]}" --json 2>&1)
      c1=$(cpu_ticks "$pid") s1=$(switches "$pid")
      rate=$(python3 -c "import json,sys; print(next(json.loads(l) for l in sys.stdin if l.startswith('{'))['phases']['$phase']['ops_per_s'])" <<<"$out")
      read -r _ u s w c <<<"$(grep '^TIME' <<<"$out")"
      awk -v sv="$server" -v ph="$phase" -v r="$rate" -v dc=$((c1 - c0)) -v ds=$((s1 - s0)) \
        -v n="$ops" -v u="$u" -v s="$s" -v w="$w" -v c="$c" -v ld="$(cut -d' ' -f1 /proc/loadavg)" \
        'BEGIN { printf "%-8s %-7s %6.0f  %16.3f  %11.1f | %16.3f  %11.1f  load %s\n",
                 sv, ph, r, dc * 10 / n, ds / n, (u + s) * 1000 / n, (w + c) / n, ld }'
    done
  done
done
