#!/usr/bin/env python3
"""setattr: chmod, chown, utimens with nanoseconds, truncate; timestamps
maintained as the kernel does (atime is not checked)."""

import errno
import mmap
import os
import re
import stat
import time

from test_killpriv import drop_fsetid
from uext4test import (Mount, TestFailure, check, debugfs_cat, drop_caches,
                       eq, expect_errno, fallocate, fsck, inode_info, main,
                       mkfs, read_file, test, workdir, write_file)


@test
def chmod_chown():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            p = m.path('f')
            write_file(p, b'data')
            os.mkdir(m.path('d'))
            for mode in (0o7777, 0o4755, 0o2750, 0o1777, 0o0, 0o644):
                os.chmod(p, mode)
                eq(os.stat(p).st_mode, stat.S_IFREG | mode,
                   'mode after chmod %o' % mode)
            os.chmod(m.path('d'), 0o3711)
            eq(os.stat(m.path('d')).st_mode, stat.S_IFDIR | 0o3711,
               'dir mode')
            os.chown(p, 1234, 5678)
            st = os.stat(p)
            eq((st.st_uid, st.st_gid), (1234, 5678), 'uid/gid after chown')
            os.chown(p, -1, 42)
            st = os.stat(p)
            eq((st.st_uid, st.st_gid), (1234, 42), 'chown gid only')
            os.chown(p, 70000, -1)                  # needs the high 16 bits
            eq(os.stat(p).st_uid, 70000, 'uid above 65535')
            os.symlink('f', m.path('l'))
            os.lchown(m.path('l'), 99, 98)
            eq((os.lstat(m.path('l')).st_uid, os.lstat(m.path('l')).st_gid),
               (99, 98), 'lchown on the link')
            eq(os.stat(p).st_uid, 70000, 'lchown did not follow')
            # chown clears setuid; setgid only with group exec.
            os.chmod(p, 0o6755)
            os.chown(p, 1, 1)
            eq(stat.S_IMODE(os.stat(p).st_mode), 0o755,
               'setuid/setgid after chown of 6755')
            os.chmod(p, 0o6745)
            os.chown(p, 2, 2)
            eq(stat.S_IMODE(os.stat(p).st_mode), 0o2745,
               'setgid without group exec survives chown')
            drop_caches()
            eq(stat.S_IMODE(os.stat(p).st_mode), 0o2745, 'mode after forget')
        fsck(img)
        info = inode_info(img, '/f')
        eq((info['uid'], info['gid'], info['mode']), (2, 2, 0o2745),
           'on-disk owner and mode')
        info = inode_info(img, '/l')
        eq((info['uid'], info['gid']), (99, 98), 'on-disk link owner')


@test
def utimens_nanoseconds():
    cases = [
        (1, 999999999),
        (1234567890, 123456789),
        (2**31 - 1, 1),                # last second of 32-bit time
        (2**31 + 12345, 500000000),    # after 2038: epoch bits
        (2**33 + 7, 999999999),        # year 2242
        (-1, 1),                       # before 1970
        (-2**31, 0),                   # 1901
    ]
    with workdir() as d:
        img = mkfs(d + '/img')
        want = {}
        with Mount(img) as m:
            for i, (sec, nsec) in enumerate(cases):
                p = m.path('t%d' % i)
                write_file(p, b'')
                a = (sec + 17) * 10**9 + (nsec // 3)
                mt = sec * 10**9 + nsec
                os.utime(p, ns=(a, mt))
                st = os.stat(p)
                eq((st.st_atime_ns, st.st_mtime_ns), (a, mt),
                   'times set for %r' % ((sec, nsec),))
                want['t%d' % i] = (a, mt)
            # UTIME_NOW for both
            p = m.path('now')
            write_file(p, b'')
            os.utime(p, ns=(5 * 10**9, 5 * 10**9))
            before = time.time_ns()
            os.utime(p)
            after = time.time_ns()
            st = os.stat(p)
            check(before - 20 * 10**6 <= st.st_mtime_ns <= after + 10**7,
                  'utime(now) mtime %d not within [%d, %d]'
                  % (st.st_mtime_ns, before, after))
            # Setting times changes ctime to now.
            check(st.st_ctime_ns >= before - 20 * 10**6,
                  'ctime not updated by utime')
            # Only mtime (atime UTIME_OMIT)
            fd = os.open(p, os.O_RDONLY)
            os.utime(fd, ns=(st.st_atime_ns, 77 * 10**9 + 7))
            os.close(fd)
            eq(os.stat(p).st_mtime_ns, 77 * 10**9 + 7, 'utime via fd')
        fsck(img)
        with Mount(img) as m:
            for name, (a, mt) in want.items():
                st = os.stat(m.path(name))
                eq((st.st_atime_ns, st.st_mtime_ns), (a, mt),
                   'times of %s after remount' % name)
        fsck(img)


@test(timeout=60)
def write_times_advance_once_seen():
    """A write in place may leave the times that a write of the same tick of
    the coarse clock stored, while nobody can have seen them (src/fs/file.c,
    times_unseen; ext4 too writes no inode then): a write after a stat
    always moves them on, and so does one in a later tick, seen or not.
    4 KiB O_DIRECT writes into allocated blocks, as the benchmark's."""
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            p = m.path('f')
            write_file(p, bytes(64 << 10))
            buf = mmap.mmap(-1, 4096)
            buf.write(b'w' * 4096)
            fd = os.open(p, os.O_RDWR | os.O_DIRECT)
            try:
                last = os.fstat(fd).st_mtime_ns
                for i in range(300):
                    eq(os.pwritev(fd, [buf], (i % 16) * 4096), 4096, 'write %d' % i)
                    st = os.fstat(fd)
                    check(st.st_mtime_ns > last,
                          'write %d after a stat left mtime at %d' % (i, last))
                    eq(st.st_ctime_ns, st.st_mtime_ns, 'ctime after write %d' % i)
                    last = st.st_mtime_ns
                for i in range(100):
                    os.pwritev(fd, [buf], (i % 16) * 4096)
                time.sleep(0.03)  # past the tick (1-10 ms) of those writes
                t0 = time.time_ns()
                os.pwritev(fd, [buf], 0)
                st = os.fstat(fd)
                check(st.st_mtime_ns >= t0,
                      'a write a tick later, unseen: mtime %d before it (%d)'
                      % (st.st_mtime_ns, t0))
            finally:
                os.close(fd)
                buf.close()
        fsck(img)


@test
def times_on_write_and_truncate():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            p = m.path('f')
            write_file(p, b'abc')
            old = 10**18
            os.utime(p, ns=(old, old))
            c0 = os.stat(p).st_ctime_ns
            time.sleep(0.02)
            fd = os.open(p, os.O_WRONLY)
            os.pwrite(fd, b'x', 1)
            os.close(fd)
            st = os.stat(p)
            check(st.st_mtime_ns != old, 'mtime not updated by write')
            check(st.st_ctime_ns > c0, 'ctime not updated by write')
            eq(st.st_mtime_ns, st.st_ctime_ns, 'write sets mtime == ctime')
            os.utime(p, ns=(old, old))
            c1 = os.stat(p).st_ctime_ns
            time.sleep(0.02)
            os.truncate(p, 100)
            st = os.stat(p)
            check(st.st_mtime_ns != old and st.st_ctime_ns > c1,
                  'truncate did not update mtime/ctime')
            os.utime(p, ns=(old, old))
            c2 = os.stat(p).st_ctime_ns
            time.sleep(0.02)
            os.chmod(p, 0o600)
            st = os.stat(p)
            eq(st.st_mtime_ns, old, 'chmod changed mtime')
            check(st.st_ctime_ns > c2, 'chmod did not update ctime')
            # setxattr changes ctime, not mtime.
            c4 = os.stat(p).st_ctime_ns
            time.sleep(0.02)
            os.setxattr(p, 'user.t', b'1')
            st = os.stat(p)
            eq(st.st_mtime_ns, old, 'setxattr changed mtime')
            check(st.st_ctime_ns > c4, 'setxattr did not update ctime')
            # A read does not change mtime/ctime.
            c3 = st.st_ctime_ns
            read_file(p)
            st = os.stat(p)
            eq((st.st_mtime_ns, st.st_ctime_ns), (old, c3),
               'read changed mtime/ctime')
            # Truncate to the same size through O_TRUNC on an empty file
            # still updates mtime (the kernel does for open O_TRUNC).
            os.truncate(p, 0)
            os.utime(p, ns=(old, old))
            time.sleep(0.02)
            os.close(os.open(p, os.O_WRONLY | os.O_TRUNC))
            check(os.stat(p).st_mtime_ns != old,
                  'O_TRUNC on empty file did not update mtime')
        fsck(img)


def _disk_times(image, path):
    """mtime and ctime on disk as (seconds, extra) pairs, from debugfs."""
    text = inode_info(image, path)['text']
    found = dict(re.findall(r'\b([mc]time): (0x[0-9a-f]+:[0-9a-f]+)', text))
    return found.get('mtime'), found.get('ctime')


def _write_without_fsetid(p, data, off):
    """pwrite as root without CAP_FSETID, in a child: a write the
    set-id bits do not survive."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            drop_fsetid()
            fd = os.open(p, os.O_WRONLY)
            code = 0 if os.pwrite(fd, data, off) == len(data) else 2
            os.close(fd)
        finally:
            os._exit(code)
    eq(os.waitpid(pid, 0)[1], 0, 'writer exit status')


def _hole_below_eof(fd):
    os.pwrite(fd, b'h' * 4096, 0)
    os.ftruncate(fd, 65536)             # blocks 1-15: holes below EOF


_EXT4, _INLINE, _EXT2 = ('ext4', ()), ('ext4', ('inline_data',)), ('ext2', ())
# Each way a write reaches the image (e2_data_write, e2_inline_write),
# as (name, (fs type, features), make the file at fd, write offset,
# write length).
_WRITE_PATHS = (
    ('overwrite', _EXT4, lambda fd: os.pwrite(fd, b'o' * 65536, 0), 8192, 4096),
    ('append', _EXT4, lambda fd: os.pwrite(fd, b'a' * 65536, 0), 65536, 4096),
    ('hole', _EXT4, _hole_below_eof, 8192, 4096),
    # 64 KiB and more: the data spliced from the request (wire.c)
    ('overwrite_large', _EXT4, lambda fd: os.pwrite(fd, b'o' * 262144, 0),
     0, 131072),
    ('append_large', _EXT4, lambda fd: os.pwrite(fd, b'a' * 65536, 0), 65536,
     262144),
    ('unwritten', _EXT4, lambda fd: fallocate(fd, 0, 0, 65536), 8192, 4096),
    ('inline_new', _INLINE, lambda fd: None, 0, 10),
    ('inline', _INLINE, lambda fd: os.pwrite(fd, b'i' * 20, 0), 5, 10),
    ('blockmap', _EXT2, lambda fd: os.pwrite(fd, b'b' * 65536, 0),
     8192, 4096),
    ('blockmap_append', _EXT2,
     lambda fd: os.pwrite(fd, b'b' * 65536, 0), 65536, 4096),
)


@test
def write_times_and_setid_every_path():
    """A write(2) stores its times and drops setuid/setgid with its data, in
    one storage step that each write path makes on its own: every path
    must store them, through the mount and on disk."""
    old = 10**18
    for kind in (_EXT4, _INLINE, _EXT2):
        paths = [w for w in _WRITE_PATHS if w[1] == kind]
        with workdir() as d:
            img = mkfs(d + '/img', fstype=kind[0], features=kind[1])
            want = {}
            with Mount(img) as m:
                for name, _, make, off, n in paths:
                    p = m.path(name)
                    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
                    make(fd)
                    os.close(fd)
                    os.chmod(p, 0o6755)
                    before = read_file(p)
                    os.utime(p, ns=(old, old))
                    c0 = os.stat(p).st_ctime_ns
                    data = bytes([65 + len(want)]) * n
                    _write_without_fsetid(p, data, off)
                    st = os.stat(p)
                    check(st.st_mtime_ns != old,
                          '%s: mtime not updated by the write' % name)
                    check(st.st_ctime_ns > c0,
                          '%s: ctime not updated by the write' % name)
                    eq(st.st_mtime_ns, st.st_ctime_ns,
                       '%s: the write sets mtime == ctime' % name)
                    eq(oct(st.st_mode & 0o7777), oct(0o755),
                       '%s: mode after the write' % name)
                    body = bytearray(before)
                    body.extend(bytes(max(0, off + n - len(body))))
                    body[off:off + n] = data
                    want[name] = bytes(body)
                    eq(read_file(p), want[name], '%s: content' % name)
            fsck(img)
            for name, _, _, _, _ in paths:
                info = inode_info(img, '/' + name)
                eq(oct(info['mode'] & 0o7777), oct(0o755),
                   '%s: mode on disk' % name)
                mtime, ctime = _disk_times(img, '/' + name)
                if mtime is None or mtime.startswith('0x3b9aca00:'):
                    raise TestFailure('%s: mtime on disk %s, not the '
                                      "write's" % (name, mtime))
                eq(mtime, ctime, '%s: mtime == ctime on disk' % name)
                # debugfs 1.47.0 cats an inline file's whole i_block (60
                # bytes), whatever its size: the rest must be zeros.
                got = debugfs_cat(img, '/' + name)
                eq(got[:info['size']], want[name], '%s: content on disk' % name)
                eq(got[info['size']:].strip(b'\0'), b'',
                   '%s: on disk past i_size' % name)


@test
def truncate_content():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            p = m.path('f')
            data = bytes(range(256)) * 64           # 16 KiB
            write_file(p, data)
            for size in (16383, 12288, 4097, 4096, 4095, 1, 0):
                os.truncate(p, size)
                eq(read_file(p), data[:size], 'content after truncate to %d'
                   % size)
                write_file(p, data)
            os.truncate(p, 5000)
            os.truncate(p, 20000)
            eq(read_file(p), data[:5000] + bytes(15000),
               'grow after shrink reads zeros')
        fsck(img)
        with Mount(img) as m:
            eq(read_file(m.path('f')), data[:5000] + bytes(15000),
               'after remount')
            expect_errno(errno.EFBIG, os.truncate, m.path('f'), 2**60)
        fsck(img)


if __name__ == '__main__':
    main()
