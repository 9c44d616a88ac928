#!/usr/bin/env python3
"""rename, renameat2 RENAME_NOREPLACE / RENAME_EXCHANGE, directory moves."""

import errno
import os
import time

from uext4test import (RENAME_EXCHANGE, RENAME_NOREPLACE, Mount, check,
                       debugfs, drop_caches, eq, expect_errno, fsck, main,
                       mkfs, read_file, renameat2, test, workdir, write_file)


def dotdot_ino(img, path):
    out = debugfs(img, 'ls -l %s' % path)
    for line in out.splitlines():
        f = line.split()
        if f and f[-1] == '..':
            return int(f[0])
    raise AssertionError('no .. in %s: %s' % (path, out))


@test
def rename_files():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            os.mkdir(m.path('x'))
            write_file(m.path('a'), b'AAA')
            write_file(m.path('b'), b'BBBB')
            ino_a = os.stat(m.path('a')).st_ino
            os.rename(m.path('a'), m.path('a2'))
            expect_errno(errno.ENOENT, os.stat, m.path('a'))
            eq(os.stat(m.path('a2')).st_ino, ino_a, 'ino kept by rename')
            os.rename(m.path('a2'), m.path('x', 'a3'))
            eq(read_file(m.path('x', 'a3')), b'AAA', 'moved content')
            # Overwrite: the old target loses its name; an open fd keeps it.
            fd = os.open(m.path('b'), os.O_RDONLY)
            os.rename(m.path('x', 'a3'), m.path('b'))
            eq(read_file(m.path('b')), b'AAA', 'overwritten target')
            eq(os.fstat(fd).st_nlink, 0, 'replaced inode nlink')
            eq(os.pread(fd, 10, 0), b'BBBB', 'replaced inode still open')
            os.close(fd)
            eq(sorted(os.listdir(m.mnt)), ['b', 'lost+found', 'x'],
               'root listing')
            eq(os.listdir(m.path('x')), [], 'x listing')
            # Same inode under two names: rename is a no-op.
            os.link(m.path('b'), m.path('b2'))
            os.rename(m.path('b'), m.path('b2'))
            eq(os.stat(m.path('b')).st_nlink, 2, 'hardlink rename no-op')
            check(os.path.exists(m.path('b2')), 'b2 kept')
            os.rename(m.path('b'), m.path('b'))
            expect_errno(errno.ENOENT, os.rename, m.path('nope'),
                         m.path('n2'))
            expect_errno(errno.ENOENT, os.rename, m.path('b'),
                         m.path('nodir', 'b'))
        fsck(img)


@test
def rename_errors():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            os.makedirs(m.path('d1', 'sub'))
            os.mkdir(m.path('d2'))
            os.mkdir(m.path('full'))
            write_file(m.path('full', 'f'), b'')
            write_file(m.path('file'), b'')
            expect_errno(errno.ENOTEMPTY, os.rename, m.path('d2'),
                         m.path('full'))
            expect_errno(errno.EISDIR, os.rename, m.path('file'),
                         m.path('d2'))
            expect_errno(errno.ENOTDIR, os.rename, m.path('d2'),
                         m.path('file'))
            expect_errno(errno.EINVAL, os.rename, m.path('d1'),
                         m.path('d1', 'sub', 'inside'))
            expect_errno(errno.EINVAL, os.rename, m.path('d1'),
                         m.path('d1', 'x'))
            expect_errno(errno.ENAMETOOLONG, os.rename, m.path('file'),
                         m.path('z' * 256))
            # Directory onto an empty directory replaces it.
            os.rename(m.path('d2'), m.path('d1', 'sub'))
            eq(os.listdir(m.path('d1')), ['sub'], 'd1 after replace')
            eq(os.stat(m.path('d1')).st_nlink, 3, 'd1 nlink after replace')
            eq(os.stat(m.mnt).st_nlink, 5,
               'root nlink after dir moved out (lost+found, d1, full)')
        fsck(img)


@test
def rename_dir_across_parents():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            os.makedirs(m.path('p1', 'child', 'grand'))
            os.mkdir(m.path('p2'))
            write_file(m.path('p1', 'child', 'f'), b'payload')
            eq(os.stat(m.path('p1')).st_nlink, 3, 'p1 nlink before')
            eq(os.stat(m.path('p2')).st_nlink, 2, 'p2 nlink before')
            os.rename(m.path('p1', 'child'), m.path('p2', 'moved'))
            eq(os.stat(m.path('p1')).st_nlink, 2, 'p1 nlink after')
            eq(os.stat(m.path('p2')).st_nlink, 3, 'p2 nlink after')
            eq(os.stat(m.path('p2', 'moved')).st_nlink, 3,
               'moved dir nlink')
            drop_caches()
            eq(os.stat(m.path('p2', 'moved', '..')).st_ino,
               os.stat(m.path('p2')).st_ino, '.. of moved dir')
            eq(read_file(m.path('p2', 'moved', 'f')), b'payload',
               'content under moved dir')
            # Move it over an existing empty directory in a third parent.
            os.makedirs(m.path('p3', 'empty'))
            os.rename(m.path('p2', 'moved'), m.path('p3', 'empty'))
            eq(os.stat(m.path('p2')).st_nlink, 2, 'p2 nlink after move out')
            eq(os.stat(m.path('p3')).st_nlink, 3, 'p3 nlink (replaced)')
            p3 = os.stat(m.path('p3')).st_ino
            eq(os.stat(m.path('p3', 'empty', '..')).st_ino, p3,
               '.. after replace')
            ino_p3 = p3
        fsck(img)
        eq(dotdot_ino(img, '/p3/empty'), ino_p3, 'on-disk .. of moved dir')


@test
def rename_times():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            os.mkdir(m.path('s'))
            os.mkdir(m.path('t'))
            write_file(m.path('s', 'f'), b'')
            for p in ('s', 't'):
                os.utime(m.path(p), ns=(10**18, 10**18))
            c0 = os.stat(m.path('s', 'f')).st_ctime_ns
            time.sleep(0.02)
            os.rename(m.path('s', 'f'), m.path('t', 'f'))
            for p in ('s', 't'):
                check(os.stat(m.path(p)).st_mtime_ns != 10**18,
                      'mtime of %s not updated by rename' % p)
            check(os.stat(m.path('t', 'f')).st_ctime_ns > c0,
                  'ctime of renamed inode not updated')
        fsck(img)


@test
def rename_noreplace():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            write_file(m.path('a'), b'a')
            write_file(m.path('b'), b'b')
            os.mkdir(m.path('dir'))
            expect_errno(errno.EEXIST, renameat2, m.path('a'), m.path('b'),
                         RENAME_NOREPLACE)
            expect_errno(errno.EEXIST, renameat2, m.path('a'),
                         m.path('dir'), RENAME_NOREPLACE)
            eq(read_file(m.path('a')) + read_file(m.path('b')), b'ab',
               'unchanged after EEXIST')
            renameat2(m.path('a'), m.path('c'), RENAME_NOREPLACE)
            expect_errno(errno.ENOENT, os.stat, m.path('a'))
            eq(read_file(m.path('c')), b'a', 'renamed with NOREPLACE')
            renameat2(m.path('dir'), m.path('c2'), RENAME_NOREPLACE)
            check(os.path.isdir(m.path('c2')), 'dir renamed with NOREPLACE')
            expect_errno(errno.EINVAL, renameat2, m.path('c'), m.path('b'),
                         RENAME_NOREPLACE | RENAME_EXCHANGE)
        fsck(img)


@test
def rename_exchange():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            write_file(m.path('a'), b'first')
            write_file(m.path('b'), b'second')
            ia, ib = os.stat(m.path('a')).st_ino, os.stat(m.path('b')).st_ino
            renameat2(m.path('a'), m.path('b'), RENAME_EXCHANGE)
            eq(read_file(m.path('a')), b'second', 'a after exchange')
            eq(read_file(m.path('b')), b'first', 'b after exchange')
            eq((os.stat(m.path('a')).st_ino, os.stat(m.path('b')).st_ino),
               (ib, ia), 'inodes exchanged')
            expect_errno(errno.ENOENT, renameat2, m.path('a'),
                         m.path('missing'), RENAME_EXCHANGE)
            # A directory and a file in different parents.
            os.makedirs(m.path('p1', 'dir', 'sub'))
            os.mkdir(m.path('p2'))
            write_file(m.path('p2', 'file'), b'F')
            renameat2(m.path('p1', 'dir'), m.path('p2', 'file'),
                      RENAME_EXCHANGE)
            eq(read_file(m.path('p1', 'dir')), b'F', 'file now in p1')
            eq(os.listdir(m.path('p2', 'file')), ['sub'],
               'dir now in p2')
            eq(os.stat(m.path('p1')).st_nlink, 2, 'p1 nlink after exchange')
            eq(os.stat(m.path('p2')).st_nlink, 3, 'p2 nlink after exchange')
            drop_caches()
            eq(os.stat(m.path('p2', 'file', '..')).st_ino,
               os.stat(m.path('p2')).st_ino, '.. of exchanged dir')
            p2 = os.stat(m.path('p2')).st_ino
            # Two directories.
            os.mkdir(m.path('p1', 'other'))
            renameat2(m.path('p1', 'other'), m.path('p2', 'file'),
                      RENAME_EXCHANGE)
            eq(os.listdir(m.path('p1', 'other')), ['sub'], 'dir swap')
            eq(os.stat(m.path('p1')).st_nlink, 3, 'p1 nlink dir swap')
            eq(os.stat(m.path('p2')).st_nlink, 3, 'p2 nlink dir swap')
            p1 = os.stat(m.path('p1')).st_ino
        fsck(img)
        eq(dotdot_ino(img, '/p1/other'), p1, 'on-disk .. of /p1/other')
        eq(dotdot_ino(img, '/p2/file'), p2, 'on-disk .. of /p2/file')


if __name__ == '__main__':
    main()
