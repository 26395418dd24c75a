#!/usr/bin/env bash
# Berth's S3 test server: a single-node Ceph (one monitor, one OSD, radosgw) on 127.0.0.1, for the s3
# storage driver's tests and for trying the driver by hand. Needs Debian's packages:
#   apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw
#
# Usage:  scripts/ceph-s3.sh start    start everything; prints the S3 endpoint and keys on the last line
#         scripts/ceph-s3.sh stop     stop the daemons this script started in $DIR (by their pid files)
#
# Settings (environment):
#   DIR        data, configuration, logs and pid files (default ${TMPDIR:-/tmp}/berth-ceph); `start`
#              wipes it first, so give every concurrent instance its own
#   RGW_PORT   radosgw's S3 port on 127.0.0.1 (default 17480)
#   MON_PORT   the monitor's port (default 16789; never Ceph's usual 6789)
#   BIND_MIN, BIND_MAX   the range the OSD binds its ports in (default 17800-17899; never Ceph's usual
#              6800-7300). Instances may share it: each daemon takes the first free port.
#   STORE      memstore (default: the OSD keeps objects in its memory, starts in about 2 s) or
#              bluestore (a sparse file under $DIR, slower to start, data on disk)
#   MEMSTORE_BYTES  the capacity memstore reports (default 16 GiB; memory is taken only as written)
#   ACCESS_KEY, SECRET_KEY  the S3 user's keys (default berthtestaccess / berthtestsecret)
#
# The daemons run in the background with pid files in $DIR; `stop` sends TERM to those processes
# only (radosgw and the OSD first, then the monitor, as Ceph wants), then KILL after 3 s.
# Everything binds to 127.0.0.1. cephx authentication stays on.
set -euo pipefail

DIR=${DIR:-${TMPDIR:-/tmp}/berth-ceph}
RGW_PORT=${RGW_PORT:-17480}
MON_PORT=${MON_PORT:-16789}
BIND_MIN=${BIND_MIN:-17800}
BIND_MAX=${BIND_MAX:-17899}
STORE=${STORE:-memstore}
MEMSTORE_BYTES=${MEMSTORE_BYTES:-17179869184}
ACCESS_KEY=${ACCESS_KEY:-berthtestaccess}
SECRET_KEY=${SECRET_KEY:-berthtestsecret}
CONF=$DIR/ceph.conf
DAEMONS_LAST_FIRST=("client.rgw osd.0" "mon.a")

# The pid in $DIR/<name>.pid, when that process is still a Ceph daemon (a reused pid is left alone).
daemon_pid() {
  local file=$DIR/$1.pid pid
  [ -f "$file" ] || return 1
  pid=$(cat "$file")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -Eq "(ceph-mon|ceph-osd|radosgw) .*$DIR/ceph.conf" || return 1
  echo "$pid"
}

# A process counts as gone when it no longer exists or is a zombie nobody reaped.
alive() {
  local pid
  for pid in "$@"; do
    ps -o stat= -p "$pid" 2>/dev/null | grep -qv '^Z' && return 0
  done
  return 1
}

stop() {
  local group name pids pid
  for group in "${DAEMONS_LAST_FIRST[@]}"; do
    pids=()
    for name in $group; do
      if pid=$(daemon_pid "$name"); then pids+=("$pid"); fi
    done
    [ "${#pids[@]}" -gt 0 ] || continue
    kill "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 1 15); do
      alive "${pids[@]}" || break
      sleep 0.2
    done
    kill -9 "${pids[@]}" 2>/dev/null || true
  done
}

case "${1:-}" in
  start) ;;
  stop) stop; exit 0 ;;
  *) echo "usage: $0 start|stop   (settings: see the top of this file)" >&2; exit 2 ;;
esac

for cmd in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool; do
  command -v "$cmd" >/dev/null || { echo "ceph-s3: $cmd not found (apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw)" >&2; exit 1; }
done

T0=$(date +%s%N)
lap() { echo "ceph-s3: [+$(( ($(date +%s%N) - T0) / 1000000 )) ms] $*" >&2; }
wait_for() {
  local what=$1
  shift
  for _ in $(seq 1 300); do
    if "$@" >/dev/null 2>&1; then lap "$what"; return 0; fi
    sleep 0.1
  done
  echo "ceph-s3: timed out waiting for $what (logs in $DIR/log)" >&2
  stop
  exit 1
}

stop
rm -rf "$DIR"
mkdir -p "$DIR"/mon "$DIR"/osd "$DIR"/rgw "$DIR"/run "$DIR"/log
FSID=$(cat /proc/sys/kernel/random/uuid)
cat > "$CONF" <<EOF
[global]
fsid = $FSID
mon_host = v1:127.0.0.1:$MON_PORT
public_network = 127.0.0.0/8
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_ipv4 = true
ms_bind_ipv6 = false
ms_bind_msgr2 = false
ms_bind_port_min = $BIND_MIN
ms_bind_port_max = $BIND_MAX
keyring = $DIR/keyring
run_dir = $DIR/run
admin_socket = $DIR/run/\$name.asok
log_file = $DIR/log/\$name.log
pid_file = $DIR/\$name.pid
mon_warn_on_insecure_global_id_reclaim_allowed = false
mon_data_avail_warn = 5
mon_data_avail_crit = 1
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_max_pg_per_osd = 1000
mon_warn_on_pool_no_redundancy = false
paxos_propose_interval = 0.05
osd_mon_report_interval = 1
[mon.a]
mon_data = $DIR/mon
mon_initial_members = a
[osd.0]
osd_data = $DIR/osd
osd_objectstore = $STORE
memstore_device_bytes = $MEMSTORE_BYTES
bluestore_block_path = $DIR/osd.block
bluestore_block_create = true
bluestore_block_size = 21474836480
bluestore_fsck_on_mount = false
bluestore_cache_size = 268435456
osd_memory_target = 939524096
osd_max_object_size = 134217728
[client.rgw]
# tcp_nodelay: without it small responses on kept-alive connections wait ~40 ms for delayed ACKs.
rgw_frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw_data = $DIR/rgw
rgw_dns_name = localhost
rgw_thread_pool_size = 64
# Free the space of overwritten and deleted objects within seconds, not hours (memstore keeps it in RAM).
rgw_gc_obj_min_wait = 5
rgw_gc_processor_period = 5
rgw_gc_processor_max_time = 5
EOF

C=(-c "$CONF")
K=$DIR/keyring
ceph-authtool --create-keyring "$K" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$K" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
ceph-authtool "$K" --gen-key -n osd.0 --cap mon 'allow profile osd' --cap osd 'allow *' --cap mgr 'allow profile osd' >/dev/null
ceph-authtool "$K" --gen-key -n client.rgw --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null
monmaptool --create --clobber --fsid "$FSID" --addv a "[v1:127.0.0.1:$MON_PORT]" "$DIR/monmap" >/dev/null
ceph-mon "${C[@]}" -i a --mkfs --monmap "$DIR/monmap" --keyring "$K"
ceph-mon "${C[@]}" -i a
wait_for "monitor up" ceph "${C[@]}" --connect-timeout 2 mon stat
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
ceph "${C[@]}" osd new "$OSD_UUID" >/dev/null
ceph-osd "${C[@]}" -i 0 --mkfs --osd-uuid "$OSD_UUID" >"$DIR/log/osd-mkfs.out" 2>&1
lap "OSD created ($STORE)"
ceph-osd "${C[@]}" -i 0 2>"$DIR/log/osd.stderr"
wait_for "OSD up" sh -c "ceph -c '$CONF' osd stat | grep -q '1 up'"
radosgw "${C[@]}" -n client.rgw
wait_for "radosgw up" curl -sf "http://127.0.0.1:$RGW_PORT/"
radosgw-admin "${C[@]}" user create --uid=berth-test --display-name=berth-test \
  --access-key="$ACCESS_KEY" --secret="$SECRET_KEY" >/dev/null
lap "S3 user created"
echo "S3 ready: endpoint=http://127.0.0.1:$RGW_PORT accesskey=$ACCESS_KEY secretkey=$SECRET_KEY region=us-east-1 dir=$DIR"
