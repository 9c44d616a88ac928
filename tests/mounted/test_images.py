#!/usr/bin/env python3
"""Image flavours: ext2, ext3 (block-mapped files), 64bit+metadata_csum,
128-byte inodes, 1 KiB blocks, inline_data."""

import hashlib
import os

from uext4test import (EXT4_EXTENTS_FL, EXT4_INLINE_DATA_FL, Mount, check,
                       debugfs_cat, eq, fallocate, fsck, inode_info, main,
                       mkfs, pattern, read_file, test, workdir, write_file)

SIZES = [0, 1, 100, 4096, 12 * 4096 + 1, 50000, 1100 * 4096 + 3,
         5 * (1 << 20) + 17]


def exercise(img, expect_extents, block=4096):
    """Write files of many sizes, a tree, xattrs, links; verify through
    the mount, after remount, and in the image itself."""
    files = {}
    with Mount(img) as m:
        os.makedirs(m.path('tree', 'a', 'b'))
        for i, n in enumerate(SIZES):
            data = pattern(n, 50 + i)
            p = m.path('tree', 'a', 'f%d' % n)
            write_file(p, data)
            files['/tree/a/f%d' % n] = data
        # A file written backwards in block-sized pieces (indirect blocks
        # allocated out of order on block-mapped files).
        data = pattern(40 * block, 99)
        fd = os.open(m.path('tree', 'back'), os.O_WRONLY | os.O_CREAT, 0o644)
        for k in range(39, -1, -1):
            os.pwrite(fd, data[k * block:(k + 1) * block], k * block)
        os.close(fd)
        files['/tree/back'] = data
        os.link(m.path('tree', 'back'), m.path('tree', 'a', 'b', 'hard'))
        os.symlink('../../back', m.path('tree', 'a', 'b', 'sym'))
        os.setxattr(m.path('tree', 'back'), 'user.k', b'v' * 300)
        for i in range(300):
            write_file(m.path('tree', 'a', 'b', 'e%03d' % i), b'%d' % i)
        for path, data in files.items():
            eq(read_file(m.mnt + path), data, 'read ' + path)
        os.truncate(m.path('tree', 'a', 'f50000'), 20000)
        files['/tree/a/f50000'] = files['/tree/a/f50000'][:20000]
        os.unlink(m.path('tree', 'a', 'f4096'))
        del files['/tree/a/f4096']
    fsck(img)
    for path, data in files.items():
        got = debugfs_cat(img, path)
        eq(hashlib.sha1(got).hexdigest(), hashlib.sha1(data).hexdigest(),
           'image content of ' + path)
        if len(data) > 0:
            info = inode_info(img, path)
            if expect_extents:
                check(info['flags'] & (EXT4_EXTENTS_FL | EXT4_INLINE_DATA_FL),
                      '%s: no extents flag (0x%x)' % (path, info['flags']))
            else:
                check(not info['flags'] & EXT4_EXTENTS_FL,
                      '%s: extents on a non-extent image (0x%x)'
                      % (path, info['flags']))
    with Mount(img) as m:
        for path, data in files.items():
            eq(read_file(m.mnt + path), data, 'after remount ' + path)
        eq(os.readlink(m.path('tree', 'a', 'b', 'sym')), '../../back',
           'symlink')
        eq(os.stat(m.path('tree', 'back')).st_nlink, 2, 'hard link count')
        eq(os.getxattr(m.path('tree', 'back'), 'user.k'), b'v' * 300,
           'xattr')
        eq(len(os.listdir(m.path('tree', 'a', 'b'))), 302, 'dir entries')
        for i in range(300):
            os.unlink(m.path('tree', 'a', 'b', 'e%03d' % i))
    fsck(img)


@test
def ext2_image():
    with workdir() as d:
        img = mkfs(d + '/img', fstype='ext2')
        exercise(img, expect_extents=False)


@test
def ext3_image():
    with workdir() as d:
        img = mkfs(d + '/img', fstype='ext3')
        exercise(img, expect_extents=False)


@test
def ext4_64bit_metadata_csum():
    with workdir() as d:
        img = mkfs(d + '/img', features=['64bit', 'metadata_csum',
                                         'flex_bg', 'huge_file', 'dir_nlink',
                                         'extra_isize', '^has_journal'])
        exercise(img, expect_extents=True)


@test
def ext4_no_csum_32bit():
    with workdir() as d:
        img = mkfs(d + '/img', features=['^64bit', '^metadata_csum'])
        exercise(img, expect_extents=True)


@test
def ext4_1k_blocks():
    with workdir() as d:
        img = mkfs(d + '/img', opts=['-b', '1024'])
        exercise(img, expect_extents=True, block=1024)


@test
def ext4_128_byte_inodes():
    with workdir() as d:
        img = mkfs(d + '/img', opts=['-I', '128'])
        exercise(img, expect_extents=True)
        with Mount(img) as m:
            write_file(m.path('t'), b'')
            os.utime(m.path('t'), ns=(1000000000123, 2000000000456))
            st = os.stat(m.path('t'))
            # 128-byte inodes have no nanosecond fields.
            eq((st.st_atime_ns, st.st_mtime_ns), (10**12, 2 * 10**12),
               'timestamps truncated to seconds')
        fsck(img)
        with Mount(img) as m:
            st = os.stat(m.path('t'))
            eq((st.st_atime_ns, st.st_mtime_ns), (10**12, 2 * 10**12),
               'timestamps after remount')
        fsck(img)


def inline_flag(img, path):
    return bool(inode_info(img, path)['flags'] & EXT4_INLINE_DATA_FL)


@test
def inline_data():
    with workdir() as d:
        img = mkfs(d + '/img', features=['inline_data'])
        with Mount(img) as m:
            write_file(m.path('small'), b'tiny file')
            write_file(m.path('s60'), pattern(60))
            write_file(m.path('s128'), pattern(128))
            write_file(m.path('s129'), pattern(129))
            write_file(m.path('empty'), b'')
            # grows inline past i_block into system.data, then converts
            write_file(m.path('grow'), b'0123456789')
            with open(m.path('grow'), 'r+b') as f:
                f.seek(10)
                f.write(b'abcdefghij')               # offset 10 of 10 bytes
            write_file(m.path('conv'), b'x' * 100)
            with open(m.path('conv'), 'r+b') as f:
                f.seek(100)
                f.write(b'y' * 100)                  # ends at 200: converts
            write_file(m.path('t3'), b'abc')
            os.truncate(m.path('t3'), 100)           # converts (kernel)
            write_file(m.path('t32'), b'abc')
            os.truncate(m.path('t32'), 2)
            os.truncate(m.path('t32'), 3)            # stays inline
            write_file(m.path('fa'), b'abc')
            fd = os.open(m.path('fa'), os.O_RDWR)
            fallocate(fd, 0, 0, 8192)                # converts
            os.close(fd)
            os.mkdir(m.path('dir'))
            os.mkdir(m.path('bigdir'))
            for i in range(60):
                write_file(m.path('bigdir', 'name%02d' % i), b'')
            eq(read_file(m.path('grow')), b'0123456789abcdefghij', 'grow')
            eq(read_file(m.path('conv')), b'x' * 100 + b'y' * 100, 'conv')
            eq(read_file(m.path('t3')), b'abc' + bytes(97), 't3')
            eq(read_file(m.path('t32')), b'ab\0', 't32')
            eq(read_file(m.path('fa')), b'abc' + bytes(8189), 'fa content')
            eq(os.stat(m.path('fa')).st_size, 8192, 'fa size')
        fsck(img)
        expect = {
            '/small': True, '/s60': True, '/s128': True, '/s129': False,
            '/empty': False, '/grow': True, '/conv': False, '/t3': False,
            '/t32': True, '/fa': False, '/dir': True, '/bigdir': False,
        }
        got = {p: inline_flag(img, p) for p in expect}
        eq(got, expect, 'inline flags (0x10000000) per file')
        check(inode_info(img, '/empty')['flags'] & EXT4_EXTENTS_FL,
              'new empty file has the extents flag')
        eq(inode_info(img, '/empty')['blockcount'], 0, 'empty file blocks')
        eq(inode_info(img, '/small')['blockcount'], 0, 'inline file blocks')
        for path, want in [('/small', b'tiny file'), ('/s128', pattern(128)),
                           ('/grow', b'0123456789abcdefghij')]:
            # debugfs 1.47 `cat` prints the whole inline capacity, so
            # compare i_size and the first i_size bytes.
            eq(inode_info(img, path)['size'], len(want), 'i_size of ' + path)
            eq(debugfs_cat(img, path)[:len(want)], want,
               'image content of ' + path)
        with Mount(img) as m:
            eq(read_file(m.path('s128')), pattern(128), 's128 remount')
            eq(sorted(os.listdir(m.path('bigdir'))),
               ['name%02d' % i for i in range(60)], 'bigdir listing')
            eq(os.listdir(m.path('dir')), [], 'inline dir listing')
            write_file(m.path('dir', 'a'), b'A')
            os.mkdir(m.path('dir', 'sub'))
            eq(sorted(os.listdir(m.path('dir'))), ['a', 'sub'],
               'inline dir after adding')
            eq(os.stat(m.path('dir')).st_nlink, 3, 'inline dir nlink')
            os.unlink(m.path('small'))
            os.truncate(m.path('s128'), 5)
            eq(read_file(m.path('s128')), pattern(5), 'shrunk inline')
        fsck(img)
        check(inline_flag(img, '/dir'), '/dir still inline after 2 entries')
        check(inline_flag(img, '/s128'), 'shrinking truncate keeps inline')


def inline_mmap(opts):
    import mmap
    with workdir() as d:
        img = mkfs(d + '/img', features=['inline_data'])
        with Mount(img, opts=opts) as m:
            p = m.path('mm')
            write_file(p, b'abcdefghijklmnopqrst')           # 20 bytes
            fd = os.open(p, os.O_RDWR)
            mm = mmap.mmap(fd, 20, mmap.MAP_SHARED,
                           mmap.PROT_READ | mmap.PROT_WRITE)
            mm[0:5] = b'HELLO'
            mm[19:20] = b'!'
            mm.flush()
            mm.close()
            os.close(fd)
            eq(read_file(p), b'HELLOfghijklmnopqrs!', 'content after mmap')
            eq(os.stat(p).st_size, 20, 'size after mmap')
        fsck(img)
        eq(inode_info(img, '/mm')['size'], 20, 'on-disk size')
        eq(debugfs_cat(img, '/mm')[:20], b'HELLOfghijklmnopqrs!',
           'on-disk content')
        return inline_flag(img, '/mm')


@test
def inline_mmap_keep():
    """design.md rule 3: by default mmap writeback keeps the inode inline."""
    check(inline_mmap([]), 'mmap writeback converted an inline inode')


@test
def inline_mmap_convert():
    """design.md rule 6: inline_mmap=convert converts as Linux does."""
    check(not inline_mmap(['inline_mmap=convert']),
          'inline_mmap=convert left the inode inline')


if __name__ == '__main__':
    main()
