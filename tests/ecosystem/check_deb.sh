#!/bin/bash
# The Debian package: `dpkg-buildpackage -us -uc -b` on a copy of the source
# tree builds uext4, libuext4-1 and libuext4-dev; lintian has nothing above
# "info" to say; `dpkg -x` unpacks them into a throwaway root, whose daemon
# mounts the demo image (images/build.sh), whose uext4-inspect reads it
# through the packaged shared library, and against whose libuext4-dev a
# program compiles and runs (pkg-config).
#
# Building the package takes minutes (a full optimised build), so this runs
# only with UEXT4_TEST_DEB=1 (by hand:
#   UEXT4_TEST_DEB=1 meson test -C build ecosystem-deb --print-errorlogs)
# and exits 77 (skipped) otherwise. Needs root for the FUSE mount.
set -euo pipefail
src=$(cd "$1" && pwd)
if [ "${UEXT4_TEST_DEB:-}" != 1 ]; then
    echo "SKIP: building the package takes minutes; run with UEXT4_TEST_DEB=1"
    exit 77
fi
for tool in dpkg-buildpackage dh lintian pkg-config cc debugfs e2fsck; do
    command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed"; exit 1; }
done
if [ "$(id -u)" -ne 0 ] || [ ! -e /dev/fuse ]; then
    echo "SKIP: the mount needs root and /dev/fuse"
    exit 77
fi
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)

work=$(mktemp -d /tmp/uext4-deb.XXXXXX)
mnt=$work/mnt
cleanup() {
    if grep -q " $mnt " /proc/self/mounts; then
        fusermount3 -u "$mnt" || fusermount3 -uz "$mnt"
    fi
    rm -rf "$work"
}
trap cleanup EXIT
passed=0
ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; echo "$passed passed, 1 failed"; exit 1; }

# A copy of the source: the package build writes debian/ output and puts
# the .debs in the parent directory.
mkdir "$work/src"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$src" && git ls-files -co --exclude-standard | grep -v '^build' |
        tar -cf - -T -) | tar -xf - -C "$work/src"
else
    (cd "$src" && tar -cf - --exclude='./build*' .) | tar -xf - -C "$work/src"
fi
if ! (cd "$work/src" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
    tail -40 "$work/build.log"
    fail "dpkg-buildpackage exited non-zero"
fi
ver=$(dpkg-parsechangelog -l "$work/src/debian/changelog" -S Version)
for p in uext4 libuext4-1 libuext4-dev; do
    [ -f "$work/${p}_${ver}_"*.deb ] || fail "package $p was not built: $(ls "$work")"
done
ok "dpkg-buildpackage built uext4, libuext4-1, libuext4-dev $ver"

# Lintian, pedantic: every tag is printed, and a warning or an error fails.
# None is expected (debian/libuext4-1.symbols answers no-symbols-control-file).
if ! lintian -I --pedantic --fail-on warning,error "$work"/uext4_"$ver"_*.changes >"$work/lintian.log" 2>&1; then
    cat "$work/lintian.log"
    fail "lintian reports warnings or errors"
fi
ok "lintian: no warnings or errors ($(grep -cE '^[EWIPX]:' "$work/lintian.log" || true) other tags)"
grep -E '^[EWIPX]:' "$work/lintian.log" || true

root=$work/root
for p in uext4 libuext4-1 libuext4-dev; do
    dpkg -x "$work/${p}_${ver}_"*.deb "$root"
done
for f in usr/bin/uext4 usr/bin/uext4-scenario usr/bin/uext4-inspect \
    usr/share/man/man1/uext4.1.gz usr/share/man/man1/uext4-scenario.1.gz \
    usr/share/man/man1/uext4-inspect.1.gz usr/include/uext4.h \
    "usr/lib/$multiarch/libuext4.so.1" "usr/lib/$multiarch/libuext4.so" \
    "usr/lib/$multiarch/pkgconfig/uext4.pc"; do
    [ -e "$root/$f" ] || fail "$f is not in the packages"
done
ok "files: daemon, tools, man pages, header, library, pkg-config"

export LD_LIBRARY_PATH=$root/usr/lib/$multiarch
"$src/images/build.sh" "$work/images" demo.img >"$work/images.log" 2>&1 ||
    { cat "$work/images.log"; fail "images/build.sh demo.img"; }
img=$work/images/demo.img
# debugfs's cat of an inline file pads it to 60 bytes: compare block files.
files="big/1m.bin big/4097.bin big/sparse-8m.bin"
for f in $files; do
    debugfs -R "dump /$f $work/want-${f##*/}" "$img" >/dev/null 2>&1
    [ -s "$work/want-${f##*/}" ] || fail "debugfs could not dump /$f from the demo image"
done
mkdir "$mnt"
cmp_fail=
# Daemonised, `uext4` returns once the mount is ready; `uext4 -u` once the
# image is final.
"$root/usr/bin/uext4" "$img" "$mnt" || fail "the packaged uext4 did not mount"
for f in $files; do
    cmp "$mnt/$f" "$work/want-${f##*/}" >"$work/cmp.log" 2>&1 ||
        cmp_fail="$cmp_fail $f: $(cat "$work/cmp.log")"
done
printf 'written by the package test\n' >"$mnt/from-deb.txt" ||
    fail "writing through the mount"
"$root/usr/bin/uext4" -u "$mnt" || fail "uext4 -u"
[ -z "$cmp_fail" ] || fail "read through the mount, differs from debugfs's:$cmp_fail"
# An inline file: its size from debugfs stat, its bytes from the padded dump.
printf 'written by the package test\n' >"$work/want-from-deb"
size=$(debugfs -R 'stat /from-deb.txt' "$img" 2>/dev/null | sed -n 's/.*Size: \([0-9]*\).*/\1/p' | head -1)
debugfs -R "dump /from-deb.txt $work/got-from-deb" "$img" >/dev/null 2>&1
[ "$size" = "$(stat -c %s "$work/want-from-deb")" ] &&
    head -c "$size" "$work/got-from-deb" | cmp - "$work/want-from-deb" >/dev/null ||
    fail "from-deb.txt in the image: size ${size:-none}, bytes differ or missing"
e2fsck -fn "$img" >"$work/fsck.log" 2>&1 || { cat "$work/fsck.log"; fail "e2fsck -fn"; }
ok "the packaged daemon mounts the demo image, reads, writes; e2fsck clean"

out=$("$root/usr/bin/uext4-inspect" "$img" /from-deb.txt) ||
    fail "the packaged uext4-inspect: $out"
ldd "$root/usr/bin/uext4-inspect" | grep -q "=> $root/usr/lib/$multiarch/libuext4.so.1" ||
    fail "uext4-inspect does not use the packaged libuext4.so.1"
echo "$out" | grep -q 'size.*28' || fail "uext4-inspect output: $out"
ok "uext4-inspect runs on the packaged libuext4.so.1"

cat >"$work/prog.c" <<'PROG'
#include <stdio.h>
#include <uext4.h>
int main(int argc, char **argv)
{
    struct uext4_options opts;
    struct uext4_fs *fs;
    struct stat st;
    char why[256];
    uext4_options_init(&opts, sizeof(opts));
    opts.read_only = true;
    int rc = uext4_open(argv[1], &opts, &fs, why, sizeof(why));
    if (rc) {
        fprintf(stderr, "uext4_open: %s\n", why);
        return 1;
    }
    rc = uext4_getattr(fs, UEXT4_ROOT_INO, &st);
    printf("root mode %o rc %d\n", (unsigned)st.st_mode, rc);
    return uext4_close(fs) || rc;
}
PROG
export PKG_CONFIG_PATH=$root/usr/lib/$multiarch/pkgconfig PKG_CONFIG_SYSROOT_DIR=$root
# shellcheck disable=SC2046
cc -o "$work/prog" "$work/prog.c" $(pkg-config --cflags --libs uext4) 2>"$work/cc.log" ||
    { cat "$work/cc.log"; fail "compiling against libuext4-dev"; }
out=$("$work/prog" "$img") || fail "the program linked with libuext4-dev: $out"
[ "$out" = "root mode 40755 rc 0" ] || fail "the program printed: $out"
ok "a program builds with pkg-config uext4 and opens the image"
echo "$passed passed, 0 failed"
