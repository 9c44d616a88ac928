#!/bin/bash
# Library mode needs no /dev/fuse: run the whole scenario suite with the lib
# backend in a private mount namespace whose /dev has no fuse device, and
# show that the daemon itself cannot mount there.
# usage: check_no_fuse.sh UEXT4-SCENARIO UEXT4 FILE.scn...
set -u
scenario=$1
uext4=$2
shift 2

if [ "$(id -u)" -ne 0 ] || ! unshare --mount --propagation private true 2>/dev/null; then
    echo "skipped: needs root and mount namespaces"
    exit 77
fi

exec unshare --mount --propagation private /bin/bash -s "$scenario" "$uext4" "$@" <<'INNER'
set -u
scenario=$1
uext4=$2
shift 2
# A fresh /dev with only what the tools need: no fuse.
mount -t tmpfs -o mode=0755 uext4-nofuse /dev || exit 1
mknod -m 0666 /dev/null c 1 3
mknod -m 0666 /dev/zero c 1 5
mknod -m 0666 /dev/urandom c 1 9
if [ -e /dev/fuse ]; then
    echo "FAIL: /dev/fuse still exists"
    exit 1
fi
tmp=$(mktemp -d /tmp/uext4-nofuse.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mke2fs -q -F -t ext4 -O inline_data "$tmp/img" 8M >/dev/null 2>&1
mkdir "$tmp/mnt"
if timeout 20 "$uext4" -f "$tmp/img" "$tmp/mnt" 2>"$tmp/err"; then
    echo "FAIL: uext4 mounted without /dev/fuse"
    exit 1
fi
echo "ok daemon refuses without /dev/fuse: $(head -1 "$tmp/err")"
"$scenario" --backend=lib "$@"
INNER
