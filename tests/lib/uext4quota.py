"""Quota files as e2fsprogs reads them: usage per id (debugfs
list_quota), e2fsck's recount, the vfsv1 tree's shape, and project ids
(FS_IOC_FSSETXATTR). Shared by test_quota and test_enospc."""

import fcntl
import os
import shutil
import struct

from uext4test import TestFailure, check, eq, fsck, run

FS_IOC_FSGETXATTR = 0x801c581f
FS_IOC_FSSETXATTR = 0x401c5820
FS_XFLAG_PROJINHERIT = 0x200
FSXATTR = struct.Struct('<IIIII8x')


def usage_diff(what, want, got):
    """None, or the ids whose (space, inodes) differ, e2fsck's first."""
    lines = ['  %s: e2fsck %r, uext4 %r' % (k, want.get(k), got.get(k))
             for k in sorted(set(want) | set(got)) if want.get(k) != got.get(k)]
    return '%s differ:\n%s' % (what, '\n'.join(lines[:40])) if lines else None


def set_project(path, projid, inherit):
    fd = os.open(path, os.O_RDONLY)
    try:
        buf = bytearray(FSXATTR.size)
        fcntl.ioctl(fd, FS_IOC_FSGETXATTR, buf)
        xflags, extsize, nextents, _, cow = FSXATTR.unpack(buf)
        if inherit:
            xflags |= FS_XFLAG_PROJINHERIT
        fcntl.ioctl(fd, FS_IOC_FSSETXATTR,
                    FSXATTR.pack(xflags, extsize, nextents, projid, cow))
    finally:
        os.close(fd)


def usage(img):
    """{(type, id): (space, inodes)} of the ids with any usage."""
    out = {}
    for qtype in ('user', 'group', 'project'):
        text = uexec_debugfs(img, 'list_quota ' + qtype)
        for line in text.splitlines():
            f = line.split()
            if len(f) != 7 or not f[0].isdigit():
                continue
            space, inodes = int(f[1]), int(f[4])
            if space or inodes:
                out['%s %s' % (qtype, f[0])] = (space, inodes)
    return out


def uexec_debugfs(img, request):
    p = run(['debugfs', '-R', request, img])
    return p.stdout.decode(errors='replace')


def check_tree(img, inum):
    """The vfsv1 file of inode @inum is well formed as the kernel reads it:
    tree references inside the file, each data block's entry count right,
    the list of data blocks with free entries exactly those not full,
    linked both ways. Returns the number of entries."""
    data = run(['debugfs', '-R', 'cat <%d>' % inum, img]).stdout
    nblocks, free_blk, free_entry = struct.unpack_from('<III', data, 8 + 12)
    check(len(data) >= nblocks * 1024, 'quota file %d shorter than its '
          '%d blocks' % (inum, nblocks))
    leaves = set()

    def walk(ref, depth):
        check(1 <= ref < nblocks, 'reference %d out of the file' % ref)
        if depth == 4:
            leaves.add(ref)
            return
        for r in struct.unpack_from('<256I', data, ref * 1024):
            if r:
                walk(r, depth + 1)
    walk(1, 0)
    entries, not_full = 0, set()
    for b in leaves:
        n = sum(1 for i in range(14)
                if any(data[b * 1024 + 16 + 72 * i:b * 1024 + 88 + 72 * i]))
        eq(struct.unpack_from('<H', data, b * 1024 + 8)[0], n,
           'entry count of data block %d' % b)
        entries += n
        if n < 14:
            not_full.add(b)
    listed, prev, b = set(), 0, free_entry
    while b:
        check(b not in listed, 'free entry list loops at %d' % b)
        nxt, prv = struct.unpack_from('<II', data, b * 1024)
        eq(prv, prev, 'prev link of data block %d' % b)
        listed.add(b)
        prev, b = b, nxt
    eq(sorted(listed), sorted(not_full), 'data blocks with free entries')
    return entries


def e2fsck_recount(img, d):
    """e2fsck's count of @img's usage: quota files made by tune2fs, which
    counts an EA inode as an inode of its own owner, then corrected by
    e2fsck -fy, which charges it to the inodes referencing it."""
    copy = d + '/recount.img'
    shutil.copyfile(img, copy)
    run(['tune2fs', '-O', '^quota', copy])
    run(['tune2fs', '-O', 'quota', '-Q', 'usrquota,grpquota,prjquota', copy])
    p = run(['e2fsck', '-fy', copy], check_rc=False)
    check(p.returncode in (0, 1), 'e2fsck -fy of the recount exited %d: %s'
          % (p.returncode, p.stdout.decode(errors='replace')))
    fsck(copy)
    return usage(copy)


def checked_usage(img, d):
    """@img's usage (usage()) after e2fsck -fn, which must equal e2fsck's
    recount (e2fsck_recount())."""
    fsck(img)
    q = usage(img)
    problem = usage_diff('quota usage (space, inodes)', e2fsck_recount(img, d), q)
    if problem:
        raise TestFailure(problem)
    return q
