#!/usr/bin/env python3
"""Large WRITEs whose data the daemon splices from /dev/fuse into a pipe and
from there into the image file (src/frontend/wire.c, uext4_write_pipe()),
and every way such data goes through memory instead: each file is compared
byte for byte with what was written, through the mount after dropping the
page cache and with debugfs on the unmounted image, which e2fsck must find
clean. The daemon's "stats" counts the bytes spliced, so the tests also
see that the pipe path was taken (or, with -o no_splice_write and over
io_uring, that it was not).
"""
import mmap
import os
import subprocess

from uext4test import (IO_URING, Mount, apply_write, check, control_socket,
                       daemon_stats, debugfs_cat, drop_caches, ensure_user, eq,
                       fsck, main, mkfs, pattern, read_file, run_as, test,
                       workdir)

MiB = 1 << 20


def spliced(m, uid=0):
    return daemon_stats(control_socket(m.mnt, uid))['spliced']


def pwrite_all(path, pieces, flags=0, mode=0o644):
    """Write each (offset, bytes) of @pieces with one pwrite."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | flags, mode)
    try:
        for off, data in pieces:
            eq(os.pwrite(fd, data, off), len(data), 'pwrite at %d' % off)
    finally:
        os.close(fd)


class Files:
    """What each file should hold."""

    def __init__(self, m):
        self.m = m
        self.want = {}

    def write(self, name, pieces, flags=0):
        pwrite_all(self.m.path(name), pieces, flags)
        model = self.want.setdefault(name, bytearray())
        for off, data in pieces:
            apply_write(model, off, data)

    def check_mounted(self):
        drop_caches(3)
        for name, want in self.want.items():
            got = read_file(self.m.path(name))
            eq(len(got), len(want), '%s: size' % name)
            check(got == want, '%s: bytes read through the mount differ' % name)

    def check_image(self, img):
        for name, want in self.want.items():
            check(debugfs_cat(img, '/' + name) == want,
                  '%s: bytes in the image differ' % name)
        fsck(img)


def big(n, seed):
    return pattern(n, seed)


@test(timeout=180)
def spliced_writes_byte_for_byte():
    with workdir() as d:
        img = mkfs(d + '/img', size='128M')
        with Mount(img) as m:
            f = Files(m)
            # Sequential 1 MiB writes: the first is copied (splicing starts
            # with a stream of large writes), the rest come from the pipe.
            f.write('seq', [(i * MiB, big(MiB, i)) for i in range(12)])
            # Rewritten in place.
            f.write('seq', [(3 * MiB, big(2 * MiB, 50))])
            # Partial blocks at both ends, taken from the pipe into memory.
            f.write('unaligned', [(0, big(MiB, 60)), (1000, big(300 << 10, 61)),
                                  (MiB + 5, big(700 << 10, 62))])
            # A hole filled inside the file: through memory.
            with open(m.path('sparse'), 'wb') as fh:
                fh.truncate(8 * MiB)
            f.want['sparse'] = bytearray(8 * MiB)
            f.write('sparse', [(2 * MiB, big(MiB, 70)), (5 * MiB, big(MiB, 71))])
            # O_DIRECT, from an aligned buffer.
            buf = mmap.mmap(-1, MiB)
            data = big(MiB, 80)
            buf[:] = data
            fd = os.open(m.path('direct'), os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
            try:
                for i in range(4):
                    eq(os.pwritev(fd, [buf], i * MiB), MiB, 'O_DIRECT write %d' % i)
            finally:
                os.close(fd)
            f.want['direct'] = bytearray(data * 4)
            # An append-only file: its bytes must be compared, so memory.
            f.write('append', [(0, big(MiB, 90))])
            subprocess.run(['chattr', '+a', m.path('append')], check=True, timeout=30)
            f.write('append', [(MiB, big(MiB, 91)), (2 * MiB, big(MiB, 92))],
                    flags=os.O_APPEND)
            # A write crossing the largest file size is cut short, leaving
            # the rest of its data in the pipe: dropped before the next
            # request is read, which must be unaffected.
            limit = ((1 << 32) - 1) * os.statvfs(m.mnt).f_frsize   # extents
            fd = os.open(m.path('edge'), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                # The first write makes the last extent, through memory (it
                # lands in a hole); the second continues it from the pipe.
                eq(os.pwrite(fd, big(MiB, 94), limit - MiB), MiB, 'the first write')
                eq(os.pwrite(fd, big(MiB, 95), limit - (512 << 10)), 512 << 10,
                   'a write crossing the size limit')
            finally:
                os.close(fd)
            f.write('after-edge', [(0, big(MiB, 96)), (MiB, big(MiB, 97))])
            eq(os.stat(m.path('edge')).st_size, limit, 'size at the limit')
            n = spliced(m)
            if IO_URING:
                eq(n, 0, 'bytes spliced over io_uring (the rings carry the data)')
            else:
                check(n >= 12 * MiB, 'bytes spliced: %d' % n)
            f.check_mounted()
        f.check_image(img)


@test(timeout=120)
def block_mapped_and_mmap_through_memory():
    with workdir() as d:
        img = mkfs(d + '/img', size='64M', fstype='ext3')
        with Mount(img) as m:
            f = Files(m)
            f.write('ext3', [(i * MiB, big(MiB, i)) for i in range(6)])
            n = spliced(m)
            check(IO_URING or n >= 3 * MiB,
                  'a block-mapped file\'s writes spliced in (and read back): %d' % n)
            # Shared-mapping writeback comes as large WRITEs too; it is
            # written from memory.
            fd = os.open(m.path('ext3'), os.O_RDWR)
            try:
                mp = mmap.mmap(fd, 6 * MiB)
                for off in range(0, 6 * MiB, 4096):
                    mp[off:off + 8] = b'mmapped!'
                    f.want['ext3'][off:off + 8] = b'mmapped!'
                mp.flush()
                mp.close()
            finally:
                os.close(fd)
            f.check_mounted()
        f.check_image(img)


@test(timeout=120)
def writeback_cache_and_no_splice_write():
    with workdir() as d:
        img = mkfs(d + '/img', size='64M')
        with Mount(img, opts=['writeback_cache']) as m:
            f = Files(m)
            f.write('wbc', [(i * MiB, big(MiB, i)) for i in range(8)])
            os.sync()
            f.check_mounted()
        f.check_image(img)
        with Mount(img, opts=['no_splice_write']) as m:
            f = Files(m)
            f.write('plain', [(i * MiB, big(MiB, 20 + i)) for i in range(4)])
            eq(spliced(m), 0, 'bytes spliced with -o no_splice_write')
            f.check_mounted()
        f.check_image(img)


def user_writes(path):
    pwrite_all(path, [(i * MiB, big(MiB, 40 + i)) for i in range(6)])
    return read_file(path)


@test(timeout=120)
def ordinary_user_pipe():
    # An ordinary user's pipes hold 1 MiB (pipe-max-size): the daemon then
    # asks for 1020 KiB WRITEs, one page short, so that a WRITE and its
    # header fit. A WRITE too large for the pipe would fail with EIO.
    uid, gid = ensure_user()
    want = b''.join(big(MiB, 40 + i) for i in range(6))
    with workdir() as d:
        os.chmod(d, 0o755)
        img = mkfs(d + '/img', size='64M', extended=['root_owner=%d:%d' % (uid, gid)])
        os.chown(img, uid, gid)
        with Mount(img, user=(uid, gid, [gid])) as m:
            got = run_as(uid, gid, [gid], user_writes, m.path('u'))
            check(got == want, 'the user\'s file read back')
            check(IO_URING or spliced(m, uid) >= 3 * MiB, 'bytes spliced for the user')
        check(debugfs_cat(img, '/u') == want, 'the user\'s file in the image')
        fsck(img)


if __name__ == '__main__':
    main()
