#!/usr/bin/env python3
"""The daemon's read-only virtual xattr `uext4.inspect`.

getxattr(2) of `uext4.inspect` on any file of a mount returns the JSON
object `uext4-inspect --json` prints for that inode (without "path"), as the
daemon holds it now.  Checked against uext4-inspect run on the image after
unmount, on every file type; never listed; cannot be set or removed; on an
allow_other mount an ordinary user needs read permission and sees only the
xattr names listxattr would show them.
"""

import errno
import json
import os

from uext4test import (UEXT4, Mount, check, eq, expect_errno,
                       expect_errno_as, fsck, main, mkfs, pattern, run,
                       run_as, test, workdir, write_file)

NAME = 'uext4.inspect'
UB = (10002, 20002, [20002])
INSPECT = os.path.join(os.path.dirname(UEXT4), 'uext4-inspect')


def live(path):
    return json.loads(os.getxattr(path, NAME, follow_symlinks=False))


def at_rest(img, path):
    out = json.loads(run([INSPECT, img, path, '--json']).stdout)
    check(out.pop('path') == path, 'uext4-inspect echoes the path')
    return out


@test
def json_as_uext4_inspect():
    with workdir() as d:
        img = mkfs(os.path.join(d, 'img'), '16M', features=['inline_data'],
                   opts=['-I', '256'])
        names = ['small', 'big', 'dir', 'sym', 'longsym', 'fifo', 'dev',
                 'grows']
        seen = {}
        with Mount(img) as m:
            write_file(m.path('small'), b'0123456789')
            with open(m.path('big'), 'wb') as f:
                f.write(pattern(5000))
                f.seek(40000)
                f.write(pattern(3000, 2))
            os.setxattr(m.path('big'), 'user.colour', b'blue')
            os.setxattr(m.path('big'), 'trusted.t', b'x' * 300)
            os.mkdir(m.path('dir'))
            os.symlink('small', m.path('sym'))
            os.symlink('x' * 100, m.path('longsym'))
            os.mkfifo(m.path('fifo'))
            os.mknod(m.path('dev'), 0o20644, os.makedev(1, 3))
            # Live: what the daemon holds now, before any commit or close.
            fd = os.open(m.path('grows'), os.O_CREAT | os.O_RDWR, 0o644)
            try:
                os.write(fd, b'a' * 20)
                eq(live(m.path('grows'))['storage'], 'inline', 'after 20 bytes')
                os.write(fd, b'b' * 200)
                info = live(m.path('grows'))
                eq((info['storage'], info['size'], len(info['extents'])),
                   ('extents', 220, 1), 'after 220 bytes, file still open')
            finally:
                os.close(fd)
            for n in names:
                seen[n] = live(m.path(n))
            eq(sorted(seen['big']['xattrs']), ['trusted.t', 'user.colour'],
               'root sees every name')
            eq(seen['small']['storage'], 'inline', 'small file')
            eq(seen['big']['storage'], 'extents', 'big file')
            eq([e['lblk'] for e in seen['big']['extents']], [0, 9], 'runs')
            for n in names:
                check(NAME not in os.listxattr(m.path(n),
                                               follow_symlinks=False),
                      '%s: listed' % n)
            for n in ('small', 'dir'):
                expect_errno(errno.EPERM, os.setxattr, m.path(n), NAME, b'{}')
                expect_errno(errno.EPERM, os.removexattr, m.path(n), NAME)
            buf = os.getxattr(m.path('big'), NAME)
            check(len(buf) > 100, 'a sized read works')
        fsck(img)
        for n in names:
            eq(seen[n], at_rest(img, '/' + n), '%s: live vs uext4-inspect' % n)


def user_view(opts):
    with workdir() as d:
        img = mkfs(os.path.join(d, 'img'), '16M', features=['inline_data'],
                   opts=['-I', '256'])
        with Mount(img, opts=opts) as m:
            os.chmod(m.mnt, 0o755)
            write_file(m.path('secret'), b'hidden', mode=0o600)
            write_file(m.path('open'), b'visible', mode=0o644)
            os.setxattr(m.path('open'), 'trusted.t', b'root only')
            os.setxattr(m.path('open'), 'user.u', b'anyone')
            expect_errno_as(UB, errno.EACCES, os.getxattr, m.path('secret'),
                            NAME)
            got = run_as(UB[0], UB[1], UB[2], live, m.path('open'))
            eq(got['xattrs'], ['user.u'], 'names an ordinary user sees')
            eq(got['size'], 7, 'size')
            # Refused to the owner too (others fail the write check first).
            os.chown(m.path('open'), UB[0], UB[1])
            expect_errno_as(UB, errno.EPERM, os.setxattr, m.path('open'),
                            NAME, b'{}')
            expect_errno_as(UB, errno.EPERM, os.removexattr, m.path('open'),
                            NAME)
        fsck(img)


@test
def ordinary_user_default_permissions():
    user_view(['allow_other'])


@test
def ordinary_user_daemon_checks():
    user_view(['allow_other', 'no_default_permissions'])


if __name__ == '__main__':
    main()
