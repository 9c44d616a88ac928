#!/usr/bin/env python3
"""-o writeback_cache: the kernel caches written data and owns i_size, mtime
and ctime of regular files; data reaches the daemon as writeback.

Every test mounts with writeback_cache, checks the bytes through the mount
(from the kernel's cache and again after dropping it), then checks the image
itself after unmount (debugfs) and runs e2fsck -fn on it.
"""

import errno
import mmap
import os
import stat
import time

from uext4test import (EXT4_EXTENTS_FL, EXT4_INLINE_DATA_FL,
                       FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE,
                       FALLOC_FL_ZERO_RANGE, SEEK_DATA, SEEK_HOLE, Mount,
                       check, debugfs_cat, drop_caches, eq, errno_as,
                       errno_of, expect_errno_as, fallocate, fsck, inode_info,
                       main, mkfs, pattern, read_file, run_as, run_daemon,
                       test, wait_until, workdir, write_file)

WBC = ['writeback_cache']
G1, G2 = 20001, 20002
UA = (10001, G1, [G1])      # owner
UB = (10002, G2, [G2])      # another user


def wbc_mount(img, extra=()):
    return Mount(img, opts=WBC + list(extra))


def pwrite_all(fd, data, off):
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, off)
        view, off = view[n:], off + n


def image_bytes(img, path):
    """The file's bytes on the image. debugfs `cat` prints an inline file's
    whole inline area, whatever i_size says: cut it there."""
    return debugfs_cat(img, path)[:inode_info(img, path)['size']]


def check_file(m, img, name, want):
    """The bytes through the mount, cached and cold, and later on disk."""
    eq(read_file(m.path(name)), want, name + ' (cached)')
    drop_caches()
    eq(read_file(m.path(name)), want, name + ' (after drop_caches)')
    eq(os.stat(m.path(name)).st_size, len(want), name + ' size')


@test(timeout=120)
def wbc_buffered_bytes():
    """Sequential, unaligned, sparse and overwriting write(2)s: the image
    holds exactly what a model of the file says."""
    with workdir() as d:
        img = mkfs(d + '/img', size='64M')
        model = bytearray()

        def put(fd, data, off):
            pwrite_all(fd, data, off)
            if off > len(model):
                model.extend(bytes(off - len(model)))
            model[off:off + len(data)] = data

        with wbc_mount(img) as m:
            fd = os.open(m.path('f'), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                for i in range(4):                      # 4 x 1 MiB
                    put(fd, pattern(1 << 20, seed=i), i << 20)
                put(fd, b'unaligned', 4097)             # inside a page
                put(fd, pattern(10000, seed=7), 3 * 4096 - 5)  # spans pages
                put(fd, b'tail', (6 << 20) + 123)       # leaves a hole
                put(fd, pattern(5000, seed=9), (5 << 20) - 100)  # into it
                os.fsync(fd)
            finally:
                os.close(fd)
            check_file(m, img, 'f', bytes(model))
        fsck(img)
        eq(image_bytes(img, '/f'), bytes(model), 'bytes on the image')


@test(timeout=120)
def wbc_append_and_wronly():
    """O_APPEND from two descriptors, and partial-page writes through
    O_WRONLY descriptors: the kernel reads those pages in through a
    write-only open, even for a file its writer may not read (mode 0200)."""
    with workdir() as d:
        img = mkfs(d + '/img')
        with wbc_mount(img, ['allow_other']) as m:
            os.chmod(m.mnt, 0o777)
            write_file(m.path('log'), b'start\n')
            a = os.open(m.path('log'), os.O_WRONLY | os.O_APPEND)
            b = os.open(m.path('log'), os.O_WRONLY | os.O_APPEND)
            want = bytearray(b'start\n')
            try:
                for i in range(50):
                    line = b'%s %03d\n' % (b'ab'[i % 2:i % 2 + 1], i)
                    os.write(a if i % 2 == 0 else b, line)
                    want += line
            finally:
                os.close(a)
                os.close(b)
            check_file(m, img, 'log', bytes(want))

            data = bytearray(pattern(3 * 4096 + 100, seed=3))
            write_file(m.path('w'), bytes(data))
            drop_caches()                   # pages must be read back in
            fd = os.open(m.path('w'), os.O_WRONLY)
            try:
                pwrite_all(fd, b'XYZ', 4096 + 10)
                pwrite_all(fd, b'edge', 3 * 4096 + 98)  # grows by 2
            finally:
                os.close(fd)
            data[4096 + 10:4096 + 13] = b'XYZ'
            data[3 * 4096 + 98:] = b'edge'
            check_file(m, img, 'w', bytes(data))

            # A 0200 file of UB's: UB may write but not read it.
            write_file(m.path('wo'), pattern(8192, seed=4))
            os.chown(m.path('wo'), UB[0], UB[1])
            os.chmod(m.path('wo'), 0o200)
            drop_caches()

            def partial_write(p):
                fd = os.open(p, os.O_WRONLY)
                try:
                    pwrite_all(fd, b'middle', 5000)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            run_as(*UB, partial_write, m.path('wo'))
            expect_errno_as(UB, errno.EACCES, read_file, m.path('wo'))
            wo = bytearray(pattern(8192, seed=4))
            wo[5000:5006] = b'middle'
            check_file(m, img, 'wo', bytes(wo))
        fsck(img)
        eq(image_bytes(img, '/log'), bytes(want), 'log on the image')
        eq(image_bytes(img, '/w'), bytes(data), 'w on the image')
        eq(image_bytes(img, '/wo'), bytes(wo), 'wo on the image')


@test(timeout=120)
def wbc_mmap():
    """Stores through a shared mapping; an inline file written through a
    mapping stays inline (design.md, rule 3), a write(2) past its capacity
    converts it as the kernel does."""
    with workdir() as d:
        img = mkfs(d + '/img', features=['inline_data'])
        with wbc_mount(img) as m:
            size = 5 * 4096 + 300
            data = bytearray(pattern(size, seed=5))
            write_file(m.path('big'), bytes(data))
            fd = os.open(m.path('big'), os.O_RDWR)
            try:
                mm = mmap.mmap(fd, size, mmap.MAP_SHARED,
                               mmap.PROT_READ | mmap.PROT_WRITE)
                for off in range(0, size, 1000):
                    mm[off:off + 3] = b'MAP'
                    data[off:off + 3] = b'MAP'
                mm.flush()
                mm.close()
            finally:
                os.close(fd)
            check_file(m, img, 'big', bytes(data))

            small = bytearray(b'inline data, forty bytes long, exactly.')
            write_file(m.path('small'), bytes(small))
            fd = os.open(m.path('small'), os.O_RDWR)
            try:
                mm = mmap.mmap(fd, len(small), mmap.MAP_SHARED,
                               mmap.PROT_READ | mmap.PROT_WRITE)
                mm[7:11] = b'DATA'
                small[7:11] = b'DATA'
                mm.flush()
                mm.close()
            finally:
                os.close(fd)
            check_file(m, img, 'small', bytes(small))

            write_file(m.path('grow'), b'x' * 40)
            fd = os.open(m.path('grow'), os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, b'y' * 400)
            finally:
                os.close(fd)
        fsck(img)
        eq(image_bytes(img, '/big'), bytes(data), 'big on the image')
        info = inode_info(img, '/small')
        check(info['flags'] & EXT4_INLINE_DATA_FL,
              'mmap writeback converted an inline file: %#x' % info['flags'])
        eq(info['size'], len(small), 'inline size')
        eq(image_bytes(img, '/small'), bytes(small), 'small on the image')
        info = inode_info(img, '/grow')
        check(info['flags'] & EXT4_EXTENTS_FL and
              not info['flags'] & EXT4_INLINE_DATA_FL,
              'a 440-byte file is still inline: %#x' % info['flags'])
        eq(image_bytes(img, '/grow'), b'x' * 40 + b'y' * 400, 'grow bytes')


@test(timeout=120)
def wbc_truncate():
    """Truncates while pages are dirty: ftruncate, truncate(2), O_TRUNC,
    and growing again reads zeros where the cut bytes were."""
    with workdir() as d:
        img = mkfs(d + '/img', features=['inline_data'])
        with wbc_mount(img) as m:
            data = pattern(20000, seed=6)
            fd = os.open(m.path('t'), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                pwrite_all(fd, data, 0)
                os.ftruncate(fd, 5000)
                os.ftruncate(fd, 9000)
                pwrite_all(fd, b'after', 9000)
            finally:
                os.close(fd)
            want = data[:5000] + bytes(4000) + b'after'
            check_file(m, img, 't', want)

            fd = os.open(m.path('t'), os.O_WRONLY)
            try:
                pwrite_all(fd, b'dirty', 100)
                os.truncate(m.path('t'), 50)        # by path, pages dirty
                os.truncate(m.path('t'), 200)
            finally:
                os.close(fd)
            want2 = want[:50] + bytes(150)
            check_file(m, img, 't', want2)

            fd = os.open(m.path('t'), os.O_WRONLY | os.O_TRUNC)
            try:
                os.write(fd, b'fresh')
            finally:
                os.close(fd)
            check_file(m, img, 't', b'fresh')
        fsck(img)
        eq(image_bytes(img, '/t'), b'fresh', 't on the image')
        eq(inode_info(img, '/t')['size'], 5, 'size on the image')


@test(timeout=120)
def wbc_mtime():
    """mtime and ctime are the kernel's while it caches the inode; the image
    gets the kernel's values, or (when the kernel sends none, or the writer
    is not the owner) the daemon's clock when the data arrived: never
    earlier, and never later than the write-back. Explicit times stay."""
    with workdir() as d:
        img = mkfs(d + '/img')
        with wbc_mount(img) as m:
            write_file(m.path('f'), b'first')
            st0 = os.stat(m.path('f'))
            fd = os.open(m.path('f'), os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, b' second')
                st1 = os.fstat(fd)
                os.fsync(fd)
            finally:
                os.close(fd)
            check(st1.st_mtime_ns >= st0.st_mtime_ns, 'mtime went back')
            st2 = os.stat(m.path('f'))
            eq(st2.st_mtime_ns, st1.st_mtime_ns, 'mtime after fsync+close')
            t_synced = time.time_ns()
            write_file(m.path('g'), b'set times')
            os.utime(m.path('g'), ns=(1_000_000_123, 2_000_000_456))
            st_g = os.stat(m.path('g'))
            eq(st_g.st_mtime_ns, 2_000_000_456, 'explicit mtime')
        with wbc_mount(img) as m:
            st3 = os.stat(m.path('f'))
            check(st2.st_mtime_ns <= st3.st_mtime_ns <= t_synced,
                  'mtime after remount %d, kernel had %d, fsync done at %d'
                  % (st3.st_mtime_ns, st2.st_mtime_ns, t_synced))
            check(st2.st_ctime_ns <= st3.st_ctime_ns <= t_synced,
                  'ctime after remount %d, kernel had %d'
                  % (st3.st_ctime_ns, st2.st_ctime_ns))
            eq(st3.st_size, len(b'first second'), 'size after remount')
            st_g = os.stat(m.path('g'))
            eq((st_g.st_atime_ns, st_g.st_mtime_ns),
               (1_000_000_123, 2_000_000_456), 'explicit times after remount')
        fsck(img)


def suid_nonowner_checks(extra):
    with workdir() as d:
        img = mkfs(d + '/img')
        with wbc_mount(img, ['allow_other'] + extra) as m:
            os.chmod(m.mnt, 0o755)
            for name in ('s', 'r'):
                write_file(m.path(name), b'#!/bin/true\n')
                os.chown(m.path(name), UA[0], G1)
                os.chmod(m.path(name), 0o6777)

            def write_sync(p):
                fd = os.open(p, os.O_WRONLY | os.O_APPEND)
                try:
                    os.write(fd, b'# by UB\n')
                    os.fsync(fd)
                finally:
                    os.close(fd)
            run_as(*UB, write_sync, m.path('s'))
            eq(stat.S_IMODE(os.stat(m.path('s')).st_mode), 0o777,
               'write by another user clears setuid+setgid')
            check_file(m, img, 's', b'#!/bin/true\n# by UB\n')
            st = os.stat(m.path('s'))
            eq(st.st_uid, UA[0], 'owner unchanged')

            os.chmod(m.path('s'), 0o6777)
            eq(errno_as(UB, os.truncate, m.path('s'), 12), 0,
               'truncate by a writer')
            eq(stat.S_IMODE(os.stat(m.path('s')).st_mode), 0o777,
               'truncate by another user clears setuid+setgid')
            eq(errno_as(UB, os.utime, m.path('s'), None), 0,
               'utime(now) by a writer')
            expect_errno_as(UB, errno.EPERM, os.utime, m.path('s'), (1, 1))

            fd = os.open(m.path('r'), os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, b'# by root\n')
            finally:
                os.close(fd)
            eq(stat.S_IMODE(os.stat(m.path('r')).st_mode), 0o6777,
               'write by root keeps setuid+setgid')
        fsck(img)
        eq(inode_info(img, '/s')['mode'], 0o777, 'on-disk mode')
        eq(image_bytes(img, '/s'), b'#!/bin/true\n', 'truncated on disk')
        eq(inode_info(img, '/r')['mode'], 0o6777, 'root keeps the bits')


@test(timeout=120)
def wbc_suid_nonowner():
    """A non-owner who may write a setuid/setgid file: the bits are cleared,
    its close, fsync, truncate and utime(now) succeed, an explicit utime
    stays the owner's; root's write keeps the bits."""
    suid_nonowner_checks(['no_default_permissions'])


@test(timeout=120)
def wbc_suid_nonowner_defperm():
    """The same with default_permissions: the kernel checks first."""
    suid_nonowner_checks([])


@test(timeout=120)
def wbc_inline_files():
    """New small files go inline as with write(2) on the kernel; growing one
    past its capacity converts it."""
    with workdir() as d:
        img = mkfs(d + '/img', features=['inline_data'])
        with wbc_mount(img) as m:
            os.mkdir(m.path('s'))
            for i in range(20):
                write_file(m.path('s', 'f%02d' % i), b'%040d' % i)
        fsck(img)
        for i in (0, 19):
            info = inode_info(img, '/s/f%02d' % i)
            check(info['flags'] & EXT4_INLINE_DATA_FL,
                  'a 40-byte file is not inline: %#x' % info['flags'])
            eq(image_bytes(img, '/s/f%02d' % i), b'%040d' % i, 'bytes')


@test(timeout=120)
def wbc_direct_io():
    """O_DIRECT writes and reads go to the daemon and stay coherent with
    the cached, not yet written back, pages around them."""
    with workdir() as d:
        img = mkfs(d + '/img')
        with wbc_mount(img) as m:
            data = bytearray(pattern(16 * 4096, seed=8))
            write_file(m.path('f'), bytes(data))    # cached, maybe dirty
            buf = mmap.mmap(-1, 8192)
            buf.write(pattern(8192, seed=9))
            fd = os.open(m.path('f'), os.O_RDWR | os.O_DIRECT)
            try:
                eq(os.pwritev(fd, [buf], 4 * 4096), 8192, 'O_DIRECT write')
                data[4 * 4096:6 * 4096] = pattern(8192, seed=9)
                rb = mmap.mmap(-1, 16 * 4096)
                eq(os.preadv(fd, [rb], 0), 16 * 4096, 'O_DIRECT read')
                eq(bytes(rb), bytes(data), 'O_DIRECT read bytes')
                rb.close()
                eq(os.pwritev(fd, [buf], 16 * 4096), 8192,
                   'O_DIRECT append')
                data += pattern(8192, seed=9)
            finally:
                os.close(fd)
                buf.close()
            check_file(m, img, 'f', bytes(data))
        fsck(img)
        eq(image_bytes(img, '/f'), bytes(data), 'bytes on the image')


@test(timeout=120)
def wbc_fallocate():
    """Punching, zeroing and allocating over dirty cached pages."""
    with workdir() as d:
        img = mkfs(d + '/img')
        want = bytearray(pattern(64 * 1024, seed=3))
        with wbc_mount(img) as m:
            write_file(m.path('f'), bytes(want))
            fd = os.open(m.path('f'), os.O_RDWR)
            try:
                pwrite_all(fd, b'Z' * 20000, 1000)
                want[1000:21000] = b'Z' * 20000
                fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                          4096, 8192)
                want[4096:12288] = bytes(8192)
                pwrite_all(fd, b'Q' * 30000, 20000)
                want[20000:50000] = b'Q' * 30000
                fallocate(fd, FALLOC_FL_ZERO_RANGE, 30000, 5000)
                want[30000:35000] = bytes(5000)
                pwrite_all(fd, b'E' * 100, 70000)       # past EOF, dirty
                want += bytes(70000 - len(want)) + b'E' * 100
                fallocate(fd, 0, 0, 100000)             # grows the file
                want += bytes(100000 - len(want))
            finally:
                os.close(fd)
            check_file(m, img, 'f', bytes(want))
        fsck(img)
        eq(image_bytes(img, '/f'), bytes(want), 'bytes on the image')


@test(timeout=120)
def wbc_seek_data_hole():
    """SEEK_DATA/SEEK_HOLE never miss data still in the kernel's cache (the
    kernel answers them itself, the whole file being data)."""
    with workdir() as d:
        img = mkfs(d + '/img')
        with wbc_mount(img) as m:
            fd = os.open(m.path('f'), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                os.pwrite(fd, b'x' * 4096, 1 << 20)     # dirty, past EOF
                size = (1 << 20) + 4096
                data = os.lseek(fd, 0, SEEK_DATA)
                check(0 <= data <= 1 << 20, 'SEEK_DATA(0) = %d' % data)
                hole = os.lseek(fd, 0, SEEK_HOLE)
                check(hole <= 1 << 20 or hole == size,
                      'SEEK_HOLE(0) = %d' % hole)
                eq(os.lseek(fd, (1 << 20) + 10, SEEK_DATA), (1 << 20) + 10,
                   'SEEK_DATA inside the cached data')
                eq(os.lseek(fd, (1 << 20) + 10, SEEK_HOLE), size,
                   'SEEK_HOLE inside the cached data')
                eq(errno_of(os.lseek, fd, size, SEEK_DATA), errno.ENXIO,
                   'SEEK_DATA at EOF')
            finally:
                os.close(fd)
        fsck(img)


@test(timeout=180)
def wbc_enospc():
    """write(2) succeeds into the cache; the image running full is reported
    by the fsync that writes the data back, and the image stays clean."""
    with workdir() as d:
        img = mkfs(d + '/img', size='16M')
        with wbc_mount(img) as m:
            free0 = os.statvfs(m.mnt).f_bfree
            fd = os.open(m.path('big'), os.O_WRONLY | os.O_CREAT, 0o644)
            chunk = pattern(1 << 20, seed=10)
            err = 0
            try:
                for i in range(24):                 # more than fits
                    os.write(fd, chunk)
                os.fsync(fd)
            except OSError as e:
                err = e.errno
            finally:
                try:
                    os.close(fd)
                except OSError as e:
                    err = err or e.errno
            eq(errno.errorcode.get(err, err), 'ENOSPC',
               'error from fsync or close')
            os.unlink(m.path('big'))
            # The blocks come back when the kernel's FORGET arrives.
            wait_until(lambda: os.statvfs(m.mnt).f_bfree >= free0 - 1, True,
                       'free blocks after the unlink', timeout=15)
            write_file(m.path('after'), b'space again')
            eq(read_file(m.path('after')), b'space again', 'after ENOSPC')
        fsck(img)


@test(timeout=120)
def wbc_options():
    """writeback_cache takes no value; max_threads=N (1..256) sets the
    worker count, and one worker serves a writeback_cache mount too."""
    with workdir() as d:
        img = mkfs(d + '/img')
        for bad in (['writeback_cache=1'], ['max_threads=0'],
                    ['max_threads=257'], ['max_threads=two'],
                    ['max_threads']):
            rc, out = run_daemon(img, d + '/mnt', bad)
            check(rc != 0, '%s was accepted: %s' % (bad, out))
            check(bad[0].split('=')[0] in out,
                  '%s: the message does not name the option: %s'
                  % (bad, out))
        with wbc_mount(img, ['max_threads=1']) as m:
            data = pattern(300000, seed=11)
            write_file(m.path('f'), data)
            check_file(m, img, 'f', data)
        fsck(img)
        eq(image_bytes(img, '/f'), data, 'bytes on the image')


if __name__ == '__main__':
    main()
