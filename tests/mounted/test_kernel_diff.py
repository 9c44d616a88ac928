#!/usr/bin/env python3
"""Differential test against the kernel: the same operation script runs on
a kernel loop mount of one image and on uext4 over an identical image; the
errnos, results, attributes, listings and on-disk inode state (debugfs
stat: type, mode, flags, links, size, blockcount, owner) must match.

Runs only as root where `mount -o loop` works, else exits 77.  Only freshly
made (and fsck-clean) images are ever loop-mounted.
"""

import errno
import hashlib
import os
import re
import shutil
import stat
import struct
import subprocess

from uext4test import require_kernel_loop_mount
from uext4test import kernel_mount, recorder
from uext4test import (FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE,
                       FALLOC_FL_ZERO_RANGE, RENAME_EXCHANGE, RENAME_NOREPLACE,
                       SEEK_DATA, SEEK_HOLE, Mount, SkipFile, TestFailure,
                       fallocate, fsck, main, mkfs, renameat2, run,
                       sb_field, test, workdir)


def write_at(path, data, off, flags=os.O_WRONLY | os.O_CREAT):
    fd = os.open(path, flags, 0o644)
    try:
        return os.pwrite(fd, data, off)
    finally:
        os.close(fd)


def falloc(path, mode, off, length):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fallocate(fd, mode, off, length)
    finally:
        os.close(fd)


def seek(path, off, whence):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, off, whence)
    finally:
        os.close(fd)


def fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# A file capability (VFS_CAP_REVISION_2, effective, CAP_NET_BIND_SERVICE).
CAP = struct.pack('<5I', 0x02000001, 1 << 10, 0, 0, 0)


def cap_after_writes(path):
    """Writes through one open file, with the capability set again in
    between: the kernel must not skip the second removal on the strength
    of the first (security.* setxattr resets its no-privileges mark, and
    with HANDLE_KILLPRIV_V2 uext4 relies on that)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.setxattr(path, 'security.capability', CAP)
        os.pwrite(fd, b'1', 0)
        first = xattr_or_errno(path, 'security.capability')
        os.setxattr(path, 'security.capability', CAP)
        os.pwrite(fd, b'2', 1)
        return first, xattr_or_errno(path, 'security.capability')
    finally:
        os.close(fd)


def xattr_or_errno(path, name):
    try:
        return os.getxattr(path, name)
    except OSError as e:
        return 'E' + errno.errorcode.get(e.errno, str(e.errno))


def digest(path):
    """Hash of (offset, block) for every non-zero 4 KiB block, plus the
    size: insensitive to whether zeros are holes, without reading all of a
    5 GiB sparse file."""
    h = hashlib.sha1()
    zero = bytes(4096)
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        h.update(b'%d;' % size)
        off = 0
        while off < size:
            try:
                off = os.lseek(fd, off, SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    break
                raise
            end = os.lseek(fd, off, SEEK_HOLE)
            off -= off % 4096
            while off < end:
                blk = os.pread(fd, 4096, off)
                if blk.rstrip(b'\0'):
                    h.update(b'%d:' % off + blk)
                off += 4096
    finally:
        os.close(fd)
    return h.hexdigest()


def script(root):
    """The operation script; returns a log of (step, result)."""
    log = []

    def P(*parts):
        return os.path.join(root, *parts)

    r = recorder(log)

    r('mkdir d', os.mkdir, P('d'))
    r('mkdir d/sub', os.mkdir, P('d', 'sub'), 0o750)
    r('mkdir e', os.mkdir, P('e'))
    r('mkdir many', os.mkdir, P('many'))
    for n in (0, 3, 60, 128, 129, 4096, 10000):
        r('create f%d' % n, write_at, P('f%d' % n), b'q' * n, 0)
    r('write 10', write_at, P('w10'), b'0123456789', 0)
    r('write 10@10', write_at, P('w10'), b'abcdefghij', 10)
    r('write 100@28', write_at, P('w10'), b'X' * 100, 28)
    r('sparse 1M', write_at, P('sparse'), b'S' * 5000, 1 << 20)
    r('sparse 0', write_at, P('sparse'), b's', 0)
    r('t3', write_at, P('t3'), b'abc', 0)
    r('t3 100', os.truncate, P('t3'), 100)
    r('t32', write_at, P('t32'), b'abc', 0)
    r('t32 2', os.truncate, P('t32'), 2)
    r('t32 3', os.truncate, P('t32'), 3)
    r('tshrink', write_at, P('tshrink'), b'z' * 9000, 0)
    r('tshrink 5000', os.truncate, P('tshrink'), 5000)
    r('fa', write_at, P('fa'), b'abc', 0)
    r('fa alloc', falloc, P('fa'), 0, 0, 8192)
    r('fa keep', falloc, P('fa'), FALLOC_FL_KEEP_SIZE, 8192, 16384)
    r('pu', write_at, P('pu'), b'p' * 40000, 0)
    r('pu punch', falloc, P('pu'),
      FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192)
    r('pu zero', falloc, P('pu'), FALLOC_FL_ZERO_RANGE, 30000, 100)
    r('pu zero past', falloc, P('pu'), FALLOC_FL_ZERO_RANGE, 40000, 5000)
    r('empty fa', falloc, P('efa'), FALLOC_FL_KEEP_SIZE, 0, 4096)
    r('huge', write_at, P('huge'), b'H' * 4096, 5 << 30)
    for name in ('sparse', 'pu', 'huge'):
        r('fsync ' + name, fsync, P(name))
    r('seek data 0', seek, P('sparse'), 0, SEEK_DATA)
    r('seek hole 0', seek, P('sparse'), 0, SEEK_HOLE)
    r('seek data 5000', seek, P('sparse'), 5000, SEEK_DATA)
    r('seek hole 1M', seek, P('sparse'), 1 << 20, SEEK_HOLE)
    r('seek data eof', seek, P('sparse'), (1 << 20) + 5000, SEEK_DATA)
    r('seek pu hole', seek, P('pu'), 0, SEEK_HOLE)
    r('seek huge data', seek, P('huge'), 0, SEEK_DATA)
    r('symlink 10', os.symlink, 'x' * 10, P('s10'))
    r('symlink 59', os.symlink, 'x' * 59, P('s59'))
    r('symlink 60', os.symlink, 'x' * 60, P('s60'))
    r('symlink 300', os.symlink, 'y' * 300, P('s300'))
    r('mkfifo', os.mkfifo, P('fifo'))
    r('mknod chr', os.mknod, P('chr'), stat.S_IFCHR | 0o600,
      os.makedev(4, 5))
    r('mknod blk', os.mknod, P('blk'), stat.S_IFBLK | 0o600,
      os.makedev(7, 0))
    r('link', os.link, P('f3'), P('d', 'f3link'))
    r('chmod', os.chmod, P('f60'), 0o4755)
    r('chown', os.chown, P('f128'), 1000, 1001)
    r('chmod after chown', os.chmod, P('f128'), 0o6775)
    r('chown kill', os.chown, P('f128'), 1002, -1)
    r('stat f128', os.stat, P('f128'))
    r('utime', os.utime, P('f129'), ns=(1, 2))
    r('setxattr', os.setxattr, P('f3'), 'user.a', b'small')
    r('setxattr big', os.setxattr, P('f4096'), 'user.big', b'B' * 3000)
    r('setxattr dir', os.setxattr, P('d'), 'user.d', b'dir')
    r('setxattr inline', os.setxattr, P('f0'), 'user.i', b'i' * 40)
    r('getxattr missing', os.getxattr, P('f3'), 'user.none')
    r('setxattr create', os.setxattr, P('f3'), 'user.a', b'x',
      os.XATTR_CREATE)
    r('setxattr replace', os.setxattr, P('f3'), 'user.b', b'x',
      os.XATTR_REPLACE)
    r('removexattr', os.removexattr, P('f4096'), 'user.big')
    r('setxattr symlink', os.setxattr, P('s10'), 'user.x', b'',
      0, follow_symlinks=False)
    # Writing, truncating or chowning a file drops its capability, even
    # as root; root keeps setuid/setgid (CAP_FSETID).
    r('cap file', write_at, P('cap'), b'c' * 100, 0)
    r('cap chmod', os.chmod, P('cap'), 0o6755)
    r('cap set', os.setxattr, P('cap'), 'security.capability', CAP)
    r('cap get', os.getxattr, P('cap'), 'security.capability')
    r('cap write', write_at, P('cap'), b'C', 50)
    r('cap get after write', os.getxattr, P('cap'), 'security.capability')
    r('cap writes', cap_after_writes, P('cap'))
    r('cap set 2', os.setxattr, P('cap'), 'security.capability', CAP)
    r('cap truncate', os.truncate, P('cap'), 10)
    r('cap get after truncate', os.getxattr, P('cap'), 'security.capability')
    r('cap set 3', os.setxattr, P('cap'), 'security.capability', CAP)
    r('cap chown', os.chown, P('cap'), 1000, 1000)
    r('cap get after chown', os.getxattr, P('cap'), 'security.capability')
    r('cap stat', os.stat, P('cap'))
    # In-inode xattrs share space with inline data: whether the append
    # below still fits inline is the kernel's call.
    r('ix write', write_at, P('ix'), b'i' * 50, 0)
    r('ix xattr', os.setxattr, P('ix'), 'user.pad', b'p' * 60)
    r('ix append', write_at, P('ix'), b'j' * 30, 50)
    r('iy write', write_at, P('iy'), b'y' * 100, 0)
    r('iy xattr', os.setxattr, P('iy'), 'user.pad', b'p' * 60)
    r('iz xattr first', write_at, P('iz'), b'', 0)
    r('iz xattr', os.setxattr, P('iz'), 'user.pad', b'p' * 80)
    r('iz write', write_at, P('iz'), b'z' * 100, 0)
    # The calls that fail here (EEXIST, ENOTEMPTY, EISDIR, ...) are
    # tests/scenarios/t4010-kernel-diff-errors.scn, on all three backends.
    r('rename file', os.rename, P('f10000'), P('d', 'moved'))
    r('rename dir across', os.rename, P('d', 'sub'), P('e', 'sub'))
    r('exchange', renameat2, P('e', 'sub'), P('d', 'moved'),
      RENAME_EXCHANGE)
    r('noreplace ok', renameat2, P('f0'), P('f0new'), RENAME_NOREPLACE)
    r('rename over file', os.rename, P('f129'), P('f128'))
    r('rename hardlink same', os.rename, P('f3'), P('d', 'f3link'))
    for i in range(50):
        r('many %d' % i, write_at, P('many', 'entry%02d' % i), b'%d' % i, 0)
    for i in range(0, 50, 3):
        r('unlink many %d' % i, os.unlink, P('many', 'entry%02d' % i))
    r('mkdir big', os.mkdir, P('big'))
    for i in range(400):
        r('big %d' % i, os.mknod, P('big', 'e%03d' % i), stat.S_IFREG | 0o644)
    for i in range(10, 400):
        r('unlink big %d' % i, os.unlink, P('big', 'e%03d' % i))
    r('mkdir small dir', os.mkdir, P('small'))
    r('small a', write_at, P('small', 'a'), b'a', 0)
    r('small sub', os.mkdir, P('small', 'sub'))
    r('unlink small a', os.unlink, P('small', 'a'))
    r('rmdir e', os.rmdir, P('e'))
    r('unlink f4096', os.unlink, P('f4096'))
    return log


def snapshot(root):
    """Attributes, link targets, contents, xattrs and listings by path."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in [''] + sorted(dirnames + filenames):
            if name == '' and dirpath != root:
                continue
            p = os.path.join(dirpath, name) if name else dirpath
            rel = os.path.relpath(p, root)
            if rel.startswith('lost+found'):
                continue
            st = os.lstat(p)
            ent = {'mode': stat.filemode(st.st_mode), 'nlink': st.st_nlink,
                   'size': st.st_size, 'uid': st.st_uid, 'gid': st.st_gid,
                   'rdev': st.st_rdev}
            if stat.S_ISLNK(st.st_mode):
                ent['target'] = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                ent['sha1'] = digest(p)
            elif stat.S_ISDIR(st.st_mode):
                ent['list'] = sorted(os.listdir(p))
            if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
                ent['xattrs'] = sorted(
                    (k, os.getxattr(p, k)) for k in os.listxattr(p))
            out[rel] = ent
    return out


def disk_state(img, paths):
    """debugfs stat of each path, in one debugfs run."""
    cmds = os.path.join(os.path.dirname(img), 'debugfs.cmds')
    with open(cmds, 'w') as f:
        for rel in paths:
            f.write('stat "/%s"\n' % ('' if rel == '.' else rel))
    out = run(['debugfs', '-f', cmds, img]).stdout.decode(errors='replace')
    bsize = int(re.search(r'Block size:\s+(\d+)', run(
        ['dumpe2fs', '-h', img]).stdout.decode()).group(1))
    res = {}
    sections = re.split(r'^debugfs: stat "/(.*)"\n', out, flags=re.M)
    for i in range(1, len(sections), 2):
        rel = sections[i] or '.'
        text = sections[i + 1]
        m = re.search(r'Type: (.+?)\s+Mode:\s+(\d+)\s+Flags: (0x[0-9a-f]+)',
                      text)
        if not m:
            res[rel] = {'unparsed': text[:200]}
            continue
        ent = {'type': m.group(1), 'mode': m.group(2), 'flags': m.group(3)}
        m = re.search(r'User:\s+(\d+)\s+Group:\s+(\d+)', text)
        ent['owner'] = (m.group(1), m.group(2))
        ent['size'] = re.search(r'Size: (\d+)', text).group(1)
        m = re.search(r'Links: (\d+)\s+Blockcount: (\d+)', text)
        ent['links'] = m.group(1)
        # Extent-tree index blocks (ETB) depend on how the kernel happened to
        # split extents; count data, xattr and indirect blocks only.
        etb = len(re.findall(r'\(ETB\d+\)', text))
        ent['blockcount'] = int(m.group(2)) - etb * bsize // 512
        m = re.search(r'Size of inline data: (\d+)', text)
        ent['inline_size'] = m.group(1) if m else None
        res[rel] = ent
    return res


def diff(what, a, b):
    lines = []
    if isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                lines.append('  step %d: kernel %r, uext4 %r' % (i, x, y))
        if len(a) != len(b):
            lines.append('  lengths differ: %d vs %d' % (len(a), len(b)))
    else:
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                x, y = a.get(k), b.get(k)
                if isinstance(x, dict) and isinstance(y, dict):
                    x = {f: v for f, v in x.items() if y.get(f) != v}
                    y = {f: v for f, v in y.items() if f in x}
                lines.append('  %s: kernel %r, uext4 %r' % (k, x, y))
    if lines:
        return '%s differ:\n%s' % (what, '\n'.join(lines[:40]))
    return None


def compare(features=(), fstype='ext4', opts=()):
    with workdir() as d:
        kimg = mkfs(d + '/kernel.img', fstype=fstype, features=features,
                    opts=opts)
        uimg = d + '/uext4.img'
        shutil.copyfile(kimg, uimg)
        fsck(kimg)
        kmnt = d + '/kmnt'
        with kernel_mount(kimg, kmnt):
            klog = script(kmnt)
            os.sync()
            ksnap = snapshot(kmnt)
        fsck(kimg)
        with Mount(uimg) as m:
            ulog = script(m.mnt)
            os.sync()
            usnap = snapshot(m.mnt)
        fsck(uimg)
        problems = [diff('operation results', klog, ulog),
                    diff('attributes through the mount', ksnap, usnap)]
        paths = sorted(set(ksnap) | set(usnap))
        problems.append(diff('on-disk inodes (debugfs stat)',
                             disk_state(kimg, paths),
                             disk_state(uimg, paths)))
        kfree = sb_field(kimg, 'Free inodes')
        ufree = sb_field(uimg, 'Free inodes')
        if kfree != ufree:
            problems.append('free inodes after unmount: kernel %s, uext4 %s'
                            % (kfree, ufree))
        problems = [p for p in problems if p]
        if problems:
            raise TestFailure('\n'.join(problems))


def setup():
    require_kernel_loop_mount()


@test
def kernel_diff_ext4():
    compare()


@test
def kernel_diff_inline_data():
    compare(features=['inline_data'])


@test
def kernel_diff_ext3():
    compare(fstype='ext3')


@test
def kernel_diff_128_byte_inodes():
    compare(opts=['-I', '128'])


if __name__ == '__main__':
    main(setup)
