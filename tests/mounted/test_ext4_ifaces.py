#!/usr/bin/env python3
"""Interfaces of ext4 that the standard suites use (issue 12), each compared
with the kernel's ext4 on a loop mount of a copy of the same fresh image:
the mount options mount(8) and fstests pass, with the atime modes
behaving as the kernel's.

Runs only as root where `mount -o loop` works, else exits 77.  Only freshly
made (and fsck-clean) images are ever loop-mounted."""

import contextlib
import os
import shutil
import subprocess
import time

from uext4test import (Mount, SkipFile, TestFailure, check, eq, fsck, main,
                       mkfs, run, test, workdir)


@contextlib.contextmanager
def kernel_mount(img, mnt, opts=()):
    os.makedirs(mnt, exist_ok=True)
    run(['mount', '-t', 'ext4', '-o', ','.join(['loop'] + list(opts)), img,
         mnt])
    try:
        yield mnt
    finally:
        run(['umount', mnt])


def on_both(d, fn, kopts=(), uopts=None, features=(), size='32M'):
    """Run fn(root) on the kernel's ext4 and on uext4, over copies of one
    fresh image; return both results and fsck both images."""
    kimg = mkfs(d + '/k.img', size=size, features=features)
    uimg = d + '/u.img'
    shutil.copyfile(kimg, uimg)
    with kernel_mount(kimg, d + '/kmnt', kopts) as kmnt:
        kres = fn(kmnt)
    with Mount(uimg, d + '/umnt', opts=kopts if uopts is None else uopts) as m:
        ures = fn(m.mnt)
    fsck(kimg)
    fsck(uimg)
    return kres, ures, kimg, uimg


# ---------------------------------------------------------------- atime

def atime_ns(path):
    return os.stat(path).st_atime_ns


def tick():
    # Both file systems stamp times from a clock that may be coarse (the
    # kernel's jiffies): wait for it to move so an update shows.
    time.sleep(0.03)


def read_all(path):
    with open(path, 'rb') as f:
        f.read()


def atime_script(root):
    """Which accesses moved atime, as a list of (step, moved)."""
    f = os.path.join(root, 'f')
    d = os.path.join(root, 'd')
    with open(f, 'wb') as fh:
        fh.write(b'x' * 5000)
    os.mkdir(d)
    open(os.path.join(d, 'e'), 'w').close()
    old = time.time() - 3600
    os.utime(f, (old - 10, old))   # atime before mtime
    os.utime(d, (old - 10, old))
    os.sync()
    out = []
    for step, fn, path in [('read after change', read_all, f),
                           ('read again', read_all, f),
                           ('read a third time', read_all, f),
                           ('list dir after change', os.listdir, d),
                           ('list dir again', os.listdir, d)]:
        before = atime_ns(path)
        tick()
        fn(path)
        out.append((step, atime_ns(path) != before))
    return out


def atime_case(opts):
    with workdir() as d:
        k, u, _, _ = on_both(d, atime_script, kopts=opts)
        eq(u, k, 'atime updates with -o %s (uext4 vs kernel)'
           % (','.join(opts) or 'defaults'))
        return k


@test
def atime_relatime_default():
    k = atime_case([])
    # The kernel's answer itself: updated once after a change, then not.
    check(k[0][1] and not k[1][1], 'kernel relatime reference: %r' % k)


@test
def atime_strictatime():
    k = atime_case(['strictatime'])
    check(all(moved for _, moved in k), 'kernel strictatime reference: %r' % k)


@test
def atime_noatime():
    k = atime_case(['noatime'])
    check(not any(moved for _, moved in k), 'kernel noatime reference: %r' % k)


@test
def atime_nodiratime_strictatime():
    k = atime_case(['strictatime', 'nodiratime'])
    check(k[1][1] and not k[3][1], 'kernel nodiratime reference: %r' % k)


@test
def atime_relatime_explicit_and_lazytime():
    atime_case(['relatime', 'lazytime'])


# ------------------------------------------------------------- options

# What fstests and fstab lines pass for ext4: every one must mount.
SUITE_OPTIONS = [
    ['nodiratime'], ['strictatime', 'lazytime'], ['subtype='],
    ['rw', 'nosuid', 'nodev', 'noexec', 'relatime', 'async', 'dirsync'],
    ['defaults', 'auto', 'nouser', '_netdev', 'nofail', 'x-systemd.automount'],
    ['data=ordered', 'commit=5', 'barrier=1', 'nobarrier', 'errors=continue',
     'journal_checksum', 'discard', 'nodelalloc', 'inode_readahead_blks=32',
     'stripe=4', 'max_batch_time=15000', 'min_batch_time=0',
     'journal_ioprio=3', 'auto_da_alloc', 'noauto_da_alloc'],
    ['acl', 'user_xattr', 'i_version', 'dax=never', 'init_itable=10',
     'noinit_itable', 'block_validity', 'resuid=0', 'resgid=0', 'usrquota',
     'grpquota', 'prjquota', 'quota', 'noquota', 'sb=1'],
]


@test
def suite_options_mount():
    with workdir() as d:
        img = mkfs(d + '/img', size='16M')
        for opts in SUITE_OPTIONS:
            with Mount(img, d + '/mnt', opts=opts) as m:
                with open(m.path('probe'), 'wb') as f:
                    f.write(b'ok')
                eq(open(m.path('probe'), 'rb').read(), b'ok',
                   'probe file with -o %s' % ','.join(opts))
                os.unlink(m.path('probe'))
            log = m.log()
            for o in opts:
                name = o.split('=')[0]
                if name in ('data', 'discard', 'lazytime', 'usrquota'):
                    eq(log.count("mount option '%s'" % name), 1,
                       'warnings naming %s in %r' % (name, log))
            fsck(img)


@test
def grpid_kernel():
    """grpid: a new file takes its directory's group (kernel reference)."""
    def script(root):
        d = os.path.join(root, 'g')
        os.mkdir(d)
        os.chown(d, 0, 4242)
        open(os.path.join(d, 'f'), 'w').close()
        os.mkdir(os.path.join(d, 'sub'))
        return [(n, os.stat(os.path.join(d, n)).st_gid,
                 os.stat(os.path.join(d, n)).st_mode & 0o2000)
                for n in ('f', 'sub')]
    for opts in (['grpid'], ['nogrpid']):
        with workdir() as d:
            k, u, _, _ = on_both(d, script, kopts=opts)
            eq(u, k, 'groups of new files with -o %s' % opts[0])


def setup():
    if os.geteuid() != 0:
        raise SkipFile('needs root for loop mounts')
    with workdir() as d:
        img = mkfs(d + '/probe.img', size='16M')
        os.mkdir(d + '/m')
        p = subprocess.run(['mount', '-t', 'ext4', '-o', 'loop', img,
                            d + '/m'], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        if p.returncode != 0:
            raise SkipFile('kernel loop mount unavailable: %s'
                           % p.stdout.decode(errors='replace').strip())
        subprocess.run(['umount', d + '/m'], check=True)


if __name__ == '__main__':
    main(setup)
