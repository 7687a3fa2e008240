#!/usr/bin/env bash
# The README's main command: installs dependencies, builds, and runs the main
# job: the NFSv4.1 server on the embedded SQLite default. With no arguments
# nfs41d serves the namespace (made on first start) and the data store under
# ~/.local/share/nfs41d, "/" exported read-write to loopback, on
# 127.0.0.1:2049, logging to stderr; Ctrl-C or SIGTERM stops it cleanly,
# SIGHUP re-reads the exports. Arguments are passed on (e.g. --listen
# 127.0.0.1:12049, --config FILE, --db URI, --metrics 127.0.0.1:9149).
#
# Mount it from a Linux client on the same machine:
#   mount -t nfs -o vers=4.1,port=2049 127.0.0.1:/ /mnt
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh"
exec "$ROOT/build/nfs41d/nfs41d" "$@"
