#!/usr/bin/env python3
"""Directories: mkdir, rmdir, readdir, link counts, htree, big dirs."""

import ctypes
import errno
import os
import stat
import time

from uext4test import (EXT4_INDEX_FL, Mount, check, drop_caches, eq,
                       expect_errno, fsck, inode_info, main, mkfs, read_file,
                       test, workdir, write_file)


@test
def mkdir_rmdir_nlink():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            root_nlink = os.stat(m.mnt).st_nlink
            eq(root_nlink, 3, 'root nlink (., .., lost+found)')
            os.mkdir(m.path('a'), 0o750)
            st = os.stat(m.path('a'))
            eq(st.st_mode, stat.S_IFDIR | 0o750, 'mode of new dir')
            eq(st.st_nlink, 2, 'nlink of new dir')
            eq(st.st_size, 4096, 'size of new dir')
            eq(os.stat(m.mnt).st_nlink, 4, 'root nlink after mkdir')
            for i in range(10):
                os.mkdir(m.path('a', 's%d' % i))
            write_file(m.path('a', 'file'), b'x')
            eq(os.stat(m.path('a')).st_nlink, 12, 'nlink with 10 subdirs')
            eq(os.stat(m.path('a', 's3', '..')).st_ino,
               os.stat(m.path('a')).st_ino, '.. of subdir')
            eq(sorted(os.listdir(m.path('a'))),
               sorted(['s%d' % i for i in range(10)] + ['file']), 'listing')
            expect_errno(errno.EEXIST, os.mkdir, m.path('a'))
            expect_errno(errno.EEXIST, os.mkdir, m.path('a', 'file'))
            expect_errno(errno.ENOTEMPTY, os.rmdir, m.path('a'))
            expect_errno(errno.ENOTDIR, os.rmdir, m.path('a', 'file'))
            expect_errno(errno.ENOENT, os.rmdir, m.path('a', 'nope'))
            expect_errno(errno.EINVAL, os.rmdir, m.path('a', 's1', '.'))
            expect_errno(errno.ENOENT, os.mkdir, m.path('no', 'x'))
            expect_errno(errno.ENOTDIR, os.mkdir, m.path('a', 'file', 'x'))
            for i in range(10):
                os.rmdir(m.path('a', 's%d' % i))
            eq(os.stat(m.path('a')).st_nlink, 2, 'nlink after rmdirs')
            os.unlink(m.path('a', 'file'))
            os.rmdir(m.path('a'))
            expect_errno(errno.ENOENT, os.stat, m.path('a'))
            eq(os.stat(m.mnt).st_nlink, 3, 'root nlink after rmdir')
        fsck(img)


@test
def rmdir_open_dir():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            os.mkdir(m.path('gone'))
            fd = os.open(m.path('gone'), os.O_RDONLY | os.O_DIRECTORY)
            os.rmdir(m.path('gone'))
            eq(os.fstat(fd).st_nlink, 0, 'nlink of removed open dir')
            expect_errno(errno.ENOENT, os.open, m.path('gone', 'x'),
                         os.O_CREAT | os.O_WRONLY, 0o644)
            eq(os.listdir(fd), [], 'listing of removed dir')
            os.close(fd)
        fsck(img)


@test
def dir_times():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            os.mkdir(m.path('d'))
            os.utime(m.path('d'), ns=(10**18, 10**18))
            t0 = os.stat(m.path('d'))
            time.sleep(0.02)
            write_file(m.path('d', 'f'), b'')
            t1 = os.stat(m.path('d'))
            check(t1.st_mtime_ns > t0.st_mtime_ns - 10**18 + 1 and
                  t1.st_mtime_ns != 10**18, 'dir mtime not updated on create')
            check(t1.st_ctime_ns > t0.st_ctime_ns,
                  'dir ctime not updated on create')
            os.utime(m.path('d'), ns=(10**18, 10**18))
            t2 = os.stat(m.path('d'))
            time.sleep(0.02)
            os.unlink(m.path('d', 'f'))
            t3 = os.stat(m.path('d'))
            check(t3.st_mtime_ns != 10**18, 'dir mtime not updated on unlink')
            check(t3.st_ctime_ns > t2.st_ctime_ns,
                  'dir ctime not updated on unlink')
            os.utime(m.path('d'), ns=(10**18, 10**18))
            time.sleep(0.02)
            os.mkdir(m.path('d', 'sub'))
            check(os.stat(m.path('d')).st_mtime_ns != 10**18,
                  'dir mtime not updated on mkdir')
            os.utime(m.path('d'), ns=(10**18, 10**18))
            os.rmdir(m.path('d', 'sub'))
            check(os.stat(m.path('d')).st_mtime_ns != 10**18,
                  'dir mtime not updated on rmdir')
        fsck(img)


@test
def deep_tree_persists():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            p = m.mnt
            for i in range(30):
                p = os.path.join(p, 'level%02d' % i)
                os.mkdir(p)
                write_file(os.path.join(p, 'data'), b'depth %d' % i)
        fsck(img)
        with Mount(img) as m:
            p = m.mnt
            for i in range(30):
                p = os.path.join(p, 'level%02d' % i)
                eq(read_file(os.path.join(p, 'data')), b'depth %d' % i,
                   'data at depth %d' % i)
                want = ['data'] + (['level%02d' % (i + 1)] if i < 29 else [])
                eq(sorted(os.listdir(p)), want, 'listing at depth %d' % i)
        fsck(img)


@test
def readdir_while_changing():
    """Entries neither vanish nor repeat for names that stay put while
    others are added and removed during a directory scan."""
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            os.mkdir(m.path('d'))
            stable = set('s%04d' % i for i in range(500))
            for n in stable:
                write_file(m.path('d', n), b'')
            for i in range(100):
                write_file(m.path('d', 'v%04d' % i), b'')
            seen = []
            it = os.scandir(m.path('d'))
            for k, e in enumerate(it):
                seen.append(e.name)
                if k == 50:
                    for i in range(100):
                        os.unlink(m.path('d', 'v%04d' % i))
                    for i in range(100):
                        write_file(m.path('d', 'n%04d' % i), b'')
            it.close()
            got = [n for n in seen if n.startswith('s')]
            eq(len(got), len(set(got)), 'duplicate stable entries')
            eq(set(got), stable, 'stable entries seen')
        fsck(img)


class _Dirent(ctypes.Structure):
    _fields_ = [('d_ino', ctypes.c_uint64), ('d_off', ctypes.c_int64),
                ('d_reclen', ctypes.c_ushort), ('d_type', ctypes.c_ubyte),
                ('d_name', ctypes.c_char * 256)]


class _Libc:
    """opendir(3), readdir(3), rewinddir(3), closedir(3) of glibc."""
    def __init__(self):
        c = ctypes.CDLL(None, use_errno=True)
        c.opendir.argtypes = [ctypes.c_char_p]
        c.opendir.restype = ctypes.c_void_p
        c.readdir.argtypes = [ctypes.c_void_p]
        c.readdir.restype = ctypes.POINTER(_Dirent)
        c.rewinddir.argtypes = [ctypes.c_void_p]
        c.closedir.argtypes = [ctypes.c_void_p]
        self.c = c

    def opendir(self, path):
        d = self.c.opendir(os.fsencode(path))
        if not d:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e), path)
        return d

    def read_all(self, d):
        names = []
        while True:
            ctypes.set_errno(0)
            ent = self.c.readdir(d)
            if not ent:
                e = ctypes.get_errno()
                if e:
                    raise OSError(e, os.strerror(e))
                return names
            names.append(ent.contents.d_name.decode())


@test
def rewinddir_shows_changes():
    """After rewinddir(3) a stream lists the directory as it is now
    (POSIX; fstests generic/471): names created since opendir appear,
    removed ones are gone; also when nothing was read before the rewind."""
    libc = _Libc()
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            top = m.path('d')
            os.mkdir(top)
            old = ['old%03d' % i for i in range(20)]
            for n in old:
                write_file(os.path.join(top, n), b'')
            dirp = libc.opendir(top)
            try:
                eq(sorted(libc.read_all(dirp)), sorted(old + ['.', '..']),
                   'first listing')
                new = ['new%04d' % i for i in range(1000)]
                for n in new:
                    write_file(os.path.join(top, n), b'')
                for n in old[:10]:
                    os.unlink(os.path.join(top, n))
                libc.c.rewinddir(dirp)
                eq(sorted(libc.read_all(dirp)),
                   sorted(old[10:] + new + ['.', '..']),
                   'listing after rewinddir')
            finally:
                libc.c.closedir(dirp)
            # opendir, create, rewinddir with nothing read in between
            dirp = libc.opendir(top)
            try:
                write_file(os.path.join(top, 'later'), b'')
                libc.c.rewinddir(dirp)
                check('later' in libc.read_all(dirp),
                      'name created after opendir missing after rewinddir')
            finally:
                libc.c.closedir(dirp)
        fsck(img)


@test(timeout=240)
def big_directory_20000():
    n = 20000
    names = ['entry-%05d-%s' % (i, 'x' * (i % 40)) for i in range(n)]
    with workdir() as d:
        img = mkfs(d + '/img', size='128M')
        with Mount(img) as m:
            os.mkdir(m.path('big'))
            for name in names:
                os.close(os.open(m.path('big', name),
                                 os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644))
            eq(os.stat(m.path('big')).st_nlink, 2, 'nlink of big dir')
        fsck(img)
        info = inode_info(img, '/big')
        check(info['flags'] & EXT4_INDEX_FL,
              '20,000-entry directory has no htree index (flags 0x%x)'
              % info['flags'])
        with Mount(img) as m:
            listing = os.listdir(m.path('big'))
            eq(len(listing), n, 'readdir count')
            eq(set(listing), set(names), 'readdir names')
            drop_caches()
            inos = set()
            for name in names:
                st = os.stat(m.path('big', name))
                check(stat.S_ISREG(st.st_mode) and st.st_size == 0,
                      'stat of %s' % name)
                inos.add(st.st_ino)
            eq(len(inos), n, 'distinct inode numbers')
            expect_errno(errno.ENOENT, os.stat, m.path('big', 'entry-x'))
            expect_errno(errno.EEXIST, os.open, m.path('big', names[12345]),
                         os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            for name in names[::2]:
                os.unlink(m.path('big', name))
            eq(sorted(os.listdir(m.path('big'))), sorted(names[1::2]),
               'listing after removing half')
            for name in names[1::2]:
                check(os.path.exists(m.path('big', name)),
                      'lookup of %s after removing half' % name)
                os.unlink(m.path('big', name))
            eq(os.listdir(m.path('big')), [], 'listing after removing all')
            os.rmdir(m.path('big'))
        fsck(img)


@test
def many_subdirs_nlink():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            os.mkdir(m.path('p'))
            for i in range(1000):
                os.mkdir(m.path('p', 'd%d' % i))
            eq(os.stat(m.path('p')).st_nlink, 1002, 'nlink with 1000 subdirs')
        fsck(img)
        eq(inode_info(img, '/p')['links'], 1002, 'on-disk links')


if __name__ == '__main__':
    main()
