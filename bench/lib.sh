# bench/lib.sh - shell helpers shared by benchmark harnesses (sourced, not run).
#
# Used by bench/meta/run.sh. The caller sets, before using the helpers:
#   WORK   its work directory       LOGS  directory for daemon logs
#   MNT    the mount point          CUR_LOG  log of the system being set up
# and keeps the PIDs of daemons it starts in the background in BG_PIDS.
# Nothing here installs traps: the caller's EXIT trap calls
# bench_stop_processes, bench_unmount and bench_netns_del.

BG_PIDS=()
NETNS=${NETNS:-vbench-$$}
NETNS_MADE=0
NS=(nsenter "--net=/run/netns/$NETNS")

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# bench_apt_install PKG... : install the Debian packages that are missing
bench_apt_install() {
    local p missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

bench_pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "not installed"; }

bench_in_mounts() { awk -v m="$MNT" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }

bench_wait_mount() { # SECONDS
    local _
    for _ in $(seq $(($1 * 5))); do bench_in_mounts && return 0; sleep 0.2; done
    return 1
}

# Abort a hung FUSE connection so that a stuck process can die (the connection
# id is the minor device number; read from mountinfo, as stat(2) on the hung
# mount would hang too).
bench_abort_fuse() {
    local conn
    conn=$(awk -v m="$MNT" '$5 == m { split($3, d, ":"); print d[2] }' /proc/self/mountinfo | tail -1)
    if [ -n "$conn" ] && [ -w "/sys/fs/fuse/connections/$conn/abort" ]; then
        echo 1 >"/sys/fs/fuse/connections/$conn/abort" 2>/dev/null || true
        log "  aborted FUSE connection $conn"
    fi
    return 0
}

bench_unmount() {
    local _
    for _ in 1 2 3; do
        bench_in_mounts || return 0
        timeout 20 umount "$MNT" 2>/dev/null && continue
        bench_abort_fuse
        umount -l "$MNT" 2>/dev/null || true
    done
}

bench_all_alive() { local p; for p in "${BG_PIDS[@]}"; do kill -0 "$p" 2>/dev/null || return 1; done; }

# Stop the background daemons we started, then whatever still runs in our
# network namespace (all of it is ours); SIGKILL after 10 s.
bench_stop_processes() {
    local p pids _
    for p in "${BG_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    if [ "$NETNS_MADE" = 1 ]; then
        pids=$(ip netns pids "$NETNS" 2>/dev/null || true)
        # shellcheck disable=SC2086
        [ -n "$pids" ] && kill -TERM $pids 2>/dev/null
    fi
    for _ in $(seq 50); do
        pids=
        for p in "${BG_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && pids+=" $p"; done
        [ "$NETNS_MADE" = 1 ] && pids+=" $(ip netns pids "$NETNS" 2>/dev/null || true)"
        [ -z "${pids// /}" ] && break
        sleep 0.2
    done
    # shellcheck disable=SC2086
    [ -n "${pids// /}" ] && { log "  SIGKILL to$pids"; kill -KILL $pids 2>/dev/null || true; }
    for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    BG_PIDS=()
}

# MooseFS refuses loopback addresses (its chunkservers will not connect to a
# master on 127.x), so it runs in a network namespace whose only interface is
# its own loopback carrying 198.18.0.0/24 (RFC 2544 benchmark range).
bench_netns_make() {
    [ "$NETNS_MADE" = 1 ] && return 0
    ip netns add "$NETNS"
    NETNS_MADE=1
    ip -n "$NETNS" link set lo up
    local a
    for a in 198.18.0.1 198.18.0.2 198.18.0.3 198.18.0.4; do
        ip -n "$NETNS" addr add "$a/24" dev lo
    done
}

bench_netns_del() {
    [ "$NETNS_MADE" = 1 ] || return 0
    ip netns del "$NETNS" 2>/dev/null || true
    NETNS_MADE=0
}

# bench_moosefs_up NCHUNKSERVERS : mfsmaster (198.18.0.1) + N chunkservers
# (198.18.0.2..) with data under $WORK/moosefs, mfsmount on $MNT; sets
# MOUNT_DESC. Returns non-zero when a daemon fails or the mount does not come.
MFS_MASTER=198.18.0.1
bench_moosefs_up() {
    local ncs=$1 d=$WORK/moosefs i n=0 _
    bench_netns_make
    mkdir -p "$d/master"
    chmod 755 "$WORK"   # the daemons drop to user mfs and must reach their dirs
    cp /var/lib/mfs/metadata.mfs.empty "$d/master/metadata.mfs"
    echo "*  /  rw,alldirs,admin,maproot=0:0" >"$d/mfsexports.cfg"
    : >"$d/mfstopology.cfg"
    cat >"$d/mfsmaster.cfg" <<EOF
WORKING_USER = mfs
WORKING_GROUP = mfs
DATA_PATH = $d/master
EXPORTS_FILENAME = $d/mfsexports.cfg
TOPOLOGY_FILENAME = $d/mfstopology.cfg
MATOML_LISTEN_HOST = $MFS_MASTER
MATOCS_LISTEN_HOST = $MFS_MASTER
MATOCL_LISTEN_HOST = $MFS_MASTER
EOF
    for i in $(seq "$ncs"); do
        mkdir -p "$d/cs$i/data" "$d/cs$i/chunks"
        echo "$d/cs$i/chunks" >"$d/cs$i/mfshdd.cfg"
        cat >"$d/cs$i/mfschunkserver.cfg" <<EOF
WORKING_USER = mfs
WORKING_GROUP = mfs
DATA_PATH = $d/cs$i/data
HDD_CONF_FILENAME = $d/cs$i/mfshdd.cfg
MASTER_HOST = $MFS_MASTER
BIND_HOST = 198.18.0.$((i + 1))
CSSERV_LISTEN_HOST = 198.18.0.$((i + 1))
EOF
    done
    chown -R mfs:mfs "$d"
    { echo "# mfsmaster.cfg"; cat "$d/mfsmaster.cfg"; } >>"$CUR_LOG"
    "${NS[@]}" mfsmaster -f -c "$d/mfsmaster.cfg" start >"$LOGS/mfsmaster.log" 2>&1 &
    BG_PIDS+=($!)
    sleep 1
    for i in $(seq "$ncs"); do
        "${NS[@]}" mfschunkserver -f -c "$d/cs$i/mfschunkserver.cfg" start >"$LOGS/mfschunkserver$i.log" 2>&1 &
        BG_PIDS+=($!)
    done
    for _ in $(seq 150); do
        n=$("${NS[@]}" mfscli -H "$MFS_MASTER" -SCS 2>/dev/null | grep -c "^chunk servers:" || true)
        [ "$n" -ge "$ncs" ] && break
        bench_all_alive || { log "  moosefs: a daemon exited (see $LOGS/mfs*.log)"; return 1; }
        sleep 0.2
    done
    [ "$n" -ge "$ncs" ] || { log "  moosefs: only $n chunkservers registered"; return 1; }
    # mfsmount in the namespace (its TCP peers are there); the mount itself is
    # in our mount namespace, nsenter --net does not change that
    "${NS[@]}" mfsmount -f "$MNT" -H "$MFS_MASTER" >"$LOGS/mfsmount.log" 2>&1 &
    BG_PIDS+=($!)
    bench_wait_mount 60 || { log "  moosefs: mfsmount did not mount in 60 s"; return 1; }
    MOUNT_DESC="mfsmaster (DATA_PATH \$WORK/moosefs/master, listen $MFS_MASTER) + $ncs mfschunkserver (198.18.0.2.., one chunks dir each under \$WORK/moosefs/csN/chunks), defaults otherwise; mfsmount -f \$WORK/mnt -H $MFS_MASTER (default options)"
}

# bench_machine_info : TSV lines "key<TAB>value" describing this machine
bench_machine_info() {
    printf 'date\t%s\n' "$(date -Is)"
    printf 'kernel\t%s\n' "$(uname -r)"
    printf 'nproc\t%s\n' "$(nproc)"
    printf 'cpu\t%s\n' "$(lscpu | awk -F': +' '/^Model name/ { print $2; exit }')"
    printf 'cores\t%s\n' "$(lscpu | awk -F': +' '/^CPU\(s\)/ { c = $2 } /^Thread\(s\) per core/ { t = $2 } /^Core\(s\) per socket/ { k = $2 } END { printf "%s CPUs (%s cores per socket, %s threads per core)", c, k, t }')"
    printf 'hypervisor\t%s\n' "$(lscpu | awk -F': +' '/^Hypervisor vendor/ { print $2 }')"
    printf 'memory\t%s\n' "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    printf 'os\t%s\n' "$(. /etc/os-release && echo "$PRETTY_NAME")"
    printf 'fs\t%s\n' "$(df -T "$WORK" | awk 'NR == 2 { print $2 " on " $1 " (" $7 ")" }')"
}
