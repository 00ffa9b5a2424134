#!/usr/bin/env bash
# bench/cluster/run.sh - valorfs vs MooseFS vs GlusterFS, side by side in one
# run on this machine: 3 storage servers each, 3-way replication, the same
# workloads, results in bench/results/<date>-cluster.{md,json,png}.
# See bench/README.md ("Cluster benchmark"). Benchmarks never assert times.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH=$(cd "$SCRIPT_DIR/.." && pwd)
REPO=$(cd "$BENCH/.." && pwd)
ALL_SYSTEMS="valorfs,moosefs,glusterfs"
CMDLINE="bench/cluster/run.sh${*:+ $*}"

usage() {
    cat <<EOF
Usage: bench/cluster/run.sh [OPTIONS]

Set up valorfs, MooseFS and GlusterFS one after the other on this machine,
each with 3 storage servers (own data directory each, all under one work
directory on the root file system) and 3-way replication, mount it, run the
same workloads, tear it down. Must run as root (mounts, drop_caches, network
namespace). Installs the Debian packages it needs with apt-get.

Workloads (identical for every system, unpinned):
  seqwrite   fio 1 MiB sequential write of SIZE, psync, --end_fsync=1
  seqread    drop_caches, fio 1 MiB sequential read of the same file
  randread   drop_caches, fio 4 KiB random read over that file, psync QD1,
             O_DIRECT, --numjobs=1 and --numjobs=4, time based
  metadata   bench/metabench.c: create+close / stat / unlink of N files,
             listing an N-entry directory (caches dropped before each phase)

Options:
  --quick            smoke run: SIZE 256m, N 1000, 3 s random-read jobs
  --only LIST        comma list of systems (default: $ALL_SYSTEMS)
  --out DIR          results directory (default bench/results)
  --name STEM        results file stem (default <date>-cluster[-quick])
  --size SIZE        sequential file size, fio syntax (default 1g)
  --n N              files for the metadata workloads (default 10000)
  --runtime S        seconds per random-read job (default 15)
  --work DIR         parent of the work directory (default /var/tmp)
  --keep-work        keep the work directory (logs, raw outputs) afterwards
  -h, --help         show this help

Environment:
  VALORFS_UP_ARGS  extra options for `valorfs up` (e.g. --kv-sync=none --transport=uring)
  VALORFS     valorfs CLI (default build/src/tools/valorfs); the valorfs slot
              is skipped when it does not exist
  PYTHON      python with matplotlib (default /usr/bin/python3)

MooseFS refuses loopback addresses for its master and chunkservers, and
GlusterFS refuses them for bricks, so both peers run inside a network
namespace this script creates (vbench-PID) whose only interface is its own
loopback carrying 198.18.0.0/24 (RFC 2544 benchmark range); nothing in it can
reach outside the namespace. Their FUSE clients live in that namespace too,
the mounts in the host's mount namespace.
EOF
}

QUICK=0
SYSTEMS=$ALL_SYSTEMS
OUTDIR=$BENCH/results
STEM=
SIZE=
NFILES=
RUNTIME=
WORK_PARENT=/var/tmp
KEEP_WORK=0
while [ $# -gt 0 ]; do
    case $1 in
        --quick) QUICK=1 ;;
        --only) SYSTEMS=$2; shift ;;
        --only=*) SYSTEMS=${1#*=} ;;
        --out) OUTDIR=$2; shift ;;
        --out=*) OUTDIR=${1#*=} ;;
        --name) STEM=$2; shift ;;
        --name=*) STEM=${1#*=} ;;
        --size) SIZE=$2; shift ;;
        --size=*) SIZE=${1#*=} ;;
        --n) NFILES=$2; shift ;;
        --n=*) NFILES=${1#*=} ;;
        --runtime) RUNTIME=$2; shift ;;
        --runtime=*) RUNTIME=${1#*=} ;;
        --work) WORK_PARENT=$2; shift ;;
        --work=*) WORK_PARENT=${1#*=} ;;
        --keep-work) KEEP_WORK=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ "$QUICK" = 1 ]; then
    : "${SIZE:=256m}" "${NFILES:=1000}" "${RUNTIME:=3}"
else
    : "${SIZE:=1g}" "${NFILES:=10000}" "${RUNTIME:=15}"
fi
: "${STEM:=$(date +%F)-cluster$([ "$QUICK" = 1 ] && echo -quick)}"
VALORFS=${VALORFS:-$REPO/build/src/tools/valorfs}
# extra `valorfs up` options for the valorfs slot (recorded in the results)
VALORFS_UP_ARGS=${VALORFS_UP_ARGS:-}
PYTHON=${PYTHON:-/usr/bin/python3}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
IFS=, read -r -a SYSTEM_LIST <<<"$SYSTEMS"
for s in "${SYSTEM_LIST[@]}"; do
    case $s in valorfs|moosefs|glusterfs) ;; *) die "unknown system '$s' (valorfs, moosefs, glusterfs)" ;; esac
done
want() { [[ ,$SYSTEMS, == *,$1,* ]]; }

# ---------------------------------------------------------------- packages
PKGS=(fio)
want moosefs && PKGS+=(moosefs-master moosefs-chunkserver moosefs-client moosefs-cli)
want glusterfs && PKGS+=(glusterfs-server glusterfs-client)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
for t in fio timeout cc ip nsenter; do command -v $t >/dev/null || die "$t not found"; done
"$PYTHON" -c 'import matplotlib' 2>/dev/null || die "$PYTHON lacks matplotlib (apt-get install python3-matplotlib)"

# ---------------------------------------------------------------- work area
mkdir -p "$WORK_PARENT"
WORK=$(mktemp -d "$WORK_PARENT/valorfs-bench-cluster.XXXXXX")
chmod 755 "$WORK"   # MooseFS daemons drop to user mfs and must reach their dirs
MNT=$WORK/mnt
RAW=$WORK/raw
LOGS=$WORK/logs
mkdir -p "$MNT" "$RAW" "$LOGS"
printf 'seq\ttarget\tworkload\tvariant\ttool\trc\tseconds\tcommand\n' >"$RAW/index.tsv"
printf 'target\tlabel\tstatus\toptions\tlog\n' >"$RAW/mounts.tsv"

NETNS=vbench-$$
NETNS_MADE=0
NS=(nsenter "--net=/run/netns/$NETNS")
BG_PIDS=()          # daemons started in the foreground of a background job
CUR=                # system being set up / measured
CUR_LOG=
BROKEN=0
VALORFS_UP=
GL_RUN_BEFORE=

in_mounts() { awk -v m="$MNT" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }

# abort a hung FUSE connection so that a stuck benchmark process can die (the
# connection id is the minor device number; from mountinfo, as stat(2) on the
# hung mount would hang too)
abort_fuse() {
    local conn
    conn=$(awk -v m="$MNT" '$5 == m { split($3, d, ":"); print d[2] }' /proc/self/mountinfo | tail -1)
    if [ -n "$conn" ] && [ -w "/sys/fs/fuse/connections/$conn/abort" ]; then
        echo 1 >"/sys/fs/fuse/connections/$conn/abort" 2>/dev/null || true
        log "  aborted FUSE connection $conn"
    fi
    return 0
}

unmount_all() {
    local i
    for i in 1 2 3; do
        in_mounts || return 0
        timeout 20 umount "$MNT" 2>/dev/null && continue
        abort_fuse
        umount -l "$MNT" 2>/dev/null || true
    done
}

# stop every process we started: our background jobs, then whatever still runs
# in our network namespace (GlusterFS bricks and self-heal daemon daemonize
# themselves; they are ours, as the namespace is)
stop_processes() {
    local p pids
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

gluster_tidy() { # remove what our glusterd left in the system-wide run and log dirs
    local f
    [ -n "$GL_RUN_BEFORE" ] || return 0
    for f in /var/run/gluster/*; do
        [ -e "$f" ] || continue
        grep -qxF "$f" <<<"$GL_RUN_BEFORE" || rm -rf "$f"
    done
    rm -rf /var/run/gluster/vols/vbench /var/run/gluster/shd/vbench 2>/dev/null || true
    local w=${WORK#/}
    for f in /var/log/glusterfs/bricks/*"${w//\//-}"*; do
        [ -e "$f" ] && mv "$f" "$LOGS/" 2>/dev/null
    done
    GL_RUN_BEFORE=
}

teardown_current() {
    unmount_all
    if [ -n "$VALORFS_UP" ]; then
        if ! timeout 90 "$VALORFS" down "--data=$VALORFS_UP" >>"$LOGS/valorfs-down.log" 2>&1; then
            log "  valorfs down failed (see $LOGS/valorfs-down.log); down --force"
            timeout 90 "$VALORFS" down "--data=$VALORFS_UP" --force >>"$LOGS/valorfs-down.log" 2>&1 ||
                log "  valorfs down --force failed too"
        fi
        VALORFS_UP=
    fi
    stop_processes
    gluster_tidy
}

cleanup() {
    local rc=$?
    set +e
    teardown_current
    if [ "$NETNS_MADE" = 1 ]; then
        ip netns del "$NETNS" 2>/dev/null
        NETNS_MADE=0
    fi
    if [ "$KEEP_WORK" = 1 ] || [ $rc != 0 ]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

make_netns() {
    [ "$NETNS_MADE" = 1 ] && return 0
    ip netns add "$NETNS"
    NETNS_MADE=1
    ip -n "$NETNS" link set lo up
    local a
    for a in 198.18.0.1 198.18.0.2 198.18.0.3 198.18.0.4 198.18.0.11; do
        ip -n "$NETNS" addr add "$a/24" dev lo
    done
}

# ---------------------------------------------------------------- measuring
log "building metabench"
cc -O2 -Wall -Wextra -Werror -o "$WORK/metabench" "$BENCH/metabench.c"
MB=$WORK/metabench

size_bytes() { # fio-style size (k/m/g suffix, binary) -> bytes
    local s=${1,,}
    case $s in
        *k) echo $(( ${s%k} * 1024 )) ;;
        *m) echo $(( ${s%m} * 1024 * 1024 )) ;;
        *g) echo $(( ${s%g} * 1024 * 1024 * 1024 )) ;;
        *) echo "$s" ;;
    esac
}
SIZE_BYTES=$(size_bytes "$SIZE")
# deadlines: a run that overruns its deadline is declared hung (10 MB/s floor)
SEQ_TO=$((120 + SIZE_BYTES / 10000000))
FIO_TO=$((2 * RUNTIME + 60))
MB_CAP=$((60 + NFILES / 20))          # cap of each metabench phase (s)
MB_TO=$((4 * MB_CAP + 60))

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

SEQ=0
# measure WORKLOAD VARIANT TOOL TIMEOUT cmd...
measure() {
    local w=$1 v=$2 tool=$3 to=$4; shift 4
    SEQ=$((SEQ + 1))
    local out=$RAW/$SEQ.out rc=0 t0 t1
    if [ "$BROKEN" = 1 ]; then
        log "  skip $w/$v ($CUR is broken)"
        printf '%s\t%s\t%s\t%s\t%s\tskipped\t0\t%s\n' "$SEQ" "$CUR" "$w" "$v" "$tool" "$*" >>"$RAW/index.tsv"
        return 0
    fi
    log "  $CUR: $w $v"
    # Watchdog: a request the file system never answers leaves the process in
    # an uninterruptible wait no signal ends, so abort the FUSE connection.
    local fired=$RAW/$SEQ.watchdog
    (
        trap 'kill $sl 2>/dev/null; exit 0' TERM
        sleep "$to" & sl=$!
        wait $sl
        touch "$fired"
        abort_fuse
    ) &
    local wd=$!
    t0=$(date +%s.%N)
    timeout --kill-after=10 $((to + 5)) "$@" >"$out" 2>"$RAW/$SEQ.err" || rc=$?
    t1=$(date +%s.%N)
    kill -TERM $wd 2>/dev/null || true
    wait $wd 2>/dev/null || true
    [ -e "$fired" ] && rc=124
    if [ $rc != 0 ]; then
        log "  $CUR: $w $v FAILED (rc=$rc): $(tail -2 "$RAW/$SEQ.err" | tr '\n' ' ')"
        if [ $rc = 124 ] || [ $rc = 137 ] || ! in_mounts; then
            log "  $CUR: hung or unmounted -> remaining workloads skipped"
            echo "run.sh: $w $v failed rc=$rc, system marked broken" >>"$CUR_LOG"
            BROKEN=1
            abort_fuse
        fi
    fi
    local cmdstr="$*"
    cmdstr=${cmdstr//$WORK/\$WORK}
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$SEQ" "$CUR" "$w" "$v" "$tool" "$rc" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" "$cmdstr" >>"$RAW/index.tsv"
    return 0
}

FIO_SEQ=(fio --bs=1M --ioengine=psync --iomem_align=4k "--size=$SIZE" --output-format=json)
fio_rand() { # VARIANT NUMJOBS
    local args=(fio --name=randread "--filename=$MNT/bench/seq.dat" "--size=$SIZE" --rw=randread
        --bs=4k --ioengine=psync --iodepth=1 --direct=1 --norandommap --randrepeat=0
        --invalidate=0 "--numjobs=$2" --group_reporting --time_based "--runtime=$RUNTIME"
        --output-format=json)
    drop_caches
    measure randread "$1" fio "$FIO_TO" "${args[@]}"
}

run_workloads() {
    mkdir -p "$MNT/bench" || { BROKEN=1; log "  $CUR: mkdir on the mount failed"; }
    [ "$CUR" = moosefs ] && moosefs_goal_check "$MNT/bench"
    drop_caches
    measure seqwrite 1MiB fio "$SEQ_TO" "${FIO_SEQ[@]}" --name=seqwrite \
        "--filename=$MNT/bench/seq.dat" --rw=write --end_fsync=1
    replica_check "$MNT/bench/seq.dat"
    drop_caches
    measure seqread 1MiB fio "$SEQ_TO" "${FIO_SEQ[@]}" --name=seqread \
        "--filename=$MNT/bench/seq.dat" --rw=read
    fio_rand jobs=1 1
    fio_rand jobs=4 4
    measure metadata setup metabench "$MB_TO" "$MB" --dir "$MNT/bench" --ops setup -n "$NFILES"
    measure metadata n="$NFILES" metabench "$MB_TO" "$MB" --dir "$MNT/bench" \
        --ops stat,create,list -n "$NFILES" --max-seconds "$MB_CAP" --drop-caches
}

# after the sequential write: how many copies the file really has (recorded)
replica_check() {
    local f=$1
    [ "$BROKEN" = 1 ] && return 0
    case $CUR in
        moosefs)
            { echo "# mfsfileinfo (first chunks)"; "${NS[@]}" mfsfileinfo "$f" 2>&1 | head -12; } >>"$CUR_LOG" ;;
        glusterfs)
            { echo "# copies of the file on the bricks"; ls -l "$WORK"/glusterfs/b*/bench/seq.dat 2>&1; } >>"$CUR_LOG" ;;
        valorfs)
            { echo "# valorfs status"; timeout 20 "$VALORFS" status "--data=$WORK/valorfs/data" 2>&1 | head -40; } >>"$CUR_LOG" ;;
    esac
    return 0
}

record_mount() { # STATUS SETUP-DESCRIPTION
    printf '%s\tmain\t%s\t%s\t%s\n' "$CUR" "$1" "${2//$WORK/\$WORK}" "$CUR_LOG" >>"$RAW/mounts.tsv"
}

all_alive() { local p; for p in "${BG_PIDS[@]}"; do kill -0 "$p" 2>/dev/null || return 1; done; }

wait_mount() { # SECONDS
    for _ in $(seq $(($1 * 5))); do in_mounts && return 0; sleep 0.2; done
    return 1
}

# ---------------------------------------------------------------- MooseFS
MFS_MASTER=198.18.0.1
moosefs_up() {
    local d=$WORK/moosefs i
    make_netns
    mkdir -p "$d/master"
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
    for i in 1 2 3; do
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
    {
        echo "# mfsmaster.cfg"; cat "$d/mfsmaster.cfg"
        echo "# mfschunkserver.cfg (cs1; cs2, cs3 listen on 198.18.0.3, .4)"; cat "$d/cs1/mfschunkserver.cfg"
    } >>"$CUR_LOG"
    "${NS[@]}" mfsmaster -f -c "$d/mfsmaster.cfg" start >"$LOGS/mfsmaster.log" 2>&1 &
    BG_PIDS+=($!)
    sleep 1
    for i in 1 2 3; do
        "${NS[@]}" mfschunkserver -f -c "$d/cs$i/mfschunkserver.cfg" start >"$LOGS/mfschunkserver$i.log" 2>&1 &
        BG_PIDS+=($!)
    done
    local n=0
    for _ in $(seq 150); do
        n=$("${NS[@]}" mfscli -H "$MFS_MASTER" -SCS 2>/dev/null | grep -c "^chunk servers:" || true)
        [ "$n" -ge 3 ] && break
        all_alive || { log "  moosefs: a daemon exited (see \$WORK/logs/mfs*.log)"; return 1; }
        sleep 0.2
    done
    [ "$n" -ge 3 ] || { log "  moosefs: only $n chunkservers registered"; return 1; }
    "${NS[@]}" mfscli -H "$MFS_MASTER" -SCS >>"$CUR_LOG" 2>&1 || true
    # mfsmount in the namespace (its TCP peers are there); the mount itself is
    # in our mount namespace, nsenter --net does not change that
    "${NS[@]}" mfsmount -f "$MNT" -H "$MFS_MASTER" >"$LOGS/mfsmount.log" 2>&1 &
    BG_PIDS+=($!)
    wait_mount 30 || return 1
    "${NS[@]}" mfssetgoal -r 3 "$MNT" >>"$CUR_LOG" 2>&1
    MOUNT_DESC="mfsmaster (DATA_PATH \$WORK/moosefs/master, listen $MFS_MASTER) + 3 mfschunkserver (198.18.0.2-4:9422, one chunks dir each under \$WORK/moosefs/csN/chunks), defaults otherwise; mfsmount -f \$WORK/mnt -H $MFS_MASTER (default options); mfssetgoal -r 3 on the root"
}
moosefs_goal_check() {
    { echo "# mfsgetgoal"; "${NS[@]}" mfsgetgoal "$1" 2>&1; } >>"$CUR_LOG"
}

# ---------------------------------------------------------------- GlusterFS
GL_HOST=198.18.0.11
glusterfs_up() {
    local d=$WORK/glusterfs i
    make_netns
    mkdir -p "$d/state" "$d/b1" "$d/b2" "$d/b3"
    GL_RUN_BEFORE=$(ls -d /var/run/gluster/* 2>/dev/null || true)
    [ -n "$GL_RUN_BEFORE" ] || GL_RUN_BEFORE=none
    # own state directory and CLI socket: nothing shared with a system glusterd
    sed -e "s|/var/lib/glusterd|$d/state|" \
        -e "s|^end-volume|    option glusterd-sockfile $d/glusterd.socket\nend-volume|" \
        /etc/glusterfs/glusterd.vol >"$d/glusterd.vol"
    { echo "# glusterd.vol"; cat "$d/glusterd.vol"; } >>"$CUR_LOG"
    "${NS[@]}" glusterd -N -f "$d/glusterd.vol" -l "$LOGS/glusterd.log" -p "$d/glusterd.pid" \
        >"$LOGS/glusterd.out" 2>&1 &
    BG_PIDS+=($!)
    GL=("${NS[@]}" gluster --mode=script "--glusterd-sock=$d/glusterd.socket")
    for _ in $(seq 100); do "${GL[@]}" volume list >/dev/null 2>&1 && break; sleep 0.2; done
    # 'force': the three bricks are on one host and on the root file system
    "${GL[@]}" volume create vbench replica 3 transport tcp \
        "$GL_HOST:$d/b1" "$GL_HOST:$d/b2" "$GL_HOST:$d/b3" force >>"$CUR_LOG" 2>&1 || return 1
    "${GL[@]}" volume start vbench >>"$CUR_LOG" 2>&1 || return 1
    local online=0
    for _ in $(seq 100); do
        online=$("${GL[@]}" volume status vbench detail 2>/dev/null | grep -c '^Online.*: Y' || true)
        [ "$online" -ge 3 ] && break
        sleep 0.2
    done
    [ "$online" -ge 3 ] || { log "  glusterfs: only $online bricks online"; return 1; }
    { "${GL[@]}" volume info vbench; "${GL[@]}" volume status vbench; } >>"$CUR_LOG" 2>&1
    "${NS[@]}" mount -t glusterfs -o log-file="$LOGS/glusterfs-client.log" "$GL_HOST:/vbench" "$MNT" >>"$CUR_LOG" 2>&1 || return 1
    wait_mount 30 || return 1
    MOUNT_DESC="glusterd (own state dir and CLI socket, listen $GL_HOST) ; gluster volume create vbench replica 3 transport tcp $GL_HOST:\$WORK/glusterfs/b1 ...b2 ...b3 force ; volume start (default volume options) ; mount -t glusterfs $GL_HOST:/vbench \$WORK/mnt"
}

# ---------------------------------------------------------------- valorfs
# the CLI and the daemons it starts: next to it, or src/<svc>/ of a build tree
valorfs_missing() {
    [ -x "$VALORFS" ] || { echo "${VALORFS#"$REPO"/} not found"; return 1; }
    local bindir svc
    bindir=$(dirname "$VALORFS")
    for svc in mgmtd meta storage fuse; do
        [ -x "$bindir/valorfs-$svc" ] || [ -x "$bindir/../$svc/valorfs-$svc" ] ||
            { echo "valorfs-$svc not found next to ${VALORFS#"$REPO"/}"; return 1; }
    done
    return 0
}

valorfs_up() {
    local d=$WORK/valorfs/data
    mkdir -p "$d"
    VALORFS_UP=$d
    # shellcheck disable=SC2086  # word splitting of the extra options is intended
    timeout 120 "$VALORFS" up "--data=$d" "--mount=$MNT" $VALORFS_UP_ARGS >>"$CUR_LOG" 2>&1 || return 1
    wait_mount 30 || return 1
    MOUNT_DESC="${VALORFS#"$REPO"/} up --data=\$WORK/valorfs/data --mount=\$WORK/mnt${VALORFS_UP_ARGS:+ $VALORFS_UP_ARGS} (defaults: mgmtd + meta + 3 storage servers with 2 targets each, chains of 3 replicas on distinct servers, 127.0.0.1)"
}

# ---------------------------------------------------------------- per system
bench_system() {
    CUR=$1
    BROKEN=0
    CUR_LOG=$LOGS/$CUR.log
    : >"$CUR_LOG"
    log "=== $CUR"
    local why
    if [ "$CUR" = valorfs ] && ! why=$(valorfs_missing); then
        log "valorfs: not built, skipped ($why)"
        printf '%s\tmain\tskipped\t%s\t\n' "$CUR" "not built ($why)" >>"$RAW/mounts.tsv"
        return 0
    fi
    MOUNT_DESC=
    local t0 rc=0
    t0=$(date +%s)
    "${CUR}_up" || rc=$?
    if [ $rc != 0 ] || ! in_mounts; then
        log "  $CUR: setup FAILED; log tail:"; tail -5 "$CUR_LOG" >&2 || true
        record_mount failed "${MOUNT_DESC:-setup failed}"
        teardown_current
        return 0
    fi
    log "  $CUR: up and mounted in $(( $(date +%s) - t0 )) s"
    # other load on the machine shows up in the figures: record it
    printf 'load_%s\t%s\n' "$CUR" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/meta.tsv"
    record_mount ok "$MOUNT_DESC"
    run_workloads
    printf 'load_after_%s\t%s\n' "$CUR" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/meta.tsv"
    log "  $CUR: tearing down"
    teardown_current
}

# ---------------------------------------------------------------- machine info
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "not installed"; }
{
    printf 'date\t%s\n' "$(date -Is)"
    printf 'command\t%s\n' "$CMDLINE"
    printf 'mode\t%s\n' "$([ "$QUICK" = 1 ] && echo quick || echo full)"
    printf 'kernel\t%s\n' "$(uname -r)"
    printf 'nproc\t%s\n' "$(nproc)"
    printf 'cpu\t%s\n' "$(lscpu | awk -F': +' '/^Model name/ { print $2; exit }')"
    printf 'cores\t%s\n' "$(lscpu | awk -F': +' '/^CPU\(s\)/ { c = $2 } /^Thread\(s\) per core/ { t = $2 } /^Core\(s\) per socket/ { k = $2 } END { printf "%s CPUs (%s cores per socket, %s threads per core)", c, k, t }')"
    printf 'hypervisor\t%s\n' "$(lscpu | awk -F': +' '/^Hypervisor vendor/ { print $2 }')"
    printf 'memory\t%s\n' "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    printf 'os\t%s\n' "$(. /etc/os-release && echo "$PRETTY_NAME")"
    printf 'fs\t%s\n' "$(df -T "$WORK" | awk 'NR == 2 { print $2 " on " $1 " (" $7 ")" }')"
    printf 'fio\t%s\n' "$(fio --version)"
    for p in moosefs-master moosefs-chunkserver moosefs-client glusterfs-server glusterfs-client; do
        printf 'pkg_%s\t%s\n' "$p" "$(pkgver $p)"
    done
    printf 'valorfs_binary\t%s\n' "${VALORFS#"$REPO"/}$([ -x "$VALORFS" ] || echo ' (not built)')"
    printf 'git\t%s%s\n' "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)" \
        "$(git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || echo ' (src/ has uncommitted changes)')"
    printf 'pinning\t%s\n' "unpinned (affinity of the run: $(taskset -pc $$ | awk -F': ' '{ print $2 }'))"
    printf 'runtime_s\t%s\n' "$RUNTIME"
    printf 'nfiles\t%s\n' "$NFILES"
    printf 'seq_size\t%s\n' "$SIZE"
    printf 'systems\t%s\n' "$SYSTEMS"
    printf 'netns\t%s\n' "peers in network namespace $NETNS, addresses 198.18.0.x on its loopback"
} >"$RAW/meta.tsv"

# ---------------------------------------------------------------- run
T_START=$(date +%s)
for s in "${SYSTEM_LIST[@]}"; do
    bench_system "$s"
done
printf 'duration_s\t%s\n' "$(( $(date +%s) - T_START ))" >>"$RAW/meta.tsv"

log "writing $OUTDIR/$STEM.{json,md,png}"
"$PYTHON" "$BENCH/report.py" assemble --raw "$RAW" --out "$OUTDIR/$STEM.json"
"$PYTHON" "$SCRIPT_DIR/report.py" render "$OUTDIR/$STEM.json"
log "done in $(( $(date +%s) - T_START )) s: $OUTDIR/$STEM.md"
