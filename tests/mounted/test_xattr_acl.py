#!/usr/bin/env python3
"""Extended attributes (user., trusted., security., system.posix_acl_*) and
POSIX ACL enforcement, checked as non-root users."""

import errno
import os
import stat

import shutil
import struct

from uext4test import (Mount, check, eq, errno_as, expect_errno,
                       expect_errno_as, fsck, getxattr_size, inode_info,
                       kernel_mount, main, mkfs, run, run_as, test, workdir,
                       write_file)

G1, G2, G3 = 20001, 20002, 20003
UA = (10001, G1, [G1])
UB = (10002, G2, [G2])
UC = (10003, G3, [G3])


def getfacl(p):
    out = run(['getfacl', '-cp', p]).stdout.decode()
    return sorted(line for line in out.splitlines() if line)


def setfacl(*args):
    run(['setfacl'] + list(args))


def op_read(p):
    with open(p, 'rb') as f:
        return f.read()


def op_write(p):
    fd = os.open(p, os.O_WRONLY)
    try:
        os.pwrite(fd, b'a', 0)      # leaves the content as it was
    finally:
        os.close(fd)


@test
def xattr_basics():
    with workdir() as d:
        img = mkfs(d + '/img')
        want = {}
        with Mount(img) as m:
            p = m.path('f')
            write_file(p, b'')
            expect_errno(errno.ENODATA, os.getxattr, p, 'user.none')
            os.setxattr(p, 'user.small', b'v')
            os.setxattr(p, 'user.empty', b'')
            os.setxattr(p, 'user.mid', bytes(range(256)) * 2)
            os.setxattr(p, 'trusted.t', b'trusted value')
            os.setxattr(p, 'security.s', b'sec')
            os.setxattr(p, 'user.' + 'n' * 250, b'long name')
            big = b'B' * 3000
            os.setxattr(p, 'user.big', big)
            want = {'user.small': b'v', 'user.empty': b'',
                    'user.mid': bytes(range(256)) * 2,
                    'trusted.t': b'trusted value', 'security.s': b'sec',
                    'user.' + 'n' * 250: b'long name', 'user.big': big}
            for k, v in want.items():
                eq(os.getxattr(p, k), v, 'getxattr ' + k[:20])
            eq(sorted(os.listxattr(p)), sorted(want), 'listxattr')
            expect_errno(errno.EEXIST, os.setxattr, p, 'user.small', b'x',
                         os.XATTR_CREATE)
            expect_errno(errno.ENODATA, os.setxattr, p, 'user.nope', b'x',
                         os.XATTR_REPLACE)
            os.setxattr(p, 'user.small', b'replaced', os.XATTR_REPLACE)
            want['user.small'] = b'replaced'
            eq(getxattr_size(p, 'user.mid', 0), 512, 'size query')
            expect_errno(errno.ERANGE, getxattr_size, p, 'user.mid', 10)
            os.removexattr(p, 'user.empty')
            del want['user.empty']
            expect_errno(errno.ENODATA, os.removexattr, p, 'user.empty')
            expect_errno(errno.ENODATA, os.getxattr, p, 'user.empty')
            expect_errno(errno.ERANGE, os.setxattr, p, 'user.' + 'x' * 251,
                         b'v')
            # user.* only on regular files and directories
            os.symlink('f', m.path('l'))
            expect_errno(errno.EPERM, os.setxattr, m.path('l'), 'user.x',
                         b'v', follow_symlinks=False)
            os.mkfifo(m.path('fifo'))
            expect_errno(errno.EPERM, os.setxattr, m.path('fifo'), 'user.x',
                         b'v')
            os.setxattr(m.path('l'), 'trusted.on_link', b'ok',
                        follow_symlinks=False)
            os.mkdir(m.path('d'))
            os.setxattr(m.path('d'), 'user.dir', b'on a dir')
        fsck(img)
        with Mount(img) as m:
            for k, v in want.items():
                eq(os.getxattr(m.path('f'), k), v, 'after remount ' + k[:20])
            eq(sorted(os.listxattr(m.path('f'))), sorted(want),
               'listxattr after remount')
            eq(os.getxattr(m.path('d'), 'user.dir'), b'on a dir', 'dir xattr')
            eq(os.getxattr(m.path('l'), 'trusted.on_link',
                           follow_symlinks=False), b'ok', 'link xattr')
            for k in want:
                os.removexattr(m.path('f'), k)
            eq(os.listxattr(m.path('f')), [], 'all removed')
        fsck(img)


@test
def xattr_full_gives_enospc():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            p = m.path('f')
            write_file(p, b'')
            n = 0
            err = 0
            while n < 1000:
                try:
                    os.setxattr(p, 'user.attr%04d' % n, b'%04d' % n * 50)
                except OSError as e:
                    err = e.errno
                    break
                n += 1
            eq(err, errno.ENOSPC, 'error when the xattr space is full')
            check(n >= 10, 'only %d xattrs of 200 bytes fit' % n)
            for i in range(n):
                eq(os.getxattr(p, 'user.attr%04d' % i), b'%04d' % i * 50,
                   'xattr %d after ENOSPC' % i)
        fsck(img)


@test
def xattr_permissions():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img, opts=['allow_other']) as m:
            os.chmod(m.mnt, 0o755)
            p = m.path('f')
            write_file(p, b'')
            os.chown(p, UA[0], G1)
            os.chmod(p, 0o644)
            os.setxattr(p, 'user.a', b'1')
            os.setxattr(p, 'trusted.hidden', b'2')
            eq(run_as(*UB, os.getxattr, p, 'user.a'), b'1',
               'read user xattr with read permission')
            expect_errno_as(UB, errno.EACCES, os.setxattr, p, 'user.b', b'')
            eq(errno_as(UA, os.setxattr, p, 'user.b', b'3'), 0,
               'owner sets user xattr')
            expect_errno_as(UA, errno.EPERM, os.setxattr, p, 'trusted.x',
                            b'')
            eq(sorted(run_as(*UB, os.listxattr, p)), ['user.a', 'user.b'],
               'trusted.* hidden from non-root list')
            os.chmod(p, 0o600)
            expect_errno_as(UB, errno.EACCES, os.getxattr, p, 'user.a')
        fsck(img)


ACL_OPTS = [['allow_other', 'no_default_permissions'], ['allow_other']]


def acl_enforcement(opts):
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img, opts=opts) as m:
            os.chmod(m.mnt, 0o755)
            p = m.path('f')
            write_file(p, b'acl data')
            os.chown(p, UA[0], G1)
            os.chmod(p, 0o600)
            expect_errno_as(UB, errno.EACCES, op_read, p)
            setfacl('-m', 'u:%d:rw,g:%d:r' % (UB[0], G3), p)
            eq(stat.S_IMODE(os.stat(p).st_mode), 0o660,
               'mode group bits show the mask')
            eq(run_as(*UB, op_read, p), b'acl data', 'named user reads')
            eq(errno_as(UB, op_write, p), 0, 'named user writes')
            eq(run_as(*UC, op_read, p), b'acl data', 'named group reads')
            expect_errno_as(UC, errno.EACCES, op_write, p)
            expect_errno_as((10004, 20004, [20004]), errno.EACCES, op_read, p)
            # The mask limits named entries.
            setfacl('-m', 'm::r', p)
            expect_errno_as(UB, errno.EACCES, op_write, p)
            eq(run_as(*UB, op_read, p), b'acl data', 'read under mask r')
            # chmod rewrites the mask
            os.chmod(p, 0o600)
            check('mask::---' in getfacl(p), 'chmod 600 sets mask::--- : %r'
                  % getfacl(p))
            expect_errno_as(UB, errno.EACCES, op_read, p)
            # Directory ACL: search and list for a named user.
            dd = m.path('dir')
            os.mkdir(dd)
            write_file(os.path.join(dd, 'inner'), b'in')
            os.chmod(dd, 0o700)
            expect_errno_as(UB, errno.EACCES, os.listdir, dd)
            setfacl('-m', 'u:%d:rx' % UB[0], dd)
            eq(run_as(*UB, os.listdir, dd), ['inner'], 'listing via ACL')
            eq(run_as(*UB, op_read, os.path.join(dd, 'inner')), b'in',
               'lookup via ACL')
            expect_errno_as(UB, errno.EACCES, write_file,
                            os.path.join(dd, 'new'), b'')
            # Removing the ACL restores plain mode checks.
            setfacl('-b', dd)
            expect_errno(errno.ENODATA, os.getxattr, dd,
                         'system.posix_acl_access')
            expect_errno_as(UB, errno.EACCES, os.listdir, dd)
        fsck(img)


@test
def acl_enforced():
    acl_enforcement(ACL_OPTS[0])


@test
def acl_enforced_defperm():
    acl_enforcement(ACL_OPTS[1])


@test
def acl_default_inheritance():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img, opts=['allow_other']) as m:
            os.chmod(m.mnt, 0o755)
            dd = m.path('inherit')
            os.mkdir(dd, 0o755)
            setfacl('-d', '-m', 'u:%d:rwx,g:%d:rx,o::-' % (UB[0], G3), dd)
            # umask is ignored when a default ACL exists
            old = os.umask(0o077)
            try:
                fd = os.open(os.path.join(dd, 'file'),
                             os.O_CREAT | os.O_WRONLY, 0o666)
                os.close(fd)
                os.mkdir(os.path.join(dd, 'sub'), 0o777)
            finally:
                os.umask(old)
            f = os.path.join(dd, 'file')
            eq(getfacl(f), sorted([
                'user::rw-', 'user:%d:rwx\t#effective:rw-' % UB[0],
                'group::r-x\t#effective:r--', 'group:%d:r-x\t#effective:r--'
                % G3, 'mask::rw-', 'other::---']), 'inherited file ACL')
            eq(stat.S_IMODE(os.stat(f).st_mode), 0o660,
               'mode of file created under a default ACL')
            sub = os.path.join(dd, 'sub')
            acl = getfacl(sub)
            for entry in ('user:%d:rwx' % UB[0], 'default:user:%d:rwx'
                          % UB[0], 'default:mask::rwx', 'default:other::---'):
                check(entry in acl, 'subdir ACL lacks %s: %r' % (entry, acl))
            eq(stat.S_IMODE(os.stat(sub).st_mode), 0o770, 'mode of subdir')
            eq(errno_as(UB, op_write, f), 0, 'inherited ACL grants write')
            # The VFS parses ACL xattrs (Linux 6.2+): a bad header is
            # EOPNOTSUPP on a kernel ext4 mount too.
            expect_errno(errno.EOPNOTSUPP, os.setxattr, f,
                         'system.posix_acl_access', b'garbage')
            raw = os.getxattr(f, 'system.posix_acl_access')
            eq(raw[:4], b'\x02\x00\x00\x00', 'ACL xattr version header')
        fsck(img)
        with Mount(img) as m:
            f = m.path('inherit', 'file')
            check('user:%d:rwx\t#effective:rw-' % UB[0] in getfacl(f),
                  'ACL after remount: %r' % getfacl(f))
        fsck(img)


def raw_acl(*entries):
    """An ACL xattr value (version 2) from (tag, perm, id) entries."""
    return struct.pack('<I', 2) + b''.join(
        struct.pack('<HHI', t, p, i) for t, p, i in entries)


# u::rwx, u:UB:rwx, g::r-x, m::rwx, o::---
DEFAULT_ACL = raw_acl((0x01, 7, 0xffffffff), (0x02, 7, UB[0]),
                      (0x04, 5, 0xffffffff), (0x10, 7, 0xffffffff),
                      (0x20, 0, 0xffffffff))


def default_acl_steps(root):
    """Creates in two directories while their default ACLs come and go
    (setfacl: setxattr and removexattr; a raw setxattr; a chmod that
    rewrites the access ACL): each new inode's mode and ACL xattrs."""
    def make(p, is_dir=False):
        if is_dir:
            os.mkdir(p, 0o777)
        else:
            os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))

    d, r = os.path.join(root, 'd'), os.path.join(root, 'r')
    os.mkdir(d, 0o755)
    os.mkdir(r, 0o755)
    order = []
    old = os.umask(0o022)
    try:
        for i in range(3):          # creates before any default ACL
            make(os.path.join(d, 'before%d' % i))
            make(os.path.join(r, 'before%d' % i))
        setfacl('-d', '-m', 'u:%d:rwx,g:%d:rx,o::-' % (UB[0], G3), d)
        os.setxattr(r, 'system.posix_acl_default', DEFAULT_ACL)
        make(os.path.join(d, 'with'))
        make(os.path.join(d, 'withdir'), True)
        make(os.path.join(r, 'with'))
        setfacl('-m', 'u:%d:rx' % UC[0], d)    # an access ACL too
        os.chmod(d, 0o750)                      # rewrites it
        make(os.path.join(d, 'afterchmod'))
        setfacl('-k', d)                        # removexattr
        os.removexattr(r, 'system.posix_acl_default')
        make(os.path.join(d, 'without'))
        make(os.path.join(d, 'withoutdir'), True)
        make(os.path.join(r, 'without'))
        os.setxattr(r, 'system.posix_acl_default', DEFAULT_ACL)
        make(os.path.join(r, 'again'))
    finally:
        os.umask(old)
    for top in (d, r):
        for name in sorted(os.listdir(top)):
            order.append(os.path.join(os.path.basename(top), name))
    out = {}
    for rel in order:
        p = os.path.join(root, rel)
        acls = {}
        for x in ('system.posix_acl_access', 'system.posix_acl_default'):
            try:
                acls[x] = os.getxattr(p, x)
            except OSError as e:
                if e.errno != errno.ENODATA:
                    raise
        out[rel] = (oct(os.stat(p).st_mode), acls)
    return out


@test
def acl_default_added_after_creates():
    """A directory in which files were created without a default ACL gets
    one (setfacl -d, a raw setxattr): the next files inherit it; it goes
    again (setfacl -k, removexattr): the next ones do not. The same steps
    on a kernel loop mount of a copy of the image give the same modes and
    ACL xattrs, byte for byte."""
    with workdir() as d:
        img = mkfs(d + '/img')
        kimg = d + '/kimg'
        shutil.copyfile(img, kimg)
        with Mount(img) as m:
            got = default_acl_steps(m.mnt)
        fsck(img)
        with kernel_mount(kimg, d + '/kmnt'):
            want = default_acl_steps(d + '/kmnt')
        fsck(kimg)
        check('system.posix_acl_access' in got['d/with'][1],
              'd/with inherited no ACL: %r' % (got['d/with'],))
        check('system.posix_acl_access' in got['r/again'][1],
              'r/again inherited no ACL: %r' % (got['r/again'],))
        check(not got['d/without'][1], 'd/without has ACLs: %r'
              % (got['d/without'],))
        eq(sorted(got), sorted(want), 'names')
        for rel in sorted(want):
            eq(got[rel], want[rel], 'mode and ACL xattrs of %s' % rel)


@test
def xattr_block_freed():
    """Removing the last attributes of an xattr block frees the block
    (libext2fs 1.47.0 alone would keep it, empty); another inode's block
    with the same contents stays."""
    with workdir() as d:
        # 128-byte inodes: no room in the inode, every attribute is in a block.
        img = mkfs(d + '/img', opts=['-I', '128'])
        with Mount(img) as m:
            for name in ('one', 'big', 'shared1', 'shared2'):
                write_file(m.path(name), b'')
            os.setxattr(m.path('one'), 'user.a', b'1')
            os.removexattr(m.path('one'), 'user.a')
            os.setxattr(m.path('big'), 'user.a', b'x' * 500)
            os.setxattr(m.path('big'), 'user.b', b'y' * 500)
            os.removexattr(m.path('big'), 'user.a')
            os.removexattr(m.path('big'), 'user.b')
            for name in ('shared1', 'shared2'):
                os.setxattr(m.path(name), 'user.s', b'same')
            os.removexattr(m.path('shared1'), 'user.s')
            eq(os.getxattr(m.path('shared2'), 'user.s'), b'same',
               'the other inode keeps its attribute')
        fsck(img)
        for name in ('one', 'big', 'shared1'):
            info = inode_info(img, '/' + name)
            check('File ACL: 0' in info['text'],
                  '%s keeps an xattr block:\n%s' % (name, info['text']))
            eq(info['blockcount'], 0, 'blocks of %s' % name)
        check('File ACL: 0' not in inode_info(img, '/shared2')['text'],
              'shared2 lost its xattr block')


if __name__ == '__main__':
    main()
