#!/usr/bin/env python3
"""mknod (fifo, char, block, socket) and symlinks (fast and block)."""

import errno
import os
import socket
import stat

from uext4test import (EXT4_EXTENTS_FL, EXT4_INLINE_DATA_FL, Mount, check,
                       drop_caches, eq, expect_errno, fsck, inode_info, main,
                       mkfs, read_file, test, workdir, write_file)


@test
def mknod_kinds():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            os.mkfifo(m.path('fifo'), 0o640)
            os.mknod(m.path('null'), stat.S_IFCHR | 0o666, os.makedev(1, 3))
            os.mknod(m.path('sda1'), stat.S_IFBLK | 0o660, os.makedev(8, 1))
            big = os.makedev(259, 70000)      # needs the new dev encoding
            os.mknod(m.path('bigdev'), stat.S_IFCHR | 0o600, big)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(m.path('sock'))
            s.close()
            os.mknod(m.path('sock2'), stat.S_IFSOCK | 0o644)
            os.mknod(m.path('reg'), stat.S_IFREG | 0o600)
            expect_errno(errno.EEXIST, os.mknod, m.path('reg'),
                         stat.S_IFREG | 0o600)

            def kinds():
                drop_caches()
                out = {}
                for n in ['fifo', 'null', 'sda1', 'bigdev', 'sock', 'sock2',
                          'reg']:
                    st = os.lstat(m.path(n))
                    out[n] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(
                        st.st_mode), st.st_rdev, st.st_size)
                return out
            want = {
                # umask 022 applies to mknod
                'fifo': (stat.S_IFIFO, 0o640, 0, 0),
                'null': (stat.S_IFCHR, 0o644, os.makedev(1, 3), 0),
                'sda1': (stat.S_IFBLK, 0o640, os.makedev(8, 1), 0),
                'bigdev': (stat.S_IFCHR, 0o600, big, 0),
                'sock': (stat.S_IFSOCK, 0o755, 0, 0),
                'sock2': (stat.S_IFSOCK, 0o644, 0, 0),
                'reg': (stat.S_IFREG, 0o600, 0, 0),
            }
            eq(kinds(), want, 'special files')
            # A FIFO on the mount works as a FIFO (the kernel handles it).
            r = os.open(m.path('fifo'), os.O_RDONLY | os.O_NONBLOCK)
            w = os.open(m.path('fifo'), os.O_WRONLY)
            os.write(w, b'through the pipe')
            eq(os.read(r, 100), b'through the pipe', 'fifo data')
            os.close(w)
            os.close(r)
            # The device nodes are on a nodev mount, opening is refused by
            # the kernel; we only check attributes.
        fsck(img)
        eq(inode_info(img, '/fifo')['type'], 'FIFO', 'on-disk type fifo')
        eq(inode_info(img, '/sda1')['type'], 'block special',
           'on-disk type blk')
        eq(inode_info(img, '/sock')['type'], 'socket', 'on-disk type sock')
        with Mount(img) as m:
            eq(kinds(), want, 'special files after remount')
        fsck(img)


@test
def symlinks_fast_and_slow():
    targets = {
        'short': 'a',
        's59': 't' * 59,
        's60': 'u' * 60,
        's61': 'v' * 61,
        'path': '../' * 30 + 'deep/target/file',
        's4095': ('w' * 254 + '/') * 16 + 'x' * 15,
    }
    eq(len(targets['s4095']), 4095, 'target length (test self-check)')
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            for name, t in targets.items():
                os.symlink(t, m.path(name))
            expect_errno(errno.ENAMETOOLONG, os.symlink, 'y' * 4096,
                         m.path('toolong'))
            expect_errno(errno.EEXIST, os.symlink, 'x', m.path('short'))
            drop_caches()
            for name, t in targets.items():
                eq(os.readlink(m.path(name)), t, 'readlink ' + name)
                st = os.lstat(m.path(name))
                eq(st.st_size, len(t), 'lstat size of ' + name)
                eq(stat.S_IFMT(st.st_mode), stat.S_IFLNK, 'type of ' + name)
                eq(stat.S_IMODE(st.st_mode), 0o777, 'mode of ' + name)
            write_file(m.path('real'), b'content')
            os.symlink('real', m.path('rel'))
            os.symlink(m.path('real'), m.path('abs'))
            os.symlink('missing', m.path('dangling'))
            eq(read_file(m.path('rel')), b'content', 'follow relative')
            eq(read_file(m.path('abs')), b'content', 'follow absolute')
            expect_errno(errno.ENOENT, os.stat, m.path('dangling'))
            eq(os.stat(m.path('rel')).st_ino, os.stat(m.path('real')).st_ino,
               'stat follows')
            os.symlink('loop2', m.path('loop1'))
            os.symlink('loop1', m.path('loop2'))
            expect_errno(errno.ELOOP, os.stat, m.path('loop1'))
            expect_errno(errno.EINVAL, os.readlink, m.path('real'))
        fsck(img)
        for name, t in targets.items():
            info = inode_info(img, '/' + name)
            if len(t) < 60:
                eq(info['blockcount'], 0, 'fast symlink %s blocks' % name)
                check(not info['flags'] & EXT4_EXTENTS_FL,
                      'fast symlink %s has EXTENTS flag' % name)
                check('Fast link dest: "%s"' % t in info['text'],
                      'fast symlink %s target not in i_block:\n%s'
                      % (name, info['text']))
            else:
                check(info['blockcount'] > 0 or
                      info['flags'] & EXT4_INLINE_DATA_FL,
                      'block symlink %s has no blocks' % name)
        with Mount(img) as m:
            for name, t in targets.items():
                eq(os.readlink(m.path(name)), t, 'after remount ' + name)
            for name in targets:
                os.unlink(m.path(name))
        fsck(img)


if __name__ == '__main__':
    main()
