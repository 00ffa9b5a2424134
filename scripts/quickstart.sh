#!/usr/bin/env bash
# quickstart.sh — install, build, start a valorfs cluster on this machine and
# mount it.
#
# Runs `valorfs up`: mgmtd, meta (embedded LMDB), 3 storage servers with 2
# targets each, chain table 1 (chains of 3 replicas on distinct servers) and
# the FUSE client, all on 127.0.0.1. Re-running is safe: a running cluster is
# kept. Stop it with: build/src/tools/valorfs down --data DIR
#
#   --data DIR      cluster state, data and logs (default /var/lib/valorfs/cluster)
#   --mount DIR     mount point                  (default /mnt/valorfs)
#   --transport T   classic | xfuse | uring      (default xfuse; uring needs --no-keeper,
#                   i.e. gives up online upgrade: docs/online-upgrade.md)
#   --loop SIZE     put each storage server on its own loop-device ext4 image
#   --passthrough   mount a local directory (DATA/passthrough) instead of a cluster
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
data=/var/lib/valorfs/cluster
mnt=/mnt/valorfs
transport=xfuse
loop=
passthrough=0
while (($#)); do
  case "$1" in
    --data) data=$2; shift 2 ;;
    --mount) mnt=$2; shift 2 ;;
    --transport) transport=$2; shift 2 ;;
    --loop) loop=$2; shift 2 ;;
    --passthrough) passthrough=1; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "quickstart: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $(id -u) -eq 0 ]] || { echo "quickstart: run as root" >&2; exit 1; }

echo "==> installing dependencies (Debian packages)"
bash scripts/install-deps.sh
echo "==> building"
bash scripts/build.sh build
bin=$repo/build/src/tools

if [[ $transport == uring && -w /sys/module/fuse/parameters/enable_uring ]]; then
  echo Y > /sys/module/fuse/parameters/enable_uring   # FUSE-over-io_uring, off by default in the kernel
fi
mkdir -p "$data" "$mnt"
if grep -q " $mnt fuse.valorfs " /proc/mounts; then
  echo "==> $mnt is already mounted; status:"
  "$bin/valorfs" status --data="$data" || true
  exit 0
fi
if ((passthrough)); then
  mkdir -p "$data/passthrough" "$data/log"
  echo "==> mounting $data/passthrough at $mnt (transport $transport)"
  "$bin/valorfs-fuse" --transport="$transport" --backend="passthrough:$data/passthrough" \
    --log-file="$data/log/fuse.log" "$mnt"
  echo "valorfs (passthrough) is mounted at $mnt; stop with: umount $mnt"
  exit 0
fi
echo "==> starting the cluster (valorfs up)"
keeper_opt=()
# FUSE-over-io_uring queues cannot be handed to a new daemon (docs/online-upgrade.md)
[[ $transport == uring ]] && keeper_opt=(--fuse-opt=--no-keeper)
"$bin/valorfs" up --data="$data" --mount="$mnt" --transport="$transport" "${keeper_opt[@]}" ${loop:+--loop="$loop"}
