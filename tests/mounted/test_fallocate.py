#!/usr/bin/env python3
"""fallocate: allocate, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE; SEEK_DATA/HOLE."""

import errno
import mmap
import os

from uext4test import (FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE,
                       FALLOC_FL_ZERO_RANGE, SEEK_DATA, SEEK_HOLE, Mount,
                       check, debugfs_cat, eq, expect_errno, fallocate, fsck,
                       main, mkfs, pattern, read_file, test, workdir,
                       write_file)

MB = 1 << 20


@test
def allocate_modes():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            fd = os.open(m.path('a'), os.O_RDWR | os.O_CREAT, 0o644)
            fallocate(fd, 0, 0, MB)
            st = os.fstat(fd)
            eq(st.st_size, MB, 'size after fallocate')
            eq(st.st_blocks, MB // 512, 'blocks after fallocate 1 MiB')
            eq(os.pread(fd, MB, 0), bytes(MB), 'preallocated reads zeros')
            # Preallocated (unwritten) space is a hole for SEEK_DATA in ext4?
            # No: ext4 reports unwritten extents as data only when dirty;
            # only check that writing into it works.
            os.pwrite(fd, b'inside', 4096 * 10 + 5)
            want = bytearray(MB)
            want[40965:40971] = b'inside'
            eq(os.pread(fd, MB, 0), bytes(want), 'write into prealloc')
            fallocate(fd, FALLOC_FL_KEEP_SIZE, MB, MB)
            st = os.fstat(fd)
            eq(st.st_size, MB, 'size with KEEP_SIZE')
            eq(st.st_blocks, 2 * MB // 512, 'blocks with KEEP_SIZE')
            eq(os.pread(fd, 10, MB), b'', 'read past EOF after KEEP_SIZE')
            # Extending write over the KEEP_SIZE area.
            os.pwrite(fd, b'Z', MB + 100)
            eq(os.fstat(fd).st_size, MB + 101, 'size after write past EOF')
            eq(os.pread(fd, 101, MB), bytes(100) + b'Z', 'zeros then data')
            # Allocate inside existing data does not change it.
            fallocate(fd, 0, 40960, 8192)
            eq(os.pread(fd, 6, 40965), b'inside', 'data kept by fallocate')
            expect_errno(errno.EINVAL, fallocate, fd, 0, 0, 0)
            expect_errno(errno.EOPNOTSUPP, fallocate, fd,
                         FALLOC_FL_PUNCH_HOLE, 0, 4096)
            os.close(fd)
            want = bytes(want) + bytes(100) + b'Z'
        fsck(img)
        eq(debugfs_cat(img, '/a'), want, 'image content')


def read_direct(fd, size, off):
    """An O_DIRECT read: the kernel's page cache cannot answer it."""
    buf = mmap.mmap(-1, size)
    try:
        n = os.preadv(fd, [buf], off)
        return bytes(buf[:n])
    finally:
        buf.close()


@test
def read_after_write_into_unwritten():
    """Data written into an unwritten extent is logged with the metadata
    until the next commit, so the image file does not hold it yet: large
    reads, which otherwise splice file data straight from the image file,
    must see it before the commit and after."""
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img, opts=['commit=600']) as m:
            p = m.path('u')
            fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
            try:
                fallocate(fd, 0, 0, MB)
                data = pattern(8192, 5)
                with open(p, 'r+b', buffering=0) as f:
                    f.seek(12288)
                    f.write(data)
                want = bytearray(MB)
                want[12288:12288 + 8192] = data
                eq(read_direct(fd, MB, 0), bytes(want), 'before the commit')
                eq(read_direct(fd, 65536, 0), bytes(want[:65536]),
                   '64 KiB before the commit')
                os.fsync(fd)
                eq(read_direct(fd, MB, 0), bytes(want), 'after the commit')
            finally:
                os.close(fd)
        fsck(img)
        eq(debugfs_cat(img, '/u'), bytes(want), 'image content')


@test
def punch_hole():
    with workdir() as d:
        img = mkfs(d + '/img')
        data = pattern(4 * MB, 3)
        with Mount(img) as m:
            write_file(m.path('p'), data)
            fd = os.open(m.path('p'), os.O_RDWR)
            os.fsync(fd)
            blocks0 = os.fstat(fd).st_blocks
            mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
            fallocate(fd, mode, MB, MB)               # aligned
            fallocate(fd, mode, 3 * MB + 100, 9000)   # unaligned, 1 whole
            fallocate(fd, mode, 4 * MB - 10, 1000)    # across EOF
            want = bytearray(data)
            want[MB:2 * MB] = bytes(MB)
            want[3 * MB + 100:3 * MB + 9100] = bytes(9000)
            want[4 * MB - 10:] = bytes(10)
            st = os.fstat(fd)
            eq(st.st_size, 4 * MB, 'size kept by punch')
            eq(os.pread(fd, 4 * MB, 0), bytes(want), 'content after punch')
            eq(blocks0 - st.st_blocks, MB // 512 + 8,
               'blocks freed by punch (1 MiB + one whole 4 KiB block)')
            eq(os.lseek(fd, 0, SEEK_HOLE), MB, 'SEEK_HOLE from 0')
            eq(os.lseek(fd, MB, SEEK_DATA), 2 * MB, 'SEEK_DATA from hole')
            eq(os.lseek(fd, MB + 5, SEEK_HOLE), MB + 5, 'SEEK_HOLE in hole')
            eq(os.lseek(fd, 2 * MB, SEEK_HOLE), 3 * MB + 4096,
               'next hole is the punched whole block')
            eq(os.lseek(fd, 3 * MB + 4096, SEEK_DATA), 3 * MB + 8192,
               'data after the punched block')
            expect_errno(errno.ENXIO, os.lseek, fd, 4 * MB, SEEK_DATA)
            expect_errno(errno.ENXIO, os.lseek, fd, 4 * MB + 1, SEEK_HOLE)
            # Punch the whole file.
            fallocate(fd, mode, 0, 4 * MB)
            eq(os.fstat(fd).st_blocks, 0, 'blocks after punching all')
            eq(os.pread(fd, 4 * MB, 0), bytes(4 * MB), 'all zeros')
            expect_errno(errno.ENXIO, os.lseek, fd, 0, SEEK_DATA)
            os.close(fd)
        fsck(img)


@test
def zero_range():
    with workdir() as d:
        img = mkfs(d + '/img')
        data = pattern(MB, 5)
        with Mount(img) as m:
            write_file(m.path('z'), data)
            fd = os.open(m.path('z'), os.O_RDWR)
            fallocate(fd, FALLOC_FL_ZERO_RANGE, 4096, 8192)
            fallocate(fd, FALLOC_FL_ZERO_RANGE, 50001, 3)
            want = bytearray(data)
            want[4096:12288] = bytes(8192)
            want[50001:50004] = bytes(3)
            eq(os.pread(fd, MB + 1, 0), bytes(want), 'after zero range')
            # Past EOF without KEEP_SIZE extends, with KEEP_SIZE does not.
            fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                      MB - 10, 100)
            eq(os.fstat(fd).st_size, MB, 'ZERO_RANGE|KEEP_SIZE size')
            want[MB - 10:] = bytes(10)
            fallocate(fd, FALLOC_FL_ZERO_RANGE, MB, 5000)
            eq(os.fstat(fd).st_size, MB + 5000, 'ZERO_RANGE extends')
            want += bytes(5000)
            eq(os.pread(fd, 2 * MB, 0), bytes(want), 'final content')
            os.close(fd)
        fsck(img)
        with Mount(img) as m:
            eq(read_file(m.path('z')), bytes(want), 'after remount')
        fsck(img)


@test
def seek_data_hole_sparse():
    with workdir() as d:
        img = mkfs(d + '/img')
        with Mount(img) as m:
            fd = os.open(m.path('s'), os.O_RDWR | os.O_CREAT, 0o644)
            os.pwrite(fd, b'a' * 4096, 0)
            os.pwrite(fd, b'b' * 100, 10 * 4096 + 7)
            os.pwrite(fd, b'c', 100 * 4096)
            os.fsync(fd)
            size = 100 * 4096 + 1
            eq(os.lseek(fd, 0, SEEK_DATA), 0, 'data at 0')
            eq(os.lseek(fd, 0, SEEK_HOLE), 4096, 'hole after first block')
            eq(os.lseek(fd, 4096, SEEK_DATA), 10 * 4096, 'second extent')
            eq(os.lseek(fd, 10 * 4096 + 50, SEEK_HOLE), 11 * 4096,
               'hole after second')
            eq(os.lseek(fd, 11 * 4096, SEEK_DATA), 100 * 4096, 'last data')
            eq(os.lseek(fd, 100 * 4096, SEEK_HOLE), size, 'EOF hole')
            expect_errno(errno.ENXIO, os.lseek, fd, size, SEEK_DATA)
            # A file with no holes: hole at EOF.
            os.close(fd)
            write_file(m.path('full'), b'x' * 10000)
            fd = os.open(m.path('full'), os.O_RDONLY)
            eq(os.lseek(fd, 0, SEEK_HOLE), 10000, 'dense file hole at EOF')
            eq(os.lseek(fd, 9999, SEEK_DATA), 9999, 'dense data')
            os.close(fd)
            check(os.stat(m.path('s')).st_blocks == 3 * 8,
                  'sparse file blocks %d' % os.stat(m.path('s')).st_blocks)
        fsck(img)


@test
def block_mapped_unsupported_modes():
    """On a block-mapped (ext3) file the kernel supports PUNCH_HOLE but
    refuses ZERO_RANGE and preallocation with EOPNOTSUPP; a refused call
    must leave the data untouched."""
    with workdir() as d:
        img = mkfs(d + '/img', fstype='ext3')
        data = pattern(40000, 8)
        with Mount(img) as m:
            write_file(m.path('b'), data)
            fd = os.open(m.path('b'), os.O_RDWR)
            expect_errno(errno.EOPNOTSUPP, fallocate, fd,
                         FALLOC_FL_ZERO_RANGE, 30000, 100)
            expect_errno(errno.EOPNOTSUPP, fallocate, fd,
                         FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, 4096)
            expect_errno(errno.EOPNOTSUPP, fallocate, fd, 0, 40000, 8192)
            expect_errno(errno.EOPNOTSUPP, fallocate, fd,
                         FALLOC_FL_KEEP_SIZE, 40000, 8192)
            eq(os.pread(fd, 50000, 0), data, 'data after refused calls')
            eq(os.fstat(fd).st_size, 40000, 'size after refused calls')
            fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      4096, 8192)
            want = data[:4096] + bytes(8192) + data[12288:]
            eq(os.pread(fd, 50000, 0), want, 'after punch on ext3')
            os.close(fd)
        fsck(img)



@test
def block_mapped_punch_across_tree_levels():
    """Punches on a block-mapped (ext3, 4 KiB blocks) file that run from
    the direct blocks into the indirect tree, and from the indirect into
    the double-indirect level: every whole block in the range reads as
    zeros and is freed (libext2fs 1.47.0 alone keeps the indirect part)."""
    bs = 4096
    with workdir() as d:
        img = mkfs(d + '/img', fstype='ext3', opts=['-b', '4096'])
        data = pattern(1100 * bs, 9)
        with Mount(img) as m:
            write_file(m.path('b'), data)
            fd = os.open(m.path('b'), os.O_RDWR)
            os.fsync(fd)
            want = bytearray(data)
            mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
            for off, length in ((23222, 30528),          # blocks 6..12
                                (1030 * bs, 10 * bs),    # 1030..1039
                                (11 * bs, 2 * bs)):      # 11..12 again
                fallocate(fd, mode, off, length)
                want[off:off + length] = bytes(length)
            eq(os.pread(fd, len(data), 0), bytes(want), 'after the punches')
            os.close(fd)
        eq(debugfs_cat(img, '/b'), bytes(want), 'on disk')
        fsck(img)


if __name__ == '__main__':
    main()
