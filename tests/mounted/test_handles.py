#!/usr/bin/env python3
"""File handles: name_to_handle_at(2) / open_by_handle_at(2) through FUSE
export support (fstests generic/426, 467, 477).

A handle names an inode by number and generation; it must keep working
after the kernel has dropped its cache and after an unmount and a mount of
the same image at the same place, and must fail with ESTALE once the inode
is freed or reused by another file.
"""

import ctypes
import errno
import fcntl
import os
import re
import struct

from uext4test import (Mount, TestFailure, check, debugfs, drop_caches, eq,
                       fsck, main, mkfs, run, test, workdir, write_file)

MAX_HANDLE_SZ = 128
_libc = ctypes.CDLL(None, use_errno=True)
_libc.name_to_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p,
                                    ctypes.c_void_p,
                                    ctypes.POINTER(ctypes.c_int), ctypes.c_int]
_libc.open_by_handle_at.argtypes = [ctypes.c_int, ctypes.c_void_p,
                                    ctypes.c_int]


def name_to_handle(path):
    """The handle of @path, as bytes (struct file_handle)."""
    buf = ctypes.create_string_buffer(8 + MAX_HANDLE_SZ)
    ctypes.c_uint.from_buffer(buf).value = MAX_HANDLE_SZ
    mount_id = ctypes.c_int()
    if _libc.name_to_handle_at(-100, os.fsencode(path), buf,
                               ctypes.byref(mount_id), 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    return buf.raw[:8 + ctypes.c_uint.from_buffer(buf).value]


def open_by_handle(mnt, handle, flags=os.O_RDONLY):
    mfd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    try:
        buf = ctypes.create_string_buffer(handle, len(handle))
        fd = _libc.open_by_handle_at(mfd, buf, flags)
        if fd < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return fd
    finally:
        os.close(mfd)


def handle_errno(mnt, handle):
    try:
        os.close(open_by_handle(mnt, handle))
    except OSError as e:
        return e.errno
    return 0


def check_handles(mnt, handles, want, when):
    """Each handle opens the inode it was taken from, with its data."""
    for name, h in handles.items():
        try:
            fd = open_by_handle(mnt, h)
        except OSError as e:
            raise TestFailure('%s: open_by_handle_at(%s): %s'
                              % (when, name, os.strerror(e.errno)))
        try:
            st = os.fstat(fd)
            eq(st.st_ino, want[name][0], '%s: inode of %s' % (when, name))
            if want[name][1] is not None:
                eq(os.pread(fd, 100, 0), want[name][1],
                   '%s: data of %s' % (when, name))
        finally:
            os.close(fd)


@test
def handles_survive_cache_drop_and_remount():
    with workdir() as d:
        img = mkfs(d + '/img')
        mnt = d + '/mnt'
        paths = {'f': ('f',), 'dir': ('d',), 'nested': ('d', 'e', 'g'),
                 'root': ()}
        with Mount(img, mnt=mnt) as m:
            write_file(m.path('f'), b'file f')
            os.makedirs(m.path('d', 'e'))
            write_file(m.path('d', 'e', 'g'), b'nested g')
            want = {}
            handles = {}
            for name, parts in paths.items():
                p = m.path(*parts)
                handles[name] = name_to_handle(p)
                data = None if os.path.isdir(p) else open(p, 'rb').read()
                want[name] = (os.stat(p).st_ino, data)
            check_handles(mnt, handles, want, 'cached')
            drop_caches()
            check_handles(mnt, handles, want, 'after drop_caches')
            # A freed inode, and the same number reused by a new file (the
            # generation tells them apart): ESTALE, never the new file.
            write_file(m.path('gone'), b'x')
            gone_ino = os.stat(m.path('gone')).st_ino
            gone = name_to_handle(m.path('gone'))
            os.unlink(m.path('gone'))
            drop_caches()
            eq(handle_errno(mnt, gone), errno.ESTALE, 'handle of a freed inode')
            write_file(m.path('reuse'), b'new file')
            eq(os.stat(m.path('reuse')).st_ino, gone_ino,
               'the new file reuses the freed inode number')
            drop_caches()
            eq(handle_errno(mnt, gone), errno.ESTALE,
               'handle of a reused inode number')
            handles['reuse'] = name_to_handle(m.path('reuse'))
            want['reuse'] = (gone_ino, b'new file')
            # Forged handles (FUSE's: node id high, low, generation) naming
            # reserved, never used and out-of-range inodes: ESTALE, and the
            # daemon records no error (the mount stays writable).
            h = handles['f']
            for ino in (1, 7, 8, 11 + 5000, 2 ** 32 - 1):
                forged = h[:8] + struct.pack('=II', 0, ino) + h[16:]
                eq(handle_errno(mnt, forged), errno.ESTALE,
                   'forged handle of inode %d' % ino)
            write_file(m.path('after_forged'), b'still writable')
        fsck(img)
        with Mount(img, mnt=mnt):
            check_handles(mnt, handles, want, 'after unmount and mount')
            eq(handle_errno(mnt, gone), errno.ESTALE,
               'handle of a reused inode number after mount')
        fsck(img)


FS_IOC_GETVERSION = 0x80087601


def generations(m, n):
    """Create n files in a new directory; their i_generation each."""
    os.mkdir(m.path('g'))
    out = []
    for i in range(n):
        fd = os.open(m.path('g', 'f%d' % i), os.O_CREAT | os.O_RDONLY, 0o644)
        try:
            out.append(struct.unpack('I', fcntl.ioctl(fd, FS_IOC_GETVERSION, b'\0' * 8)[:4])[0])
        finally:
            os.close(fd)
    return out


@test
def new_generations_differ():
    # A handle tells a reused inode number from the old file by its
    # generation: distinct from one new inode to the next, and not the same
    # sequence on the next mount of the same image (src/e2/inode.c).
    n = 200
    with workdir() as d:
        img = mkfs(d + '/img')
        run(['cp', '--sparse=always', img, d + '/img2'])
        with Mount(img) as m:
            a = generations(m, n)
        with Mount(d + '/img2', mnt=d + '/mnt2') as m:
            b = generations(m, n)
        eq(len(set(a)), n, 'distinct generations among %d new inodes' % n)
        check(len(set(a) & set(b)) < 5,
              'two mounts of the same image gave %d of the same generations'
              % len(set(a) & set(b)))
        check(len({(y - x) & 0xffffffff for x, y in zip(a, a[1:])}) > n // 2,
              'generations step by a constant: %r' % a[:8])
        fsck(img)
        fsck(d + '/img2')


def handle_generation(path):
    """The generation in FUSE's handle of @path (node id high, low,
    generation): the kernel's inode->i_generation, which only an entry
    reply (lookup, mknod, mkdir, symlink, link) sets."""
    return struct.unpack('=III', name_to_handle(path)[8:20])[2]


def debugfs_generations(img, names):
    out = {}
    for name in names:
        text = debugfs(img, 'stat /%s' % name)
        m = re.search(r'Generation: (\d+)', text)
        check(m, 'debugfs stat /%s: no generation:\n%s' % (name, text))
        out[name] = int(m.group(1))
    return out


@test
def entry_generations_are_the_inodes():
    # Entry replies carry i_generation; the daemon answers it from what the
    # lookup or create recorded (src/fs/icache.c) instead of reading the
    # inode again. Each kind of entry, from a create and from a cold lookup,
    # against debugfs.
    with workdir() as d:
        img = mkfs(d + '/img')
        names = ['f%d' % i for i in range(20)] + ['dir', 'link', 'hard']
        with Mount(img) as m:
            for i in range(20):
                write_file(m.path('f%d' % i), b'x')
            os.mkdir(m.path('dir'))
            os.symlink('f0', m.path('link'))
            os.link(m.path('f1'), m.path('hard'))
            made = {n: handle_generation(m.path(n)) for n in names}
            drop_caches()
            looked_up = {n: handle_generation(m.path(n)) for n in names}
        fsck(img)
        want = debugfs_generations(img, names)
        # The symlink's handle is the symlink's own (no AT_SYMLINK_FOLLOW).
        eq(made, want, 'generations in the entries of new names')
        eq(looked_up, want, 'generations in the entries of cold lookups')


if __name__ == '__main__':
    main()
