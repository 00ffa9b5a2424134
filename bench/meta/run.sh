#!/usr/bin/env bash
# bench/meta/run.sh - metadata operations per second of valorfs with its KV on
# LMDB, on a 1-member and on a 3-member etcd, and of MooseFS, side by side in
# one run on this machine, with the KV / master round trips per operation.
# Results: bench/results/<date>-meta.{md,json,png}. See bench/README.md
# ("Metadata operations"). Benchmarks never assert times.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH=$(cd "$SCRIPT_DIR/.." && pwd)
REPO=$(cd "$BENCH/.." && pwd)
# shellcheck source=../lib.sh
. "$BENCH/lib.sh"
ALL_SYSTEMS="lmdb,lmdb-nosync,etcd1,etcd3,moosefs"
CMDLINE="bench/meta/run.sh${*:+ $*}"

usage() {
    cat <<EOF
Usage: bench/meta/run.sh [OPTIONS]

Set up each system one after the other on this machine, mount it, run the
metadata phases with bench/meta/metaload.c (compiled into the work directory),
read the server-side counters before and after every phase, tear it down.
Must run as root (mounts, drop_caches, network namespace). Installs missing
MooseFS packages with apt-get.

Systems (--systems):
  lmdb         valorfs up, meta's KV on LMDB, --kv-sync=commit (the default:
               every change flushed before it is acknowledged)
  lmdb-nosync  the same with --kv-sync=none (MooseFS's durability class)
  etcd1        valorfs up --kv=etcd --etcd-members=1 (local etcd)
  etcd3        valorfs up --kv=etcd --etcd-members=3
  moosefs      mfsmaster + 1 mfschunkserver + mfsmount (Debian moosefs-*)

Phases, for each thread count T of --threads (T workers, one directory each,
N operations in total; client dentries/inodes dropped before each phase):
  create   open(O_CREAT|O_EXCL)+close      stat     stat(2)
  rename   rename(2) in the same directory unlink   unlink(2)
then once per system: mkbig (mknod the BIG-N entries of one directory with
BIG-THREADS workers, capped at BIG-SECONDS; in the results, not a table row), and for each T: readdir (T workers list
that directory at once, PASSES passes, dentries dropped before each).

Round trips per operation, from counters read before and after each phase
(minus the idle rate measured for IDLE seconds after setup):
  etcd     sum over members of grpc_server_handled_total{grpc_method=
           Range|Txn|Put|DeleteRange} from http://CLIENT-URL/metrics
  lmdb     write transactions: mdb_stat "Last transaction ID" of meta's KV
           (read transactions are not counted by LMDB: n/a)
  moosefs  mfsmaster's per-mount operation counters (mfscli -SMO -m 1)

Options:
  --systems LIST     comma list (default: $ALL_SYSTEMS)
  --n N              operations per phase in total (default 1000)
  --threads LIST     comma list of worker counts (default 1,8)
  --big-n N          entries of the readdir directory (default 10000)
  --passes R         readdir passes (default 3)
  --max-seconds S    cap of one phase (default 20); a capped phase reports
                     the rate over the operations done
  --big-seconds S    cap of mkbig (default 150); readdir then lists the
                     entries made (the results say how many)
  --big-threads T    mkbig workers (default 4; on etcd more workers on one
                     directory only add conflicts)
  --idle S           seconds of idle counter sampling per system (default 5)
  --base-port P      valorfs up --base-port (default 17600; etcd client
                     ports are P+30+i)
  --quick            smoke run: N 300, BIG-N 1000, PASSES 2
  --work DIR         parent of the work directory (default /var/tmp)
  --out DIR          results directory (default bench/results)
  --name STEM        results file stem (default <date>-meta[-quick])
  --wait-quiet S      before each system, wait up to S seconds (default 0)
                     while another session's scripts/test.sh runs: its
                     stage cleanup unmounts every valorfs mount and kills
                     every valorfs daemon on the machine, ours included
  --keep-work        keep the work directory (logs, raw outputs)
  -h, --help         show this help

Environment:
  VALORFS          valorfs CLI (default build/src/tools/valorfs)
  VALORFS_UP_ARGS  extra options for every \`valorfs up\`
  PYTHON           python with matplotlib (default /usr/bin/python3)
EOF
}

SYSTEMS=$ALL_SYSTEMS
NOPS=
THREADS=1,8
BIG_N=
PASSES=
MAX_S=20
BIG_S=150
BIG_T=4
IDLE_S=5
BASE_PORT=17600
QUICK=0
WORK_PARENT=/var/tmp
OUTDIR=$BENCH/results
STEM=
KEEP_WORK=0
WAIT_QUIET=0
while [ $# -gt 0 ]; do
    opt=$1 val=
    case $opt in
        --*=*) val=${opt#*=}; opt=${opt%%=*} ;;
    esac
    case $opt in
        --systems|--n|--threads|--big-n|--passes|--max-seconds|--big-seconds|--big-threads|--wait-quiet|--idle|--base-port|--work|--out|--name)
            if [ -z "$val" ]; then
                [ $# -ge 2 ] || { echo "run.sh: $opt needs a value" >&2; exit 2; }
                val=$2; shift
            fi ;;
    esac
    case $opt in
        --systems) SYSTEMS=$val ;;
        --n) NOPS=$val ;;
        --threads) THREADS=$val ;;
        --big-n) BIG_N=$val ;;
        --passes) PASSES=$val ;;
        --max-seconds) MAX_S=$val ;;
        --big-seconds) BIG_S=$val ;;
        --big-threads) BIG_T=$val ;;
        --idle) IDLE_S=$val ;;
        --wait-quiet) WAIT_QUIET=$val ;;
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
    : "${NOPS:=300}" "${BIG_N:=1000}" "${PASSES:=2}"
else
    : "${NOPS:=1000}" "${BIG_N:=10000}" "${PASSES:=3}"
fi
for v in NOPS BIG_N PASSES MAX_S BIG_S BIG_T WAIT_QUIET IDLE_S BASE_PORT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "run.sh: bad number '${!v}'" >&2; exit 2; }
done
[[ $THREADS =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "run.sh: bad --threads '$THREADS'" >&2; exit 2; }
: "${STEM:=$(date +%F)-meta$([ "$QUICK" = 1 ] && echo -quick)}"
VALORFS=${VALORFS:-$REPO/build/src/tools/valorfs}
VALORFS_UP_ARGS=${VALORFS_UP_ARGS:-}
PYTHON=${PYTHON:-/usr/bin/python3}
IFS=, read -r -a SYSTEM_LIST <<<"$SYSTEMS"
IFS=, read -r -a THREAD_LIST <<<"$THREADS"
for s in "${SYSTEM_LIST[@]}"; do
    case $s in lmdb|lmdb-nosync|etcd1|etcd3|moosefs) ;; *) echo "run.sh: unknown system '$s'" >&2; exit 2 ;; esac
done
want() { [[ ,$SYSTEMS, == *,$1,* ]]; }

[ "$(id -u)" = 0 ] || die "must run as root"
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
want moosefs && bench_apt_install moosefs-master moosefs-chunkserver moosefs-client moosefs-cli
{ want lmdb || want lmdb-nosync; } && bench_apt_install lmdb-utils      # mdb_stat
{ want etcd1 || want etcd3; } && bench_apt_install curl etcd-server etcd-client
for t in timeout cc ip nsenter; do command -v $t >/dev/null || die "$t not found"; done
"$PYTHON" -c 'import matplotlib' 2>/dev/null || die "$PYTHON lacks matplotlib (apt-get install python3-matplotlib)"

# ---------------------------------------------------------------- work area
mkdir -p "$WORK_PARENT"
WORK=$(mktemp -d "$WORK_PARENT/valorfs-bench-meta.XXXXXX")
chmod 755 "$WORK"
MNT=$WORK/mnt
RAW=$WORK/raw
LOGS=$WORK/logs
mkdir -p "$MNT" "$RAW" "$LOGS"
printf 'seq\tsystem\tphase\tthreads\trc\twall_s\tcommand\n' >"$RAW/index.tsv"
printf 'system\tstatus\tsetup\tlog\n' >"$RAW/systems.tsv"
CUR=
CUR_KIND=
CUR_LOG=
BROKEN=0
VALORFS_UP=
MOUNT_ID=

# our etcd members: the etcd processes whose command line names our work dir
our_etcd_pids() {
    local p
    for p in $(pgrep -x etcd 2>/dev/null || true); do
        tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF "$WORK/" && echo "$p"
    done
    return 0
}

teardown_current() {
    bench_unmount
    if [ -n "$VALORFS_UP" ]; then
        if ! timeout 90 "$VALORFS" down "--data=$VALORFS_UP" >>"$LOGS/valorfs-down.log" 2>&1; then
            log "  valorfs down failed (see \$WORK/logs/valorfs-down.log); down --force"
            timeout 90 "$VALORFS" down "--data=$VALORFS_UP" --force >>"$LOGS/valorfs-down.log" 2>&1 ||
                log "  valorfs down --force failed too"
        fi
        VALORFS_UP=
        local p left
        left=$(our_etcd_pids)
        if [ -n "$left" ]; then
            log "  etcd still running after valorfs down: $(echo $left); SIGTERM"
            for p in $left; do kill -TERM "$p" 2>/dev/null || true; done
            sleep 2
            for p in $(our_etcd_pids); do kill -KILL "$p" 2>/dev/null || true; done
        fi
    fi
    bench_stop_processes
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

log "building metaload"
cc -O2 -Wall -Wextra -Werror -pthread -o "$WORK/metaload" "$SCRIPT_DIR/metaload.c"
ML=$WORK/metaload

# ---------------------------------------------------------------- counters
ETCD_URLS=()
etcd_find_urls() { # client URLs of our etcd members, from their command lines
    local p u
    ETCD_URLS=()
    for p in $(our_etcd_pids); do
        u=$(tr '\0' '\n' <"/proc/$p/cmdline" | awk '
            f { print; exit } /^--?listen-client-urls$/ { f = 1; next }
            /^--?listen-client-urls=/ { sub(/^[^=]*=/, ""); print; exit }' | cut -d, -f1)
        [ -n "$u" ] && ETCD_URLS+=("$u")
    done
    return 0
}

# one JSON object: the counters of the system under test, with a timestamp
scrape() {
    local t
    t=$(date +%s.%N)
    case $CUR_KIND in
        etcd)
            local u body out=
            for u in "${ETCD_URLS[@]}"; do
                body=$(curl -s --max-time 5 "$u/metrics" | awk '
                    /^(etcd_)?grpc_server_handled_total\{/ {
                        m = $0; sub(/.*grpc_method="/, "", m); sub(/".*/, "", m)
                        c[m] += $NF }
                    END { s = ""; for (k in c) { printf "%s\"%s\": %d", s, k, c[k]; s = ", " } }')
                out+="${out:+, }\"$u\": {$body}"
            done
            printf '{"t": %s, "etcd": {%s}}\n' "$t" "$out" ;;
        lmdb)
            local id
            id=$(mdb_stat -e "$VALORFS_UP/meta/kv" 2>/dev/null | awk '/Last transaction ID/ { print $NF }')
            printf '{"t": %s, "lmdb_txnid": %s}\n' "$t" "${id:-null}" ;;
        moosefs)
            local row
            row=$("${NS[@]}" mfscli -H "$MFS_MASTER" -SMO -m 1 -p -s '|' 2>/dev/null |
                awk -F'|' -v m="$MNT" '$3 == m { for (i = 4; i <= NF; i++) printf "%s%s", (i > 4 ? "," : ""), $i; exit }')
            printf '{"t": %s, "mfs_ops": [%s]}\n' "$t" "$row" ;;
        *) printf '{"t": %s}\n' "$t" ;;
    esac
}

# ---------------------------------------------------------------- measuring
SEQ=0
# phase PHASE THREADS TIMEOUT metaload-args... : one measured metaload run
phase() {
    local ph=$1 th=$2 to=$3; shift 3
    SEQ=$((SEQ + 1))
    local out=$RAW/$SEQ.out rc=0 t0 t1 cmd=("$ML" --phase "$ph" --threads "$th" "$@")
    local cmdstr="${cmd[*]}"
    cmdstr=${cmdstr//$WORK/\$WORK}
    if [ "$BROKEN" = 1 ]; then
        printf '%s\t%s\t%s\t%s\tskipped\t0\t%s\n' "$SEQ" "$CUR" "$ph" "$th" "$cmdstr" >>"$RAW/index.tsv"
        return 0
    fi
    scrape >"$RAW/$SEQ.before"
    # watchdog: a request the file system never answers leaves the process in
    # an uninterruptible wait no signal ends; aborting the connection does
    local fired=$RAW/$SEQ.watchdog
    (
        trap 'kill $sl 2>/dev/null; exit 0' TERM
        sleep "$to" & sl=$!
        wait $sl
        touch "$fired"
        bench_abort_fuse
    ) &
    local wd=$!
    t0=$(date +%s.%N)
    timeout --kill-after=10 $((to + 5)) "${cmd[@]}" >"$out" 2>"$RAW/$SEQ.err" || rc=$?
    t1=$(date +%s.%N)
    kill -TERM $wd 2>/dev/null || true
    wait $wd 2>/dev/null || true
    [ -e "$fired" ] && rc=124
    # the mount we set up must still be there: when it is gone (unmounted or
    # aborted by someone else), the phase ran on the bare directory beneath
    [ "$(mount_id)" = "$MOUNT_ID" ] || rc=lost
    scrape >"$RAW/$SEQ.after"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$SEQ" "$CUR" "$ph" "$th" "$rc" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" "$cmdstr" >>"$RAW/index.tsv"
    if [ $rc != 0 ]; then
        log "  $CUR: $ph T=$th FAILED (rc=$rc): $(tail -2 "$RAW/$SEQ.err" | tr '\n' ' ')"
        if [ $rc = 124 ] || [ $rc = 137 ] || [ $rc = lost ] || ! bench_in_mounts; then
            log "  $CUR: hung, unmounted or remounted -> remaining phases skipped"
            BROKEN=1
            bench_abort_fuse
        fi
        return 0
    fi
    log "  $CUR: $ph T=$th: $(awk -F'[:,]' '{
        for (i = 1; i < NF; i++) { k = $i; gsub(/[ "{]/, "", k); v[k] = $(i + 1) }
        printf "%.0f ops/s, %d ops, %s errors, mean %.0f us", v["ops_per_s"], v["ops"], v["errors"] + 0, v["mean"] }' "$out")"
}

mount_id() { awk -v m="$MNT" '$5 == m { id = $1 } END { print id }' /proc/self/mountinfo; }

# idle counter rate: what the system's own background traffic adds per second
idle_sample() {
    SEQ=$((SEQ + 1))
    scrape >"$RAW/$SEQ.before"
    sleep "$IDLE_S"
    scrape >"$RAW/$SEQ.after"
    printf '%s\t%s\tidle\t0\t0\t%s\tsleep %s\n' "$SEQ" "$CUR" "$IDLE_S" "$IDLE_S" >>"$RAW/index.tsv"
}

run_phases() {
    local t d
    idle_sample
    for t in "${THREAD_LIST[@]}"; do
        d=$MNT/t$t
        mkdir -p "$d" || { BROKEN=1; log "  $CUR: mkdir on the mount failed"; return 0; }
        for ph in create stat rename unlink; do
            phase "$ph" "$t" $((MAX_S + 60)) --dir "$d" --n "$NOPS" --state "$WORK/state-$CUR-$t" \
                --max-seconds "$MAX_S" --drop-dentries
        done
    done
    mkdir -p "$MNT/rd" || { BROKEN=1; return 0; }
    phase mkbig "$BIG_T" $((BIG_S + 60)) --dir "$MNT/rd" --big-n "$BIG_N" --max-seconds "$BIG_S"
    for t in "${THREAD_LIST[@]}"; do
        phase readdir "$t" $((MAX_S + 60)) --dir "$MNT/rd" --passes "$PASSES" --drop-dentries
    done
}

# ---------------------------------------------------------------- systems
valorfs_missing() {
    [ -x "$VALORFS" ] || { echo "${VALORFS#"$REPO"/} not found"; return 1; }
    return 0
}
valorfs_has_etcd() { "$VALORFS" up --help 2>&1 | grep -q -- '--kv='; }

valorfs_up() { # extra valorfs up options...
    local d=$WORK/$CUR/data
    mkdir -p "$d"
    VALORFS_UP=$d
    local args=("--data=$d" "--mount=$MNT" "--base-port=$BASE_PORT" "$@")
    # shellcheck disable=SC2206  # word splitting of the extra options is intended
    args+=($VALORFS_UP_ARGS)
    echo "# ${VALORFS#"$REPO"/} up ${args[*]}" >>"$CUR_LOG"
    timeout 180 "$VALORFS" up "${args[@]}" >>"$CUR_LOG" 2>&1 || return 1
    bench_wait_mount 30 || return 1
    local a="${args[*]}"
    MOUNT_DESC="${VALORFS#"$REPO"/} up ${a//$WORK/\$WORK} (mgmtd, meta, 3 storage servers; 127.0.0.1)"
}

system_up() {
    case $CUR in
        lmdb) CUR_KIND=lmdb
            if valorfs_has_etcd; then valorfs_up --kv=lmdb; else valorfs_up; fi ;;
        lmdb-nosync) CUR_KIND=lmdb
            if valorfs_has_etcd; then valorfs_up --kv=lmdb --kv-sync=none; else valorfs_up --kv-sync=none; fi ;;
        etcd1|etcd3) CUR_KIND=etcd
            valorfs_up --kv=etcd "--etcd-members=${CUR#etcd}" || return 1
            etcd_find_urls
            { echo "# etcd client URLs: ${ETCD_URLS[*]}"; } >>"$CUR_LOG"
            [ ${#ETCD_URLS[@]} -ge 1 ] || { log "  $CUR: no etcd process of ours found"; return 1; }
            local body
            body=$(curl -s --max-time 5 "${ETCD_URLS[0]}/metrics" || true)
            grep -qE '^(etcd_)?grpc_server_handled_total' <<<"$body" ||
                log "  $CUR: WARNING: no grpc_server_handled_total at ${ETCD_URLS[0]}/metrics" ;;
        moosefs) CUR_KIND=moosefs
            bench_moosefs_up 1 ;;
    esac
}

# another session's test run (detection only: its cleanup is not ours to stop)
test_runs() { pgrep -f 'scripts/test\.sh' 2>/dev/null | tr '\n' ' ' || true; }
wait_quiet() {
    local t0 busy
    t0=$(date +%s)
    busy=$(test_runs)
    if [ -z "$busy" ]; then
        printf 'concurrent_tests_%s\tnone\n' "$CUR" >>"$RAW/meta.tsv"
        return 0
    fi
    log "  scripts/test.sh running (pid $busy): waiting up to $WAIT_QUIET s"
    while [ -n "$busy" ] && [ $(( $(date +%s) - t0 )) -lt "$WAIT_QUIET" ]; do
        sleep 5
        busy=$(test_runs)
    done
    [ -z "$busy" ] || log "  WARNING: scripts/test.sh still running (pid $busy); its cleanup may unmount us"
    printf 'concurrent_tests_%s\t%s\n' "$CUR" "${busy:-none}" >>"$RAW/meta.tsv"
}

bench_system() {
    CUR=$1
    BROKEN=0
    CUR_KIND=
    CUR_LOG=$LOGS/$CUR.log
    : >"$CUR_LOG"
    log "=== $CUR"
    local why
    if [ "$CUR" != moosefs ]; then
        if ! why=$(valorfs_missing); then
            log "  $CUR: skipped ($why)"
            printf '%s\tskipped\t%s\t\n' "$CUR" "$why" >>"$RAW/systems.tsv"
            return 0
        fi
        if [[ $CUR == etcd* ]] && ! valorfs_has_etcd; then
            log "  $CUR: skipped (this valorfs has no --kv=etcd)"
            printf '%s\tskipped\t%s\t\n' "$CUR" "valorfs up has no --kv=etcd" >>"$RAW/systems.tsv"
            return 0
        fi
    fi
    wait_quiet
    MOUNT_DESC=
    local t0 rc=0
    t0=$(date +%s)
    system_up || rc=$?
    if [ $rc != 0 ] || ! bench_in_mounts; then
        log "  $CUR: setup FAILED; log tail:"; tail -5 "$CUR_LOG" >&2 || true
        [ "$CUR" = moosefs ] && tail -n 5 "$LOGS"/mfs*.log >>"$CUR_LOG" 2>&1
        printf '%s\tfailed\t%s\t%s\n' "$CUR" "${MOUNT_DESC:-setup failed}" "$CUR_LOG" >>"$RAW/systems.tsv"
        teardown_current
        return 0
    fi
    MOUNT_ID=$(mount_id)
    log "  $CUR: up and mounted in $(( $(date +%s) - t0 )) s"
    printf 'load_%s\t%s\n' "$CUR" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/meta.tsv"
    printf '%s\tok\t%s\t%s\n' "$CUR" "$MOUNT_DESC" "$CUR_LOG" >>"$RAW/systems.tsv"
    run_phases
    printf 'load_after_%s\t%s\n' "$CUR" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/meta.tsv"
    log "  $CUR: tearing down"
    teardown_current
}

# ---------------------------------------------------------------- machine info
{
    bench_machine_info
    printf 'command\t%s\n' "$CMDLINE"
    printf 'mode\t%s\n' "$([ "$QUICK" = 1 ] && echo quick || echo full)"
    for p in moosefs-master moosefs-client etcd-server; do
        printf 'pkg_%s\t%s\n' "$p" "$(bench_pkgver $p)"
    done
    printf 'etcd_version\t%s\n' "$(etcd --version 2>/dev/null | head -1)"
    printf 'valorfs_binary\t%s\n' "${VALORFS#"$REPO"/}$([ -x "$VALORFS" ] || echo ' (not built)')"
    printf 'valorfs_up_args\t%s\n' "$VALORFS_UP_ARGS"
    printf 'git\t%s%s\n' "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)" \
        "$(git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || echo ' (src/ has uncommitted changes)')"
    printf 'pinning\t%s\n' "unpinned (affinity of the run: $(taskset -pc $$ | awk -F': ' '{ print $2 }'))"
    printf 'nops\t%s\n' "$NOPS"
    printf 'threads\t%s\n' "$THREADS"
    printf 'big_n\t%s\n' "$BIG_N"
    printf 'passes\t%s\n' "$PASSES"
    printf 'max_seconds\t%s\n' "$MAX_S"
    printf 'big_seconds\t%s\n' "$BIG_S"
    printf 'big_threads\t%s\n' "$BIG_T"
    printf 'idle_s\t%s\n' "$IDLE_S"
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
