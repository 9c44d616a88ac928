#!/usr/bin/env python3
"""Online grow: `resize2fs IMAGE [SIZE]` on a uext4 mount, which e2fsprogs
sends as EXT4_IOC_RESIZE_FS on the mount point.

Each grow case: an image from mke2fs, mounted, its file lengthened with
truncate, resize2fs run on it. Then statfs shows the new size, and in the
same mount a file filling the new space is written, read back from the
image and removed; after an
unmount e2fsck -fn is clean and the superblock's counts (dumpe2fs -h:
blocks, inodes, free blocks and inodes, reserved GDT blocks, groups) are
those of the same resize done to a copy by the reference: the kernel
(a loop mount of the copy and the same resize2fs command) where this
process may resize online (CAP_SYS_RESOURCE), else resize2fs on the
unmounted copy, whose reserved block count and overhead differ by design
(it scales s_r_blocks_count by the exact ratio and clears
s_overhead_clusters; ext4 adds a whole percentage per flex group and
recomputes the overhead): those two are then checked against ext4's
formulas. Then a file filling the new space is written, read back byte for
byte after a remount, and e2fsck -fn is clean again.

meta_bg: a file system made with meta_bg grows in its layout (a new
descriptor block in the first group of each new meta group, copies in the
second and last), compared with resize2fs on the copy as above, and every
descriptor block's copies equal to the primary right after the grow. The
conversion to meta_bg (ext4_convert_meta_bg), where ext4 converts: growth
past the reserved GDT blocks (the reserved ones filled first), or a file
system with neither resize_inode nor meta_bg. Offline resize2fs does not
convert, it moves blocks to make room for more descriptor blocks in the
old layout, so its free block count differs (by the layouts' overhead)
and it keeps its reserved GDT blocks (resize2fs's adjust_superblock and
blocks_to_move): the count, inodes, free inodes and groups are compared
with it, the rest with what ext4_convert_meta_bg leaves (meta_bg on,
resize_inode off, s_first_meta_bg the descriptor blocks at the
conversion, no reserved GDT block, the resize inode without blocks) and
with the blocks in use but not metadata, unchanged but for the resize
inode's double-indirect block, freed.

bigalloc (16 and 64 KiB clusters of 4 KiB blocks, 16 KiB of 1 KiB
blocks): compared with resize2fs -f on the copy as above, after e2fsck -fy
has corrected its count of a partial last group (resize2fs 1.47.0 counts
it as full); the overhead is the old one plus the clusters of the new
groups' metadata read from dumpe2fs (ext4_add_overhead). A count that is
not a whole number of clusters is rounded down to one by the ioctl itself.

Refusals, with ext4's errno: a smaller count (EINVAL), a count past the
image file's end (ENOSPC, and a log line naming the file), a caller other
than root (EPERM), sparse_super2 and a partition (offset=)
(EOPNOTSUPP, and a log line saying to unmount and run resize2fs), reserved
GDT blocks without resize_inode (EUCLEAN, as ext4's corruption check).

Crash: a grow made durable step by step, each step of it in turn a power
cut (UEXT4_FAULT_AT) or a SIGKILL (UEXT4_FAULT_KILL); after the journal's
replay (the next mount) e2fsck -fn is clean and the file system has the
old size or the new one, with its file intact.
"""

import errno
import fcntl
import os
import re
import shutil
import struct
import subprocess

from uext4test import (Mount, MountError, TestFailure, check, drop_caches, eq,
                       errno_as, expect_errno, fsck, kernel_mount, main, mkfs,
                       pattern, run, sb_field, test, workdir)

EXT4_IOC_RESIZE_FS = 0x40086610      # _IOW('f', 16, __u64)
USER = (65534, 65534, [])


def resize_ioctl(mnt, blocks):
    fd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.ioctl(fd, EXT4_IOC_RESIZE_FS, struct.pack('=Q', blocks))
    finally:
        os.close(fd)


def dumpe2fs(img):
    """The superblock's fields (dumpe2fs -h) and the number of groups."""
    out = run(['dumpe2fs', img]).stdout.decode(errors='replace')
    fields = {}
    for line in out.splitlines():
        m = re.match(r'([A-Za-z][A-Za-z /#_-]*):\s+(.*)$', line)
        if m and m.group(1) not in fields:
            fields[m.group(1)] = m.group(2).strip()
    fields['groups'] = len(re.findall(r'^Group \d+: ', out, re.M))
    return fields


def num(fields, name):
    return int(fields.get(name, '0').split()[0])


COMPARED = ('Block count', 'Inode count', 'Free blocks', 'Free inodes',
            'Reserved GDT blocks', 'groups')
# Where ext4 converts to meta_bg and resize2fs moves blocks instead.
CONVERTED_COMPARED = ('Block count', 'Inode count', 'Free inodes', 'groups')


def ext4_reserved(before, after):
    """s_r_blocks_count as ext4_update_super() grows it: the old last group
    extended with nothing more reserved, then per flex group the blocks
    added times the whole percentage reserved before them."""
    bpg, first = num(before, 'Blocks per group'), num(before, 'First block')
    flex = num(before, 'Flex block group size') or 1
    r, o_groups = num(before, 'Reserved block count'), before['groups']
    n_blocks, n_groups = num(after, 'Block count'), after['groups']
    cur = min(first + o_groups * bpg, n_blocks)
    s = o_groups
    while s < n_groups:
        last = min(s | (flex - 1), n_groups - 1)
        end = min(first + (last + 1) * bpg, n_blocks)
        r += r * 100 // cur * (end - (first + s * bpg)) // 100
        cur, s = end, last + 1
    return r


def group_layout(img):
    """Per group (dumpe2fs): its superblock copy (block or None), its
    descriptor blocks (a list, meta_bg's one or the old layout's run) and
    its reserved GDT blocks (a count)."""
    out = run(['dumpe2fs', img]).stdout.decode(errors='replace')
    groups = []
    for grp in re.split(r'^Group \d+: ', out, flags=re.M)[1:]:
        sb = re.search(r'superblock at (\d+)', grp)
        desc = []
        m = re.search(r'Group descriptors? at (\d+)(?:-(\d+))?', grp)
        if m:
            desc = list(range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1))
        m = re.search(r'Reserved GDT blocks at (\d+)-(\d+)', grp)
        rsv = int(m.group(2)) - int(m.group(1)) + 1 if m else 0
        groups.append((int(sb.group(1)) if sb else None, desc, rsv))
    return groups


def overhead(img, after):
    """s_overhead_clusters as ext4_calculate_overhead() (no bigalloc):
    count_overhead()'s superblock, descriptor and reserved GDT blocks,
    bitmaps and inode table per group, the journal."""
    n = num(after, 'First block')
    per = num(after, 'Inode blocks per group') + 2
    for sb, desc, rsv in group_layout(img):
        n += per + (sb is not None) + len(desc) + rsv
    return n + num(after, 'Total journal blocks')


ext4_overhead = overhead


def clusters(first, last, ratio):
    return last // ratio - first // ratio + 1


def new_meta_clusters(img, o_groups, ratio):
    """bigalloc: the clusters the grow's metadata takes, read from dumpe2fs:
    each new group's superblock copy, descriptor and reserved GDT blocks
    (a run from its first block), and its bitmaps and inode table,
    wherever flex_bg put them (each table in clusters of its own)."""
    out = run(['dumpe2fs', img]).stdout.decode(errors='replace')
    n = 0
    for grp in re.split(r'^Group \d+: ', out, flags=re.M)[1 + o_groups:]:
        start = int(re.match(r'\(Blocks (\d+)-', grp).group(1))
        head = ('superblock at' in grp) + sum(
            int(b or a) - int(a) + 1 for a, b in re.findall(
                r'(?:Group descriptors?|Reserved GDT blocks) at (\d+)(?:-(\d+))?',
                grp))
        if head:
            n += clusters(start, start + head - 1, ratio)
        for a, b in re.findall(r'(?:Block bitmap|Inode bitmap|Inode table) '
                               r'at (\d+)(?:-(\d+))?', grp):
            n += clusters(int(a), int(b or a), ratio)
    return n


def unsummed(block, dsize):
    """A descriptor block without its checksums (bitmaps' and its own): an
    old group whose bitmap gains a new group's tables has them set at the
    commit's flush, after the grow wrote the old layout's copies (ext4's
    copies go stale the same way with the next allocation)."""
    out = bytearray(block)
    for d in range(0, len(out), dsize):
        for a, b in ((24, 28), (30, 32), (56, 60)):
            if b <= dsize:
                out[d + a:d + b] = bytes(b - a)
    return bytes(out)


def desc_copies_match(img, o_groups):
    """Right after the grow: each descriptor block's copies (meta_bg's in
    the second and last group of its meta group, the old layout's in the
    groups with a superblock) hold the primary's bytes for the old last
    group and the new ones, and every superblock copy the new block count.
    The old groups' descriptors are left as they were (ext4 leaves them
    too: the conversion to meta_bg frees the resize inode's block without
    updating a copy)."""
    groups = group_layout(img)
    bs = int(sb_field(img, 'Block size'))
    dsize = int(sb_field(img, 'Group descriptor size') or 32)
    per = bs // dsize
    o_desc = -(-o_groups // per)
    blocks = int(sb_field(img, 'Block count'))
    meta_bg = 'meta_bg' in sb_field(img, 'Filesystem features').split()
    first_meta = int(sb_field(img, 'First meta block group') or
                     (0 if meta_bg else len(groups)))
    primary = {}
    for i, blk in enumerate(groups[0][1][:first_meta]):
        primary[blk - groups[0][1][0]] = ('old', i)
    with open(img, 'rb') as f:
        def block(b):
            f.seek(b * bs)
            return f.read(bs)
        desc0 = groups[0][1][0]
        for g, (sb, desc, rsv) in enumerate(groups):
            if g and sb is not None:
                check(struct.unpack('<I', block(sb)[4:8])[0] == blocks & 0xffffffff,
                      'group %d: the superblock copy has an old block count' % g)
            if g // per >= first_meta and desc:
                want = block(groups[g - g % per][1][0])
                eq(block(desc[0]), want, 'group %d: meta_bg descriptor copy' % g)
            elif g and desc:
                for i in range(max(o_desc - 1, 0), min(len(desc), first_meta)):
                    skip = max(o_groups - 1 - i * per, 0) * dsize
                    eq(unsummed(block(desc[i]), dsize)[skip:],
                       unsummed(block(desc0 + i), dsize)[skip:],
                       'group %d: descriptor block %d copy' % (g, i))


def resize_inode(img):
    """The resize inode's block count and blocks (debugfs stat <7>): the
    reserved GDT blocks and their backups. e2fsck 1.47 checks only the
    primary ones."""
    out = run(['debugfs', '-R', 'stat <7>', img]).stdout.decode()
    m = re.search(r'Blockcount: (\d+)', out)
    return (m.group(1) if m else '0',
            out[out.index('BLOCKS:'):].strip() if 'BLOCKS:' in out else '')


def reference_resize(img, d, args):
    """The same resize on @img (a copy) by the kernel, or where this process
    may not resize online (EPERM: no CAP_SYS_RESOURCE), by resize2fs on the
    unmounted image. Returns who did it."""
    with kernel_mount(img, d + '/kmnt'):
        p = run(['resize2fs', img] + args, check_rc=False)
    if p.returncode == 0:
        return 'kernel'
    if b'Permission denied' not in p.stderr:
        raise TestFailure('kernel resize: %s' % p.stderr.decode())
    run(['resize2fs', '-f', img] + args)
    return 'resize2fs'


def repair_bigalloc_reference(ref):
    """resize2fs 1.47.0 offline (-f: bigalloc is "not fully tested") counts
    a partial last group of a bigalloc grow as full: its free clusters as
    many as a whole group's, and the superblock's free blocks with them.
    ext4 counts what the group holds (ext4_setup_next_flex_gd). Where
    e2fsck finds that and only that, its -y repair is the reference."""
    msg = fsck(ref, check_rc=False)
    if msg is None:
        return
    wrong = [l for l in msg.splitlines() if 'count wrong' in l]
    check(wrong and all(l.startswith('Free blocks count wrong') for l in wrong),
          'the reference is damaged otherwise: %s' % msg)
    run(['e2fsck', '-fy', ref], check_rc=False)


def chunk(i):
    """MiB @i of the filling file: each 4 KiB block its own number."""
    return b''.join(struct.pack('<Q', i * 256 + k) * 512 for k in range(256))


def write_fill(m, old_blocks):
    """A file filling the new space; returns its length in MiB."""
    sv = os.statvfs(m.mnt)
    mib = ((sv.f_bavail - sv.f_bavail // 50 - 64) * sv.f_frsize) >> 20
    check(mib << 20 > old_blocks * sv.f_frsize,
          'the file (%d MiB) does not need the new space' % mib)
    with open(m.path('fill'), 'wb') as f:
        for i in range(mib):
            f.write(chunk(i))
    return mib


def check_fill(m, mib):
    with open(m.path('fill'), 'rb') as f:
        for i in range(mib):
            check(f.read(1 << 20) == chunk(i),
                  'the file filling the new space reads back different '
                  'bytes in MiB %d' % i)
        eq(f.read(), b'', 'bytes past the end')


def fill_in_place(m, old_blocks):
    """In the mount that grew: the new space filled, read back from the
    image (the kernel's page cache dropped), the file removed."""
    mib = write_fill(m, old_blocks)
    os.sync()
    drop_caches(3)
    check_fill(m, mib)
    os.unlink(m.path('fill'))


def fill_and_check(img, old_blocks):
    """A file filling the new space, written, read back after a remount."""
    with Mount(img) as m:
        mib = write_fill(m, old_blocks)
    with Mount(img) as m:
        check_fill(m, mib)
    fsck(img)


def in_use(img, fields):
    """Blocks in use that are not metadata (ext4's overhead); with bigalloc
    clusters, the overhead being s_overhead_clusters."""
    used = num(fields, 'Block count') - num(fields, 'Free blocks')
    if 'bigalloc' in fields['Filesystem features'].split():
        ratio = num(fields, 'Cluster size') // num(fields, 'Block size')
        return used // ratio - num(fields, 'Overhead clusters')
    return used - overhead(img, fields)


def check_converted(img, before, after, first_meta):
    """What ext4_convert_meta_bg leaves, and the blocks in use but not
    metadata unchanged but for the resize inode's last block, freed."""
    feats = after['Filesystem features'].split()
    check('meta_bg' in feats and 'resize_inode' not in feats,
          'not converted to meta_bg: %s' % feats)
    eq(num(after, 'First meta block group'), first_meta, 's_first_meta_bg')
    eq(num(after, 'Reserved GDT blocks'), 0, 'reserved GDT blocks')
    eq(resize_inode(img)[0], '0', 'the resize inode\'s block count')
    had = 'resize_inode' in before['Filesystem features'].split()
    eq(in_use(img, after), before['in_use'] - had,
       'blocks in use that are not metadata')


def grow_case(size, new_size, features=(), opts=(), args=(), extended=(),
              converts=None):
    """mke2fs @size, mount, truncate to @new_size, resize2fs [args].
    @converts: the s_first_meta_bg ext4's conversion to meta_bg sets, or
    None where it does not convert."""
    with workdir() as d:
        img = mkfs(d + '/img', size=size, features=features, opts=opts,
                   extended=extended)
        before = dumpe2fs(img)
        before['in_use'] = in_use(img, before)
        ref = d + '/ref'
        shutil.copyfile(img, ref)
        with Mount(img) as m:
            os.truncate(img, new_size)
            run(['resize2fs', img] + list(args))
            desc_copies_match(img, before['groups'])
            sv = os.statvfs(m.mnt)
            fill_in_place(m, num(before, 'Block count'))
        fsck(img)
        after = dumpe2fs(img)
        eq(sv.f_blocks, num(after, 'Block count'), 'statfs blocks')
        check(after['groups'] >= before['groups'] and
              num(after, 'Block count') > num(before, 'Block count'),
              'did not grow: %s -> %s blocks' % (
                  before['Block count'], after['Block count']))
        os.truncate(ref, new_size)
        by = reference_resize(ref, d, list(args))
        if 'bigalloc' in features and by == 'resize2fs':
            repair_bigalloc_reference(ref)
        fsck(ref)
        want = dumpe2fs(ref)
        same = COMPARED if converts is None else CONVERTED_COMPARED
        for k in same:
            eq(after.get(k), want.get(k), '%s (reference: %s)' % (k, by))
        if converts is None:
            eq(resize_inode(img), resize_inode(ref), 'the resize inode')
            eq(group_layout(img), group_layout(ref),
               'superblock copies and descriptor blocks per group')
        else:
            check_converted(img, before, after, converts)
        if by == 'kernel':
            for k in ('Reserved block count', 'Overhead clusters'):
                eq(after.get(k), want.get(k), k + ' (reference: kernel)')
        else:
            eq(num(after, 'Reserved block count'), ext4_reserved(before, after),
               'reserved blocks (ext4_update_super)')
            if 'bigalloc' in features:
                ratio = num(after, 'Cluster size') // num(after, 'Block size')
                eq(num(after, 'Overhead clusters'),
                   num(before, 'Overhead clusters') +
                   new_meta_clusters(img, before['groups'], ratio),
                   'overhead clusters (ext4_add_overhead)')
            elif after['groups'] > before['groups']:
                eq(num(after, 'Overhead clusters'), ext4_overhead(img, after),
                   'overhead clusters (ext4_calculate_overhead)')
        fill_and_check(img, num(before, 'Block count'))
        return before, after


@test(timeout=180)
def grow_within_last_group():
    """4 KiB blocks, one group of 16384 blocks grown to 25600 (no size
    given: the image file's)."""
    before, after = grow_case('64M', 100 << 20)
    eq(after['groups'], before['groups'], 'groups')


@test(timeout=180)
def grow_by_one_group():
    """A full group of 32768 blocks and one more (with a backup
    superblock), SIZE given."""
    before, after = grow_case('128M', 256 << 20, args=['65536'])
    eq(after['groups'], before['groups'] + 1, 'groups')


@test(timeout=300)
def grow_many_groups_4k():
    """4 groups of 4 MiB to 75: past a flex group (16) and a descriptor
    block (64 descriptors of 64 bytes)."""
    before, after = grow_case('16M', 300 << 20, opts=['-g', '1024'])
    check(num(after, 'Reserved GDT blocks') < num(before, 'Reserved GDT blocks'),
          'no reserved GDT block was used')


@test(timeout=300)
def grow_many_groups_1k():
    """1 KiB blocks: 4 groups of 1 MiB to 40, past two flex groups and two
    descriptor blocks (16 descriptors each), the last group partial."""
    before, after = grow_case('4M', (40 << 20) + (300 << 10),
                              opts=['-b', '1024', '-g', '1024'])
    check(after['groups'] > 32, 'groups: %d' % after['groups'])


@test(timeout=300)
def grow_no_journal_32bit():
    """Without a journal and with 32-byte descriptors (^64bit), 1 KiB
    blocks: 4 groups to 70 (past two descriptor blocks of 32)."""
    grow_case('4M', 70 << 20, features=['^has_journal', '^64bit'],
              opts=['-b', '1024', '-g', '1024'])


@test(timeout=180)
def grow_ext2_like():
    """No flex_bg, no group checksums (ext2's layout, ext4 features off):
    each group's tables in itself."""
    grow_case('16M', 100 << 20, features=['^has_journal', '^flex_bg',
                                           '^metadata_csum', '^64bit'],
              opts=['-g', '1024'])


@test(timeout=300)
def grow_meta_bg_1k():
    """meta_bg (mke2fs -O meta_bg,^resize_inode), 1 KiB blocks: 4 groups
    of 1 MiB to 40 and a partial one, three meta groups of 16."""
    before, after = grow_case('4M', (40 << 20) + (300 << 10),
                              features=['meta_bg', '^resize_inode'],
                              opts=['-b', '1024', '-g', '1024'])
    check(after['groups'] > 32, 'groups: %d' % after['groups'])


@test(timeout=300)
def grow_meta_bg_32bit_no_journal():
    """meta_bg with 32-byte descriptors (^64bit), no journal: 4 groups to
    70, meta groups of 32."""
    grow_case('4M', 70 << 20, features=['meta_bg', '^resize_inode', '^64bit',
                                         '^has_journal'],
              opts=['-b', '1024', '-g', '1024'])


@test(timeout=300)
def grow_converts_past_reserved_gdt():
    """1 KiB blocks, resize= leaving one reserved GDT block: 4 groups to
    64 fill the two descriptor blocks (32 groups), convert to meta_bg
    (s_first_meta_bg 2), then add two meta groups."""
    before, after = grow_case('4M', 64 << 20, opts=['-b', '1024', '-g', '1024'],
                              extended=['resize=20000'], converts=2)
    eq(after['groups'], 64, 'groups')


@test(timeout=300)
def grow_converts_no_resize_inode():
    """Neither resize_inode nor meta_bg: converted at the grow
    (s_first_meta_bg 1, the one descriptor block), 4 groups to 40."""
    grow_case('4M', 40 << 20, features=['^resize_inode'],
              opts=['-b', '1024', '-g', '1024'], converts=1)


@test(timeout=300)
def grow_bigalloc_converts_no_resize_inode():
    """bigalloc, 64 KiB clusters, no resize_inode: converted at the grow
    (s_first_meta_bg 1), 2 groups of 32 MiB to 10."""
    grow_case('64M', 300 << 20, features=['bigalloc', '^resize_inode'],
              opts=['-C', '65536', '-g', '512'], converts=1)


@test(timeout=300)
def grow_bigalloc_converts_past_reserved_gdt():
    """bigalloc, 16 KiB clusters of 1 KiB blocks, one reserved GDT block
    (mke2fs 1.47.0 reserves for resize=40000 as if groups were 1024
    blocks): 2 groups of 16 MiB to 40 fill the two descriptor blocks (32
    groups), convert to meta_bg past them (the spent resize inode holds one
    cluster: ext4_convert_meta_bg's i_blocks check), and grow on."""
    before, after = grow_case('32M', 640 << 20, features=['bigalloc'],
                              opts=['-b', '1024', '-C', '16384', '-g', '1024'],
                              extended=['resize=40000'], converts=2)
    eq(num(before, 'Reserved GDT blocks'), 1, 'reserved GDT blocks before')
    eq(after['groups'], 40, 'groups')


@test(timeout=180)
def refusals():
    """A smaller count EINVAL, past the file's end ENOSPC (logged with the
    file's name), not root EPERM; nothing changes: e2fsck clean, same
    size."""
    with workdir() as d:
        img = mkfs(d + '/img', size='64M')
        with Mount(img, opts=['allow_other']) as m:
            expect_errno(errno.EINVAL, resize_ioctl, m.mnt, 16000)
            expect_errno(errno.ENOSPC, resize_ioctl, m.mnt, 20000)
            check("'%s'" % img in m.log() and '20000 blocks' in m.log(),
                  'no log line names the image: %s' % m.log())
            os.truncate(img, 100 << 20)
            eq(errno_as(USER, resize_ioctl, m.mnt, 25600), errno.EPERM,
               'resize by a user')
            resize_ioctl(m.mnt, 16384)          # the same size: nothing
            eq(os.statvfs(m.mnt).f_blocks, 16384, 'blocks')
        fsck(img)
        eq(num(dumpe2fs(img), 'Block count'), 16384, 'block count')


def refused(features=(), opts=(), size='64M', new_size=300 << 20,
            extended=()):
    with workdir() as d:
        img = mkfs(d + '/img', size=size, features=features, opts=opts,
                   extended=extended)
        old = num(dumpe2fs(img), 'Block count')
        with Mount(img) as m:
            os.truncate(img, new_size)
            p = run(['resize2fs', img], check_rc=False)
            check(p.returncode != 0, 'resize2fs succeeded')
            expect_errno(errno.EOPNOTSUPP, resize_ioctl, m.mnt,
                         new_size // os.statvfs(m.mnt).f_frsize)
            check('unmount it and run resize2fs' in m.log(),
                  'no advice logged: %s' % m.log())
        fsck(img)
        eq(num(dumpe2fs(img), 'Block count'), old, 'block count')


@test(timeout=120)
def refused_partition():
    """A partition's window is narrowed to its file system at the mount:
    offset= cannot grow while mounted (EOPNOTSUPP, logged)."""
    with workdir() as d:
        img = d + '/disk'
        with open(img, 'wb') as f:
            f.truncate(200 << 20)
        run(['mke2fs', '-q', '-F', '-t', 'ext4', '-b', '4096', '-E',
             'offset=1048576', img, '16384'])
        with Mount(img, opts=['offset=1048576']) as m:
            expect_errno(errno.EOPNOTSUPP, resize_ioctl, m.mnt, 32768)
            check('unmount it and run resize2fs' in m.log(),
                  'no advice logged: %s' % m.log())
        run(['e2fsck', '-fn', img + '?offset=1048576'])


@test(timeout=300)
def grow_bigalloc_16k():
    """bigalloc, 16 KiB clusters of 4 KiB blocks, 1024 clusters a group: 4
    groups to 75, the image 12 KiB past a cluster (the size rounded down
    to one, as ext4_resize_fs rounds it)."""
    before, after = grow_case('64M', (300 << 20) + 12288, features=['bigalloc'],
                              opts=['-C', '16384', '-g', '1024'])
    eq(num(after, 'Block count'), 300 << 8, 'block count')


@test(timeout=120)
def bigalloc_size_rounded():
    """EXT4_IOC_RESIZE_FS itself (resize2fs rounds before it asks): a count
    3 blocks past a 4-block cluster (a new group 5, 1003 blocks long) grows
    to the cluster before, as ext4_resize_fs rounds it, silently."""
    with workdir() as d:
        img = mkfs(d + '/img', size='64M', features=['bigalloc'],
                   opts=['-C', '16384', '-g', '1024'])
        with Mount(img) as m:
            os.truncate(img, 100 << 20)
            resize_ioctl(m.mnt, 21483)
            eq(os.statvfs(m.mnt).f_blocks, 21480, 'statfs blocks')
        fsck(img)
        eq(num(dumpe2fs(img), 'Block count'), 21480, 'block count')


@test(timeout=300)
def grow_bigalloc_64k():
    """bigalloc, 64 KiB clusters of 4 KiB blocks, 512 clusters a group: 2
    groups to 10, the last partial."""
    before, after = grow_case('64M', (300 << 20) + (192 << 10), features=['bigalloc'],
                              opts=['-C', '65536', '-g', '512'])
    eq(after['groups'], 10, 'groups')


@test(timeout=300)
def grow_bigalloc_1k():
    """bigalloc, 16 KiB clusters of 1 KiB blocks (group 0 starts at block 0,
    its superblock in block 1), 1024 clusters a group: 2 groups of 16 MiB
    to 7. 100 inodes a group: inode tables of 24 blocks, a cluster and a
    half, the new ones in group 0 (flex_bg)."""
    before, after = grow_case('32M', 100 << 20, features=['bigalloc'],
                              opts=['-b', '1024', '-C', '16384', '-g', '1024',
                                    '-N', '200'])
    eq(num(after, 'Inode blocks per group'), 24, 'inode blocks per group')
    eq(after['groups'], 7, 'groups')


@test(timeout=120)
def refused_reserved_gdt_without_resize_inode():
    """resize_inode turned off with its reserved GDT blocks left counted
    (debugfs): EUCLEAN as ext4_resize_begin's EFSCORRUPTED, logged, and
    nothing changes."""
    with workdir() as d:
        img = mkfs(d + '/img', size='64M')
        run(['debugfs', '-w', '-R', 'feature -resize_inode', img])
        before = dumpe2fs(img)
        check(num(before, 'Reserved GDT blocks') > 0, 'no reserved GDT block')
        with Mount(img) as m:
            os.truncate(img, 300 << 20)
            expect_errno(errno.EUCLEAN, resize_ioctl, m.mnt, 300 << 8)
            check('run e2fsck' in m.log(), 'no advice logged: %s' % m.log())
        after = dumpe2fs(img)
        for k in COMPARED:
            eq(after.get(k), before.get(k), k)


@test(timeout=120)
def refused_sparse_super2():
    """ext4 refuses it too (ext4_resize_begin)."""
    refused(features=['sparse_super2'])


# ---------------------------------------------------------------- crash

# mke2fs arguments and the size grown to: 4 groups of 4 MiB to 75, 1
# KiB blocks past the reserved GDT blocks (the conversion to meta_bg), and
# bigalloc (16 KiB clusters, 4 groups of 16 MiB to 75, the last partial).
CRASH_CASES = {
    'bigalloc': (dict(size='64M', features=['bigalloc'],
                      opts=['-C', '16384', '-g', '1024']), (300 << 20) + (40 << 10)),
    'reserved_gdt': (dict(size='16M', opts=['-g', '1024']), 300 << 20),
    'convert': (dict(size='4M', opts=['-b', '1024', '-g', '1024'],
                     extended=['resize=20000']), 64 << 20),
}


def crash_image(d, mkfs_args):
    img = mkfs(d + '/base', **mkfs_args)
    with Mount(img) as m:
        with open(m.path('keep'), 'wb') as f:
            f.write(pattern(100000, seed=3))
    return img


def resize_run(img, env, new_size):
    """Mount @img with @env, grow it, unmount; the daemon may die, at the
    mount too (MountError: the step was one of the mount's)."""
    m = Mount(img, opts=['commit=600'], env=env, expect_clean_exit=False)
    try:
        m.start()
    except MountError:
        return False
    try:
        os.truncate(img, new_size)
        subprocess.run(['resize2fs', img], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
    finally:
        m.stop()
    return True


def crash_sweep(case):
    """Each durability step of a mount that grows the image, in turn a
    power cut and a SIGKILL; the next mount replays: e2fsck clean, the old
    size or the new, the file intact."""
    mkfs_args, new_size = CRASH_CASES[case]
    with workdir() as d:
        base = crash_image(d, mkfs_args)
        old = num(dumpe2fs(base), 'Block count')
        img = d + '/img'
        shutil.copyfile(base, img)
        count = d + '/steps'
        resize_run(img, {'UEXT4_FAULT_COUNT': count}, new_size)
        new = num(dumpe2fs(img), 'Block count')
        check(new > old, 'the grow did not happen')
        with open(count) as f:
            steps = int(f.read().split()[0])
        print('# %s: %d durability steps' % (case, steps))
        seen = set()
        for n in range(1, steps + 1):
            for kill in (False, True):
                shutil.copyfile(base, img)
                env = {'UEXT4_FAULT_AT': str(n), 'UEXT4_FAULT_SEED': str(n)}
                if kill:
                    env['UEXT4_FAULT_KILL'] = '1'
                resize_run(img, env, new_size)
                with Mount(img) as m:       # replays the journal
                    with open(m.path('keep'), 'rb') as f:
                        check(f.read() == pattern(100000, seed=3),
                              'step %d: the file changed' % n)
                fsck(img)
                blocks = num(dumpe2fs(img), 'Block count')
                check(blocks in (old, new), 'step %d: %d blocks' % (n, blocks))
                seen.add(blocks)
        eq(seen, {old, new}, 'sizes seen after the crashes')


@test(timeout=900)
def crash_at_every_step():
    """The grow within the reserved GDT blocks."""
    crash_sweep('reserved_gdt')


@test(timeout=900)
def crash_at_every_step_bigalloc():
    """A bigalloc grow: free clusters per group, free blocks and the
    overhead in the one transaction."""
    crash_sweep('bigalloc')


@test(timeout=900)
def crash_at_every_step_converting():
    """The grow past the reserved GDT blocks: filled, converted to meta_bg,
    grown on, one transaction."""
    crash_sweep('convert')


if __name__ == '__main__':
    main()
