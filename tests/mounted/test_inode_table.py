#!/usr/bin/env python3
"""Inodes read from the inode tables, cold: the daemon reads the table
blocks of a group ahead, in aligned windows, up to the part of the table
the group descriptor says is in use (src/e2/inode.c, itable_readahead).
Every lookup must still return its own inode, byte for byte as the kernel
reads it, wherever the inode sits: either side of a window, a group or a
flex_bg boundary, in groups whose tables were never initialised
(lazy_itable_init, uninit_bg) or partly used (itable_unused), and next to
inodes changed since the mount (dirty table blocks the window must leave
as they are). The kernel's loop mount of a copy is the reference.

Images: 1 KiB blocks, 256 inodes a group (64 table blocks, two windows of
32), flex_bg groups of 4; and 4 KiB blocks with 128-byte inodes (32 a
block). A tree made by mke2fs -d puts top-level directories in different
groups (Orlov), so the files' inodes run across groups and flex_bg
boundaries.
"""
import hashlib
import os
import shutil
import stat

from uext4test import (Mount, check, drop_caches, eq, fsck, kernel_mount,
                       main, mkfs, require_kernel_loop_mount, run, test,
                       workdir)

DIRS = 6
FILES = 300     # a directory: more than a group's 256 inodes


def content(d, i):
    return (b'%d/%d ' % (d, i)) * (i % 7)


def make_tree(root):
    for d in range(DIRS):
        p = os.path.join(root, 'd%d' % d)
        os.makedirs(p)
        for i in range(FILES):
            with open(os.path.join(p, 'f%04d' % i), 'wb') as f:
                f.write(content(d, i))
            os.utime(os.path.join(p, 'f%04d' % i), (1e9 + i, 1e9 + d * 1000 + i))


def make_image(d, opts, features=('flex_bg',)):
    src = os.path.join(d, 'src')
    make_tree(src)
    img = mkfs(os.path.join(d, 'img'), size='64M', features=features,
               opts=list(opts) + ['-d', src],
               extended=('lazy_itable_init=1',))
    shutil.rmtree(src)
    return img


def snapshot(root):
    """{path: (inode number, mode, nlink, uid, gid, size, blocks, atime,
    mtime and ctime in ns, sha256 of the data)} of every name under root,
    visited in an order that jumps between directories (every lookup is a
    different table block)."""
    names = []
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for n in sorted(dirs) + sorted(files):
            names.append(os.path.relpath(os.path.join(dirpath, n), root))
    names.sort(key=lambda p: (hash_of(p), p))
    out = {}
    for rel in names:
        if rel.startswith('lost+found'):
            continue
        st = os.lstat(os.path.join(root, rel))
        data = b''
        if stat.S_ISREG(st.st_mode):
            with open(os.path.join(root, rel), 'rb') as f:
                data = f.read()
        out[rel] = (st.st_ino, st.st_mode, st.st_nlink, st.st_uid, st.st_gid,
                    st.st_size, st.st_blocks, st.st_mtime_ns, st.st_ctime_ns,
                    hashlib.sha256(data).hexdigest())
    return out


def hash_of(p):
    return hashlib.sha256(p.encode()).digest()[:4]


def groups_spanned(snap, ipg):
    return {(v[0] - 1) // ipg for v in snap.values()}


def change_some(mnt):
    """New files and changed attributes since the mount: table blocks
    dirty in the running transaction, next to blocks not read yet."""
    for d in range(DIRS):
        p = os.path.join(mnt, 'd%d' % d)
        for i in range(0, FILES, 37):
            os.chmod(os.path.join(p, 'f%04d' % i), 0o600 + i % 8)
        for i in range(5):
            with open(os.path.join(p, 'new%d' % i), 'wb') as f:
                f.write(b'new %d %d\n' % (d, i))


def compare_with_kernel(d, img, ipg, change):
    """Cold uext4 mount (a fresh daemon) against the kernel's loop mount
    of a copy, after the same changes on both."""
    kimg = os.path.join(d, 'kernel.img')
    shutil.copyfile(img, kimg)
    with kernel_mount(kimg, os.path.join(d, 'kmnt')) as kmnt:
        if change:
            change_some(kmnt)
            # Fixed times: the two sides' clocks differ.
            fix_times(kmnt)
        want = snapshot(kmnt)
    with Mount(img) as m:
        if change:
            change_some(m.mnt)
            fix_times(m.mnt)
            drop_caches(2)   # the kernel looks every name up again
        got = snapshot(m.mnt)
    check(len(groups_spanned(want, ipg)) >= 4,
          'the tree spans only groups %s' % sorted(groups_spanned(want, ipg)))
    eq(sorted(got), sorted(want), 'names')
    for k in sorted(want):
        # New files: the two allocators may choose other numbers.
        first = 1 if os.path.basename(k).startswith('new') else 0
        eq(got[k][first:7] + got[k][9:], want[k][first:7] + want[k][9:], k)
        if not change:
            eq(got[k][7:9], want[k][7:9], k + ' times')
    fsck(img)
    fsck(kimg)
    # And once more cold, unchanged: the image as the kernel reads it.
    with kernel_mount(img, os.path.join(d, 'kmnt')) as kmnt:
        again = snapshot(kmnt)
    with Mount(img) as m:
        eq(snapshot(m.mnt), again, 'a cold mount after the changes')
    fsck(img)


def fix_times(mnt):
    for d in range(DIRS):
        p = os.path.join(mnt, 'd%d' % d)
        for n in sorted(os.listdir(p)):
            if n.startswith('new'):
                os.utime(os.path.join(p, n), (2e9, 2e9))


@test(timeout=240)
def lookups_1k_blocks_flex_bg_uninit():
    with workdir() as d:
        img = make_image(d, ['-b', '1024', '-g', '2048', '-N', '8192',
                             '-G', '4', '-I', '256'])
        compare_with_kernel(d, img, 256, change=False)


@test(timeout=240)
def lookups_next_to_changed_inodes():
    with workdir() as d:
        img = make_image(d, ['-b', '1024', '-g', '2048', '-N', '8192',
                             '-G', '4', '-I', '256'])
        compare_with_kernel(d, img, 256, change=True)


@test(timeout=240)
def lookups_4k_blocks_small_inodes():
    with workdir() as d:
        img = make_image(d, ['-b', '4096', '-g', '1024', '-N', '4096',
                             '-G', '2', '-I', '128'])
        compare_with_kernel(d, img, 256, change=True)


def crashed_copy(d):
    """A copy of a kernel-mounted image taken after fsyncs: its new inodes
    (several table blocks of a group no inode was read from yet at the
    copy) are only in the journal. Returns (copy, original unmounted).
    The copy's files read as empty (their data was not in the copy when it
    was taken), on the kernel's replay too: the names and inodes count."""
    orig = mkfs(os.path.join(d, 'orig.img'), size='32M',
                opts=['-g', '4096', '-N', '4096'],
                extended=('lazy_itable_init=0', 'lazy_journal_init=0'))
    crashed = os.path.join(d, 'crashed.img')
    with kernel_mount(orig, os.path.join(d, 'kmnt'), ('commit=600',)) as k:
        for n in range(2):
            os.makedirs(os.path.join(k, 'd%d' % n))
            for i in range(FILES):
                p = os.path.join(k, 'd%d' % n, 'f%04d' % i)
                with open(p, 'wb') as f:
                    f.write(content(n, i))
                    os.fsync(f.fileno())
            fd = os.open(os.path.join(k, 'd%d' % n), os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        fd = os.open(k, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        shutil.copyfile(orig, crashed)
    return crashed, orig


@test(timeout=240)
def lookups_of_inodes_only_in_the_journal():
    """A read-only mount replays the journal in memory (the overlay): the
    inode table blocks read ahead must be the replayed ones."""
    with workdir() as d:
        crashed, orig = crashed_copy(d)
        check('needs_recovery' in run(['dumpe2fs', '-h', crashed]).stdout
              .decode(), 'the copy does not need recovery')
        kimg = os.path.join(d, 'kernel.img')
        shutil.copyfile(crashed, kimg)
        with kernel_mount(kimg, os.path.join(d, 'kmnt')) as kmnt:
            want = snapshot(kmnt)    # the kernel's replay of a copy
        with Mount(crashed, opts=['ro']) as m:
            got = snapshot(m.mnt)
        check(len(want) > 2 * FILES, 'the kernel replayed %d names' % len(want))
        eq(got, want, 'the replayed tree')
        fsck(orig)
        fsck(kimg)


if __name__ == '__main__':
    main(setup=require_kernel_loop_mount)
