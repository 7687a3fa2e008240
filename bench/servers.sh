# Shared by the bench/ scripts (source it): free loopback ports, waiting
# for a listener, and NFS-Ganesha (Debian's nfs-ganesha + nfs-ganesha-vfs)
# with the VFS FSAL, NFSv4.1 only, no grace period, on 127.0.0.1; running
# and stopping a throwaway PostgreSQL cluster as the postgres user.

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

# ganesha_start DIR LOG [EXPORT]: exports EXPORT (default DIR/export) as
# "/" (root not squashed), recovery state in DIR/recov. Sets GANESHA_PORT
# and GANESHA_PID; returns 1 after three ports failed. The caller stops it
# by that pid.
ganesha_start() {
  local g=$1 log=$2 export=${3:-$1/export} port pid
  mkdir -p "$export" "$g/recov"
  for attempt in 1 2 3; do
    port=$(free_port)
    cat >"$g/ganesha.conf" <<CONF
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
  Path = "$export";
  Pseudo = "/";
  Protocols = 4;
  Access_Type = RW;
  Squash = No_Root_Squash;
  SecType = sys;
  FSAL { Name = VFS; }
}
LOG { Default_Log_Level = WARN; }
CONF
    ganesha.nfsd -F -f "$g/ganesha.conf" -L "$log" -p "$g/ganesha.pid" \
      -N NIV_WARN &
    pid=$!
    if wait_listen "$port" "$pid"; then
      GANESHA_PORT=$port GANESHA_PID=$pid
      return 0
    fi
    kill "$pid" 2>/dev/null || true
    echo "ganesha did not listen on $port (attempt $attempt)" >&2
  done
  return 1
}

# stop_pids PID...: SIGTERM to each, up to 10 s for each to end, then
# SIGKILL. Only the pids given: other engineers run the same binaries.
stop_pids() {
  local pid
  for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  done
}

# as_pg CMD...: runs CMD as postgres when root (initdb and pg_ctl refuse
# root), as the caller otherwise.
as_pg() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_stop PGBIN DATADIR: a fast shutdown, an immediate one if that fails.
pg_stop() {
  as_pg "$1/pg_ctl" -D "$2" -m fast -w -t 60 stop >/dev/null ||
    as_pg "$1/pg_ctl" -D "$2" -m immediate -w -t 30 stop >/dev/null || true
}
