#!/usr/bin/env bash
# Installs what building and testing need, from Debian 12's packages.
# Idempotent: when everything is already installed it changes nothing and
# needs no network.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git
  libsqlite3-dev sqlite3           # embedded backend (and its CLI for debugging)
  libpqxx-dev libpq-dev            # PostgreSQL backend
  postgresql postgresql-contrib    # real servers for tests; pgbench for benchmarks
  libfmt-dev libcli11-dev          # formatting; command-line parsing in tools
  libgtest-dev libgmock-dev        # tests
  libtirpc-dev rpcsvc-proto        # ONC RPC/XDR routines (rpc/); rpcgen for nfs41d/proto/nfs4_prot.x
  liburing-dev                     # rpc/'s io_uring event loop (one syscall per inline request)
  libssl-dev                       # HMAC-SHA256 for nfs41d's filehandles; md5/sha checksums
  zlib1g-dev                       # adler32 checksums (libnamespace)
  libtomlplusplus-dev              # nfs41d's TOML config
  libnfsidmap-dev                  # nfs41d's user@domain owners (idmap = "nfsidmap")
  libsimdjson-dev                  # ns-migrate: parsing JSON-lines dumps fast
  libacl1-dev                      # ns-migrate: POSIX ACLs of posix: sources
  libsoci-dev libsoci-mysql4.0     # ns-migrate: dpm: sources (DPM/LFC Cns_* on MySQL)
  default-libmysqlclient-dev       # the MySQL/MariaDB client SOCI's mysql backend uses
  libboost-dev                     # Debian's SOCI headers are built with Boost support
  mariadb-server                   # migrate_dpm_test: a real throwaway MariaDB server
  qemu-system-x86 kmod cpio        # tests/e2e: boot a Debian kernel under qemu (TCG);
                                   # depmod/modprobe read its unpacked modules
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
