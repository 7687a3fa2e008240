#!/usr/bin/env bash
# The README's main command: installs dependencies, builds, and runs the main
# job on the embedded SQLite default. Until the NFS server lands that job is:
# create a namespace (var/ns.db), put a small tree in it and show it with nsh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh"
BIN="$ROOT/build/tools"
mkdir -p "$ROOT/var"
export NS_DB="sqlite://$ROOT/var/ns.db"
if [[ ! -e "$ROOT/var/ns.db" ]]; then
  "$BIN/nsadmin" init
else
  "$BIN/nsadmin" upgrade
fi
"$BIN/nsadmin" version
"$BIN/nsh" mkdir -p /home/alice/projects /data/raw
"$BIN/nsh" touch /home/alice/notes.txt /data/raw/run-0001.dat
"$BIN/nsh" ln -s /data/raw /home/alice/raw 2>/dev/null || true
"$BIN/nsh" chown 1000:1000 /home/alice /home/alice/notes.txt
echo "--- nsh ls -lR / (namespace at $NS_DB)"
"$BIN/nsh" ls -lR -n /
echo "--- nsh stat /home/alice/notes.txt"
"$BIN/nsh" stat /home/alice/notes.txt
echo "--- nsh df -i"
"$BIN/nsh" df -i
