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
import ctypes
import errno
import hashlib
import json
import mmap
import os
import re
import signal
import struct
import sys

from uext4test import (UEXT4, Mount, check, debugfs, eq, fallocate, fsck, inode_info, main,
                       mkfs, pattern, read_file, run, run_daemon, sb_field, test,
                       workdir)

BS = 4096
ORPHAN_MAGIC = 0x0b10ca04


def blocks_count(img):
    return os.path.getsize(img) // BS


def move_first_extent(img, ino, new_start):
    """Point inode @ino's first extent (in i_block: the 12-byte header,
    then ee_block, ee_len/ee_start_hi, ee_start_lo) at @new_start; returns
    (old start, length)."""
    text = inode_info(img, '<%d>' % ino)['text']
    ext = text.split('EXTENTS:')[1].split()[0]          # (0-31):2069-2100, or (0):2069
    run_ = ext.split(':')[1].split('-')
    first, last = int(run_[0]), int(run_[-1])
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
        check(rc != 0 and 'the orphan file (inode 12) is not used' in out and
              'inode 12 maps block %d, which holds no block of the file system' % end in out,
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
        check(rc != 0 and 'orphan inode %d not released' % ino in out and
              'inode %d maps block %d, which holds the inode table of group 0' % (ino, it) in out,
              'uext4 exited %d: %s' % (rc, out))
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
        check(rc != 0 and 'the orphan file (inode 12) is not used' in out and
              'inode 12 maps block %d, which holds the inode table of group 0' % it in out,
              'uext4 exited %d: %s' % (rc, out))
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
              'inode 3 maps block %d, which holds the inode table of group 0' % it in out,
              'uext4 exited %d: %s' % (rc, out))
        check(bitmap_and_itable(img) == before,
              'the block bitmap or the inode table changed')



@test
def orphan_and_quota_file_map_journal():
    """An orphan on the s_last_orphan list, then the user quota file, whose
    first extent is moved deep into the journal: the journal is the system
    zone for every inode but its own. Before, the orphan was released and
    its blocks, the journal's, marked free (e2fsck: 'Block bitmap
    differences'); the quota file's usage would be written into the log.
    Both refused at a read-write open, the log naming the inode and 'the
    journal'; the journal's blocks and the bitmap unchanged."""
    with workdir() as d:
        img = mkfs(d + '/img', features=['^metadata_csum'])
        src = d + '/data'
        with open(src, 'wb') as f:
            f.write(pattern(20000))
        debugfs(img, 'write %s f' % src, write=True)
        ino = inode_info(img, '/f')['ino']
        jblk = int(debugfs(img, 'bmap <8> %d' % JOURNAL_LBLK).split()[0])
        debugfs(img, 'unlink /f', write=True)
        debugfs(img, 'sif <%d> links_count 0' % ino, write=True)
        move_first_extent(img, ino, jblk)
        debugfs(img, 'ssv last_orphan %d' % ino, write=True)
        before = bitmap_and_itable(img) + read_blocks(img, jblk, 5)
        rc, out = run_daemon(img, d + '/mnt')
        check(rc != 0 and 'orphan inode %d not released' % ino in out and
              'inode %d maps block %d, which holds the journal' % (ino, jblk) in out,
              'orphan: uext4 exited %d: %s' % (rc, out))
        check(bitmap_and_itable(img) + read_blocks(img, jblk, 5) == before,
              'the bitmap, the inode table or the journal changed')

    with workdir() as d:
        img = mkfs(d + '/img', features=['quota', '^metadata_csum'])
        jblk = int(debugfs(img, 'bmap <8> %d' % JOURNAL_LBLK).split()[0])
        old, n = move_first_extent(img, 3, jblk)
        with open(img, 'r+b') as f:     # the quota tree there, to be read
            f.seek(old * BS)
            blocks = f.read(n * BS)
            f.seek(jblk * BS)
            f.write(blocks)
        before = bitmap_and_itable(img) + read_blocks(img, jblk, n)
        rc, out = run_daemon(img, d + '/mnt')
        check(rc != 0 and 'quota file (inode 3)' in out and
              'inode 3 maps block %d, which holds the journal' % jblk in out,
              'quota: uext4 exited %d: %s' % (rc, out))
        check(bitmap_and_itable(img) + read_blocks(img, jblk, n) == before,
              'the bitmap, the inode table or the journal changed')



def file_digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


@test
def journal_superblock_lies():
    """A journal superblock with a log start but needs_recovery clear
    (transactions the kernel would drop and e2fsck replays), and one longer
    than the journal inode: a read-write open refuses, naming the image,
    the cause and e2fsck, with the image file unchanged; a read-only mount
    serves the files and refuses remount,rw; after 'e2fsck -fy' the
    image mounts read-write and is clean after a write."""
    for field, value, why in ((0x1C, 1, 'still holds transactions'),
                              (0x10, 1 << 20, 'is longer than its inode')):
        with workdir() as d:
            img = mkfs(d + '/img', features=['^metadata_csum'])
            with Mount(img) as m:
                with open(m.path('f'), 'wb') as f:
                    f.write(pattern(5000))
            fsck(img)
            jsb = int(debugfs(img, 'bmap <8> 0').split()[0])
            with open(img, 'r+b') as f:
                f.seek(jsb * BS + field)
                f.write(struct.pack('>I', value))
            before = file_digest(img)
            rc, out = run_daemon(img, d + '/mnt')
            check(rc != 0 and "the journal of '%s' %s; run 'e2fsck -fy'" % (img, why) in out,
                  '%s: uext4 exited %d: %s' % (why, rc, out))
            eq(file_digest(img), before, why + ': the image file changed')
            with Mount(img, opts=['ro']) as m:
                eq(read_file(m.path('f')), pattern(5000), why + ': f read-only')
                p = run([UEXT4, m.mnt, '-o', 'remount,rw'], check_rc=False)
                out = (p.stdout + p.stderr).decode(errors='replace')
                check(p.returncode != 0 and 'read-write' in out,
                      '%s: remount,rw exited %d: %s' % (why, p.returncode, out))
                eq(read_file(m.path('f')), pattern(5000), why + ': f after remount,rw')
            eq(file_digest(img), before, why + ': the image file changed read-only')
            run(['e2fsck', '-fy', img], check_rc=False)
            with Mount(img) as m:
                with open(m.path('g'), 'wb') as f:
                    f.write(pattern(3000, 2))
                eq(read_file(m.path('f')), pattern(5000), why + ': f after e2fsck')
            fsck(img)


# Files whose blocks lie: an ordinary file's mapping names file system
# metadata (the kernel's system zone check, fs/ext4/block_validity.c). Every
# way to read, write or free the file's blocks is refused with EUCLEAN, the
# daemon's log names the inode, the block and what it holds, and the
# metadata is not changed. Its honest twin /g reads back as written.

FILE_BLOCKS = 16                # past the 12 direct blocks of ext2
JOURNAL_LBLK = 1000             # deep in the log: a short test never writes it
KEEP_SIZE = 0x01                # FALLOC_FL_KEEP_SIZE
PUNCH_HOLE = 0x02 | KEEP_SIZE   # FALLOC_FL_PUNCH_HOLE
ZERO_RANGE = 0x10               # FALLOC_FL_ZERO_RANGE (extent files only)


def group0(img):
    out = run(['dumpe2fs', img]).stdout.decode()
    return {'block bitmap': int(out.split('Block bitmap at ')[1].split()[0]),
            'inode bitmap': int(out.split('Inode bitmap at ')[1].split()[0]),
            'inode table': itable_block(img),
            'group descriptors': 1}


def read_blocks(img, blk, n):
    with open(img, 'rb') as f:
        f.seek(blk * BS)
        return f.read(n * BS)


def protected(img, blk):
    """What no refused call may change: group 0's descriptors, bitmaps and
    inode table (but its first block, where /f's and /g's times change),
    the lying mapping's target block @blk and the bytes past the end. (Not
    the blocks after @blk: the journal's head may follow.)"""
    g = group0(img)
    return (read_blocks(img, 1, 1) + read_blocks(img, g['block bitmap'], 1) +
            read_blocks(img, g['inode bitmap'], 1) +
            read_blocks(img, g['inode table'] + 1, 1023) + read_blocks(img, blk, 1) +
            tail_bytes(img, int(sb_field(img, 'Block count'))))


def lying_image(d, fstype, target, slot=0):
    """An image with /f (FILE_BLOCKS blocks of pattern) and its honest twin
    /g; then /f's first extent (ext4), or its i_block[@slot] (ext2: 0 a
    direct block, 12 the indirect block), moved onto @target: a name from
    group0(), 'journal' (a block deep in the log) or 'past end' (the first
    block past the file system; the image file made longer). Returns
    (image, /f's inode, the block)."""
    img = mkfs(d + '/img', fstype=fstype,
               features=['^metadata_csum'] if fstype == 'ext4' else ())
    src = d + '/data'
    with open(src, 'wb') as f:
        f.write(pattern(FILE_BLOCKS * BS))
    debugfs(img, 'write %s f' % src, write=True)
    debugfs(img, 'write %s g' % src, write=True)
    fsck(img)
    ino = inode_info(img, '/f')['ino']
    if target == 'journal':
        blk = int(debugfs(img, 'bmap <8> %d' % JOURNAL_LBLK).split()[0])
    elif target == 'past end':
        blk = grow_past_fs(img, FILE_BLOCKS)
    elif target == 'inode table':
        blk = group0(img)[target] + 2      # past the root's, in use
    else:
        blk = group0(img)[target]
    if fstype == 'ext4':
        move_first_extent(img, ino, blk)
    else:
        debugfs(img, 'sif <%d> %s %d' % (ino, 'block[IND]' if slot == 12 else 'block[%d]' % slot,
                                          blk), write=True)
    return img, ino, blk


def errno_of_call(fn):
    try:
        fn()
    except OSError as e:
        return e.errno
    return 0


def mounted_calls(m):
    """Every way through the mount to /f's blocks: name -> call."""
    p = m.path('f')

    def read():
        with open(p, 'rb') as f:
            f.read()

    def direct_read():
        fd = os.open(p, os.O_RDONLY | os.O_DIRECT)
        try:
            buf = mmap.mmap(-1, FILE_BLOCKS * BS)
            os.preadv(fd, [buf], 0)
        finally:
            os.close(fd)

    def write():
        fd = os.open(p, os.O_WRONLY)
        try:
            os.pwrite(fd, b'w' * 3 * BS, 0)
            os.fsync(fd)
        finally:
            os.close(fd)

    def direct_write():
        fd = os.open(p, os.O_WRONLY | os.O_DIRECT)
        try:
            buf = mmap.mmap(-1, BS)
            buf.write(b'd' * BS)
            os.pwritev(fd, [buf], 0)
        finally:
            os.close(fd)

    def mmap_store():
        """The store faults the page in, whose read is refused: SIGBUS,
        as for any I/O error at a fault; in a child, reported as EUCLEAN's
        stand-in only if the signal is SIGBUS. (The open, here, fails
        with EUCLEAN where the inode itself lies.)"""
        with open(p, 'r+b') as f:
            pid = os.fork()
            if pid == 0:
                try:
                    mm = mmap.mmap(f.fileno(), BS)
                    mm[0:4] = b'mmap'
                    mm.flush()
                    os._exit(0)
                except BaseException:
                    os._exit(1)
        status = os.waitpid(pid, 0)[1]
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGBUS:
            raise OSError(errno.EUCLEAN, 'SIGBUS at the store')
        raise OSError(errno.EIO if status else 0, 'child status %#x' % status)

    def append():
        with open(p, 'ab') as f:
            f.write(b'a' * BS)
            os.fsync(f.fileno())

    def copy_range():
        with open(p, 'r+b') as dst, open(m.path('g'), 'rb') as src:
            os.copy_file_range(src.fileno(), dst.fileno(), BS, 0, 0)
            os.fsync(dst.fileno())

    def punch():
        with open(p, 'r+b') as f:
            fallocate(f.fileno(), PUNCH_HOLE, 0, FILE_BLOCKS * BS)

    def zero_range():
        with open(p, 'r+b') as f:
            fallocate(f.fileno(), ZERO_RANGE, 0, 2 * BS)

    def partial_punch():
        """Inside block 0: its bytes are zeroed in place, no block freed."""
        with open(p, 'r+b') as f:
            fallocate(f.fileno(), PUNCH_HOLE, 100, 1000)

    def allocate(mode):
        """Over blocks the file has: libext2fs skips them as allocated."""
        def call():
            with open(p, 'r+b') as f:
                fallocate(f.fileno(), mode, 0, 2 * BS)
        return call

    def rename_over():
        os.rename(m.path('g'), p)

    return [('stat', lambda: os.stat(p)),
            ('read', read), ('O_DIRECT read', direct_read), ('write', write),
            ('O_DIRECT write', direct_write), ('mmap store + msync', mmap_store),
            ('copy_file_range', copy_range), ('partial punch', partial_punch),
            ('fallocate', allocate(0)), ('fallocate keep size', allocate(KEEP_SIZE)),
            ('punch', punch), ('zero range', zero_range),
            ('truncate', lambda: os.truncate(p, 0)), ('unlink', lambda: os.unlink(p)),
            ('rename over it', rename_over), ('append', append)]


def refused_through_mount(img, ino, blk, d, skip=('append',)):
    """Each call but @skip's refused with EUCLEAN (EIO is not accepted; the
    mmap store dies of SIGBUS, its fault's read refused), from stat on: the
    lookup refuses an inode whose own i_block or xattr block lies, as the
    kernel's ext4_iget does. The directory still lists the name (readdirplus
    sends it without attributes); the log names the inode and the block,
    and the corruption is recorded against the file, not the directory; /g
    intact; what no refused call may change unchanged; e2fsck's complaints
    (the damage made on purpose) the same after as before."""
    before, fsck_before = protected(img, blk), fsck(img, check_rc=False)
    with Mount(img) as m:
        names = sorted(os.listdir(m.mnt))
        got = {name: errno_of_call(fn) for name, fn in mounted_calls(m)
               if name not in skip}
        g = read_file(m.path('g')) if os.path.exists(m.path('g')) else None
        log = m.log()
    bad = {k: v for k, v in got.items() if v != errno.EUCLEAN}
    check(not bad, 'not refused with EUCLEAN: %s' % bad)
    check('f' in names and 'g' in names, 'listing: %s' % names)
    check(g == pattern(FILE_BLOCKS * BS), '/g does not read back')
    check('inode %d maps block %d, which holds' % (ino, blk) in log,
          'log does not name inode %d and block %d: %s' % (ino, blk, log))
    # The corruption is the file's (recorded in the superblock).
    check('corruption found in inode %d (' % ino in log and
          'corruption found in inode 2 (' not in log, 'blames: %s' % log)
    check(protected(img, blk) == before, 'metadata changed')
    eq(fsck(img, check_rc=False), fsck_before, 'e2fsck -fn output')
    return log


@test
def extent_maps_metadata():
    """/f's first extent moved onto each kind of metadata in turn: the
    inode table, the block bitmap, the group descriptors, the journal and
    past the end. Before: read returned the inode table's bytes, write and
    mmap wrote over them, unlink marked them free in the bitmap."""
    for target, what in [('inode table', 'the inode table of group 0'),
                         ('block bitmap', 'the block bitmap of group 0'),
                         ('group descriptors', 'a superblock copy or group descriptors'),
                         ('journal', 'the journal'),
                         ('past end', 'past its end')]:
        with workdir() as d:
            img, ino, blk = lying_image(d, 'ext4', target)
            log = refused_through_mount(img, ino, blk, d)
            check(what in log, '%s: log does not say %r: %s' % (target, what, log))


@test
def block_map_maps_metadata():
    """ext2 (block-mapped): /f's first direct block, then its indirect
    block, on group 0's inode table. An append allocates through the
    indirect block: refused in the second case only (it wrote a block
    number into the inode table). Zero range and allocating fallocate are
    for extent files only (EOPNOTSUPP)."""
    ext4_only = ('zero range', 'fallocate', 'fallocate keep size')
    for slot, skip in ((0, ('append',) + ext4_only), (12, ext4_only)):
        with workdir() as d:
            img, ino, blk = lying_image(d, 'ext2', 'inode table', slot)
            refused_through_mount(img, ino, blk, d, skip)


def leaf_in_inode_table(d):
    """/f with a depth-1 extent tree (10 one-block extents, every other
    block), its leaf copied into an unused block of group 0's inode table
    and its root's index entry (i_block[4], ei_leaf_lo) pointed there: the
    tree reads back the same, from metadata. Returns (image, inode, the
    new leaf block)."""
    img = mkfs(d + '/img', features=['^metadata_csum'])
    src = d + '/sparse'
    with open(src, 'wb') as f:
        for b in range(0, 20, 2):
            f.seek(b * BS)
            f.write(pattern(BS, seed=b + 1))
        f.truncate(20 * BS)
    debugfs(img, 'write %s f' % src, write=True)
    debugfs(img, 'write %s g' % src, write=True)
    fsck(img)
    ino = inode_info(img, '/f')['ino']
    leaf = int(inode_info(img, '/f')['text'].split('(ETB0):')[1].split(',')[0])
    new = group0(img)['inode table'] + 1000     # inodes 16001-16016: free
    with open(img, 'r+b') as f:
        f.seek(leaf * BS)
        blk = f.read(BS)
        f.seek(new * BS)
        f.write(blk)
    debugfs(img, 'sif <%d> block[4] %d' % (ino, new), write=True)
    return img, ino, new


@test
def extent_index_maps_metadata():
    """/f's extent tree leaf lives in the inode table (a copy of the real
    one): before, reads served the file from it, a write into a hole wrote
    the new extent into the inode table and unlink marked the inode table
    block free. Every call refused, also an append (it would extend the
    leaf); the /g twin (same tree, honest) reads back."""
    with workdir() as d:
        img, ino, blk = leaf_in_inode_table(d)
        before, fsck_before = protected(img, blk), fsck(img, check_rc=False)
        with Mount(img) as m:
            got = {name: errno_of_call(fn) for name, fn in mounted_calls(m)
                   if name not in ('copy_file_range', 'rename over it')}
            eq(read_file(m.path('g')), read_file(d + '/sparse'), '/g')
            log = m.log()
        bad = {k: v for k, v in got.items() if v != errno.EUCLEAN}
        check(not bad, 'not refused with EUCLEAN: %s' % bad)
        check('inode %d maps block %d, which holds the inode table of group 0' % (ino, blk)
              in log, 'log: %s' % log)
        check(protected(img, blk) == before, 'metadata changed')
        eq(fsck(img, check_rc=False), fsck_before, 'e2fsck -fn output')


@test
def middle_leaf_read():
    """Reads, fallocate and a punch inside a block, through a middle leaf
    stored in metadata: /f (1 KiB blocks)
    has 500 one-block extents, every other block, in six leaves of 84
    extents (168 KiB of file each) under one index block (depth 2: the
    root in the inode is honest, which the lookup checks); the third
    leaf's copy lives in the inode table, the index block's entry pointed
    there. An O_DIRECT read of the whole file is one FUSE request whose
    ends lie in the honest first and last leaves: before, only those ends'
    tree paths were checked and the file was served through the leaf in
    the inode table (a buffered read's smaller requests had an end in that
    leaf, and were refused); fallocate over a hole in that leaf wrote the
    new extent into the inode table, and the punch zeroed bytes of the
    block the leaf names. Now all EUCLEAN, the log naming the inode and
    the leaf's block; e2fsck's complaints the same after."""
    n, bs = 1000, 1024
    with workdir() as d:
        img = mkfs(d + '/img', features=['^metadata_csum'], opts=['-b', '1024'])
        src = d + '/sparse'
        with open(src, 'wb') as f:
            for b in range(0, n, 2):
                f.seek(b * bs)
                f.write(pattern(bs, seed=b + 1))
            f.truncate(n * bs)
        debugfs(img, 'write %s f' % src, write=True)
        fsck(img)
        ino = inode_info(img, '/f')['ino']
        text = inode_info(img, '/f')['text'].split('EXTENTS:')[1]
        index = [int(x.split(':')[1]) for x in text.split(', ') if x.strip().startswith('(ETB0')]
        leaves = [int(x.split(':')[1]) for x in text.split(', ') if x.strip().startswith('(ETB1')]
        check(len(index) == 1 and len(leaves) >= 5, 'index %s, leaves %s' % (index, leaves))
        itable = itable_block(img)
        new = itable + 200          # inodes 1601-1608 of group 0: free
        with open(img, 'r+b') as f:
            f.seek(leaves[2] * bs)
            blk = f.read(bs)
            f.seek(new * bs)
            f.write(blk)
            # The index block's third entry: ei_block, ei_leaf_lo, ei_leaf_hi.
            f.seek(index[0] * bs + 12 + 2 * 12 + 4)
            check(struct.unpack('<I', f.read(4))[0] == leaves[2], 'index entry')
            f.seek(index[0] * bs + 12 + 2 * 12 + 4)
            f.write(struct.pack('<I', new))
        with open(img, 'rb') as f:     # past inodes 1-32, whose times change
            f.seek((itable + 8) * bs)
            before = f.read(504 * bs)
        fsck_before = fsck(img, check_rc=False)
        with Mount(img) as m:
            def plain():
                with open(m.path('f'), 'rb') as f:
                    f.read()

            def direct():
                fd = os.open(m.path('f'), os.O_RDONLY | os.O_DIRECT)
                try:
                    os.preadv(fd, [mmap.mmap(-1, n * bs)], 0)
                finally:
                    os.close(fd)
            def falloc(mode, off, length):
                def call():
                    with open(m.path('f'), 'r+b') as f:
                        fallocate(f.fileno(), mode, off, length)
                return call
            # Block 340 (data) and 341 (a hole) are the third leaf's.
            got = {'read': errno_of_call(plain), 'O_DIRECT read': errno_of_call(direct),
                   'fallocate': errno_of_call(falloc(0, 340 * bs, 2 * bs)),
                   'partial punch': errno_of_call(falloc(PUNCH_HOLE, 340 * bs + 100, 100))}
            log = m.log()
        eq(got, dict.fromkeys(got, errno.EUCLEAN), 'calls')
        check('inode %d maps block %d, which holds the inode table of group 0' % (ino, new)
              in log, 'log: %s' % log)
        with open(img, 'rb') as f:
            f.seek((itable + 8) * bs)
            check(f.read(504 * bs) == before, 'the inode table changed')
        eq(fsck(img, check_rc=False), fsck_before, 'e2fsck -fn output')


def ind_blocks(img, ino):
    """/f's (DIND) and (TIND) blocks from debugfs stat."""
    text = inode_info(img, '<%d>' % ino)['text']
    return (int(re.search(r'\(DIND\):(\d+)', text).group(1)),
            int(re.search(r'\(TIND\):(\d+)', text).group(1)))


def entry(img, blk, i, new=None):
    """Entry @i of indirect block @blk; set to @new if given."""
    with open(img, 'r+b') as f:
        f.seek(blk * BS + 4 * i)
        old = struct.unpack('<I', f.read(4))[0]
        if new is not None:
            f.seek(blk * BS + 4 * i)
            f.write(struct.pack('<I', new))
    return old


DIND_LBLK = 12 + 1024                   # the first block under i_block[DIND]
TIND_LBLK = 12 + 1024 + 1024 * 1024     # the first block under i_block[TIND]


@test
def deep_indirect_maps_metadata():
    """ext2: /f has blocks under its double and its triple indirect block
    (a sparse file of 4 GiB). In turn, the single indirect block under the
    double one, the double one under the triple one and the single one
    under that are moved into group 0's inode table (a copy: the map reads
    the same). Before, only the inode's own three indirect blocks were
    checked: reads were served through the copy, and a write into a hole
    under it wrote the new block's number into the inode table. Now both
    are refused with EUCLEAN, the log naming the inode and the block; the
    inode table unchanged; e2fsck's complaints the same after."""
    for case in ('IND under DIND', 'DIND under TIND', 'IND under TIND'):
        with workdir() as d:
            img = mkfs(d + '/img', fstype='ext2')
            src = d + '/data'
            with open(src, 'wb') as f:
                for lblk in (0, DIND_LBLK, TIND_LBLK):
                    f.seek(lblk * BS)
                    f.write(pattern(BS, seed=lblk + 1))
                f.truncate((TIND_LBLK + 8) * BS)
            debugfs(img, 'write %s f' % src, write=True)
            fsck(img)
            ino = inode_info(img, '/f')['ino']
            dind, tind = ind_blocks(img, ino)
            lblk = TIND_LBLK if 'TIND' in case else DIND_LBLK
            parent = {'IND under DIND': dind, 'DIND under TIND': tind,
                      'IND under TIND': entry(img, tind, 0)}[case]
            new = group0(img)['inode table'] + 1000     # inodes 16001-16016: free
            with open(img, 'r+b') as f:
                f.seek(entry(img, parent, 0) * BS)
                blk = f.read(BS)
                f.seek(new * BS)
                f.write(blk)
            entry(img, parent, 0, new)
            before, fsck_before = protected(img, new), fsck(img, check_rc=False)
            with Mount(img) as m:
                def read():
                    with open(m.path('f'), 'rb') as f:
                        f.seek(lblk * BS)
                        f.read(BS)

                def write_hole():
                    fd = os.open(m.path('f'), os.O_WRONLY)
                    try:
                        os.pwrite(fd, b'h' * BS, (lblk + 2) * BS)
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                got = {'read': errno_of_call(read), 'write into a hole': errno_of_call(write_hole)}
                log = m.log()
            eq(got, {'read': errno.EUCLEAN, 'write into a hole': errno.EUCLEAN}, case)
            check('inode %d maps block %d, which holds the inode table of group 0' % (ino, new)
                  in log, '%s: log: %s' % (case, log))
            check(protected(img, new) == before, '%s: metadata changed' % case)
            eq(fsck(img, check_rc=False), fsck_before, '%s: e2fsck -fn output' % case)


@test
def xattr_block_maps_metadata():
    """/f's xattr block (i_file_acl) pointed at a copy of itself in group
    0's inode table, then past the end of the file system (the image file
    made longer, the copy there). Before, getxattr and listxattr read the
    copy as /f's attributes, setxattr wrote into it, and unlink dropped its
    reference count there and marked the inode table block free. Now each
    is refused with EUCLEAN, through the mount (at the lookup, as the
    kernel's ext4_iget) and through the library by inode number (by the
    xattr calls and the free themselves), the log naming the inode and the
    block; the metadata and the bytes past the end unchanged; e2fsck's
    complaints the same after. /g, with its own honest block, reads back."""
    value = pattern(1500)
    for target in ('inode table', 'past end'):
        with workdir() as d:
            img = mkfs(d + '/img', features=['^metadata_csum'])
            debugfs(img, 'write /dev/null f', write=True)
            debugfs(img, 'write /dev/null g', write=True)
            for name in ('f', 'g'):
                with open(d + '/value', 'wb') as f:
                    f.write(value)
                debugfs(img, 'ea_set -f %s /%s user.big' % (d + '/value', name), write=True)
            fsck(img)
            ino = inode_info(img, '/f')['ino']
            acl = int(re.search(r'File ACL: (\d+)', inode_info(img, '/f')['text']).group(1))
            check(acl, 'no xattr block')
            if target == 'past end':
                new = grow_past_fs(img, 1)
            else:
                new = group0(img)['inode table'] + 1000     # inodes 16001-16016: free
            with open(img, 'r+b') as f:
                f.seek(acl * BS)
                blk = f.read(BS)
                f.seek(new * BS)
                f.write(blk)
            debugfs(img, 'sif <%d> file_acl %d' % (ino, new), write=True)
            before, fsck_before = protected(img, new), fsck(img, check_rc=False)
            lib_img = d + '/lib-img'    # the mount records the error: a copy for the library
            run(['cp', '--sparse=always', img, lib_img])
            lib_fsck_before = fsck(lib_img, check_rc=False)
            with Mount(img) as m:
                p = m.path('f')
                calls = [('getxattr', lambda: os.getxattr(p, 'user.big')),
                         ('listxattr', lambda: os.listxattr(p)),
                         ('setxattr', lambda: os.setxattr(p, 'user.big', b'x' * 2000)),
                         ('new xattr', lambda: os.setxattr(p, 'user.new', b'n' * 10)),
                         ('removexattr', lambda: os.removexattr(p, 'user.big')),
                         ('unlink', lambda: os.unlink(p))]
                got = {name: errno_of_call(fn) for name, fn in calls}
                g = os.getxattr(m.path('g'), 'user.big')
                log = m.log()
            bad = {k: v for k, v in got.items() if v != errno.EUCLEAN}
            check(not bad, '%s: not refused with EUCLEAN: %s' % (target, bad))
            check(g == value, '%s: /g\'s xattr does not read back' % target)
            check('inode %d maps block %d, which holds' % (ino, new) in log,
                  '%s: log: %s' % (target, log))
            check(protected(img, new) == before, '%s: metadata changed' % target)
            eq(fsck(img, check_rc=False), fsck_before, '%s: e2fsck -fn output' % target)
            # By inode number, with no lookup: xattr.c's and the free's own checks.
            got = run_lib_child('lib_xattr_calls(%r, %d)' % (lib_img, ino))
            eq(got.pop('uext4_close', None), 0, '%s: uext4_close: %s' % (target, got))
            bad = {k: v for k, v in got.items() if v != -errno.EUCLEAN}
            check(not bad, '%s: library: not -EUCLEAN: %s' % (target, bad))
            check(protected(lib_img, new) == before, '%s: library: metadata changed' % target)
            eq(fsck(lib_img, check_rc=False), lib_fsck_before, '%s: library: e2fsck -fn' % target)


@test
def root_maps_metadata():
    """The root directory's extent moved onto a copy of its block in group
    0's inode table: every path goes through it, and a create would write
    its entry into the inode table. The open is refused, as the kernel's
    mount refuses a root its iget rejects, naming inode 2 and the block;
    the image unchanged."""
    with workdir() as d:
        img = mkfs(d + '/img', features=['^metadata_csum'])
        new = group0(img)['inode table'] + 1000     # inodes 16001-16016: free
        old, _ = move_first_extent(img, 2, new)
        with open(img, 'r+b') as f:
            f.seek(old * BS)
            blk = f.read(BS)
            f.seek(new * BS)
            f.write(blk)
        with open(img, 'rb') as f:
            before = f.read()
        rc, out = run_daemon(img, d + '/mnt')
        check(rc != 0 and 'cannot use the root directory' in out and
              'inode 2 maps block %d, which holds the inode table of group 0' % new in out,
              'uext4 exited %d: %s' % (rc, out))
        with open(img, 'rb') as f:
            check(f.read() == before, 'the image changed')


@test
def bitmap_frees_metadata():
    """The block bitmap marks four blocks of group 0's inode table free (as
    `debugfs freeb` does, free counts with it): the next allocations would
    take them, a file's data or a directory's block written over inodes.
    The kernel refuses to allocate from such a group
    (ext4_validate_block_bitmap); uext4 refuses the read-write open,
    naming the block and what it holds, and the image is unchanged. A
    read-only mount allocates nothing and works; after `e2fsck -fy` the
    read-write mount works too."""
    with workdir() as d:
        img = mkfs(d + '/img')
        it = group0(img)['inode table']
        debugfs(img, 'freeb %d 4' % (it + 8), write=True)
        with open(img, 'rb') as f:
            before = f.read()
        rc, out = run_daemon(img, d + '/mnt')
        check(rc != 0 and 'the block bitmap of group 0 marks block %d free, which holds the '
              'inode table of group 0' % (it + 8) in out and img in out and
              'Structure needs cleaning' in out, 'uext4 exited %d: %s' % (rc, out))
        with open(img, 'rb') as f:
            check(f.read() == before, 'the image changed')
        with Mount(img, mnt=d + '/ro', opts=['ro']) as m:
            eq(sorted(os.listdir(m.mnt)), ['lost+found'], 'listing, read-only')
        run(['e2fsck', '-fy', img], check_rc=False)
        with Mount(img, mnt=d + '/rw') as m:
            with open(m.path('f'), 'wb') as f:
                f.write(pattern(1 << 20))
        fsck(img)


DIR_NAME = 'n' * 190     # 200-byte entries: 20 to a 4 KiB block


def lying_directory(d, fstype):
    """An image with /d, a directory of 300 entries (15 blocks) whose
    blocks are spread out (a one-block file written after every 20
    entries), /e an empty directory and /g a file. Then every data block
    /d lists below its inode, in its extent leaf (ext4: the tree has depth
    1) or in its indirect block (ext2: blocks 12 on), is copied into free
    slots of group 0's inode table and the entry pointed at the copy: the
    directory reads back the same, from metadata, and the inode's own
    i_block (the index entry, the indirect block) is honest, which the
    lookup checks. Returns (image, /d's inode, the copies' blocks)."""
    img = mkfs(d + '/img', fstype=fstype,
               features=['^metadata_csum'] if fstype == 'ext4' else ())
    with open(d + '/one', 'wb') as f:
        f.write(pattern(BS))
    script = ['mkdir d', 'mkdir e', 'write %s g' % (d + '/one')]
    for i in range(300):
        script.append('write /dev/null d/%s%03d' % (DIR_NAME, i))
        if i % 20 == 19:
            script.append('write %s x%03d' % (d + '/one', i))
    with open(d + '/script', 'w') as f:
        f.write('\n'.join(script) + '\n')
    run(['debugfs', '-w', '-f', d + '/script', img])
    fsck(img)
    info = inode_info(img, '/d')
    text = info['text'].split('EXTENTS:' if fstype == 'ext4' else 'BLOCKS:')[1]
    tree = int(text.split('(ETB0):' if fstype == 'ext4' else '(IND):')[1].split(',')[0])
    new = group0(img)['inode table'] + 200     # inodes 3201-: free
    copies = []
    with open(img, 'r+b') as f:
        f.seek(tree * BS)
        node = bytearray(f.read(BS))
        if fstype == 'ext4':   # leaf: 12-byte header, then (ee_block, ee_len, hi, ee_start_lo)
            n = struct.unpack_from('<H', node, 2)[0]
            slots = [(12 + 12 * i + 8, struct.unpack_from('<H', node, 12 + 12 * i + 4)[0])
                     for i in range(n)]
        else:                  # indirect block: 4-byte block numbers
            slots = [(4 * i, 1) for i in range(BS // 4) if struct.unpack_from('<I', node, 4 * i)[0]]
        check(len(slots) >= 3, '%s: /d below its inode: %s' % (fstype, slots))
        for off, length in slots:
            old = struct.unpack_from('<I', node, off)[0]
            f.seek(old * BS)
            data = f.read(length * BS)
            f.seek(new * BS)
            f.write(data)
            struct.pack_into('<I', node, off, new)
            copies += range(new, new + length)
            new += length
        f.seek(tree * BS)
        f.write(node)
    return img, info['ino'], copies


def directory_calls(m):
    """Every way through the mount into /d's blocks: name -> call."""
    d, first = m.path('d'), DIR_NAME + '000'
    return [('readdir', lambda: os.listdir(d)),
            ('lookup', lambda: os.stat(os.path.join(d, first))),
            ('create', lambda: os.close(os.open(os.path.join(d, 'new'), os.O_CREAT | os.O_WRONLY))),
            ('mkdir', lambda: os.mkdir(os.path.join(d, 'sub'))),
            ('symlink', lambda: os.symlink('t', os.path.join(d, 'sym'))),
            ('link', lambda: os.link(m.path('g'), os.path.join(d, 'hard'))),
            ('unlink', lambda: os.unlink(os.path.join(d, first))),
            ('rename in it', lambda: os.rename(os.path.join(d, first), os.path.join(d, 'r'))),
            ('rename into it', lambda: os.rename(m.path('g'), os.path.join(d, 'g'))),
            ('move it', lambda: os.rename(d, m.path('e/d'))),
            ('rmdir', lambda: os.rmdir(d))]


@test
def directory_blocks_map_metadata():
    """A directory whose blocks below its inode lie (lying_directory: the
    extent leaf's entries, ext4, or the indirect block's, ext2, name
    copies in the inode table): before, readdir and lookups read the
    copies as entries, and a create, mkdir, symlink, link or rename into
    it wrote its entry there (the inode table changed). Now each call that
    reads or writes its blocks is refused with EUCLEAN, the whole mapping
    checked once (fs_dir_check), the log naming the directory and the
    block, the corruption recorded against it; the inode table and bitmaps
    unchanged, e2fsck's complaints the same after. Moving /d into /e (a
    new "..") is refused before any entry changes (before, /d had left
    the root for /e when its ".." was refused). The root and /e, honest,
    still take a new name."""
    for fstype in ('ext4', 'ext2'):
        with workdir() as d:
            img, ino, copies = lying_directory(d, fstype)
            before, fsck_before = protected(img, copies[0]), fsck(img, check_rc=False)
            honest = d + '/img2'    # the mount records the error: a copy for the rest
            run(['cp', '--sparse=always', img, honest])
            with Mount(img) as m:
                got = {name: errno_of_call(fn) for name, fn in directory_calls(m)}
                # Nothing half done: the move of /d into /e changed no entry.
                where = ('d' in os.listdir(m.mnt), os.listdir(m.path('e')))
                log = m.log()
            bad = {k: v for k, v in got.items() if v != errno.EUCLEAN}
            check(not bad, '%s: not refused with EUCLEAN: %s' % (fstype, bad))
            eq(where, (True, []), '%s: /d in the root, /e empty' % fstype)
            check(re.search(r"inode %d maps block (\d+), which holds the inode table of group 0"
                            % ino, log) and
                  int(re.search(r'inode %d maps block (\d+)' % ino, log).group(1)) in copies,
                  '%s: log does not name inode %d and a copy (%s): %s' % (fstype, ino, copies, log))
            check('corruption found in inode %d (' % ino in log, '%s: blames: %s' % (fstype, log))
            check(protected(img, copies[0]) == before, '%s: metadata changed' % fstype)
            eq(fsck(img, check_rc=False), fsck_before, '%s: e2fsck -fn output' % fstype)
            with Mount(honest) as m:
                os.mkdir(m.path('e/ok'))
                eq(sorted(os.listdir(m.path('e'))), ['ok'], '%s: /e' % fstype)
                check('d' in os.listdir(m.mnt), '%s: the root lists /d' % fstype)



@test
def listing_lying_inode_records_nothing():
    """A directory naming an inode whose first extent lies (onto the inode
    table; lying_image): a listing on a fresh mount (the kernel asks
    READDIRPLUS) sends the name without attributes and records no error,
    even with errors=remount-ro: the superblock stays clean and the mount
    writable (/g's times change), as on ext4, whose readdir reads no inode.
    Before, the attributes' lookup recorded the damage (FS Error count 1)
    and errors=remount-ro turned the mount read-only. A lookup of the name
    (stat) is still refused with EUCLEAN and recorded against the inode,
    as ext4_lookup's ext4_iget does. Nothing else changed."""
    with workdir() as d:
        img, ino, blk = lying_image(d, 'ext4', 'inode table')
        before, fsck_before = protected(img, blk), fsck(img, check_rc=False)
        with Mount(img, opts=['errors=remount-ro']) as m:
            names = sorted(os.listdir(m.mnt))
            again = sorted(os.listdir(m.mnt))
            os.utime(m.path('g'), (1000000, 1000000))
            log = m.log()
        check('f' in names and 'g' in names and names == again,
              'listing: %s then %s' % (names, again))
        check('corruption found' not in log, 'an error recorded: %s' % log)
        eq((sb_field(img, 'Filesystem state'), sb_field(img, 'FS Error count')),
           ('clean', None), 'superblock after the listing')
        with Mount(img) as m:
            eq(errno_of_call(lambda: os.stat(m.path('f'))), errno.EUCLEAN, 'stat /f')
            log = m.log()
        check('corruption found in inode %d (' % ino in log, 'blames: %s' % log)
        eq((sb_field(img, 'FS Error count'), sb_field(img, 'Last error inode #')),
           ('1', str(ino)), 'superblock after the lookup')
        check(protected(img, blk) == before, 'metadata changed')
        eq(fsck(img, check_rc=False), fsck_before, 'e2fsck -fn output')



@test
def lying_inode_log_rate_limited():
    """Each lookup of a lying inode is refused (EUCLEAN) and says so in the
    log, but at most 10 such messages per 5 s go out, as ext4 rate-limits
    ext4_error(): 40 stats in a row log at most 10 lines naming the damage
    (log_corrupt, base/log.h; the unit test unit-log checks the window
    and the count of those left out)."""
    with workdir() as d:
        img, ino, blk = lying_image(d, 'ext4', 'inode table')
        with Mount(img) as m:
            for _ in range(40):
                eq(errno_of_call(lambda: os.stat(m.path('f'))), errno.EUCLEAN, 'stat /f')
            log = m.log()
        lines = [ln for ln in log.splitlines()
                 if 'corruption found' in ln or 'maps block' in ln]
        check(1 <= len(lines) <= 10, '%d lines about the damage: %s' % (len(lines), log))


class Cred(ctypes.Structure):
    _fields_ = [('uid', ctypes.c_uint), ('gid', ctypes.c_uint), ('umask', ctypes.c_uint),
                ('ngroups', ctypes.c_uint), ('groups', ctypes.c_void_p),
                ('load_groups', ctypes.c_void_p), ('has_fsetid', ctypes.c_void_p)]


def libuext4():
    lib = ctypes.CDLL(os.path.join(os.path.dirname(UEXT4), 'libuext4.so'))
    vp, u32, sz, off = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_size_t, ctypes.c_int64
    lib.uext4_open.argtypes = [ctypes.c_char_p, vp, ctypes.POINTER(vp), ctypes.c_char_p, sz]
    lib.uext4_close.argtypes = [vp]
    lib.uext4_read.argtypes = [vp, u32, vp, sz, off]
    lib.uext4_read.restype = ctypes.c_ssize_t
    lib.uext4_write.argtypes = [vp, vp, u32, vp, sz, off, ctypes.c_uint]
    lib.uext4_write.restype = ctypes.c_ssize_t
    lib.uext4_mmap_store.argtypes = [vp, u32, off, vp, sz]
    lib.uext4_fallocate.argtypes = [vp, vp, u32, ctypes.c_int, off, off]
    lib.uext4_copy_file_range.argtypes = [vp, vp, u32, off, u32, off, sz]
    lib.uext4_copy_file_range.restype = ctypes.c_ssize_t
    lib.uext4_unlink.argtypes = [vp, vp, u32, ctypes.c_char_p]
    name = ctypes.c_char_p
    lib.uext4_getxattr.argtypes = [vp, vp, u32, name, vp, sz]
    lib.uext4_getxattr.restype = ctypes.c_ssize_t
    lib.uext4_setxattr.argtypes = [vp, vp, u32, name, vp, sz, ctypes.c_int]
    lib.uext4_listxattr.argtypes = [vp, vp, u32, vp, sz]
    lib.uext4_listxattr.restype = ctypes.c_ssize_t
    lib.uext4_removexattr.argtypes = [vp, vp, u32, name]
    lib.uext4_readlink.argtypes = [vp, u32, vp, sz]
    lib.uext4_readlink.restype = ctypes.c_ssize_t
    return lib


def lib_calls(img, ino, g):
    """The calls on /f (inode @ino; @g the twin's) through the library:
    {name: return value}, and whether /g read back."""
    lib, fs, cr = libuext4(), ctypes.c_void_p(), Cred()
    why = ctypes.create_string_buffer(512)
    rc = lib.uext4_open(img.encode(), None, ctypes.byref(fs), why, len(why))
    if rc:
        return {'uext4_open': rc, 'why': why.value.decode()}
    buf = ctypes.create_string_buffer(FILE_BLOCKS * BS)
    try:
        got = {
            'read': lib.uext4_read(fs, ino, buf, len(buf), 0),
            'write': lib.uext4_write(fs, ctypes.byref(cr), ino, buf, BS, 0, 0),
            'mmap writeback': lib.uext4_write(fs, ctypes.byref(cr), ino, buf, BS, 0, 1),
            'mmap store': lib.uext4_mmap_store(fs, ino, 0, buf, 4),
            'partial punch': lib.uext4_fallocate(fs, ctypes.byref(cr), ino, PUNCH_HOLE, 100, 1000),
            'fallocate': lib.uext4_fallocate(fs, ctypes.byref(cr), ino, 0, 0, 2 * BS),
            'fallocate keep size': lib.uext4_fallocate(fs, ctypes.byref(cr), ino, KEEP_SIZE, 0,
                                                       2 * BS),
            'punch': lib.uext4_fallocate(fs, ctypes.byref(cr), ino, PUNCH_HOLE, 0, len(buf)),
            'copy_file_range': lib.uext4_copy_file_range(fs, ctypes.byref(cr), g, 0, ino, 0,
                                                         BS),
            'unlink': lib.uext4_unlink(fs, ctypes.byref(cr), 2, b'f'),
        }
        got['/g reads back'] = (lib.uext4_read(fs, g, buf, len(buf), 0) == len(buf) and
                                buf.raw == pattern(FILE_BLOCKS * BS))
    finally:
        got['uext4_close'] = lib.uext4_close(fs)
    return got


def lib_xattr_calls(img, ino):
    """The xattr calls and unlink on /f (inode @ino) through the library,
    by inode number (no lookup): {name: return value}."""
    lib, fs, cr = libuext4(), ctypes.c_void_p(), Cred()
    why = ctypes.create_string_buffer(512)
    rc = lib.uext4_open(img.encode(), None, ctypes.byref(fs), why, len(why))
    if rc:
        return {'uext4_open': rc, 'why': why.value.decode()}
    buf = ctypes.create_string_buffer(4096)
    try:
        got = {
            'getxattr': lib.uext4_getxattr(fs, ctypes.byref(cr), ino, b'user.big', buf, len(buf)),
            'listxattr': lib.uext4_listxattr(fs, ctypes.byref(cr), ino, buf, len(buf)),
            'setxattr': lib.uext4_setxattr(fs, ctypes.byref(cr), ino, b'user.big', buf, 2000, 0),
            'new xattr': lib.uext4_setxattr(fs, ctypes.byref(cr), ino, b'user.new', buf, 10, 0),
            'removexattr': lib.uext4_removexattr(fs, ctypes.byref(cr), ino, b'user.big'),
            'unlink': lib.uext4_unlink(fs, ctypes.byref(cr), 2, b'f'),
        }
    finally:
        got['uext4_close'] = lib.uext4_close(fs)
    return got


def lib_write_all(img, ino, size, off=0):
    """Write @size bytes of pattern over inode @ino from offset @off in one
    uext4_write call after another (a short one goes on from where it
    stopped): the results, the last an error or @size in all."""
    lib, fs, cr = libuext4(), ctypes.c_void_p(), Cred()
    why = ctypes.create_string_buffer(512)
    rc = lib.uext4_open(img.encode(), None, ctypes.byref(fs), why, len(why))
    if rc:
        return {'uext4_open': rc, 'why': why.value.decode()}
    buf, done, got = ctypes.create_string_buffer(pattern(size), size), 0, []
    while done < size:
        n = lib.uext4_write(fs, ctypes.byref(cr), ino, ctypes.byref(buf, done), size - done,
                            off + done, 0)
        got.append(n)
        if n <= 0:
            break
        done += n
    return {'writes': got, 'uext4_close': lib.uext4_close(fs)}


def lib_by_number(img, calls):
    """@calls, (name, op, inode, args...) with op read (size, offset),
    write (size, offset), writeback (the same, UEXT4_WRITE_MMAP), readlink
    (size) or fallocate (mode, offset, length), made through the library
    by inode number (no lookup checks the inode first): {name: result}."""
    lib, fs, cr = libuext4(), ctypes.c_void_p(), Cred()
    why = ctypes.create_string_buffer(512)
    rc = lib.uext4_open(img.encode(), None, ctypes.byref(fs), why, len(why))
    if rc:
        return {'uext4_open': rc, 'why': why.value.decode()}
    buf, got = ctypes.create_string_buffer(pattern(65536), 65536), {}
    ops = {'read': lambda ino, n, o: lib.uext4_read(fs, ino, buf, n, o),
           'write': lambda ino, n, o: lib.uext4_write(fs, ctypes.byref(cr), ino, buf, n, o, 0),
           'writeback': lambda ino, n, o: lib.uext4_write(fs, ctypes.byref(cr), ino, buf, n, o, 1),
           'readlink': lambda ino, n: lib.uext4_readlink(fs, ino, buf, n),
           'fallocate': lambda ino, mode, o, n: lib.uext4_fallocate(fs, ctypes.byref(cr), ino,
                                                                     mode, o, n)}
    try:
        for name, op, ino, *args in calls:
            got[name] = ops[op](ino, *args)
    finally:
        got['uext4_close'] = lib.uext4_close(fs)
    return got


def run_lib_child(call, log=False):
    """Run `t.@call` (a python expression on this module, as t) in a child
    python: its JSON result (and, with @log, what it wrote to stderr: the
    library's log). A sanitized library needs its runtime preloaded, which
    a running python cannot do."""
    libpath = os.path.join(os.path.dirname(UEXT4), 'libuext4.so')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    preload = sanitizer_preload(libpath)
    if preload:     # python itself leaks: the leak check is the C tests'
        env.update(LD_PRELOAD=preload, ASAN_OPTIONS='detect_leaks=0')
    code = 'import json, test_hostile_images as t; print(json.dumps(t.%s))' % call
    p = run([sys.executable, '-c', code], env=env,
            cwd=os.path.dirname(os.path.abspath(__file__)), timeout=60)
    got = json.loads(p.stdout.decode().splitlines()[-1])
    return (got, p.stderr.decode(errors='replace')) if log else got


def sanitizer_preload(path):
    """A sanitized build's libuext4 loads into python only after its
    runtime: the runtimes it links, for LD_PRELOAD."""
    out = run(['ldd', path]).stdout.decode()
    return ':'.join(line.split('=>')[1].split()[0] for line in out.splitlines()
                    if 'san.so' in line and '=>' in line)


@test
def library_calls_refused():
    """The same through the library (no FUSE, by inode number: no lookup
    refuses the inode first): read, write, the mmap writeback's write
    (UEXT4_WRITE_MMAP), a store (which reads the page in), a punch inside
    block 0, fallocate (extent files), punch, copy_file_range into /f and
    unlink each return -EUCLEAN, for an extent on the inode table and an
    ext2 indirect block there."""
    for fstype, slot in (('ext4', 0), ('ext2', 12)):
        with workdir() as d:
            img, ino, blk = lying_image(d, fstype, 'inode table', slot)
            g = inode_info(img, '/g')['ino']
            before, fsck_before = protected(img, blk), fsck(img, check_rc=False)
            got = run_lib_child('lib_calls(%r, %d, %d)' % (img, ino, g))
            check(got.pop('/g reads back', False), '%s: /g does not read back: %s' % (fstype, got))
            eq(got.pop('uext4_close'), 0, 'uext4_close')
            if fstype == 'ext2':    # allocation needs extents (EOPNOTSUPP)
                for k in ('fallocate', 'fallocate keep size'):
                    eq(got.pop(k), -errno.EOPNOTSUPP, 'ext2: ' + k)
            bad = {k: v for k, v in got.items() if v != -errno.EUCLEAN}
            check(not bad, '%s: not -EUCLEAN: %s' % (fstype, bad))
            check(protected(img, blk) == before, 'metadata changed')
            eq(fsck(img, check_rc=False), fsck_before, 'e2fsck -fn output')


@test
def middle_leaf_maps_metadata():
    """/f has 1100 one-block extents, every other block, in four leaves;
    the second leaf's copy lives in the inode table. One write over the
    whole file (library: no FUSE splitting) fills the holes; the ends' tree
    paths are honest, and before, the holes of the second leaf were
    allocated into the leaf in the inode table (it changed). Now the write
    is refused, at once (the scan of the range meets the leaf) or short of
    that leaf with -EUCLEAN next; the inode table unchanged."""
    n = 2200
    with workdir() as d:
        img = mkfs(d + '/img', features=['^metadata_csum'])
        src = d + '/sparse'
        with open(src, 'wb') as f:
            for b in range(0, n, 2):
                f.seek(b * BS)
                f.write(b'x' * BS)
            f.truncate(n * BS)
        debugfs(img, 'write %s f' % src, write=True)
        fsck(img)
        ino = inode_info(img, '/f')['ino']
        leaves = [int(x.split(':')[1])
                  for x in inode_info(img, '/f')['text'].split('EXTENTS:')[1].split(', ')
                  if x.strip().startswith('(ETB')]
        check(len(leaves) >= 4, 'leaves: %s' % leaves)
        new = group0(img)['inode table'] + 1000     # inodes 16001-16016: free
        with open(img, 'r+b') as f:
            f.seek(leaves[1] * BS)
            blk = f.read(BS)
            f.seek(new * BS)
            f.write(blk)
        # The root's second index entry: i_block[6..8] (ei_block, ei_leaf_lo, hi).
        debugfs(img, 'sif <%d> block[7] %d' % (ino, new), write=True)
        # The writes allocate (bitmaps and descriptors change): the table.
        itable = group0(img)['inode table']
        before = read_blocks(img, itable + 1, 1023)
        got = run_lib_child('lib_write_all(%r, %d, %d)' % (img, ino, n * BS))
        eq(got.get('uext4_close'), 0, 'uext4_close: %s' % got)
        check(got['writes'][-1] == -errno.EUCLEAN and sum(got['writes'][:-1]) < n * BS,
              'writes: %s' % got['writes'])
        check(read_blocks(img, itable + 1, 1023) == before, 'the inode table changed')


def copy_block(img, old, new):
    """Block @old's bytes written over block @new."""
    with open(img, 'r+b') as f:
        f.seek(old * BS)
        data = f.read(BS)
        f.seek(new * BS)
        f.write(data)


def leaf_entry_start(img, leaf, i, new=None):
    """ee_start_lo of extent @i of the leaf in block @leaf; set to @new if
    given."""
    with open(img, 'r+b') as f:
        f.seek(leaf * BS + 12 + 12 * i + 8)
        old = struct.unpack('<I', f.read(4))[0]
        if new is not None:
            f.seek(leaf * BS + 12 + 12 * i + 8)
            f.write(struct.pack('<I', new))
    return old


COLLAPSE_RANGE = 0x08   # FALLOC_FL_COLLAPSE_RANGE
INSERT_RANGE = 0x20     # FALLOC_FL_INSERT_RANGE


@test
def library_by_number_refused():
    """Calls by inode number through the library, which no lookup checks
    first, each refused with -EUCLEAN (the log naming the inode and the
    block), nothing changed: (1) an inline-data file whose xattr block is
    a copy in the inode table: before, a read took system.data's bytes
    from it and a write or mmap writeback rewrote it (libext2fs writes the
    xattrs back), and one too large for the inode converted the file;
    (2) a slow symlink whose block is a copy in the inode table: readlink
    returned it; (3) INSERT_RANGE on /f, whose extent leaf lives in the
    inode table (leaf_in_inode_table): before, its entries were rewritten
    there; COLLAPSE_RANGE on /g, whose last extent (past the range: the
    punch of the range does not look at it) names the inode table: before,
    it was moved. (One library open per image: the first refusal
    records the error, and an image with errors recorded refuses an
    open.)"""
    with workdir() as d:
        img2 = d + '/img2'
        os.rename(leaf_in_inode_table(d)[0], img2)
        img = mkfs(d + '/img', features=['inline_data', '^metadata_csum'])
        with open(d + '/small', 'wb') as f:
            f.write(pattern(40))
        with open(d + '/value', 'wb') as f:
            f.write(pattern(1500, seed=2))
        debugfs(img, 'write %s f' % (d + '/small'), write=True)
        debugfs(img, 'ea_set -f %s /f user.big' % (d + '/value'), write=True)
        fsck(img)
        info = inode_info(img, '/f')
        check(info['flags'] & 0x10000000, 'not inline: %s' % info['text'])
        acl = int(re.search(r'File ACL: (\d+)', info['text']).group(1))
        new = group0(img)['inode table'] + 1000     # inodes 16001-16016: free
        copy_block(img, acl, new)
        debugfs(img, 'sif <%d> file_acl %d' % (info['ino'], new), write=True)
        ino = info['ino']
        calls = {img: [('inline read', 'read', ino, 40, 0),
                       ('inline write', 'write', ino, 10, 0),
                       ('inline writeback', 'writeback', ino, 10, 0),
                       ('inline write that converts', 'write', ino, 8192, 0)]}

        f_ino = inode_info(img2, '/f')['ino']
        leaf_f = int(re.search(r'\(ETB0\):(\d+)', inode_info(img2, '/f')['text']).group(1))
        debugfs(img2, 'symlink s /%s' % ('t' * 100), write=True)
        s_ino = inode_info(img2, '/s')['ino']
        old_s, _ = move_first_extent(img2, s_ino, leaf_f + 1)
        copy_block(img2, old_s, leaf_f + 1)
        g_ino = inode_info(img2, '/g')['ino']
        leaf_g = int(re.search(r'\(ETB0\):(\d+)', inode_info(img2, '/g')['text']).group(1))
        copy_block(img2, leaf_entry_start(img2, leaf_g, 9), leaf_f + 2)
        leaf_entry_start(img2, leaf_g, 9, leaf_f + 2)     # block 18 of 20
        calls[img2] = [('slow symlink readlink', 'readlink', s_ino, 4096),
                       ('insert range', 'fallocate', f_ino, INSERT_RANGE, 2 * BS, BS),
                       ('collapse range', 'fallocate', g_ino, COLLAPSE_RANGE, 2 * BS, 2 * BS)]
        lines = {img: [(ino, new)], img2: [(s_ino, leaf_f + 1), (f_ino, leaf_f),
                                           (g_ino, leaf_f + 2)]}
        # The copies (@new, leaf_f + 1 and + 2) are in the protected range.
        for i, blk in ((img, new), (img2, leaf_f)):
            before, fsck_before = protected(i, blk), fsck(i, check_rc=False)
            got, log = run_lib_child('lib_by_number(%r, %r)' % (i, calls[i]), log=True)
            eq(got.pop('uext4_close', None), 0, 'uext4_close: %s' % got)
            bad = {k: v for k, v in got.items() if v != -errno.EUCLEAN}
            check(not bad, 'not -EUCLEAN: %s' % bad)
            for n, b in lines[i]:
                check('inode %d maps block %d, which holds the inode table of group 0' % (n, b)
                      in log, 'log does not name inode %d and block %d: %s' % (n, b, log))
            check(protected(i, blk) == before, '%s: metadata changed' % i)
            eq(fsck(i, check_rc=False), fsck_before, '%s: e2fsck -fn output' % i)


@test
def library_write_over_middle_ind():
    """ext2, by inode number: /f has a block under each of the first three
    single indirect blocks below its double one; the second's copy lives
    in the inode table. One library write from the last block under the
    first to the first under the third (4 MiB: FUSE would split it, each
    piece's ends checked): both ends' paths are honest, and the holes under
    the second were allocated through the copy, writing their numbers into
    the inode table (mapio.c's check of each hole's path refuses that).
    Now the write is short of those holes, then -EUCLEAN; the inode table
    unchanged."""
    with workdir() as d:
        img = mkfs(d + '/img', fstype='ext2')
        src = d + '/data'
        with open(src, 'wb') as f:
            for k in range(3):
                f.seek((DIND_LBLK + 1024 * k + 512) * BS)
                f.write(pattern(BS, seed=k + 1))
        debugfs(img, 'write %s f' % src, write=True)
        fsck(img)
        ino = inode_info(img, '/f')['ino']
        dind = int(re.search(r'\(DIND\):(\d+)', inode_info(img, '/f')['text']).group(1))
        new = group0(img)['inode table'] + 1000     # inodes 16001-16016: free
        copy_block(img, entry(img, dind, 1), new)
        entry(img, dind, 1, new)
        itable = group0(img)['inode table']
        before = read_blocks(img, itable + 1, 1023)
        first, last = DIND_LBLK + 1023, DIND_LBLK + 2048
        got = run_lib_child('lib_write_all(%r, %d, %d, %d)' % (img, ino, (last - first + 1) * BS,
                                                               first * BS))
        eq(got.get('uext4_close'), 0, 'uext4_close: %s' % got)
        check(got['writes'][-1] == -errno.EUCLEAN and
              sum(got['writes'][:-1]) < (last - first + 1) * BS, 'writes: %s' % got['writes'])
        check(read_blocks(img, itable + 1, 1023) == before, 'the inode table changed')

if __name__ == '__main__':
    main()
