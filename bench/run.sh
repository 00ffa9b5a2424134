#!/usr/bin/env bash
# bench/run.sh - valorfs FUSE engine benchmark harness.
#
# Runs every workload for every target, side by side in one run, over the
# same tmpfs backing directory, and writes bench/results/<stem>.{md,json,png}.
# See bench/README.md. Benchmarks never assert times.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
ALL_TARGETS="tmpfs,valorfs-classic,valorfs-xfuse,valorfs-uring,valorfs-a05,fuse-overlayfs,bindfs,mergerfs"
CMDLINE="bench/run.sh${*:+ $*}"

usage() {
    cat <<EOF
Usage: bench/run.sh [OPTIONS]

Benchmark valorfs-fuse (classic, xfuse, uring, mixed transports) against
tmpfs and the Debian FUSE peers fuse-overlayfs, bindfs and mergerfs, all over
one tmpfs backing directory. Must run as root (mounts, drop_caches).

Workloads per target:
  metadata   metabench: stat of N files, create+close+unlink of N files,
             listing an N-entry directory (unpinned and pinned to CPU 0)
  randread   4 KiB random read QD1 (fio psync, O_DIRECT so every read reaches
             the daemon), 1 and 4 jobs, unpinned and pinned (taskset -c 0);
             plus metabench's own QD1 pread latency (unpinned and pinned)
  seqread    1 MiB sequential read, cold (drop_caches, fresh mount; valorfs
             with --no-keep-cache) and warm (second pass after a first)
  seqwrite   1 MiB sequential write, cold and warm (overwrite pass)
  sweep      fio randread 4 KiB QD1, numjobs 1 2 4 8; valorfs classic/xfuse
             are remounted with --threads=numjobs

Options:
  --quick              smoke run: N=1000, 2 s per fio job, 256 MiB seq file
  --targets LIST       comma list (default: $ALL_TARGETS)
  --runtime S          seconds per time-based fio job (default 10, quick 2)
  --n N                files for the metadata workloads (default 10000)
  --seq-size SIZE      sequential file size, fio syntax (default 1g, quick 256m)
  --rand-size SIZE     random-read file size (default 256m)
  --sweep LIST         numjobs for the sweep (default 1,2,4,8); "none" skips it
  --repeat K           run each random-read job (QD1 and sweep) K times; the
                       report shows the median (default 1)
  --out DIR            results directory (default bench/results)
  --name STEM          results file stem (default <date>-fuse-engine[-quick])
  --keep-work          keep the work directory (logs, raw outputs) afterwards
  -h, --help           show this help

Environment:
  VALORFS_FUSE   valorfs-fuse binary (default build-bench/src/tools/valorfs-fuse)
  MERGERFS_OPTS  mergerfs options (default minfreespace=0,cache.files=partial)
  BINDFS_OPTS    bindfs options (default big_writes)
  PYTHON         python with matplotlib (default /usr/bin/python3)
EOF
}

QUICK=0
TARGETS=$ALL_TARGETS
RUNTIME=
NFILES=
SEQ_SIZE=
RAND_SIZE=256m
SWEEP=1,2,4,8
REPEAT=1
OUTDIR=$SCRIPT_DIR/results
STEM=
KEEP_WORK=0
while [ $# -gt 0 ]; do
    case $1 in
        --quick) QUICK=1 ;;
        --targets) TARGETS=$2; shift ;;
        --targets=*) TARGETS=${1#*=} ;;
        --runtime) RUNTIME=$2; shift ;;
        --runtime=*) RUNTIME=${1#*=} ;;
        --n) NFILES=$2; shift ;;
        --n=*) NFILES=${1#*=} ;;
        --seq-size) SEQ_SIZE=$2; shift ;;
        --seq-size=*) SEQ_SIZE=${1#*=} ;;
        --rand-size) RAND_SIZE=$2; shift ;;
        --rand-size=*) RAND_SIZE=${1#*=} ;;
        --sweep) SWEEP=$2; shift ;;
        --sweep=*) SWEEP=${1#*=} ;;
        --repeat) REPEAT=$2; shift ;;
        --repeat=*) REPEAT=${1#*=} ;;
        --out) OUTDIR=$2; shift ;;
        --out=*) OUTDIR=${1#*=} ;;
        --name) STEM=$2; shift ;;
        --name=*) STEM=${1#*=} ;;
        --keep-work) KEEP_WORK=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ "$QUICK" = 1 ]; then
    : "${RUNTIME:=2}" "${NFILES:=1000}" "${SEQ_SIZE:=256m}"
else
    : "${RUNTIME:=10}" "${NFILES:=10000}" "${SEQ_SIZE:=1g}"
fi
[ "$SWEEP" = none ] && SWEEP=
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --repeat needs a positive integer" >&2; exit 2; }
: "${STEM:=$(date +%F)-fuse-engine$([ "$QUICK" = 1 ] && echo -quick)}"
VALORFS_FUSE=${VALORFS_FUSE:-$REPO/build-bench/src/tools/valorfs-fuse}
MERGERFS_OPTS=${MERGERFS_OPTS:-minfreespace=0,cache.files=partial}
BINDFS_OPTS=${BINDFS_OPTS:-big_writes}
PYTHON=${PYTHON:-/usr/bin/python3}
PIN_CPU=0

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
for t in fio taskset timeout cc; do command -v $t >/dev/null || die "$t not found"; done
"$PYTHON" -c 'import matplotlib' 2>/dev/null || die "$PYTHON lacks matplotlib (apt-get install python3-matplotlib)"
IFS=, read -r -a TARGET_LIST <<<"$TARGETS"
for t in "${TARGET_LIST[@]}"; do
    case $t in
        tmpfs) ;;
        valorfs-*) [ -x "$VALORFS_FUSE" ] || die "$VALORFS_FUSE not found; build with: meson setup build-bench && ninja -C build-bench" ;;
        fuse-overlayfs|bindfs|mergerfs) command -v "$t" >/dev/null || die "$t not installed (apt-get install $t)" ;;
        *) die "unknown target '$t'" ;;
    esac
done
IFS=, read -r -a SWEEP_LIST <<<"$SWEEP"

# ---------------------------------------------------------------- work area
WORK=$(mktemp -d /tmp/valorfs-bench.XXXXXX)
TMPFS=$WORK/tmpfs          # the tmpfs mount
DATA=$TMPFS/data           # the shared backing directory of every target
OVLWORK=$TMPFS/ovl-work    # fuse-overlayfs workdir (same tmpfs as upperdir)
LOWER=$WORK/lower          # fuse-overlayfs lowerdir (empty)
MNT=$WORK/mnt              # the FUSE mount point
RAW=$WORK/raw
LOGS=$WORK/logs
mkdir -p "$TMPFS" "$LOWER" "$MNT" "$RAW" "$LOGS"
printf 'seq\ttarget\tworkload\tvariant\ttool\trc\tseconds\tcommand\n' >"$RAW/index.tsv"
printf 'target\tlabel\tstatus\toptions\tlog\n' >"$RAW/mounts.tsv"

DAEMON_PID=
MOUNTED=0
cleanup() {
    local rc=$?
    set +e
    if [ "$MOUNTED" = 1 ] || in_mounts; then
        if ! timeout 10 umount "$MNT" 2>/dev/null; then
            abort_fuse
            umount -l "$MNT" 2>/dev/null
        fi
    fi
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$DAEMON_PID"; sleep 1
        kill -0 "$DAEMON_PID" 2>/dev/null && kill -KILL "$DAEMON_PID"
    fi
    if grep -q " $TMPFS " /proc/mounts; then
        umount "$TMPFS" 2>/dev/null || umount -l "$TMPFS"
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

# ---------------------------------------------------------------- preparation
log "building metabench"
cc -O2 -Wall -Wextra -Werror -o "$WORK/metabench" "$SCRIPT_DIR/metabench.c"
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
SEQ_BYTES=$(size_bytes "$SEQ_SIZE")
RAND_BYTES=$(size_bytes "$RAND_SIZE")
# backing data + one seq write file + slack
TMPFS_MB=$(( (RAND_BYTES + 2 * SEQ_BYTES) / 1048576 + 1024 ))
mount -t tmpfs -o size=${TMPFS_MB}m valorfs-bench "$TMPFS"
mkdir -p "$DATA" "$OVLWORK"
log "preparing backing data in $DATA (tmpfs ${TMPFS_MB} MiB): $NFILES files, rand $RAND_SIZE, seq $SEQ_SIZE"
"$MB" --dir "$DATA" --ops setup -n "$NFILES" >/dev/null 2>&1
head -c "$RAND_BYTES" /dev/urandom >"$DATA/rand.dat"
head -c "$SEQ_BYTES" /dev/urandom >"$DATA/seq.dat"

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# ---------------------------------------------------------------- mounting
MP=            # where the current target is mounted
CUR_LOG=
TARGET_BROKEN=0

in_mounts() { awk -v m="$MNT" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }

# mount_target TARGET LABEL [extra valorfs args...]
mount_target() {
    local t=$1 label=$2; shift 2
    local opts status=ok cmd=()
    if [ "$TARGET_BROKEN" = 1 ]; then
        log "skip mount $t ($label): target is broken"
        printf '%s\t%s\tskipped\t(target broken earlier in the run)\t\n' "$t" "$label" >>"$RAW/mounts.tsv"
        return 1
    fi
    CUR_LOG=$LOGS/$t-${label//[^A-Za-z0-9_.=-]/_}.log
    : >"$CUR_LOG"
    case $t in
        tmpfs)
            MP=$DATA
            printf '%s\t%s\tok\t%s\t\n' "$t" "$label" "tmpfs size=${TMPFS_MB}m" >>"$RAW/mounts.tsv"
            return 0 ;;
        valorfs-classic) cmd=("$VALORFS_FUSE" -f "--backend=passthrough:$DATA" --transport=classic "$@" "$MNT") ;;
        valorfs-xfuse) cmd=("$VALORFS_FUSE" -f "--backend=passthrough:$DATA" --transport=xfuse "$@" "$MNT") ;;
        valorfs-uring)
            echo Y >/sys/module/fuse/parameters/enable_uring 2>/dev/null || true
            cmd=("$VALORFS_FUSE" -f "--backend=passthrough:$DATA" --transport=uring "$@" "$MNT") ;;
        valorfs-a05) cmd=("$VALORFS_FUSE" -f "--backend=passthrough:$DATA" --transport=xfuse --classic-share=0.5 "$@" "$MNT") ;;
        fuse-overlayfs) cmd=(fuse-overlayfs -f -o "lowerdir=$LOWER,upperdir=$DATA,workdir=$OVLWORK" "$MNT") ;;
        bindfs) cmd=(bindfs -f -o "$BINDFS_OPTS" "$DATA" "$MNT") ;;
        mergerfs) cmd=(mergerfs -f -o "$MERGERFS_OPTS" "$DATA" "$MNT") ;;
    esac
    opts="${cmd[*]}"
    opts=${opts//$WORK/\$WORK}
    log "mount $t ($label): $opts"
    "${cmd[@]}" </dev/null >>"$CUR_LOG" 2>&1 &
    DAEMON_PID=$!
    for _ in $(seq 100); do
        in_mounts && break
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.1
    done
    if ! in_mounts; then
        log "  mount of $t FAILED; log tail:"; tail -5 "$CUR_LOG" >&2 || true
        kill -KILL "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
        DAEMON_PID=
        printf '%s\t%s\tfailed\t%s\t%s\n' "$t" "$label" "$opts" "$CUR_LOG" >>"$RAW/mounts.tsv"
        return 1
    fi
    MOUNTED=1
    MP=$MNT
    if [ "$t" = valorfs-uring ]; then
        for _ in $(seq 20); do grep -q 'io_uring=' "$CUR_LOG" && break; sleep 0.1; done
        if ! grep -q 'io_uring=on' "$CUR_LOG"; then
            status=fallback
            log "  valorfs-uring: log does not say io_uring=on -> marked as fallback"
        fi
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$label" "$status" "$opts" "$CUR_LOG" >>"$RAW/mounts.tsv"
}

umount_target() {
    [ "$MOUNTED" = 1 ] || { MP=; return 0; }
    if ! umount "$MNT" 2>>"$CUR_LOG"; then
        log "  umount $MNT failed, lazy unmount"
        umount -l "$MNT" 2>/dev/null || true
    fi
    MOUNTED=0
    MP=
    if [ -n "$DAEMON_PID" ]; then
        for _ in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$DAEMON_PID" 2>/dev/null; then
            log "  daemon $DAEMON_PID still alive 10 s after umount; SIGTERM"
            echo "run.sh: daemon still alive 10 s after umount, SIGTERM" >>"$CUR_LOG"
            kill -TERM "$DAEMON_PID" 2>/dev/null || true
            sleep 2
            kill -KILL "$DAEMON_PID" 2>/dev/null || true
        fi
        local rc=0
        wait "$DAEMON_PID" 2>/dev/null || rc=$?
        [ $rc = 0 ] || { log "  daemon exited with status $rc"; echo "run.sh: daemon exit status $rc" >>"$CUR_LOG"; }
        DAEMON_PID=
    fi
}

# abort a hung FUSE connection so that a stuck benchmark process can die
# (the connection id is the minor device number; read it from mountinfo, as
# stat(2) on the hung mount would hang too)
abort_fuse() {
    local conn
    conn=$(awk -v m="$MNT" '$5 == m { split($3, d, ":"); print d[2] }' /proc/self/mountinfo | tail -1)
    if [ -n "$conn" ] && [ -w "/sys/fs/fuse/connections/$conn/abort" ]; then
        echo 1 >"/sys/fs/fuse/connections/$conn/abort" 2>/dev/null || true
        log "  aborted FUSE connection $conn"
    fi
    return 0
}

# ---------------------------------------------------------------- measuring
SEQ=0
# measure TARGET WORKLOAD VARIANT TOOL TIMEOUT cmd...
measure() {
    local t=$1 w=$2 v=$3 tool=$4 to=$5; shift 5
    SEQ=$((SEQ + 1))
    local out=$RAW/$SEQ.out rc=0 t0 t1
    if [ "$TARGET_BROKEN" = 1 ]; then
        log "  skip $w/$v ($t is broken)"
        printf '%s\t%s\t%s\t%s\t%s\tskipped\t0\t%s\n' "$SEQ" "$t" "$w" "$v" "$tool" "$*" >>"$RAW/index.tsv"
        return 0
    fi
    log "  $t: $w $v"
    # Watchdog: a request the daemon never answers leaves the process in an
    # uninterruptible wait that no signal ends (and timeout(1) would wait for
    # it forever), so at the deadline abort the FUSE connection first.
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
    if [ -e "$fired" ] && [ $rc = 0 ]; then rc=124; fi
    if [ $rc != 0 ]; then
        log "  $t: $w $v FAILED (rc=$rc): $(tail -2 "$RAW/$SEQ.err" | tr '\n' ' ')"
        if [ -e "$fired" ] || [ $rc = 124 ] || [ $rc = 137 ]; then
            rc=124
            log "  $t: no answer within ${to}s -> target marked broken, FUSE connection aborted"
            echo "run.sh: $w $v hung for ${to}s, connection aborted" >>"$CUR_LOG"
            TARGET_BROKEN=1
            abort_fuse
        elif [ -n "$DAEMON_PID" ] && ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            log "  $t: the daemon (pid $DAEMON_PID) is gone -> target marked broken"
            echo "run.sh: daemon died during $w $v" >>"$CUR_LOG"
            TARGET_BROKEN=1
        fi
    fi
    local cmdstr="$*"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$SEQ" "$t" "$w" "$v" "$tool" "$rc" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" "${cmdstr//$WORK/\$WORK}" >>"$RAW/index.tsv"
}

# a run that overruns its deadline is declared hung (see measure)
FIO_TO=$((2 * RUNTIME + 60))
MB_TO=$((60 + NFILES / 50))
SEQ_TO=$((60 + SEQ_BYTES / 20000000))
MB_PREAD_S=$(( RUNTIME < 5 ? RUNTIME : 5 ))
fio_rand() { # TARGET WORKLOAD VARIANT NUMJOBS [taskset]
    local t=$1 w=$2 v=$3 j=$4 pin=${5:-}
    local pre=()
    [ -n "$pin" ] && pre=(taskset -c "$PIN_CPU")
    for _ in $(seq "$REPEAT"); do
        measure "$t" "$w" "$v" fio "$FIO_TO" "${pre[@]}" fio --name=randread \
            "--filename=$MP/rand.dat" "--size=$RAND_SIZE" --rw=randread --bs=4k \
            --ioengine=psync --direct=1 --norandommap --randrepeat=0 --invalidate=0 \
            "--numjobs=$j" --group_reporting --time_based "--runtime=$RUNTIME" \
            --output-format=json
    done
}
fio_seq() { # TARGET WORKLOAD VARIANT read|write
    local t=$1 w=$2 v=$3 rw=$4 f=seq.dat extra=()
    [ "$rw" = write ] && { f=seqw.dat; extra=(--fallocate=none --end_fsync=1); }
    measure "$t" "$w" "$v" fio "$SEQ_TO" fio "--name=seq$rw" "--filename=$MP/$f" \
        "--size=$SEQ_SIZE" "--rw=$rw" --bs=1M --ioengine=psync --direct=0 \
        --iomem_align=4k --invalidate=0 "${extra[@]}" "--runtime=$((SEQ_TO - 20))" --output-format=json
}
metabench() { # TARGET VARIANT [--pin CPU]
    local t=$1 v=$2; shift 2
    measure "$t" metadata "$v" metabench "$MB_TO" "$MB" --dir "$MP" --ops stat,create,list \
        -n "$NFILES" --max-seconds $((MB_TO / 4)) --drop-caches "$@"
}
metabench_pread() { # TARGET VARIANT [--pin CPU]
    local t=$1 v=$2; shift 2
    measure "$t" randread-qd1 "$v" metabench "$FIO_TO" "$MB" --dir "$MP" --ops pread \
        --file "$MP/rand.dat" --direct --pread-seconds "$MB_PREAD_S" "$@"
}

is_valorfs() { [[ $1 == valorfs-* ]]; }
threaded_sweep() { [ "$1" = valorfs-classic ] || [ "$1" = valorfs-xfuse ]; }

bench_target() {
    local t=$1 j
    TARGET_BROKEN=0
    log "=== target $t"
    # main mount: metadata, QD1 random read, warm sequential, sweep
    if mount_target "$t" main; then
        metabench "$t" unpinned
        metabench "$t" pinned --pin "$PIN_CPU"
        fio_rand "$t" randread-qd1 "fio-1job-unpinned" 1
        fio_rand "$t" randread-qd1 "fio-1job-pinned" 1 pin
        fio_rand "$t" randread-qd1 "fio-4jobs-unpinned" 4
        fio_rand "$t" randread-qd1 "fio-4jobs-pinned" 4 pin
        metabench_pread "$t" metabench-unpinned
        metabench_pread "$t" metabench-pinned --pin "$PIN_CPU"
        fio_seq "$t" seqread warm-pass1 read
        fio_seq "$t" seqread warm read
        rm -f "$DATA/seqw.dat"
        fio_seq "$t" seqwrite warm-pass1 write
        fio_seq "$t" seqwrite warm write
        rm -f "$DATA/seqw.dat"
        if ! threaded_sweep "$t"; then
            for j in "${SWEEP_LIST[@]}"; do fio_rand "$t" sweep "jobs=$j" "$j"; done
        fi
        umount_target
    fi
    # classic/xfuse sweep: one mount per thread count
    if threaded_sweep "$t"; then
        for j in "${SWEEP_LIST[@]}"; do
            mount_target "$t" "threads=$j" "--threads=$j" || continue
            fio_rand "$t" sweep "jobs=$j" "$j"
            umount_target
        done
    fi
    # cold sequential: fresh mount (valorfs: --no-keep-cache), drop_caches
    local extra=()
    is_valorfs "$t" && extra=(--no-keep-cache)
    if mount_target "$t" cold "${extra[@]}"; then
        drop_caches
        fio_seq "$t" seqread cold read
        rm -f "$DATA/seqw.dat"
        drop_caches
        fio_seq "$t" seqwrite cold write
        rm -f "$DATA/seqw.dat"
        umount_target
    fi
}

# ---------------------------------------------------------------- machine info
ver() { "$@" 2>&1 | grep -v 'unknown argument ignored' | head -1 || true; }
{
    printf 'date\t%s\n' "$(date -Is)"
    printf 'command\t%s\n' "$CMDLINE"
    printf 'mode\t%s\n' "$([ "$QUICK" = 1 ] && echo quick || echo full)"
    printf 'kernel\t%s\n' "$(uname -r)"
    printf 'nproc\t%s\n' "$(nproc)"
    printf 'cpu\t%s\n' "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    printf 'memory\t%s\n' "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    printf 'os\t%s\n' "$(. /etc/os-release && echo "$PRETTY_NAME")"
    printf 'fio\t%s\n' "$(ver fio --version)"
    printf 'fuse-overlayfs\t%s\n' "$(fuse-overlayfs --version 2>&1 | grep -i 'fuse-overlayfs' | head -1 || true)"
    printf 'bindfs\t%s\n' "$(ver bindfs --version)"
    printf 'mergerfs\t%s\n' "$(ver mergerfs --version)"
    printf 'fusermount3\t%s\n' "$(ver fusermount3 --version)"
    printf 'valorfs-fuse\t%s\n' "$([ -x "$VALORFS_FUSE" ] && ver "$VALORFS_FUSE" --version)"
    printf 'valorfs_binary\t%s\n' "${VALORFS_FUSE#"$REPO"/}"
    printf 'valorfs_sha256\t%s\n' "$([ -x "$VALORFS_FUSE" ] && sha256sum "$VALORFS_FUSE" | cut -c1-16)"
    printf 'git\t%s%s\n' "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)" \
        "$(git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || echo ' (src/ has uncommitted changes)')"
    printf 'enable_uring\t%s\n' "$(cat /sys/module/fuse/parameters/enable_uring 2>/dev/null || echo n/a)"
    printf 'runtime_s\t%s\n' "$RUNTIME"
    printf 'metabench_pread_s\t%s\n' "$MB_PREAD_S"
    printf 'nfiles\t%s\n' "$NFILES"
    printf 'seq_size\t%s\n' "$SEQ_SIZE"
    printf 'rand_size\t%s\n' "$RAND_SIZE"
    printf 'sweep\t%s\n' "$SWEEP"
    printf 'repeat\t%s\n' "$REPEAT"
    printf 'pin_cpu\t%s\n' "$PIN_CPU"
    printf 'targets\t%s\n' "$TARGETS"
    printf 'mergerfs_opts\t%s\n' "$MERGERFS_OPTS"
    printf 'bindfs_opts\t%s\n' "$BINDFS_OPTS"
} >"$RAW/meta.tsv"

# ---------------------------------------------------------------- run
T_START=$(date +%s)
for t in "${TARGET_LIST[@]}"; do
    bench_target "$t"
done
printf 'duration_s\t%s\n' "$(( $(date +%s) - T_START ))" >>"$RAW/meta.tsv"

mkdir -p "$OUTDIR"
log "writing $OUTDIR/$STEM.{json,md,png}"
"$PYTHON" "$SCRIPT_DIR/report.py" assemble --raw "$RAW" --out "$OUTDIR/$STEM.json"
"$PYTHON" "$SCRIPT_DIR/report.py" render "$OUTDIR/$STEM.json"
log "done in $(( $(date +%s) - T_START )) s: $OUTDIR/$STEM.md"
