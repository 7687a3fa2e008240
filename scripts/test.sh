#!/usr/bin/env bash
# The README's test command: installs dependencies, builds, runs every test.
# PostgreSQL tests start their own throwaway cluster; nothing is skipped.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh"
cd "$ROOT/build"
rm -f tests/e2e/timings-*.txt
ctest --output-on-failure --timeout 1200 -j1
# Where the end-to-end time went (boot, mount, each step), per backend.
for f in tests/e2e/timings-*.txt; do [[ -e $f ]] && cat "$f"; done
true
