#!/usr/bin/env python3
"""Permission checks as the kernel makes them, exercised by non-root users.

The first variants mount with no_default_permissions, so the daemon's own
checks are what is tested; the *_defperm variants repeat them with the
default (default_permissions: the kernel checks first, from the attributes
and ACLs the daemon reports).  fakeroot is checked in test_nonroot.py (it
cannot be combined with allow_other).
"""

import errno
import os
import stat

from uext4test import (Mount, check, eq, errno_as, expect_errno_as, fsck,
                       inode_info, main, mkfs, read_file, run_as, test,
                       workdir, write_file)

G1, G2, G3 = 20001, 20002, 20003
UA = (10001, G1, [G1])          # owner of most files, group G1
UB = (10002, G2, [G2])          # stranger
UB_SUPP = (10002, G2, [G2, G1])  # same uid, G1 as supplementary group
UB_PRIM = (10002, G1, [G1])      # G1 as primary group
UC = (10003, G3, [G3])


def op_read(p):
    with open(p, 'rb') as f:
        return f.read()


def op_write(p, data=b'w'):
    fd = os.open(p, os.O_WRONLY)
    try:
        return os.write(fd, data)
    finally:
        os.close(fd)


def op_create(p):
    os.close(os.open(p, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644))


def op_trunc_open(p):
    os.close(os.open(p, os.O_RDONLY | os.O_TRUNC))


def op_access(p, mode):
    if not os.access(p, mode):
        raise OSError(errno.EACCES, 'access denied', p)


def setup_tree(m):
    """Files owned by UA with various modes, in a world-writable dir."""
    os.chmod(m.mnt, 0o755)
    top = m.path('p')
    os.mkdir(top, 0o777)
    os.chmod(top, 0o777)
    files = {'owner': 0o600, 'group': 0o640, 'other': 0o604,
             'noown': 0o077, 'gw': 0o660, 'all': 0o666, 'exec': 0o644}
    for name, mode in files.items():
        p = os.path.join(top, name)
        write_file(p, b'secret-' + name.encode())
        os.chown(p, UA[0], G1)
        os.chmod(p, mode)
    return top


def core_permission_checks(opts):
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img, opts=opts) as m:
            top = setup_tree(m)

            def P(n):
                return os.path.join(top, n)
            # owner class
            eq(run_as(*UA, op_read, P('owner')), b'secret-owner',
               'owner reads 0600')
            expect_errno_as(UB, errno.EACCES, op_read, P('owner'))
            expect_errno_as(UB, errno.EACCES, op_write, P('owner'))
            # owner bits apply to the owner even if others have more
            expect_errno_as(UA, errno.EACCES, op_read, P('noown'))
            # group class: primary and supplementary groups
            eq(run_as(*UB_PRIM, op_read, P('group')), b'secret-group',
               'primary group reads 0640')
            eq(run_as(*UB_SUPP, op_read, P('group')), b'secret-group',
               'supplementary group reads 0640')
            expect_errno_as(UB_SUPP, errno.EACCES, op_write, P('group'))
            expect_errno_as(UC, errno.EACCES, op_read, P('group'))
            eq(errno_as(UB_SUPP, op_write, P('gw')), 0, 'group write 0660')
            # other class; group members do not fall through to other
            eq(run_as(*UC, op_read, P('other')), b'secret-other',
               'other reads 0604')
            expect_errno_as(UB_SUPP, errno.EACCES, op_read, P('other'))
            expect_errno_as(UC, errno.EACCES, op_write, P('other'))
            eq(errno_as(UC, op_write, P('all')), 0, 'other writes 0666')
            # O_TRUNC needs write permission
            expect_errno_as(UC, errno.EACCES, op_trunc_open, P('other'))
            expect_errno_as(UC, errno.EACCES, os.truncate, P('other'), 0)
            # access(2)
            expect_errno_as(UA, errno.EACCES, op_access, P('exec'), os.X_OK)
            expect_errno_as(UC, errno.EACCES, op_access, P('owner'), os.R_OK)
            eq(errno_as(UC, op_access, P('other'), os.R_OK), 0,
               'access R_OK other')
            # root: reads anything, but exec needs some x bit
            eq(read_file(P('noown')), b'secret-noown', 'root reads 077')
            check(not os.access(P('exec'), os.X_OK),
                  'root has X_OK on a 0644 file')
            os.chmod(P('exec'), 0o654)
            check(os.access(P('exec'), os.X_OK),
                  'root lacks X_OK on a 0654 file')
            # chmod / chown / utime by non-owners
            expect_errno_as(UB, errno.EPERM, os.chmod, P('all'), 0o777)
            expect_errno_as(UA, errno.EPERM, os.chown, P('all'), UB[0], -1)
            expect_errno_as(UA, errno.EPERM, os.chown, P('all'), -1, G3)
            eq(errno_as(UA, os.chmod, P('all'), 0o646), 0, 'owner chmod')
            eq(errno_as((UA[0], G1, [G1, G2]), os.chown, P('all'), -1, G2),
               0, 'owner chgrp to a supplementary group')
            eq(os.stat(P('all')).st_gid, G2, 'gid after chgrp')
            # utime: "now" needs write access, explicit times ownership
            eq(errno_as(UC, os.utime, P('all'), None), 0,
               'utime(now) with write permission')
            expect_errno_as(UC, errno.EPERM, os.utime, P('all'), (1, 1))
            expect_errno_as(UC, errno.EACCES, os.utime, P('owner'), None)
        fsck(img)


def dir_permission_checks(opts):
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img, opts=opts) as m:
            setup_tree(m)
            priv = m.path('priv')
            os.mkdir(priv)
            write_file(os.path.join(priv, 'f'), b'inside')
            os.chown(priv, UA[0], G1)
            os.chmod(priv, 0o700)
            f = os.path.join(priv, 'f')
            expect_errno_as(UB, errno.EACCES, os.stat, f)
            expect_errno_as(UB, errno.EACCES, os.listdir, priv)
            expect_errno_as(UB, errno.EACCES, op_create,
                            os.path.join(priv, 'new'))
            # search (x) without read: lookup works, listing does not
            os.chmod(priv, 0o711)
            eq(errno_as(UB, os.stat, f), 0, 'lookup through 0711')
            expect_errno_as(UB, errno.EACCES, os.listdir, priv)
            # read without search: listing works, lookup does not
            os.chmod(priv, 0o744)
            expect_errno_as(UB, errno.EACCES, os.stat, f)
            eq(sorted(run_as(*UB, os.listdir, priv)), ['f'],
               'listing through 0744')
            # write needs search too
            os.chmod(priv, 0o766)
            expect_errno_as(UB, errno.EACCES, op_create,
                            os.path.join(priv, 'new'))
            os.chmod(priv, 0o733)
            eq(errno_as(UB, op_create, os.path.join(priv, 'new')), 0,
               'create in 0733')
            eq(os.stat(os.path.join(priv, 'new')).st_uid, UB[0],
               'owner of created file')
            eq(os.stat(os.path.join(priv, 'new')).st_gid, UB[1],
               'group of created file')
            eq(errno_as(UB, os.unlink, f), 0, 'unlink in 0733 (no sticky)')
            os.chmod(priv, 0o755)
            expect_errno_as(UB, errno.EACCES, os.unlink,
                            os.path.join(priv, 'new'))
            expect_errno_as(UB, errno.EACCES, os.mkdir,
                            os.path.join(priv, 'd'))
            expect_errno_as(UB, errno.EACCES, os.rename,
                            os.path.join(priv, 'new'),
                            os.path.join(priv, 'n2'))
        fsck(img)


def sticky_checks(opts):
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img, opts=opts) as m:
            os.chmod(m.mnt, 0o755)
            t = m.path('tmp')
            os.mkdir(t)
            os.chmod(t, 0o1777)
            a = os.path.join(t, 'a_file')
            run_as(*UA, write_file, a, b'a', 0o666)
            run_as(*UA, os.chmod, a, 0o666)
            os.mkdir(os.path.join(t, 'other'))
            os.chmod(os.path.join(t, 'other'), 0o777)
            expect_errno_as(UB, errno.EPERM, os.unlink, a)
            expect_errno_as(UB, errno.EPERM, os.rename, a,
                            os.path.join(t, 'b_file'))
            expect_errno_as(UB, errno.EPERM, os.rename, a,
                            os.path.join(t, 'other', 'x'))
            # UB can still write it (mode 0666), just not remove it
            eq(errno_as(UB, op_write, a), 0, 'write in sticky dir')
            # replacing UA's file by rename is also refused
            run_as(*UB, write_file, os.path.join(t, 'b_file'), b'b')
            expect_errno_as(UB, errno.EPERM, os.rename,
                            os.path.join(t, 'b_file'), a)
            eq(errno_as(UA, os.unlink, a), 0, 'owner unlinks in sticky')
            # the directory's owner may remove anything in it
            os.chown(t, UC[0], UC[1])
            eq(errno_as(UC, os.unlink, os.path.join(t, 'b_file')), 0,
               'dir owner unlinks in sticky')
            run_as(*UA, os.mkdir, os.path.join(t, 'adir'))
            expect_errno_as(UB, errno.EPERM, os.rmdir,
                            os.path.join(t, 'adir'))
            os.rmdir(os.path.join(t, 'adir'))     # root may
        fsck(img)


def setgid_dir_checks(opts):
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img, opts=opts) as m:
            os.chmod(m.mnt, 0o755)
            s = m.path('sgid')
            os.mkdir(s)
            os.chown(s, UA[0], G1)
            os.chmod(s, 0o2777)
            run_as(*UB, write_file, os.path.join(s, 'f'), b'x', 0o644)
            st = os.stat(os.path.join(s, 'f'))
            eq((st.st_uid, st.st_gid), (UB[0], G1), 'file in setgid dir')
            run_as(*UB, os.mkdir, os.path.join(s, 'sub'), 0o755)
            st = os.stat(os.path.join(s, 'sub'))
            eq(st.st_gid, G1, 'group of subdir of setgid dir')
            eq(stat.S_IMODE(st.st_mode), 0o2755, 'subdir inherits setgid')
            # a non-member creating a setgid file there loses the bit
            fd = run_as(*UB, os.open, os.path.join(s, 'g'),
                        os.O_CREAT | os.O_WRONLY, 0o2755)
            eq(stat.S_IMODE(os.stat(os.path.join(s, 'g')).st_mode), 0o755,
               'setgid stripped for non-member')
            del fd
            # a member keeps it
            run_as(*UB_SUPP, lambda p: os.close(os.open(
                p, os.O_CREAT | os.O_WRONLY, 0o2755)), os.path.join(s, 'h'))
            eq(stat.S_IMODE(os.stat(os.path.join(s, 'h')).st_mode), 0o2755,
               'setgid kept for member')
            # chmod g+s by an owner not in the file's group: bit dropped
            write_file(m.path('own'), b'')
            os.chown(m.path('own'), UB[0], G1)
            run_as(*UB, os.chmod, m.path('own'), 0o2755)
            eq(stat.S_IMODE(os.stat(m.path('own')).st_mode), 0o755,
               'chmod g+s by a non-member owner')
        fsck(img)
        eq(inode_info(img, '/sgid/sub')['gid'], G1, 'on-disk gid of subdir')


def kill_suid_checks(opts):
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img, opts=opts) as m:
            os.chmod(m.mnt, 0o755)
            for name in ('w_other', 'w_owner', 'w_root', 'w_nogx'):
                write_file(m.path(name), b'#!/bin/true\n')
                os.chown(m.path(name), UA[0], G1)
            os.chmod(m.path('w_other'), 0o6777)
            os.chmod(m.path('w_owner'), 0o6777)
            os.chmod(m.path('w_root'), 0o6777)
            os.chmod(m.path('w_nogx'), 0o2666)
            run_as(*UB, op_write, m.path('w_other'))
            eq(stat.S_IMODE(os.stat(m.path('w_other')).st_mode), 0o777,
               'write by another user clears setuid+setgid')
            run_as(*UA, op_write, m.path('w_owner'))
            eq(stat.S_IMODE(os.stat(m.path('w_owner')).st_mode), 0o777,
               'write by the owner clears setuid+setgid')
            op_write(m.path('w_root'))
            eq(stat.S_IMODE(os.stat(m.path('w_root')).st_mode), 0o6777,
               'write by root keeps setuid+setgid')
            run_as(*UB, op_write, m.path('w_nogx'))
            # Linux 6.18 ext4 clears it too when the writer is not in the
            # file's group (measured on a loop mount).
            eq(stat.S_IMODE(os.stat(m.path('w_nogx')).st_mode), 0o666,
               'setgid without group exec, write by a non-member')
            # truncate by a non-owner clears them too
            os.chmod(m.path('w_other'), 0o6777)
            run_as(*UB, os.truncate, m.path('w_other'), 1)
            eq(stat.S_IMODE(os.stat(m.path('w_other')).st_mode), 0o777,
               'truncate by another user clears setuid+setgid')
            # chown by root clears setuid
            os.chmod(m.path('w_root'), 0o4755)
            os.chown(m.path('w_root'), UB[0], -1)
            eq(stat.S_IMODE(os.stat(m.path('w_root')).st_mode), 0o755,
               'chown clears setuid')
        fsck(img)
        eq(inode_info(img, '/w_owner')['mode'], 0o777, 'on-disk mode')


@test
def perm_core():
    core_permission_checks(['allow_other', 'no_default_permissions'])


@test
def perm_dirs():
    dir_permission_checks(['allow_other', 'no_default_permissions'])


@test
def perm_sticky():
    sticky_checks(['allow_other', 'no_default_permissions'])


@test
def perm_setgid_dir():
    setgid_dir_checks(['allow_other', 'no_default_permissions'])


@test
def perm_kill_suid():
    kill_suid_checks(['allow_other', 'no_default_permissions'])


@test
def perm_core_defperm():
    core_permission_checks(['allow_other'])


@test
def perm_dirs_defperm():
    dir_permission_checks(['allow_other'])


@test
def perm_sticky_defperm():
    sticky_checks(['allow_other'])


@test
def perm_setgid_dir_defperm():
    setgid_dir_checks(['allow_other'])


@test
def perm_kill_suid_defperm():
    kill_suid_checks(['allow_other'])


@test
def uidmap_root_daemon():
    """uidmap/gidmap with the daemon run by root and allow_other: image
    ids 0 appear as UA's ids; new files by UA are stored as 0:0; ids outside
    the map show as 65534 and cannot be stored (EOVERFLOW)."""
    with workdir() as d:
        src = d + '/src'
        os.mkdir(src)
        write_file(src + '/rootfile', b'owned by root', 0o644)
        os.chmod(src + '/rootfile', 0o644)
        write_file(src + '/stranger', b'owned by 1234', 0o644)
        os.chown(src + '/stranger', 1234, 1234)
        os.mkdir(src + '/rootdir', 0o755)
        os.chmod(src + '/rootdir', 0o755)
        img = mkfs(d + '/img', opts=['-d', src],
                   extended=['root_owner=0:0'])
        opts = ['allow_other', 'uidmap=0:%d' % UA[0], 'gidmap=0:%d' % G1]
        with Mount(img, opts=opts) as m:
            for n in ('rootfile', 'rootdir'):
                st = os.stat(m.path(n))
                eq((st.st_uid, st.st_gid), (UA[0], G1), 'owner of ' + n)
            st = os.stat(m.path('stranger'))
            eq((st.st_uid, st.st_gid), (65534, 65534), 'unmapped owner')
            run_as(*UA, write_file, m.path('rootdir', 'new'), b'new')
            st = os.stat(m.path('rootdir', 'new'))
            eq((st.st_uid, st.st_gid), (UA[0], G1), 'owner of new file')
            eq(errno_as(UA, op_write, m.path('rootfile')), 0,
               'mapped owner writes its 0644 file')
            expect_errno_as(UA, errno.EACCES, op_write, m.path('stranger'))
            # Local root has no image id under this map.
            expect_errno_as((0, 0, [0]), errno.EOVERFLOW, write_file,
                            m.path('rootdir', 'byroot'), b'')
            expect_errno_as((0, 0, [0]), errno.EOVERFLOW, os.chown,
                            m.path('rootdir', 'new'), 0, -1)
        fsck(img)
        info = inode_info(img, '/rootdir/new')
        eq((info['uid'], info['gid']), (0, 0), 'new file stored as 0:0')
        info = inode_info(img, '/stranger')
        eq((info['uid'], info['gid']), (1234, 1234), 'stranger unchanged')


@test
def uidmap_nonzero_image_id():
    """uidmap=5:UA: UA is image uid 5, an ordinary user; files of other
    (unmapped) owners keep their mode bits against it."""
    with workdir() as d:
        src = d + '/src'
        os.mkdir(src)
        for name, mode in (('s600', 0o600), ('s644', 0o644)):
            write_file(src + '/' + name, b'not yours', mode)
            os.chmod(src + '/' + name, mode)
            os.chown(src + '/' + name, 1234, 1234)
        write_file(src + '/own', b'yours', 0o600)
        os.chmod(src + '/own', 0o600)
        os.chown(src + '/own', 5, 5)
        img = mkfs(d + '/img', opts=['-d', src],
                   extended=['root_owner=0:0'])
        opts = ['allow_other', 'uidmap=5:%d' % UA[0], 'gidmap=5:%d' % G1]
        with Mount(img, opts=opts) as m:
            st = os.stat(m.path('own'))
            eq((st.st_uid, st.st_gid), (UA[0], G1), 'mapped owner')
            eq(run_as(*UA, op_read, m.path('own')), b'yours', 'own file')
            eq(errno_as(UA, op_write, m.path('own')), 0, 'write own file')
            expect_errno_as(UA, errno.EACCES, op_read, m.path('s600'))
            expect_errno_as(UA, errno.EACCES, op_write, m.path('s644'))
            expect_errno_as(UA, errno.EPERM, os.chmod, m.path('s644'),
                            0o666)
        fsck(img)
        eq(inode_info(img, '/s644')['size'], len(b'not yours'),
           's644 unchanged on disk')


if __name__ == '__main__':
    main()
