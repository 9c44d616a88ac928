#!/usr/bin/env python3
"""Hard links: link counts, shared data, errors, times."""

import errno
import os
import time

from uext4test import (Mount, check, drop_caches, eq, expect_errno, fsck,
                       inode_info, main, mkfs, read_file, test, workdir,
                       write_file)


@test
def hard_links():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            os.mkdir(m.path('d'))
            write_file(m.path('f'), b'shared')
            ino = os.stat(m.path('f')).st_ino
            c0 = os.stat(m.path('f')).st_ctime_ns
            time.sleep(0.02)
            os.link(m.path('f'), m.path('d', 'g'))
            st = os.stat(m.path('d', 'g'))
            eq((st.st_ino, st.st_nlink), (ino, 2), 'link ino/nlink')
            eq(os.stat(m.path('f')).st_nlink, 2, 'nlink via first name')
            check(st.st_ctime_ns > c0, 'ctime not updated by link')
            for i in range(20):
                os.link(m.path('f'), m.path('d', 'h%d' % i))
            eq(os.stat(m.path('f')).st_nlink, 22, 'nlink after 20 more')
            with open(m.path('d', 'h7'), 'r+b') as f:
                f.write(b'SHARED')
            eq(read_file(m.path('f')), b'SHARED', 'data shared')
            expect_errno(errno.EEXIST, os.link, m.path('f'),
                         m.path('d', 'g'))
            expect_errno(errno.EPERM, os.link, m.path('d'), m.path('d2'))
            expect_errno(errno.ENOENT, os.link, m.path('nope'),
                         m.path('n2'))
            os.unlink(m.path('f'))
            drop_caches()
            eq(os.stat(m.path('d', 'g')).st_nlink, 21, 'nlink after unlink')
            eq(read_file(m.path('d', 'g')), b'SHARED', 'data kept')
        fsck(img)
        eq(inode_info(img, '/d/g')['links'], 21, 'on-disk links')
        with Mount(img) as m:
            for i in range(20):
                os.unlink(m.path('d', 'h%d' % i))
            eq(os.stat(m.path('d', 'g')).st_nlink, 1, 'nlink back to 1')
        fsck(img)


if __name__ == '__main__':
    main()
