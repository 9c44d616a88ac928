#!/usr/bin/env python3
"""Large files: sparse (> 4 GiB), extent and block-mapped; the extents of
appends."""

import errno
import os

from uext4test import (SEEK_DATA, SEEK_HOLE, Mount, check, debugfs,
                       debugfs_cat, eq, expect_errno, fsck, inode_info, main,
                       mkfs, pattern, read_file, test, workdir)

GB = 1 << 30
MB = 1 << 20


def large_file_checks(img):
    data = pattern(MB, 77)
    off = 5 * GB
    with Mount(img) as m:
        fd = os.open(m.path('big'), os.O_RDWR | os.O_CREAT, 0o644)
        eq(os.pwrite(fd, data, off), MB, 'write at 5 GiB')
        # A write straddling the 4 GiB boundary.
        eq(os.pwrite(fd, b'<4G|4G>', 4 * GB - 4), 7, 'write across 4 GiB')
        os.fsync(fd)
        st = os.fstat(fd)
        eq(st.st_size, off + MB, 'size')
        check(MB // 512 + 8 <= st.st_blocks <= MB // 512 + 8 + 64,
              'st_blocks %d for 1 MiB + 1 block of data' % st.st_blocks)
        eq(os.pread(fd, MB, off), data, 'read back at 5 GiB')
        eq(os.pread(fd, 7, 4 * GB - 4), b'<4G|4G>', 'read across 4 GiB')
        eq(os.pread(fd, 4096, 0), bytes(4096), 'hole at 0')
        eq(os.pread(fd, 4096, 3 * GB), bytes(4096), 'hole at 3 GiB')
        eq(os.lseek(fd, 0, SEEK_DATA), 4 * GB - 4096, 'SEEK_DATA from 0')
        eq(os.lseek(fd, 4 * GB, SEEK_HOLE), 4 * GB + 4096,
           'SEEK_HOLE after the boundary block')
        eq(os.lseek(fd, 4 * GB + 4096, SEEK_DATA), off,
           'SEEK_DATA to 5 GiB')
        eq(os.lseek(fd, off, SEEK_HOLE), off + MB, 'SEEK_HOLE at EOF')
        expect_errno(errno.ENXIO, os.lseek, fd, off + MB, SEEK_DATA)
        os.close(fd)
        # Truncate down across 4 GiB keeps the low part.
        os.truncate(m.path('big'), 4 * GB + 1)
        fd = os.open(m.path('big'), os.O_RDONLY)
        eq(os.pread(fd, 100, 4 * GB - 4), b'<4G|4', 'after truncate to 4G+1')
        os.close(fd)
    fsck(img)
    info = inode_info(img, '/big')
    eq(info['size'], 4 * GB + 1, 'on-disk size')
    with Mount(img) as m:
        os.truncate(m.path('big'), 6 * GB)
        fd = os.open(m.path('big'), os.O_RDONLY)
        eq(os.pread(fd, MB, off), bytes(MB), 'old data not resurrected')
        os.close(fd)
    fsck(img)
    return info


@test
def large_sparse_extents():
    with workdir() as d:
        img = mkfs(d + '/img')
        info = large_file_checks(img)
        check(info['flags'] & 0x80000, 'ext4 large file uses extents')


@test
def large_sparse_block_mapped_ext3():
    with workdir() as d:
        img = mkfs(d + '/img', fstype='ext3')
        info = large_file_checks(img)
        check(not info['flags'] & 0x80000,
              'file on ext3 must be block-mapped (flags 0x%x)'
              % info['flags'])


@test
def appends_extend_the_last_extent():
    """A file written in 1 MiB pieces into free space gets one extent, as
    on ext4, not one per write (and no extent block to look up)."""
    with workdir() as d:
        img = mkfs(d + '/img', size='128M')
        data = pattern(24 << 20, 3)
        with Mount(img) as m:
            fd = os.open(m.path('f'), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                for off in range(0, len(data), 1 << 20):
                    os.pwrite(fd, data[off:off + (1 << 20)], off)
                os.fsync(fd)
            finally:
                os.close(fd)
            eq(read_file(m.path('f')), data, 'content')
        fsck(img)
        out = debugfs(img, 'ex /f')
        rows = [l for l in out.splitlines()[1:] if l.strip()]
        eq(len(rows), 1, 'extents of a file appended in 1 MiB pieces:\n' + out)
        check(rows[0].split()[0] == '0/', 'extent tree depth:\n' + out)
        eq(debugfs_cat(img, '/f'), data, 'image content')


@test
def file_size_limit():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            fd = os.open(m.path('f'), os.O_RDWR | os.O_CREAT, 0o644)
            # ext4 with 4 KiB blocks: max file size is 16 TiB - 4 KiB.
            limit = (1 << 44) - 4096
            eq(os.pwrite(fd, b'end', limit - 3), 3, 'write ending at limit')
            expect_errno(errno.EFBIG, os.pwrite, fd, b'x', limit)
            eq(os.fstat(fd).st_size, limit, 'size at limit')
            os.close(fd)
            os.unlink(m.path('f'))
        fsck(img)


if __name__ == '__main__':
    main()
