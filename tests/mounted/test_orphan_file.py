#!/usr/bin/env python3
"""Images whose orphans are in the orphan file (mke2fs -O orphan_file).

The kernel's ext4 records files unlinked while open in the orphan file's
blocks and sets orphan_present while mounted read-write. A copy of the
image taken while the kernel still holds such files open is what a crash
leaves. uext4 mounts that copy read-write, releases the orphans as the
kernel's mount of a second copy does (free blocks and inodes equal), zeroes
their slots and clears orphan_present; e2fsck -fn is clean. A read-only
mount leaves the image as it is, and a damaged orphan file block
refuses writing.
"""
import hashlib
import os
import struct

from uext4test import (Mount, check, debugfs, eq, fallocate, fsck,
                       inode_info, kernel_mount, main, mkfs, pattern,
                       require_kernel_loop_mount, run, run_daemon, sb_field,
                       test, workdir)


def crashed_copies(d, block_size, sizes, ncopies=2, freeze=False):
    """Kernel-made orphans: files of @sizes written, fsynced, unlinked while
    open; the image copied (sparse) while they are still open, @ncopies
    times (with @freeze, while fsfreeze holds the file system: its journal
    checkpointed, the orphan file's blocks home). Returns the copies'
    paths."""
    img = mkfs(d + '/img', size='64M', features=['orphan_file'],
               opts=['-b', str(block_size)])
    copies = [d + '/crash%d' % i for i in range(ncopies)]
    with kernel_mount(img, d + '/k') as k:
        fds = []
        try:
            for i, size in enumerate(sizes):
                p = os.path.join(k, 'f%d' % i)
                fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
                fds.append(fd)
                if size:
                    os.write(fd, pattern(size, seed=i))
                os.fsync(fd)
                os.unlink(p)
            with open(os.path.join(k, 'kept'), 'wb') as f:
                f.write(pattern(100000, seed=99))
            os.sync()
            if freeze:
                run(['fsfreeze', '-f', k])
            try:
                for c in copies:
                    run(['cp', '--sparse=always', img, c])
            finally:
                if freeze:
                    run(['fsfreeze', '-u', k])
        finally:
            for fd in fds:
                os.close(fd)
    return copies


def free_counts(mnt):
    st = os.statvfs(mnt)
    return st.f_bfree, st.f_ffree


def orphan_case(block_size, sizes, freeze=False):
    with workdir() as d:
        ours, theirs = crashed_copies(d, block_size, sizes, freeze=freeze)
        # The copy is a crash: orphan_present set, entries in the file.
        check('orphan_present' in sb_field(ours, 'Filesystem features'),
              'the crashed copy has no orphan_present: %s'
              % sb_field(ours, 'Filesystem features'))
        with kernel_mount(theirs, d + '/k2') as k:
            want = free_counts(k)
            kept = open(os.path.join(k, 'kept'), 'rb').read()
        with Mount(ours, d + '/mnt') as m:
            got = free_counts(m.mnt)
            eq(sorted(os.listdir(m.mnt)), ['kept', 'lost+found'], 'listing')
            eq(open(m.path('kept'), 'rb').read(), kept, 'kept file')
            check(not os.statvfs(m.mnt).f_flag & os.ST_RDONLY,
                  'mounted read-only: %s' % m.log())
        eq(got, want, 'free blocks and inodes (uext4, kernel)')
        check('orphan file' in m.log(), 'no orphans freed: %s' % m.log())
        fsck(ours)
        fsck(theirs)
        feats = sb_field(ours, 'Filesystem features')
        check('orphan_present' not in feats and 'orphan_file' in feats,
              'features after the mount: %s' % feats)
        for field in ('Free blocks', 'Free inodes'):
            eq(sb_field(ours, field), sb_field(theirs, field), field)


@test
def orphan_file_released_4k():
    """Six orphans with data (empty to 3 MiB) in a 4 KiB-block image."""
    orphan_case(4096, [0, 1, 5000, 70000, 1 << 20, 3 << 20])


@test
def orphan_file_released_many_1k():
    """300 orphans with 1 KiB blocks: more than one orphan file block's
    254 slots."""
    orphan_case(1024, [1500 * (i % 3) for i in range(300)])


@test
def orphan_file_released_frozen():
    """Copied under fsfreeze: no journal to replay, the entries in the
    orphan file's blocks themselves."""
    orphan_case(4096, [0, 9000, 2 << 20], freeze=True)


@test
def orphan_file_truncate_orphan():
    """A linked inode in the orphan file (the kernel lists a file there
    while it truncates it): its blocks past i_size (here preallocated with
    FALLOC_FL_KEEP_SIZE) are released, as the kernel's mount of a second
    copy does. The entry is written into a cleanly unmounted image without
    metadata_csum (no checksum to forge): a state the kernel itself leaves
    when it stops mid-truncate."""
    with workdir() as d:
        img = mkfs(d + '/img', size='64M',
                   features=['orphan_file', '^metadata_csum'])
        with kernel_mount(img, d + '/k') as k:
            fd = os.open(os.path.join(k, 'f'), os.O_CREAT | os.O_RDWR, 0o644)
            try:
                os.write(fd, pattern(100000))
                os.posix_fallocate(fd, 0, 100000)
                fallocate(fd, 1, 100000, 3 << 20)   # FALLOC_FL_KEEP_SIZE
                os.fsync(fd)
            finally:
                os.close(fd)
        ino = inode_info(img, '/f')['ino']
        pblk = int(run(['debugfs', '-R', 'bmap <12> 0', img]).stdout.split()[0])
        with open(img, 'r+b') as f:
            f.seek(pblk * 4096)
            f.write(struct.pack('<I', ino))
        debugfs(img, 'feature orphan_present', write=True)
        ours, theirs = d + '/ours', d + '/theirs'
        run(['cp', '--sparse=always', img, ours])
        run(['cp', '--sparse=always', img, theirs])
        with kernel_mount(theirs, d + '/k2') as k:
            want = free_counts(k)
        with Mount(ours, d + '/mnt') as m:
            got = free_counts(m.mnt)
            eq(open(m.path('f'), 'rb').read(), pattern(100000), 'file data')
        eq(got, want, 'free blocks and inodes (uext4, kernel)')
        fsck(ours)
        fsck(theirs)
        for field in ('size', 'blockcount', 'links'):
            eq(inode_info(ours, '/f')[field], inode_info(theirs, '/f')[field],
               field)
        check('orphan_present' not in sb_field(ours, 'Filesystem features'),
              'orphan_present left set')


@test
def orphan_file_read_only():
    """A read-only mount (the journal replayed in memory) shows the crashed
    image, orphans left alone: not one byte written."""
    with workdir() as d:
        (ours,) = crashed_copies(d, 4096, [200000, 0], ncopies=1)
        before = hashlib.sha256(open(ours, 'rb').read()).hexdigest()
        with Mount(ours, d + '/mnt', opts=['ro']) as m:
            eq(sorted(os.listdir(m.mnt)), ['kept', 'lost+found'], 'listing')
        after = hashlib.sha256(open(ours, 'rb').read()).hexdigest()
        eq(after, before, 'image bytes after a read-only mount')
        check('orphan_present' in sb_field(ours, 'Filesystem features'),
              'orphan_present cleared by a read-only mount')


@test
def orphan_file_damaged_block():
    """An orphan file block whose checksum does not match is refused for
    writing with a message naming it (the kernel refuses such a mount too);
    reading still works. The image is never loop-mounted."""
    with workdir() as d:
        (ours,) = crashed_copies(d, 4096, [200000, 0], ncopies=1,
                                 freeze=True)
        data = run(['debugfs', '-R', 'cat <12>', ours]).stdout
        used = [b for b in range(len(data) // 4096)
                if any(data[b * 4096:b * 4096 + 4088])]
        check(used, 'no orphan file entries in the frozen copy')
        out = run(['debugfs', '-R', 'bmap <12> %d' % used[0], ours]).stdout
        pblk = int(out.split()[0])
        with open(ours, 'r+b') as f:       # a slot changed: bad checksum
            f.seek(pblk * 4096 + 4000)
            f.write(struct.pack('<I', 13))
        rc, out = run_daemon(ours, d + '/mnt')
        check(rc != 0 and 'orphan file' in out and 'checksum' in out,
              'uext4 exited %d: %s' % (rc, out))
        with Mount(ours, d + '/mnt', opts=['ro']) as m:
            eq(sorted(os.listdir(m.mnt)), ['kept', 'lost+found'], 'listing')


def setup():
    require_kernel_loop_mount(['orphan_file'])


if __name__ == '__main__':
    main(setup)
