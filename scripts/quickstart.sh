#!/usr/bin/env bash
# quickstart.sh — install, build and mount valorfs on this machine.
#
# Today valorfs-fuse serves a local directory through the valorfs FUSE
# engine (the passthrough backend); the replicated cluster replaces the
# backend once it lands. Re-running is safe: an existing mount is kept.
#
#   --data DIR    backing directory        (default /var/lib/valorfs/data)
#   --mount DIR   mount point              (default /mnt/valorfs)
#   --transport T classic | xfuse | uring  (default uring, falls back to xfuse)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
data=/var/lib/valorfs/data
mnt=/mnt/valorfs
transport=uring
while (($#)); do
  case "$1" in
    --data) data=$2; shift 2 ;;
    --mount) mnt=$2; shift 2 ;;
    --transport) transport=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "quickstart: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $(id -u) -eq 0 ]] || { echo "quickstart: run as root" >&2; exit 1; }

echo "==> installing dependencies (Debian packages)"
bash scripts/install-deps.sh
echo "==> building"
bash scripts/build.sh build
bin=$repo/build/src/tools/valorfs-fuse

if [[ $transport == uring && -w /sys/module/fuse/parameters/enable_uring ]]; then
  echo Y > /sys/module/fuse/parameters/enable_uring   # FUSE-over-io_uring, off by default in the kernel
fi
mkdir -p "$data" "$mnt" /var/log/valorfs
if grep -q " $mnt fuse.valorfs " /proc/mounts; then
  echo "==> $mnt is already mounted"
else
  echo "==> mounting $data at $mnt (transport $transport)"
  "$bin" --transport="$transport" --backend="passthrough:$data" --log-file=/var/log/valorfs/valorfs-fuse.log "$mnt"
fi
cat <<EOT

valorfs is mounted.
  mount point : $mnt
  backing dir : $data
  daemon      : $bin (pid $(pgrep -n -f "valorfs-fuse.*$mnt" || echo ?))
  log         : /var/log/valorfs/valorfs-fuse.log
  stop        : umount $mnt     (or: kill -TERM <pid>)
EOT
