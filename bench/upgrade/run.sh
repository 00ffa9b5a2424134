#!/usr/bin/env bash
# bench/upgrade/run.sh - the stall an application sees while the valorfs FUSE
# daemon is upgraded (`valorfs upgrade`) or killed (kill -9, the keeper
# restarts it), for each transport. Writes bench/results/<date>-upgrade.{md,json}
# (and .png when python3-matplotlib is installed). See bench/README.md
# ("Online upgrade stalls"). Benchmarks never assert times.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH=$(cd "$SCRIPT_DIR/.." && pwd)
REPO=$(cd "$BENCH/.." && pwd)
ALL_TARGETS="classic,xfuse,uring"
CMDLINE="bench/upgrade/run.sh${*:+ $*}"

usage() {
    cat <<EOF
Usage: bench/upgrade/run.sh [OPTIONS]

For each target: mount valorfs-fuse (under its keeper, the default) over a
directory on a private tmpfs, start bench/upgrade/probe.c (THREADS threads,
each looping pread 4 KiB O_DIRECT, pwrite 4 KiB O_DIRECT, create, stat,
unlink, every operation timed with CLOCK_MONOTONIC), let it run STEADY
seconds, then do K graceful upgrades (\`valorfs upgrade MNT\`) and K crashes
(kill -9 of the daemon_pid of \`valorfs mount-info MNT --json\`, then wait
for the keeper's next generation), GAP seconds apart, and STEADY seconds of
quiet at the end. bench/upgrade/report.py then measures, per target and
event kind, the op latencies in a window around each event against the
steady-state ops outside every window. Must run as root (mounts).

Targets:
  classic, xfuse   valorfs-fuse --transport=T over passthrough:DIR
  uring            --transport=uring; under the keeper it falls back to
                   xfuse (io_uring queues cannot be handed over on this
                   kernel), which the results label says
  cluster-xfuse    \`valorfs up --transport=xfuse\` (mgmtd, meta, 3 storage,
                   on a private tmpfs) instead of passthrough; not in the
                   default list (enable with --targets or --cluster)

Options:
  --targets LIST   comma list (default: $ALL_TARGETS)
  --cluster        add cluster-xfuse to the targets
  -k, --events K   upgrades and crashes per target (default 10 each)
  --gap S          seconds between the end of an event and the next one
                   (default 1.5, so the default 1 s windows do not overlap)
  --steady S       seconds of steady state before the first and after the
                   last event (default 2)
  --threads N      probe threads (default 2)
  --window-before-ms MS, --window-after-ms MS
                   event window [start - BEFORE, end + AFTER] (default 50, 1000)
  --out DIR        results directory (default bench/results)
  --name STEM      results file stem (default <date>-upgrade)
  --keep-work      keep the work directory (records, logs) afterwards
  -h, --help       show this help

Environment:
  BUILD    build directory with src/tools/{valorfs,valorfs-fuse,valorfs-keeper}
           (default build)
  CC       compiler for the probe (default gcc)
  PYTHON   python3 for report.py (default /usr/bin/python3)
EOF
}

TARGETS=$ALL_TARGETS
K=10
GAP=1.5
STEADY=2
THREADS=2
WIN_BEFORE=50
WIN_AFTER=1000
OUTDIR=$BENCH/results
STEM=
KEEP_WORK=0
while [ $# -gt 0 ]; do
    case $1 in
        --targets) TARGETS=$2; shift ;;
        --targets=*) TARGETS=${1#*=} ;;
        --cluster) TARGETS="$TARGETS,cluster-xfuse" ;;
        -k|--events) K=$2; shift ;;
        --events=*) K=${1#*=} ;;
        --gap) GAP=$2; shift ;;
        --gap=*) GAP=${1#*=} ;;
        --steady) STEADY=$2; shift ;;
        --steady=*) STEADY=${1#*=} ;;
        --threads) THREADS=$2; shift ;;
        --threads=*) THREADS=${1#*=} ;;
        --window-before-ms) WIN_BEFORE=$2; shift ;;
        --window-before-ms=*) WIN_BEFORE=${1#*=} ;;
        --window-after-ms) WIN_AFTER=$2; shift ;;
        --window-after-ms=*) WIN_AFTER=${1#*=} ;;
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
[[ $K =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --events needs a positive integer" >&2; exit 2; }
[[ $THREADS =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --threads needs a positive integer" >&2; exit 2; }
: "${STEM:=$(date +%F)-upgrade}"
BUILD=${BUILD:-$REPO/build}
case $BUILD in /*) ;; *) BUILD=$REPO/$BUILD ;; esac
VALORFS=$BUILD/src/tools/valorfs
VALORFS_FUSE=$BUILD/src/tools/valorfs-fuse
CC=${CC:-gcc}
PYTHON=${PYTHON:-/usr/bin/python3}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
for b in "$VALORFS" "$VALORFS_FUSE" "$BUILD/src/tools/valorfs-keeper"; do
    [ -x "$b" ] || die "$b not found; build with: meson setup build && ninja -C build (or set BUILD=)"
done
command -v "$CC" >/dev/null || die "$CC not found"
IFS=, read -r -a TARGET_LIST <<<"$TARGETS"
for t in "${TARGET_LIST[@]}"; do
    case $t in classic|xfuse|uring|cluster-xfuse) ;; *) die "unknown target '$t'" ;; esac
done

# ---------------------------------------------------------------- work area
WORK=$(mktemp -d /tmp/valorfs-upbench.XXXXXX)
TMPFS=$WORK/tmpfs
MNT=$WORK/mnt
RAW=$WORK/raw
mkdir -p "$TMPFS" "$MNT" "$RAW"
PROBE=$WORK/probe
"$CC" -O2 -Wall -Wextra -pthread -o "$PROBE" "$SCRIPT_DIR/probe.c" || die "cannot build the probe"

KEEPER_PID=     # valorfs-fuse -f: the keeper runs in the same process
PROBE_PID=
CLUSTER_DATA=   # set while a `valorfs up` cluster runs
TMPFS_MOUNTED=0
cleanup() {
    local rc=$?
    set +e
    [ -n "$PROBE_PID" ] && kill -INT "$PROBE_PID" 2>/dev/null && wait "$PROBE_PID" 2>/dev/null
    if [ -n "$CLUSTER_DATA" ]; then
        timeout 90 "$VALORFS" down "--data=$CLUSTER_DATA" >/dev/null 2>&1 ||
            timeout 90 "$VALORFS" down "--data=$CLUSTER_DATA" --force >/dev/null 2>&1
    fi
    if mountpoint -q "$MNT"; then
        timeout 10 umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
    fi
    if [ -n "$KEEPER_PID" ] && kill -0 "$KEEPER_PID" 2>/dev/null; then
        kill -TERM "$KEEPER_PID" 2>/dev/null
        sleep 1
        kill -0 "$KEEPER_PID" 2>/dev/null && kill -KILL "$KEEPER_PID" 2>/dev/null
    fi
    [ "$TMPFS_MOUNTED" = 1 ] && { umount "$TMPFS" 2>/dev/null || umount -l "$TMPFS"; }
    if [ "$KEEP_WORK" = 1 ] || [ $rc != 0 ]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mount -t tmpfs -o size=2g,mode=0755 tmpfs "$TMPFS"
TMPFS_MOUNTED=1

# ---------------------------------------------------------------- helpers
mi_field() {   # mi_field KEY: a numeric field of `valorfs mount-info --json`
    "$VALORFS" mount-info "$MNT" --json 2>/dev/null | sed -n "s/.*\"$1\": \\([0-9]*\\).*/\\1/p"
}

wait_mounted() {   # wait until mount-info answers (the keeper serves the mount)
    local i
    for i in $(seq 200); do
        [ -n "$(mi_field generation)" ] && return 0
        sleep 0.05
    done
    return 1
}

free_base_port() {
    "$PYTHON" - <<'EOF'
import random, socket
rng = random.Random()
for _ in range(200):
    base = rng.randrange(20000, 60000 - 40)
    socks = []
    try:
        for p in range(base, base + 40):
            s = socket.socket(); socks.append(s); s.bind(("127.0.0.1", p))
        print(base); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
EOF
}

mount_target() {   # mount_target TARGET DIR: mount and record the command
    local t=$1 dir=$2 transport cmd
    case $t in
        cluster-xfuse)
            CLUSTER_DATA=$TMPFS/cluster-data
            local port; port=$(free_base_port)
            cmd=("$VALORFS" up "--data=$CLUSTER_DATA" "--mount=$MNT" "--base-port=$port" --transport=xfuse)
            printf '%s\n' "${cmd[*]}" >"$dir/command"
            timeout 120 "${cmd[@]}" >"$dir/up.log" 2>&1 || return 1
            ;;
        *)
            transport=$t
            mkdir -p "$TMPFS/data-$t"
            cmd=("$VALORFS_FUSE" -f "--backend=passthrough:$TMPFS/data-$t" "--transport=$transport"
                 "--log-file=$dir/daemon.log" "$MNT")
            printf '%s\n' "${cmd[*]}" >"$dir/command"
            "${cmd[@]}" >"$dir/keeper.out" 2>&1 &
            KEEPER_PID=$!
            ;;
    esac
    wait_mounted
}

unmount_target() {
    local t=$1 dir=$2
    if [ "$t" = cluster-xfuse ]; then
        timeout 90 "$VALORFS" down "--data=$CLUSTER_DATA" >"$dir/down.log" 2>&1 ||
            timeout 90 "$VALORFS" down "--data=$CLUSTER_DATA" --force >>"$dir/down.log" 2>&1
        # keep the daemons' logs next to the records
        find "$CLUSTER_DATA" -name '*.log' -exec cp --parents {} "$dir/" \; 2>/dev/null || true
        rm -rf "$CLUSTER_DATA"
        CLUSTER_DATA=
        return
    fi
    timeout 20 umount "$MNT" || { log "  umount failed; lazy unmount"; umount -l "$MNT"; }
    local i
    for i in $(seq 100); do kill -0 "$KEEPER_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$KEEPER_PID" 2>/dev/null; then
        log "  keeper $KEEPER_PID still running 10 s after umount; SIGTERM"
        echo "keeper still running 10 s after umount" >>"$dir/notes"
        kill -TERM "$KEEPER_PID"
        for i in $(seq 50); do kill -0 "$KEEPER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$KEEPER_PID" 2>/dev/null && kill -KILL "$KEEPER_PID"
    fi
    wait "$KEEPER_PID" 2>/dev/null && echo 0 >"$dir/keeper.rc" || echo $? >"$dir/keeper.rc"
    KEEPER_PID=
    rm -rf "${TMPFS:?}/data-$t"
}

# events.tsv: target kind k start_ns end_ns rc gen_before gen_after old_pid new_pid reported_ms message
do_upgrade() {
    local t=$1 k=$2 ev=$3 g0 p0 t0 t1 out rc=0 g1 p1 ms
    g0=$(mi_field generation); p0=$(mi_field daemon_pid)
    t0=$("$PROBE" now)
    out=$("$VALORFS" upgrade "$MNT" 2>&1) || rc=$?
    t1=$("$PROBE" now)
    g1=$(mi_field generation); p1=$(mi_field daemon_pid)
    ms=$(sed -n 's/.*serving (\([0-9.]*\) ms).*/\1/p' <<<"$out" | head -1)
    printf '%s\tupgrade\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$k" "$t0" "$t1" "$rc" \
        "$g0" "$g1" "$p0" "$p1" "${ms:--}" "$(tr '\t\n' '  ' <<<"$out")" >>"$ev"
    [ "$rc" = 0 ] || log "  upgrade $k failed: $out"
}

do_crash() {
    local t=$1 k=$2 ev=$3 g0 p0 t0 t1 rc=0 g1= p1= i
    g0=$(mi_field generation); p0=$(mi_field daemon_pid)
    t0=$("$PROBE" kill "$p0") || rc=$?
    # the keeper restarts the daemon; mount-info shows the new generation
    for i in $(seq 2000); do
        g1=$(mi_field generation)
        [ -n "$g1" ] && [ "$g1" -gt "$g0" ] && break
        sleep 0.005
    done
    t1=$("$PROBE" now)
    p1=$(mi_field daemon_pid)
    [ -n "$g1" ] && [ "$g1" -gt "$g0" ] || { rc=1; log "  crash $k: no new generation after 10 s"; }
    printf '%s\tcrash\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t-\tkill -9 %s\n' "$t" "$k" "$t0" "$t1" "$rc" \
        "$g0" "${g1:--}" "$p0" "${p1:--}" "$p0" >>"$ev"
}

# ---------------------------------------------------------------- machine info
{
    printf 'date\t%s\n' "$(date -Iseconds)"
    printf 'kernel\t%s\n' "$(uname -r)"
    printf 'cpu\t%s\n' "$(lscpu | awk -F': +' '/^Model name/ { print $2; exit }')"
    printf 'cores\t%s\n' "$(lscpu | awk -F': +' '/^CPU\(s\)/ { c = $2 } /^Thread\(s\) per core/ { t = $2 } /^Core\(s\) per socket/ { k = $2 } END { printf "%s CPUs (%s cores per socket, %s threads per core)", c, k, t }')"
    printf 'hypervisor\t%s\n' "$(lscpu | awk -F': +' '/^Hypervisor vendor/ { print $2 }')"
    printf 'memory\t%s\n' "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    printf 'os\t%s\n' "$(. /etc/os-release && echo "$PRETTY_NAME")"
    printf 'valorfs_fuse\t%s\n' "$("$VALORFS_FUSE" --version 2>&1 | head -1)"
    printf 'build\t%s\n' "${BUILD#"$REPO"/}"
    printf 'head\t%s%s\n' "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
        "$(git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || echo ' (src/ has uncommitted changes)')"
    printf 'enable_uring\t%s\n' "$(cat /sys/module/fuse/parameters/enable_uring 2>/dev/null || echo n/a)"
    printf 'cc\t%s\n' "$("$CC" --version | head -1)"
    printf 'command\t%s\n' "$CMDLINE"
    printf 'targets\t%s\n' "$TARGETS"
    printf 'events\t%s\n' "$K"
    printf 'gap_s\t%s\n' "$GAP"
    printf 'steady_s\t%s\n' "$STEADY"
    printf 'threads\t%s\n' "$THREADS"
    printf 'window_before_ms\t%s\n' "$WIN_BEFORE"
    printf 'window_after_ms\t%s\n' "$WIN_AFTER"
    printf 'load_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$RAW/machine.tsv"

# ---------------------------------------------------------------- the runs
RUN_START=$(date +%s)
for t in "${TARGET_LIST[@]}"; do
    dir=$RAW/$t
    mkdir -p "$dir"
    ev=$dir/events.tsv
    : >"$ev"
    log "$t: mounting"
    if ! mount_target "$t" "$dir"; then
        log "$t: mount failed (see $dir)"
        echo "mount failed" >"$dir/status"
        unmount_target "$t" "$dir" || true
        continue
    fi
    mkdir -p "$MNT/probe"
    rm -f "$dir/ready"
    "$PROBE" run "--dir=$MNT/probe" "--out=$dir/records.bin" "--threads=$THREADS" \
        "--ready=$dir/ready" >"$dir/probe.out" 2>&1 &
    PROBE_PID=$!
    for i in $(seq 600); do [ -e "$dir/ready" ] && break; kill -0 "$PROBE_PID" 2>/dev/null || break; sleep 0.05; done
    if [ ! -e "$dir/ready" ]; then
        log "$t: probe did not start (see $dir/probe.out)"
        echo "probe did not start" >"$dir/status"
        kill -INT "$PROBE_PID" 2>/dev/null; wait "$PROBE_PID" || true; PROBE_PID=
        unmount_target "$t" "$dir"
        continue
    fi
    sleep "$STEADY"
    log "$t: $K graceful upgrades"
    for k in $(seq "$K"); do do_upgrade "$t" "$k" "$ev"; sleep "$GAP"; done
    log "$t: $K crashes (kill -9 of the daemon)"
    for k in $(seq "$K"); do do_crash "$t" "$k" "$ev"; sleep "$GAP"; done
    sleep "$STEADY"
    "$VALORFS" mount-info "$MNT" --json >"$dir/mount-info.json" 2>&1 || true
    kill -INT "$PROBE_PID"
    # a probe stuck in a system call (a request the daemon never answers)
    # would hang here: bound the wait, then abort the FUSE connection so the
    # stuck calls fail (and are logged as failed ops with their latency)
    for i in $(seq 100); do kill -0 "$PROBE_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$PROBE_PID" 2>/dev/null; then
        log "$t: probe still blocked 10 s after SIGINT; aborting the FUSE connection"
        {
            echo "probe still blocked 10 s after SIGINT (a request was never answered); FUSE connection aborted. Kernel stacks of the probe threads:"
            for s in "/proc/$PROBE_PID/task/"*/stack; do echo "--- $s"; grep -E 'fuse|openat|unlink|stat|read|write' "$s"; done
            echo "mount-info: $("$VALORFS" mount-info "$MNT" --json 2>&1)"
        } >>"$dir/notes" 2>/dev/null || true
        conn=$(mountpoint -d "$MNT" 2>/dev/null | cut -d: -f2)
        [ -n "$conn" ] && echo 1 >"/sys/fs/fuse/connections/$conn/abort" 2>/dev/null || true
    fi
    wait "$PROBE_PID" && echo 0 >"$dir/probe.rc" || echo $? >"$dir/probe.rc"
    PROBE_PID=
    cat "$dir/probe.out" >&2
    rm -rf "$MNT/probe" 2>/dev/null || true   # fails on an aborted connection
    unmount_target "$t" "$dir"
    echo ok >"$dir/status"
done
printf 'total_s\t%s\n' $(( $(date +%s) - RUN_START )) >>"$RAW/machine.tsv"
printf 'load_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/machine.tsv"

log "report"
"$PYTHON" "$SCRIPT_DIR/report.py" analyze "$RAW" --json "$OUTDIR/$STEM.json"
"$PYTHON" "$SCRIPT_DIR/report.py" render "$OUTDIR/$STEM.json" --md "$OUTDIR/$STEM.md"
log "results: $OUTDIR/$STEM.md"
