#!/usr/bin/env python3
"""statx(2) through uext4: the birth time (stx_btime, STATX_BTIME), which
the kernel asks for with FUSE_STATX, compared with a kernel loop mount of
a copy of the same image.

- Files the kernel created: uext4 shows the birth time the kernel shows,
  also after a plain stat(2) has filled the kernel's attribute cache.
- Files uext4 created: born within the creation's time window, i_crtime
  on disk (debugfs) the same, and the kernel shows the same birth time.
- 128-byte inodes (ext4 and ext2 made with -I 128) have no room for
  i_crtime: no STATX_BTIME on either side, for old and new files.

stx_attributes (chattr +i/+a/+d) are not compared here: the kernel's FUSE
client (fs/fuse/dir.c, fuse_do_statx, Linux 6.18) keeps only the mask's
basic stats and the birth time of a FUSE_STATX reply and never passes its
stx_attributes on; the library's uext4_statx() reports them (lib-ops,
statx).
"""

import os
import shutil
import time

from uext4test import require_kernel_loop_mount
from uext4test import (STATX_BTIME, Mount, TestFailure, check, debugfs, eq,
                       fsck, kernel_mount, main, mkfs, statx, test, workdir)

AT_SYMLINK_NOFOLLOW = 0x100
# What both sides must agree on, besides the birth time.
FIELDS = ('ino', 'mode', 'nlink', 'uid', 'gid', 'size', 'mtime', 'ctime')
NAMES = ('f', 'd', 'l', 'p')


def make_tree(root):
    """A file whose times all differ from its birth, a directory, a fast
    symlink and a fifo."""
    with open(os.path.join(root, 'f'), 'wb') as f:
        f.write(b'born\n')
    os.utime(os.path.join(root, 'f'), ns=(1_000_000_123, 2_000_000_456))
    os.chmod(os.path.join(root, 'f'), 0o600)
    os.mkdir(os.path.join(root, 'd'))
    os.symlink('f', os.path.join(root, 'l'))
    os.mkfifo(os.path.join(root, 'p'))


def statx_all(root):
    return {n: statx(os.path.join(root, n), flags=AT_SYMLINK_NOFOLLOW)
            for n in NAMES + ('.',)}


def has_btime(sx):
    return bool(sx['mask'] & STATX_BTIME)


def compare(got, want, what):
    for name in sorted(want):
        for field in FIELDS + ('btime',):
            eq(got[name][field], want[name][field],
               '%s %s %s' % (what, name, field))
        eq(has_btime(got[name]), has_btime(want[name]),
           '%s %s STATX_BTIME in the mask' % (what, name))


def kernel_statx(image, d):
    """statx of every name on a kernel loop mount of a copy of @image."""
    ref = os.path.join(d, 'ref.img')
    shutil.copyfile(image, ref)
    with kernel_mount(ref, os.path.join(d, 'k')) as k:
        got = statx_all(k)
    fsck(ref)
    return got


def crtime_on_disk(image, name):
    """debugfs's crtime of /@name as (sec, nsec), None without one."""
    for line in debugfs(image, 'stat /%s' % name).splitlines():
        line = line.strip()
        if line.startswith('crtime:'):
            sec, extra = line.split()[1].split(':')
            sec, extra = int(sec, 16), int(extra, 16)
            sec = sec - (1 << 32) if sec >= 1 << 31 else sec
            return (sec + ((extra & 3) << 32), extra >> 2)
    return None


@test
def btime_of_kernel_files():
    with workdir() as d:
        img = mkfs(os.path.join(d, 'a.img'))
        with kernel_mount(img, os.path.join(d, 'k0')) as k:
            make_tree(k)
        want = kernel_statx(img, d)
        f = want['f']
        check(has_btime(f) and f['btime'] != f['ctime']
              and f['btime'] != f['mtime'],
              'the kernel gave f a birth time apart from its times: %r' % f)
        with Mount(img, os.path.join(d, 'm')) as m:
            compare(statx_all(m.mnt), want, 'uext4 (first statx)')
        # A stat(2) first: GETATTR fills the kernel's cache for a day; the
        # birth time is asked for on its own by the statx after it.
        with Mount(img, os.path.join(d, 'm')) as m:
            for n in NAMES:
                os.lstat(m.path(n))
            compare(statx_all(m.mnt), want, 'uext4 (after stat)')
        fsck(img)


@test
def btime_of_uext4_files():
    with workdir() as d:
        img = mkfs(os.path.join(d, 'a.img'))
        with Mount(img, os.path.join(d, 'm')) as m:
            t0 = time.clock_gettime_ns(time.CLOCK_REALTIME)
            make_tree(m.mnt)
            t1 = time.clock_gettime_ns(time.CLOCK_REALTIME)
            got = statx_all(m.mnt)
        for n in NAMES:
            check(has_btime(got[n]), 'uext4: no STATX_BTIME for %s: %r'
                  % (n, got[n]))
            born = got[n]['btime'][0] * 10**9 + got[n]['btime'][1]
            # The daemon's clock is this machine's (same CLOCK_REALTIME).
            check(t0 <= born <= t1, 'uext4: %s born at %d, outside the '
                  'creation window [%d, %d]' % (n, born, t0, t1))
            eq(crtime_on_disk(img, n), got[n]['btime'],
               'debugfs crtime of %s' % n)
        check(got['f']['btime'] != got['f']['ctime'],
              'f: birth time follows the chmod: %r' % got['f'])
        compare(kernel_statx(img, d), {n: got[n] for n in NAMES},
                'kernel over what uext4 made')
        # Read back from the image by a new daemon, not from a cache.
        with Mount(img, os.path.join(d, 'm')) as m:
            again = statx_all(m.mnt)
        compare({n: again[n] for n in NAMES}, {n: got[n] for n in NAMES},
                'uext4 remounted')
        fsck(img)


@test
def no_btime_on_small_inodes():
    for fstype in ('ext4', 'ext2'):
        with workdir() as d:
            img = mkfs(os.path.join(d, 'a.img'), fstype=fstype,
                       opts=('-I', '128'))
            with kernel_mount(img, os.path.join(d, 'k0')) as k:
                make_tree(k)
            want = kernel_statx(img, d)
            check(not any(has_btime(sx) for sx in want.values()),
                  '%s -I 128: the kernel shows a birth time' % fstype)
            with Mount(img, os.path.join(d, 'm')) as m:
                compare(statx_all(m.mnt), want, '%s -I 128 uext4' % fstype)
                with open(m.path('new'), 'wb') as f:
                    f.write(b'y')
                os.mkdir(m.path('newd'))
                for n in ('new', 'newd'):
                    check(not has_btime(statx(m.path(n))),
                          '%s -I 128: new %s has a birth time' % (fstype, n))
            for n in ('new', 'newd'):
                eq(crtime_on_disk(img, n), None, 'crtime of %s on disk' % n)
            ref = os.path.join(d, 'ref2.img')
            shutil.copyfile(img, ref)
            with kernel_mount(ref, os.path.join(d, 'k2')) as k:
                for n in ('new', 'newd'):
                    check(not has_btime(statx(os.path.join(k, n))),
                          '%s -I 128: the kernel shows a birth time for %s'
                          % (fstype, n))
            fsck(ref)
            fsck(img)


if __name__ == '__main__':
    main(setup=require_kernel_loop_mount)
