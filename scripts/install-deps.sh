#!/bin/sh
# Install every Debian 12 package uext4 needs to build, test and benchmark.
set -eu
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
    gcc libc6-dev meson ninja-build pkg-config \
    libfuse3-dev fuse3 libext2fs-dev e2fsprogs liburing-dev \
    python3 acl attr util-linux passwd kmod fuse2fs quota \
    systemd fsverity
# fsverity: fsverity-utils, the offline reference for fs-verity digests,
# trees and descriptors (tests/mounted/test_verity.py, lib-ops).
# quota: its repquota reads the quota files uext4 writes (tests/mounted/test_quota.py).
# systemd: only its systemd-analyze, for tests/ecosystem/check_systemd_unit.sh
# (not as init). The Debian package test (UEXT4_TEST_DEB=1, by hand) also
# needs: debhelper dpkg-dev lintian.
