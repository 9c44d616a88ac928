#!/usr/bin/env python3
"""An unprivileged user runs the daemon on an image it owns, with and
without uidmap/gidmap."""

import errno
import os
import stat

from uext4test import (Mount, ensure_user, SkipFile, check, eq, errno_of, fsck,
                       inode_info, main, mkfs, run_as, test, workdir,
                       write_file)

USER = 'uext4test'


def cred():
    uid, gid = ensure_user(USER)
    return (uid, gid, [gid])


def user_ops(mnt):
    """Run as the user: write/read/delete; return what it saw."""
    seen = {}
    p = os.path.join(mnt, 'mine')
    with open(p, 'wb') as f:
        f.write(b'user data' * 1000)
    with open(p, 'rb') as f:
        seen['data'] = f.read()
    os.mkdir(os.path.join(mnt, 'dir'))
    with open(os.path.join(mnt, 'dir', 'x'), 'wb') as f:
        f.write(b'x')
    st = os.stat(p)
    seen['owner'] = (st.st_uid, st.st_gid)
    os.unlink(os.path.join(mnt, 'dir', 'x'))
    os.rmdir(os.path.join(mnt, 'dir'))
    os.rename(p, os.path.join(mnt, 'kept'))
    seen['list'] = sorted(os.listdir(mnt))
    return seen


@test
def nonroot_daemon():
    c = cred()
    with workdir() as d:
        img = mkfs(d + '/img', extended=['root_owner=%d:%d' % (c[0], c[1])])
        os.chown(img, c[0], c[1])
        with Mount(img, user=c) as m:
            seen = run_as(*c, user_ops, m.mnt)
            eq(seen['data'], b'user data' * 1000, 'data read back')
            eq(seen['owner'], (c[0], c[1]), 'owner of the new file')
            eq(seen['list'], ['kept', 'lost+found'], 'listing')
            # Without allow_other, other users (even root) are kept out.
            eq(errno_of(os.stat, m.path('kept')), errno.EACCES,
               'root access to a non-allow_other user mount')
        fsck(img)
        info = inode_info(img, '/kept')
        eq((info['uid'], info['gid']), (c[0], c[1]), 'on-disk owner')
        eq(os.stat(img).st_uid, c[0], 'image file still owned by the user')


@test
def nonroot_fakeroot():
    """With fakeroot the user who mounts acts as uid 0 / gid 0 in the
    image (fakeroot is refused with allow_other: test_security.py)."""
    c = cred()
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            os.chmod(m.mnt, 0o755)
            write_file(m.path('rootonly'), b'root data', 0o600)
            os.chown(m.path('rootonly'), 1234, 1234)
        os.chown(img, c[0], c[1])

        def ops(mnt):
            with open(os.path.join(mnt, 'rootonly'), 'rb') as f:
                data = f.read()
            write_file(os.path.join(mnt, 'made'), b'x', 0o640)
            os.chown(os.path.join(mnt, 'made'), 4321, 8765)
            write_file(os.path.join(mnt, 'made2'), b'y', 0o640)
            return data, os.stat(os.path.join(mnt, 'made')).st_uid
        with Mount(img, user=c, opts=['fakeroot']) as m:
            data, uid = run_as(*c, ops, m.mnt)
            eq(data, b'root data', 'fakeroot user reads a 0600 file of 1234')
            eq(uid, 4321, 'fakeroot chown')
        fsck(img)
        info = inode_info(img, '/made2')
        eq((info['uid'], info['gid']), (0, 0),
           'file created under fakeroot is owned by 0:0 in the image')
        eq(inode_info(img, '/made')['uid'], 4321, 'chowned file uid')


@test
def nonroot_uidmap():
    c = cred()
    with workdir() as d:
        src = d + '/src'
        os.mkdir(src)
        write_file(src + '/rootfile', b'owned by root', 0o644)
        os.chmod(src + '/rootfile', 0o644)
        write_file(src + '/stranger', b'owned by 1234', 0o644)
        os.chown(src + '/stranger', 1234, 1234)
        os.mkdir(src + '/rootdir', 0o755)
        img = mkfs(d + '/img', opts=['-d', src],
                   extended=['root_owner=0:0'])
        os.chown(img, c[0], c[1])
        opts = ['uidmap=0:%d' % c[0], 'gidmap=0:%d' % c[1]]
        with Mount(img, user=c, opts=opts) as m:
            def look(mnt):
                out = {}
                for n in ('', 'rootfile', 'stranger', 'rootdir'):
                    st = os.stat(os.path.join(mnt, n))
                    out[n] = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
                with open(os.path.join(mnt, 'rootfile'), 'ab') as f:
                    f.write(b', now the user')
                with open(os.path.join(mnt, 'rootdir', 'new'), 'wb') as f:
                    f.write(b'new')
                st = os.stat(os.path.join(mnt, 'rootdir', 'new'))
                out['new'] = (st.st_uid, st.st_gid)
                out['stranger_w'] = errno_of(
                    os.open, os.path.join(mnt, 'stranger'), os.O_WRONLY)
                return out
            out = run_as(*c, look, m.mnt)
            eq(out[''][:2], (c[0], c[1]), 'root dir appears owned by user')
            eq(out['rootfile'][:2], (c[0], c[1]), 'root file -> user')
            eq(out['rootdir'][:2], (c[0], c[1]), 'root subdir -> user')
            eq(out['stranger'][:2], (65534, 65534), 'unmapped id -> 65534')
            eq(out['new'], (c[0], c[1]), 'new file appears owned by user')
            eq(out['stranger_w'], errno.EACCES, 'write to unmapped 0644')
        fsck(img)
        info = inode_info(img, '/rootdir/new')
        eq((info['uid'], info['gid']), (0, 0), 'new file stored as 0:0')
        info = inode_info(img, '/stranger')
        eq((info['uid'], info['gid']), (1234, 1234), 'stranger unchanged')
        info = inode_info(img, '/rootfile')
        eq((info['uid'], info['size']), (0, len(b'owned by root, now the '
                                                b'user')), 'rootfile')
        check(os.stat(img).st_uid == c[0], 'image ownership kept')


def setup():
    c = cred()

    def can_open_fuse():
        os.close(os.open('/dev/fuse', os.O_RDWR))
    err = run_as(*c, errno_of, can_open_fuse)
    if err:
        # libfuse 3.14 only falls back to fusermount3 when /dev/fuse is
        # missing, not when it is unreadable, so no user mount can work.
        raise SkipFile('user %s cannot open /dev/fuse (%s; mode %o): '
                       'unprivileged FUSE mounts are impossible here'
                       % (USER, errno.errorcode.get(err),
                          stat.S_IMODE(os.stat('/dev/fuse').st_mode)))


if __name__ == '__main__':
    main(setup)
