#!/usr/bin/env bash
# bench/recovery/run.sh - failure recovery of valorfs, MooseFS and GlusterFS,
# side by side in one run on this machine: kill -9 one of 3 storage servers
# under a verified fio load, write while it is down, restart it, wait until
# it has caught up. Results: bench/results/<date>-recovery.{md,json,png}.
# See bench/README.md ("Failure recovery"). Benchmarks never assert times.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH=$(cd "$SCRIPT_DIR/.." && pwd)
REPO=$(cd "$BENCH/.." && pwd)
# shellcheck source=../lib.sh
. "$BENCH/lib.sh"
ALL_SYSTEMS="valorfs,moosefs,glusterfs"
CMDLINE="bench/recovery/run.sh${*:+ $*}"

usage() {
    cat <<EOF
Usage: bench/recovery/run.sh [OPTIONS]

For each system, one after the other on this machine: set it up with 3
storage servers and 3 replicas, mount it, start the load, and then

  1. run the load for BEFORE s                          (phase "before")
  2. kill -9 storage server 1 (valorfs-storage / mfschunkserver / brick 1's
     glusterfsd)                                        (phases "stall", "down")
  3. write DOWN-WRITE bytes to a new file while it is down (fio, 1 MiB
     sequential, O_DIRECT, crc32c verify headers), and wait until it has
     been down at least MIN-DOWN s
  4. restart it with its old data and command line     (phase "resync")
  5. wait until it has caught up, at most RESYNC-CAP s (then stop the load
     and wait at most IDLE-CAP s more):
       valorfs    every target of the node SERVING (valorfs status --json)
       MooseFS    no chunk missing, endangered or undergoal (mfscli -SIC)
       GlusterFS  3 bricks online and 'gluster volume heal vbench statistics
                  heal-count': 0 entries on every brick
  6. run the load for AFTER s more                      (phase "after")
  7. stop the load, then read back the file of step 3 with fio --verify_only
  8. compare the replicas: valorfs verify-chains (version, length, CRC32C of
     every chunk on each chain's targets); MooseFS mfscheckfile (3 copies of
     every chunk); GlusterFS md5sum of each file on the 3 bricks

The load during all of it (one fio, 2 jobs, psync, O_DIRECT, 64 KiB):
  rd  random reads over SET-SIZE (2 files, written before with verify
      headers), every block checked (--verify=crc32c)
  wr  random writes over SET-SIZE (2 files) with --verify_backlog=64: every
      64 writes are read back and checked
  both with --continue_on_error=all (errors are counted, not fatal) and
  bandwidth/IOPS logs averaged over 500 ms (--log_avg_msec=500)
plus bench/recovery/probe.c: pwrite 4 KiB + fdatasync + pread every 50 ms; the
longest gap between two of its successful rounds is the stall an application
saw at the kill and at the return.

Measured: the probe's longest stall after the kill and after the restart,
fio errors, throughput (MB/s read+write, mean of the 500 ms samples) of each
phase and its ratio to "before", time to catch up, and bytes written to disk
by the returning server process (/proc/PID/io write_bytes; foreground writes
it receives during the resync are included) per second of resync.

Options:
  --only LIST        comma list of systems (default: $ALL_SYSTEMS)
  --set-size SIZE    data of each load job, fio syntax (default 256m; two
                     jobs: 512 MiB in all)
  --down-write SIZE  written while the server is down (default 512m)
  --before S         load before the kill (default 20)
  --min-down S       least time the server stays down (default 30)
  --resync-cap S     longest wait for the catch-up under load (default 240)
  --after S          load after the catch-up (default 20)
  --idle-cap S       when the catch-up has not finished after RESYNC-CAP s,
                     stop the load and wait at most S s more (default 120)
  --lease-ms MS      valorfs node lease (default 3000); also GlusterFS's
                     network.ping-timeout (rounded up to seconds)
  --base-port P      valorfs up --base-port (default 26100)
  --quick            smoke run: SET-SIZE 64m, DOWN-WRITE 128m, BEFORE 8,
                     MIN-DOWN 12, AFTER 8, RESYNC-CAP 120, IDLE-CAP 60
  --work DIR         parent of the work directory (default /var/tmp)
  --out DIR          results directory (default bench/results)
  --name STEM        results file stem (default <date>-recovery[-quick])
  --keep-work        keep the work directory (logs, raw outputs)
  -h, --help         show this help

Environment:
  VALORFS          valorfs CLI (default build/src/tools/valorfs)
  VALORFS_UP_ARGS  extra options for \`valorfs up\`
  VALORFS_COMMIT   commit the valorfs build was made from (recorded in the
                   results; the repository's HEAD is recorded anyway)
  PYTHON           python with matplotlib (default /usr/bin/python3)

MooseFS and GlusterFS run in a network namespace this script creates (their
daemons refuse loopback addresses); see bench/lib.sh.
EOF
}

SYSTEMS=$ALL_SYSTEMS
SET_SIZE='' DOWN_WRITE='' BEFORE_S='' MIN_DOWN_S='' RESYNC_CAP_S='' AFTER_S='' IDLE_CAP_S=''
LEASE_MS=3000
BASE_PORT=26100
QUICK=0
WORK_PARENT=/var/tmp
OUTDIR=$BENCH/results
STEM=
KEEP_WORK=0
while [ $# -gt 0 ]; do
    opt=$1 val=
    case $opt in --*=*) val=${opt#*=}; opt=${opt%%=*} ;; esac
    case $opt in
        --only|--set-size|--down-write|--before|--min-down|--resync-cap|--after|--idle-cap|--lease-ms|--base-port|--work|--out|--name)
            if [ -z "$val" ]; then
                [ $# -ge 2 ] || { echo "run.sh: $opt needs a value" >&2; exit 2; }
                val=$2; shift
            fi ;;
    esac
    case $opt in
        --only) SYSTEMS=$val ;;
        --set-size) SET_SIZE=$val ;;
        --down-write) DOWN_WRITE=$val ;;
        --before) BEFORE_S=$val ;;
        --min-down) MIN_DOWN_S=$val ;;
        --resync-cap) RESYNC_CAP_S=$val ;;
        --after) AFTER_S=$val ;;
        --idle-cap) IDLE_CAP_S=$val ;;
        --lease-ms) LEASE_MS=$val ;;
        --base-port) BASE_PORT=$val ;;
        --work) WORK_PARENT=$val ;;
        --out) OUTDIR=$val ;;
        --name) STEM=$val ;;
        --quick) QUICK=1 ;;
        --keep-work) KEEP_WORK=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ "$QUICK" = 1 ]; then
    : "${SET_SIZE:=64m}" "${DOWN_WRITE:=128m}" "${BEFORE_S:=8}" "${MIN_DOWN_S:=12}" "${AFTER_S:=8}" "${RESYNC_CAP_S:=120}" "${IDLE_CAP_S:=60}"
else
    : "${SET_SIZE:=256m}" "${DOWN_WRITE:=512m}" "${BEFORE_S:=20}" "${MIN_DOWN_S:=30}" "${AFTER_S:=20}" "${RESYNC_CAP_S:=240}" "${IDLE_CAP_S:=120}"
fi
for v in BEFORE_S MIN_DOWN_S RESYNC_CAP_S AFTER_S IDLE_CAP_S LEASE_MS BASE_PORT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "run.sh: bad number '${!v}'" >&2; exit 2; }
done
for v in SET_SIZE DOWN_WRITE; do
    [[ ${!v} =~ ^[0-9]+[kmgKMG]?$ ]] || { echo "run.sh: bad size '${!v}'" >&2; exit 2; }
done
IFS=, read -r -a SYSTEM_LIST <<<"$SYSTEMS"
for s in "${SYSTEM_LIST[@]}"; do
    case $s in valorfs|moosefs|glusterfs) ;; *) echo "run.sh: unknown system '$s'" >&2; exit 2 ;; esac
done
want() { [[ ,$SYSTEMS, == *,$1,* ]]; }
: "${STEM:=$(date +%F)-recovery$([ "$QUICK" = 1 ] && echo -quick)}"
VALORFS=${VALORFS:-$REPO/build/src/tools/valorfs}
VALORFS_UP_ARGS=${VALORFS_UP_ARGS:-}
PYTHON=${PYTHON:-/usr/bin/python3}
PING_TIMEOUT_S=$(( (LEASE_MS + 999) / 1000 ))

[ "$(id -u)" = 0 ] || die "must run as root"
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
bench_apt_install fio
want moosefs && bench_apt_install moosefs-master moosefs-chunkserver moosefs-client moosefs-cli
want glusterfs && bench_apt_install glusterfs-server glusterfs-client
for t in fio timeout cc ip nsenter setsid; do command -v $t >/dev/null || die "$t not found"; done
"$PYTHON" -c 'import matplotlib' 2>/dev/null || die "$PYTHON lacks matplotlib (apt-get install python3-matplotlib)"

# ---------------------------------------------------------------- work area
mkdir -p "$WORK_PARENT"
WORK=$(mktemp -d "$WORK_PARENT/valorfs-bench-recovery.XXXXXX")
chmod 755 "$WORK"   # MooseFS daemons drop to user mfs and must reach their dirs
MNT=$WORK/mnt
RAW=$WORK/raw
LOGS=$WORK/logs
mkdir -p "$MNT" "$RAW" "$LOGS"
printf 'system\tstatus\tsetup\tnote\n' >"$RAW/systems.tsv"
CUR=
CUR_LOG=
VALORFS_UP=
LOAD_PID=
PROBE_PID=
VICTIM_PID=         # restarted valorfs storage server (ours to stop)

stop_load() { # SIGINT to fio and the probe; abort the mount when they hang
    local p _
    for p in $LOAD_PID $PROBE_PID; do kill -INT "$p" 2>/dev/null || true; done
    for _ in $(seq 300); do
        p=
        for q in $LOAD_PID $PROBE_PID; do kill -0 "$q" 2>/dev/null && p+=" $q"; done
        [ -z "$p" ] && break
        sleep 0.2
    done
    if [ -n "$p" ]; then
        log "  load did not stop in 60 s:$p; aborting the FUSE connection"
        bench_abort_fuse
        # shellcheck disable=SC2086
        kill -KILL $p 2>/dev/null || true
    fi
    for p in $LOAD_PID $PROBE_PID; do wait "$p" 2>/dev/null || true; done
    LOAD_PID='' PROBE_PID=''
}

teardown_current() {
    stop_load
    bench_unmount
    if [ -n "$VALORFS_UP" ]; then
        if ! timeout 90 "$VALORFS" down "--data=$VALORFS_UP" >>"$LOGS/valorfs-down.log" 2>&1; then
            log "  valorfs down failed (see \$WORK/logs/valorfs-down.log); down --force"
            timeout 90 "$VALORFS" down "--data=$VALORFS_UP" --force >>"$LOGS/valorfs-down.log" 2>&1 ||
                log "  valorfs down --force failed too"
        fi
        VALORFS_UP=
    fi
    if [ -n "$VICTIM_PID" ] && kill -0 "$VICTIM_PID" 2>/dev/null; then
        kill -TERM "$VICTIM_PID" 2>/dev/null; sleep 2; kill -KILL "$VICTIM_PID" 2>/dev/null || true
    fi
    VICTIM_PID=
    bench_stop_processes
    bench_glusterfs_tidy
}

cleanup() {
    local rc=$?
    set +e
    trap - INT TERM
    teardown_current
    bench_netns_del
    if [ "$KEEP_WORK" = 1 ] || [ $rc != 0 ]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building probe"
cc -O2 -Wall -Wextra -Werror -o "$WORK/probe" "$SCRIPT_DIR/probe.c"

now_ms() { date +%s%3N; }
event() { # NAME [VALUE] : one line in the current system's event log
    printf '%s\t%s\t%s\n' "$1" "$(now_ms)" "${2:-}" >>"$RAW/$CUR.events.tsv"
}

# ---------------------------------------------------------------- systems
valorfs_missing() {
    [ -x "$VALORFS" ] || { echo "${VALORFS#"$REPO"/} not found"; return 1; }
    return 0
}

valorfs_up() {
    local d=$WORK/valorfs/data
    mkdir -p "$d"
    VALORFS_UP=$d
    local args=("--data=$d" "--mount=$MNT" "--base-port=$BASE_PORT" "--lease-ms=$LEASE_MS")
    # shellcheck disable=SC2206  # word splitting of the extra options is intended
    args+=($VALORFS_UP_ARGS)
    echo "# ${VALORFS#"$REPO"/} up ${args[*]}" >>"$CUR_LOG"
    timeout 180 "$VALORFS" up "${args[@]}" >>"$CUR_LOG" 2>&1 || return 1
    bench_wait_mount 30 || return 1
    local a="${args[*]}"
    MOUNT_DESC="${VALORFS#"$REPO"/} up ${a//$WORK/\$WORK} (mgmtd, meta, 3 storage servers x 2 targets, chains of 3 replicas; 127.0.0.1)"
    TIMEOUT_DESC="node lease ${LEASE_MS} ms (--lease-ms; default 60000): a storage server is declared dead when its lease lapses"
}

moosefs_up() {
    bench_moosefs_up 3 || return 1
    "${NS[@]}" mfssetgoal -r 3 "$MNT" >>"$CUR_LOG" 2>&1 || return 1
    # Replication may start at once (default: 60 s after the master starts)
    # and the chunk loop visits every chunk in 60 s (default 300; 60 is the
    # least mfsmaster accepts), so MooseFS starts its catch-up as early as it
    # can; the per-server replication limits stay at their defaults.
    cat >>"$WORK/moosefs/mfsmaster.cfg" <<EOF
REPLICATIONS_DELAY_INIT = 0
CHUNKS_LOOP_MIN_TIME = 60
EOF
    mfsmaster -c "$WORK/moosefs/mfsmaster.cfg" reload >>"$CUR_LOG" 2>&1 ||
        { log "  moosefs: mfsmaster reload failed"; return 1; }
    { echo "# mfsmaster.cfg"; cat "$WORK/moosefs/mfsmaster.cfg"; } >>"$CUR_LOG"
    MOUNT_DESC+="; mfssetgoal -r 3 on the root; mfsmaster.cfg += REPLICATIONS_DELAY_INIT = 0, CHUNKS_LOOP_MIN_TIME = 60 (reload)"
    TIMEOUT_DESC="a killed chunkserver's TCP connections close at once, so master and clients see it immediately (no timeout involved); REPLICATIONS_DELAY_INIT = 0 and CHUNKS_LOOP_MIN_TIME = 60 (defaults 60 and 300 s; 60 is the least accepted) so replication is held back as little as it can be; CHUNKS_WRITE_REP_LIMIT / CHUNKS_READ_REP_LIMIT at their defaults"
}

glusterfs_up() {
    bench_glusterfs_up 3 network.ping-timeout "$PING_TIMEOUT_S" cluster.heal-timeout 5 || return 1
    MOUNT_DESC+="; volume options network.ping-timeout $PING_TIMEOUT_S, cluster.heal-timeout 5"
    TIMEOUT_DESC="network.ping-timeout ${PING_TIMEOUT_S} s (default 42; like the valorfs lease) and cluster.heal-timeout 5 s (default 600; the self-heal daemon's crawl period; a returning brick also triggers a heal at once); a killed brick's TCP connections close at once, so clients see it immediately"
}

# ---- the storage server that is killed and restarted: storage server 1
VICTIM_ARGV=()
victim_pid() {
    case $CUR in
        valorfs) cat "$VALORFS_UP/run/storage1.pid" 2>/dev/null ;;
        moosefs) echo "${BG_PIDS[1]}" ;;   # bench_moosefs_up: master, cs1, cs2, cs3, mount
        glusterfs) bench_glusterfs_brick_pid 1 ;;
    esac
}

victim_kill() {
    local pid
    pid=$(victim_pid)
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
        log "  $CUR: no storage server 1 to kill"
        return 1
    fi
    mapfile -d '' -t VICTIM_ARGV <"/proc/$pid/cmdline"
    echo "# killed pid $pid: ${VICTIM_ARGV[*]}" >>"$CUR_LOG"
    kill -KILL "$pid"
    event kill "$pid"
}

victim_restart() {
    local pid=
    case $CUR in
        valorfs)
            setsid "${VICTIM_ARGV[@]}" </dev/null >>"$VALORFS_UP/log/storage1.log" 2>&1 &
            pid=$!
            VICTIM_PID=$pid
            echo "$pid" >"$VALORFS_UP/run/storage1.pid" ;;
        moosefs)
            "${NS[@]}" mfschunkserver -f -c "$WORK/moosefs/cs1/mfschunkserver.cfg" start \
                >>"$LOGS/mfschunkserver1.log" 2>&1 &
            pid=$!
            BG_PIDS[1]=$pid ;;
        glusterfs)
            "${GL[@]}" volume start vbench force >>"$CUR_LOG" 2>&1 || true
            local _
            for _ in $(seq 50); do
                pid=$(bench_glusterfs_brick_pid 1)
                [ -n "$pid" ] && [ "$pid" != N/A ] && kill -0 "$pid" 2>/dev/null && break
                pid=
                sleep 0.2
            done ;;
    esac
    event restart "$pid"
    RESTARTED_PID=$pid
    [ -n "$pid" ]
}

# caught_up : 0 when the returning server has caught up; prints a status word
caught_up() {
    case $CUR in
        valorfs)
            local js states
            js=$(timeout 10 "$VALORFS" status --json "--data=$VALORFS_UP" 2>/dev/null) || { echo no-status; return 1; }
            # the node's targets: {"id":..,"node":101,"chain":..,"state":"serving",...}
            states=$(grep -io '"node":101,"chain":[0-9]*,"state":"[a-z]*"' <<<"$js" | sed 's/.*"state":"//; s/"//' | sort | uniq -c | tr -s ' \n' ' ')
            echo "${states:-none}"
            [ -n "$states" ] && ! grep -qiE '"node":101,"chain":[0-9]+,"state":"(syncing|offline|waiting)"' <<<"$js" ;;
        moosefs)
            local m cs
            m=$("${NS[@]}" mfscli -H "$MFS_MASTER" -SIC -p -s '|' 2>/dev/null) || { echo no-status; return 1; }
            cs=$("${NS[@]}" mfscli -H "$MFS_MASTER" -SCS -p -s '|' 2>/dev/null | grep -c '^chunk servers:' || true)
            local bad
            bad=$(awk -F'|' '/^all chunks matrix:/ && $2 ~ /chunkclass (missing|endangered|undergoal):/ { s += $3 } END { print s + 0 }' <<<"$m")
            echo "cs=$cs not-at-goal=$bad"
            [ "$cs" -ge 3 ] && [ "$bad" = 0 ] ;;
        glusterfs)
            # the count of the bricks' heal indices, through glusterd and the
            # self-heal daemon ('volume heal vbench info' runs glfsheal, which
            # only finds a glusterd on the default socket, not ours)
            local h n online
            online=$("${GL[@]}" volume status vbench detail 2>/dev/null | grep -c '^Online.*: Y' || true)
            h=$(timeout 30 "${GL[@]}" volume heal vbench statistics heal-count 2>/dev/null) || { echo "online=$online no-heal-count"; return 1; }
            n=$(awk -F': *' '/^Number of entries:/ { s += $2; k++ } END { print (k == 3 ? s : -1) }' <<<"$h")
            echo "online=$online entries=$n"
            [ "$online" -ge 3 ] && [ "$n" = 0 ] ;;
    esac
}

# replica_check : are the replicas identical after the catch-up? Output in
# $RAW/$CUR.replicas.txt, exit status 0 when they are.
replica_check() {
    case $CUR in
        valorfs)
            # valorfs verify-chains compares (ino, index, version, length,
            # CRC32C) of every chunk across each chain's targets
            "$VALORFS" verify-chains --help >/dev/null 2>&1 || { echo "valorfs verify-chains: not in this build"; return 2; }
            timeout 120 "$VALORFS" verify-chains "--data=$VALORFS_UP" ;;
        moosefs)
            # every chunk of every file with 3 valid copies
            local f out rc=0
            for f in "$MNT"/load/* "$MNT/down.dat" "$MNT/probe.dat"; do
                out=$("${NS[@]}" mfscheckfile "$f" 2>&1) || rc=1
                echo "$out"
                grep -q 'chunks with [012] cop' <<<"$out" && rc=1
            done
            return $rc ;;
        glusterfs)
            # the same bytes on the three bricks
            local f rel sums rc=0
            for f in "$WORK"/glusterfs/b1/load/* "$WORK/glusterfs/b1/down.dat" "$WORK/glusterfs/b1/probe.dat"; do
                rel=${f#"$WORK"/glusterfs/b1/}
                sums=$(cd "$WORK/glusterfs" && md5sum "b1/$rel" "b2/$rel" "b3/$rel" 2>&1)
                echo "$sums"
                [ "$(awk '{ print $1 }' <<<"$sums" | sort -u | wc -l)" = 1 ] || rc=1
            done
            return $rc ;;
    esac
}

proc_io() { # PID -> "rchar wchar read_bytes write_bytes" (zeros when gone)
    awk '/^rchar/ { r = $2 } /^wchar/ { w = $2 } /^read_bytes/ { rb = $2 } /^write_bytes/ { wb = $2 }
         END { printf "%d %d %d %d", r, w, rb, wb }' "/proc/$1/io" 2>/dev/null || echo "0 0 0 0"
}

# ---------------------------------------------------------------- the load
FIO_COMMON=(--ioengine=psync --direct=1 --bs=64k --verify=crc32c --nrfiles=2)
set_bytes() { # fio size -> bytes
    local s=${1,,}
    case $s in
        *k) echo $(( ${s%k} * 1024 )) ;; *m) echo $(( ${s%m} * 1048576 )) ;;
        *g) echo $(( ${s%g} * 1073741824 )) ;; *) echo "$s" ;;
    esac
}
FILE_SIZE=$(( $(set_bytes "$SET_SIZE") / 2 ))

load_jobfile() { # -> path of the fio job file of the load
    local f=$RAW/$CUR.load.fio
    cat >"$f" <<EOF
[global]
directory=$MNT/load
ioengine=psync
direct=1
bs=64k
verify=crc32c
verify_fatal=0
continue_on_error=all
nrfiles=2
filesize=$FILE_SIZE
size=$((2 * FILE_SIZE))
time_based
runtime=3600
log_avg_msec=500
log_unix_epoch=1
write_bw_log=$RAW/$CUR
write_iops_log=$RAW/$CUR

[rd]
rw=randread

[wr]
rw=randwrite
verify_backlog=64
EOF
    echo "$f"
}

DOWN_FIO=(fio --name=down "--filename=$MNT/down.dat" --rw=write --bs=1m "--size=$DOWN_WRITE"
    --ioengine=psync --direct=1 --verify=crc32c --do_verify=0 --end_fsync=1 --output-format=json)

run_recovery() {
    local t0 t_kill t_restart t_done status rc
    mkdir -p "$MNT/load" || { log "  $CUR: mkdir on the mount failed"; return 1; }
    log "  $CUR: writing the load's files (2 x $SET_SIZE)"
    event prefill_start
    for j in rd wr; do
        timeout 600 fio "--name=$j" "--directory=$MNT/load" --rw=write "${FIO_COMMON[@]}" \
            "--filesize=$FILE_SIZE" "--size=$((2 * FILE_SIZE))" --do_verify=0 --end_fsync=1 \
            --output-format=json >"$RAW/$CUR.prefill-$j.json" 2>>"$CUR_LOG" ||
            { log "  $CUR: prefill $j failed"; return 1; }
    done
    event prefill_done
    "$WORK/probe" --file "$MNT/probe.dat" >"$RAW/$CUR.probe.tsv" 2>>"$CUR_LOG" &
    PROBE_PID=$!
    fio --output-format=json "--output=$RAW/$CUR.load.json" "$(load_jobfile)" 2>"$RAW/$CUR.load.err" &
    LOAD_PID=$!
    event load_start
    log "  $CUR: load running; kill in $BEFORE_S s"
    sleep "$BEFORE_S"
    kill -0 "$LOAD_PID" 2>/dev/null || { log "  $CUR: fio load exited early: $(tail -2 "$RAW/$CUR.load.err")"; return 1; }
    victim_kill || return 1
    t_kill=$(date +%s)
    log "  $CUR: storage server 1 killed; writing $DOWN_WRITE while it is down"
    event down_write_start
    rc=0
    timeout $((300 + $(set_bytes "$DOWN_WRITE") / 2000000)) "${DOWN_FIO[@]}" \
        >"$RAW/$CUR.down-write.json" 2>"$RAW/$CUR.down-write.err" || rc=$?
    event down_write_done "$rc"
    [ "$rc" = 0 ] || log "  $CUR: down write failed rc=$rc: $(tail -2 "$RAW/$CUR.down-write.err" | tr '\n' ' ')"
    t0=$(( t_kill + MIN_DOWN_S - $(date +%s) ))
    [ "$t0" -gt 0 ] && sleep "$t0"
    echo "# before restart: $(caught_up || true)" >>"$CUR_LOG"
    victim_restart || { log "  $CUR: restart failed"; return 1; }
    t_restart=$(date +%s)
    local io0
    io0=$(proc_io "$RESTARTED_PID")
    log "  $CUR: restarted (pid $RESTARTED_PID); waiting for the catch-up (at most $RESYNC_CAP_S s)"
    t_done=
    while [ $(( $(date +%s) - t_restart )) -lt "$RESYNC_CAP_S" ]; do
        if status=$(caught_up); then
            t_done=$(date +%s)
            break
        fi
        printf '%s\t%s\n' "$(now_ms)" "$status" >>"$RAW/$CUR.catchup.tsv"
        sleep 0.5
    done
    printf '%s\t%s\n' "$(now_ms)" "$status" >>"$RAW/$CUR.catchup.tsv"
    local io1
    if [ -n "$t_done" ]; then
        io1=$(proc_io "$RESTARTED_PID")
        event caught_up "$status"
        log "  $CUR: caught up in $(( t_done - t_restart )) s ($status)"
        sleep "$AFTER_S"
        event load_stop
        stop_load
        event load_stopped
    else
        # not caught up under load (e.g. chunks locked by ongoing writes):
        # stop the load and see whether it finishes without it
        event catchup_timeout "$status"
        log "  $CUR: not caught up after $RESYNC_CAP_S s under load ($status); stopping the load, waiting up to $IDLE_CAP_S s more"
        event load_stop
        stop_load
        event load_stopped
        t0=$(date +%s)
        while [ $(( $(date +%s) - t0 )) -lt "$IDLE_CAP_S" ]; do
            if status=$(caught_up); then
                t_done=$(date +%s)
                break
            fi
            printf '%s\t%s\n' "$(now_ms)" "$status" >>"$RAW/$CUR.catchup.tsv"
            sleep 0.5
        done
        io1=$(proc_io "$RESTARTED_PID")
        if [ -n "$t_done" ]; then
            event caught_up_idle "$status"
            log "  $CUR: caught up $(( t_done - t_restart )) s after the restart, without load ($status)"
        else
            event catchup_idle_timeout "$status"
            log "  $CUR: still not caught up ($status)"
        fi
    fi
    printf '%s\t%s\t%s\n' "$CUR" "$io0" "$io1" >>"$RAW/victim-io.tsv"
    log "  $CUR: verifying $DOWN_WRITE written while the server was down"
    rc=0
    timeout 600 "${DOWN_FIO[@]}" --verify_only --do_verify=1 >"$RAW/$CUR.verify.json" 2>"$RAW/$CUR.verify.err" || rc=$?
    event verify_done "$rc"
    log "  $CUR: comparing the replicas"
    rc=0
    replica_check >"$RAW/$CUR.replicas.txt" 2>&1 || rc=$?
    event replicas_done "$rc"
    log "  $CUR: replicas $([ $rc = 0 ] && echo identical || echo "NOT identical / not checked (rc=$rc)")"
    {
        echo "# fio load stderr (first lines)"; head -20 "$RAW/$CUR.load.err"
        echo "# final state"; caught_up || true
    } >>"$CUR_LOG" 2>&1
    case $CUR in
        valorfs) timeout 10 "$VALORFS" status "--data=$VALORFS_UP" >>"$CUR_LOG" 2>&1 || true
            # what mgmtd and the storage servers said about the return
            grep -hiE 'resync|syncing|rejoin' "$VALORFS_UP"/log/mgmtd*.log "$VALORFS_UP"/log/storage*.log \
                >"$RAW/valorfs.resync-log.txt" 2>/dev/null || true ;;
        moosefs) "${NS[@]}" mfscli -H "$MFS_MASTER" -SIC >>"$CUR_LOG" 2>&1 || true ;;
        glusterfs) "${GL[@]}" volume heal vbench statistics heal-count >>"$CUR_LOG" 2>&1 || true ;;
    esac
    return 0
}

bench_system() {
    CUR=$1
    CUR_LOG=$LOGS/$CUR.log
    : >"$CUR_LOG"
    : >"$RAW/$CUR.events.tsv"
    log "=== $CUR"
    local why
    if [ "$CUR" = valorfs ] && ! why=$(valorfs_missing); then
        log "valorfs: not built, skipped ($why)"
        printf '%s\tskipped\t%s\t\n' "$CUR" "not built ($why)" >>"$RAW/systems.tsv"
        return 0
    fi
    MOUNT_DESC='' TIMEOUT_DESC=''
    local rc=0
    event setup_start
    "${CUR}_up" || rc=$?
    if [ $rc != 0 ] || ! bench_in_mounts; then
        log "  $CUR: setup FAILED; log tail:"; tail -5 "$CUR_LOG" >&2 || true
        printf '%s\tfailed\t%s\t%s\n' "$CUR" "${MOUNT_DESC:-setup failed}" "$TIMEOUT_DESC" >>"$RAW/systems.tsv"
        teardown_current
        return 0
    fi
    event setup_done
    printf 'load_%s\t%s\n' "$CUR" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/meta.tsv"
    rc=0
    run_recovery || rc=$?
    printf '%s\t%s\t%s\t%s\n' "$CUR" "$([ $rc = 0 ] && echo ok || echo failed)" \
        "${MOUNT_DESC//$WORK/\$WORK}" "$TIMEOUT_DESC" >>"$RAW/systems.tsv"
    log "  $CUR: tearing down"
    teardown_current
}

# ---------------------------------------------------------------- machine info
{
    bench_machine_info
    printf 'command\t%s\n' "$CMDLINE"
    printf 'mode\t%s\n' "$([ "$QUICK" = 1 ] && echo quick || echo full)"
    printf 'fio\t%s\n' "$(fio --version)"
    for p in moosefs-master moosefs-chunkserver moosefs-client glusterfs-server glusterfs-client; do
        printf 'pkg_%s\t%s\n' "$p" "$(bench_pkgver $p)"
    done
    printf 'valorfs_binary\t%s\n' "${VALORFS}$([ -x "$VALORFS" ] || echo ' (not built)')"
    printf 'valorfs_up_args\t%s\n' "$VALORFS_UP_ARGS"
    # the commit the valorfs binaries were built from, when the build is not
    # of this work tree (e.g. a `git archive` snapshot); recorded as given
    [ -n "${VALORFS_COMMIT:-}" ] && printf 'valorfs_commit\t%s\n' "$VALORFS_COMMIT"
    printf 'git\t%s%s\n' "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)" \
        "$(git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || echo ' (src/ has uncommitted changes)')"
    printf 'set_size\t%s\n' "$SET_SIZE"
    printf 'down_write\t%s\n' "$DOWN_WRITE"
    printf 'before_s\t%s\n' "$BEFORE_S"
    printf 'min_down_s\t%s\n' "$MIN_DOWN_S"
    printf 'after_s\t%s\n' "$AFTER_S"
    printf 'resync_cap_s\t%s\n' "$RESYNC_CAP_S"
    printf 'idle_cap_s\t%s\n' "$IDLE_CAP_S"
    printf 'lease_ms\t%s\n' "$LEASE_MS"
    printf 'systems\t%s\n' "$SYSTEMS"
} >"$RAW/meta.tsv"

T_START=$(date +%s)
for s in "${SYSTEM_LIST[@]}"; do
    bench_system "$s"
done
printf 'duration_s\t%s\n' "$(( $(date +%s) - T_START ))" >>"$RAW/meta.tsv"

log "writing $OUTDIR/$STEM.{json,md,png}"
"$PYTHON" "$SCRIPT_DIR/report.py" assemble --raw "$RAW" --out "$OUTDIR/$STEM.json"
"$PYTHON" "$SCRIPT_DIR/report.py" render "$OUTDIR/$STEM.json"
log "done in $(( $(date +%s) - T_START )) s: $OUTDIR/$STEM.md"
