#!/usr/bin/env python3
"""verity (mkfs -O verity): the image mounts read-write; an fs-verity file
(EXT4_VERITY_FL) reads as it is, and every change to its contents fails
with EPERM as on Linux (opening it for writing, truncating it), while its
metadata may change (mode, owner, xattrs, names, links) and other files are
written as usual; e2fsck -fn stays clean and the file keeps its flag.

No kernel comparison here: this machine's kernel has no CONFIG_FS_VERITY
(it refuses to mount such images read-write, and cannot enable verity on a
file), so the verity file is made with debugfs (the flag on a file of an
mkfs -d tree) and the kernel's rules (fs/verity/open.c: EPERM for FMODE_WRITE
and for a size change) are the reference. uext4 does not check the Merkle
tree on reads and cannot enable verity (FS_IOC_ENABLE_VERITY)."""

import errno
import os

from uext4test import (Mount, check, debugfs, eq, expect_errno, fsck,
                       inode_info, main, mkfs, pattern, read_file, test,
                       workdir, write_file)

EXT4_VERITY_FL = 0x100000
EXT4_EXTENTS_FL = 0x80000


def verity_image(d):
    src = d + '/src'
    os.mkdir(src)
    write_file(src + '/vf', pattern(10000, 1))
    write_file(src + '/plain', b'plain')
    img = mkfs(d + '/img', features=['verity'], opts=['-d', src])
    debugfs(img, 'set_inode_field /vf flags 0x%x'
            % (EXT4_VERITY_FL | EXT4_EXTENTS_FL), write=True)
    fsck(img)
    return img


def check_verity_file(m, path, data):
    eq(read_file(path), data, 'reading the verity file')
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_APPEND,
                  os.O_RDWR | os.O_TRUNC):
        expect_errno(errno.EPERM, os.open, path, flags)
    expect_errno(errno.EPERM, os.truncate, path, 0)
    expect_errno(errno.EPERM, os.truncate, path, len(data) + 1)
    eq(read_file(path), data, 'the verity file after the refused writes')


@test
def verity_writes_refused():
    with workdir() as d:
        img = verity_image(d)
        data = pattern(10000, 1)
        for opts in ([], ['no_default_permissions']):
            with Mount(img, opts=opts) as m:
                check_verity_file(m, m.path('vf'), data)
            fsck(img)
        with Mount(img) as m:
            # Metadata may change, as on Linux.
            os.chmod(m.path('vf'), 0o600)
            os.chown(m.path('vf'), 1000, 1000)
            os.setxattr(m.path('vf'), 'user.note', b'still verity')
            os.rename(m.path('vf'), m.path('renamed'))
            os.link(m.path('renamed'), m.path('second'))
            check_verity_file(m, m.path('second'), data)
            # Everything else is writable.
            write_file(m.path('plain'), b'rewritten')
            write_file(m.path('new'), pattern(50000, 2))
            os.unlink(m.path('second'))
        fsck(img)
        info = inode_info(img, '/renamed')
        check(info['flags'] & EXT4_VERITY_FL,
              'the verity flag was lost: 0x%x' % info['flags'])
        eq((info['mode'] & 0o7777, info['uid'], info['links']),
           (0o600, 1000, 1), 'mode, owner, links')
        with Mount(img) as m:
            eq(read_file(m.path('renamed')), data, 'after remount')
            eq(read_file(m.path('plain')), b'rewritten', 'plain file')
            eq(os.getxattr(m.path('renamed'), 'user.note'), b'still verity',
               'xattr')
            os.unlink(m.path('renamed'))     # frees it like any file
        fsck(img)


if __name__ == '__main__':
    main()
