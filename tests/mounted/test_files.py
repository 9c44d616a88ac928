#!/usr/bin/env python3
"""Regular files: create, open, read, write, flush, release, fsync, unlink,
truncate, copy_file_range, mmap, statfs, lookup/forget."""

import errno
import hashlib
import mmap
import os
import stat

from uext4test import (Mount, check, debugfs_cat, drop_caches, eq,
                       expect_errno, fsck, main, mkfs, pattern, read_file,
                       run, test, wait_until, workdir, write_file)


@test
def write_read_offsets():
    with workdir() as d:
        img = mkfs(d + '/img')
        want = bytearray()
        with Mount(img) as m:
            p = m.path('f')
            fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                eq(os.fstat(fd).st_size, 0, 'new file size')
                # Unaligned writes of odd sizes, some overlapping.
                for off, n, seed in [(0, 1, 1), (1, 4095, 2), (4096, 1, 3),
                                     (5000, 70000, 4), (2, 10, 5),
                                     (65530, 20, 6), (75000, 3, 7)]:
                    data = pattern(n, seed)
                    eq(os.pwrite(fd, data, off), n, 'pwrite %d@%d' % (n, off))
                    if len(want) < off:
                        want += bytes(off - len(want))
                    want[off:off + n] = data
                eq(os.fstat(fd).st_size, len(want), 'size after writes')
                eq(os.pread(fd, len(want) + 100, 0), bytes(want), 'pread all')
                eq(os.pread(fd, 7, 4093), bytes(want[4093:4100]),
                   'pread across block boundary')
                eq(os.pread(fd, 100, len(want)), b'', 'read at EOF')
                eq(os.pread(fd, 100, len(want) + 5000), b'', 'read past EOF')
                os.fsync(fd)
            finally:
                os.close(fd)
            eq(read_file(p), bytes(want), 'read after close')
        fsck(img)
        eq(debugfs_cat(img, '/f'), bytes(want), 'image content (debugfs)')
        with Mount(img) as m:
            eq(read_file(m.path('f')), bytes(want), 'content after remount')
        fsck(img)


@test
def append_and_trunc_flags():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            p = m.path('a')
            write_file(p, b'hello')
            fd = os.open(p, os.O_WRONLY | os.O_APPEND)
            os.write(fd, b' world')
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, b'!')
            os.close(fd)
            eq(read_file(p), b'hello world!', 'O_APPEND')
            fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
            eq(os.fstat(fd).st_size, 0, 'size after O_TRUNC')
            os.close(fd)
            eq(os.stat(p).st_size, 0, 'stat size after O_TRUNC')
            eq(os.stat(p).st_blocks, 0, 'blocks after O_TRUNC')
        fsck(img)


@test
def open_errors():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            write_file(m.path('f'), b'x')
            os.mkdir(m.path('dir'))
            expect_errno(errno.EEXIST, os.open, m.path('f'),
                         os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            expect_errno(errno.ENOENT, os.open, m.path('missing'),
                         os.O_RDONLY)
            expect_errno(errno.ENOENT, os.open, m.path('nodir', 'x'),
                         os.O_CREAT | os.O_WRONLY, 0o644)
            expect_errno(errno.EISDIR, os.open, m.path('dir'), os.O_WRONLY)
            expect_errno(errno.EISDIR, os.open, m.path('dir'), os.O_RDWR)
            expect_errno(errno.ENOTDIR, os.open, m.path('f', 'x'),
                         os.O_RDONLY)
            expect_errno(errno.ENOTDIR, os.open, m.path('f'),
                         os.O_RDONLY | os.O_DIRECTORY)
            expect_errno(errno.ENOTDIR, os.stat, m.path('f', 'x'))
            expect_errno(errno.ENAMETOOLONG, os.open, m.path('n' * 256),
                         os.O_CREAT | os.O_WRONLY, 0o644)
            expect_errno(errno.ENAMETOOLONG, os.stat, m.path('n' * 256))
            write_file(m.path('n' * 255), b'long name')
            eq(read_file(m.path('n' * 255)), b'long name', '255-byte name')
            check('n' * 255 in os.listdir(m.mnt), '255-byte name listed')
            expect_errno(errno.ENOENT, os.unlink, m.path('missing'))
            expect_errno(errno.EISDIR, os.unlink, m.path('dir'))
        fsck(img)


def unlink_while_open_checks(opts):
    """An unlinked file lives while open: opened after it was written, and
    open since its creation (no OPEN request then, and by default none
    ever: the kernel's lookup reference is what keeps it)."""
    with workdir() as d:
        img = mkfs(d + '/img')
        data = pattern(200000, 9)
        with Mount(img, opts=opts) as m:
            p = m.path('victim')
            write_file(p, data)
            before = os.statvfs(m.mnt).f_bfree
            fd = os.open(p, os.O_RDWR)
            created = os.open(m.path('created'), os.O_CREAT | os.O_RDWR, 0o600)
            os.unlink(p)
            os.unlink(m.path('created'))
            expect_errno(errno.ENOENT, os.stat, p)
            check('victim' not in os.listdir(m.mnt), 'unlinked name listed')
            eq(os.fstat(fd).st_nlink, 0, 'nlink of open unlinked file')
            drop_caches()
            eq(os.pread(fd, len(data), 0), data, 'read after unlink')
            os.pwrite(fd, b'more', len(data))
            eq(os.pread(fd, 10, len(data) - 6), data[-6:] + b'more',
               'write after unlink')
            os.pwrite(created, data, 0)
            drop_caches()
            eq(os.pread(created, len(data), 0), data, 'created, unlinked, written')
            os.close(created)
            os.close(fd)
            wait_until(lambda: os.statvfs(m.mnt).f_bfree >= before + 49,
                       True, 'blocks freed after the last close (bfree was '
                       '%d)' % before)
        fsck(img)


@test
def unlink_while_open():
    unlink_while_open_checks([])


@test
def unlink_while_open_counted():
    """The same where the daemon checks (and so counts) every open."""
    unlink_while_open_checks(['no_default_permissions'])


@test
def truncate_sizes():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            p = m.path('t')
            write_file(p, b'A' * 10000)
            os.truncate(p, 100)
            eq(os.stat(p).st_size, 100, 'size after shrink')
            os.truncate(p, 10000)
            eq(read_file(p), b'A' * 100 + bytes(9900),
               'stale data after shrink+extend')
            fd = os.open(p, os.O_RDWR)
            os.ftruncate(fd, 5000)
            os.ftruncate(fd, 1 << 20)
            eq(os.fstat(fd).st_size, 1 << 20, 'ftruncate extend')
            eq(os.pread(fd, 1 << 20, 0), b'A' * 100 + bytes((1 << 20) - 100),
               'ftruncate content')
            check(os.fstat(fd).st_blocks <= 16,
                  'extending truncate allocated %d blocks'
                  % os.fstat(fd).st_blocks)
            os.ftruncate(fd, 0)
            eq(os.fstat(fd).st_blocks, 0, 'blocks after truncate to 0')
            os.close(fd)
            expect_errno(errno.EINVAL, os.truncate, p, -1)
            os.mkdir(m.path('d'))
            expect_errno(errno.EISDIR, os.truncate, m.path('d'), 0)
        fsck(img)


@test
def persistence_and_fsync():
    with workdir() as d:
        img = mkfs(d + '/img')
        files = {}
        with Mount(img) as m:
            for i, n in enumerate([0, 1, 59, 60, 61, 4095, 4096, 4097,
                                   123457, 3 << 20]):
                data = pattern(n, 100 + i)
                name = 'f%d' % n
                fd = os.open(m.path(name), os.O_WRONLY | os.O_CREAT, 0o600)
                pos = 0
                step = 1 + (n // 7)
                while pos < n:
                    pos += os.write(fd, data[pos:pos + step])
                if i % 2:
                    os.fsync(fd)
                else:
                    os.fdatasync(fd)
                os.close(fd)
                files[name] = data
            dfd = os.open(m.mnt, os.O_RDONLY | os.O_DIRECTORY)
            os.fsync(dfd)          # fsyncdir
            os.close(dfd)
        fsck(img)
        for name, data in files.items():
            got = debugfs_cat(img, '/' + name)
            eq(hashlib.sha256(got).hexdigest(),
               hashlib.sha256(data).hexdigest(), 'image content of ' + name)
        with Mount(img) as m:
            for name, data in files.items():
                eq(read_file(m.path(name)), data, 'after remount ' + name)
                eq(os.stat(m.path(name)).st_mode, stat.S_IFREG | 0o600,
                   'mode of ' + name)
        fsck(img)


@test
def copy_file_range():
    with workdir() as d:
        img = mkfs(d + '/img')
        src = pattern(300000, 11)
        with Mount(img) as m:
            write_file(m.path('src'), src)
            fi = os.open(m.path('src'), os.O_RDONLY)
            fo = os.open(m.path('dst'), os.O_RDWR | os.O_CREAT, 0o644)
            total = 0
            while total < len(src):
                n = os.copy_file_range(fi, fo, len(src) - total, total,
                                       total)
                check(n > 0, 'copy_file_range returned %d' % n)
                total += n
            eq(os.pread(fo, len(src) + 1, 0), src, 'copied content')
            # Unaligned copy into the middle of an existing file.
            n = os.copy_file_range(fi, fo, 5000, 12345, 100001)
            eq(n, 5000, 'partial copy length')
            want = bytearray(src)
            want[100001:105001] = src[12345:17345]
            eq(os.pread(fo, len(src), 0), bytes(want), 'after middle copy')
            # Past EOF of the source: 0 bytes.
            eq(os.copy_file_range(fi, fo, 100, len(src) + 10, 0), 0,
               'copy from past EOF')
            # Within the same file, non-overlapping.
            n = os.copy_file_range(fo, fo, 1000, 0, 400000)
            eq(n, 1000, 'same-file copy length')
            eq(os.fstat(fo).st_size, 401000, 'size grown by copy')
            eq(os.pread(fo, 1000, 400000), bytes(want[:1000]),
               'same-file copy content')
            eq(os.pread(fo, 100000, 300000), bytes(100000),
               'hole before copied range')
            os.close(fi)
            os.close(fo)
        fsck(img)


@test
def mmap_shared_write():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            p = m.path('mm')
            write_file(p, b'\0' * 20000)
            fd = os.open(p, os.O_RDWR)
            mm = mmap.mmap(fd, 20000, mmap.MAP_SHARED,
                           mmap.PROT_READ | mmap.PROT_WRITE)
            mm[0:5] = b'hello'
            mm[8190:8200] = b'0123456789'
            mm[19995:20000] = b'tail!'
            mm.flush()
            mm.close()
            os.close(fd)
            got = read_file(p)
            eq(len(got), 20000, 'size after mmap writes')
            eq(got[0:5] + got[8190:8200] + got[19995:],
               b'hello0123456789tail!', 'mmap-written bytes')
        fsck(img)
        got = debugfs_cat(img, '/mm')
        eq(got[0:5] + got[8190:8200] + got[19995:], b'hello0123456789tail!',
           'mmap bytes in image')


@test
def statfs_counts():
    with workdir() as d:
        img = mkfs(d + '/img')
        out = run(['dumpe2fs', '-h', img]).stdout.decode()
        sb = dict(l.split(':', 1) for l in out.splitlines() if ':' in l)
        icount = int(sb['Inode count'])
        ifree = int(sb['Free inodes'])
        with Mount(img) as m:
            sv = os.statvfs(m.mnt)
            eq(sv.f_bsize, 4096, 'f_bsize')
            eq(sv.f_namemax, 255, 'f_namemax')
            eq(sv.f_files, icount, 'f_files')
            eq(sv.f_ffree, ifree, 'f_ffree')
            check(sv.f_blocks <= 16384 and sv.f_blocks > 14000,
                  'f_blocks %d for a 16384-block image' % sv.f_blocks)
            check(sv.f_bfree <= sv.f_blocks and sv.f_bavail <= sv.f_bfree,
                  'bfree/bavail inconsistent: %r' % (sv,))
            write_file(m.path('big'), pattern(1 << 20))
            fd = os.open(m.path('big'), os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
            sv2 = os.statvfs(m.mnt)
            eq(sv2.f_ffree, ifree - 1, 'f_ffree after one create')
            check(sv.f_bfree - sv2.f_bfree >= 256,
                  'f_bfree dropped by only %d after a 1 MiB write'
                  % (sv.f_bfree - sv2.f_bfree))
            os.unlink(m.path('big'))
            wait_until(lambda: (os.statvfs(m.mnt).f_ffree,
                                os.statvfs(m.mnt).f_bfree),
                       (ifree, sv.f_bfree), '(f_ffree, f_bfree) after unlink')
        fsck(img)


@test
def lookup_forget_cycles():
    """Drop the kernel's dentry/inode caches so FUSE sends forget, then look
    everything up again; repeated opens and closes must not leak or free
    live inodes."""
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            os.makedirs(m.path('a', 'b', 'c'))
            names = []
            for i in range(200):
                p = m.path('a', 'b', 'c', 'f%03d' % i)
                write_file(p, b'%d' % i)
                names.append(p)
            keep = os.open(names[7], os.O_RDONLY)
            for rnd in range(3):
                drop_caches()
                for i, p in enumerate(names):
                    eq(read_file(p), b'%d' % i, 'round %d %s' % (rnd, p))
                    eq(os.stat(p).st_nlink, 1, 'nlink')
            os.unlink(names[7])
            drop_caches()
            eq(os.pread(keep, 10, 0), b'7', 'open unlinked after forget')
            os.close(keep)
            ino = os.stat(names[8]).st_ino
            drop_caches()
            eq(os.stat(names[8]).st_ino, ino, 'st_ino stable across forget')
        fsck(img)


@test
def scandir_dtypes():
    """readdir / readdirplus return correct d_type and attributes."""
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            write_file(m.path('reg'), b'12345')
            os.mkdir(m.path('dir'))
            os.symlink('reg', m.path('sym'))
            os.mkfifo(m.path('fifo'))
            os.mknod(m.path('chr'), stat.S_IFCHR | 0o600, os.makedev(1, 3))
            drop_caches()
            kinds = {}
            for e in os.scandir(m.mnt):
                kinds[e.name] = (e.is_file(follow_symlinks=False),
                                 e.is_dir(follow_symlinks=False),
                                 e.is_symlink(),
                                 e.stat(follow_symlinks=False).st_ino
                                 == e.inode())
            eq(sorted(kinds), sorted(['reg', 'dir', 'sym', 'fifo', 'chr',
                                      'lost+found']), 'names')
            eq(kinds['reg'], (True, False, False, True), 'reg')
            eq(kinds['dir'], (False, True, False, True), 'dir')
            eq(kinds['sym'], (False, False, True, True), 'sym')
            eq(kinds['fifo'], (False, False, False, True), 'fifo')
            eq(kinds['chr'], (False, False, False, True), 'chr')
            eq(os.stat(m.path('reg')).st_size, 5, 'size via lookup')
        fsck(img)


if __name__ == '__main__':
    main()
