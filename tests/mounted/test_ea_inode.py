#!/usr/bin/env python3
"""ea_inode: xattr values larger than a block live in inodes of their own.
The same operations run on a kernel loop mount of one copy of an image and
on uext4 over another; then the values through each mount, the owners'
inodes (i_blocks includes what their EA inodes hold), the EA inodes
themselves (size, owner, flags, blocks, reference count in ctime and
i_version), the free counts, and e2fsck -fn on both. Then each reads what
the other wrote, and uext4 replaces, removes and unlinks values the kernel
stored, including one EA inode the kernel shares between two files.

Runs only as root where loop mounts work, else exits 77."""

import os
import re
import shutil
import subprocess

from uext4test import require_kernel_loop_mount
from uext4test import kernel_mount
from uext4test import (Mount, SkipFile, TestFailure, check, eq, expect_errno,
                       fsck, main, mkfs, pattern, run, sb_field, test,
                       workdir, write_file)

import errno

EA_INODE_FL = 0x200000


def script(root):
    """The workload; returns what each path's xattrs should be."""
    def P(name):
        return os.path.join(root, name)
    for name in ('f1', 'f2', 'f3', 'f4', 'f5', 'f6'):
        write_file(P(name), b'data of ' + name.encode())
    os.mkdir(P('d'))
    os.mkdir(P('gone'))
    os.chown(P('f2'), 1000, 1001)
    os.setxattr(P('f1'), 'user.big', pattern(10240, 1))
    os.setxattr(P('f2'), 'user.a', pattern(5000, 2))
    os.setxattr(P('f2'), 'user.b', pattern(6000, 3))
    os.setxattr(P('f2'), 'user.a', pattern(7000, 4))       # replaced
    os.removexattr(P('f2'), 'user.b')                      # freed
    os.setxattr(P('f2'), 'user.c', b'small')               # in the body
    os.setxattr(P('f3'), 'user.x', pattern(3000, 5))       # in the block
    os.setxattr(P('f3'), 'user.x', pattern(8000, 6))       # to an EA inode
    os.setxattr(P('f3'), 'user.y', pattern(1000, 7))
    os.setxattr(P('f3'), 'user.x', pattern(100, 8))        # and back
    os.setxattr(P('f4'), 'user.max', pattern(65536, 9))    # the largest
    os.setxattr(P('f5'), 'user.big', pattern(20000, 10))
    os.unlink(P('f5'))                                     # frees it
    os.setxattr(P('d'), 'user.dir', pattern(4500, 11))
    os.setxattr(P('gone'), 'user.dir', pattern(4600, 12))
    os.rmdir(P('gone'))
    os.setxattr(P('f6'), 'trusted.t', pattern(9999, 13))
    os.link(P('f6'), P('f6b'))
    os.unlink(P('f6'))                                     # still linked
    try:
        os.setxattr(P('f1'), 'user.toobig', b'z' * 65537)
        raise TestFailure('a value of 65537 bytes was accepted')
    except OSError as e:
        check(e.errno == errno.E2BIG, '65537-byte value: %s' % e)
    return ['f1', 'f2', 'f3', 'f4', 'f6b', 'd']


def xattrs(root, names):
    out = {}
    for n in names:
        p = os.path.join(root, n)
        out[n] = {k: os.getxattr(p, k) for k in sorted(os.listxattr(p))}
    return out


def stat_inodes(img, count=64):
    """debugfs stat of inodes 12..12+count: {ino: fields} for those in use."""
    cmds = '\n'.join('stat <%d>' % i for i in range(12, 12 + count))
    p = run(['debugfs', '-f', '-', img], input=cmds.encode())
    out = {}
    for chunk in p.stdout.decode(errors='replace').split('debugfs: ')[1:]:
        m = re.match(r'stat <(\d+)>\s*\nInode: \d+\s+Type: (\S+)\s+'
                     r'Mode:\s+(\d+)\s+Flags: (0x[0-9a-f]+)', chunk)
        if not m:
            continue
        f = {'type': m.group(2), 'mode': m.group(3),
             'flags': int(m.group(4), 16)}
        for key, rx in (('version', r'Version: (0x[0-9a-f:]+)'),
                        ('uid', r'User:\s+(\d+)'), ('gid', r'Group:\s+(\d+)'),
                        ('size', r'Size: (\d+)'), ('links', r'Links: (\d+)'),
                        ('blocks', r'Blockcount: (\d+)'),
                        ('ctime', r'ctime: (0x[0-9a-f:]+)')):
            mm = re.search(rx, chunk)
            f[key] = mm.group(1) if mm else None
        if f['links'] in (None, '0'):
            continue
        out[int(m.group(1))] = f
    return out


def ea_inodes(img):
    """The live EA inodes as a sorted list of comparable tuples."""
    got = []
    for ino, f in stat_inodes(img).items():
        if f['flags'] & EA_INODE_FL:
            # ctime's seconds hold the reference count's high half and
            # i_version its low half; the nanoseconds are not used.
            got.append((f['size'], f['uid'], f['gid'], f['mode'],
                        hex(f['flags']), f['blocks'], f['links'],
                        f['ctime'].split(':')[0],
                        f['version'].split(':')[-1]))
    return sorted(got)


def owners(img, names):
    out = {}
    for n in names:
        p = run(['debugfs', '-R', 'stat /%s' % n, img])
        t = p.stdout.decode(errors='replace')
        out[n] = (re.search(r'Blockcount: (\d+)', t).group(1),
                  re.search(r'Links: (\d+)', t).group(1))
    return out


def compare(what, a, b):
    if a != b:
        raise TestFailure('%s differ:\n  kernel: %r\n  uext4:  %r'
                          % (what, a, b))


@test(timeout=120)
def ea_inode_kernel_diff():
    with workdir() as d:
        kimg = mkfs(d + '/kernel.img', size='64M', features=['ea_inode'])
        uimg = d + '/uext4.img'
        shutil.copyfile(kimg, uimg)
        kmnt = d + '/kmnt'
        with kernel_mount(kimg, kmnt):
            names = script(kmnt)
            kx = xattrs(kmnt, names)
        fsck(kimg)
        with Mount(uimg) as m:
            uimg_names = script(m.mnt)
            ux = xattrs(m.mnt, uimg_names)
        fsck(uimg)
        compare('xattrs through the mount', kx, ux)
        compare('owners (i_blocks, links)', owners(kimg, names),
                owners(uimg, names))
        kea, uea = ea_inodes(kimg), ea_inodes(uimg)
        check(len(uea) == 5, 'uext4 image has %d EA inodes, want 5: %r'
              % (len(uea), uea))
        compare('EA inodes (size, uid, gid, mode, flags, blocks, links, '
                'refs)', kea, uea)
        for field in ('Free inodes', 'Free blocks'):
            compare(field, sb_field(kimg, field), sb_field(uimg, field))

        # Each reads what the other wrote.
        with kernel_mount(uimg, kmnt):
            compare('kernel reading uext4\'s values', ux,
                    xattrs(kmnt, names))
        fsck(uimg)
        with Mount(kimg, opts=['ro']) as m:
            compare('uext4 reading the kernel\'s values', kx,
                    xattrs(m.mnt, names))
        fsck(kimg)


@test(timeout=120)
def ea_inode_shared_by_the_kernel():
    """The kernel stores equal large values once, in an EA inode with two
    references; uext4 drops them one at a time."""
    with workdir() as d:
        img = mkfs(d + '/img', size='64M', features=['ea_inode'])
        kmnt = d + '/kmnt'
        value = pattern(12000, 21)
        with kernel_mount(img, kmnt):
            for n in ('s1', 's2', 's3'):
                write_file(os.path.join(kmnt, n), b'')
                os.setxattr(os.path.join(kmnt, n), 'user.same', value)
            os.setxattr(os.path.join(kmnt, 's3'), 'user.other',
                        pattern(9000, 22))
        fsck(img)
        shared = ea_inodes(img)
        eq([e[-1] for e in shared if e[0] == '12000'], ['00000003'],
           'the kernel shares one EA inode three times (test premise)')
        with Mount(img) as m:
            eq(os.getxattr(m.path('s1'), 'user.same'), value, 'read shared')
            os.removexattr(m.path('s1'), 'user.same')
            os.setxattr(m.path('s2'), 'user.same', pattern(12000, 23))
            eq(os.getxattr(m.path('s3'), 'user.same'), value,
               'the third reference still reads')
        fsck(img)
        eq([e[-1] for e in ea_inodes(img) if e[0] == '12000'],
           ['00000001', '00000001'],
           'references after a remove and a replace')
        with Mount(img) as m:
            os.unlink(m.path('s3'))
            os.unlink(m.path('s2'))
            expect_errno(errno.ENODATA, os.getxattr, m.path('s1'),
                         'user.same')
        fsck(img)
        eq(ea_inodes(img), [], 'EA inodes left after the unlinks')
        with kernel_mount(img, kmnt):
            eq(sorted(os.listdir(kmnt)), ['lost+found', 's1'],
               'kernel listing')
        fsck(img)


def setup():
    require_kernel_loop_mount(features=['ea_inode'])


if __name__ == '__main__':
    main(setup)
