#!/bin/bash
# Everything on a fresh Debian 12 machine: install the packages, build,
# make the demo image (images/build.sh), mount it with uext4, look around,
# write a file, unmount, and check the image with e2fsck.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
[ -d build ] || meson setup build
ninja -C build

images/build.sh build/images demo.img
img=build/images/demo.img
mnt=$(mktemp -d /tmp/uext4-demo.XXXXXX)
cleanup() {
    if grep -q " $mnt " /proc/mounts; then
        fusermount3 -u "$mnt" || fusermount3 -uz "$mnt"
    fi
    rmdir "$mnt" 2>/dev/null || true
}
trap cleanup EXIT

# In the foreground (-f) so this script owns the daemon's PID; readiness is
# the mount appearing in /proc/mounts.
build/uext4 -f "$img" "$mnt" &
pid=$!
for _ in $(seq 100); do
    grep -q " $mnt " /proc/mounts && break
    kill -0 "$pid" 2>/dev/null || { echo "uext4 failed to mount" >&2; exit 1; }
    sleep 0.1
done
echo "== mounted $img on $mnt"
ls -la "$mnt"
echo "== /hello.txt:"
cat "$mnt/hello.txt" 2>/dev/null || true
echo "written by uext4 quickstart at $(date -u +%FT%TZ)" >"$mnt/quickstart.txt"
cat "$mnt/quickstart.txt"
df -h "$mnt"

# The daemon writes everything back and exits after the unmount.
fusermount3 -u "$mnt"
wait "$pid"
echo "== e2fsck -fn $img"
e2fsck -fn "$img"
echo "quickstart: OK"
