#!/usr/bin/env python3
"""A mount's life cycle around the image: read-only mounts of images that
need recovery, remounting read-only and back, and the unmount that waits
for the image to be final (`uext4 -u`).

ro_* cases need a journal that Linux wrote and did not checkpoint: a fresh
image is loop-mounted with commit=600, files and directories are written
and fsync'd (each fsync commits the journal; the metadata reaches only the
log, its home blocks stay dirty in the kernel's cache), and the backing
file is copied while still mounted.  The copy is a crashed image whose
home blocks are stale.  Runs only as root where `mount -o loop` works, else
exits 77.  Only freshly made images are ever loop-mounted.
"""

import errno
import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time

from uext4test import (UEXT4, Mount, SkipFile, TestFailure, check,
                       debugfs_cat, eq, errno_of, fsck, fuse_unmount, main,
                       mkfs, mounted_at, pattern, read_file, run, run_as,
                       sb_field, test, workdir, write_file)

USER = 'uext4test'
OTHER_USER = 'uext4test2'

# What the kernel writes into the crashed image: name -> contents.
KERNEL_FILES = {
    'small': pattern(100, 1),
    'four_blocks': pattern(16384, 2),
    'dir/inner': pattern(70000, 3),
    'dir/sub/leaf': pattern(5, 4),
}


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def kernel_crashed_image(d):
    """A copy of a kernel-mounted image taken after fsyncs: it needs
    recovery and only its journal holds the new files."""
    orig = mkfs(os.path.join(d, 'orig.img'), size='32M',
                extended=('lazy_itable_init=0', 'lazy_journal_init=0'))
    kmnt = os.path.join(d, 'kmnt')
    os.makedirs(kmnt)
    p = subprocess.run(['mount', '-t', 'ext4', '-o', 'loop,commit=600', orig,
                        kmnt], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    if p.returncode != 0:
        raise SkipFile('loop mounts do not work here: %s'
                       % p.stdout.decode(errors='replace').strip())
    crashed = os.path.join(d, 'crashed.img')
    try:
        os.makedirs(os.path.join(kmnt, 'dir', 'sub'))
        for name, data in KERNEL_FILES.items():
            path = os.path.join(kmnt, name)
            with open(path, 'wb') as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for sub in ('dir/sub', 'dir', ''):
            fsync_path(os.path.join(kmnt, sub))
        run(['cp', '--sparse=always', orig, crashed])
    finally:
        run(['umount', kmnt])
    fsck(orig)
    return crashed


def tree(root):
    """{relative path: contents} of the regular files under root; dirs map
    to None."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirs:
            if name != 'lost+found':
                out[os.path.normpath(os.path.join(rel, name))] = None
        for name in files:
            out[os.path.normpath(os.path.join(rel, name))] = read_file(
                os.path.join(dirpath, name))
    return out


def expected_tree():
    want = {'dir': None, 'dir/sub': None}
    want.update(KERNEL_FILES)
    return want


@test
def ro_mount_replays_in_memory():
    with workdir() as d:
        img = kernel_crashed_image(d)
        check('needs_recovery' in sb_field(img, 'Filesystem features'),
              'the copied image does not need recovery')
        # The test means something only if the home blocks are stale:
        # without replay the files are not there.
        with Mount(img, opts=['ro', 'norecovery']) as m:
            check(tree(m.mnt) != expected_tree(),
                  'the files are visible without replaying the journal')
        before = sha256(img)
        with Mount(img, opts=['ro']) as m:
            eq(tree(m.mnt), expected_tree(), 'the tree of the ro mount')
        eq(sha256(img), before, 'sha256 of the image after the ro mount')
        check('journal recovered in memory' in m.log(),
              'no in-memory recovery logged: ' + m.log())
        check('needs_recovery' in sb_field(img, 'Filesystem features'),
              'needs_recovery was cleared by the ro mount')
        # A second ro mount replays again, the same way.
        with Mount(img, opts=['ro']) as m:
            eq(tree(m.mnt), expected_tree(), 'the tree of a second ro mount')
        eq(sha256(img), before, 'sha256 after a second ro mount')
        # Read-write replays into the image for real.
        with Mount(img) as m:
            eq(tree(m.mnt), expected_tree(), 'the tree of the rw mount')
        check(sha256(img) != before, 'the rw mount did not replay')
        check('needs_recovery' not in sb_field(img, 'Filesystem features'),
              'needs_recovery still set after the rw mount')
        fsck(img)
        with Mount(img, opts=['ro']) as m:
            eq(tree(m.mnt), expected_tree(), 'the tree after the replay')
            check('journal recovered' not in m.log(),
                  'a clean image was replayed again: ' + m.log())


@test
def ro_norecovery_unchanged():
    with workdir() as d:
        img = kernel_crashed_image(d)
        before = sha256(img)
        with Mount(img, opts=['ro', 'noload']) as m:
            check(tree(m.mnt) != expected_tree(),
                  'noload shows the journal\'s files')
        eq(sha256(img), before, 'sha256 of the image after a noload mount')


if __name__ == '__main__':
    main()
