#!/bin/sh
# Install, from Debian's packages, everything needed to build nbdkit,
# run its test suite and its benchmarks.  Run as root (or with sudo).
set -e

packages="
  build-essential cmake pkg-config clang libclang-rt-dev
  check
  libgnutls28-dev gnutls-bin
  python3 python3-dev
  liblua5.4-dev
  ocaml ocaml-findlib
  libnbd-dev libnbd-bin python3-libnbd
  qemu-utils
  nbdkit nbdkit-plugin-python fio gnuplot-nox strace
  libzstd-dev zstd
  liblzma-dev xz-utils zlib1g-dev gzip tar
  libjson-c-dev libargon2-dev cryptsetup-bin python3-cryptography
  fdisk mtools dosfstools xorriso genisoimage
  libext2fs-dev e2fsprogs
  libcurl4-gnutls-dev nginx libssh-dev openssh-server openssh-client
  ceph-mon ceph-osd ceph-common radosgw librbd-dev librados-dev
  qemu-block-extra python3-boto3
"

if [ "$(id -u)" -ne 0 ]; then
  exec sudo "$0" "$@"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $packages
