#!/usr/bin/env bash
# install-deps.sh — install every Debian package valorfs needs to build,
# test and benchmark. Idempotent: apt is only called when something is
# missing. Debian 12, as root.
set -euo pipefail

PKGS=(
  # build
  build-essential meson ninja-build pkg-config clang libclang-rt-14-dev
  liburing-dev libinih-dev liblmdb-dev libisal-dev lmdb-utils libcurl4-openssl-dev libjson-c-dev
  # run
  fuse3 e2fsprogs xfsprogs etcd-server etcd-client
  # tests
  python3 python3-pytest attr util-linux
  # benchmarks (peers and tools)
  fio fuse-overlayfs bindfs mergerfs python3-matplotlib
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
