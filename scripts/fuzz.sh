#!/usr/bin/env bash
# fuzz.sh [SECONDS_PER_TARGET] — build the libFuzzer targets (fuzz/) in
# build-fuzz with clang and run each for SECONDS_PER_TARGET (default 20).
#
# Prints one line per target, which scripts/test.sh counts:
#   fuzz <name>: ok (<execs> execs)
#   fuzz <name>: FAILED
# and exits non-zero if any target failed (crash, sanitizer report, leak,
# hang, out of memory, or it could not be built or run). After a FAILED
# line come the log's tail and the reproducer; replay it with
#   build-fuzz/fuzz/<name> <reproducer>
#
# The committed seeds (fuzz/corpus/<name>/) are copied to a temporary
# directory first, so a run never modifies them. Works on a fresh clone:
# build-fuzz is configured on first use (CC=clang, -Dfuzz=true).
#
# Environment: FUZZ_BUILDDIR (default build-fuzz), FUZZ_ARTIFACTS (where
# reproducers and failing logs go; default <builddir>/artifacts),
# FUZZ_ARGS (extra libFuzzer flags, e.g. "-seed=1").
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
repo=$PWD

secs=${1:-20}
if ! [[ $secs =~ ^[0-9]+$ ]] || ((secs < 1)); then
  echo "usage: $0 [SECONDS_PER_TARGET]   (a positive integer, default 20)" >&2
  exit 2
fi
builddir=${FUZZ_BUILDDIR:-build-fuzz}
artifacts=${FUZZ_ARTIFACTS:-$repo/$builddir/artifacts}
targets=(fuzz_decode_dev fuzz_decode_ring fuzz_dispatch fuzz_rpc_frame fuzz_proto_mgmtd fuzz_proto_meta fuzz_proto_storage fuzz_meta_record fuzz_handoff fuzz_keeper_msg fuzz_etcd_resp)

work=$(mktemp -d /tmp/valorfs-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT

all_failed() {
  echo "fuzz.sh: $*" >&2
  for t in "${targets[@]}"; do echo "fuzz $t: FAILED"; done
  exit 1
}

# ---- configure and build ----
if [[ ! -f $builddir/build.ninja ]]; then
  CC=clang meson setup "$builddir" -Dfuzz=true -Db_lundef=false >"$work/setup.log" 2>&1 ||
    { tail -n 30 "$work/setup.log" >&2; all_failed "meson setup of $builddir failed"; }
else
  # reuse it; fuzz/meson.build refuses a compiler that is not clang
  meson configure "$builddir" -Dfuzz=true -Db_lundef=false >"$work/setup.log" 2>&1 ||
    { tail -n 30 "$work/setup.log" >&2; all_failed "meson configure of $builddir failed"; }
fi
ninja -C "$builddir" >"$work/build.log" 2>&1 ||
  { tail -n 40 "$work/build.log" >&2; all_failed "building $builddir failed (needs CC=clang)"; }

# ---- run ----
mkdir -p "$artifacts"
# our own sanitizer settings, whatever the caller exported
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

failed=0
for t in "${targets[@]}"; do
  exe=$builddir/fuzz/$t
  corpus=$work/corpus-$t
  log=$work/$t.log
  mkdir -p "$corpus"
  [[ -d fuzz/corpus/$t ]] && cp -R "fuzz/corpus/$t/." "$corpus/"
  # -max_len: room for frames with some data; -timeout: one input taking
  # that long counts as a hang
  # shellcheck disable=SC2086
  "$exe" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=8192 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$t-" ${FUZZ_ARGS:-} \
    "$corpus" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
  if ((rc == 0)) && [[ -n $execs ]] &&
     ! grep -qE '^==[0-9]+==ERROR|runtime error:|^SUMMARY: ' "$log"; then
    echo "fuzz $t: ok ($execs execs)"
  else
    failed=1
    echo "fuzz $t: FAILED"
    echo "  --- exit status $rc; end of the log:"
    tail -n 40 "$log" | sed 's/^/  | /'
    repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    [[ -n $repro ]] && echo "  --- reproduce: $exe $repro"
    cp "$log" "$artifacts/$t.log" && echo "  --- full log: $artifacts/$t.log"
  fi
done
exit "$failed"
