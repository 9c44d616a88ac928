#!/usr/bin/env python3
"""Images that lie about the orphan file and the quota files.

Each image is made by mke2fs, then one structure is changed by hand: an
extent moved past the end of the file system (the image file made longer so
that the bytes exist), or a quota file header given counts the kernel
refuses (v2_read_file_info). A read-write mount must refuse with a message
naming the structure, and never read or write the image file's bytes past
the file system. These images are deliberately damaged: never loop-mounted,
and e2fsck -fn is run only on the ones the test repairs back.
"""
import os
import struct

from uext4test import (Mount, check, debugfs, eq, fsck, inode_info, main,
                       mkfs, pattern, run, run_daemon, test, workdir)

BS = 4096
ORPHAN_MAGIC = 0x0b10ca04


def blocks_count(img):
    return os.path.getsize(img) // BS


def move_first_extent(img, ino, new_start):
    """Point inode @ino's first extent (in i_block: the 12-byte header,
    then ee_block, ee_len/ee_start_hi, ee_start_lo) at @new_start; returns
    (old start, length)."""
    text = inode_info(img, '<%d>' % ino)['text']
    ext = text.split('EXTENTS:')[1].split()[0]          # (0-31):2069-2100
    first, last = (int(x) for x in ext.split(':')[1].split('-'))
    debugfs(img, 'sif <%d> block[5] %d' % (ino, new_start), write=True)
    debugfs(img, 'sif <%d> block[4] %d' % (ino, last - first + 1), write=True)
    return first, last - first + 1


def grow_past_fs(img, nblocks):
    """Bytes past the file system's last block, as a longer image file (a
    partition larger than its file system) has them."""
    end = blocks_count(img)
    with open(img, 'r+b') as f:
        f.truncate((end + nblocks) * BS)
    return end


def tail_bytes(img, start):
    with open(img, 'rb') as f:
        f.seek(start * BS)
        return f.read()


@test
def orphan_file_block_outside_fs():
    """The orphan file's extent points past the file system, at blocks that
    hold a valid orphan block (magic, an entry naming a file in use): the
    slots would be zeroed there, in bytes that are no block of the image.
    Refused: 'outside the file system', naming the orphan file; the bytes
    past the file system unchanged."""
    with workdir() as d:
        img = mkfs(d + '/img', features=['orphan_file', '^metadata_csum'])
        src = d + '/data'
        with open(src, 'wb') as f:
            f.write(pattern(50000))
        debugfs(img, 'write %s f' % src, write=True)
        fsck(img)
        ino = inode_info(img, '/f')['ino']
        of_ino = 12
        end = blocks_count(img)
        _, n = move_first_extent(img, of_ino, end)
        grow_past_fs(img, n)
        with open(img, 'r+b') as f:
            for b in range(n):
                f.seek((end + b) * BS)
                f.write(struct.pack('<I', ino))
                f.seek((end + b + 1) * BS - 8)
                f.write(struct.pack('<I', ORPHAN_MAGIC))
        debugfs(img, 'feature orphan_present', write=True)
        before = tail_bytes(img, end)
        rc, out = run_daemon(img, d + '/mnt')
        check(rc != 0 and 'orphan file' in out and
              'outside the file system' in out,
              'uext4 exited %d: %s' % (rc, out))
        eq(tail_bytes(img, end), before, 'bytes past the file system')
        # Reading needs no orphan file: a read-only mount serves the file.
        with Mount(img, d + '/mnt', opts=['ro']) as m:
            eq(open(m.path('f'), 'rb').read(), pattern(50000), 'file f')
        eq(tail_bytes(img, end), before, 'bytes past the file system')


@test
def orphan_file_names_quota_file():
    """An orphan file entry naming the project quota file, an ordinary
    inode number (not below s_first_ino) given blocks past its i_size
    (debugfs fallocate): as an orphan it would be truncated, its blocks
    freed. The entry is dropped with a
    warning, the quota file keeps its blocks; e2fsck -fn clean."""
    with workdir() as d:
        img = mkfs(d + '/img', features=['orphan_file', '^metadata_csum',
                                         'quota', 'project'],
                   opts=['-I', '256'])
        pq = int(run(['dumpe2fs', '-h', img]).stdout.decode().split(
            'Project quota inode:')[1].split()[0])
        check(pq >= 11, 'project quota inode %d is reserved' % pq)
        # Blocks past its i_size (preallocated, as e2fsck accepts).
        debugfs(img, 'fallocate <%d> 2 3' % pq, write=True)
        info = inode_info(img, '<%d>' % pq)
        check('[u]' in info['text'], 'no blocks past EOF: %s' % info['text'])
        fsck(img)
        of_ino = int(run(['dumpe2fs', '-h', img]).stdout.decode().split(
            'Orphan file inode:')[1].split()[0])
        pblk = int(run(['debugfs', '-R', 'bmap <%d> 0' % of_ino, img]).stdout.split()[0])
        with open(img, 'r+b') as f:
            f.seek(pblk * BS)
            f.write(struct.pack('<I', pq))
        debugfs(img, 'feature orphan_present', write=True)
        with Mount(img, d + '/mnt') as m:
            os.listdir(m.mnt)
        check('names inode %d' % pq in m.log() and 'dropped' in m.log(),
              'no warning for the entry: %s' % m.log())
        eq(inode_info(img, '<%d>' % pq)['blockcount'], info['blockcount'],
           'the project quota file\'s block count')
        fsck(img)


@test
def orphan_list_names_free_inode():
    """s_last_orphan naming a free inode, and an orphan whose i_dtime (the
    list's link) names itself: the list is dropped at the free inode with a
    warning, after freeing the one real orphan. Before, a free inode at the
    head stayed there once per inode of the file system and was counted as
    freed each time ('freed 16385 orphan inodes'). e2fsck -fn clean after."""
    with workdir() as d:
        img = mkfs(d + '/img')
        debugfs(img, 'ssv last_orphan 20', write=True)
        with Mount(img, d + '/mnt') as m:
            os.listdir(m.mnt)
        check('orphan list damaged at inode 20' in m.log() and
              'freed' not in m.log(), 'log: %s' % m.log())
        fsck(img)
        src = d + '/data'
        with open(src, 'wb') as f:
            f.write(pattern(20000))
        debugfs(img, 'write %s f' % src, write=True)
        ino = inode_info(img, '/f')['ino']
        free_before = int(run(['dumpe2fs', '-h', img]).stdout.decode().split(
            'Free inodes:')[1].split()[0])
        debugfs(img, 'unlink /f', write=True)
        debugfs(img, 'sif <%d> links_count 0' % ino, write=True)
        debugfs(img, 'sif <%d> dtime %d' % (ino, ino), write=True)
        debugfs(img, 'ssv last_orphan %d' % ino, write=True)
        with Mount(img, d + '/mnt') as m:
            eq(os.statvfs(m.mnt).f_ffree, free_before + 1, 'free inodes')
        check('freed 1 orphan inode ' in m.log() and
              'orphan list damaged at inode %d' % ino in m.log(),
              'log: %s' % m.log())
        fsck(img)


def itable_block(img):
    out = run(['dumpe2fs', img]).stdout.decode()
    return int(out.split('Inode table at ')[1].split('-')[0])


def bitmap_and_itable(img):
    """Group 0's block bitmap and the first 8 blocks of its inode table."""
    out = run(['dumpe2fs', img]).stdout.decode()
    bb = int(out.split('Block bitmap at ')[1].split()[0])
    it = itable_block(img)
    with open(img, 'rb') as f:
        f.seek(bb * BS)
        bits = f.read(BS)
        f.seek(it * BS)
        return bits + f.read(8 * BS)


@test
def orphan_maps_metadata():
    """An orphan on the s_last_orphan list whose extent maps group 0's
    inode table: releasing it marked the inode table's blocks free
    (e2fsck: 'Block bitmap differences: +(41--45)'), for the next
    allocation to write over. Refused, naming the inode and the block; the
    block bitmap and inode table not changed by the attempt."""
    with workdir() as d:
        img = mkfs(d + '/img', features=['^metadata_csum'])
        src = d + '/data'
        with open(src, 'wb') as f:
            f.write(pattern(20000))
        debugfs(img, 'write %s f' % src, write=True)
        ino = inode_info(img, '/f')['ino']
        it = itable_block(img)
        debugfs(img, 'unlink /f', write=True)
        debugfs(img, 'sif <%d> links_count 0' % ino, write=True)
        debugfs(img, 'sif <%d> block[5] %d' % (ino, it), write=True)
        debugfs(img, 'ssv last_orphan %d' % ino, write=True)
        before = bitmap_and_itable(img)
        rc, out = run_daemon(img, d + '/mnt')
        check(rc != 0 and 'orphan inode %d maps block %d' % (ino, it) in out and
              'metadata' in out, 'uext4 exited %d: %s' % (rc, out))
        check(bitmap_and_itable(img) == before,
              'the block bitmap or the inode table changed')


@test
def orphan_file_maps_metadata():
    """The orphan file's extent maps group 0's inode table, whose last
    bytes (in an unused inode) carry the orphan block magic: the root
    inode's first 4 bytes read as an entry naming no valid inode, and the
    slot was zeroed in place: the root directory's mode gone. Refused,
    naming the orphan file block; the inode table not changed."""
    with workdir() as d:
        img = mkfs(d + '/img', features=['orphan_file', '^metadata_csum'])
        it = itable_block(img)
        move_first_extent(img, 12, it)
        with open(img, 'r+b') as f:
            f.seek((it + 1) * BS - 8)
            f.write(struct.pack('<I', ORPHAN_MAGIC))
        debugfs(img, 'feature orphan_present', write=True)
        before = bitmap_and_itable(img)
        rc, out = run_daemon(img, d + '/mnt')
        check(rc != 0 and 'orphan file (inode 12) maps to block %d' % it in out
              and 'metadata' in out, 'uext4 exited %d: %s' % (rc, out))
        check(bitmap_and_itable(img) == before,
              'the block bitmap or the inode table changed')


def quota_header(img, ino):
    pblk = int(run(['debugfs', '-R', 'bmap <%d> 0' % ino, img]).stdout.split()[0])
    with open(img, 'rb') as f:
        f.seek(pblk * BS)
        return pblk, bytearray(f.read(1024))


@test
def quota_header_counts_lie():
    """A user quota file header whose block count is past the file's end
    (up to 2^32-1, where the next block number would wrap to 0 and the file
    grow to 4 TiB), or whose free lists start at or past the count: the
    kernel refuses these; so does a read-write mount here, naming the quota
    file and the field. The untouched image mounts and stays clean."""
    with workdir() as d:
        img = mkfs(d + '/img', features=['quota'])
        pblk, hdr = quota_header(img, 3)
        size = inode_info(img, '<3>')['size']
        blocks = struct.unpack_from('<I', hdr, 20)[0]
        check(blocks * 1024 <= size and blocks > 1,
              'mke2fs header: %d blocks, size %d' % (blocks, size))
        cases = [(20, 0xffffffff, 'block count'),
                 (20, size // 1024 + 1, 'block count'),
                 (24, blocks, 'free block list'),
                 (28, blocks + 7, 'free entries')]
        for off, val, what in cases:
            bad = d + '/bad'
            run(['cp', '--sparse=always', img, bad])
            with open(bad, 'r+b') as f:
                f.seek(pblk * BS + off)
                f.write(struct.pack('<I', val))
            rc, out = run_daemon(bad, d + '/mnt')
            check(rc != 0 and 'quota file (inode 3)' in out and what in out,
                  'header offset %d = %#x: uext4 exited %d: %s'
                  % (off, val, rc, out))
        with Mount(img, d + '/mnt') as m:
            with open(m.path('f'), 'wb') as f:
                f.write(pattern(9000))
        fsck(img)


@test
def quota_file_block_outside_fs():
    """The user quota file's extent points past the file system, where a
    copy of its blocks is put: a read-write mount would read the quota
    tree there and write usage into bytes that are no block of the image.
    Refused, naming the quota file; the bytes past the file system
    unchanged."""
    with workdir() as d:
        img = mkfs(d + '/img', features=['quota'])
        end = blocks_count(img)
        old, n = move_first_extent(img, 3, end)
        grow_past_fs(img, n)
        with open(img, 'r+b') as f:
            f.seek(old * BS)
            blocks = f.read(n * BS)
            f.seek(end * BS)
            f.write(blocks)
        before = tail_bytes(img, end)
        rc, out = run_daemon(img, d + '/mnt')
        check(rc != 0 and 'quota file (inode 3)' in out and
              'outside the file system' in out,
              'uext4 exited %d: %s' % (rc, out))
        eq(tail_bytes(img, end), before, 'bytes past the file system')



@test
def quota_file_maps_metadata():
    """The user quota file's extent moved onto group 0's inode table (the
    blocks of inodes 17-48, unused, given a copy of the quota file): usage
    would be written into the blocks new inodes are written to. Refused,
    naming the quota file and the block; the inode table unchanged."""
    with workdir() as d:
        img = mkfs(d + '/img', features=['quota'])
        it = itable_block(img) + 1
        old, n = move_first_extent(img, 3, it)
        with open(img, 'r+b') as f:
            f.seek(old * BS)
            blocks = f.read(n * BS)
            f.seek(it * BS)
            f.write(blocks)
        before = bitmap_and_itable(img)
        rc, out = run_daemon(img, d + '/mnt')
        check(rc != 0 and 'quota file (inode 3)' in out and
              'maps block %d, which is file system metadata' % it in out,
              'uext4 exited %d: %s' % (rc, out))
        check(bitmap_and_itable(img) == before,
              'the block bitmap or the inode table changed')


if __name__ == '__main__':
    main()
