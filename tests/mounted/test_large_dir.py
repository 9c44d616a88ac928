#!/usr/bin/env python3
"""Directories whose htree index fills up: 1 KiB blocks and 255-byte names
(three entries a leaf, 123 index entries in the root and 126 in an index
block with metadata_csum) reach the depth limit at about 20,000 names.

Without large_dir ext4 allows the root and one index level, and refuses a
name past that with ENOSPC; uext4 must too, leaving a directory e2fsck
finds clean. With large_dir a second index level (a third htree level)
takes more names; uext4 builds it, and reads and changes one the kernel
built. A name added to a leaf with room goes where the kernel puts it.
The kernel's loop mount of a copy is the reference each time.

Not tested: a directory past 4 GiB (i_size_high). e2fsck allows a
directory no holes, so even on a sparse image with 64 KiB blocks (whose
zeroed blocks are valid empty directory blocks) every e2fsck -fn reads 4 GiB
of them (5 s each here), uext4's readdir and negative lookups as much.
"""
import errno
import os
import re
import stat

from uext4test import (Mount, check, debugfs, debugfs_cat, eq, fsck,
                       kernel_mount, main, mkfs, require_kernel_loop_mount,
                       run, test, workdir)

LIMIT = 30000


def name(n):
    return '%06d' % n + 'x' * 249      # 255 bytes


def make_image(d, features=()):
    return mkfs(d + '/img', size='96M', features=features,
                opts=['-b', '1024', '-N', '40000'])


def create(mnt, first, count):
    """Create names first.. first+count-1; stop at the first error and
    return (created, errno or None)."""
    for n in range(first, first + count):
        try:
            # mknod: one request through FUSE where open+close is three
            os.mknod(os.path.join(mnt, name(n)), stat.S_IFREG | 0o644)
        except OSError as e:
            return n - first, e.errno
    return count, None


def index_levels(img, path='/'):
    out = debugfs(img, 'htree_dump ' + path)
    m = re.search(r'Indirect levels: (\d+)', out)
    check(m, 'debugfs htree_dump / shows no index: %s' % out[:300])
    return int(m.group(1))


def kernel_sees(img, d, want):
    """The kernel, on a copy of @img, lists exactly @want besides
    lost+found and finds each name by lookup."""
    copy = d + '/kcopy'
    run(['cp', '--sparse=always', img, copy])
    with kernel_mount(copy, d + '/k') as k:
        got = set(os.listdir(k)) - {'lost+found'}
        eq(len(got), len(want), 'names the kernel lists')
        eq(got == want, True, 'the kernel lists the names uext4 has')
        for nm in want:
            os.stat(os.path.join(k, nm))
    fsck(copy)
    os.unlink(copy)


@test(timeout=120)
def index_full_without_large_dir():
    """uext4 refuses the name that would need a third level with ENOSPC,
    as ext4 does, and the directory stays clean (it used to get blocks
    outside its index: e2fsck "block not referenced")."""
    with workdir() as d:
        img = make_image(d)
        with Mount(img, d + '/mnt') as m:
            made, err = create(m.mnt, 0, LIMIT)
            eq(err, errno.ENOSPC, 'errno once the index is full')
            check(made > 15000, 'refused after only %d names' % made)
            eq(os.path.exists(m.path(name(made))), False, 'refused name')
            # Still full on a second try, and nothing else broke.
            eq(create(m.mnt, made, 1), (0, errno.ENOSPC), 'second try')
            os.unlink(m.path(name(0)))
            eq(create(m.mnt, 0, 1), (1, None), 'a name in a freed slot')
        fsck(img)
        check('index is full' in m.log(), 'no message: %s' % m.log())
        eq(index_levels(img), 1, 'index levels')
        kernel_sees(img, d, {name(n) for n in range(made)})


@test(timeout=120)
def three_levels_by_uext4():
    """With large_dir uext4 grows the index a level deeper past the
    two-level limit; the kernel finds every name."""
    with workdir() as d:
        img = make_image(d, ['large_dir'])
        count = 22000
        with Mount(img, d + '/mnt') as m:
            eq(create(m.mnt, 0, count), (count, None), 'creates')
        fsck(img)
        eq(index_levels(img), 2, 'index levels')
        kernel_sees(img, d, {name(n) for n in range(count)})


@test(timeout=120)
def three_levels_by_kernel():
    """A three-level directory the kernel made: uext4 finds every name,
    removes and adds some, and the kernel then sees the result."""
    with workdir() as d:
        img = make_image(d, ['large_dir'])
        count = 22000
        with kernel_mount(img, d + '/k') as k:
            eq(create(k, 0, count), (count, None), 'kernel creates')
        eq(index_levels(img), 2, 'index levels (kernel)')
        want = {name(n) for n in range(count)}
        with Mount(img, d + '/mnt') as m:
            for n in range(count):
                os.stat(m.path(name(n)))
            for n in range(0, count, 7):
                os.unlink(m.path(name(n)))
                want.discard(name(n))
            eq(create(m.mnt, count, 500), (500, None), 'uext4 creates')
            want |= {name(n) for n in range(count, count + 500)}
        fsck(img)
        kernel_sees(img, d, want)


def long_name(tag, n):
    return '%s%05d' % (tag, n) + 'y' * 94     # 100 bytes: 37 to a leaf


@test(timeout=60)
def leaf_inserts_like_kernel():
    """Names added to an indexed directory whose leaves have room land in
    the leaf and at the offset the kernel's ext4_dx_add_entry() picks
    (into the room a removed entry left, or past the name of the first
    entry with room), with the leaf's checksum, and removals through the
    index leave the leaf as the kernel does: the directory the kernel
    made and then thinned out, the same names linked into it and removed
    from it by uext4 and, on a copy, by the kernel, are the same bytes."""
    with workdir() as d:
        img = mkfs(d + '/img', size='32M')
        with kernel_mount(img, d + '/k') as k:
            os.mkdir(k + '/d')
            open(k + '/target', 'w').close()
            for n in range(400):
                os.mknod(os.path.join(k, 'd', long_name('a', n)),
                         stat.S_IFREG | 0o644)
            for n in range(0, 400, 2):
                os.unlink(os.path.join(k, 'd', long_name('a', n)))
        eq(index_levels(img, '/d'), 0, 'index levels (kernel)')
        before = debugfs_cat(img, '/d')
        copy = d + '/kimg'
        run(['cp', '--sparse=always', img, copy])
        # Links: the entries name one existing inode on both sides, where
        # new files could get different inode numbers.
        new = [long_name('b', n) for n in range(150)]
        gone = [long_name('a', n) for n in range(1, 400, 6)]
        with Mount(img, d + '/mnt') as m:
            for nm in new:
                os.link(m.path('target'), m.path('d', nm))
            for nm in gone:
                os.unlink(m.path('d', nm))
        with kernel_mount(copy, d + '/k') as k:
            for nm in new:
                os.link(os.path.join(k, 'target'), os.path.join(k, 'd', nm))
            for nm in gone:
                os.unlink(os.path.join(k, 'd', nm))
        fsck(img)
        fsck(copy)
        got, want = debugfs_cat(img, '/d'), debugfs_cat(copy, '/d')
        eq(len(got), len(before), 'directory size (no leaf was split)')
        bs = 4096
        diff = [off // bs for off in range(0, len(want), bs)
                if got[off:off + bs] != want[off:off + bs]]
        eq(diff, [], 'directory blocks unlike the kernel\'s')


def setup():
    require_kernel_loop_mount(['large_dir'])


if __name__ == '__main__':
    main(setup)
