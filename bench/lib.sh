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

# bench_glusterfs_up NBRICKS [VOLUME-OPTION VALUE]... : one glusterd (own
# state directory and CLI socket, listening on $GL_HOST in our namespace),
# volume vbench "replica NBRICKS" with bricks $WORK/glusterfs/b1.., the given
# volume options set before start, mounted on $MNT (client in the namespace).
# Sets GL (the gluster CLI command) and MOUNT_DESC; call bench_glusterfs_tidy
# after teardown. Returns non-zero when a step fails.
GL_HOST=198.18.0.1
GL_RUN_BEFORE=
GL=()
bench_glusterfs_up() {
    local nb=$1 d=$WORK/glusterfs i bricks=() online=0 _; shift
    bench_netns_make
    mkdir -p "$d/state"
    for i in $(seq "$nb"); do mkdir -p "$d/b$i"; bricks+=("$GL_HOST:$d/b$i"); done
    GL_RUN_BEFORE=$(ls -d /var/run/gluster/* 2>/dev/null || true)
    [ -n "$GL_RUN_BEFORE" ] || GL_RUN_BEFORE=none
    sed -e "s|/var/lib/glusterd|$d/state|" \
        -e "s|^end-volume|    option glusterd-sockfile $d/glusterd.socket\nend-volume|" \
        /etc/glusterfs/glusterd.vol >"$d/glusterd.vol"
    { echo "# glusterd.vol"; cat "$d/glusterd.vol"; } >>"$CUR_LOG"
    "${NS[@]}" glusterd -N -f "$d/glusterd.vol" -l "$LOGS/glusterd.log" -p "$d/glusterd.pid" \
        >"$LOGS/glusterd.out" 2>&1 &
    BG_PIDS+=($!)
    GL=("${NS[@]}" gluster --mode=script "--glusterd-sock=$d/glusterd.socket")
    for _ in $(seq 100); do "${GL[@]}" volume list >/dev/null 2>&1 && break; sleep 0.2; done
    # 'force': the bricks are on one host and on the root file system
    "${GL[@]}" volume create vbench replica "$nb" transport tcp "${bricks[@]}" force >>"$CUR_LOG" 2>&1 || return 1
    while [ $# -ge 2 ]; do
        "${GL[@]}" volume set vbench "$1" "$2" >>"$CUR_LOG" 2>&1 || { log "  glusterfs: volume set $1 $2 failed"; return 1; }
        shift 2
    done
    "${GL[@]}" volume start vbench >>"$CUR_LOG" 2>&1 || return 1
    for _ in $(seq 100); do
        online=$("${GL[@]}" volume status vbench detail 2>/dev/null | grep -c '^Online.*: Y' || true)
        [ "$online" -ge "$nb" ] && break
        sleep 0.2
    done
    [ "$online" -ge "$nb" ] || { log "  glusterfs: only $online bricks online"; return 1; }
    { "${GL[@]}" volume info vbench; "${GL[@]}" volume status vbench; } >>"$CUR_LOG" 2>&1
    "${NS[@]}" mount -t glusterfs -o log-file="$LOGS/glusterfs-client.log" "$GL_HOST:/vbench" "$MNT" >>"$CUR_LOG" 2>&1 || return 1
    bench_wait_mount 30 || return 1
    MOUNT_DESC="glusterd (own state dir and CLI socket, listen $GL_HOST); gluster volume create vbench replica $nb transport tcp $GL_HOST:\$WORK/glusterfs/b1 ... force; volume start; mount -t glusterfs $GL_HOST:/vbench \$WORK/mnt"
}

# bench_glusterfs_brick_pid N : pid of brick N's glusterfsd (from volume status)
bench_glusterfs_brick_pid() {
    "${GL[@]}" volume status vbench detail 2>/dev/null | awk -v b=":$WORK/glusterfs/b$1" '
        /^Brick / { f = substr($0, length($0) - length(b) + 1) == b }
        f && /^Pid/ { print $NF; exit }'
}

# remove what our glusterd left in the system-wide run and log directories
bench_glusterfs_tidy() {
    local f w
    [ -n "$GL_RUN_BEFORE" ] || return 0
    for f in /var/run/gluster/*; do
        [ -e "$f" ] || continue
        grep -qxF "$f" <<<"$GL_RUN_BEFORE" || rm -rf "$f"
    done
    rm -rf /var/run/gluster/vols/vbench /var/run/gluster/shd/vbench 2>/dev/null || true
    w=${WORK#/}
    for f in /var/log/glusterfs/bricks/*"${w//\//-}"*; do
        [ -e "$f" ] && mv "$f" "$LOGS/" 2>/dev/null
    done
    GL_RUN_BEFORE=
}
