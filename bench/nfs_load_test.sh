#!/usr/bin/env bash
# ctest nfs_load_smoke: nfs-load with tiny counts against an nfs41d on a free
# loopback port with a temporary SQLite namespace; every phase must report
# ops > 0 and no errors. Seconds.
#
#   nfs_load_test.sh NFS_LOAD NFS41D NSADMIN
set -euo pipefail
LOAD=$1 NFS41D=$2 NSADMIN=$3
TMP=$(mktemp -d)
PID=
cleanup() {
  if [[ -n $PID ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
"$NSADMIN" --db "sqlite://$TMP/ns.db" init >/dev/null
PORT=
for attempt in 1 2 3 4 5; do
  candidate=$((20000 + RANDOM % 30000))
  "$NFS41D" --listen "127.0.0.1:$candidate" --db "sqlite://$TMP/ns.db" \
    --data-dir "$TMP/data" --log-level warning >"$TMP/log" 2>&1 &
  PID=$!
  for _ in $(seq 50); do
    if [[ -n $(ss -Htln "sport = :$candidate") ]]; then PORT=$candidate; break; fi
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n $PORT ]] && break
  kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=
  echo "nfs41d did not listen on $candidate (attempt $attempt)" >&2
done
[[ -n $PORT ]] || { cat "$TMP/log" >&2; exit 1; }

check() {  # JSON line on stdin: every phase with ops > 0 and errors 0
  python3 -c '
import json, sys
r = json.load(sys.stdin)
want = ["create", "stat", "readdir", "rename", "remove"]
for p in want:
    ph = r["phases"].get(p)
    assert ph is not None, "phase %s missing" % p
    assert ph["ops"] > 0 and ph["errors"] == 0 and ph["ops_per_s"] > 0, (p, ph)
assert r["phases"]["readdir"]["ops"] >= r["phases"]["create"]["ops"], r
print("ok", " ".join("%s=%d" % (p, r["phases"][p]["ops"]) for p in want))
'
}
for args in "--size 3901" "--dirs --shared-dir"; do
  # shellcheck disable=SC2086
  timeout 60 "$LOAD" --server "127.0.0.1:$PORT" --threads 2 --files 20 \
    --phase-seconds 20 --json $args | check
done
