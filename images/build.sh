#!/bin/bash
# images/build.sh [OUTDIR [IMAGE...]] — build the uext4 sample and test images.
#
# Every image comes from a recipe: a source tree made by mktree.py, `mke2fs -d`
# with a fixed UUID, hash seed, clock and mke2fs.conf, and a few debugfs
# fix-ups (xattrs, owners, ctime). Two runs on the same host give
# byte-identical images (tests/fuzz/check_images_deterministic.sh holds that).
# No root is needed; only e2fsprogs, coreutils and python3.
#
# OUTDIR defaults to images/out/. With IMAGE names, only those are built.
# OUTDIR/SHA256SUMS lists the images built by this run.
# See images/README.md for what each image is for.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:-$HERE/out}
shift || true

die() { echo "images/build.sh: error: $*" >&2; exit 1; }
PATH=$PATH:/usr/sbin:/sbin   # mke2fs and friends, for users whose PATH lacks sbin

for tool in mke2fs debugfs e2fsck python3 sha256sum touch find; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (need e2fsprogs, coreutils, python3)"
done
case "$(mke2fs -V 2>&1 | head -n1)" in
    "mke2fs 1.4"[6-9]*) ;;
    *) die "need mke2fs >= 1.46 (have: $(mke2fs -V 2>&1 | head -n1))" ;;
esac

# Pin everything that could vary between hosts or runs.
FIXED_TIME=1700000000                    # 2023-11-14 22:13:20 UTC
export E2FSPROGS_FAKE_TIME=$FIXED_TIME   # s_mkfs_time, s_wtime, root and lost+found times
export E2FSCK_TIME=$FIXED_TIME           # e2fsck reads its own variable (s_lastcheck, s_wtime)
export MKE2FS_CONFIG=$HERE/mke2fs.conf   # not the host's /etc/mke2fs.conf
export TZ=UTC LC_ALL=C
unset MKE2FS_SYNC MKE2FS_DEVICE_SECTSIZE MKE2FS_DEVICE_PHYS_SECTSIZE MKE2FS_FIRST_META_BG || true
HASH_SEED=75657874-3400-4000-8000-000000000001
umask 022

mkdir -p "$OUT" || die "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/uext4-fz-img.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$WORK"' EXIT

# build NAME TREE SIZE UUID REINDEX -- MKE2FS_ARGS...
#   REINDEX=yes runs `e2fsck -fyD` after mke2fs: libext2fs never creates an
#   htree, e2fsck -D indexes every directory of more than one block.
build() {
    local name=$1 tree=$2 size=$3 uuid=$4 reindex=$5
    shift 6
    local img=$OUT/$name src=$WORK/${name%.img}.src log=$WORK/${name%.img}.log
    echo "building $name ($tree tree, $size)"
    rm -f "$img"
    python3 "$HERE/mktree.py" tree "$tree" "$src" || die "$name: mktree.py $tree failed"
    # Fixed atime/mtime on the whole tree, just before mke2fs reads it.
    find "$src" -exec touch -h -d "@$FIXED_TIME" {} + || die "$name: touch failed"
    if ! mke2fs -q -F -U "$uuid" -E "hash_seed=$HASH_SEED" -L "${name%.img}" \
            "$@" -d "$src" "$img" "$size" >"$log" 2>&1; then
        cat "$log" >&2
        die "$name: mke2fs $* failed"
    fi
    if [ "$reindex" = yes ]; then
        local rc=0
        e2fsck -fyD "$img" >"$log" 2>&1 || rc=$?
        [ "$rc" -le 1 ] || { cat "$log" >&2; die "$name: e2fsck -fyD failed (exit $rc)"; }
    fi
    python3 "$HERE/mktree.py" fixup "$tree" "$img" "$src" >"$WORK/fixup.cmds" \
        || die "$name: mktree.py fixup failed"
    debugfs -w -f "$WORK/fixup.cmds" "$img" >"$log" 2>&1 || { cat "$log" >&2; die "$name: debugfs fix-up failed"; }
    # With -f, debugfs echoes each command as "debugfs: CMD"; anything else is an error.
    if grep -qv '^debugfs' "$log"; then
        cat "$log" >&2
        die "$name: a debugfs fix-up command failed"
    fi
    if ! e2fsck -fn "$img" >"$log" 2>&1; then
        cat "$log" >&2
        die "$name: e2fsck -fn does not find the new image clean"
    fi
    rm -rf "$src"
    BUILT+=("$name")
}

declare -a BUILT=()
want() { [ ${#SELECT[@]} -eq 0 ] || [[ " ${SELECT[*]} " == *" $1 "* ]]; }
SELECT=("$@")
ALL="demo.img inode128.img inode256.img inode1024.img ext3.img ext2.img largedir.img
     fuzz-csum.img fuzz-nocsum.img fuzz-ext3.img"
for s in "${SELECT[@]}"; do
    [[ " $(echo $ALL) " == *" $s "* ]] || die "unknown image '$s' (known: $(echo $ALL))"
done

E4=(-t ext4 -O ^orphan_file)  # orphan_file is not in Debian 12's defaults; be explicit

want demo.img && build demo.img demo 16M 75657874-0000-4000-8000-00000000de00 no -- \
    "${E4[@]}" -b 4096 -I 256 -N 2048 -O inline_data,metadata_csum,64bit
# 128-byte inodes have no room for system.data: mke2fs refuses inline_data there.
want inode128.img && build inode128.img inline 8M 75657874-0000-4000-8000-000000000128 no -- \
    "${E4[@]}" -b 4096 -I 128 -O metadata_csum,64bit
want inode256.img && build inode256.img inline 8M 75657874-0000-4000-8000-000000000256 no -- \
    "${E4[@]}" -b 4096 -I 256 -O inline_data,metadata_csum,64bit
want inode1024.img && build inode1024.img inline 8M 75657874-0000-4000-8000-000000001024 no -- \
    "${E4[@]}" -b 4096 -I 1024 -O inline_data,metadata_csum,64bit
want ext3.img && build ext3.img blockmap 8M 75657874-0000-4000-8000-0000000e0003 no -- \
    -t ext3 -b 1024 -I 256
want ext2.img && build ext2.img blockmap 8M 75657874-0000-4000-8000-0000000e0002 no -- \
    -t ext2 -b 1024 -I 128
want largedir.img && build largedir.img largedir 32M 75657874-0000-4000-8000-00000000d120 yes -- \
    "${E4[@]}" -b 4096 -I 256 -N 20500 -O inline_data,metadata_csum,64bit,dir_index
# Bases of tests/fuzz/corrupt_sweep.py: small, 1 KiB blocks, every kind of metadata.
want fuzz-csum.img && build fuzz-csum.img fuzz 4M 75657874-0000-4000-8000-00000000f001 yes -- \
    "${E4[@]}" -b 1024 -I 256 -N 512 -O inline_data,metadata_csum,64bit
want fuzz-nocsum.img && build fuzz-nocsum.img fuzz 4M 75657874-0000-4000-8000-00000000f002 yes -- \
    "${E4[@]}" -b 1024 -I 256 -N 512 -O inline_data,^metadata_csum,^64bit
want fuzz-ext3.img && build fuzz-ext3.img fuzz 4M 75657874-0000-4000-8000-00000000f003 yes -- \
    -t ext3 -b 1024 -I 256 -N 512

[ ${#BUILT[@]} -gt 0 ] || die "nothing built"
(cd "$OUT" && sha256sum "${BUILT[@]}") >"$OUT/SHA256SUMS"
echo "built ${#BUILT[@]} image(s) in $OUT:"
(cd "$OUT" && du -h --apparent-size "${BUILT[@]}" | sed 's/^/  apparent /' && du -h "${BUILT[@]}" | sed 's/^/  on disk  /')
